"""im2col / col2im: turn a convolution into one matrix product.

A convolution layer computes, for every output pixel, a dot product between a
filter and the input patch under it.  ``im2col`` copies every patch into a
column of a matrix, so that all those dot products become one matrix product
with the filters; ``col2im`` is its adjoint (the backward pass): it adds every
column entry back onto the input pixel it was copied from, so pixels that lie
in several patches receive the sum of their gradients.

Column layout (used by :mod:`cnncourse.conv` and the GPU kernels)::

    cols.shape == (N, C*KH*KW, OH*OW)
    cols[n, (c*KH + i)*KW + j, oy*OW + ox] == xpad[n, c, oy*sy + i*dy, ox*sx + j*dx]

where ``xpad`` is ``x`` with ``pad`` zeros on each side.  Rows are ordered
``(c, i, j)`` like ``w.reshape(F, C*KH*KW)``, so the layer is
``w.reshape(F, -1) @ cols`` (a batched matrix product) and its result
``(N, F, OH*OW)`` is already the ``(N, F, OH, OW)`` output: no transpose.

Memory: the column matrix holds ``KH*KW`` copies of the input (for a 3x3
kernel, 9x the input), the price paid for a single fast matrix product.
"""
from __future__ import annotations

import importlib

import numpy as np

from . import threads
from .backend import get_array_module, is_gpu_array

__all__ = ["im2col", "col2im", "im2col_cpu", "col2im_cpu", "as_pair", "output_shape"]


def as_pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    """Return ``value`` (an int or a pair of ints) as a ``(vertical, horizontal)`` pair.

    Raises:
        TypeError: not an integer or a pair of integers.
        ValueError: a value below ``minimum``.
    """
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        what = "negative" if minimum == 0 else f"< {minimum}"
        raise ValueError(f"{name} must be >= {minimum}, got {value!r} ({what} {name} is not allowed)")
    return int(pair[0]), int(pair[1])


def output_shape(h: int, w: int, kh: int, kw: int, stride, pad, dilation) -> tuple[int, int]:
    """``(OH, OW)`` of a convolution, raising a ValueError when the kernel does not fit."""
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    ekh, ekw = dy * (kh - 1) + 1, dx * (kw - 1) + 1
    if ekh > h + 2 * py or ekw > w + 2 * px:
        raise ValueError(
            f"kernel {kh}x{kw} (dilation {dy}x{dx}: spans {ekh}x{ekw}) is larger than the padded input "
            f"{h + 2 * py}x{w + 2 * px} (input {h}x{w}, pad {py}x{px})"
        )
    return (h + 2 * py - ekh) // sy + 1, (w + 2 * px - ekw) // sx + 1


def _hyper(stride, pad, dilation):
    return (as_pair(stride, "stride", minimum=1), as_pair(pad, "pad", minimum=0),
            as_pair(dilation, "dilation", minimum=1))


def im2col_cpu(x, kh: int, kw: int, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """Copy every receptive field of ``x`` into a column (stride tricks, no loop).

    Args:
        x: images, shape ``(N, C, H, W)``.
        kh, kw: kernel height and width.
        stride, pad, dilation: ints or ``(vertical, horizontal)`` pairs; ``pad``
            zeros are added on *each* side.

    Returns:
        cols: shape ``(N, C*KH*KW, OH*OW)``, C-contiguous (layout in the module docstring).

    Works on CuPy arrays too (``as_strided`` exists there); the GPU kernel is faster.
    """
    xp = get_array_module(x)
    stride, pad, dilation = _hyper(stride, pad, dilation)
    n, c, h, w = x.shape
    oh, ow = output_shape(h, w, kh, kw, stride, pad, dilation)
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    if py or px:  # zeros + one slice copy: np.pad does the same with more overhead
        padded = xp.zeros((n, c, h + 2 * py, w + 2 * px), dtype=x.dtype)
        padded[:, :, py : py + h, px : px + w] = x
        x = padded
    s_n, s_c, s_h, s_w = x.strides
    # A 6-D view that *is* the column matrix, without copying: moving one kernel
    # tap is a step of dilation pixels, moving one output pixel a step of stride.
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, kh, kw, oh, ow),
        strides=(s_n, s_c, dy * s_h, dx * s_w, sy * s_h, sx * s_w),
    )
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    if xp is np:
        threads.copyto(cols, view)  # the one copy, split over the cores
    else:
        cols[...] = view
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im_cpu(cols, x_shape, kh: int, kw: int, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """Adjoint of :func:`im2col_cpu`: add every column entry back onto its pixel.

    Args:
        cols: shape ``(N, C*KH*KW, OH*OW)`` (e.g. the gradient of the columns).
        x_shape: ``(N, C, H, W)`` of the images the columns came from.
        kh, kw, stride, pad, dilation: as given to :func:`im2col_cpu`.

    Returns:
        dx: shape ``(N, C, H, W)``; entries falling on the padding are dropped.

    One vectorised add per kernel tap (``KH*KW`` of them): inside one tap the
    target pixels are all different, so plain ``+=`` is exact.
    """
    xp = get_array_module(cols)
    stride, pad, dilation = _hyper(stride, pad, dilation)
    n, c, h, w = (int(v) for v in x_shape)
    oh, ow = output_shape(h, w, kh, kw, stride, pad, dilation)
    if tuple(cols.shape) != (n, c * kh * kw, oh * ow):
        raise ValueError(f"cols must have shape {(n, c * kh * kw, oh * ow)} for x_shape {tuple(x_shape)}, "
                         f"got {tuple(cols.shape)}")
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    hp, wp = h + 2 * py, w + 2 * px
    dxpad = xp.zeros((n, c, hp, wp), dtype=cols.dtype)
    taps = cols.reshape(n, c, kh, kw, oh, ow)
    def add_taps(a, b):  # images a..b; all taps, so each thread makes one call
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dy, j * dx
                dxpad[a:b, :, y0 : y0 + sy * (oh - 1) + 1 : sy, x0 : x0 + sx * (ow - 1) + 1 : sx] += taps[a:b, :, i, j]

    if xp is np:
        threads.run_chunks(add_taps, n, cols.size)
    else:
        add_taps(0, n)
    return dxpad[:, :, py : py + h, px : px + w] if (py or px) else dxpad


def _gpu_or_none(name: str):
    """``cnncourse.kernels.<name>`` if that module provides it, else None (generic code is used)."""
    try:
        kernels = importlib.import_module(".kernels", __package__)
        return getattr(kernels, name)
    except (ImportError, AttributeError):
        return None


def im2col(x, kh: int, kw: int, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """:func:`im2col_cpu` for NumPy arrays, the CUDA kernel ``kernels.im2col_gpu`` for CuPy arrays."""
    if is_gpu_array(x):
        fn = _gpu_or_none("im2col_gpu")
        if fn is not None:
            return fn(x, kh, kw, stride=stride, pad=pad, dilation=dilation)
    return im2col_cpu(x, kh, kw, stride=stride, pad=pad, dilation=dilation)


def col2im(cols, x_shape, kh: int, kw: int, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """:func:`col2im_cpu` for NumPy arrays, the CUDA kernel ``kernels.col2im_gpu`` for CuPy arrays."""
    if is_gpu_array(cols):
        fn = _gpu_or_none("col2im_gpu")
        if fn is not None:
            return fn(cols, x_shape, kh, kw, stride=stride, pad=pad, dilation=dilation)
    return col2im_cpu(cols, x_shape, kh, kw, stride=stride, pad=pad, dilation=dilation)
