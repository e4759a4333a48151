"""Softmax, log-softmax and the softmax cross-entropy loss for k classes.

The network's last layer gives one score (logit) ``z_k`` per class; softmax
turns them into probabilities ``p_k = exp(z_k) / sum_j exp(z_j)`` and the
cross-entropy of the true class ``y`` is ``-log p_y``.  Its gradient is the
neat ``p - onehot(y)``.

Numerical stability: ``exp(1000)`` overflows, so every function subtracts the
row maximum first (softmax is unchanged by adding a constant to all logits),
and the loss goes through ``log_softmax = z - max - log(sum exp(z - max))``
instead of ``log(softmax(z))``, which would give ``log(0) = -inf``.
"""
from __future__ import annotations

import numpy as np

from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy"]


def _check_logits(logits, ndim=None):
    logits = as_numeric_array(logits, "logits", ndim=ndim)
    xp = get_array_module(logits)
    logits = logits.astype(float_dtype(logits), copy=False)
    if not bool(xp.isfinite(logits).all()):
        bad = xp.argwhere(~xp.isfinite(logits))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(
            f"logits contain NaN or inf (first at index {where}: {logits[where]}); check the layers before the loss"
        )
    return logits


def log_softmax(logits, *, axis: int = -1):
    """``log softmax(z)_k = z_k - max(z) - log(sum_j exp(z_j - max(z)))``, stable for huge logits.

    Args:
        logits: scores, shape ``(N, K)`` (any shape; classes along ``axis``).
        axis: the class axis.

    Returns:
        Log-probabilities, same shape; float32 for float32 input, else float64.
    """
    return _log_softmax(_check_logits(logits), axis)


def _log_softmax(logits, axis):
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, *, axis: int = -1):
    """``softmax(z)_k = exp(z_k - max(z)) / sum_j exp(z_j - max(z))``: probabilities summing to 1.

    Args:
        logits: scores, shape ``(N, K)`` (any shape; classes along ``axis``).
        axis: the class axis.

    Returns:
        Probabilities, same shape; float32 for float32 input, else float64.
    """
    logits = _check_logits(logits)
    xp = get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _check_labels(y, N, K, xp):
    if not hasattr(y, "dtype"):  # a list: put it where the logits are
        y = np.asarray(y)
    else:
        get_array_module(y, xp.empty(0))  # raises on a NumPy/CuPy mix
    if y.dtype.kind not in "iuf":  # bool, str, object ...
        raise ValueError(f"labels y must be integer class indices, got dtype {y.dtype}")
    y = xp.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels y must be 1-D, shape (N,), got shape {tuple(y.shape)}")
    if y.shape[0] != N:
        raise ValueError(f"batch size mismatch: logits have N = {N} rows but labels y have {y.shape[0]} entries")
    if y.dtype.kind == "f":
        fractional = ~(xp.isfinite(y) & (y == xp.floor(y)))
        if bool(fractional.any()):
            i = int(xp.flatnonzero(fractional)[0])
            raise ValueError(f"labels y must be integer class indices; y[{i}] = {float(y[i])} is not a whole number")
    outside = (y < 0) | (y >= K)
    if bool(outside.any()):
        i = int(xp.flatnonzero(outside)[0])
        raise ValueError(f"labels y must be in 0..{K - 1} for K = {K} classes; y[{i}] = {y[i].item()} is out of range")
    return y.astype(np.int64)


def softmax_cross_entropy(logits, y):
    """Mean softmax cross-entropy over a batch and its gradient with respect to the logits.

    ``loss = -1/N * sum_n log softmax(logits_n)[y_n]`` and
    ``dlogits = (softmax(logits) - onehot(y)) / N``.

    Args:
        logits: class scores, shape ``(N, K)``; finite (stable even in the thousands).
        y: true classes, shape ``(N,)``, integers in ``0..K-1`` (whole-number
            floats are accepted).

    Returns:
        loss: a Python float.
        dlogits: shape ``(N, K)``; float32 for float32 logits, else float64.

    Raises:
        ValueError: NaN/inf in ``logits``, non-integer labels, labels out of
            range, or a batch-size mismatch.
    """
    logits = _check_logits(logits, ndim=2)
    N, K = logits.shape
    xp = get_array_module(logits)
    y = _check_labels(y, N, K, xp)
    logp = _log_softmax(logits, axis=1)
    rows = xp.arange(N)
    loss = 0.0 - float(logp[rows, y].mean(dtype=np.float64))  # 0.0 - ...: a perfect fit prints 0.0, not -0.0
    dlogits = xp.exp(logp)
    dlogits[rows, y] -= 1
    dlogits /= N
    return loss, dlogits
