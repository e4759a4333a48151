"""Checks for notebook 08 (training a CNN).

Expected answers come from the package's reference code: ``cnncourse.losses``
for the loss and ``cnncourse.optim.Adam`` (itself tested step for step
against ``torch.optim.Adam``) for the optimiser step.
"""
from __future__ import annotations

import numpy as np

from .. import losses, optim
from ..nn import Parameter
from .core import Case, exercise, run_cases

NOTEBOOK = "08_training_a_cnn"


# --------------------------------------------------------------------------- 8.1 · softmax cross-entropy


LOG_UNDERFLOW = (
    "the loss alone is infinite while the gradient is right: after the max shift the true class's "
    "probability underflows to 0 and log(0) = -inf. Take the log before the division, by log-sum-exp: "
    "log p_y = (z_y - m) - log(sum_j exp(z_j - m)) with m the row maximum, instead of np.log(softmax)[y]"
)


def _normalise_nonfinite(out, logits, y):
    """Map the ways a softmax can blow up onto the two answers the mistakes list.

    * loss non-finite, gradient finite and right: the log of an underflowed
      probability (max shift done, log-sum-exp not) -> ``(inf, gradient)``;
    * anything else non-finite (overflow without the max shift shows up as a NaN
      loss, an inf loss with a wrong gradient, NaN gradients ...) -> all-NaN.
    """
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return out
    try:
        loss, grad = (np.asarray(item, dtype=float) for item in out)
    except (TypeError, ValueError):
        return out
    if np.isfinite(loss).all() and np.isfinite(grad).all():
        return out
    if np.isfinite(grad).all() and grad.shape == logits.shape:
        right_grad = losses.softmax_cross_entropy(logits, y)[1]
        if np.allclose(grad, right_grad, rtol=1e-6, atol=1e-8):
            return float("inf"), grad
    return float("nan"), np.full(grad.shape, np.nan)


def _overflowed(logits):
    """The all-NaN answer of a softmax computed without subtracting the maximum, when exp overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(logits)
        overflow = not np.isfinite(e).all()
    return (float("nan"), np.full(logits.shape, np.nan)) if overflow else None


@exercise("8.1", "softmax_cross_entropy_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.losses.softmax_cross_entropy", "cnncourse.losses.softmax", "cnncourse.losses.log_softmax"))
def check_softmax_cross_entropy_exercise(fn):
    """``fn(logits, y) -> (loss, dlogits)``: mean softmax cross-entropy over the batch and its gradient."""
    rng = np.random.default_rng(801)
    inputs = [
        ("logits (4, 3)", rng.normal(size=(4, 3)), rng.integers(0, 3, size=4)),
        ("logits (6, 10)", 3 * rng.normal(size=(6, 10)), rng.integers(0, 10, size=6)),
        ("one sample, logits [2, 1, 0.1], y = 0", np.array([[2.0, 1.0, 0.1]]), np.array([0])),
        ("logits in the thousands, e.g. [1000, 1001, 1002]",
         np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0], [3000.0, 2990.0, 2995.0]]), np.array([2, 0, 1])),
    ]
    cases = []
    for label, logits, y in inputs:
        loss, dlogits = losses.softmax_cross_entropy(logits, y)
        n = len(y)
        p = losses.softmax(logits)
        mistakes = {
            "loss and gradient not averaged over the batch (not divided by N): the loss is the *mean* over the N samples":
                (loss * n, dlogits * n),
            "the gradient is not averaged over the batch (not divided by N): the loss is a mean, so its gradient carries 1/N too":
                (loss, dlogits * n),
            "the gradient misses the -1 at the true class (the −onehot(y) term): d loss/d logits = (softmax − onehot(y)) / N":
                (loss, p / n),
        }
        mistakes["the gradient has the wrong sign: d loss/d logits = (softmax - onehot(y)) / N, "
                 "not (onehot(y) - softmax) / N"] = (loss, -dlogits)
        log_p = logits - logits.max(axis=1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        if np.any(np.exp(log_p[np.arange(n), y]) == 0):  # a true class's probability underflows
            mistakes[LOG_UNDERFLOW] = (float("inf"), dlogits)
        overflow = _overflowed(logits)
        if overflow is not None:
            mistakes["no max-subtraction: exp of large logits overflows to inf and gives nan; "
                     "subtract each row's maximum first (softmax does not change)"] = overflow
        cases.append(Case(label, (logits, y), expected=(loss, dlogits), mistakes=mistakes))

    def wrapped(logits, y):
        return _normalise_nonfinite(fn(logits, y), logits, y)

    # run_cases needs the student's function to report "not attempted" and exceptions: the wrapper
    # only post-processes a returned value, so both still come through.
    return run_cases("8.1", "softmax_cross_entropy_exercise", wrapped if callable(fn) else fn, cases)


# --------------------------------------------------------------------------- 8.2 · one Adam step


def _adam_reference(w, dw, m, v, t, lr, beta1, beta2, eps):
    """One step of ``cnncourse.optim.Adam`` from the state (m, v) after t - 1 steps."""
    p = Parameter(w.copy())
    p.grad[...] = dw
    opt = optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    opt.t = t - 1
    opt.state[0]["exp_avg"] = m.copy()
    opt.state[0]["exp_avg_sq"] = v.copy()
    opt.step()
    return p.value, opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]


def _naive_softmax_ce(logits, y):
    """Softmax cross-entropy *without* subtracting the row maximum: overflows for large logits (a mistake)."""
    n = len(y)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(logits)
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(-np.log(p[np.arange(n), y]).mean())
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n


def _adam(w, dw, m, v, t, lr, beta1, beta2, eps, *, correct=True, eps_inside=False, t_shift=0, square=True, sign=1):
    """One Adam step written out, with switches for the classic mistakes (all off: the right step)."""
    t_used = t + t_shift
    m_new = beta1 * m + (1 - beta1) * dw
    v_new = beta2 * v + (1 - beta2) * (dw**2 if square else dw)
    m_hat = m_new / (1 - beta1**t_used) if correct else m_new
    v_hat = v_new / (1 - beta2**t_used) if correct else v_new
    with np.errstate(invalid="ignore"):  # sqrt of a negative v when v averages dw itself
        denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    return w - sign * lr * m_hat / denom, m_new, v_new


@exercise("8.2", "adam_step", notebook=NOTEBOOK, forbidden=("cnncourse.optim.Adam",))
def check_adam_step(fn):
    """``fn(w, dw, m, v, t, *, lr, beta1, beta2, eps) -> (w_new, m_new, v_new)``: one Adam update at step t >= 1."""
    rng = np.random.default_rng(802)
    settings = [
        # label, shape, t, gradient scale, state (None: zeros), hyper-parameters
        ("w (3, 4), step t=3, eps=1e-3", (3, 4), 3, 1e-2, "random", dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-3)),
        ("w (5,), first step t=1 (m = v = 0)", (5,), 1, 1.0, None, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)),
        ("w (2, 3), step t=10, tiny gradients (1e-4)", (2, 3), 10, 1e-4, "random",
         dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)),
        ("w (4,), step t=1000, beta1=0.8, beta2=0.99", (4,), 1000, 0.5, "random",
         dict(lr=5e-2, beta1=0.8, beta2=0.99, eps=1e-8)),
    ]
    cases = []
    for label, shape, t, scale, state, hyper in settings:
        w = rng.normal(size=shape)
        dw = scale * rng.normal(size=shape)
        if state is None:
            m, v = np.zeros(shape), np.zeros(shape)
        else:
            m = scale * rng.normal(size=shape) * 0.5
            v = (scale * rng.normal(size=shape)) ** 2
        expected = _adam_reference(w, dw, m, v, t, **hyper)
        args = (w, dw, m, v, t, hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["eps"])
        mistakes = {
            "no bias correction: divide m by (1 − beta1^t) and v by (1 − beta2^t) before the update":
                _adam(*args, correct=False),
            "eps inside the square root: the update is m̂ / (sqrt(v̂) + eps)": _adam(*args, eps_inside=True),
            "t off by one: t is already the number of this step (1 for the first), use beta^t":
                _adam(*args, t_shift=1),
        }
        mistakes["v averages the gradient, not its square: v = beta2 v + (1 - beta2) dw**2"] = (
            _adam(*args, square=False))
        mistakes["the update has the wrong sign: Adam steps against the gradient, w - lr m̂ / (sqrt(v̂) + eps)"] = (
            _adam(*args, sign=-1))
        if t > 1:
            mistakes["t off by one (t − 1 used): t is already the number of this step, use beta^t"] = (
                _adam(*args, t_shift=-1))
        cases.append(Case(label, (w, dw, m, v, t), kwargs=hyper, expected=expected, mistakes=mistakes))
    return run_cases("8.2", "adam_step", fn, cases, rtol=1e-7, atol=1e-10)
