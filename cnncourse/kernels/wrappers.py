"""The public ``*_gpu`` wrappers: check the arrays, compute the launch plan, hand it to a runner.

With CuPy arrays they run on the GPU (:mod:`.cupy_runner`); inside
``with cnncourse.kernels.emulated():`` they take NumPy arrays and run the
same plan on the CPU emulator (:mod:`.emulator_runner`), returning NumPy arrays.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, is_gpu_array
from . import cupy_runner, emulator_runner
from . import plans as P
from .sources import CTYPE

__all__ = [
    "im2col_gpu", "col2im_gpu", "max_pool_forward_gpu", "max_pool_backward_gpu", "avg_pool_forward_gpu",
    "avg_pool_backward_gpu", "relu_forward_gpu", "relu_backward_gpu", "conv_forward_direct_gpu", "channel_sums_gpu",
]

_HOW = ("run it on a GPU with CuPy arrays (cc.to_device(x, 'gpu')), on the CPU emulator with NumPy arrays "
        "inside `with cnncourse.kernels.emulated():`, or use the NumPy function for CPU arrays")


def _kind(a) -> str:
    return f"{type(a).__module__}.{type(a).__name__}"


def _check_arrays(fn: str, **arrays) -> np.dtype:
    """Check the array arguments of a wrapper (``None`` entries are skipped).

    On the GPU all must be CuPy arrays; inside :func:`emulated` all must be
    NumPy arrays.  All must share one dtype, float32 or float64.  Touches only
    ``type``, ``.shape`` and ``.dtype``: no CuPy call.  Returns the dtype.
    """
    given = {k: v for k, v in arrays.items() if v is not None}
    emulating = emulator_runner.active() is not None
    try:
        get_array_module(*given.values())
    except TypeError as err:  # NumPy and CuPy mixed
        raise TypeError(f"{fn}: {err}") from None
    for name, a in given.items():
        if emulating and not isinstance(a, np.ndarray):
            raise TypeError(f"{fn}: inside cnncourse.kernels.emulated() {name} must be a NumPy array, got {_kind(a)} "
                            "(the emulator runs on the CPU; use cupy.asnumpy(a))")
        if not emulating and not is_gpu_array(a):
            raise TypeError(f"{fn}: {name} must be a CuPy (GPU) array, got {_kind(a)}; {_HOW}")
    dtypes = {name: np.dtype(a.dtype) for name, a in given.items()}
    for name, dt in dtypes.items():
        if dt not in CTYPE:
            lib = "numpy" if emulating else "cupy"
            raise TypeError(
                f"{fn}: {name} has dtype {dt}; the GPU kernels support float32 and float64 only "
                f"(convert with {name}.astype({lib}.float32))"
            )
    if len(set(dtypes.values())) > 1:
        got = ", ".join(f"{k}: {v}" for k, v in dtypes.items())
        raise TypeError(f"{fn}: all arrays must share one float dtype, got {got}")
    return next(iter(dtypes.values()))


def _check_index_array(fn: str, name: str, a) -> None:
    emulating = emulator_runner.active() is not None
    if emulating and not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: inside cnncourse.kernels.emulated() {name} must be a NumPy array, got {_kind(a)}")
    if not emulating and not is_gpu_array(a):
        raise TypeError(f"{fn}: {name} must be a CuPy (GPU) array, got {_kind(a)}; {_HOW}")


def _check_ndim(fn: str, name: str, a, ndim: int, letters: str):
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D {letters}, got shape {tuple(a.shape)}")


def _check_shape4(fn: str, name: str, shape) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{fn}: {name} must be a 4-tuple (N, C, H, W) of positive sizes, got {shape}")
    return shape


def _caps() -> dict:
    opts = emulator_runner.active()
    return {"max_blocks": opts.max_blocks} if opts else {}


def _run(plan: P.LaunchPlan, inputs: dict) -> dict:
    if emulator_runner.active() is not None:
        return emulator_runner.run_plan(plan, inputs)
    return cupy_runner.run_plan(plan, inputs)


def _xp():
    return np if emulator_runner.active() is not None else cupy_runner.cupy()


# ----------------------------------------------------------------------------- im2col / col2im


def im2col_gpu(x, kh, kw, *, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """Unfold every receptive field of ``x`` into a column (GPU twin of ``im2col_cpu``).

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64 (any strides); a NumPy
            array inside :func:`emulated`.
        kh, kw: kernel height and width.
        stride, pad, dilation: ints or pairs.

    Returns:
        cols: ``(N, C*KH*KW, OH*OW)``, ``cols[n, (c*KH + ky)*KW + kx, oy*OW + ox]``
        (the layout of ``im2col_cpu``), same dtype as ``x``.
    """
    fn = "im2col_gpu"
    dtype = _check_arrays(fn, x=x)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    plan = P.im2col_plan(tuple(x.shape), dtype, kh, kw, stride=stride, pad=pad, dilation=dilation, fn=fn, **_caps())
    return _run(plan, {"x": x})["cols"]


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
    plan = P.col2im_plan((N, C, H, W), dtype, kh, kw, stride=stride, pad=pad, dilation=dilation, fn=fn, **_caps())
    (kh, kw), _, _, _, (OH, OW) = P.im2col_geometry(fn, (N, C, H, W), kh, kw, stride, pad, dilation)
    shape = (N, C * kh * kw, OH * OW)
    if tuple(cols.shape) != shape:
        raise ValueError(f"{fn}: cols must have shape {shape} for x_shape {(N, C, H, W)}, got {tuple(cols.shape)}")
    return _run(plan, {"cols": cols})["x"]


# ----------------------------------------------------------------------------- pooling


def max_pool_forward_gpu(x, *, size=2, stride=None, pad=0):
    """Max pooling on the GPU.

    Args:
        x: CuPy array ``(N, C, H, W)``, float32 or float64.
        size, stride, pad: as ``cnncourse.pool.max_pool_forward`` (stride defaults to size;
            padding never wins).

    Returns:
        out: ``(N, C, OH, OW)``; a window holding a NaN gives NaN (as NumPy and PyTorch).
        argmax: ``(N, C, OH, OW)``, row-major position ``ky*KW + kx`` of the first
        maximum (or first NaN) inside each window; uint8 when ``KH*KW <= 256``, else int32.
    """
    fn = "max_pool_forward_gpu"
    dtype = _check_arrays(fn, x=x)
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    plan = P.max_pool_forward_plan(tuple(x.shape), dtype, size=size, stride=stride, pad=pad, fn=fn, **_caps())
    outs = _run(plan, {"x": x})
    return outs["out"], outs["argmax"]


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
    _check_index_array(fn, "argmax", argmax)
    N, C, H, W = _check_shape4(fn, "x_shape", x_shape)
    size, stride, pad, (OH, OW) = P.pool_geometry(fn, (N, C, H, W), size, stride, pad)
    for name, a in (("dout", dout), ("argmax", argmax)):
        if tuple(a.shape) != (N, C, OH, OW):
            raise ValueError(f"{fn}: {name} must have the pooled shape {(N, C, OH, OW)}, got {tuple(a.shape)}")
    _, itype = P.argmax_ctype(*size)
    if np.dtype(argmax.dtype) != np.dtype(itype):
        raise TypeError(f"{fn}: argmax must have dtype {np.dtype(itype)} for a {size[0]}x{size[1]} window, got {argmax.dtype}")
    plan = P.max_pool_backward_plan((N, C, H, W), dtype, size=size, stride=stride, pad=pad, fn=fn, **_caps())
    return _run(plan, {"dout": dout, "argmax": argmax})["dx"]


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
    plan = P.avg_pool_forward_plan(tuple(x.shape), dtype, size=size, stride=stride, pad=pad,
                                   count_include_pad=count_include_pad, fn=fn, **_caps())
    return _run(plan, {"x": x})["out"]


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
    size, stride, pad, (OH, OW) = P.pool_geometry(fn, (N, C, H, W), size, stride, pad)
    if tuple(dout.shape) != (N, C, OH, OW):
        raise ValueError(f"{fn}: dout must have the pooled shape {(N, C, OH, OW)}, got {tuple(dout.shape)}")
    plan = P.avg_pool_backward_plan((N, C, H, W), dtype, size=size, stride=stride, pad=pad,
                                    count_include_pad=count_include_pad, fn=fn, **_caps())
    return _run(plan, {"dout": dout})["dx"]


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
    plan = P.relu_forward_plan(tuple(x.shape), dtype, return_mask=return_mask, **_caps())
    outs = _run(plan, {"x": x})
    return (outs["out"], outs["positive"]) if return_mask else outs["out"]


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
    if is_mask:
        _check_index_array(fn, "x", x)
    dtype = _check_arrays(fn, dout=dout) if is_mask else _check_arrays(fn, dout=dout, x=x)
    if tuple(dout.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: dout must have the shape of x {tuple(x.shape)}, got {tuple(dout.shape)}")
    plan = P.relu_backward_plan(tuple(x.shape), dtype, mask=is_mask, **_caps())
    return _run(plan, {"dout": dout, "x": x})["dx"]


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
    opts = emulator_runner.active()
    caps = {"max_grid_z": opts.max_grid_z} if opts else {}
    plan = P.conv_forward_direct_plan(tuple(x.shape), tuple(w.shape), dtype, has_bias=b is not None, stride=stride,
                                      pad=pad, dilation=dilation, fn=fn, **caps)
    bias = b if b is not None else _xp().zeros(1, dtype=dtype)
    return _run(plan, {"x": x, "w": w, "b": bias})["out"]


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
    plan = P.channel_sums_plan(tuple(a.shape), dtype, has_b=b is not None)
    outs = _run(plan, {"a": a} if b is None else {"a": a, "b": b})
    return outs["part_a"].sum(axis=1).astype(dtype), outs["part_ab"].sum(axis=1).astype(dtype)
