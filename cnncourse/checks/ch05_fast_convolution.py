"""Checks for notebook 05 (fast convolution: im2col, FFT, GPU)."""
from __future__ import annotations

import numpy as np

from .. import signal
from ..im2col import im2col
from ..kernels.simulate import launch
from .core import Case, CheckResult, exercise, run_cases

NOTEBOOK = "05_fast_convolution"


# ----------------------------------------------------------------------------- 5.1 im2col


def _im2col_cases():
    """(label, x, kh, kw, stride, pad); ``None`` stride/pad means "use the default"."""
    rng = np.random.default_rng(501)
    yield "x (1, 1, 4, 4) = 0..15, 3x3 kernel, defaults", np.arange(16.0).reshape(1, 1, 4, 4), 3, 3, None, None
    yield "x (2, 3, 5, 6), 3x2 kernel, stride=1, pad=1", rng.normal(size=(2, 3, 5, 6)), 3, 2, 1, 1
    yield "x (1, 2, 7, 7), 3x3 kernel, stride=2, pad=0", rng.normal(size=(1, 2, 7, 7)), 3, 3, 2, 0
    yield "x (2, 2, 6, 5), 2x3 kernel, stride=2, pad=1", rng.normal(size=(2, 2, 6, 5)), 2, 3, 2, 1
    yield "x (1, 4, 3, 3), 1x1 kernel, stride=1, pad=0", rng.normal(size=(1, 4, 3, 3)), 1, 1, 1, 0


def _reorder_rows(cols, c, kh, kw, order):
    """Rows of ``cols`` regrouped: ``order`` is a permutation of the axes (c, i, j)."""
    n, _, p = cols.shape
    return cols.reshape(n, c, kh, kw, p).transpose(0, *(1 + a for a in order), 4).reshape(n, c * kh * kw, p)


@exercise("5.1", "im2col_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.im2col.im2col", "cnncourse.im2col.im2col_cpu"))
def check_im2col_exercise(fn):
    """``fn(x, kh, kw, *, stride=1, pad=0)``: columns ``(N, C*KH*KW, OH*OW)`` in the package's layout."""
    cases = []
    for label, x, kh, kw, stride, pad in _im2col_cases():
        s, p = stride or 1, pad or 0
        ref = im2col(x, kh, kw, stride=s, pad=p)
        c = x.shape[1]
        oh = (x.shape[2] + 2 * p - kh) // s + 1
        ow = (x.shape[3] + 2 * p - kw) // s + 1
        by_pixel = ref.reshape(x.shape[0], -1, oh, ow).transpose(0, 1, 3, 2).reshape(ref.shape)
        kwargs = {} if stride is None else {"stride": stride, "pad": pad}
        cases.append(Case(label, (x, kh, kw), kwargs, expected=ref, mistakes={
            "the padding is ignored: pad the input with `pad` zeros on each side first (np.pad)":
                im2col(x, kh, kw, stride=s, pad=0),
            "the stride is ignored: output pixel (oy, ox) starts at row oy*stride, column ox*stride":
                im2col(x, kh, kw, stride=1, pad=p),
            "the layout is transposed: the package wants (N, C*KH*KW, OH*OW), one column per output pixel, "
            "not one row per output pixel": ref.transpose(0, 2, 1),
            "wrong tap order inside the kernel: rows must run (c, i, j) with j (the column) fastest, like "
            "w.reshape(F, -1); you have i fastest (column-major)": _reorder_rows(ref, c, kh, kw, (0, 2, 1)),
            "wrong row order: channel c must be the slowest index, (c, i, j) like w.reshape(F, -1); "
            "you have (i, j, c)": _reorder_rows(ref, c, kh, kw, (1, 2, 0)),
            "the columns run over output pixels in column-major order: column oy*OW + ox needs ox fastest":
                by_pixel,
        }))
    return run_cases("5.1", "im2col_exercise", fn, cases)


# ----------------------------------------------------------------------------- 5.2 one thread per output


def run_conv1d_threads(thread_fn, x, w, *, block_size: int = 4, seed: int = 0):
    """Launch ``thread_fn(i, x, w, out)`` over the ``len(x) - len(w) + 1`` valid outputs; return ``out``.

    The grid is rounded up to whole blocks, so some threads have ``i >= len(out)``.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    out = np.zeros(len(x) - len(w) + 1)
    launch(thread_fn, out.shape[0], x, w, out, block_size=block_size, seed=seed)
    return out


def _shifted_left(x, w):
    """What ``out[i] = sum_j w[j] x[i + j - 1]`` gives (Python reads x[-1] as the last sample)."""
    n_out = len(x) - len(w) + 1
    return np.array([sum(w[j] * x[i + j - 1] for j in range(len(w))) for i in range(n_out)])


@exercise("5.2", "conv1d_thread", notebook=NOTEBOOK, forbidden=("cnncourse.signal.correlate1d",))
def check_conv1d_thread(fn):
    """``fn(i, x, w, out)``: thread ``i`` writes ``out[i] = sum_j w[j] x[i + j]`` (valid correlation), if ``i`` is in range."""
    rng = np.random.default_rng(502)
    signals = [
        ("x = [0 1 1 2 3 5 8 13], w = [1 2 3]", np.array([0, 1, 1, 2, 3, 5, 8, 13.0]), np.array([1.0, 2.0, 3.0])),
        ("random x (n=11), w (K=4), 2 blocks of 4 threads", rng.normal(size=11), rng.normal(size=4)),
        ("random x (n=20), w (K=5)", rng.normal(size=20), rng.normal(size=5)),
        ("x (n=5), w (K=5): one output", rng.normal(size=5), rng.normal(size=5)),
    ]
    cases = []
    for label, x, w in signals:
        ref = signal.correlate1d(x, w, mode="valid")
        cases.append(Case(label, (x, w), expected=ref, mistakes={
            "the filter is flipped (w[K-1-j]): that is convolution; correlation reads w[j] with x[i + j]":
                signal.correlate1d(x, w[::-1], mode="valid"),
            "off by one: output i starts at x[i] (valid mode has no padding), not x[i - 1]":
                _shifted_left(x, w),
            "off by one: the loop over taps stops one short; use range(K), all K taps":
                signal.correlate1d(x, np.append(w[:-1], 0.0), mode="valid"),
        }))
    if not callable(fn):  # let run_cases say so
        return run_cases("5.2", "conv1d_thread", fn, cases)
    return run_cases("5.2", "conv1d_thread", lambda x, w: run_conv1d_threads(fn, x, w), cases)


# ----------------------------------------------------------------------------- 5.4 a layer from your im2col


def _conv_ref(x, w, b, stride, pad):
    from ..conv import conv_forward

    return conv_forward(x, w, b, stride=stride, pad=pad)[0]


def _layer_cases():
    """(label, x, w, b, stride, pad)."""
    rng = np.random.default_rng(504)
    yield "x (2, 3, 6, 7), w (4, 3, 3, 3), stride 1, pad 1", rng.normal(size=(2, 3, 6, 7)), rng.normal(size=(4, 3, 3, 3)), \
        rng.normal(size=4), 1, 1
    yield "x (1, 2, 9, 8), w (5, 2, 3, 2), stride 2, pad 0", rng.normal(size=(1, 2, 9, 8)), rng.normal(size=(5, 2, 3, 2)), \
        rng.normal(size=5), 2, 0
    yield "x (3, 4, 5, 5), w (2, 4, 1, 1), stride 1, pad 0 (a 1x1 layer)", rng.normal(size=(3, 4, 5, 5)), \
        rng.normal(size=(2, 4, 1, 1)), rng.normal(size=2), 1, 0
    yield "x (1, 1, 7, 4), w (3, 1, 5, 3), stride 1, pad 2", rng.normal(size=(1, 1, 7, 4)), rng.normal(size=(3, 1, 5, 3)), \
        rng.normal(size=3), 1, 2


@exercise("5.4", "conv_layer_im2col", notebook=NOTEBOOK,
          forbidden=("cnncourse.conv.conv_forward", "cnncourse.conv.conv_forward_naive", "cnncourse.im2col.im2col",
                     "cnncourse.im2col.im2col_cpu"))
def check_conv_layer_im2col(fn):
    """``fn(x, w, b, *, stride=1, pad=0)``: the layer of 4.1 as your 5.1 im2col and one matrix product."""
    cases = []
    for label, x, w, b, stride, pad in _layer_cases():
        F = w.shape[0]
        ref = _conv_ref(x, w, b, stride, pad)
        mistakes = {
            "the bias is missing: add b[f] to every pixel of output map f (b[:, None] against (F, OH*OW))":
                _conv_ref(x, w, None, stride, pad),
            "the weights are flattened the wrong way: W_mat is w.reshape(F, -1), one filter per row, "
            "not w.reshape(-1, F)": _conv_ref(x, w.reshape(-1, F).T.reshape(w.shape), b, stride, pad),
            "the kernel is flipped (true convolution); a conv layer cross-correlates":
                _conv_ref(x, w[:, :, ::-1, ::-1].copy(), b, stride, pad),
        }
        if ref.shape[2] != ref.shape[3]:
            flat = ref.reshape(ref.shape[0], F, -1)
            mistakes["the product (N, F, OH*OW) is reshaped in the wrong order: reshape it to (N, F, OH, OW), "
                     "OW fastest"] = flat.reshape(ref.shape[0], F, ref.shape[3], ref.shape[2])
        cases.append(Case(label, (x, w, b), {"stride": stride, "pad": pad}, expected=ref, mistakes=mistakes))
    return run_cases("5.4", "conv_layer_im2col", fn, cases)


# ----------------------------------------------------------------------------- 5.3 a CUDA C kernel (ungraded)
#
# Ungraded on purpose: checking it means compiling the student's C source and
# loading the result into the checking process.  Native code is outside every
# limit of the grading sandbox (its audit hook sees Python calls only; a kernel
# file can declare and call any C library function), and the sandbox refuses to
# start processes, the compiler included.  So the check runs in the notebook
# only, on the student's own machine, and the autograder does not know it.

CUDA_EXERCISE = "5.3"
CUDA_KERNEL = "conv1d_valid"
CUDA_SIGNATURE = "__global__ void conv1d_valid(const double* x, const double* w, double* out, int n_out, int K)"
CUDA_PARAMS = ("const double*", "const double*", "double*", "int", "int")
#: The exercise cell's starting point; a source still containing this line counts as not attempted.
CUDA_TODO = "// TODO: your code here"
_UNWRITTEN = -7777.0  # what ``out`` holds before the kernel runs (a GPU gives garbage)


def _cuda_runner():
    """``run(source, bufs, grid, block, shuffle, seed)`` on the GPU (CuPy) where usable, else the emulator."""
    from ..backend import cupy_or_none

    cp = cupy_or_none()
    if cp is not None:
        def run(source, bufs, grid, block, shuffle, seed):
            mod = cp.RawModule(code=source, options=("-std=c++17",), name_expressions=[CUDA_KERNEL])
            kernel = mod.get_function(CUDA_KERNEL)
            x, w, out, n_out, k = bufs
            dev = [cp.asarray(a) for a in (x, w, out)]
            kernel((grid,), (block,), (*dev, np.int32(n_out), np.int32(k)))
            return [cp.asnumpy(a) for a in dev]
        return "GPU (CuPy)", run

    from ..kernels import emulator

    def run(source, bufs, grid, block, shuffle, seed):
        kernel = emulator.compile_kernel(source, CUDA_KERNEL, filename="exercise_5_3.cu")
        x, w, out, n_out, k = bufs
        kernel((grid,), (block,), [x, w, out, np.int32(n_out), np.int32(k)], shuffle=shuffle, seed=seed)
        return [x, w, out]
    return "CPU emulator", run


def _conv1d_buffers(x, w, n_threads):
    """x, w and out, each followed by a guard zone: NaN after the inputs, the unwritten marker after out.

    The guard zones are long enough for every thread of the launch, so a kernel
    without a bounds guard writes into them (and is caught) instead of into
    memory it does not own.
    """
    guard = n_threads + len(w) + 8
    xb = np.concatenate([x, np.full(guard, np.nan)])
    wb = np.concatenate([w, np.full(guard, np.nan)])
    n_out = len(x) - len(w) + 1
    ob = np.full(n_out + guard, _UNWRITTEN)
    return xb, wb, ob, n_out


def run_cuda_conv1d(source: str, x, w, *, grid: int, block: int, shuffle: bool = False, seed: int = 0):
    """Launch ``conv1d_valid<<<grid, block>>>`` on ``x``, ``w``; return ``(out, spill)``.

    ``spill`` is what the kernel wrote past the end of ``out`` (the guard zone; all
    ``-7777`` when it wrote nothing there).  Unwritten outputs hold ``-7777``.
    Runs on the GPU with CuPy where one is usable, else on the CPU emulator.
    """
    _, run = _cuda_runner()
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    xb, wb, ob, n_out = _conv1d_buffers(x, w, grid * block)
    _, _, ob = run(source, [xb, wb, ob, n_out, len(w)], grid, block, shuffle, seed)
    return ob[:n_out], ob[n_out:]


def _cuda_result(status: str, message: str, passed: int = 0, total: int = 3) -> CheckResult:
    return CheckResult(CUDA_EXERCISE, CUDA_KERNEL, status, message, passed, total)


def _diagnose_conv1d(out, spill, x, w, grid, block) -> str | None:
    """The classic mistake behind a wrong launch result, or None when ``out`` is right."""
    n_out = len(out)
    ref = signal.correlate1d(x, w, mode="valid")
    threads = grid * block
    if (spill != _UNWRITTEN).any():
        first = int(np.argmax(spill != _UNWRITTEN))
        return (f"the kernel wrote past the end of out (out[{n_out + first}], but out has {n_out} elements): the "
                f"launch has {threads} threads, so threads with i >= n_out must do nothing -- a missing bounds "
                "guard (`if (i >= n_out) return;`, or `i < n_out` as the loop condition)")
    unwritten = np.flatnonzero(out == _UNWRITTEN)
    if unwritten.size:
        if threads < n_out and unwritten.min() >= threads:
            return (f"only out[0..{threads - 1}] were written: the launch has {threads} threads for {n_out} outputs, "
                    "so each thread must handle several -- a grid-stride loop "
                    "`for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n_out; i += blockDim.x * gridDim.x)`")
        return (f"{unwritten.size} of {n_out} outputs were never written (first out[{int(unwritten[0])}]) although "
                "the grid has a thread for each: the global index is wrong -- it is "
                "`blockIdx.x * blockDim.x + threadIdx.x` (swapped index arithmetic such as "
                "`threadIdx.x * blockDim.x + blockIdx.x` skips some outputs and repeats others)")
    if np.isnan(out).any():
        return (f"out[{int(np.flatnonzero(np.isnan(out))[0])}] is NaN: the kernel read past the end of x or w "
                "(read x[i + j] and w[j] with 0 <= j < K)")
    if np.allclose(out, ref, rtol=1e-10, atol=1e-12):
        return None
    bad = int(np.flatnonzero(~np.isclose(out, ref, rtol=1e-10, atol=1e-12))[0])
    msg = f"out[{bad}] = {out[bad]:.6g}, expected {ref[bad]:.6g}"
    if np.allclose(out, signal.correlate1d(x, w[::-1], mode="valid")):
        return msg + ": the filter is flipped (w[K-1-j]); this is correlation, out[i] = sum_j w[j] * x[i + j]"
    if n_out > 1 and np.allclose(out[1:], _shifted_left(x, w)[1:]):
        return msg + ": off by one, output i starts at x[i], not x[i - 1]"
    return msg


def check_cuda_conv1d(source) -> CheckResult:
    """Exercise 5.3 (ungraded): ``source`` is CUDA C defining ``conv1d_valid``; run it and name the classic mistakes.

    Runs on the GPU (CuPy) where one is usable, else on the CPU emulator; compares
    with ``cc.signal.correlate1d(x, w, mode="valid")`` on launches with spare
    threads (bounds guard), with fewer threads than outputs (grid-stride loop),
    and in several thread orders (races).
    """
    head = f"Exercise {CUDA_EXERCISE} (CUDA C {CUDA_KERNEL}, ungraded)"
    if not isinstance(source, str) or CUDA_TODO in source:
        return _cuda_result("not attempted", f"{head}: not attempted yet -- write the body of {CUDA_KERNEL}")
    from ..kernels import emulator

    try:
        where, _ = _cuda_runner()
        if where == "CPU emulator":
            if emulator.find_compiler() is None:
                return _cuda_result("not attempted", f"{head}: cannot be checked here -- no GPU and no C++ compiler "
                                    "for the CPU emulator")
            params = [p.ctype for p in emulator.parse_signature(source, CUDA_KERNEL)]
            if tuple(params) != CUDA_PARAMS:
                return _cuda_result("failed", f"{head}: the kernel must be `{CUDA_SIGNATURE}`, yours takes "
                                    f"({', '.join(params)})")
        rng = np.random.default_rng(503)
        launches = [  # (label, x, w, grid, block)
            ("n=40, K=5, 3 blocks of 16 threads (spare threads)", rng.normal(size=40), rng.normal(size=5), 3, 16),
            ("n=300, K=7, 2 blocks of 32 threads (fewer threads than outputs)", rng.normal(size=300),
             rng.normal(size=7), 2, 32),
            ("n=9, K=9, 1 block of 32 threads (one output)", rng.normal(size=9), rng.normal(size=9), 1, 32),
        ]
        for k, (label, x, w, grid, block) in enumerate(launches):
            out, spill = run_cuda_conv1d(source, x, w, grid=grid, block=block)
            for seed in (1, 2, 3):
                other, other_spill = run_cuda_conv1d(source, x, w, grid=grid, block=block, shuffle=True, seed=seed)
                if not (np.array_equal(out, other, equal_nan=True) and np.array_equal(spill, other_spill, equal_nan=True)):
                    return _cuda_result("failed", (
                        f"{head}: {label}: the result changes with the order in which the threads run -- a race: "
                        "two threads write the same element, or a thread reads shared memory that another thread "
                        "writes, without a __syncthreads() between them"), k)
            problem = _diagnose_conv1d(out, spill, x, w, grid, block)
            if problem:
                return _cuda_result("failed", f"{head}: {label}: {problem}", k)
    except emulator.EmulatorCompileError as err:
        return _cuda_result("failed", f"{head}: the kernel does not compile:\n{err}")
    except (emulator.EmulatorError, ValueError) as err:
        return _cuda_result("failed", f"{head}: {err}")
    except Exception as err:  # a CuPy compile error, a crash report ...
        return _cuda_result("failed", f"{head}: {type(err).__name__}: {err}")
    return _cuda_result("passed", f"{head}: passed on the {where} -- bounds guard, grid-stride loop, "
                        "any thread order", 3, 3)
