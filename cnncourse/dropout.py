"""Inverted dropout: forward/backward pair.

During training each activation is kept with probability ``r`` (the lecture
notes' *keep probability*) and zeroed otherwise; survivors are divided by
``r`` so the expected activation is unchanged::

    out = x * mask / r,    mask_i ~ Bernoulli(r),    E[out] = x.

At test time the layer is the identity (that is what the 1/r scaling buys:
nothing to rescale at inference).  As in PyTorch, the argument is ``p``, the
*drop* probability: ``p = 1 - r``.  ``p=0.2`` keeps 80% of the activations.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, *, p, training: bool = True, rng=None):
    """Inverted dropout with drop probability ``p`` (keep probability ``r = 1 - p``).

    Args:
        x: input of any shape, e.g. ``(N, C, H, W)`` or ``(N, D)``.
        p: probability of *dropping* each element, ``0 <= p < 1``.
        training: False makes the layer the identity (evaluation mode).
        rng: a ``numpy.random.Generator`` drawing the mask (seed it for
            reproducible results).  None: a fresh unseeded generator (for a
            CuPy ``x``, CuPy's global generator on the GPU).  For a CuPy ``x``
            with a generator the mask is drawn on the CPU and moved.

    Returns:
        out: same shape as ``x``; float32 for float32 input, else float64.
        cache: ``scaled_mask``, the array ``mask / r`` (0 or 1/r per element)
        that backward multiplies by -- the same mask as forward, never a new
        draw; None in evaluation mode or when ``p == 0``.

    Raises:
        ValueError: ``p`` outside ``[0, 1)``.
        TypeError: ``rng`` not a ``numpy.random.Generator``.
    """
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"dropout p (the drop probability) must be a number, got {p!r}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout p (the drop probability) must be in [0, 1), got {p!r}; keep probability r = 1 - p")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    x = as_numeric_array(x, "x")
    xp = get_array_module(x)
    dtype = float_dtype(x)
    x = x.astype(dtype, copy=False)
    if not training or p == 0:
        return x, None
    keep = 1.0 - p
    if xp is not np and rng is None:
        uniform = xp.random.random(x.shape, dtype=dtype)
    else:
        rng = np.random.default_rng() if rng is None else rng
        uniform = xp.asarray(rng.random(x.shape, dtype=dtype))
    scaled_mask = (uniform < keep) * dtype.type(1.0 / keep)  # P(u < r) = r for u ~ U[0, 1)
    return x * scaled_mask, scaled_mask


def dropout_backward(dout, cache):
    """Gradient of dropout: ``dx = dout * mask / r`` with the forward pass's mask.

    Args:
        dout: upstream gradient, shape of the forward output.
        cache: from :func:`dropout_forward` (None in evaluation mode).

    Returns:
        dx: same shape as ``dout``.
    """
    scaled_mask = cache
    dout = as_numeric_array(dout, "dout")
    if scaled_mask is None:  # evaluation mode or p == 0: the identity
        return dout.astype(float_dtype(dout), copy=False)
    get_array_module(dout, scaled_mask)  # raises on a NumPy/CuPy mix
    if tuple(dout.shape) != tuple(scaled_mask.shape):
        raise ValueError(
            f"dout must have the shape of the layer output {tuple(scaled_mask.shape)}, got {tuple(dout.shape)}"
        )
    return dout.astype(scaled_mask.dtype, copy=False) * scaled_mask
