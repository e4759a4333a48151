"""CUDA kernels for the GPU path, compiled lazily with CuPy, plus their launch wrappers.

Nothing here compiles or imports CuPy at import time: each ``.cu`` module is
compiled (NVRTC, through ``cupy.RawModule``) the first time one of its
kernels is launched, and memoised.  Every kernel is a template instantiated
for ``float`` and ``double``, so float32 and float64 arrays both run natively.

How threads map to elements (each source file repeats this at its top):

====================  =================================================================
kernel                mapping
====================  =================================================================
im2col                one thread per column element; i -> (n, c, ky, kx, oy, ox)
col2im                one thread per *input* element; i -> (n, c, iy, ix); it gathers
                      (sums) every column entry copied from its pixel -- no atomics
max_pool_forward      one thread per output element; i -> (n, c, oy, ox); scans its
                      window, writes the max and its row-major arg-max ky*KW + kx
max_pool_backward     one thread per input element; i -> (n, c, iy, ix); sums ``dout``
                      of every window containing it whose arg-max is this pixel
avg_pool_forward      one thread per output element; i -> (n, c, oy, ox)
avg_pool_backward     one thread per input element; i -> (n, c, iy, ix) (gather)
relu_forward/-back    one thread per element; i -> flat index (the forward can also write
                      the mask x > 0; the backward takes x or that mask)
conv_forward_direct   one block per (TH x TW output tile, image n, group of FB
                      filters); thread (tx, ty) -> output pixel, FB accumulators;
                      input patch and weights staged in shared memory per channel chunk
channel_sums          one block per (channel c, slice s); threads stride over the
                      N*H*W values of channel c, reduce in shared memory (double
                      accumulators) to per-slice partials, summed by the wrapper
====================  =================================================================

All 1-D kernels use grid-stride loops with 64-bit indices, so any grid is
correct and the launch helpers below cap it.  The launch geometry lives in
small pure functions (:func:`launch_1d`, :func:`direct_conv_geometry`,
:func:`channel_sums_geometry`, :func:`cols_strides`) and the argument checks
run before CuPy is touched, so both are tested on machines without a GPU.

The CPU twins live beside the layers (``cnncourse.im2col.im2col_cpu``,
``cnncourse.pool`` ...); the layer functions dispatch here when given CuPy
arrays.
"""
from __future__ import annotations

import functools
import importlib.resources
import math
from pathlib import Path

import numpy as np

from ..backend import cupy_or_none, get_array_module, is_gpu_array

__all__ = [
    "COMPILE_OPTIONS",
    "KERNEL_TEMPLATES",
    "cu_sources",
    "read_source",
    "name_expressions",
    "compile_all",
    "launch_1d",
    "conv_out_size",
    "cols_strides",
    "direct_conv_geometry",
    "channel_sums_geometry",
    "im2col_gpu",
    "col2im_gpu",
    "max_pool_forward_gpu",
    "max_pool_backward_gpu",
    "avg_pool_forward_gpu",
    "avg_pool_backward_gpu",
    "relu_forward_gpu",
    "relu_backward_gpu",
    "conv_forward_direct_gpu",
    "channel_sums_gpu",
]

#: Options for NVRTC (CuPy) and for the ``nvcc --ptx`` test alike.
COMPILE_OPTIONS = ("-std=c++17",)

#: C type name of each supported array dtype.
CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

#: module (= ``<module>.cu``) -> kernel templates; ``{T}`` is ``float`` or ``double``.
KERNEL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "im2col": ("im2col<{T}>", "col2im<{T}>"),
    "pool": (
        "max_pool_forward<{T}, unsigned char>",
        "max_pool_forward<{T}, int>",
        "max_pool_backward<{T}, unsigned char>",
        "max_pool_backward<{T}, int>",
        "avg_pool_forward<{T}>",
        "avg_pool_backward<{T}>",
    ),
    "relu": ("relu_forward<{T}>", "relu_backward<{T}>", "relu_backward_mask<{T}>"),
    "conv_direct": ("conv_forward_direct<{T}, 4>", "conv_forward_direct<{T}, 8>"),
    "batchnorm": ("channel_sums<{T}>",),
}

BLOCK = 256  # threads per block of the 1-D kernels
MAX_BLOCKS = 65535 * 4  # grid cap: the grid-stride loops cover the rest
CS_BLOCK = 256  # must equal CS_BLOCK in batchnorm.cu
SHARED_LIMIT = 48 * 1024  # bytes of dynamic shared memory available without opting in
DIRECT_FILTER_GROUPS = (4, 8)  # FB values instantiated for conv_forward_direct


# ----------------------------------------------------------------------------- sources and compilation


def _package_dir() -> Path:
    return Path(str(importlib.resources.files(__name__)))


def cu_sources() -> list[Path]:
    """Paths of every CUDA source of the package (``cnncourse/kernels/*.cu``), sorted."""
    return sorted(_package_dir().glob("*.cu"))


def read_source(module: str) -> str:
    """The CUDA C source of ``<module>.cu``."""
    if module not in KERNEL_TEMPLATES:
        raise ValueError(f"unknown kernel module {module!r}; choose one of {', '.join(map(repr, KERNEL_TEMPLATES))}")
    return importlib.resources.files(__name__).joinpath(f"{module}.cu").read_text(encoding="utf-8")


def name_expressions(module: str) -> list[str]:
    """Every template instantiation of ``module``: float ones first, then double."""
    return [t.format(T=c) for c in CTYPE.values() for t in KERNEL_TEMPLATES[module]]


def _cupy():
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError(
            "the GPU kernels need CuPy and a CUDA device, and none is usable here; "
            "use NumPy arrays (the CPU path) or install cupy-cuda12x on a GPU machine"
        )
    return cp


@functools.cache
def _module(module: str):
    """The compiled ``cupy.RawModule`` of ``<module>.cu`` (compiled once per process)."""
    cp = _cupy()
    return cp.RawModule(code=read_source(module), options=COMPILE_OPTIONS, name_expressions=name_expressions(module))


@functools.cache
def _kernel(module: str, template: str, ctype: str):
    return _module(module).get_function(template.format(T=ctype))


def compile_all() -> dict[str, str]:
    """Compile every kernel module on the GPU; ``{module: "ok" | error message}``.

    Used by ``cnncourse doctor``.  Without a usable GPU every entry says so.
    """
    report = {}
    for module in KERNEL_TEMPLATES:
        try:
            mod = _module(module)
            for expr in name_expressions(module):
                mod.get_function(expr)
            report[module] = "ok"
        except Exception as err:  # compile errors, no device, driver trouble ...
            report[module] = f"{type(err).__name__}: {err}".strip()
    return report


# ----------------------------------------------------------------------------- launch geometry (pure)


def launch_1d(total: int, *, block: int = BLOCK, max_blocks: int = MAX_BLOCKS) -> tuple[tuple[int], tuple[int]]:
    """``(grid, block)`` for a grid-stride kernel over ``total`` elements.

    One thread per element up to ``max_blocks * block`` threads; beyond that
    each thread loops.  ``total == 0`` still gives a valid one-block launch.
    """
    if total < 0 or block < 1 or max_blocks < 1:
        raise ValueError(f"need total >= 0, block >= 1, max_blocks >= 1; got {total}, {block}, {max_blocks}")
    blocks = max(1, min(math.ceil(total / block), max_blocks))
    return (blocks,), (block,)


def conv_out_size(n: int, k: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """``floor((n + 2*pad - dilation*(k-1) - 1) / stride) + 1``."""
    return (n + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def cols_strides(N: int, C: int, KH: int, KW: int, OH: int, OW: int) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """Shape of the column array and its element strides for ``(n, c, ky, kx, oy, ox)``.

    The layout of ``cnncourse.im2col.im2col_cpu``, C order::

        cols.shape == (N, C*KH*KW, OH*OW)
        cols[n, (c*KH + ky)*KW + kx, oy*OW + ox]

    so the im2col thread order ``(n, c, ky, kx, oy, ox)`` walks memory in order
    (coalesced writes).
    """
    shape = (N, C * KH * KW, OH * OW)
    s_kx = OH * OW
    strides = (C * KH * KW * s_kx, KH * KW * s_kx, KW * s_kx, s_kx, OW, 1)  # n, c, ky, kx, oy, ox
    return shape, strides


def direct_conv_geometry(
    N: int, C: int, F: int, OH: int, OW: int, KH: int, KW: int, *,
    stride=(1, 1), dilation=(1, 1), itemsize: int = 4, shared_limit: int = SHARED_LIMIT,
) -> dict:
    """Launch geometry of ``conv_forward_direct``.

    Returns a dict with ``grid``, ``block`` (``(TW, TH, 1)``), ``fb`` (filters
    per block), ``ct`` (channels staged per pass) and ``shared_bytes``.

    Raises:
        ValueError: if even one channel's patch and weights overflow shared
            memory (a kernel too large for the direct method: use im2col).
    """
    sy, sx = stride
    dy, dx = dilation
    tile = 16 if max(OH, OW) > 8 else 8  # small maps: fewer idle threads
    th, tw = min(tile, OH), min(tile, OW)
    fb = 4 if F <= 4 else 8
    ph = (th - 1) * sy + (KH - 1) * dy + 1
    pw = (tw - 1) * sx + (KW - 1) * dx + 1
    per_channel = (ph * pw + fb * KH * KW) * itemsize
    if per_channel > shared_limit:
        raise ValueError(
            f"kernel {KH}x{KW} (stride {stride}, dilation {dilation}) needs {per_channel} bytes of shared "
            f"memory per channel, more than {shared_limit}: the direct kernel is for small kernels, use im2col"
        )
    ct = max(1, min(C, 16, shared_limit // per_channel))
    grid = (math.ceil(OW / tw), math.ceil(OH / th), N * math.ceil(F / fb))
    return {"grid": grid, "block": (tw, th, 1), "fb": fb, "ct": ct, "shared_bytes": ct * per_channel}


def channel_sums_geometry(N: int, C: int, HW: int, *, target_blocks: int = 1024) -> tuple[tuple[int, int], tuple[int]]:
    """``(grid, block)`` of ``channel_sums``: ``grid = (C, S)`` with ``S`` slices per channel.

    Enough slices for about ``target_blocks`` blocks in all, but never a slice
    with less than one element per thread.
    """
    count = N * HW
    slices = max(1, min(math.ceil(count / CS_BLOCK), math.ceil(target_blocks / C)))
    return (C, slices), (CS_BLOCK,)


# ----------------------------------------------------------------------------- argument checks (pure)


def _pair(value, name: str, fn: str, *, minimum: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_arrays(fn: str, **arrays) -> np.dtype:
    """Check the array arguments of a GPU wrapper (``None`` entries are skipped).

    All must be CuPy arrays (a NumPy one is a TypeError naming both kinds)
    of dtype float32 or float64, and all the same float dtype.  Returns it.
    Touches only ``type``, ``.shape`` and ``.dtype``: no CuPy call.
    """
    given = {k: v for k, v in arrays.items() if v is not None}
    try:
        get_array_module(*given.values())
    except TypeError as err:  # NumPy and CuPy mixed
        raise TypeError(f"{fn}: {err}") from None
    for name, a in given.items():
        if not is_gpu_array(a):
            kind = f"{type(a).__module__}.{type(a).__name__}"
            raise TypeError(
                f"{fn}: {name} must be a CuPy (GPU) array, got {kind}; use the NumPy function for CPU arrays "
                "or move the data with cc.to_device(x, 'gpu')"
            )
    dtypes = {name: np.dtype(a.dtype) for name, a in given.items()}
    for name, dt in dtypes.items():
        if dt not in CTYPE:
            raise TypeError(
                f"{fn}: {name} has dtype {dt}; the GPU kernels support float32 and float64 only "
                f"(convert with {name}.astype(cupy.float32))"
            )
    if len(set(dtypes.values())) > 1:
        got = ", ".join(f"{k}: {v}" for k, v in dtypes.items())
        raise TypeError(f"{fn}: all arrays must share one float dtype, got {got}")
    return next(iter(dtypes.values()))


def _check_ndim(fn: str, name: str, a, ndim: int, letters: str):
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D {letters}, got shape {tuple(a.shape)}")


def _check_shape4(fn: str, name: str, shape) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{fn}: {name} must be a 4-tuple (N, C, H, W) of positive sizes, got {shape}")
    return shape


def _contiguous(*arrays):
    cp = _cupy()
    return [None if a is None else cp.ascontiguousarray(a) for a in arrays]


def _launch(module: str, template: str, dtype, grid, block, args, shared_mem: int = 0):
    _kernel(module, template, CTYPE[np.dtype(dtype)])(grid, block, args, shared_mem=shared_mem)


def _i32(*values):
    return [np.int32(v) for v in values]


def _i64(*values):
    return [np.int64(v) for v in values]


# ----------------------------------------------------------------------------- im2col / col2im


def _im2col_geometry(fn, x_shape, kh, kw, stride, pad, dilation):
    if not all(isinstance(k, (int, np.integer)) and k >= 1 for k in (kh, kw)):
        raise ValueError(f"{fn}: kernel size kh, kw must be positive ints, got {kh!r}, {kw!r}")
    stride = _pair(stride, "stride", fn, minimum=1)
    pad = _pair(pad, "pad", fn, minimum=0)
    dilation = _pair(dilation, "dilation", fn, minimum=1)
    N, C, H, W = x_shape
    OH = conv_out_size(H, kh, stride[0], pad[0], dilation[0])
    OW = conv_out_size(W, kw, stride[1], pad[1], dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{fn}: a {kh}x{kw} kernel (dilation {dilation}) does not fit the padded {H}x{W} input "
            f"(pad {pad}): output would be {OH}x{OW}"
        )
    return (int(kh), int(kw)), stride, pad, dilation, (OH, OW)


def im2col_gpu(x, kh, kw, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """Unfold every receptive field of ``x`` into a column (GPU twin of ``im2col_cpu``).

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64 (any strides).
        kh, kw: kernel height and width.
        stride, pad, dilation: ints or pairs.

    Returns:
        cols: ``(N, C*KH*KW, OH*OW)``, ``cols[n, (c*KH + ky)*KW + kx, oy*OW + ox]``
        (the layout of ``im2col_cpu``), same dtype as ``x``.
    """
    fn = "im2col_gpu"
    dtype = _check_arrays(fn, x=x)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    (kh, kw), stride, pad, dilation, (OH, OW) = _im2col_geometry(fn, x.shape, kh, kw, stride, pad, dilation)
    N, C, H, W = x.shape
    (x,) = _contiguous(x)
    shape, strides = cols_strides(N, C, kh, kw, OH, OW)
    cols = _cupy().empty(shape, dtype=dtype)
    grid, block = launch_1d(cols.size)
    args = (x, cols, *_i32(N, C, H, W, kh, kw, OH, OW, *stride, *pad, *dilation), *_i64(*strides))
    _launch("im2col", "im2col<{T}>", dtype, grid, block, args)
    return cols


def col2im_gpu(cols, x_shape, kh, kw, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """Fold columns back into an image, summing overlaps (adjoint of :func:`im2col_gpu`).

    Args:
        cols: CuPy array ``(N, C*KH*KW, OH*OW)`` laid out as :func:`im2col_gpu` returns.
        x_shape: ``(N, C, H, W)`` of the image.
        kh, kw, stride, pad, dilation: as for :func:`im2col_gpu`.

    Returns:
        x: ``(N, C, H, W)``; ``x[n, c, iy, ix]`` is the sum of every column
        entry that was copied from that pixel (one thread per pixel, no atomics).
    """
    fn = "col2im_gpu"
    dtype = _check_arrays(fn, cols=cols)
    N, C, H, W = _check_shape4(fn, "x_shape", x_shape)
    (kh, kw), stride, pad, dilation, (OH, OW) = _im2col_geometry(fn, (N, C, H, W), kh, kw, stride, pad, dilation)
    shape, strides = cols_strides(N, C, kh, kw, OH, OW)
    if tuple(cols.shape) != shape:
        raise ValueError(f"{fn}: cols must have shape {shape} for x_shape {(N, C, H, W)}, got {tuple(cols.shape)}")
    (cols,) = _contiguous(cols)
    x = _cupy().empty((N, C, H, W), dtype=dtype)
    grid, block = launch_1d(x.size)
    args = (cols, x, *_i32(N, C, H, W, kh, kw, OH, OW, *stride, *pad, *dilation), *_i64(*strides))
    _launch("im2col", "col2im<{T}>", dtype, grid, block, args)
    return x


# ----------------------------------------------------------------------------- pooling


def _pool_geometry(fn, x_shape, size, stride, pad):
    kh, kw = _pair(size, "size", fn, minimum=1)
    sh, sw = _pair((kh, kw) if stride is None else stride, "stride", fn, minimum=1)
    ph, pw = _pair(pad, "pad", fn, minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{fn}: pad must be at most half the window size, got pad={(ph, pw)} for size={(kh, kw)}")
    N, C, H, W = x_shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"{fn}: pool window {kh}x{kw} is larger than the padded input {H + 2 * ph}x{W + 2 * pw}")
    return (kh, kw), (sh, sw), (ph, pw), (OH, OW)


def _argmax_ctype(kh: int, kw: int) -> tuple[str, type]:
    """Index type of the max-pool arg-max, as ``cnncourse.pool`` stores it."""
    return ("unsigned char", np.uint8) if kh * kw <= 256 else ("int", np.int32)


def max_pool_forward_gpu(x, *, size=2, stride=None, pad=0):
    """Max pooling on the GPU.

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64.
        size, stride, pad: as ``cnncourse.pool.max_pool_forward`` (stride defaults to size;
            padding never wins).

    Returns:
        out: ``(N, C, OH, OW)``.
        argmax: ``(N, C, OH, OW)``, row-major position ``ky*KW + kx`` of the first
        maximum inside each window; uint8 when ``KH*KW <= 256``, else int32.
    """
    fn = "max_pool_forward_gpu"
    dtype = _check_arrays(fn, x=x)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    size, stride, pad, (OH, OW) = _pool_geometry(fn, x.shape, size, stride, pad)
    N, C, H, W = x.shape
    (x,) = _contiguous(x)
    cp = _cupy()
    ctype, itype = _argmax_ctype(*size)
    out = cp.empty((N, C, OH, OW), dtype=dtype)
    argmax = cp.empty((N, C, OH, OW), dtype=itype)
    grid, block = launch_1d(out.size)
    args = (x, out, argmax, *_i32(N, C, H, W, *size, OH, OW, *stride, *pad))
    _launch("pool", "max_pool_forward<{T}, " + ctype + ">", dtype, grid, block, args)
    return out, argmax


def max_pool_backward_gpu(dout, argmax, x_shape, *, size=2, stride=None, pad=0):
    """Gradient of max pooling: one thread per input pixel gathers the windows it won.

    Args:
        dout: CuPy array ``(N, C, OH, OW)``.
        argmax: from :func:`max_pool_forward_gpu`, same shape (uint8 or int32).
        x_shape: ``(N, C, H, W)``.
        size, stride, pad: as in the forward call.

    Returns:
        dx: ``(N, C, H, W)``.
    """
    fn = "max_pool_backward_gpu"
    try:
        get_array_module(dout, argmax)
    except TypeError as err:  # NumPy and CuPy mixed
        raise TypeError(f"{fn}: {err}") from None
    dtype = _check_arrays(fn, dout=dout)
    if not is_gpu_array(argmax):
        raise TypeError(f"{fn}: argmax must be a CuPy (GPU) array, got {type(argmax).__module__}.{type(argmax).__name__}")
    N, C, H, W = _check_shape4(fn, "x_shape", x_shape)
    size, stride, pad, (OH, OW) = _pool_geometry(fn, (N, C, H, W), size, stride, pad)
    for name, a in (("dout", dout), ("argmax", argmax)):
        if tuple(a.shape) != (N, C, OH, OW):
            raise ValueError(f"{fn}: {name} must have the pooled shape {(N, C, OH, OW)}, got {tuple(a.shape)}")
    ctype, itype = _argmax_ctype(*size)
    if np.dtype(argmax.dtype) != np.dtype(itype):
        raise TypeError(f"{fn}: argmax must have dtype {np.dtype(itype)} for a {size[0]}x{size[1]} window, got {argmax.dtype}")
    dout, argmax = _contiguous(dout, argmax)
    dx = _cupy().empty((N, C, H, W), dtype=dtype)
    grid, block = launch_1d(dx.size)
    args = (dout, argmax, dx, *_i32(N, C, H, W, *size, OH, OW, *stride, *pad))
    _launch("pool", "max_pool_backward<{T}, " + ctype + ">", dtype, grid, block, args)
    return dx


def avg_pool_forward_gpu(x, *, size=2, stride=None, pad=0, count_include_pad=True):
    """Average pooling on the GPU (padding counts as zeros).

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64.
        size, stride, pad: as ``cnncourse.pool.avg_pool_forward``.
        count_include_pad: divide by ``KH*KW`` (True, PyTorch's default) or by the
            number of in-image positions of each window (False).

    Returns:
        out: ``(N, C, OH, OW)``.
    """
    fn = "avg_pool_forward_gpu"
    dtype = _check_arrays(fn, x=x)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    size, stride, pad, (OH, OW) = _pool_geometry(fn, x.shape, size, stride, pad)
    N, C, H, W = x.shape
    (x,) = _contiguous(x)
    out = _cupy().empty((N, C, OH, OW), dtype=dtype)
    grid, block = launch_1d(out.size)
    args = (x, out, *_i32(N, C, H, W, *size, OH, OW, *stride, *pad, bool(count_include_pad)))
    _launch("pool", "avg_pool_forward<{T}>", dtype, grid, block, args)
    return out


def avg_pool_backward_gpu(dout, x_shape, *, size=2, stride=None, pad=0, count_include_pad=True):
    """Gradient of average pooling: each input pixel gathers ``dout / count`` of its windows.

    Args:
        dout: CuPy array ``(N, C, OH, OW)``.
        x_shape: ``(N, C, H, W)``.
        size, stride, pad, count_include_pad: as in the forward call.

    Returns:
        dx: ``(N, C, H, W)``.
    """
    fn = "avg_pool_backward_gpu"
    dtype = _check_arrays(fn, dout=dout)
    N, C, H, W = _check_shape4(fn, "x_shape", x_shape)
    size, stride, pad, (OH, OW) = _pool_geometry(fn, (N, C, H, W), size, stride, pad)
    if tuple(dout.shape) != (N, C, OH, OW):
        raise ValueError(f"{fn}: dout must have the pooled shape {(N, C, OH, OW)}, got {tuple(dout.shape)}")
    (dout,) = _contiguous(dout)
    dx = _cupy().empty((N, C, H, W), dtype=dtype)
    grid, block = launch_1d(dx.size)
    args = (dout, dx, *_i32(N, C, H, W, *size, OH, OW, *stride, *pad, bool(count_include_pad)))
    _launch("pool", "avg_pool_backward<{T}>", dtype, grid, block, args)
    return dx


# ----------------------------------------------------------------------------- ReLU


def relu_forward_gpu(x, *, return_mask: bool = False):
    """``max(x, 0)`` elementwise on the GPU (any shape; NaN passes through).

    Args:
        x: CuPy array, float32 or float64.
        return_mask: also return the boolean mask ``x > 0`` (the cache of
            ``cnncourse.activations.relu_forward``), written by the same kernel.

    Returns:
        out: same shape and dtype, C-contiguous; ``(out, positive)`` with ``return_mask``.
    """
    dtype = _check_arrays("relu_forward_gpu", x=x)
    (x,) = _contiguous(x)
    cp = _cupy()
    out = cp.empty(x.shape, dtype=dtype)
    positive = cp.empty(x.shape, dtype=np.bool_) if return_mask else out  # out: an unused placeholder
    grid, block = launch_1d(x.size)
    _launch("relu", "relu_forward<{T}>", dtype, grid, block, (x, out, positive, np.int32(return_mask), np.int64(x.size)))
    return (out, positive) if return_mask else out


def relu_backward_gpu(dout, x):
    """ReLU gradient on the GPU: ``dx = dout * (x > 0)``.

    Args:
        dout: CuPy array, upstream gradient.
        x: CuPy array, either the forward input (same shape and dtype as
            ``dout``) or the boolean mask ``x > 0`` from ``relu_forward_gpu(x, return_mask=True)``.

    Returns:
        dx: same shape as ``dout``.
    """
    fn = "relu_backward_gpu"
    try:
        get_array_module(dout, x)
    except TypeError as err:  # NumPy and CuPy mixed
        raise TypeError(f"{fn}: {err}") from None
    is_mask = getattr(x, "dtype", None) == np.bool_
    if is_mask and not is_gpu_array(x):
        raise TypeError(f"{fn}: x must be a CuPy (GPU) array, got {type(x).__module__}.{type(x).__name__}")
    dtype = _check_arrays(fn, dout=dout) if is_mask else _check_arrays(fn, dout=dout, x=x)
    if tuple(dout.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: dout must have the shape of x {tuple(x.shape)}, got {tuple(dout.shape)}")
    dout, x = _contiguous(dout, x)
    dx = _cupy().empty(x.shape, dtype=dtype)
    grid, block = launch_1d(x.size)
    template = "relu_backward_mask<{T}>" if is_mask else "relu_backward<{T}>"
    _launch("relu", template, dtype, grid, block, (dout, x, dx, np.int64(x.size)))
    return dx


# ----------------------------------------------------------------------------- direct convolution


def conv_forward_direct_gpu(x, w, b=None, *, stride=1, pad=0, dilation=1):
    """Convolution layer forward (cross-correlation) without im2col, for small kernels.

    ``out[n, f, oy, ox] = b[f] + sum_{c, ky, kx} w[f, c, ky, kx] * x[n, c, oy*SH - PH + ky*DH, ox*SW - PW + kx*DW]``

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64.
        w: CuPy array ``(F, C, KH, KW)``, same dtype.
        b: CuPy array ``(F,)`` or None.
        stride, pad, dilation: ints or pairs.

    Returns:
        out: ``(N, F, OH, OW)``.

    Raises:
        ValueError: shape mismatch, or a kernel too large for shared memory.
    """
    fn = "conv_forward_direct_gpu"
    dtype = _check_arrays(fn, x=x, w=w, b=b)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    _check_ndim(fn, "w", w, 4, "(F, C, KH, KW)")
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"{fn}: w has {Cw} input channels but x has {C} (w {tuple(w.shape)}, x {tuple(x.shape)})")
    if b is not None and tuple(b.shape) != (F,):
        raise ValueError(f"{fn}: b must have shape ({F},) (one bias per filter), got {tuple(b.shape)}")
    _, stride, pad, dilation, (OH, OW) = _im2col_geometry(fn, x.shape, KH, KW, stride, pad, dilation)
    geo = direct_conv_geometry(N, C, F, OH, OW, KH, KW, stride=stride, dilation=dilation, itemsize=np.dtype(dtype).itemsize)
    x, w, b = _contiguous(x, w, b)
    cp = _cupy()
    out = cp.empty((N, F, OH, OW), dtype=dtype)
    bias = b if b is not None else cp.zeros(1, dtype=dtype)
    args = (
        x, w, bias, np.int32(b is not None), out,
        *_i32(N, C, H, W, F, KH, KW, OH, OW, *stride, *pad, *dilation, geo["ct"]),
    )
    template = "conv_forward_direct<{T}, " + str(geo["fb"]) + ">"
    _launch("conv_direct", template, dtype, geo["grid"], geo["block"], args, shared_mem=geo["shared_bytes"])
    return out


# ----------------------------------------------------------------------------- batch-norm reductions


def channel_sums_gpu(a, b=None):
    """Per-channel sums over ``(N, H, W)``: ``(sum a, sum a*b)``, or ``(sum a, sum a*a)`` without ``b``.

    Forward batch norm uses ``channel_sums_gpu(x)`` (mean and variance from
    the sum and sum of squares); backward uses ``channel_sums_gpu(dout, xhat)``
    (``sum dout`` and ``sum dout*xhat``).  Sums accumulate in float64.

    Args:
        a: CuPy array ``(N, C, H, W)`` (or ``(N, C)``), float32 or float64.
        b: None or a CuPy array of the same shape and dtype.

    Returns:
        sum_a, sum_ab: ``(C,)`` arrays of the input dtype.
    """
    fn = "channel_sums_gpu"
    dtype = _check_arrays(fn, a=a, b=b)
    if a.ndim not in (2, 4):
        raise ValueError(f"{fn}: a must be (N, C, H, W) or (N, C), got shape {tuple(a.shape)}")
    if b is not None and tuple(b.shape) != tuple(a.shape):
        raise ValueError(f"{fn}: b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    N, C = a.shape[:2]
    HW = int(np.prod(a.shape[2:], dtype=np.int64))
    a, b = _contiguous(a, b)
    cp = _cupy()
    grid, block = channel_sums_geometry(N, C, HW)
    part_a = cp.empty(grid, dtype=np.float64)
    part_ab = cp.empty(grid, dtype=np.float64)
    args = (a, a if b is None else b, np.int32(b is not None), *_i32(N, C, HW), part_a, part_ab)
    _launch("batchnorm", "channel_sums<{T}>", dtype, grid, block, args)
    return part_a.sum(axis=1).astype(dtype), part_ab.sum(axis=1).astype(dtype)
