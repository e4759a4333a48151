"""Checks for notebook 08 (training a CNN).

Expected answers come from the package's reference code: ``cnncourse.losses``
for the loss and ``cnncourse.optim.Adam`` (itself tested step for step
against ``torch.optim.Adam``) for the optimiser step.
"""
from __future__ import annotations

import numpy as np

from .. import dropout, losses, models, optim
from ..nn import Parameter
from . import policy as _policy
from .core import FORBIDDEN, Case, CheckResult, exercise, run_cases

# CheckResult statuses (the strings core.run_cases uses), for the property-based dropout check.
PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"

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


# --------------------------------------------------------------------------- 8.3 / 8.4 · dropout


def _report(number, title, case, problem, cause=None, passed=0, total=1):
    """A failed CheckResult in run_cases' wording, for the property-based checks below."""
    hint = f"\n  likely cause: {cause}" if cause else ""
    return CheckResult(number, title, FAILED, f"✘ Exercise {number} ({title}): case '{case}': {problem}{hint}", passed, total)


def _values_in(out, allowed):
    """True when every element of ``out`` is close to one of the arrays in ``allowed`` at that position."""
    ok = np.zeros(out.shape, bool)
    for a in allowed:
        ok |= np.isclose(out, a, rtol=1e-6, atol=1e-12)
    return bool(ok.all())


@exercise("8.3", "dropout_forward_exercise", notebook=NOTEBOOK, forbidden=("cnncourse.dropout.dropout_forward",))
def check_dropout_forward_exercise(fn):
    """``fn(x, p, *, training=True, rng=None) -> (out, scaled_mask)``: inverted dropout with drop probability p.

    A mask is random, so the check tests properties instead of one answer: in evaluation mode the
    layer is the identity; in training every output is 0 or x / r (r = 1 - p), about a fraction r is
    kept, ``out == x * scaled_mask``, and the mask comes from ``rng`` (same seed, same mask).
    """
    number, title = "8.3", "dropout_forward_exercise"
    head = f"Exercise {number} ({title})"
    if not callable(fn):
        return CheckResult(number, title, FAILED, f"✘ {head}: expected a function, got {type(fn).__name__}", 0, 5)
    fn = _policy.watch(number, fn)  # a forbidden route is reported at once, in the grader's words
    data = np.random.default_rng(803)
    x = data.normal(size=(200, 100)) + 0.5
    p, total = 0.25, 5
    r = 1 - p

    def call(case, *args, **kwargs):
        x_in = args[0].copy()
        out = fn(x_in, *args[1:], **kwargs)
        if not np.array_equal(x_in, args[0]):
            raise _Problem(case, "the function modified its input x in place", None)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Problem(case, f"expected a tuple (out, scaled_mask), got {type(out).__name__}", None)
        got = np.asarray(out[0], dtype=float)
        if got.shape != args[0].shape:
            raise _Problem(case, f"wrong shape: expected {args[0].shape}, got {got.shape}", None)
        return got, out[1]

    try:
        # 1. evaluation mode
        case = "x (200, 100), p=0.25, training=False"
        out, _ = call(case, x, p, training=False, rng=np.random.default_rng(0))
        if not np.allclose(out, x, rtol=1e-12, atol=0):
            if np.allclose(out, x * r):
                raise _Problem(case, "evaluation mode must return x unchanged",
                               "the output is scaled by r at test time: with *inverted* dropout the 1/r scaling "
                               "happens in training, so evaluation mode is the identity")
            cause = ("units are dropped in evaluation mode: with training=False the layer does nothing"
                     if np.mean(out == 0) > 0.1 else None)
            raise _Problem(case, "evaluation mode must return x unchanged", cause)
        # 2. training mode: the values
        case = "x (200, 100), p=0.25, training=True, rng=default_rng(1)"
        out, mask = call(case, x, p, training=True, rng=np.random.default_rng(1))
        kept = float(np.mean(out != 0))
        if not _values_in(out, (0 * x, x / r)):
            if _values_in(out, (0 * x, x)):
                raise _Problem(case, "kept values must be x / r", "the survivors are not divided by the keep "
                               "probability r = 1 - p (inverted dropout scales them up so E[out] = x)")
            if _values_in(out, (0 * x, x * r)):
                raise _Problem(case, "kept values must be x / r", "the survivors are multiplied by r; divide them by r")
            if _values_in(out, (0 * x, x / p)):
                raise _Problem(case, "kept values must be x / r", "the survivors are divided by p, the *drop* "
                               "probability; divide by the keep probability r = 1 - p")
            raise _Problem(case, "every output must be 0 (dropped) or x / r (kept, r = 1 - p)", None)
        # 3. the fraction kept: r = 0.75, its standard deviation over 20,000 draws is 0.003
        if abs(kept - r) > 0.02:
            cause = ("p is used as the keep probability: p is the probability of *dropping* a unit, so a unit is "
                     "kept when rng.random() < 1 - p" if abs(kept - p) < 0.02 else None)
            raise _Problem(case, f"a fraction {kept:.3f} of the units is kept, expected about r = 1 - p = {r}", cause)
        # 4. the mask returned is the one applied, scaled
        mask = np.asarray(mask, dtype=float)
        if mask.shape != x.shape or not np.allclose(out, x * mask):
            if mask.shape == x.shape and np.allclose(out, x * mask / r):
                raise _Problem(case, "out must equal x * scaled_mask", "the mask returned is 0/1: return the "
                               "*scaled* mask (mask / r), the array the backward pass multiplies by")
            raise _Problem(case, "out must equal x * scaled_mask (the mask actually applied, divided by r)", None)
        # 5. randomness from rng
        case = "two calls with generators of the same seed, then one with another seed"
        a, _ = call(case, x, p, training=True, rng=np.random.default_rng(7))
        b, _ = call(case, x, p, training=True, rng=np.random.default_rng(7))
        if not np.array_equal(a, b):
            raise _Problem(case, "the same seed gave different masks", "the mask must come from the `rng` argument "
                           "(rng.random(x.shape) < 1 - p), not from np.random's global state")
        # a different seed must give a different mask (a generator made with a fixed seed inside the
        # function ignores rng); compared across seeds, not across calls sharing one generator, because
        # under the grader each call receives its own copy of the arguments
        a, _ = call(case, x, p, training=True, rng=np.random.default_rng(8))
        if np.array_equal(a, b):
            raise _Problem(case, "generators with different seeds drew the same mask", "a fresh mask is needed at "
                           "every call: draw it from `rng` (do not create a generator with a fixed seed inside the "
                           "function)")
    except _policy.ForbiddenRoute as err:
        return CheckResult(number, title, FORBIDDEN, f"✘ {head}: {err}", 0, total)
    except NotImplementedError:
        return CheckResult(number, title, NOT_ATTEMPTED,
                           f"… {head}: not attempted yet (the function still raises NotImplementedError)", 0, total)
    except _Problem as problem:
        return _report(number, title, problem.case, problem.text, problem.cause, 0, total)
    except Exception as err:  # the student's bug, reported, not raised
        return CheckResult(number, title, FAILED, f"✘ {head}: raised {type(err).__name__}: {err}", 0, total)
    return CheckResult(number, title, PASSED, f"✔ {head}: all {total} cases pass", total, total)


# no fixed answers to record: the registry tests of checks/core.py skip it, tests/test_checks_training.py
# covers each of its causes
check_dropout_forward_exercise.property_based = True


class _Problem(Exception):
    def __init__(self, case, text, cause):
        super().__init__(text)
        self.case, self.text, self.cause = case, text, cause


@exercise("8.4", "dropout_backward_exercise", notebook=NOTEBOOK, forbidden=("cnncourse.dropout.dropout_backward",))
def check_dropout_backward_exercise(fn):
    """``fn(dout, scaled_mask) -> dx``: the gradient of inverted dropout, with the forward pass's mask."""
    rng = np.random.default_rng(804)
    cases = []
    for shape, p in (((4, 6), 0.5), ((2, 3, 4, 4), 0.2), ((10,), 0.75)):
        x = rng.normal(size=shape)
        _, scaled_mask = dropout.dropout_forward(x, p=p, training=True, rng=rng)
        dout = rng.normal(size=shape)
        cases.append(Case(f"dout {shape}, mask of p={p}", (dout, scaled_mask), expected=dout * scaled_mask, mistakes={
            "the gradient is not scaled by 1/r: the forward pass multiplied by mask / r, so the backward "
            "multiplies by the same scaled mask": dout * (scaled_mask > 0),
            "dout is passed through unchanged: a dropped unit did not affect the output, so it gets no gradient":
                dout,
            "the mask is inverted: the *kept* units get the gradient, the dropped ones none":
                dout * (scaled_mask == 0) * scaled_mask.max(),
        }))
    return run_cases("8.4", "dropout_backward_exercise", fn, cases)


# --------------------------------------------------------------------------- 8.5 · sanity check of the initial loss


def _scaled_lenet(seed, num_classes, scale):
    net = models.lenet(seed=seed, num_classes=num_classes)
    last = [p for p in net.parameters()][-2]  # the last Linear's weight
    last.value[...] *= scale
    return net.eval()


@exercise("8.5", "initial_loss_check", notebook=NOTEBOOK)
def check_initial_loss_check(fn):
    """``fn(model, X, y) -> (loss, expected)``: the model's mean cross-entropy on (X, y), and ln K for K classes."""
    rng = np.random.default_rng(805)
    X = rng.normal(size=(32, 1, 8, 8)).astype(np.float32)
    inputs = [
        ("an untrained lenet(), 10 classes, labels 0-9", (0, 10, 1.0), rng.integers(0, 10, size=32)),
        ("an untrained lenet(num_classes=5), labels only 0-2 in this batch", (1, 5, 1.0),
         rng.integers(0, 3, size=32)),
        ("a lenet whose last layer is 30 times too large (a bad initialisation)", (2, 10, 30.0),
         rng.integers(0, 10, size=32)),
    ]
    cases = []
    for label, spec, y in inputs:
        model = _scaled_lenet(*spec)
        logits = np.asarray(model(X), dtype=np.float64)
        loss = float(losses.softmax_cross_entropy(logits, y)[0])
        k = logits.shape[1]
        present = len(np.unique(y))
        mistakes = {
            "the expected loss uses log10: the cross-entropy uses the natural log, expected = ln K = np.log(K)":
                (loss, float(np.log10(k))),
            "expected = 1/K is the probability of the true class at chance; the loss is -ln(1/K) = ln K":
                (loss, 1.0 / k),
            "the loss is summed over the batch: it is the *mean* over the N images (as in exercise 8.1)":
                (loss * len(y), float(np.log(k))),
        }
        if present != k:
            mistakes["K is counted from the labels of this batch; the number of classes is the model's output "
                     "size, logits.shape[1]"] = (loss, float(np.log(present)))
        # the student gets an identical model that has never run: a used one carries its layer caches,
        # which only add weight to the arguments (and, under the grader, unpickle package objects)
        fresh = _scaled_lenet(*spec)
        cases.append(Case(label, (fresh, X, y), expected=(loss, float(np.log(k))), mistakes=mistakes))
    return run_cases("8.5", "initial_loss_check", fn, cases, rtol=1e-4, atol=1e-6)
