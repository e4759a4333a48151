"""Checks for notebook 07 (backpropagation through convolution).

Expected answers come from the package's reference code (``cnncourse.conv``,
``cnncourse.pool``, ``cnncourse.gradcheck``); each case also lists the answers
that the common mistakes of each exercise would give, so a failure can name
its likely cause.
"""
from __future__ import annotations

import numpy as np

from .. import conv, gradcheck, pool
from .core import Case, exercise, run_cases

NOTEBOOK = "07_backprop_through_convolution"


# --------------------------------------------------------------------------- 7.1 · 1D conv backward


def _conv1d_reference(dy, x, w):
    """Gradients of ``y = correlate(x, w, valid) + b``: (full convolution, valid correlation, sum)."""
    return np.convolve(dy, w, mode="full"), np.correlate(x, dy, mode="valid"), float(np.sum(dy))


@exercise("7.1", "conv1d_backward", notebook=NOTEBOOK)
def check_conv1d_backward(fn):
    """``fn(dy, x, w) -> (dx, dw, db)`` for ``y = correlate(x, w, mode="valid") + b`` (one channel, 1D)."""
    rng = np.random.default_rng(701)
    inputs = [
        ("x = [0 1 1 2 3 5 8 13], w = [2 -1 1], dy = [1 0 0 0 0 -1]",
         np.array([0, 1, 1, 2, 3, 5, 8, 13.0]), np.array([2.0, -1.0, 1.0]), np.array([1.0, 0, 0, 0, 0, -1.0])),
        ("random x (n=10), w (K=3)", rng.normal(size=10), rng.normal(size=3), None),
        ("random x (n=9), w (K=4)", rng.normal(size=9), rng.normal(size=4), None),
        ("x (n=5), w (K=5): a single output", rng.normal(size=5), rng.normal(size=5), None),
    ]
    cases = []
    for label, x, w, dy in inputs:
        if dy is None:
            dy = rng.normal(size=len(x) - len(w) + 1)
        dx, dw, db = _conv1d_reference(dy, x, w)
        cases.append(Case(label, (dy, x, w), expected=(dx, dw, db), mistakes={
            "dx is a correlation of dy with w (flipped kernel): the input gradient is the *full convolution* "
            "of dy with w, x̄_t = sum_i ȳ_i w_{t-i}": (np.correlate(dy, w, mode="full"), dw, db),
            "dw is reversed: w̄_j = sum_i ȳ_i x_{i+j} is a correlation of x with dy, not a convolution":
                (dx, dw[::-1], db),
            "db is missing: the bias feeds every output, so db = sum of dy": (dx, dw, 0.0),
        }))
    return run_cases("7.1", "conv1d_backward", fn, cases)


# --------------------------------------------------------------------------- 7.2 · multi-channel conv backward


def _conv2d_grads(dout, x, w, b, stride, pad):
    _, cache = conv.conv_forward(x, w, b, stride=stride, pad=pad)
    return conv.conv_backward(dout, cache)


def _conv2d_backward_loops(dout, x, w, stride, pad, *, step=None, crop=True):
    """Loop-based conv backward with the switches a mistake flips (defaults: the right gradients).

    ``step``: how far the window moves per output (the stride; a student who ignores the
    stride in the backward moves it by 1).  ``crop=False`` returns the gradient of the
    *padded* input, shape (N, C, H + 2p, W + 2p), as a student who forgets to cut the
    padding off does.
    """
    step = stride if step is None else step
    n_img, n_ch, h, wd = x.shape
    n_f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    oh, ow = dout.shape[2:]
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * step, i * step + kh)
            cols = slice(j * step, j * step + kw)
            win = xp[:, :, rows, cols]
            if win.shape[2:] != (kh, kw):  # a window stepped off the padded input: no such answer
                return None
            g = dout[:, :, i, j]  # (N, F)
            dxp[:, :, rows, cols] += np.einsum("nf,fchw->nchw", g, w)
            dw += np.einsum("nf,nchw->fchw", g, win)
    dx = dxp[:, :, pad : pad + h, pad : pad + wd] if crop else dxp
    return dx, dw, dout.sum(axis=(0, 2, 3))


def _per_image_overwrite(dout, x, w, b, stride, pad):
    """What a loop over images that assigns (``dw = ...``) instead of accumulating returns: the last image's share."""
    dx, _, _ = _conv2d_grads(dout, x, w, b, stride, pad)
    _, dw_last, db_last = _conv2d_grads(dout[-1:], x[-1:], w, b, stride, pad)
    return dx, dw_last, db_last


@exercise("7.2", "conv2d_backward", notebook=NOTEBOOK,
          forbidden=("cnncourse.conv.conv_backward", "cnncourse.conv.conv_backward_naive"))
def check_conv2d_backward(fn):
    """``fn(dout, x, w, *, stride=1, pad=0) -> (dx, dw, db)`` for a multi-channel conv layer with bias."""
    rng = np.random.default_rng(702)
    # (N, C, H, W), (F, KH, KW), stride, pad. Cases with F == C can tell a channel transpose apart.
    shapes = [
        ((2, 3, 6, 6), (3, 3, 3), 1, 0),
        ((2, 2, 5, 6), (4, 3, 3), 1, 1),
        ((3, 2, 7, 7), (2, 3, 2), 2, 1),
        ((1, 1, 5, 5), (1, 3, 3), 1, 0),
    ]
    cases = []
    for (n, c, h, wd), (f, kh, kw), stride, pad in shapes:
        x = rng.normal(size=(n, c, h, wd))
        w = rng.normal(size=(f, c, kh, kw))
        b = rng.normal(size=f)
        out, _ = conv.conv_forward(x, w, b, stride=stride, pad=pad)
        dout = rng.normal(size=out.shape)
        dx, dw, db = _conv2d_grads(dout, x, w, b, stride, pad)
        flipped_dx = _conv2d_grads(dout, x, w[:, :, ::-1, ::-1].copy(), b, stride, pad)[0]
        mistakes = {
            "dx uses a correlation with w (flipped kernel): each input channel collects x̄_j = sum_i ȳ_i * w_ij, "
            "a *full convolution* of dout with the filter": (flipped_dx, dw, db),
            "gradient not summed over the batch: dw and db must add up the contributions of every image "
            "(use +=, not =, inside a loop over n)": _per_image_overwrite(dout, x, w, b, stride, pad),
            "db not summed over the batch: db has one value per filter, the sum of dout over N, OH and OW":
                (dx, dw, dout.sum(axis=(2, 3))),
            "dw averaged over the batch instead of summed (the loss's 1/N is already inside dout)":
                (dx, dw / n, db / n),
        }
        if pad > 0:
            mistakes["the padding is not cropped off dx: the backward pass works on the padded input, so cut "
                     "`pad` rows and columns from each side at the end (dx = dx_pad[:, :, p:-p, p:-p]) to get "
                     "the shape of x"] = _conv2d_backward_loops(dout, x, w, stride, pad, crop=False)
        if stride > 1:
            ignored = _conv2d_backward_loops(dout, x, w, stride, pad, step=1)
            if ignored is not None:
                mistakes["the stride is ignored in the backward pass: output (i, j) saw the window starting at "
                         "(i*stride, j*stride), so its gradient goes back there, not to (i, j)"] = ignored
        if f == c:
            mistakes["missing transpose of the filter bank: input channel j collects from every filter i "
                     "through w[i, j] (in matrix form dcols = W.T @ dout), not through w[j, i]"] = (
                _conv2d_grads(dout, x, w.transpose(1, 0, 2, 3).copy(), b, stride, pad)[0], dw, db)
            mistakes["missing transpose in dw: dw[i, j] pairs dout channel i with input channel j "
                     "(in matrix form dW = dout @ cols.T)"] = (dx, dw.transpose(1, 0, 2, 3), db)
        label = f"x {(n, c, h, wd)}, w {(f, c, kh, kw)}, stride={stride}, pad={pad}"
        cases.append(Case(label, (dout, x, w), kwargs=dict(stride=stride, pad=pad), expected=(dx, dw, db),
                          mistakes=mistakes))
    return run_cases("7.2", "conv2d_backward", fn, cases, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- 7.3 · max-pool backward


def _pool_inputs(rng):
    # Integers make ties likely; the first case has a tie planted in every window.
    tie = np.array([[[[3.0, 3.0, 1.0, 0.0], [1.0, 2.0, 5.0, 5.0],
                      [4.0, 0.0, 2.0, 2.0], [0.0, 4.0, 2.0, 2.0]]]])
    yield "one 4x4 channel with a tie in every window", tie, 2
    yield "x (2, 3, 4, 6), integer values (ties)", rng.integers(0, 4, size=(2, 3, 4, 6)).astype(float), 2
    yield "x (2, 2, 6, 6), size=3", rng.normal(size=(2, 2, 6, 6)), 3
    yield "x (1, 2, 5, 7), size=2 (last row and column in no window)", rng.normal(size=(1, 2, 5, 7)), 2


def _wrong_pool_grad(dout, x, size, rule):
    """Max-pool gradients of common mistakes, window by window (non-overlapping, stride = size).

    rule: "all" (dout to every element), "average" (dout / size² to every element),
    "every max" (dout to every element equal to the maximum), "last max" (ties to the last one).
    """
    dx = np.zeros_like(x)
    n_img, n_ch, oh, ow = dout.shape
    for n, c, i, j in np.ndindex(n_img, n_ch, oh, ow):
        rows, cols = slice(i * size, (i + 1) * size), slice(j * size, (j + 1) * size)
        win, g = x[n, c, rows, cols], dout[n, c, i, j]
        if rule == "all":
            dx[n, c, rows, cols] = g
        elif rule == "average":
            dx[n, c, rows, cols] = g / size**2
        elif rule == "every max":
            dx[n, c, rows, cols] = g * (win == win.max())
        else:  # "last max"
            k = win.size - 1 - int(np.argmax(win.ravel()[::-1]))
            dx[n, c, rows, cols].flat[k] = g
    return dx


@exercise("7.3", "max_pool_backward_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.pool.max_pool_backward",))
def check_max_pool_backward_exercise(fn):
    """``fn(dout, x, size=2) -> dx``: max pooling with non-overlapping ``size x size`` windows (stride = size)."""
    rng = np.random.default_rng(703)
    cases = []
    for label, x, size in _pool_inputs(rng):
        out, cache = pool.max_pool_forward(x, size=size)
        dout = np.round(rng.normal(size=out.shape), 2) + 0.0
        dx = pool.max_pool_backward(dout, cache)
        cases.append(Case(label, (dout, x), kwargs=dict(size=size), expected=dx, mistakes={
            "the gradient is spread to all elements of the window: only the maximum affects the output, "
            "so only the arg-max gets dout": _wrong_pool_grad(dout, x, size, "all"),
            "the gradient is spread equally (dout / size²): that is average pooling's backward, "
            "max pooling routes it to the arg-max": _wrong_pool_grad(dout, x, size, "average"),
            "ties: every element equal to the maximum gets dout; send it to one of them only "
            "(the first in row-major order, as np.argmax and PyTorch do)": _wrong_pool_grad(dout, x, size, "every max"),
            "ties go to the last maximal element; the course (and np.argmax) picks the first in row-major order":
                _wrong_pool_grad(dout, x, size, "last max"),
        }))
    return run_cases("7.3", "max_pool_backward_exercise", fn, cases)


# --------------------------------------------------------------------------- 7.4 · numerical gradient


def _f_sin_square(x):
    return float(np.sum(np.sin(x) * x**2))


def _f_logsumexp(x):
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


def _f_quartic(x):
    return float(np.sum(x**4) / 4 + np.sum(x[..., :-1] * x[..., 1:]))


def _forward_difference(f, x, h):
    grad = np.zeros_like(x)
    base = f(x)
    for idx in np.ndindex(*x.shape):
        xp = x.copy()
        xp[idx] += h
        grad[idx] = (f(xp) - base) / h
    return grad


@exercise("7.4", "gradient_check", notebook=NOTEBOOK,
          forbidden=("cnncourse.gradcheck.numerical_gradient", "cnncourse.gradcheck.grad_check"))
def check_gradient_check(fn):
    """``fn(f, x, h=1e-5) -> grad``: centred-difference gradient of a scalar function ``f`` at ``x``."""
    rng = np.random.default_rng(704)
    inputs = [
        ("f(x) = sum(sin(x) x²), x of shape (5,)", _f_sin_square, rng.normal(size=5), 1e-5),
        ("f(x) = log sum exp(x), x of shape (2, 3)", _f_logsumexp, rng.normal(size=(2, 3)), 1e-5),
        ("f(x) = sum(x⁴)/4 + sum(x_i x_(i+1)), x of shape (3, 4), h=1e-3", _f_quartic, rng.normal(size=(3, 4)), 1e-3),
    ]
    cases = []
    for label, f, x, h in inputs:
        expected = gradcheck.numerical_gradient(f, x.copy(), h=h)
        cases.append(Case(label, (f, x), kwargs=dict(h=h), expected=expected, mistakes={
            "forward differences (f(x+h) - f(x)) / h: their error is O(h); use centred differences "
            "(f(x+h) - f(x-h)) / 2h, error O(h²)": _forward_difference(f, x, h),
            "the centred difference is divided by h instead of 2h": 2 * expected,
        }))
        if h != 1e-5:
            cases[-1].mistakes["the step h passed in is ignored (a fixed 1e-5 is used)"] = (
                gradcheck.numerical_gradient(f, x.copy(), h=1e-5))
    def tolerant(f, x, **kwargs):
        # Nudging in place (x[k] += h; ...; x[k] -= h) is a valid method, but x + h - h is not always x
        # in floating point: an input left within a few rounding errors of where it was is put back, so
        # only a real change is reported as "modified its input in place".
        before = np.array(x, copy=True)
        out = fn(f, x, **kwargs)
        if isinstance(x, np.ndarray) and x.shape == before.shape and not np.array_equal(x, before):
            step = abs(kwargs.get("h", 1e-5))
            rounding = 16 * np.finfo(float).eps * (np.abs(before) + 2 * step)
            if np.all(np.abs(x - before) <= rounding):
                x[...] = before
        return out

    # Tolerance: centred differences of these smooth functions agree with each other (and with the exact
    # gradient) far better than 1e-7, while forward differences are off by about h/2 * f''.
    return run_cases("7.4", "gradient_check", tolerant if callable(fn) else fn, cases, rtol=1e-7, atol=1e-9)
