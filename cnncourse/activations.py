"""Element-wise nonlinearities: ReLU and Leaky ReLU, forward/backward pairs.

Why a nonlinearity at all: a stack of linear maps (convolutions included) is
one linear map, so without it depth buys nothing.  ReLU, ``max(0, x)``, is
the simplest choice that works: cheap, and its gradient is exactly 1 or 0
("sparse gradients").  Units stuck at negative inputs get no gradient at all
("dead ReLUs"); Leaky ReLU keeps a small slope there.

At ``x == 0`` both functions use the gradient of the left piece (0 for ReLU,
``slope`` for Leaky ReLU), as PyTorch does.
"""
from __future__ import annotations

import math
import numbers

from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module, is_gpu_array
from .kernels import relu_backward_gpu, relu_forward_gpu

__all__ = ["relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward"]


def _check_dout(dout, shape):
    dout = as_numeric_array(dout, "dout")
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout must have the shape of the layer output {tuple(shape)}, got {tuple(dout.shape)}")
    return dout


def relu_forward(x):
    """ReLU: ``out = max(0, x)`` element-wise.

    Args:
        x: input of any shape, e.g. ``(N, C, H, W)``.

    Returns:
        out: same shape; float32 for float32 input, else float64.
        cache: ``positive``, the boolean mask ``x > 0`` (all backward needs).
    """
    x = as_numeric_array(x, "x")
    xp = get_array_module(x)
    x = x.astype(float_dtype(x), copy=False)
    if is_gpu_array(x):  # CUDA kernel writes out and the mask in one pass
        return relu_forward_gpu(x, return_mask=True)
    positive = x > 0
    return xp.maximum(x, 0), positive


def relu_backward(dout, cache):
    """Gradient of ReLU: ``dx = dout`` where ``x > 0``, else 0.

    Args:
        dout: upstream gradient, shape of the forward output.
        cache: the mask from :func:`relu_forward`.

    Returns:
        dx: same shape as ``dout``.
    """
    positive = cache
    dout = _check_dout(dout, positive.shape)
    get_array_module(dout, positive)  # raises on a NumPy/CuPy mix
    dout = dout.astype(float_dtype(dout), copy=False)
    if is_gpu_array(dout):
        return relu_backward_gpu(dout, positive)
    return dout * positive


def leaky_relu_forward(x, *, slope: float = 0.01):
    """Leaky ReLU: ``out = x`` where ``x > 0``, else ``slope * x``.

    Args:
        x: input of any shape.
        slope: gradient for negative inputs (PyTorch's ``negative_slope``), a
            finite number; 0 gives plain ReLU.

    Returns:
        out: same shape; float32 for float32 input, else float64.
        cache: ``(positive, slope)`` with ``positive`` the mask ``x > 0``.
    """
    if not isinstance(slope, numbers.Real) or isinstance(slope, bool):
        raise TypeError(f"slope must be a real number, got {slope!r}")
    if not math.isfinite(slope):
        raise ValueError(f"slope must be finite, got {slope!r}")
    x = as_numeric_array(x, "x")
    xp = get_array_module(x)
    dtype = float_dtype(x)
    x = x.astype(dtype, copy=False)
    positive = x > 0
    return xp.where(positive, x, x * dtype.type(slope)), (positive, float(slope))


def leaky_relu_backward(dout, cache):
    """Gradient of Leaky ReLU: ``dx = dout`` where ``x > 0``, else ``slope * dout``.

    Args:
        dout: upstream gradient, shape of the forward output.
        cache: from :func:`leaky_relu_forward`.

    Returns:
        dx: same shape as ``dout``.
    """
    positive, slope = cache
    dout = _check_dout(dout, positive.shape)
    xp = get_array_module(dout, positive)
    dtype = float_dtype(dout)
    dout = dout.astype(dtype, copy=False)
    return xp.where(positive, dout, dout * dtype.type(slope))
