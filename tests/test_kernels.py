"""CUDA kernels: every source compiles (nvcc --ptx), launch geometry and argument checks, GPU parity.

Three layers, so a typo never waits for a GPU to be found:

* PTX: every ``.cu`` under ``cnncourse/`` is compiled with ``nvcc --ptx`` for every
  float and double instantiation the loaders ask NVRTC for (skipped only where
  nvcc is not on PATH).
* Pure Python: grid/block computation and the argument checks, which run before
  CuPy is touched (exercised with a stand-in array class that looks like CuPy's).
* GPU (``-m gpu``) and the CPU emulator (``K.emulated()``, no GPU needed): each
  kernel equals the NumPy reference -- float32 to 1e-5, float64 to 1e-10 -- on
  odd sizes, with stride/padding/dilation and non-contiguous inputs.  Tests
  of the CuPy dispatch of the layers stay GPU-only.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnncourse
from cnncourse import kernels as K
from cnncourse.backend import cupy_or_none

PACKAGE = Path(cnncourse.__file__).resolve().parent
NVCC = shutil.which("nvcc")
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
FLOATS = [np.float32, np.float64]


# ----------------------------------------------------------------------------- PTX compilation


def test_every_cu_file_has_a_loader_and_a_thread_mapping_comment():
    sources = sorted(PACKAGE.rglob("*.cu"))
    assert sources, "no CUDA sources found under cnncourse/"
    assert sorted(K.cu_sources()) == sorted(p for p in sources if p.parent == PACKAGE / "kernels")
    assert {p.stem for p in K.cu_sources()} == set(K.KERNEL_TEMPLATES)
    for path in sources:
        head = path.read_text().split("\n\n")[0].lower()
        assert head.startswith("//") and "thread" in head, f"{path.name} must open with its thread mapping"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: cannot compile the CUDA sources to PTX")
@pytest.mark.parametrize("module", sorted(K.KERNEL_TEMPLATES))
def test_cu_source_compiles_to_ptx_for_float_and_double(module, tmp_path):
    source = PACKAGE / "kernels" / f"{module}.cu"
    exprs = K.name_expressions(module)
    # Taking each instantiation's address makes nvcc emit it, exactly the set NVRTC gets as name_expressions.
    wrapper = tmp_path / f"{module}_all.cu"
    wrapper.write_text(
        f'#include "{source}"\n'
        "void* cnncourse_instantiations[] = {\n"
        + "".join(f"    (void*)&{e},\n" for e in exprs)
        + "};\n"
    )
    ptx = tmp_path / f"{module}.ptx"
    cmd = [NVCC, "--ptx", *K.COMPILE_OPTIONS, "-Werror", "all-warnings", str(wrapper), "-o", str(ptx)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr}"
    entries = re.findall(r"^\.visible \.entry (\S+)\(", ptx.read_text(), flags=re.M)
    assert len(entries) == len(exprs), f"expected {len(exprs)} kernels in the PTX, got {entries}"
    for ctype, mangled in (("float", "If"), ("double", "Id")):
        n = sum(1 for e in exprs if f"<{ctype}" in e)
        assert sum(1 for e in entries if mangled in e) >= n, f"missing {ctype} instantiations in {entries}"


# ----------------------------------------------------------------------------- pure Python: geometry


def test_import_neither_imports_cupy_nor_compiles():
    code = "import sys, cnncourse.kernels as k; k.cu_sources(); assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("total, grid", [(0, 1), (1, 1), (256, 1), (257, 2), (10**6, math.ceil(10**6 / 256))])
def test_launch_1d_one_thread_per_element(total, grid):
    assert K.launch_1d(total) == ((grid,), (256,))


def test_launch_1d_caps_the_grid_and_rejects_nonsense():
    (g,), (b,) = K.launch_1d(10**12)
    assert g == K.MAX_BLOCKS and b == 256  # grid-stride loops cover the rest
    assert K.launch_1d(1000, block=128, max_blocks=3) == ((3,), (128,))
    with pytest.raises(ValueError):
        K.launch_1d(-1)
    with pytest.raises(ValueError):
        K.launch_1d(10, block=0)


@pytest.mark.parametrize("n, k, s, p, d", [(28, 5, 1, 0, 1), (32, 3, 2, 1, 1), (9, 3, 1, 2, 2), (7, 7, 1, 0, 1)])
def test_conv_out_size(n, k, s, p, d):
    expected = len(range(0, n + 2 * p - d * (k - 1), s))
    assert K.conv_out_size(n, k, s, p, d) == expected


def test_cols_strides_match_the_cpu_layout():
    N, C, KH, KW, OH, OW = 2, 3, 2, 4, 5, 3
    shape, strides = K.cols_strides(N, C, KH, KW, OH, OW)
    assert shape == (N, C * KH * KW, OH * OW)
    flat = np.arange(math.prod(shape)).reshape(shape)
    for n, c, ky, kx, oy, ox in [(0, 0, 0, 0, 0, 0), (1, 2, 1, 3, 4, 2), (1, 0, 1, 2, 3, 0)]:
        offset = np.dot([n, c, ky, kx, oy, ox], strides)
        assert flat[n, (c * KH + ky) * KW + kx, oy * OW + ox] == offset


def test_cols_strides_match_im2col_cpu():
    im2col = pytest.importorskip("cnncourse.im2col")
    N, C, H, W, KH, KW = 2, 3, 5, 6, 2, 3
    x = np.arange(N * C * H * W, dtype=float).reshape(N, C, H, W)
    cols = im2col.im2col_cpu(x, KH, KW, stride=(2, 1), pad=(1, 0), dilation=(1, 2))
    OH, OW = K.conv_out_size(H, KH, 2, 1, 1), K.conv_out_size(W, KW, 1, 0, 2)
    shape, strides = K.cols_strides(N, C, KH, KW, OH, OW)
    assert cols.shape == shape
    idx = np.indices((N, C, KH, KW, OH, OW))
    offsets = np.tensordot(np.array(strides), idx, axes=1)
    np.testing.assert_array_equal(np.ascontiguousarray(cols).ravel()[offsets], _im2col_ref(x, KH, KW, (2, 1), (1, 0), (1, 2)).reshape(N, C, KH, KW, OH, OW))


@pytest.mark.parametrize("shape", [(64, 1, 6, 24, 24, 5, 5), (64, 32, 64, 14, 14, 3, 3), (128, 1, 16, 8, 8, 3, 3),
                                   (32, 64, 128, 16, 16, 3, 3), (2, 3, 2, 1, 1, 7, 7)])
@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_direct_conv_geometry_covers_the_output_and_fits_shared_memory(shape, itemsize, stride):
    N, C, F, OH, OW, KH, KW = shape
    g = K.direct_conv_geometry(N, C, F, OH, OW, KH, KW, stride=stride, itemsize=itemsize)
    tw, th, one = g["block"]
    assert one == 1 and tw * th <= 1024
    assert g["grid"][0] * tw >= OW and g["grid"][1] * th >= OH
    assert g["grid"][2] * g["fb"] >= N * F and g["grid"][2] == N * math.ceil(F / g["fb"])
    assert g["fb"] in K.DIRECT_FILTER_GROUPS
    assert 1 <= g["ct"] <= C
    ph, pw = (th - 1) * stride[0] + KH, (tw - 1) * stride[1] + KW
    assert g["shared_bytes"] == g["ct"] * (ph * pw + g["fb"] * KH * KW) * itemsize <= K.SHARED_LIMIT


def test_direct_conv_geometry_rejects_kernels_too_big_for_shared_memory():
    with pytest.raises(ValueError, match="use im2col"):
        K.direct_conv_geometry(1, 1, 8, 64, 64, 41, 41, itemsize=8)


def test_direct_filter_groups_are_the_instantiated_ones():
    exprs = K.name_expressions("conv_direct")
    assert {int(re.search(r", (\d+)>", e).group(1)) for e in exprs} == set(K.DIRECT_FILTER_GROUPS)


@pytest.mark.parametrize("N, C, HW", [(1, 1, 1), (64, 6, 144), (32, 64, 1024), (2, 1000, 1)])
def test_channel_sums_geometry(N, C, HW):
    (gc, gs), (b,) = K.channel_sums_geometry(N, C, HW)
    assert gc == C and b == K.CS_BLOCK
    assert gs >= 1 and (gs - 1) * b < max(N * HW, 1)  # no slice starts past the data
    assert "#define CS_BLOCK " + str(K.CS_BLOCK) in (PACKAGE / "kernels" / "batchnorm.cu").read_text()


def test_name_expressions_cover_both_dtypes():
    for module in K.KERNEL_TEMPLATES:
        exprs = K.name_expressions(module)
        assert len(exprs) == 2 * len(K.KERNEL_TEMPLATES[module])
        assert sum("<float" in e for e in exprs) == sum("<double" in e for e in exprs)
    with pytest.raises(ValueError, match="unknown kernel module"):
        K.read_source("nope")


def test_compile_all_reports_every_module():
    report = K.compile_all()
    assert set(report) == set(K.KERNEL_TEMPLATES)
    if cupy_or_none() is None:
        assert all("CuPy" in msg for msg in report.values())
    else:
        assert all(msg == "ok" for msg in report.values()), report


# ----------------------------------------------------------------------------- pure Python: argument checks


class FakeGpuArray:
    """Looks like a CuPy array to the argument checks (they read only type, shape, dtype, ndim)."""

    __module__ = "cupy"

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)


G = FakeGpuArray
no_gpu_only = pytest.mark.skipif(cupy_or_none() is not None, reason="checks the no-GPU error path")


@pytest.mark.parametrize(
    "call",
    [
        lambda: K.im2col_gpu(np.zeros((1, 1, 4, 4), np.float32), 3, 3),
        lambda: K.relu_backward_gpu(np.zeros((3,), np.float32), G((3,))),
        lambda: K.relu_backward_gpu(G((3,)), np.zeros((3,), np.float32)),
        lambda: K.relu_backward_gpu(G((3,)), np.zeros((3,), np.bool_)),
        lambda: K.conv_forward_direct_gpu(G((1, 2, 5, 5)), np.zeros((4, 2, 3, 3), np.float32)),
        lambda: K.channel_sums_gpu(G((2, 3, 4, 4)), np.zeros((2, 3, 4, 4), np.float32)),
        lambda: K.max_pool_backward_gpu(G((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.uint8), (1, 1, 4, 4)),
    ],
)
def test_numpy_arrays_are_a_type_error(call):
    with pytest.raises(TypeError) as err:
        call()
    assert "CuPy" in str(err.value) and ("NumPy" in str(err.value) or "numpy" in str(err.value))


def test_mixing_numpy_and_cupy_names_both():
    with pytest.raises(TypeError, match=r"relu_backward_gpu: cannot mix NumPy \(CPU\) and CuPy \(GPU\)"):
        K.relu_backward_gpu(np.zeros(3, np.float32), G((3,)))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, np.bool_])
def test_unsupported_dtypes_are_a_clear_type_error(dtype):
    with pytest.raises(TypeError, match=r"float32 and float64 only"):
        K.relu_forward_gpu(G((4,), dtype))
    with pytest.raises(TypeError, match=r"float32 and float64 only"):
        K.im2col_gpu(G((1, 1, 4, 4), dtype), 2, 2)


def test_mixed_float_dtypes_are_a_type_error():
    with pytest.raises(TypeError, match="share one float dtype"):
        K.conv_forward_direct_gpu(G((1, 2, 5, 5), np.float32), G((4, 2, 3, 3), np.float64))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: K.im2col_gpu(G((4, 4)), 3, 3), "4-D"),
        (lambda: K.im2col_gpu(G((1, 1, 4, 4)), 5, 5), "does not fit"),
        (lambda: K.im2col_gpu(G((1, 1, 4, 4)), 3, 3, stride=0), "stride must be >= 1"),
        (lambda: K.im2col_gpu(G((1, 1, 4, 4)), 3, 3, pad=-1), "pad must be >= 0"),
        (lambda: K.im2col_gpu(G((1, 1, 9, 9)), 3, 3, dilation=(1, 0)), "dilation must be >= 1"),
        (lambda: K.col2im_gpu(G((1, 9, 5)), (1, 1, 4, 4), 3, 3), r"cols must have shape \(1, 9, 4\)"),
        (lambda: K.col2im_gpu(G((1, 9, 4)), (1, 4, 4), 3, 3), "x_shape must be a 4-tuple"),
        (lambda: K.max_pool_forward_gpu(G((1, 1, 4, 4)), size=2, pad=2), "at most half"),
        (lambda: K.max_pool_forward_gpu(G((1, 1, 1, 1)), size=3), "larger than the padded input"),
        (lambda: K.max_pool_backward_gpu(G((1, 1, 3, 3)), G((1, 1, 3, 3), np.uint8), (1, 1, 4, 4)), "pooled shape"),
        (lambda: K.avg_pool_backward_gpu(G((1, 1, 3, 3)), (1, 1, 4, 4), size=2), "pooled shape"),
        (lambda: K.relu_backward_gpu(G((3,)), G((4,))), "shape of x"),
        (lambda: K.relu_backward_gpu(G((3,)), G((4,), np.bool_)), "shape of x"),
        (lambda: K.conv_forward_direct_gpu(G((1, 2, 5, 5)), G((4, 3, 3, 3))), "input channels"),
        (lambda: K.conv_forward_direct_gpu(G((1, 2, 5, 5)), G((4, 2, 3, 3)), G((3,))), "one bias per filter"),
        (lambda: K.channel_sums_gpu(G((2, 3, 4))), r"\(N, C, H, W\) or \(N, C\)"),
        (lambda: K.channel_sums_gpu(G((2, 3, 4, 4)), G((2, 3, 4, 5))), "shape of a"),
    ],
)
def test_bad_shapes_and_hyperparameters_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_max_pool_backward_checks_the_argmax_dtype():
    with pytest.raises(TypeError, match="argmax must have dtype uint8"):
        K.max_pool_backward_gpu(G((1, 1, 2, 2)), G((1, 1, 2, 2), np.int64), (1, 1, 4, 4))
    with pytest.raises(TypeError, match="int or a pair"):
        K.max_pool_forward_gpu(G((1, 1, 4, 4)), size=2.0)


@no_gpu_only
@pytest.mark.parametrize(
    "call",
    [
        lambda: K.im2col_gpu(G((1, 2, 5, 5)), 3, 3, stride=2, pad=1),
        lambda: K.col2im_gpu(G((1, 18, 9)), (1, 2, 5, 5), 3, 3, stride=2, pad=1),
        lambda: K.max_pool_forward_gpu(G((1, 1, 4, 4))),
        lambda: K.max_pool_backward_gpu(G((1, 1, 2, 2)), G((1, 1, 2, 2), np.uint8), (1, 1, 4, 4)),
        lambda: K.avg_pool_forward_gpu(G((1, 1, 4, 4), np.float64)),
        lambda: K.avg_pool_backward_gpu(G((1, 1, 2, 2)), (1, 1, 4, 4)),
        lambda: K.relu_forward_gpu(G((3,))),
        lambda: K.relu_backward_gpu(G((3,)), G((3,))),
        lambda: K.relu_backward_gpu(G((3,)), G((3,), np.bool_)),
        lambda: K.relu_forward_gpu(G((3,)), return_mask=True),
        lambda: K.conv_forward_direct_gpu(G((1, 2, 5, 5)), G((4, 2, 3, 3)), G((4,))),
        lambda: K.channel_sums_gpu(G((2, 3, 4, 4))),
    ],
)
def test_valid_arguments_pass_the_checks_and_then_need_a_gpu(call):
    with pytest.raises(RuntimeError, match="need CuPy and a CUDA device"):
        call()


# ----------------------------------------------------------------------------- GPU parity (NumPy references)


def _im2col_ref(x, kh, kw, stride, pad, dilation):
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    N, C, H, W = x.shape
    oh, ow = K.conv_out_size(H, kh, sy, py, dy), K.conv_out_size(W, kw, sx, px, dx)
    xp_ = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    cols = np.empty((N, C, kh, kw, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp_[:, :, i * dy : i * dy + sy * (oh - 1) + 1 : sy, j * dx : j * dx + sx * (ow - 1) + 1 : sx]
    return cols.reshape(N, C * kh * kw, oh * ow)


def _col2im_ref(cols, x_shape, kh, kw, stride, pad, dilation):
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    N, C, H, W = x_shape
    oh, ow = K.conv_out_size(H, kh, sy, py, dy), K.conv_out_size(W, kw, sx, px, dx)
    out = np.zeros((N, C, H + 2 * py, W + 2 * px), cols.dtype)
    taps = cols.reshape(N, C, kh, kw, oh, ow)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dy : i * dy + sy * (oh - 1) + 1 : sy, j * dx : j * dx + sx * (ow - 1) + 1 : sx] += taps[:, :, i, j]
    return out[:, :, py : py + H, px : px + W]


def _conv_ref(x, w, b, stride, pad, dilation):
    F, C, kh, kw = w.shape
    cols = _im2col_ref(x, kh, kw, stride, pad, dilation)
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    oh = K.conv_out_size(H, kh, stride[0], pad[0], dilation[0])
    ow = K.conv_out_size(W, kw, stride[1], pad[1], dilation[1])
    out = np.einsum("fk,nkp->nfp", w.reshape(F, -1).astype(np.float64), cols.astype(np.float64))
    if b is not None:
        out += b[None, :, None]
    return out.reshape(N, F, oh, ow)


def _pool_windows(x, size, stride, pad, fill):
    (kh, kw), (sy, sx), (py, px) = size, stride, pad
    N, C, H, W = x.shape
    oh, ow = (H + 2 * py - kh) // sy + 1, (W + 2 * px - kw) // sx + 1
    xp_ = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)), constant_values=fill)
    win = np.empty((N, C, oh, ow, kh * kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            win[..., i * kw + j] = xp_[:, :, i : i + sy * (oh - 1) + 1 : sy, j : j + sx * (ow - 1) + 1 : sx]
    return win


def _valid_counts(x_shape, size, stride, pad):
    ones = np.ones((1, 1, *x_shape[2:]))
    return _pool_windows(ones, size, stride, pad, 0.0).sum(-1)


def _numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _assert_close(got, want):
    got = _numpy(got)
    assert got.shape == want.shape
    tol = TOL[np.dtype(got.dtype)]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# Two backends for the kernel tests: CuPy on a real GPU (marked ``gpu``, skipped without one), and the
# CPU emulator (NumPy arrays inside ``K.emulated()``, skipped without a C++ compiler). Both run the
# same launch plans, so every assertion below holds on either.
_NO_GPU = pytest.mark.skipif(cupy_or_none() is None, reason="no usable GPU (CuPy missing or no CUDA device)")
_NO_CXX = pytest.mark.skipif(K.emulator.find_compiler() is None, reason="no C++ compiler: the CUDA emulator is off")
GPU_PARAM = pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu, _NO_GPU])
on_gpu = pytest.mark.parametrize("xp", [GPU_PARAM, pytest.param("emulator", id="emulator", marks=_NO_CXX)], indirect=True)
gpu_only = pytest.mark.parametrize("xp", [GPU_PARAM], indirect=True)


@pytest.fixture
def xp(request):
    """CuPy on the GPU, or NumPy with the wrappers switched to the CPU emulator."""
    if request.param == "emulator":
        with K.emulated():
            yield np
    else:
        yield cupy_or_none()


def _gpu(xp):
    assert xp is not None
    return xp


def _noncontig(cp, a):
    """A non-contiguous view holding the values of ``a``: every other element of a wider array."""
    big = cp.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    big[..., ::2] = cp.asarray(a)
    view = big[..., ::2]
    assert not view.flags.c_contiguous or a.size == 1  # one element is contiguous whatever its strides
    return view


GEOMETRIES = [  # (N, C, H, W, kh, kw, stride, pad, dilation)
    (2, 3, 7, 9, 3, 3, (1, 1), (0, 0), (1, 1)),
    (3, 2, 11, 8, 5, 3, (2, 1), (2, 1), (1, 1)),
    (1, 5, 13, 13, 3, 3, (2, 3), (1, 1), (2, 2)),
    (2, 1, 6, 5, 1, 1, (1, 1), (0, 0), (1, 1)),
    (1, 4, 9, 10, 4, 2, (3, 2), (3, 0), (1, 3)),
]


@on_gpu
@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("contiguous", [True, False])
def test_im2col_and_col2im_match_numpy(xp, rng, geom, dtype, contiguous):
    cp = _gpu(xp)
    N, C, H, W, kh, kw, s, p, d = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    xg = cp.asarray(x) if contiguous else _noncontig(cp, x)
    cols = K.im2col_gpu(xg, kh, kw, stride=s, pad=p, dilation=d)
    assert cols.dtype == dtype
    _assert_close(cols, _im2col_ref(x, kh, kw, s, p, d))
    g = rng.standard_normal(cols.shape).astype(dtype)
    gg = cp.asarray(g) if contiguous else _noncontig(cp, g)
    _assert_close(K.col2im_gpu(gg, x.shape, kh, kw, stride=s, pad=p, dilation=d), _col2im_ref(g, x.shape, kh, kw, s, p, d))


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
def test_im2col_dispatcher_routes_cupy_to_the_kernel(xp, rng, dtype):
    cp = _gpu(xp)
    im2col = pytest.importorskip("cnncourse.im2col")
    x = rng.standard_normal((2, 3, 8, 7)).astype(dtype)
    for kw in ({}, {"stride": 2, "pad": 1}, {"dilation": 2}):
        got = im2col.im2col(cp.asarray(x), 3, 3, **kw)
        _assert_close(got, im2col.im2col_cpu(x, 3, 3, **kw))
        _assert_close(im2col.col2im(got, x.shape, 3, 3, **kw), im2col.col2im_cpu(_numpy(got), x.shape, 3, 3, **kw))


POOLS = [  # (N, C, H, W, size, stride, pad)
    (2, 3, 8, 8, (2, 2), None, (0, 0)),
    (1, 2, 9, 7, (3, 3), (2, 2), (1, 1)),
    (3, 1, 11, 10, (3, 2), (1, 2), (0, 1)),
    (2, 2, 5, 5, (2, 2), (1, 1), (1, 0)),
    (1, 1, 20, 20, (17, 17), (3, 3), (0, 0)),  # 289 > 256 positions: int32 arg-max
]


@on_gpu
@pytest.mark.parametrize("geom", POOLS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("contiguous", [True, False])
def test_max_pool_matches_numpy(xp, rng, geom, dtype, contiguous):
    cp = _gpu(xp)
    N, C, H, W, size, stride, pad = geom
    st = size if stride is None else stride
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    x[0, 0, :2, :2] = 1.5  # ties: the first in row-major window order wins
    xg = cp.asarray(x) if contiguous else _noncontig(cp, x)
    out, argmax = K.max_pool_forward_gpu(xg, size=size, stride=stride, pad=pad)
    win = _pool_windows(x, size, st, pad, -np.inf)
    _assert_close(out, win.max(-1))
    np.testing.assert_array_equal(_numpy(argmax), win.argmax(-1))
    assert argmax.dtype == (np.uint8 if size[0] * size[1] <= 256 else np.int32)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = K.max_pool_backward_gpu(cp.asarray(dout), argmax, x.shape, size=size, stride=stride, pad=pad)
    # Reference: scatter each dout into its window's winner, with np.add.at (handles overlaps).
    want = np.zeros((N, C, H + 2 * pad[0], W + 2 * pad[1]), np.float64)
    n, c, oy, ox = np.indices(out.shape)
    k = win.argmax(-1)
    np.add.at(want, (n, c, oy * st[0] + k // size[1], ox * st[1] + k % size[1]), dout)
    _assert_close(dx, want[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W])


@on_gpu
@pytest.mark.parametrize("geom", POOLS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_numpy(xp, rng, geom, dtype, count_include_pad):
    cp = _gpu(xp)
    N, C, H, W, size, stride, pad = geom
    st = size if stride is None else stride
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    out = K.avg_pool_forward_gpu(_noncontig(cp, x), size=size, stride=stride, pad=pad, count_include_pad=count_include_pad)
    div = size[0] * size[1] if count_include_pad else _valid_counts(x.shape, size, st, pad)
    _assert_close(out, _pool_windows(x.astype(np.float64), size, st, pad, 0.0).sum(-1) / div)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = K.avg_pool_backward_gpu(cp.asarray(dout), x.shape, size=size, stride=stride, pad=pad, count_include_pad=count_include_pad)
    share = dout / div
    want = np.zeros((N, C, H + 2 * pad[0], W + 2 * pad[1]), np.float64)
    for i in range(size[0]):
        for j in range(size[1]):
            want[:, :, i : i + st[0] * (out.shape[2] - 1) + 1 : st[0], j : j + st[1] * (out.shape[3] - 1) + 1 : st[1]] += share
    _assert_close(dx, want[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W])


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
def test_pool_layers_on_cupy_match_numpy(xp, rng, dtype):
    cp = _gpu(xp)
    pool = pytest.importorskip("cnncourse.pool")
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    for fwd, bwd in ((pool.max_pool_forward, pool.max_pool_backward), (pool.avg_pool_forward, pool.avg_pool_backward)):
        for kw in ({"size": 2}, {"size": 3, "stride": 2, "pad": 1}):
            out_c, cache_c = fwd(x, **kw)
            out_g, cache_g = fwd(cp.asarray(x), **kw)
            _assert_close(out_g, out_c)
            dout = rng.standard_normal(out_c.shape).astype(dtype)
            _assert_close(bwd(cp.asarray(dout), cache_g), bwd(dout, cache_c))


@on_gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 7, 9), (1, 1, 1, 1), (1000003,)])
def test_relu_matches_numpy(xp, rng, dtype, shape):
    cp = _gpu(xp)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0
    dout = rng.standard_normal(shape).astype(dtype)
    _assert_close(K.relu_forward_gpu(cp.asarray(x)), np.maximum(x, 0))
    _assert_close(K.relu_backward_gpu(cp.asarray(dout), cp.asarray(x)), dout * (x > 0))
    out, positive = K.relu_forward_gpu(cp.asarray(x), return_mask=True)
    _assert_close(out, np.maximum(x, 0))
    np.testing.assert_array_equal(_numpy(positive), x > 0)
    _assert_close(K.relu_backward_gpu(cp.asarray(dout), positive), dout * (x > 0))
    if len(shape) == 4:
        _assert_close(K.relu_forward_gpu(_noncontig(cp, x)), np.maximum(x, 0))
        _assert_close(K.relu_backward_gpu(_noncontig(cp, dout), _noncontig(cp, x)), dout * (x > 0))


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
def test_relu_layer_on_cupy_matches_numpy(xp, rng, dtype):
    cp = _gpu(xp)
    act = pytest.importorskip("cnncourse.activations")
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out_c, cache_c = act.relu_forward(x)
    out_g, cache_g = act.relu_forward(cp.asarray(x))
    _assert_close(out_g, out_c)
    _assert_close(act.relu_backward(cp.asarray(dout), cache_g), act.relu_backward(dout, cache_c))


CONVS = [  # (N, C, H, W, F, kh, kw, stride, pad, dilation, bias)
    (2, 3, 9, 7, 5, 3, 3, (1, 1), (1, 1), (1, 1), True),
    (3, 1, 28, 28, 6, 5, 5, (1, 1), (0, 0), (1, 1), True),
    (1, 17, 13, 11, 3, 3, 3, (2, 2), (1, 1), (1, 1), False),
    (2, 4, 19, 23, 9, 3, 2, (2, 1), (0, 1), (2, 1), True),
    (1, 2, 8, 8, 16, 1, 1, (1, 1), (0, 0), (1, 1), True),
    (2, 33, 17, 18, 12, 3, 3, (1, 1), (1, 1), (1, 1), True),  # > 16 channels: several chunks
]


@on_gpu
@pytest.mark.parametrize("geom", CONVS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("contiguous", [True, False])
def test_direct_conv_matches_numpy(xp, rng, geom, dtype, contiguous):
    cp = _gpu(xp)
    N, C, H, W, F, kh, kw, s, p, d, bias = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    put = (lambda a: cp.asarray(a)) if contiguous else (lambda a: _noncontig(cp, a))
    out = K.conv_forward_direct_gpu(put(x), put(w), None if b is None else cp.asarray(b), stride=s, pad=p, dilation=d)
    want = _conv_ref(x, w, b, s, p, d)
    scale = max(1.0, math.sqrt(C * kh * kw))  # float32 sums of C*KH*KW products
    got = _numpy(out)
    assert got.dtype == dtype
    tol = TOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@on_gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 1, 1, 1), (64, 6, 12, 12), (3, 5), (2, 7, 33, 31)])
def test_channel_sums_match_numpy(xp, rng, dtype, shape):
    cp = _gpu(xp)
    a = (rng.standard_normal(shape) + 3).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    axes = (0, *range(2, len(shape)))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    s_a, s_aa = K.channel_sums_gpu(cp.asarray(a))
    _assert_close(s_a, a64.sum(axes))
    _assert_close(s_aa, (a64 * a64).sum(axes))
    s_a, s_ab = K.channel_sums_gpu(_noncontig(cp, a) if len(shape) == 4 else cp.asarray(a), cp.asarray(b))
    _assert_close(s_a, a64.sum(axes))
    _assert_close(s_ab, (a64 * b64).sum(axes))
    assert s_ab.dtype == dtype and s_ab.shape == (shape[1],)


@gpu_only
def test_mixing_numpy_and_cupy_on_the_gpu_raises_naming_both(xp):
    cp = _gpu(xp)
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    for call in (
        lambda: K.conv_forward_direct_gpu(cp.asarray(x), w),
        lambda: K.relu_backward_gpu(x, cp.asarray(x)),
        lambda: K.channel_sums_gpu(cp.asarray(x), x),
    ):
        with pytest.raises(TypeError) as err:
            call()
        assert "NumPy" in str(err.value) and "CuPy" in str(err.value)
        assert "numpy.ndarray" in str(err.value) and "cupy" in str(err.value)


@gpu_only
def test_compile_all_is_ok_on_the_gpu(xp):
    _gpu(xp)
    assert K.compile_all() == {m: "ok" for m in K.KERNEL_TEMPLATES}
