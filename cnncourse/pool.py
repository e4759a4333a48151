"""Max, average and global average pooling: forward/backward pairs, channels-first.

Pooling slides a ``KH x KW`` window over each channel separately (stride
``SH, SW``) and keeps one number per window: the largest (max pooling) or the
mean (average pooling).  It has no parameters.  With ``pad`` rows/columns
added on each side the output is ``OH = (H + 2*PH - KH) // SH + 1`` (and the
same for ``OW``), rounding down as PyTorch does by default.

Backward, in one line each (notebook 07):

* max pooling routes each upstream gradient to the arg-max of its window (the
  "switch" remembered by the forward pass); all other inputs get zero;
* average pooling spreads each upstream gradient equally, ``1 / (KH*KW)`` to
  every input of the window.

Where windows overlap (stride < size) an input receives the sum of the
gradients of every window it belongs to.

Implementation: every window is a view ``(N, C, OH, OW, KH, KW)`` of the
(padded) input -- a free reshape in the common non-overlapping case, stride
tricks otherwise -- and the reductions loop over the ``KH*KW`` window
positions, each step one vectorised operation over all windows at once.
There is no Python loop over output pixels.
"""
from __future__ import annotations

import numpy as np

from . import layout
from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module, is_gpu_array
from .kernels import avg_pool_backward_gpu, avg_pool_forward_gpu, max_pool_backward_gpu, max_pool_forward_gpu

__all__ = [
    "pool_output_size",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "adaptive_avg_pool_forward",
    "adaptive_avg_pool_backward",
]


def _pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    """``2 -> (2, 2)``, ``(2, 3) -> (2, 3)``; a named error for anything else."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"pool {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"pool {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def pool_output_size(n: int, size: int, stride: int, pad: int = 0) -> int:
    """Output length along one axis: ``(n + 2*pad - size) // stride + 1``."""
    return (n + 2 * pad - size) // stride + 1


def _out_hw(H, W, size, stride, pad):
    return tuple(pool_output_size(n, k, s, p) for n, k, s, p in zip((H, W), size, stride, pad))


def _check_pool_args(x, size, stride, pad):
    """Validate ``x`` and the hyper-parameters; return the array and ``(size, stride, pad)`` pairs."""
    x = as_numeric_array(x, "x", ndim=4)
    kh, kw = _pair(size, "size", minimum=1)
    sh, sw = _pair(size if stride is None else stride, "stride", minimum=1)
    ph, pw = _pair(pad, "pad", minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        # More padding than half a window would give windows made only of padding.
        raise ValueError(f"pool pad must be at most half the window size, got pad={(ph, pw)} for size={(kh, kw)}")
    H, W = x.shape[2], x.shape[3]
    if kh > H + 2 * ph or kw > W + 2 * pw:
        raise ValueError(
            f"pool window {kh}x{kw} is larger than the padded input {H + 2 * ph}x{W + 2 * pw} "
            f"(x has H, W = {H}, {W} and pad={(ph, pw)})"
        )
    return x, (kh, kw), (sh, sw), (ph, pw)


def _pad(x, pad, value):
    ph, pw = pad
    if ph == 0 and pw == 0:
        return x
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=value)


def _windows(a, size, stride, out_hw):
    """All pooling windows of ``a`` (N, C, H, W) as a view of shape (N, C, OH, OW, KH, KW).

    Non-overlapping windows that tile ``a`` exactly are a plain reshape; any
    other geometry uses ``as_strided`` (window (oy, ox) starts at row
    ``oy*SH``, column ``ox*SW``).  Both are views: writing into them writes
    into ``a``, which is how the backward passes scatter gradients.
    """
    xp = get_array_module(a)
    N, C, H, W = a.shape
    (kh, kw), (sh, sw), (OH, OW) = size, stride, out_hw
    if (sh, sw) == (kh, kw) and (OH * kh, OW * kw) == (H, W) and a.flags.c_contiguous:
        return a.reshape(N, C, OH, kh, OW, kw).transpose(0, 1, 2, 4, 3, 5)
    s = a.strides
    return xp.lib.stride_tricks.as_strided(
        a, shape=(N, C, OH, OW, kh, kw), strides=(s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3])
    )


def _positions(size):
    """Window positions in row-major order: (0, 0), (0, 1), ..., (KH-1, KW-1)."""
    kh, kw = size
    return [(i, j) for i in range(kh) for j in range(kw)]


def _scatter(dout, size, stride, pad, x_shape, dtype, grad_at, *, channels_last=False):
    """dx: window position k = (i, j) of every window receives ``grad_at(k)``.

    ``grad_at(k)`` is the gradient each window sends to its k-th element
    (row-major), shape (N, C, OH, OW); overlapping windows accumulate.
    """
    xp = get_array_module(dout)
    (kh, kw), (sh, sw), (ph, pw) = size, stride, pad
    N, C, H, W = x_shape
    OH, OW = dout.shape[2:]
    tiles = (sh, sw) == (kh, kw) and (OH * kh, OW * kw) == (H, W) and (ph, pw) == (0, 0)
    padded_shape = (N, C, H + 2 * ph, W + 2 * pw)
    channels_last = channels_last and xp is np
    if channels_last:  # the forward input's memory order (cnncourse.layout)
        dx = layout.empty(padded_shape, dtype, channels_last=True)
        if not tiles:
            dx.fill(0)
    else:  # where the windows tile the input exactly every element is written once: no zero-fill needed
        dx = (xp.empty if tiles else xp.zeros)(padded_shape, dtype=dtype)
    win = _windows(dx, size, stride, (OH, OW))
    overlapping = sh < kh or sw < kw
    for k, (i, j) in enumerate(_positions(size)):
        if overlapping:  # an input can sit in several windows: accumulate
            win[..., i, j] += grad_at(k)
        else:
            win[..., i, j] = grad_at(k)
    if (ph, pw) == (0, 0):
        return dx
    inside = dx[:, :, ph : ph + H, pw : pw + W]
    return inside if channels_last else xp.ascontiguousarray(inside)


def _check_dout(dout, cache_out_shape, name):
    dout = as_numeric_array(dout, "dout", ndim=4)
    if tuple(dout.shape) != tuple(cache_out_shape):
        raise ValueError(
            f"dout must have the shape of the {name} output {tuple(cache_out_shape)}, got {tuple(dout.shape)}"
        )
    return dout


# ----------------------------------------------------------------------------- max pooling


def max_pool_forward(x, *, size=2, stride=None, pad=0):
    """Max pooling: the largest value of each ``KH x KW`` window, channel by channel.

    ``out[n, c, oy, ox] = max over (i, j) of xpad[n, c, oy*SH + i, ox*SW + j]``,
    where padding counts as ``-inf`` (it never wins), as in
    ``torch.nn.functional.max_pool2d``.

    Args:
        x: input, shape ``(N, C, H, W)``.
        size: window size ``KH, KW`` (an int or a pair).
        stride: step between windows ``SH, SW``; defaults to ``size``
            (non-overlapping windows).
        pad: rows/columns of ``-inf`` added on each side, at most half the window.

    Returns:
        out: shape ``(N, C, OH, OW)``, float32 for float32 input, else float64.
        cache: ``(x_shape, dtype, argmax, size, stride, pad)``, where ``argmax``
        (N, C, OH, OW) holds the row-major position ``i*KW + j`` of the winner
        inside each window, and ``size``, ``stride``, ``pad`` are pairs.

    Ties: when several elements of a window share the maximum, exactly one of
    them is the arg-max -- the first in row-major window order (top row first,
    left to right) -- so the gradient is never duplicated.  PyTorch's CPU
    kernel makes the same choice (tested); other libraries and GPU kernels
    may pick a different winner among ties.  A NaN propagates: a window
    holding one gives NaN, and its arg-max is the first NaN (as
    ``numpy.argmax`` and PyTorch), so the gradient goes there.

    Raises:
        ValueError: ``x`` not 4-D, size/stride < 1, pad negative or more than
            half the window, or a window larger than the padded input.
    """
    x, size, stride, pad = _check_pool_args(x, size, stride, pad)
    xp = get_array_module(x)
    dtype = float_dtype(x)
    x = x.astype(dtype, copy=False)
    if is_gpu_array(x):  # CUDA kernel (one thread per output), same cache contract
        out, argmax = max_pool_forward_gpu(x, size=size, stride=stride, pad=pad)
        return out, (x.shape, dtype, argmax, size, stride, pad)
    H, W = x.shape[2:]
    out_hw = _out_hw(H, W, size, stride, pad)
    win = _windows(_pad(x, pad, -np.inf), size, stride, out_hw)
    # One contiguous slab per window position, (KH*KW, N, C, OH, OW): the loop
    # below then runs over long contiguous arrays (about 3x faster than
    # reducing the strided view in place).  A channels-last input gets
    # channels-last slabs (N, OH, OW, C): the copy reads runs of C values and
    # the output keeps the input's memory order (see cnncourse.layout).
    channels_last = xp is np and layout.is_channels_last(x)
    order = (4, 5, 0, 2, 3, 1) if channels_last else (4, 5, 0, 1, 2, 3)
    slabs = xp.ascontiguousarray(win.transpose(order))
    slabs = slabs.reshape(-1, *slabs.shape[2:])
    if channels_last:
        slabs = slabs.transpose(0, 1, 4, 2, 3)  # back to (KH*KW, N, C, OH, OW) shape, same memory
    out = slabs[0].copy(order="K")
    argmax = xp.zeros_like(out, dtype=np.uint8 if len(slabs) <= 256 else np.int32)  # zeros_like keeps the order
    for k in range(1, len(slabs)):
        # strict: on a tie the earlier position keeps the arg-max. NaN wins (as in
        # numpy.argmax and PyTorch): not(s <= out) is s > out or s NaN, and once
        # out is NaN (out != out) the first NaN keeps the arg-max.
        better = ~(slabs[k] <= out) & (out == out)
        xp.maximum(out, slabs[k], out=out)
        # Positions come in increasing k, so "max(argmax, k where better)" moves the
        # arg-max to k exactly where this position beats every earlier one.
        xp.maximum(argmax, better * argmax.dtype.type(k), out=argmax)
    return out, (x.shape, dtype, argmax, size, stride, pad)


def max_pool_backward(dout, cache):
    """Gradient of max pooling: each ``dout`` entry goes to the arg-max of its window.

    Args:
        dout: upstream gradient, shape ``(N, C, OH, OW)``.
        cache: from :func:`max_pool_forward`.

    Returns:
        dx: shape ``(N, C, H, W)``; zero everywhere except at the arg-maxes
        (summed where overlapping windows share a winner).
    """
    x_shape, dtype, argmax, size, stride, pad = cache
    dout = _check_dout(dout, argmax.shape, "max pooling").astype(dtype, copy=False)
    get_array_module(dout, argmax)  # raises on a NumPy/CuPy mix
    if is_gpu_array(dout):  # CUDA kernel: one thread per input pixel gathers, no atomics
        return max_pool_backward_gpu(dout, argmax, x_shape, size=size, stride=stride, pad=pad)
    # dout * (argmax == k): a multiply by a boolean mask is ~10x faster than np.where here.
    return _scatter(dout, size, stride, pad, x_shape, dtype, lambda k: dout * (argmax == k),
                    channels_last=layout.is_channels_last(argmax))


# ----------------------------------------------------------------------------- average pooling


def avg_pool_forward(x, *, size=2, stride=None, pad=0):
    """Average pooling: the mean of each ``KH x KW`` window, channel by channel.

    ``out[n, c, oy, ox] = 1/(KH*KW) * sum over (i, j) of xpad[n, c, oy*SH + i, ox*SW + j]``.
    Padding counts as zeros and the divisor is always the full window
    ``KH*KW`` -- PyTorch's default ``count_include_pad=True`` -- so a window
    hanging over the border averages in the zeros.

    Args:
        x: input, shape ``(N, C, H, W)``.
        size, stride, pad: as in :func:`max_pool_forward` (padding is zeros here).

    Returns:
        out: shape ``(N, C, OH, OW)``, float32 for float32 input, else float64.
        cache: ``(x_shape, dtype, size, stride, pad)``.

    Raises:
        ValueError: as :func:`max_pool_forward`.
    """
    x, size, stride, pad = _check_pool_args(x, size, stride, pad)
    dtype = float_dtype(x)
    x = x.astype(dtype, copy=False)
    if is_gpu_array(x):  # CUDA kernel, same cache contract
        return avg_pool_forward_gpu(x, size=size, stride=stride, pad=pad), (x.shape, dtype, size, stride, pad)
    H, W = x.shape[2:]
    out_hw = _out_hw(H, W, size, stride, pad)
    win = _windows(_pad(x, pad, 0), size, stride, out_hw)
    positions = _positions(size)
    out = win[..., 0, 0].copy()
    for i, j in positions[1:]:
        out += win[..., i, j]
    out *= dtype.type(1.0 / len(positions))
    return out, (x.shape, dtype, size, stride, pad)


def avg_pool_backward(dout, cache):
    """Gradient of average pooling: every input of a window gets ``dout / (KH*KW)``.

    Args:
        dout: upstream gradient, shape ``(N, C, OH, OW)``.
        cache: from :func:`avg_pool_forward`.

    Returns:
        dx: shape ``(N, C, H, W)`` (inputs in no window -- rows or columns left
        over when the stride does not tile the input -- get zero).
    """
    x_shape, dtype, size, stride, pad = cache
    H, W = x_shape[2:]
    out_shape = (*x_shape[:2], *_out_hw(H, W, size, stride, pad))
    dout = _check_dout(dout, out_shape, "average pooling").astype(dtype, copy=False)
    if is_gpu_array(dout):  # CUDA kernel: one thread per input pixel gathers
        return avg_pool_backward_gpu(dout, x_shape, size=size, stride=stride, pad=pad)
    share = dout * dtype.type(1.0 / (size[0] * size[1]))
    return _scatter(dout, size, stride, pad, x_shape, dtype, lambda k: share,
                    channels_last=layout.is_channels_last(dout))


# ----------------------------------------------------------------------------- global average pooling


def global_avg_pool_forward(x):
    """Global average pooling: one mean per channel, ``out[n, c] = mean over (h, w) of x[n, c, h, w]``.

    Replaces flatten + a large dense layer at the end of modern CNNs: the
    output size no longer depends on ``H, W``.

    Args:
        x: input, shape ``(N, C, H, W)``.

    Returns:
        out: shape ``(N, C)``.
        cache: ``(x_shape, dtype)``.
    """
    x = as_numeric_array(x, "x", ndim=4)
    dtype = float_dtype(x)
    out = x.astype(dtype, copy=False).mean(axis=(2, 3), dtype=dtype)
    return out, (x.shape, dtype)


def global_avg_pool_backward(dout, cache):
    """Gradient of global average pooling: ``dx[n, c, h, w] = dout[n, c] / (H*W)``.

    Args:
        dout: upstream gradient, shape ``(N, C)``.
        cache: from :func:`global_avg_pool_forward`.

    Returns:
        dx: shape ``(N, C, H, W)``.
    """
    x_shape, dtype = cache
    dout = as_numeric_array(dout, "dout", ndim=2)
    if tuple(dout.shape) != tuple(x_shape[:2]):
        raise ValueError(
            f"dout must have the shape of the global pooling output {tuple(x_shape[:2])}, got {tuple(dout.shape)}"
        )
    xp = get_array_module(dout)
    share = dout.astype(dtype, copy=False) * dtype.type(1.0 / (x_shape[2] * x_shape[3]))
    return xp.broadcast_to(share[:, :, None, None], x_shape).copy()


def _adaptive_edges(n: int, bins: int):
    """PyTorch's bin edges: bin i spans ``floor(i n / bins)`` up to ``ceil((i + 1) n / bins)`` (exclusive)."""
    i = np.arange(bins)
    return (i * n) // bins, -(-((i + 1) * n) // bins)


def adaptive_avg_pool_forward(x, out_hw):
    """Average pooling onto a fixed ``(OH, OW)`` grid, whatever the input size.

    Bins follow ``torch.nn.functional.adaptive_avg_pool2d``: when OH does not
    divide H the windows have unequal sizes and neighbours may share a row.
    ``out_hw=(1, 1)`` is global average pooling.  Each window's sum comes from
    an integral image (cumulative sums), so there is no loop over windows.

    Args:
        x: ``(N, C, H, W)``.
        out_hw: int or ``(OH, OW)`` with ``1 <= OH <= H`` and ``1 <= OW <= W``.

    Returns:
        out ``(N, C, OH, OW)`` and a cache for :func:`adaptive_avg_pool_backward`.
    """
    x = as_numeric_array(x, "x (N, C, H, W)", ndim=4)
    xp = get_array_module(x)
    x = x.astype(float_dtype(x), copy=False)
    oh, ow = _pair(out_hw, "out_hw", minimum=1)
    H, W = x.shape[2:]
    if oh > H or ow > W:
        raise ValueError(f"adaptive pooling output {(oh, ow)} is larger than the input {(H, W)}")
    (r0, r1), (c0, c1) = _adaptive_edges(H, oh), _adaptive_edges(W, ow)
    integral = xp.zeros(x.shape[:2] + (H + 1, W + 1), dtype=x.dtype)
    integral[:, :, 1:, 1:] = x.cumsum(axis=2).cumsum(axis=3)
    R0, R1, C0, C1 = (xp.asarray(a) for a in (r0[:, None], r1[:, None], c0[None, :], c1[None, :]))
    sums = integral[:, :, R1, C1] - integral[:, :, R0, C1] - integral[:, :, R1, C0] + integral[:, :, R0, C0]
    area = ((R1 - R0) * (C1 - C0)).astype(x.dtype)
    return sums / area, (tuple(x.shape), (r0, r1, c0, c1))


def adaptive_avg_pool_backward(dout, cache):
    """Gradient of :func:`adaptive_avg_pool_forward`: each window spreads ``dout / area`` over its pixels."""
    x_shape, (r0, r1, c0, c1) = cache
    xp = get_array_module(dout)
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    for i in range(len(r0)):  # OH * OW is small (it is the pooled grid)
        for j in range(len(c0)):
            area = (r1[i] - r0[i]) * (c1[j] - c0[j])
            dx[:, :, r0[i]:r1[i], c0[j]:c1[j]] += (dout[:, :, i, j] / area)[:, :, None, None]
    return dx
