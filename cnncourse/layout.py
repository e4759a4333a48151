"""Memory layout of image batches: channels-first (NCHW) or channels-last (NHWC) in memory.

Every layer takes and returns arrays of *shape* ``(N, C, H, W)``.  How those
values sit in memory is a separate choice.  The CPU convolution computes its
output as an ``(N*OH*OW, F)`` matrix, which is the channels-last order
``(N, OH, OW, F)``; the next convolution wants its input channels-last too.
Copying the output into NCHW order and back again would cost two transposes
per layer (measured: up to a fifth of a layer's time), so the fast paths
return a *view* of shape ``(N, F, OH, OW)`` onto the channels-last memory,
and element-wise layers and max pooling keep that order.  PyTorch calls the
same idea ``torch.channels_last``.  Values, shapes and indexing are the same
either way; only ``a.strides`` tells them apart.
"""
from __future__ import annotations

import numpy as np

from . import threads

__all__ = ["is_channels_last", "to_channels_last", "to_channels_first", "empty", "match"]


def is_channels_last(a) -> bool:
    """True for a 4-D array ``(N, C, H, W)`` whose channel axis has the smallest stride (NHWC memory order)."""
    if getattr(a, "ndim", 0) != 4 or a.shape[1] < 2 or a.shape[2] * a.shape[3] < 2:
        return False
    s_c, s_h, s_w = (abs(s) for s in a.strides[1:])
    return s_c < s_w <= s_h


def to_channels_last(a):
    """``(N, C, H, W) -> (N, H, W, C)``, C-contiguous: a free view when ``a`` is channels-last already, else a copy."""
    last = a.transpose(0, 2, 3, 1)
    if last.flags.c_contiguous:
        return last
    out = np.empty(last.shape, dtype=a.dtype)
    threads.copyto(out, last)
    return out


def to_channels_first(a):
    """``a`` ``(N, C, H, W)`` as a C-contiguous (NCHW) array: ``a`` itself when it already is, else a copy."""
    if a.flags.c_contiguous:
        return a
    out = np.empty(a.shape, dtype=a.dtype)
    threads.copyto(out, a)
    return out


def empty(shape, dtype, *, channels_last: bool):
    """An uninitialised ``(N, C, H, W)`` NumPy array, stored channels-last when asked."""
    n, c, h, w = shape
    if channels_last:
        return np.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    return np.empty(shape, dtype=dtype)


def match(a, like):
    """``a`` stored in the memory order of ``like`` (both ``(N, C, H, W)``): ``a`` itself when it already is, else a copy.

    A backward pass returns the input gradient in the input's order, so the
    element-wise products with the masks cached by the layers before it
    (ReLU, max pooling) read both arrays in the same order.
    """
    if not is_channels_last(like):
        return to_channels_first(a)
    if is_channels_last(a):
        return a
    out = empty(a.shape, a.dtype, channels_last=True)
    threads.copyto(out, a)
    return out
