"""2D convolution: single-channel filtering and multi-channel convolution layers.

Two families live here:

* :func:`correlate2d` / :func:`convolve2d` filter one 2D image with one kernel,
  with the boundary rules of :mod:`cnncourse.signal` (notebook 03);
* :func:`conv_forward` / :func:`conv_backward` are the convolution *layer* of a
  CNN: ``N`` images of ``C`` channels, ``F`` filters, stride, zero padding and
  dilation (notebooks 04, 05 and 07).  "Convolution" in deep learning is a
  cross-correlation (no flip):

      out[n, f, oy, ox] = b[f] + sum_{c, i, j} w[f, c, i, j] * xpad[n, c, oy*sy + i*dy, ox*sx + j*dx]

Each layer function has a naive twin (plain loops, what a student writes) with
the same signature and the same cache, and a test proves they agree.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validate import as_numeric_array, choose, float_dtype
from . import fastconv, layout
from .backend import get_array_module
from .im2col import as_pair, col2im, im2col, output_shape

__all__ = [
    "conv_output_size", "correlate2d", "convolve2d", "ConvCache",
    "conv_forward", "conv_backward", "conv_forward_naive", "conv_backward_naive",
    "MODES", "BOUNDARIES", "ALGORITHMS",
]

MODES = ("valid", "same", "full")
BOUNDARIES = ("zero", "replicate", "mirror", "periodic")
# np.pad's names for the boundary rules of cnncourse.signal: mirror is d c b|a b c d|c b a.
_NP_PAD_MODE = {"zero": "constant", "replicate": "edge", "mirror": "reflect", "periodic": "wrap"}


def conv_output_size(n: int, k: int, *, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``.

    Args:
        n: input length; k: kernel length; stride s >= 1; pad p >= 0 zeros on
            each side; dilation d >= 1 (gap between taps, 1 = none).

    Raises:
        ValueError: a bad hyper-parameter, or a kernel spanning more than the padded input.
    """
    for value, name, low in ((n, "n", 1), (k, "k", 1), (stride, "stride", 1), (pad, "pad", 0), (dilation, "dilation", 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    size = (n + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    if size < 1 or dilation * (k - 1) + 1 > n + 2 * pad:
        raise ValueError(
            f"no output: kernel k={k} with dilation={dilation} spans {dilation * (k - 1) + 1} samples, "
            f"more than the padded input n + 2*pad = {n} + 2*{pad} = {n + 2 * pad}"
        )
    return int(size)


# --------------------------------------------------------------------------- single-channel filtering


def _pad_axis(x, axis: int, before: int, after: int, boundary: str):
    xp = get_array_module(x)
    if boundary == "mirror" and x.shape[axis] == 1:
        boundary = "replicate"  # a single row mirrors onto itself
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, after)
    return xp.pad(x, widths, mode=_NP_PAD_MODE[boundary])


def correlate2d(x, w, *, mode: str = "valid", boundary: str = "zero", stride=1, dilation=1):
    """Cross-correlate an image with a kernel: ``z[i1, i2] = sum_{j1, j2} w[j1, j2] x[i1 + j1, i2 + j2]``.

    Args:
        x: image, shape ``(H, W)``.
        w: kernel, shape ``(KH, KW)``.
        mode: "valid" (only where the kernel fits inside the image),
            "same" (kernel tap ``(KH//2, KW//2)`` over each pixel, as
            ``scipy.ndimage.correlate``) or "full" (every overlap).
        boundary: how pixels outside the image are invented for "same"/"full":
            "zero", "replicate", "mirror" (d c b|a b c d|c b a) or "periodic".
        stride: int or pair; keep every stride-th output (starting at the first).
        dilation: int or pair; the kernel taps are ``dilation`` pixels apart.

    Returns:
        z: shape ``(OH, OW)``; for stride 1, "valid" gives ``H - d(KH-1)``,
        "same" ``H`` and "full" ``H + d(KH-1)`` rows.  float32 stays float32.
    """
    xp = get_array_module(x, w)  # raises on a NumPy/CuPy mix
    x = as_numeric_array(x, "image x", ndim=2)
    w = as_numeric_array(w, "kernel w", ndim=2)
    choose(mode, "mode", MODES)
    choose(boundary, "boundary", BOUNDARIES)
    stride = as_pair(stride, "stride", minimum=1)
    dilation = as_pair(dilation, "dilation", minimum=1)
    dtype = float_dtype(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    (kh, kw), (dy, dx) = w.shape, dilation
    span = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
    if mode == "valid" and (span[0] > x.shape[0] or span[1] > x.shape[1]):
        raise ValueError(f"mode='valid' needs a kernel no larger than the image: kernel spans "
                         f"{span[0]}x{span[1]}, image is {x.shape[0]}x{x.shape[1]}")
    for axis, (k, d) in enumerate(((kh, dy), (kw, dx))):
        before = {"valid": 0, "same": d * (k // 2), "full": d * (k - 1)}[mode]
        after = {"valid": 0, "same": d * (k - 1) - before, "full": d * (k - 1)}[mode]
        if before or after:
            x = _pad_axis(x, axis, before, after, boundary)
    cols = im2col(x[None, None], kh, kw, stride=stride, dilation=dilation)  # (1, KH*KW, OH*OW)
    oh, ow = output_shape(x.shape[0], x.shape[1], kh, kw, stride, (0, 0), dilation)
    return xp.matmul(w.reshape(1, -1), cols[0]).reshape(oh, ow)


def convolve2d(x, w, *, mode: str = "valid", boundary: str = "zero", stride=1, dilation=1):
    """True 2D convolution ``(w * x)[t1, t2] = sum w[a, b] x[t1 - a, t2 - b]``: correlation with the flipped kernel.

    Same arguments as :func:`correlate2d`.  With the zero boundary, "valid",
    "same" and "full" equal ``scipy.signal.convolve2d``.
    """
    w = as_numeric_array(w, "kernel w", ndim=2)
    return correlate2d(x, w[::-1, ::-1], mode=mode, boundary=boundary, stride=stride, dilation=dilation)


# --------------------------------------------------------------------------- the convolution layer


class ConvCache(NamedTuple):
    """What a conv forward pass keeps for its backward pass (both forwards build the same one).

    Attributes:
        x: input, shape ``(N, C, H, W)``, already in the compute dtype.
        w: filters, shape ``(F, C, KH, KW)``, compute dtype.
        b: bias, shape ``(F,)``, or None when the layer has no bias.
        stride, pad, dilation: ``(vertical, horizontal)`` int pairs.
        cols: the im2col matrix ``(N, C*KH*KW, OH*OW)`` when the fast forward
            used im2col (reused by the fast backward), else None.
        rows: the channels-last patch matrix ``(N*OH*OW, KH*KW*C)`` when the
            fast forward took the "rows" path (see :mod:`cnncourse.fastconv`), else None.
        taps: True when the forward took the implicit-GEMM path ("taps"); the backward does too.
        After the naive forward cols and rows are None and the fast backward works from ``x``.
    """

    x: object
    w: object
    b: object
    stride: tuple
    pad: tuple
    dilation: tuple
    cols: object = None
    rows: object = None
    taps: bool = False


def _check_layer(x, w, b, stride, pad, dilation):
    """Validate a layer call; return (xp, x, w, b, stride, pad, dilation, (OH, OW)) in the compute dtype."""
    xp = get_array_module(x, w, b)  # raises on a NumPy/CuPy mix
    x = as_numeric_array(x, "input x (N, C, H, W)", ndim=4)
    w = as_numeric_array(w, "filter w (F, C, KH, KW)", ndim=4)
    if b is not None:
        b = as_numeric_array(b, "bias b (F,)", ndim=1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"bias b must have one value per filter: F={w.shape[0]} filters but b has length {b.shape[0]}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"filter channels must match input channels: filter w has C={w.shape[1]} "
                         f"but input x has C={x.shape[1]} (w {tuple(w.shape)}, x {tuple(x.shape)})")
    stride = as_pair(stride, "stride", minimum=1)
    pad = as_pair(pad, "pad", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    out_hw = output_shape(x.shape[2], x.shape[3], w.shape[2], w.shape[3], stride, pad, dilation)
    dtype = float_dtype(x, w, b)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    b = None if b is None else b.astype(dtype, copy=False)
    return xp, x, w, b, stride, pad, dilation, out_hw


def _check_dout(dout, cache: ConvCache):
    n, f = cache.x.shape[0], cache.w.shape[0]
    oh, ow = output_shape(cache.x.shape[2], cache.x.shape[3], cache.w.shape[2], cache.w.shape[3],
                          cache.stride, cache.pad, cache.dilation)
    get_array_module(dout, cache.x)
    dout = as_numeric_array(dout, "upstream gradient dout", ndim=4)
    if tuple(dout.shape) != (n, f, oh, ow):
        raise ValueError(f"dout must have the output's shape {(n, f, oh, ow)}, got {tuple(dout.shape)}")
    return dout.astype(cache.x.dtype, copy=False)


ALGORITHMS = ("cols", "rows", "taps")


def conv_forward(x, w, b=None, *, stride=1, pad=0, dilation=1, algorithm=None):
    """Convolution layer, fast: the whole layer as matrix products.

    im2col + one matrix product per image (GPU arrays, and inputs with few
    channels); for NumPy inputs with more channels, one of the two faster CPU
    layouts of :mod:`cnncourse.fastconv` (channels-last im2col, or implicit
    GEMM, which needs no im2col copy at all).  All give the same numbers up to
    rounding.

    Args:
        x: input, shape ``(N, C, H, W)``.
        w: filters, shape ``(F, C, KH, KW)``; C must match the input's.
        b: bias, shape ``(F,)``, or None.
        stride, pad, dilation: int or ``(vertical, horizontal)``; ``pad`` zeros on each side.
        algorithm: None picks the fastest (:func:`cnncourse.fastconv.pick_path`); ``"cols"``
            (im2col), or, for NumPy arrays only, ``"rows"`` / ``"taps"`` force one, e.g. to compare them.

    Returns:
        out: shape ``(N, F, OH, OW)`` with ``OH = conv_output_size(H, KH, stride=sy, pad=py, dilation=dy)``;
            float32 if the inputs are float32, else float64.
        cache: a :class:`ConvCache` for :func:`conv_backward` / :func:`conv_backward_naive`.
    """
    xp, x, w, b, stride, pad, dilation, (oh, ow) = _check_layer(x, w, b, stride, pad, dilation)
    n, f, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    if algorithm is None:
        path = "cols" if xp is not np else fastconv.pick_path(x, kh, kw, (oh, ow))
    else:
        path = choose(algorithm, "algorithm", ALGORITHMS)
        if xp is not np and path != "cols":
            raise ValueError(f"algorithm {path!r} is CPU-only (NumPy arrays); CuPy arrays use 'cols' (im2col kernels)")
    if path == "taps":
        return fastconv.taps_forward(x, w, b, stride, pad, dilation), ConvCache(x, w, b, stride, pad, dilation,
                                                                                 taps=True)
    if path == "rows":
        out, rows = fastconv.rows_forward(x, w, b, stride, pad, dilation)
        return out, ConvCache(x, w, b, stride, pad, dilation, rows=rows)
    cols = im2col(x, kh, kw, stride=stride, pad=pad, dilation=dilation)  # (N, C*KH*KW, OH*OW)
    out = xp.matmul(w.reshape(f, -1), cols).reshape(n, f, oh, ow)  # (F, CKK) @ (N, CKK, P): already NCHW
    if b is not None:
        out += b[:, None, None]
    return out, ConvCache(x, w, b, stride, pad, dilation, cols)


def conv_backward(dout, cache: ConvCache, *, need_dx: bool = True):
    """Backward pass of the convolution layer, fast (matrix products, no loop over pixels).

    Args:
        dout: upstream gradient, shape ``(N, F, OH, OW)``.
        cache: from :func:`conv_forward` or :func:`conv_forward_naive`.
        need_dx: False skips the input gradient (returned as None), e.g. for a
            network's first layer, whose input is the data.

    Returns:
        dx: ``(N, C, H, W)`` or None; dw: ``(F, C, KH, KW)``; db: ``(F,)`` or None when the forward had no bias.

    With ``cols`` the im2col matrix and ``W = w.reshape(F, -1)``:
    ``dW = sum_n dout[n] @ cols[n].T``, ``dcols = W.T @ dout`` and
    ``dx = col2im(dcols)`` (col2im adds up overlapping patches).  The CPU
    layouts of :mod:`cnncourse.fastconv` take the same products in their own order.
    """
    dout = _check_dout(dout, cache)
    xp = get_array_module(dout)
    x, w = cache.x, cache.w
    n, f, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    hyper = dict(stride=cache.stride, pad=cache.pad, dilation=cache.dilation)
    db = None if cache.b is None else dout.sum(axis=(0, 2, 3))
    if cache.rows is not None:
        path = "rows"
    elif cache.taps:
        path = "taps"
    elif cache.cols is not None or xp is not np:
        path = "cols"
    else:  # the naive forward's cache: the backward the fast forward would have used
        path = fastconv.pick_path(x, kh, kw, dout.shape[2:])
    if path == "rows":
        rows = cache.rows if cache.rows is not None else fastconv.patch_rows(x, kh, kw, **hyper)
        dx, dw = fastconv.rows_backward(dout, x.shape, w, rows, **hyper, need_dx=need_dx)
        return _like_input(dx, x), dw, db
    if path == "taps":
        dx, dw = fastconv.taps_backward(dout, x, w, **hyper, need_dx=need_dx)
        return _like_input(dx, x), dw, db
    cols = cache.cols if cache.cols is not None else im2col(x, kh, kw, **hyper)
    dout3 = dout.reshape(n, f, -1)  # (N, F, P)
    # sum_n dout[n] @ cols[n].T, as N products then a sum: a single product would need a transposed copy of cols
    dw = xp.matmul(dout3, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    if not need_dx:
        return None, dw, db
    dcols = xp.matmul(w.reshape(f, -1).T, dout3)  # (N, CKK, P)
    dx = col2im(dcols, x.shape, kh, kw, **hyper)
    return dx, dw, db


def _like_input(dx, x):
    """The fast paths' channels-last ``dx`` (a view), copied to NCHW only when ``x`` was NCHW (:mod:`cnncourse.layout`)."""
    return None if dx is None else layout.match(dx, x)


def _windows(oy: int, ox: int, kh: int, kw: int, stride, dilation):
    """Row and column slices of the padded input read by output pixel (oy, ox)."""
    (sy, sx), (dy, dx) = stride, dilation
    return (slice(oy * sy, oy * sy + dy * (kh - 1) + 1, dy),
            slice(ox * sx, ox * sx + dx * (kw - 1) + 1, dx))


def _pad_zero(x, pad):
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))


def conv_forward_naive(x, w, b=None, *, stride=1, pad=0, dilation=1):
    """Convolution layer with plain loops over images, filters and output pixels.

    Same arguments, output and cache as :func:`conv_forward` (``cache.cols`` is None).
    Each output is the dot product of one filter with the input patch under it.
    """
    xp, x, w, b, stride, pad, dilation, (oh, ow) = _check_layer(x, w, b, stride, pad, dilation)
    n_img, n_filt, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    xpad = _pad_zero(x, pad)
    out = xp.zeros((n_img, n_filt, oh, ow), dtype=x.dtype)
    for n in range(n_img):
        for f in range(n_filt):
            for oy in range(oh):
                for ox in range(ow):
                    rows, cols = _windows(oy, ox, kh, kw, stride, dilation)
                    out[n, f, oy, ox] = xp.sum(xpad[n, :, rows, cols] * w[f])
            if b is not None:
                out[n, f] += b[f]
    return out, ConvCache(x, w, b, stride, pad, dilation, None)


def conv_backward_naive(dout, cache: ConvCache):
    """Backward pass with loops, by message passing: each output sends its gradient back.

    Output pixel ``(n, f, oy, ox)`` computed ``sum w[f] * patch``, so its
    gradient ``g = dout[n, f, oy, ox]`` flows

    * to the patch it read: ``dxpad[n, :, patch] += g * w[f]``.  Summed over
      outputs this is ``x̄ = ȳ * w``, a *full* convolution of dout with the filters;
    * to the filter it used: ``dw[f] += g * patch``.  Summed, ``w̄ = sum_t ȳ_t x_{t+tau}``,
      a correlation of the input with dout;
    * to the bias: ``db[f] += g``.

    Same arguments and returns as :func:`conv_backward`; accepts either forward's cache.
    """
    dout = _check_dout(dout, cache)
    xp = get_array_module(dout)
    x, w, stride, dilation, pad = cache.x, cache.w, cache.stride, cache.dilation, cache.pad
    n_img, n_filt, oh, ow = dout.shape
    kh, kw = w.shape[2], w.shape[3]
    xpad = _pad_zero(x, pad)
    dxpad, dw = xp.zeros_like(xpad), xp.zeros_like(w)
    for n in range(n_img):
        for f in range(n_filt):
            for oy in range(oh):
                for ox in range(ow):
                    rows, cols = _windows(oy, ox, kh, kw, stride, dilation)
                    g = dout[n, f, oy, ox]
                    dxpad[n, :, rows, cols] += g * w[f]
                    dw[f] += g * xpad[n, :, rows, cols]
    h, wd = x.shape[2], x.shape[3]
    dx = dxpad[:, :, pad[0] : pad[0] + h, pad[1] : pad[1] + wd]
    db = None if cache.b is None else dout.sum(axis=(0, 2, 3))
    return dx, dw, db
