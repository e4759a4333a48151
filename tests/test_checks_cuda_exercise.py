"""Exercise 5.3 (a CUDA C kernel as a string, ungraded): the check passes a right kernel and names classic mistakes.

Runs on the CPU emulator (or CuPy where a GPU is usable); skipped without a C++ compiler.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnncourse import checks
from cnncourse.checks import ch05_fast_convolution as ch05
from cnncourse.kernels import emulator

pytestmark = pytest.mark.skipif(emulator.find_compiler() is None, reason="no C++ compiler: the CUDA emulator is off")

HEAD = "__global__ void conv1d_valid(const double* x, const double* w, double* out, int n_out, int K)\n"

SOLUTION = HEAD + """{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n_out; i += blockDim.x * gridDim.x) {
        double acc = 0.0;
        for (int j = 0; j < K; ++j) acc += w[j] * x[i + j];
        out[i] = acc;
    }
}
"""

NO_GUARD = HEAD + """{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n_out + stride; i += stride) {
        double acc = 0.0;
        for (int j = 0; j < K; ++j) acc += w[j] * x[i + j];
        out[i] = acc;
    }
}
"""

SWAPPED_INDEX = HEAD + """{
    for (int i = threadIdx.x * blockDim.x + blockIdx.x; i < n_out; i += blockDim.x * gridDim.x) {
        double acc = 0.0;
        for (int j = 0; j < K; ++j) acc += w[j] * x[i + j];
        out[i] = acc;
    }
}
"""

NO_LOOP = HEAD + """{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_out) return;
    double acc = 0.0;
    for (int j = 0; j < K; ++j) acc += w[j] * x[i + j];
    out[i] = acc;
}
"""

# One block stages x in shared memory, but forgets the barrier between the loads and the reads.
RACE = HEAD + """{
    __shared__ double tile[1024];
    const int n = n_out + K - 1;
    for (int t = threadIdx.x; t < n && t < 1024; t += blockDim.x) tile[t] = x[t];
    // missing: __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n_out; i += blockDim.x * gridDim.x) {
        double acc = 0.0;
        for (int j = 0; j < K; ++j) acc += w[j] * tile[i + j];
        out[i] = acc;
    }
}
"""

FLIPPED = SOLUTION.replace("w[j] * x[i + j]", "w[K - 1 - j] * x[i + j]")


def test_a_right_kernel_passes():
    result = checks.check_cuda_conv1d(SOLUTION)
    assert result.passed, result.message
    assert "ungraded" in result.message and result.cases_passed == result.cases_total == 3


def test_the_skeleton_is_not_attempted():
    skeleton = HEAD + "{\n    " + ch05.CUDA_TODO + "\n}\n"
    assert checks.check_cuda_conv1d(skeleton).status == "not attempted"
    assert checks.check_cuda_conv1d(None).status == "not attempted"


@pytest.mark.parametrize("source, cause", [
    (NO_GUARD, "missing bounds guard"),
    (SWAPPED_INDEX, "swapped index arithmetic"),
    (NO_LOOP, "grid-stride loop"),
    (RACE, "a race"),
    (FLIPPED, "the filter is flipped"),
])
def test_classic_mistakes_are_named(source, cause):
    result = checks.check_cuda_conv1d(source)
    assert result.status == "failed" and cause in result.message, result.message


def test_compile_errors_and_wrong_signatures_are_reported():
    broken = SOLUTION.replace("double acc = 0.0;", "double acc = 0.0")
    result = checks.check_cuda_conv1d(broken)
    assert result.status == "failed" and "does not compile" in result.message and "exercise_5_3.cu:" in result.message
    wrong = SOLUTION.replace("int n_out, int K", "long long n_out, int K")
    result = checks.check_cuda_conv1d(wrong)
    assert result.status == "failed" and "must be `__global__ void conv1d_valid(" in result.message


def test_the_cuda_exercise_is_not_registered_for_grading():
    assert all(e.function != "conv1d_valid" and e.number != ch05.CUDA_EXERCISE for e in checks.EXERCISES.values())


def test_run_cuda_conv1d_matches_numpy():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=50), rng.normal(size=4)
    out, spill = ch05.run_cuda_conv1d(SOLUTION, x, w, grid=2, block=8, shuffle=True, seed=4)
    np.testing.assert_allclose(out, np.correlate(x, w, mode="valid"), rtol=1e-12)
    assert (spill == -7777.0).all()
