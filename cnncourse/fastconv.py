"""CPU fast paths of the convolution layer: channels-last im2col ("rows") and implicit GEMM ("taps").

:func:`cnncourse.conv.conv_forward` picks one of three equivalent algorithms
for NumPy inputs; all three turn the layer into BLAS matrix products, they
differ in how the input patches are laid out in memory, which decides how
fast the copies around the products run:

* **cols** (few channels, see :mod:`cnncourse.im2col`): ``(N, C*KH*KW, OH*OW)``;
  each image's product gives its ``(F, OH*OW)`` output directly.
* **rows** (:func:`rows_forward`, ``ROWS_MIN_CHANNELS <= C``): the input is
  stored channels-last, ``(N, H, W, C)``, and every output pixel gets one row
  ``(KH, KW, C)`` of a ``(N*OH*OW, KH*KW*C)`` matrix.  For a fixed kernel row
  ``i`` the ``KW*C`` entries are one contiguous run of the input, so the copy
  moves long runs instead of ``OW``-long pieces, and the whole batch is ONE
  matrix product (a batched product of ``N`` small matrices runs slower).
* **taps** (:func:`taps_forward`, ``TAPS_MIN_CHANNELS <= C`` and large
  images): no copy at all, one product per kernel tap, see below.

Outputs and input gradients of rows and taps come back as ``(N, C, H, W)``
views onto channels-last memory (see :mod:`cnncourse.layout`): the products
produce that order, and the next layer reads it without a transpose.

All functions here take validated arrays in the compute dtype and
``(vertical, horizontal)`` pairs; :mod:`cnncourse.conv` checks the input.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import threads
from .im2col import output_shape
from .layout import to_channels_last

__all__ = ["ROWS_MIN_CHANNELS", "TAPS_MIN_CHANNELS", "TAPS_MIN_PIXELS", "pick_path",
           "patch_rows", "rows_forward", "rows_backward", "taps_forward", "taps_backward"]

ROWS_MIN_CHANNELS = 4  # with fewer, the channels-last runs (KW*C values) are too short to pay off
TAPS_MIN_CHANNELS = 64  # each tap's product has C as its inner dimension: too thin below this
TAPS_MIN_PIXELS = 512  # and OH*OW large enough that rows' copies cost more than taps' extra passes


def pick_path(x, kh: int, kw: int, out_hw) -> str:
    """``"cols"``, ``"rows"`` or ``"taps"``: the fastest measured CPU algorithm for this layer.

    ``benchmarks/conv_cpu.py --paths`` prints all three on the benchmark shapes.
    """
    c = x.shape[1]
    if x.dtype not in (np.float32, np.float64) or c < ROWS_MIN_CHANNELS:
        return "cols"
    if c >= TAPS_MIN_CHANNELS and out_hw[0] * out_hw[1] >= TAPS_MIN_PIXELS:
        return "taps"
    return "rows"


# --------------------------------------------------------------------------- rows: channels-last im2col

def _channels_last_padded(x, pad):
    """(N, C, H, W) -> (N, H + 2*py, W + 2*px, C), zero border."""
    n, c, h, w = x.shape
    py, px = pad
    if not (py or px):
        return to_channels_last(x)
    out = np.zeros((n, h + 2 * py, w + 2 * px, c), dtype=x.dtype)
    threads.copyto(out[:, py : py + h, px : px + w], x.transpose(0, 2, 3, 1))
    return out


def patch_rows(x, kh: int, kw: int, stride, pad, dilation):
    """The channels-last patch matrix ``(N*OH*OW, KH*KW*C)``: row ``(n, oy, ox)`` holds its patch in ``(i, j, c)`` order."""
    n, c = x.shape[:2]
    oh, ow = output_shape(x.shape[2], x.shape[3], kh, kw, stride, pad, dilation)
    (sy, sx), (dy, dx) = stride, dilation
    x_last = _channels_last_padded(x, pad)
    s_n, s_h, s_w, s_c = x_last.strides
    patches = as_strided(x_last, shape=(n, oh, ow, kh, kw, c),
                         strides=(s_n, sy * s_h, sx * s_w, dy * s_h, dx * s_w, s_c))
    rows = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    threads.copyto(rows, patches)  # NumPy merges (kw, c) into one run when dilation is 1
    return rows.reshape(n * oh * ow, kh * kw * c)


def rows_forward(x, w, b, stride, pad, dilation):
    """Channels-last im2col forward.

    Returns:
        out: ``(N, F, OH, OW)``, a view onto channels-last memory;
        rows: the :func:`patch_rows` matrix ``(N*OH*OW, KH*KW*C)``, kept for :func:`rows_backward`.
    """
    n = x.shape[0]
    f, _, kh, kw = w.shape
    oh, ow = output_shape(x.shape[2], x.shape[3], kh, kw, stride, pad, dilation)
    rows = patch_rows(x, kh, kw, stride, pad, dilation)
    w_rows = w.transpose(0, 2, 3, 1).reshape(f, -1)  # (F, KH*KW*C), same (i, j, c) order
    out_last = rows @ w_rows.T  # (N*OH*OW, F): BLAS reads w_rows.T without a copy
    _add_bias(out_last, b)
    return out_last.reshape(n, oh, ow, f).transpose(0, 3, 1, 2), rows


def _add_bias(out_last, b) -> None:
    """``out_last += b`` in place for a channels-last ``(..., F)`` matrix (nothing when ``b`` is None)."""
    if b is not None:
        threads.run_chunks(lambda i, j: np.add(out_last[i:j], b, out=out_last[i:j]), len(out_last), out_last.size)


def rows_backward(dout, x_shape, w, rows, stride, pad, dilation, *, need_dx=True):
    """Backward of :func:`rows_forward`: ``(dx or None, dw)``.

    With ``G`` the upstream gradient as ``(N*OH*OW, F)``: ``dW = G.T @ rows``
    (one product that sums over the batch and the pixels at once) and, per
    kernel tap, ``G @ w_tap`` ``(N*OH*OW, C)`` is added onto the pixels that
    tap read (inside one tap they are all different, so ``+=`` is exact).
    """
    n, c, h, wd = x_shape
    f, _, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    g = to_channels_last(dout).reshape(-1, f)  # free when dout is channels-last already
    # dW as (rows.T @ G).T: the same sum, and this orientation measured 15-30 % faster in OpenBLAS than G.T @ rows
    dw = np.ascontiguousarray((rows.T @ g).reshape(kh, kw, c, f).transpose(3, 2, 0, 1))
    if not need_dx:
        return None, dw
    dx_last = np.zeros((n, h + 2 * py, wd + 2 * px, c), dtype=dout.dtype)
    w_taps = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (KH, KW, F, C)
    tap_grad = np.empty((n, oh, ow, c), dtype=dout.dtype)
    for i in range(kh):
        for j in range(kw):
            np.matmul(g, w_taps[i, j], out=tap_grad.reshape(-1, c))
            y0, x0 = i * dy, j * dx
            target = dx_last[:, y0 : y0 + sy * (oh - 1) + 1 : sy, x0 : x0 + sx * (ow - 1) + 1 : sx]
            threads.run_chunks(lambda a, b: np.add(target[a:b], tap_grad[a:b], out=target[a:b]), n, tap_grad.size)
    return dx_last[:, py : py + h, px : px + wd].transpose(0, 3, 1, 2), dw  # channels-last view


# --------------------------------------------------------------------------- taps: implicit GEMM
#
# Store the padded input channels-last and flatten it to a matrix X of rows
# (n, y, x) and columns c.  With stride 1, output pixel (n, oy, ox) reads, for
# kernel tap (i, j), row q + i*Wp + j of X, where q = (n*Hp + oy)*Wp + ox.  The
# offset is the same for every output pixel, so the contribution of tap (i, j)
# to *all* outputs is ONE matrix product of a contiguous block of X's rows
# with w[:, :, i, j].T: the layer is KH*KW accumulated products and no im2col
# copy.  Rows q whose window wraps past the right (or bottom) edge compute
# outputs that do not exist; they are simply never read (a (KW-1)/Wp waste).
# Stride s: split the padded input into s x s phases (rows r, r+s, r+2s ...);
# a tap then reads a fixed phase at a fixed offset, a stride-1 problem again.
# The price: every tap reads and writes the whole output, so the products
# need many channels (a long inner dimension) to stay fast.

def _tap_plan(x_shape, kh, kw, stride, pad, dilation):
    """Phase grid (Hs, Ws), output (OH, OW) and, per tap, (i, j, phase, row offset)."""
    n, c, h, w = x_shape
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    oh, ow = output_shape(h, w, kh, kw, stride, pad, dilation)
    hs, ws = -(-(h + 2 * py) // sy), -(-(w + 2 * px) // sx)
    taps = []
    for i in range(kh):
        a, ry = divmod(i * dy, sy)  # padded row oy*sy + i*dy = (oy + a)*sy + ry
        for j in range(kw):
            b, rx = divmod(j * dx, sx)
            taps.append((i, j, ry * sx + rx, a * ws + b))
    return (hs, ws), (oh, ow), taps


def _phase_slices(x_shape, stride, pad):
    """For each phase (ry, rx): its slice of the (N, Hs, Ws) grid and of the (N, H, W) input."""
    _, _, h, w = x_shape
    (sy, sx), (py, px) = stride, pad
    for ry in range(sy):
        for rx in range(sx):
            u0, v0 = max(0, -(-(py - ry) // sy)), max(0, -(-(px - rx) // sx))  # first cell inside the image
            iy0, ix0 = u0 * sy + ry - py, v0 * sx + rx - px
            if iy0 < h and ix0 < w:
                rows, cols = len(range(iy0, h, sy)), len(range(ix0, w, sx))
                yield ry * sx + rx, (slice(u0, u0 + rows), slice(v0, v0 + cols)), (slice(iy0, None, sy), slice(ix0, None, sx))


def _split_phases(x, grid, stride, pad, extra_rows):
    """(N, C, H, W) -> zero-padded channels-last phases, shape (sy*sx, N*Hs*Ws + extra_rows, C).

    Row (n, u, v) of phase (ry, rx) holds padded pixel (u*sy + ry, v*sx + rx).
    The extra zero rows at the end let every tap read a block of N*Hs*Ws rows.
    """
    n, c = x.shape[:2]
    count, rows = stride[0] * stride[1], n * grid[0] * grid[1]
    phases = np.zeros((count, rows + extra_rows, c), dtype=x.dtype)
    grid_view = phases[:, :rows].reshape(count, n, grid[0], grid[1], c)
    x_last = x.transpose(0, 2, 3, 1)
    for k, (u, v), (iy, ix) in _phase_slices(x.shape, stride, pad):
        grid_view[k, :, u, v] = x_last[:, iy, ix]
    return phases


@functools.lru_cache(maxsize=4)
def _blas_gemm(dtype):
    from scipy.linalg import blas  # noqa: PLC0415  (CPU-only; imported on first use)

    return blas.get_blas_funcs("gemm", dtype=dtype)


def _gemm(c, a, b, *, beta, trans_a=False, trans_b=False):
    """In place ``c = op(a) @ op(b) + beta * c`` with BLAS gemm; op transposes when asked.

    BLAS is column-major, so ``c``, ``a`` and ``b`` should be Fortran-ordered
    (the transpose of a C-ordered block of rows is) or the wrapper copies them.
    """
    gemm = _blas_gemm(c.dtype)
    result = gemm(1.0, a, b, beta=beta, c=c, overwrite_c=1, trans_a=int(trans_a), trans_b=int(trans_b))
    if not np.may_share_memory(result, c):  # the wrapper had to copy: write back
        c[...] = result


def taps_forward(x, w, b, stride, pad, dilation):
    """Implicit-GEMM forward; ``b`` may be None.  Returns ``(N, F, OH, OW)``, a view onto channels-last memory."""
    n, f, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    (hs, ws), (oh, ow), taps = _tap_plan(x.shape, kh, kw, stride, pad, dilation)
    rows = n * hs * ws
    phases = _split_phases(x, (hs, ws), stride, pad, max(t[3] for t in taps))
    out = np.empty((rows, f), dtype=x.dtype)  # rows (n, u, v), channels last
    for k, (i, j, phase, off) in enumerate(taps):
        # out += X_tap @ w_tap.T with X_tap = rows off..off+rows of the tap's phase, (rows, C).
        # Written transposed, out.T = w_tap @ X_tap.T, BLAS sees Fortran arrays and updates out in place
        # (this orientation measured 2x faster than the other one).
        _gemm(out.T, w[:, :, i, j], phases[phase, off : off + rows].T, beta=float(k > 0))
    _add_bias(out, b)  # also on the grid cells that are no output: cheaper than skipping them
    return out.reshape(n, hs, ws, f)[:, :oh, :ow].transpose(0, 3, 1, 2)


def taps_backward(dout, x, w, stride, pad, dilation, *, need_dx=True):
    """Implicit-GEMM backward: ``(dx or None, dw)``.  Per tap: dw_tap = X_tap.T @ G and dX_tap += G @ w_tap."""
    n, c, f, kh, kw = x.shape[0], x.shape[1], w.shape[0], w.shape[2], w.shape[3]
    (hs, ws), (oh, ow), taps = _tap_plan(x.shape, kh, kw, stride, pad, dilation)
    rows = n * hs * ws
    phases = _split_phases(x, (hs, ws), stride, pad, max(t[3] for t in taps))
    grid = np.zeros((n, hs, ws, f), dtype=x.dtype)  # dout on the phase grid; 0 where no output exists
    grid[:, :oh, :ow] = dout.transpose(0, 2, 3, 1)
    g = grid.reshape(rows, f)  # G, rows (n, u, v)
    dphases = np.zeros_like(phases) if need_dx else None
    dw = np.empty((f, c, kh, kw), dtype=x.dtype)
    dw_tap = np.empty((c, f), dtype=x.dtype, order="F")
    for i, j, phase, off in taps:
        _gemm(dw_tap, phases[phase, off : off + rows].T, g.T, beta=0.0, trans_b=True)  # (C, rows) @ (rows, F)
        dw[:, :, i, j] = dw_tap.T
        if need_dx:  # dX_tap.T += w_tap.T @ G.T: (C, F) @ (F, rows)
            _gemm(dphases[phase, off : off + rows].T, w[:, :, i, j].T, g.T, beta=1.0)
    if not need_dx:
        return None, dw
    dgrid = dphases[:, :rows].reshape(-1, n, hs, ws, c)
    if len(dgrid) == 1:  # stride 1: the one phase is the padded input; crop it (a view, no copy)
        (_, (u, v), _), = _phase_slices(x.shape, stride, pad)
        return dgrid[0, :, u, v].transpose(0, 3, 1, 2), dw
    dx_last = np.empty((n, x.shape[2], x.shape[3], c), dtype=x.dtype)  # every pixel lies in exactly one phase
    for k, (u, v), (iy, ix) in _phase_slices(x.shape, stride, pad):
        dx_last[:, iy, ix] = dgrid[k, :, u, v]
    return dx_last.transpose(0, 3, 1, 2), dw
