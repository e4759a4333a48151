"""The CUDA kernels on the CPU emulator: every entry point against PyTorch and the NumPy path.

No GPU needed, only a C++ compiler (skipped with a one-line reason without one).
Covers: float32/float64 sweeps with sizes that are not a multiple of the
block, 1x1 outputs, stride/padding/dilation, max-pooling ties and NaNs, grids
capped so the grid-stride loops run several times, shuffle mode, the launch
plans against the kernels' C signatures, AddressSanitizer, and planted bugs
(off-by-one bound, missing ``__syncthreads()``) that the harness must catch.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cnncourse
from cnncourse import kernels as K
from cnncourse import pool as cpu_pool
from cnncourse.kernels import emulator as E
from cnncourse.kernels import emulator_runner, plans

pytestmark = pytest.mark.skipif(E.find_compiler() is None, reason="no C++ compiler: the CUDA emulator is off")
torch = pytest.importorskip("torch")
F_ = torch.nn.functional

FLOATS = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}
MODES = [pytest.param({}, id="index-order"), pytest.param({"shuffle": True, "seed": 7}, id="shuffle"),
         pytest.param({"max_blocks": 2, "max_grid_z": 1}, id="capped-grid")]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _close(got, want, dtype, scale=1.0):
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype), (type(got), getattr(got, "dtype", None))
    assert got.shape == want.shape
    tol = TOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- sweeps against PyTorch

CONV_SWEEP = [  # N, C, H, W, F, kh, kw, stride, pad, dilation, bias
    (2, 3, 17, 19, 5, 3, 3, 1, 1, 1, True),     # 17x19 output: not a multiple of the 16x16 tile
    (1, 2, 3, 3, 9, 3, 3, 1, 0, 1, False),      # 1x1 output
    (3, 4, 11, 9, 3, 2, 3, (2, 1), (1, 0), (1, 2), True),
    (2, 17, 10, 10, 10, 5, 5, 2, 2, 1, True),   # > 16 channels: two channel chunks
    (1, 1, 9, 33, 4, 1, 1, 1, 0, 1, True),
    (2, 3, 20, 21, 12, 3, 3, 3, 1, 2, False),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geom", CONV_SWEEP)
def test_conv_forward_direct_matches_torch(geom, dtype, mode, rng):
    N, C, H, W, F, kh, kw, s, p, d, bias = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    with K.emulated(**mode):
        out = K.conv_forward_direct_gpu(x, w, b, stride=s, pad=p, dilation=d)
    want = F_.conv2d(_t(x).double(), _t(w).double(), None if b is None else _t(b).double(), stride=s, padding=p, dilation=d)
    _close(out, want, dtype, scale=math.sqrt(C * kh * kw))


IM2COL_SWEEP = [  # N, C, H, W, kh, kw, stride, pad, dilation
    (2, 3, 7, 9, 3, 3, 1, 0, 1),
    (1, 2, 3, 3, 3, 3, 1, 0, 1),  # one column
    (2, 2, 11, 8, 5, 3, (2, 1), (2, 1), 1),
    (1, 3, 13, 13, 3, 3, (2, 3), 1, 2),
    (3, 1, 5, 6, 1, 1, 1, 0, 1),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geom", IM2COL_SWEEP)
def test_im2col_and_col2im_match_torch_unfold_and_fold(geom, dtype, mode, rng):
    N, C, H, W, kh, kw, s, p, d = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    with K.emulated(**mode):
        cols = K.im2col_gpu(x, kh, kw, stride=s, pad=p, dilation=d)
        g = rng.standard_normal(cols.shape).astype(dtype)
        back = K.col2im_gpu(g, x.shape, kh, kw, stride=s, pad=p, dilation=d)
    _close(cols, F_.unfold(_t(x), (kh, kw), dilation=d, padding=p, stride=s), dtype)
    _close(back, F_.fold(_t(g), (H, W), (kh, kw), dilation=d, padding=p, stride=s), dtype, scale=3)


POOL_SWEEP = [  # N, C, H, W, size, stride, pad
    (2, 3, 9, 7, 2, None, 0),
    (1, 2, 3, 3, 3, 3, 1),     # 1x1 output
    (2, 2, 11, 10, (3, 2), (1, 2), (1, 1)),
    (1, 3, 17, 18, 3, 2, 1),
    (1, 1, 20, 20, 17, 3, 0),  # 289 positions: int32 arg-max
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geom", POOL_SWEEP)
def test_pooling_matches_torch_forward_and_backward(geom, dtype, mode, rng):
    N, C, H, W, size, stride, pad = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    xt = _t(x).double().requires_grad_()
    with K.emulated(**mode):
        out, argmax = K.max_pool_forward_gpu(x, size=size, stride=stride, pad=pad)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx = K.max_pool_backward_gpu(dout, argmax, x.shape, size=size, stride=stride, pad=pad)
        avg = {cip: K.avg_pool_forward_gpu(x, size=size, stride=stride, pad=pad, count_include_pad=cip) for cip in (True, False)}
        davg = {cip: K.avg_pool_backward_gpu(dout, x.shape, size=size, stride=stride, pad=pad, count_include_pad=cip)
                for cip in (True, False)}
    st = size if stride is None else stride
    want = F_.max_pool2d(xt, size, st, pad)
    _close(out, want, dtype)
    want.backward(_t(dout).double())
    _close(dx, xt.grad, dtype)
    for cip in (True, False):
        xt.grad = None
        want = F_.avg_pool2d(xt, size, st, pad, count_include_pad=cip)
        _close(avg[cip], want, dtype)
        want.backward(_t(dout).double())
        _close(davg[cip], xt.grad, dtype)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1,), (257,), (3, 5, 7, 9), (2, 1, 1, 1), (1000,)])
def test_relu_matches_torch(shape, dtype, mode, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0
    dout = rng.standard_normal(shape).astype(dtype)
    with K.emulated(**mode):
        out, positive = K.relu_forward_gpu(x, return_mask=True)
        dx = K.relu_backward_gpu(dout, x)
        dx_mask = K.relu_backward_gpu(dout, positive)
    xt = _t(x).double().requires_grad_()
    want = torch.relu(xt)
    want.backward(_t(dout).double())
    _close(out, want, dtype)
    np.testing.assert_array_equal(positive, x > 0)
    _close(dx, xt.grad, dtype)
    _close(dx_mask, xt.grad, dtype)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 1, 1, 1), (3, 5), (7, 2, 30, 31)])
def test_channel_sums_match_torch(shape, dtype, shuffle, rng):
    a = (rng.standard_normal(shape) + 2).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    axes = (0, *range(2, len(shape)))
    with K.emulated(shuffle=shuffle, seed=3):
        s_a, s_aa = K.channel_sums_gpu(a)
        _, s_ab = K.channel_sums_gpu(a, b)
    at, bt = _t(a).double(), _t(b).double()
    _close(s_a, at.sum(axes), dtype, scale=10)
    _close(s_aa, (at * at).sum(axes), dtype, scale=10)
    _close(s_ab, (at * bt).sum(axes), dtype, scale=10)


# ----------------------------------------------------------------------------- issue 19: max pooling and NaN


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("position", range(4))
def test_max_pool_nan_propagates_wherever_it_is_in_the_window(dtype, position):
    x = np.array([1.0, 3.0, 0.5, 2.0], dtype).reshape(1, 1, 2, 2)
    x.flat[position] = np.nan
    with K.emulated():
        out, argmax = K.max_pool_forward_gpu(x, size=2)
        dx = K.max_pool_backward_gpu(np.full((1, 1, 1, 1), 5.0, dtype), argmax, x.shape, size=2)
    ref, cache = cpu_pool.max_pool_forward(x, size=2)
    assert np.isnan(out).all() and np.isnan(ref).all()
    t_out, t_idx = F_.max_pool2d(_t(x), 2, return_indices=True)
    assert torch.isnan(t_out).all()
    assert int(argmax.ravel()[0]) == position == int(t_idx) == int(cache[2].ravel()[0])  # the NaN wins
    want = np.zeros(4, dtype)
    want[position] = 5.0
    np.testing.assert_array_equal(dx.ravel(), want)
    np.testing.assert_array_equal(dx, cpu_pool.max_pool_backward(np.full((1, 1, 1, 1), 5.0, dtype), cache))


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_pool_with_nans_and_ties_matches_the_numpy_path(dtype, rng):
    x = rng.standard_normal((2, 3, 8, 9)).astype(dtype)
    x[0, 0, 0, :4] = 2.5  # ties
    x[x > 1.8] = np.nan  # about 4 % NaN, in every window position somewhere
    for kw in ({"size": 2}, {"size": 3, "stride": 2, "pad": 1}):
        ref, cache = cpu_pool.max_pool_forward(x, **kw)
        with K.emulated(shuffle=True):
            out, argmax = K.max_pool_forward_gpu(x, **kw)
            dout = rng.standard_normal(out.shape).astype(dtype)
            dx = K.max_pool_backward_gpu(dout, argmax, x.shape, **kw)
        np.testing.assert_array_equal(out, ref)  # NaN where NumPy has NaN, equal elsewhere
        np.testing.assert_allclose(dx, cpu_pool.max_pool_backward(dout, cache), rtol=1e-6)


# ----------------------------------------------------------------------------- issue 19: grid.z of the direct convolution


@pytest.mark.parametrize("N, F, z", [(8191, 64, 65528), (8192, 63, 65535), (8192, 64, 65535), (4096, 128, 65535),
                                     (65535, 8, 65535), (100000, 4, 65535)])
def test_direct_conv_plan_caps_grid_z_at_cuda_limit(N, F, z):
    plan = plans.conv_forward_direct_plan((N, 3, 32, 32), (F, 3, 3, 3), np.float32, pad=1)
    assert plan.grid[2] == z == min(N * math.ceil(F / (4 if F <= 4 else 8)), 65535)
    assert plan.grid[0] <= 2**31 - 1 and plan.grid[1] <= 65535 and plan.grid[2] <= 65535
    plans.check_plan(plan)


@pytest.mark.parametrize("max_grid_z", [1, 3, 5])
def test_direct_conv_with_a_capped_grid_z_loops_over_images_and_filter_groups(max_grid_z, rng):
    x = rng.standard_normal((3, 5, 9, 10))
    w = rng.standard_normal((11, 5, 3, 3))  # 2 filter groups of 8 -> 6 (image, group) pairs
    b = rng.standard_normal(11)
    with K.emulated(max_grid_z=max_grid_z, shuffle=True):
        out = K.conv_forward_direct_gpu(x, w, b, pad=1)
    _close(out, F_.conv2d(_t(x), _t(w), _t(b), padding=1), np.float64, scale=10)


# ----------------------------------------------------------------------------- launch plans vs C signatures


def _all_plans():
    for dt in FLOATS:
        yield plans.im2col_plan((2, 3, 5, 5), dt, 3, 3)
        yield plans.col2im_plan((2, 3, 5, 5), dt, 3, 3)
        yield plans.max_pool_forward_plan((1, 2, 4, 4), dt)
        yield plans.max_pool_forward_plan((1, 2, 20, 20), dt, size=17)
        yield plans.max_pool_backward_plan((1, 2, 4, 4), dt)
        yield plans.max_pool_backward_plan((1, 2, 20, 20), dt, size=17)
        yield plans.avg_pool_forward_plan((1, 2, 4, 4), dt)
        yield plans.avg_pool_backward_plan((1, 2, 4, 4), dt)
        yield plans.relu_forward_plan((5,), dt, return_mask=True)
        yield plans.relu_backward_plan((5,), dt)
        yield plans.relu_backward_plan((5,), dt, mask=True)
        yield plans.conv_forward_direct_plan((1, 2, 5, 5), (3, 2, 3, 3), dt)
        yield plans.conv_forward_direct_plan((1, 2, 5, 5), (9, 2, 3, 3), dt)
        yield plans.channel_sums_plan((2, 3, 4, 4), dt)


def test_every_plan_matches_its_kernels_c_signature():
    seen = set()
    for plan in _all_plans():
        plans.check_plan(plan)
        params = K.kernel_params(plan.module, plan.kernel)
        assert [a.ctype for a in plan.args] == [p.ctype for p in params]
        seen.add(plan.kernel)
    assert seen == {e for m in K.KERNEL_TEMPLATES for e in K.name_expressions(m)}  # every instantiation


def test_signature_parser_reads_exact_c_types():
    params = K.kernel_params("im2col", "im2col<double>")
    assert params[0] == E.Param("const double*", "x") and params[1] == E.Param("double*", "cols")
    assert [p.ctype for p in params[-6:]] == ["long long"] * 6
    params = K.kernel_params("pool", "max_pool_backward<float, unsigned char>")
    assert [p.ctype for p in params[:3]] == ["const float*", "const unsigned char*", "float*"]


def test_a_plan_with_a_wrong_c_type_is_rejected():
    import dataclasses

    plan = plans.im2col_plan((1, 1, 4, 4), np.float32, 3, 3)
    args = list(plan.args)
    args[-1] = plans.Arg("int", 1)  # the kernel wants long long
    with pytest.raises(TypeError, match="s_ox is `long long`, the plan passes `int`"):
        plans.check_plan(dataclasses.replace(plan, args=tuple(args)))
    with pytest.raises(E.EmulatorError, match="int32 scalar"):
        emulator_runner.kernel("im2col", "im2col<float>")(
            (1,), (32,), [np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 9, 4), np.float32),
                          *[np.int32(1)] * 14, *[np.int64(1)] * 5, np.int32(1)])
    with pytest.raises(E.EmulatorError, match=r"\(float32\), got a float64 array"):
        emulator_runner.kernel("relu", "relu_backward<float>")(
            (1,), (32,), [np.zeros(3, np.float32), np.zeros(3), np.zeros(3, np.float32), np.int64(3)])


# ----------------------------------------------------------------------------- the wrappers' inputs


def test_numpy_outside_emulated_says_how_to_run_it():
    with pytest.raises(TypeError) as err:
        K.conv_forward_direct_gpu(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
    msg = str(err.value)
    assert "numpy.ndarray" in msg and "GPU" in msg and "emulated()" in msg


def test_gpu_arrays_inside_emulated_are_a_type_error():
    class FakeCupyArray:
        __module__ = "cupy"

        def __init__(self, shape):
            self.shape, self.dtype, self.ndim = shape, np.dtype(np.float32), len(shape)

    with K.emulated(), pytest.raises(TypeError, match="inside cnncourse.kernels.emulated\\(\\) x must be a NumPy array"):
        K.relu_forward_gpu(FakeCupyArray((3,)))


def test_emulated_returns_numpy_and_is_scoped():
    x = np.linspace(-1, 1, 9, dtype=np.float32)
    with K.emulated() as opts:
        assert emulator_runner.active() is opts
        out = K.relu_forward_gpu(x)
    assert emulator_runner.active() is None
    assert type(out) is np.ndarray and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_second_call_does_not_recompile(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("CNNCOURSE_EMULATOR_CACHE", str(tmp_path / "cache"))
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    before = E.compile_count
    with K.emulated():
        first = K.conv_forward_direct_gpu(x, w)
        assert E.compile_count == before + 1
        second = K.conv_forward_direct_gpu(x, w)
    assert E.compile_count == before + 1
    np.testing.assert_array_equal(first, second)
    libs = list((tmp_path / "cache").glob("*.so"))
    assert len(libs) == 1
    assert Path(cnncourse.__file__).parent not in libs[0].parents  # never inside the package


def test_cache_dir_follows_xdg_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNCOURSE_EMULATOR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert E.cache_dir() == tmp_path / "cnncourse" / "emulator"
    monkeypatch.setenv("CNNCOURSE_EMULATOR_CACHE", str(tmp_path / "x"))
    assert E.cache_dir() == tmp_path / "x"


def test_no_compiler_is_a_one_line_reason(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(E.shutil, "which", lambda name: None)
    assert E.find_compiler() is None
    ok, message = K.emulator_status()
    assert not ok and "no C++ compiler" in message and "\n" not in message
    with pytest.raises(E.EmulatorUnavailable, match="needs a C\\+\\+ compiler"):
        E.compile_kernel("__global__ void k() {}", "k")


def test_emulator_status_and_doctor_line():
    ok, message = K.emulator_status()
    assert ok, message
    from cnncourse.grading import doctor

    lines = dict(doctor.report())
    assert lines["CUDA emulator"].startswith("ok")


# ----------------------------------------------------------------------------- the execution model


def _kernel(src: str, name: str, **kw):
    return E.compile_kernel(textwrap.dedent(src), name, filename="test_kernel.cu", **kw)


REVERSE = """
// Reverse each block's slice through shared memory: right only with the barrier.
__global__ void reverse(const float* x, float* y, int n) {
    __shared__ float tile[64];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    tile[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    const int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - t);
    if (j < n) y[j] = tile[t];
}
"""


@pytest.mark.parametrize("shuffle", [False, True])
def test_syncthreads_is_a_real_barrier(shuffle):
    k = _kernel(REVERSE, "reverse")
    x = np.arange(128, dtype=np.float32)
    y = np.zeros_like(x)
    k((2,), (64,), [x, y, 128], shuffle=shuffle, seed=1)
    np.testing.assert_array_equal(y, np.concatenate([x[:64][::-1], x[64:][::-1]]))


def test_block_and_grid_builtins_in_three_dimensions():
    k = _kernel("""
        __global__ void ids(int* out) {
            const int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
            const int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
            const int nt = blockDim.x * blockDim.y * blockDim.z;
            out[b * nt + t] = b * 1000 + t;
        }""", "ids")
    out = np.full(2 * 3 * 4 * 5 * 2 * 3, -1, np.int32)
    k((2, 3, 4), (5, 2, 3), [out], shuffle=True, seed=5)
    b, t = np.divmod(np.arange(out.size), 30)
    np.testing.assert_array_equal(out, b * 1000 + t)


def test_shuffle_mode_changes_an_order_dependent_result():
    # Every thread writes its index to one place: the last writer wins, and a GPU promises no order.
    k = _kernel("""
        __global__ void last_writer(int* out) { out[0] = blockIdx.x * blockDim.x + threadIdx.x; }""", "last_writer")
    out = np.zeros(1, np.int32)
    k((4,), (32,), [out])
    assert out[0] == 127  # index order
    seen = set()
    for seed in range(6):
        k((4,), (32,), [out], shuffle=True, seed=seed)
        seen.add(int(out[0]))
    assert len(seen) > 2  # the order differs from seed to seed ...
    k((4,), (32,), [out], shuffle=True, seed=3)
    again = int(out[0])
    k((4,), (32,), [out], shuffle=True, seed=3)
    assert out[0] == again  # ... and is repeatable for one seed


def test_extern_c_kernels_and_cuda_includes_compile():
    k = _kernel("""
        #include <cuda_runtime.h>
        __device__ __forceinline__ float twice(float v) { return 2.0f * v; }
        extern "C" __global__ void scale(const float* __restrict__ x, float* __restrict__ y, int n) {
            for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
                y[i] = twice(x[i]) + min(i, 3) + fmaxf(0.0f, -1.0f);
        }""", "scale")
    x = np.arange(10, dtype=np.float32)
    y = np.zeros_like(x)
    k((2,), (3,), [x, y, 10], shuffle=True)
    np.testing.assert_array_equal(y, 2 * x + np.minimum(np.arange(10), 3))


def test_atomic_add_sums_every_thread():
    k = _kernel("""
        __global__ void count(float* total, int* hits, int n) {
            const int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) { atomicAdd(total, 1.5f); atomicAdd(hits, 1); }
        }""", "count")
    total, hits = np.zeros(1, np.float32), np.zeros(1, np.int32)
    k((3,), (100,), [total, hits, 250], shuffle=True)
    assert total[0] == 375.0 and hits[0] == 250


def test_dynamic_shared_memory_has_the_launch_size():
    k = _kernel("""
        __global__ void stage(const double* x, double* y, int n) {
            extern __shared__ double buf[];
            const int t = threadIdx.x;
            for (int j = t; j < n; j += blockDim.x) buf[j] = x[j];
            __syncthreads();
            if (t == 0) { double s = 0; for (int j = 0; j < n; ++j) s += buf[j]; y[0] = s; }
        }""", "stage")
    x = np.arange(1000.0)
    y = np.zeros(1)
    k((1,), (64,), [x, y, 1000], shared_mem=8000)
    assert y[0] == x.sum()
    with pytest.raises(E.EmulatorError, match="dynamic shared memory"):
        k((1,), (64,), [x, y, 1000], shared_mem=E.MAX_DYNAMIC_SHARED + 1)


def test_early_return_before_a_barrier_is_an_error():
    k = _kernel("""
        __global__ void early(float* y, int n) {
            const int i = threadIdx.x;
            if (i >= n) return;      // these threads never reach the barrier
            __syncthreads();
            y[i] = 1.0f;
        }""", "early")
    with pytest.raises(E.EmulatorError, match=r"block \(0, 0, 0\): 10 of 32 threads wait at __syncthreads\(\) while 22"):
        k((1,), (32,), [np.zeros(32, np.float32), 10])


def test_barrier_in_a_divergent_branch_is_an_error():
    k = _kernel("""
        __global__ void diverge(float* y) {
            if (threadIdx.x < 16) { __syncthreads(); y[threadIdx.x] = 1.0f; }
            else { __syncthreads(); y[threadIdx.x] = 2.0f; }
        }""", "diverge")
    with pytest.raises(E.EmulatorError, match="different __syncthreads"):
        k((1,), (32,), [np.zeros(32, np.float32)])


def test_warp_intrinsics_fail_naming_themselves():
    src = """
        __global__ void warp_sum(float* y) {
            float v = y[threadIdx.x];
            v += __shfl_down_sync(0xffffffff, v, 16);
            y[threadIdx.x] = v;
        }"""
    with pytest.raises(E.EmulatorCompileError, match=r"__shfl_down_sync is not supported \(warps"):
        _kernel(src, "warp_sum")


def test_compile_error_shows_the_compiler_message_and_the_source_line():
    src = "__global__ void broken(float* y) {\n    y[threadIdx.x] = undeclared_name;\n}\n"
    with pytest.raises(E.EmulatorCompileError) as err:
        E.compile_kernel(src, "broken", filename="student_kernel.cu")
    msg = str(err.value)
    assert "student_kernel.cu:2" in msg and "undeclared_name" in msg and "y[threadIdx.x] = undeclared_name;" in msg


def test_bad_launches_are_errors():
    k = _kernel(REVERSE, "reverse")
    x, y = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(E.EmulatorError, match="at most 1024 threads"):
        k((1,), (32, 33), [x, y, 4])
    with pytest.raises(E.EmulatorError, match="takes 3 arguments"):
        k((1,), (64,), [x, y])
    with pytest.raises(E.EmulatorError, match="needs a NumPy array"):
        k((1,), (64,), [x, [0.0] * 4, 4])
    with pytest.raises(E.EmulatorError, match="read-only"):
        y.flags.writeable = False
        k((1,), (64,), [x, y, 4])
    with pytest.raises(ValueError, match="no `__global__ void nope"):
        _kernel(REVERSE, "nope")


# ----------------------------------------------------------------------------- the harness can fail


def _mutate(module: str, old: str, new: str) -> str:
    """``<module>.cu`` with every ``old`` replaced by ``new`` (a planted bug)."""
    src = K.read_source(module)
    assert old in src, f"{old!r} not in {module}.cu"
    return src.replace(old, new)


def test_planted_off_by_one_bound_is_caught(rng):
    # The pooling window scan with `iy > H` instead of `iy >= H`: reads one row past the image
    # (the next plane, or past the end); the comparison with NumPy must fail.
    source = _mutate("pool", "if (iy < 0 || iy >= H) continue;", "if (iy < 0 || iy > H) continue;")
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    plan = plans.avg_pool_forward_plan(x.shape, x.dtype, size=3, stride=2, pad=1)
    good = emulator_runner.run_plan(plan, {"x": x})["out"]
    bad = emulator_runner.run_plan(plan, {"x": x}, source=source)["out"]
    _close(good, F_.avg_pool2d(_t(x), 3, 2, 1), np.float32)
    with pytest.raises(AssertionError):
        _close(bad, F_.avg_pool2d(_t(x), 3, 2, 1), np.float32)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("which", ["after the loads", "inside the reduction"])
def test_missing_syncthreads_in_the_shared_memory_reduction_is_caught(which, shuffle, rng):
    src = K.read_source("batchnorm")
    if which == "after the loads":
        source = _mutate("batchnorm", "    s_ab[t] = acc_ab;\n    __syncthreads();", "    s_ab[t] = acc_ab;")
    else:
        source = _mutate("batchnorm", "        }\n        __syncthreads();\n    }", "        }\n    }")
    assert source != src
    a = (rng.standard_normal((4, 3, 16, 16)) + 1).astype(np.float64)
    plan = plans.channel_sums_plan(a.shape, a.dtype)
    opts = emulator_runner.EmulatorOptions(shuffle=shuffle, seed=11)
    good = emulator_runner.run_plan(plan, {"a": a}, opts)["part_a"].sum(1)
    bad = emulator_runner.run_plan(plan, {"a": a}, opts, source=source)["part_a"].sum(1)
    np.testing.assert_allclose(good, a.sum((0, 2, 3)), rtol=1e-12)
    assert not np.allclose(bad, a.sum((0, 2, 3)), rtol=1e-6), "a missing barrier went unnoticed"


# ----------------------------------------------------------------------------- AddressSanitizer

_ASAN_SCRIPT = r"""
import numpy as np, sys
from cnncourse import kernels as K
from cnncourse.kernels import emulator as E
rng = np.random.default_rng(0)
if sys.argv[1] == "clean":
    with K.emulated(sanitize=True, shuffle=True):
        for dt in (np.float32,):  # one dtype: each sanitized build costs seconds
            x = rng.standard_normal((2, 3, 7, 6)).astype(dt)
            cols = K.im2col_gpu(x, 3, 3, stride=2, pad=1, dilation=(1, 2))
            K.col2im_gpu(cols, x.shape, 3, 3, stride=2, pad=1, dilation=(1, 2))
            out, am = K.max_pool_forward_gpu(x, size=3, stride=2, pad=1)
            K.max_pool_backward_gpu(out, am, x.shape, size=3, stride=2, pad=1)
            o = K.avg_pool_forward_gpu(x, size=2, pad=1, count_include_pad=False)
            K.avg_pool_backward_gpu(o, x.shape, size=2, pad=1, count_include_pad=False)
            y, m = K.relu_forward_gpu(x, return_mask=True)
            K.relu_backward_gpu(y, m); K.relu_backward_gpu(y, x)
            w = rng.standard_normal((9, 3, 3, 3)).astype(dt)
            got = K.conv_forward_direct_gpu(x, w, w[:, 0, 0, 0].copy(), pad=1, stride=(1, 2))
            K.channel_sums_gpu(x, x)
    print("CLEAN-OK")
else:
    src = '''
    __global__ void conv1d(const float* x, const float* w, float* out, int n, int k) {
        const int n_out = n - k + 1;
        const int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i > n_out) return;  // off by one: should be i >= n_out
        float acc = 0.0f;
        for (int j = 0; j < k; ++j) acc += w[j] * x[i + j];
        out[i] = acc;
    }'''
    k = E.compile_kernel(src, "conv1d", sanitize=True, filename="planted_off_by_one.cu")
    x = np.arange(10, dtype=np.float32); w = np.ones(3, np.float32); out = np.zeros(8, np.float32)
    k((1,), (32,), [x, w, out, 10, 3])
    print("NOT-CAUGHT")
"""


def _run_asan(arg: str, tmp_path):
    lib = E.asan_preload()
    if lib is None:
        pytest.skip("the compiler has no AddressSanitizer runtime (libasan.so)")
    env = dict(os.environ, LD_PRELOAD=lib, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               PYTHONPATH=str(Path(cnncourse.__file__).parent.parent))
    script = tmp_path / "asan_run.py"
    script.write_text(_ASAN_SCRIPT)
    return subprocess.run([sys.executable, str(script), arg], capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_every_wrapper_is_clean_under_address_sanitizer(tmp_path):
    result = _run_asan("clean", tmp_path)
    assert result.returncode == 0 and "CLEAN-OK" in result.stdout, result.stderr[-3000:]
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr


def test_address_sanitizer_catches_a_planted_out_of_bounds_write(tmp_path):
    result = _run_asan("planted", tmp_path)
    assert result.returncode != 0 and "NOT-CAUGHT" not in result.stdout
    assert re.search(r"AddressSanitizer: (heap|global|stack)-buffer-overflow", result.stderr), result.stderr[-3000:]
    assert "planted_off_by_one.cu:" in result.stderr or "conv1d" in result.stderr


def test_the_header_ships_as_package_data():
    import tomllib

    root = Path(cnncourse.__file__).resolve().parent
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cnncourse"]
    assert any(Path("kernels/cuda_emu.h").match(p) for p in patterns), patterns
    assert E.header_path() == root / "kernels" / "cuda_emu.h" and E.header_path().exists()
    assert "not modelled" in E.__doc__.lower() and "warps" in E.__doc__ and "speed" in E.__doc__
