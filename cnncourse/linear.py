"""Fully connected (dense, affine) layer: forward/backward pair.

``out = x_flat @ w + b`` where each sample of ``x`` is flattened into a row of
``D`` features (``D = C*H*W`` after a conv stack).  Every output unit sees
every input, which is why dense layers on images are so expensive (notebook 04
counts the parameters).
"""
from __future__ import annotations

import math

from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x, w, b=None):
    """Affine layer: ``out = x.reshape(N, D) @ w + b``.

    Args:
        x: input, shape ``(N, d_1, ..., d_k)``, e.g. ``(N, C, H, W)``; each
            sample is flattened to ``D = d_1 * ... * d_k`` features.
        w: weights, shape ``(D, M)``.
        b: bias, shape ``(M,)``, or None for no bias.

    Returns:
        out: shape ``(N, M)``; float32 if all inputs are float32, else float64.
        cache: ``(x_flat, x_shape, w, has_bias)`` with ``x_flat`` of shape ``(N, D)``.

    Raises:
        ValueError: ``x`` with fewer than 2 dimensions, ``w`` not 2-D, ``D``
            not matching the rows of ``w``, or ``b`` not of shape ``(M,)``.
    """
    x = as_numeric_array(x, "x")
    if x.ndim < 2:
        raise ValueError(
            f"x must have a batch axis first, shape (N, ...), got a {x.ndim}-D array of shape {tuple(x.shape)}"
        )
    w = as_numeric_array(w, "weights w", ndim=2)
    if b is not None:
        b = as_numeric_array(b, "bias b")
    xp = get_array_module(x, w, b)
    N, D = x.shape[0], math.prod(x.shape[1:])
    if w.shape[0] != D:
        raise ValueError(
            f"x has D = {D} features per sample (shape {tuple(x.shape)}) but w has {w.shape[0]} rows; "
            f"w must have shape (D, M) = ({D}, M)"
        )
    M = w.shape[1]
    if b is not None and tuple(b.shape) != (M,):
        raise ValueError(f"bias b must have shape (M,) = ({M},) to match w {tuple(w.shape)}, got {tuple(b.shape)}")
    dtype = float_dtype(x, w, b)
    x_flat = x.reshape(N, D).astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    out = x_flat @ w
    if b is not None:
        out += b.astype(dtype, copy=False)
    return out, (x_flat, x.shape, w, b is not None)


def linear_backward(dout, cache):
    """Gradients of the affine layer.

    With ``out = X w + b`` (X the flattened input):
    ``dX = dout w^T``, ``dw = X^T dout``, ``db = sum over the batch of dout``.

    Args:
        dout: upstream gradient, shape ``(N, M)``.
        cache: from :func:`linear_forward`.

    Returns:
        dx: shape of the original ``x`` (``(N, C, H, W)`` stays 4-D).
        dw: shape ``(D, M)``.
        db: shape ``(M,)``, or None when the forward pass had no bias.
    """
    x_flat, x_shape, w, has_bias = cache
    dout = as_numeric_array(dout, "dout", ndim=2)
    get_array_module(dout, w)  # raises on a NumPy/CuPy mix
    expected = (x_flat.shape[0], w.shape[1])
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout must have the shape of the layer output (N, M) = {expected}, got {tuple(dout.shape)}")
    dout = dout.astype(w.dtype, copy=False)
    dx = (dout @ w.T).reshape(x_shape)
    dw = x_flat.T @ dout
    db = dout.sum(axis=0) if has_bias else None
    return dx, dw, db
