"""Dilated causal 1D convolution (the building block of WaveNet).

*Causal*: output t sees only inputs at times <= t, never the future, which a
model that generates a sequence one step at a time needs.  *Dilated*: the K
taps are ``dilation`` steps apart, so a stack with dilations 1, 2, 4, 8 ...
sees an exponentially long past with few layers:

    y[n, f, t] = b[f] + sum_{c, k} w[f, c, k] * x[n, c, t - dilation * (K - 1 - k)]

with x taken as 0 before the start.  Built on the 2D layer of
:mod:`cnncourse.conv` by treating a sequence as a 1-pixel-high image and
padding only on the left (the past).
"""
from __future__ import annotations

from ._validate import as_numeric_array
from .backend import get_array_module
from .conv import conv_backward, conv_forward

__all__ = ["causal_conv1d_forward", "causal_conv1d_backward", "causal_receptive_field"]


def causal_conv1d_forward(x, w, b=None, *, dilation: int = 1):
    """Causal convolution of sequences.

    Args:
        x: ``(N, C, T)``; w: ``(F, C, K)``; b: ``(F,)`` or None; dilation >= 1.

    Returns:
        out ``(N, F, T)`` (same length: output t is aligned with input t), and a cache.
    """
    x = as_numeric_array(x, "input x (N, C, T)", ndim=3)
    w = as_numeric_array(w, "filter w (F, C, K)", ndim=3)
    xp = get_array_module(x, w, b)
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be an integer >= 1, got {dilation!r}")
    past = dilation * (w.shape[2] - 1)  # how far back the first tap reaches
    padded = xp.pad(x, ((0, 0), (0, 0), (past, 0)))  # zeros before the start, none after the end
    out, conv_cache = conv_forward(padded[:, :, None, :], w[:, :, None, :], b, dilation=(1, dilation))
    return out[:, :, 0, :], {"conv": conv_cache, "past": past}


def causal_conv1d_backward(dout, cache):
    """Gradients of :func:`causal_conv1d_forward`: ``(dx (N, C, T), dw (F, C, K), db)``."""
    dx, dw, db = conv_backward(dout[:, :, None, :], cache["conv"])
    return dx[:, :, 0, cache["past"]:], dw[:, :, 0, :], db


def causal_receptive_field(kernel_size: int, dilations) -> int:
    """How many past samples (including the current one) a stack of causal layers sees: ``1 + sum d (K - 1)``."""
    return 1 + sum(d * (kernel_size - 1) for d in dilations)
