"""Launch plans: what a wrapper sends to a GPU, computed as pure functions of shapes and dtypes.

A :class:`LaunchPlan` names the kernel instantiation, the grid, the block,
the bytes of dynamic shared memory and the argument list with the exact C type
of every argument.  Array arguments are placeholders: :class:`In` (an input
the caller supplies by name) and :class:`Out` (an output the runner allocates).
The CuPy runner (:mod:`.cupy_runner`) and the CPU emulator
(:mod:`.emulator_runner`) consume the same plan, so what the CPU tests is what
a GPU would be sent, ``int`` vs ``long long`` and ``float`` vs ``double``
included; :func:`check_plan` compares the argument types with the kernel's C
signature parsed from its source.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .emulator import CTYPES
from .sources import CTYPE, kernel_params

__all__ = [
    "BLOCK", "MAX_BLOCKS", "MAX_GRID_Z", "CS_BLOCK", "SHARED_LIMIT", "DIRECT_FILTER_GROUPS",
    "In", "Out", "Arg", "LaunchPlan", "check_plan", "bind_arguments",
    "launch_1d", "conv_out_size", "cols_strides", "direct_conv_geometry", "channel_sums_geometry",
    "im2col_geometry", "pool_geometry", "argmax_ctype",
    "im2col_plan", "col2im_plan", "max_pool_forward_plan", "max_pool_backward_plan",
    "avg_pool_forward_plan", "avg_pool_backward_plan", "relu_forward_plan", "relu_backward_plan",
    "conv_forward_direct_plan", "channel_sums_plan",
]

BLOCK = 256  # threads per block of the 1-D kernels
MAX_BLOCKS = 65535 * 4  # grid cap: the grid-stride loops cover the rest
MAX_GRID_Z = 65535  # CUDA's limit on gridDim.y and gridDim.z
CS_BLOCK = 256  # must equal CS_BLOCK in batchnorm.cu
SHARED_LIMIT = 48 * 1024  # bytes of dynamic shared memory available without opting in
DIRECT_FILTER_GROUPS = (4, 8)  # FB values instantiated for conv_forward_direct


# ----------------------------------------------------------------------------- plan objects


@dataclasses.dataclass(frozen=True)
class In:
    """An input array, supplied to the runner under ``name``."""

    name: str


@dataclasses.dataclass(frozen=True)
class Out:
    """An output array the runner allocates (uninitialised) and returns under ``name``."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class Arg:
    """One kernel argument: its C type (``"const float*"``, ``"int"`` ...) and an :class:`In`, :class:`Out` or number."""

    ctype: str
    value: object


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """One kernel launch: ``module.cu``'s ``kernel<<<grid, block, shared_bytes>>>(args...)``."""

    module: str
    kernel: str
    grid: tuple[int, ...]
    block: tuple[int, ...]
    shared_bytes: int
    args: tuple[Arg, ...]

    @property
    def outputs(self) -> list[Out]:
        return [a.value for a in self.args if isinstance(a.value, Out)]

    @property
    def inputs(self) -> list[str]:
        return sorted({a.value.name for a in self.args if isinstance(a.value, In)})

    def scalar_value(self, arg: Arg):
        """The NumPy scalar of the argument's exact C type (``np.int32`` for ``int`` ...)."""
        return CTYPES[arg.ctype].type(arg.value)


def check_plan(plan: LaunchPlan) -> None:
    """Check the plan's arguments against the kernel's C signature (count, and each C type exactly).

    Raises:
        TypeError: naming the parameter whose type differs.
    """
    params = kernel_params(plan.module, plan.kernel)
    if len(params) != len(plan.args):
        raise TypeError(f"{plan.kernel} takes {len(params)} arguments, the plan passes {len(plan.args)}")
    for p, a in zip(params, plan.args):
        if p.ctype != a.ctype:
            raise TypeError(f"{plan.kernel}: parameter {p.name} is `{p.ctype}`, the plan passes `{a.ctype}`")
        if isinstance(a.value, Out) and p.is_pointer and CTYPES.get(p.pointee) != np.dtype(a.value.dtype):
            raise TypeError(f"{plan.kernel}: output {p.name} is `{p.ctype}`, the plan allocates {a.value.dtype}")
        if not p.is_pointer and isinstance(a.value, (In, Out)):
            raise TypeError(f"{plan.kernel}: parameter {p.name} is the scalar `{p.ctype}`, the plan passes an array")


def bind_arguments(plan: LaunchPlan, inputs: dict, xp) -> tuple[list, dict]:
    """The launch's argument list and its output arrays, for either runner.

    Checks the plan against the kernel's signature, makes the ``inputs`` (by
    name) C-contiguous and allocates each output with ``xp`` (NumPy for the
    emulator, CuPy for a GPU), so both runners send a kernel exactly the same list.

    Returns:
        ``(args, outs)``: arrays and exactly typed scalars in the kernel's order, and
        the outputs by name.
    """
    check_plan(plan)
    ready = {name: xp.ascontiguousarray(a) for name, a in inputs.items()}
    outs, args = {}, []
    for arg in plan.args:
        v = arg.value
        if isinstance(v, In):
            args.append(ready[v.name])
        elif isinstance(v, Out):
            outs[v.name] = xp.empty(v.shape, dtype=v.dtype)
            args.append(outs[v.name])
        else:
            args.append(plan.scalar_value(arg))
    return args, outs


def _ints(ctype: str, *values) -> list[Arg]:
    return [Arg(ctype, int(v)) for v in values]


def _ptr(dtype, const: bool = False) -> str:
    return ("const " if const else "") + CTYPE[np.dtype(dtype)] + "*"


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
    max_grid_z: int = MAX_GRID_Z,
) -> dict:
    """Launch geometry of ``conv_forward_direct``.

    Returns a dict with ``grid``, ``block`` (``(TW, TH, 1)``), ``fb`` (filters
    per block), ``ct`` (channels staged per pass) and ``shared_bytes``.
    ``grid.z`` covers the ``N * ceil(F / fb)`` (image, filter group) pairs, capped
    at ``max_grid_z`` (CUDA allows 65,535): the kernel loops over the rest.

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
    if max_grid_z < 1:
        raise ValueError(f"max_grid_z must be >= 1, got {max_grid_z}")
    ct = max(1, min(C, 16, shared_limit // per_channel))
    grid = (math.ceil(OW / tw), math.ceil(OH / th), min(N * math.ceil(F / fb), max_grid_z, MAX_GRID_Z))
    return {"grid": grid, "block": (tw, th, 1), "fb": fb, "ct": ct, "shared_bytes": ct * per_channel}


def channel_sums_geometry(N: int, C: int, HW: int, *, target_blocks: int = 1024) -> tuple[tuple[int, int], tuple[int]]:
    """``(grid, block)`` of ``channel_sums``: ``grid = (C, S)`` with ``S`` slices per channel.

    Enough slices for about ``target_blocks`` blocks in all, but never a slice
    with less than one element per thread.
    """
    count = N * HW
    slices = max(1, min(math.ceil(count / CS_BLOCK), math.ceil(target_blocks / C), MAX_GRID_Z))
    return (C, slices), (CS_BLOCK,)


# ----------------------------------------------------------------------------- hyper-parameter checks (pure)


def pair(value, name: str, fn: str, *, minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints ``>= minimum`` (TypeError / ValueError naming ``fn`` and ``name``)."""
    pair_ = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair_) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair_):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair_) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(pair_[0]), int(pair_[1])


def im2col_geometry(fn, x_shape, kh, kw, stride, pad, dilation):
    """Checked ``(kh, kw), stride, pad, dilation, (OH, OW)`` of a convolution window."""
    if not all(isinstance(k, (int, np.integer)) and k >= 1 for k in (kh, kw)):
        raise ValueError(f"{fn}: kernel size kh, kw must be positive ints, got {kh!r}, {kw!r}")
    stride = pair(stride, "stride", fn, minimum=1)
    pad = pair(pad, "pad", fn, minimum=0)
    dilation = pair(dilation, "dilation", fn, minimum=1)
    N, C, H, W = x_shape
    OH = conv_out_size(H, kh, stride[0], pad[0], dilation[0])
    OW = conv_out_size(W, kw, stride[1], pad[1], dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{fn}: a {kh}x{kw} kernel (dilation {dilation}) does not fit the padded {H}x{W} input "
            f"(pad {pad}): output would be {OH}x{OW}"
        )
    return (int(kh), int(kw)), stride, pad, dilation, (OH, OW)


def pool_geometry(fn, x_shape, size, stride, pad):
    """Checked ``size, stride, pad, (OH, OW)`` of a pooling window (stride defaults to size)."""
    kh, kw = pair(size, "size", fn, minimum=1)
    sh, sw = pair((kh, kw) if stride is None else stride, "stride", fn, minimum=1)
    ph, pw = pair(pad, "pad", fn, minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{fn}: pad must be at most half the window size, got pad={(ph, pw)} for size={(kh, kw)}")
    N, C, H, W = x_shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"{fn}: pool window {kh}x{kw} is larger than the padded input {H + 2 * ph}x{W + 2 * pw}")
    return (kh, kw), (sh, sw), (ph, pw), (OH, OW)


def argmax_ctype(kh: int, kw: int) -> tuple[str, type]:
    """Index type of the max-pool arg-max, as ``cnncourse.pool`` stores it."""
    return ("unsigned char", np.uint8) if kh * kw <= 256 else ("int", np.int32)


# ----------------------------------------------------------------------------- plans, one per wrapper


def _conv_scalars(N, C, H, W, kh, kw, OH, OW, stride, pad, dilation):
    return _ints("int", N, C, H, W, kh, kw, OH, OW, *stride, *pad, *dilation)


def im2col_plan(x_shape, dtype, kh, kw, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1), max_blocks=MAX_BLOCKS,
                fn="im2col_gpu") -> LaunchPlan:
    """Plan of ``im2col<T>``: one thread per column element; output ``cols`` ``(N, C*KH*KW, OH*OW)``."""
    N, C, H, W = x_shape
    (kh, kw), stride, pad, dilation, (OH, OW) = im2col_geometry(fn, x_shape, kh, kw, stride, pad, dilation)
    shape, strides = cols_strides(N, C, kh, kw, OH, OW)
    grid, block = launch_1d(math.prod(shape), max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("x")), Arg(_ptr(dtype), Out("cols", shape, np.dtype(dtype))),
            *_conv_scalars(N, C, H, W, kh, kw, OH, OW, stride, pad, dilation), *_ints("long long", *strides))
    return LaunchPlan("im2col", f"im2col<{T}>", grid, block, 0, args)


def col2im_plan(x_shape, dtype, kh, kw, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1), max_blocks=MAX_BLOCKS,
                fn="col2im_gpu") -> LaunchPlan:
    """Plan of ``col2im<T>``: one thread per image element (a gather); output ``x`` ``(N, C, H, W)``."""
    N, C, H, W = x_shape
    (kh, kw), stride, pad, dilation, (OH, OW) = im2col_geometry(fn, x_shape, kh, kw, stride, pad, dilation)
    _, strides = cols_strides(N, C, kh, kw, OH, OW)
    grid, block = launch_1d(N * C * H * W, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("cols")), Arg(_ptr(dtype), Out("x", (N, C, H, W), np.dtype(dtype))),
            *_conv_scalars(N, C, H, W, kh, kw, OH, OW, stride, pad, dilation), *_ints("long long", *strides))
    return LaunchPlan("im2col", f"col2im<{T}>", grid, block, 0, args)


def max_pool_forward_plan(x_shape, dtype, *, size=2, stride=None, pad=0, max_blocks=MAX_BLOCKS,
                          fn="max_pool_forward_gpu") -> LaunchPlan:
    """Plan of ``max_pool_forward<T, I>``: outputs ``out`` and ``argmax`` ``(N, C, OH, OW)``."""
    N, C, H, W = x_shape
    size, stride, pad, (OH, OW) = pool_geometry(fn, x_shape, size, stride, pad)
    ictype, itype = argmax_ctype(*size)
    grid, block = launch_1d(N * C * OH * OW, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("x")), Arg(_ptr(dtype), Out("out", (N, C, OH, OW), np.dtype(dtype))),
            Arg(ictype + "*", Out("argmax", (N, C, OH, OW), np.dtype(itype))),
            *_ints("int", N, C, H, W, *size, OH, OW, *stride, *pad))
    return LaunchPlan("pool", f"max_pool_forward<{T}, {ictype}>", grid, block, 0, args)


def max_pool_backward_plan(x_shape, dtype, *, size=2, stride=None, pad=0, max_blocks=MAX_BLOCKS,
                           fn="max_pool_backward_gpu") -> LaunchPlan:
    """Plan of ``max_pool_backward<T, I>``: inputs ``dout``, ``argmax``; output ``dx`` ``(N, C, H, W)``."""
    N, C, H, W = x_shape
    size, stride, pad, (OH, OW) = pool_geometry(fn, x_shape, size, stride, pad)
    ictype, _ = argmax_ctype(*size)
    grid, block = launch_1d(N * C * H * W, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("dout")), Arg("const " + ictype + "*", In("argmax")),
            Arg(_ptr(dtype), Out("dx", (N, C, H, W), np.dtype(dtype))),
            *_ints("int", N, C, H, W, *size, OH, OW, *stride, *pad))
    return LaunchPlan("pool", f"max_pool_backward<{T}, {ictype}>", grid, block, 0, args)


def avg_pool_forward_plan(x_shape, dtype, *, size=2, stride=None, pad=0, count_include_pad=True,
                          max_blocks=MAX_BLOCKS, fn="avg_pool_forward_gpu") -> LaunchPlan:
    """Plan of ``avg_pool_forward<T>``: output ``out`` ``(N, C, OH, OW)``."""
    N, C, H, W = x_shape
    size, stride, pad, (OH, OW) = pool_geometry(fn, x_shape, size, stride, pad)
    grid, block = launch_1d(N * C * OH * OW, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("x")), Arg(_ptr(dtype), Out("out", (N, C, OH, OW), np.dtype(dtype))),
            *_ints("int", N, C, H, W, *size, OH, OW, *stride, *pad, bool(count_include_pad)))
    return LaunchPlan("pool", f"avg_pool_forward<{T}>", grid, block, 0, args)


def avg_pool_backward_plan(x_shape, dtype, *, size=2, stride=None, pad=0, count_include_pad=True,
                           max_blocks=MAX_BLOCKS, fn="avg_pool_backward_gpu") -> LaunchPlan:
    """Plan of ``avg_pool_backward<T>``: input ``dout``; output ``dx`` ``(N, C, H, W)``."""
    N, C, H, W = x_shape
    size, stride, pad, (OH, OW) = pool_geometry(fn, x_shape, size, stride, pad)
    grid, block = launch_1d(N * C * H * W, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("dout")), Arg(_ptr(dtype), Out("dx", (N, C, H, W), np.dtype(dtype))),
            *_ints("int", N, C, H, W, *size, OH, OW, *stride, *pad, bool(count_include_pad)))
    return LaunchPlan("pool", f"avg_pool_backward<{T}>", grid, block, 0, args)


def relu_forward_plan(shape, dtype, *, return_mask=False, max_blocks=MAX_BLOCKS) -> LaunchPlan:
    """Plan of ``relu_forward<T>``: outputs ``out`` and (only with ``return_mask``) ``positive``.

    Without the mask the kernel gets a one-element placeholder it never writes.
    """
    size = math.prod(shape)
    grid, block = launch_1d(size, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    mask = Out("positive", tuple(shape), np.dtype(np.bool_)) if return_mask else Out("_unused", (1,), np.dtype(np.bool_))
    args = (Arg(_ptr(dtype, True), In("x")), Arg(_ptr(dtype), Out("out", tuple(shape), np.dtype(dtype))),
            Arg("bool*", mask), Arg("int", int(bool(return_mask))), Arg("long long", size))
    return LaunchPlan("relu", f"relu_forward<{T}>", grid, block, 0, args)


def relu_backward_plan(shape, dtype, *, mask=False, max_blocks=MAX_BLOCKS) -> LaunchPlan:
    """Plan of ``relu_backward<T>`` (``x`` the forward input) or ``relu_backward_mask<T>`` (``x`` the bool mask)."""
    size = math.prod(shape)
    grid, block = launch_1d(size, max_blocks=max_blocks)
    T = CTYPE[np.dtype(dtype)]
    x_ctype = "const bool*" if mask else _ptr(dtype, True)
    args = (Arg(_ptr(dtype, True), In("dout")), Arg(x_ctype, In("x")),
            Arg(_ptr(dtype), Out("dx", tuple(shape), np.dtype(dtype))), Arg("long long", size))
    kernel = f"relu_backward_mask<{T}>" if mask else f"relu_backward<{T}>"
    return LaunchPlan("relu", kernel, grid, block, 0, args)


def conv_forward_direct_plan(x_shape, w_shape, dtype, *, has_bias=True, stride=1, pad=0, dilation=1,
                             max_grid_z=MAX_GRID_Z, fn="conv_forward_direct_gpu") -> LaunchPlan:
    """Plan of ``conv_forward_direct<T, FB>``: inputs ``x``, ``w``, ``b``; output ``out`` ``(N, F, OH, OW)``.

    Without a bias, ``b`` must still be a (one-element) array the kernel does not read.
    """
    N, C, H, W = x_shape
    F, _, KH, KW = w_shape
    _, stride, pad, dilation, (OH, OW) = im2col_geometry(fn, x_shape, KH, KW, stride, pad, dilation)
    geo = direct_conv_geometry(N, C, F, OH, OW, KH, KW, stride=stride, dilation=dilation,
                               itemsize=np.dtype(dtype).itemsize, max_grid_z=max_grid_z)
    T = CTYPE[np.dtype(dtype)]
    args = (Arg(_ptr(dtype, True), In("x")), Arg(_ptr(dtype, True), In("w")), Arg(_ptr(dtype, True), In("b")),
            Arg("int", int(bool(has_bias))), Arg(_ptr(dtype), Out("out", (N, F, OH, OW), np.dtype(dtype))),
            *_ints("int", N, C, H, W, F, KH, KW, OH, OW, *stride, *pad, *dilation, geo["ct"]))
    return LaunchPlan("conv_direct", f"conv_forward_direct<{T}, {geo['fb']}>", geo["grid"], geo["block"],
                      geo["shared_bytes"], args)


def channel_sums_plan(shape, dtype, *, has_b=False) -> LaunchPlan:
    """Plan of ``channel_sums<T>``: inputs ``a``, ``b``; outputs the ``(C, S)`` float64 partials ``part_a``, ``part_ab``."""
    N, C = shape[:2]
    HW = math.prod(shape[2:])
    grid, block = channel_sums_geometry(N, C, HW)
    T = CTYPE[np.dtype(dtype)]
    f64 = np.dtype(np.float64)
    args = (Arg(_ptr(dtype, True), In("a")), Arg(_ptr(dtype, True), In("b" if has_b else "a")),
            Arg("int", int(bool(has_b))), *_ints("int", N, C, HW),
            Arg("double*", Out("part_a", grid, f64)), Arg("double*", Out("part_ab", grid, f64)))
    return LaunchPlan("batchnorm", f"channel_sums<{T}>", grid, block, 0, args)
