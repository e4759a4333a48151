"""GPU convolution benchmark: measure, store, load and show (``benchmarks/conv_gpu.py``, notebook 05).

One JSON format serves the benchmark script, which writes it, and notebook
05, which measures live on a GPU or shows a stored file elsewhere::

    {"meta": {"device": "cupy (NVIDIA H100 ...)", "date": "2026-11-22", "dtype": "float32", ...},
     "rows": [{"shape": {"N": 64, "C": 1, "H": 28, "W": 28, "F": 6, "k": 5, "stride": 1, "pad": 0},
               "gflop_fwd": 0.0133,
               "ms": {"direct": {"fwd": 0.02, "fwd_bwd": 0.09}, "im2col": {...},
                      "torch": {...}, "numpy": {...}},
               "max_abs_diff": {"direct": 1e-6, "im2col": 1e-6}}, ...]}

Times are milliseconds (``None`` where a method could not run); GPU times are
the median of CUDA-event timings after warm-up, so they include neither
compilation nor host-device copies.  Methods:

* ``direct``: our shared-memory kernel ``kernels.conv_forward_direct_gpu``
  (forward only; its forward+backward adds ``conv.conv_backward``);
* ``im2col``: ``conv.conv_forward``/``conv_backward`` on CuPy arrays (our
  im2col/col2im kernels and cuBLAS);
* ``torch``: ``torch.nn.functional.conv2d`` on the GPU (cuDNN), autograd backward;
* ``numpy``: the same layer on the CPU, wall clock.
"""
from __future__ import annotations

import json
import platform
import statistics
import time

import numpy as np

from . import conv
from .backend import backend_name, cupy_or_none

__all__ = ["METHODS", "SHAPE_KEYS", "measure", "load", "format_table", "plot"]

METHODS = ("direct", "im2col", "torch", "numpy")
SHAPE_KEYS = ("N", "C", "H", "W", "F", "k", "stride", "pad")


def _gpu_ms(cp, fn, reps: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn()`` on the GPU, timed with CUDA events on the null stream."""
    for _ in range(warmup):  # compiles kernels, fills cuDNN's and CuPy's caches
        fn()
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def _cpu_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def load_torch_cuda(allow_tf32: bool = False):
    """``(torch, description)`` with cuDNN set up for benchmarking, or ``(None, why not)``."""
    try:
        import torch  # noqa: PLC0415  (optional, slow to import)
    except ImportError:
        return None, "PyTorch not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA device"
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return torch, f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"


def _inputs(shape, seed: int = 0):
    n, c, h, w, f, k, s, p = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((f, c, k, k), dtype=np.float32) / np.float32(np.sqrt(c * k * k))
    b = rng.standard_normal(f, dtype=np.float32)
    oh, ow = conv.conv_output_size(h, k, stride=s, pad=p), conv.conv_output_size(w, k, stride=s, pad=p)
    dout = rng.standard_normal((n, f, oh, ow), dtype=np.float32)
    return x, wt, b, dout


def _measure_shape(cp, torch, shape, reps: int, numpy_reps: int) -> dict:
    from . import kernels  # noqa: PLC0415  (CuPy side, only on a GPU)

    n, c, h, w, f, k, s, p = shape
    x, wt, b, dout = _inputs(shape)
    xg, wg, bg, dg = (cp.asarray(a) for a in (x, wt, b, dout))
    times: dict[str, dict] = {m: {"fwd": None, "fwd_bwd": None} for m in METHODS}

    def direct_fwd():
        return kernels.conv_forward_direct_gpu(xg, wg, bg, stride=s, pad=p)

    def direct_fb():
        out = direct_fwd()
        return out, conv.conv_backward(dg, conv.ConvCache(xg, wg, bg, (s, s), (p, p), (1, 1)))

    try:
        times["direct"] = {"fwd": _gpu_ms(cp, direct_fwd, reps), "fwd_bwd": _gpu_ms(cp, direct_fb, reps)}
    except ValueError:  # kernel too large for the shared-memory tile
        direct_fwd = None

    def im2col_fwd():
        return conv.conv_forward(xg, wg, bg, stride=s, pad=p)

    def im2col_fb():
        return conv.conv_backward(dg, im2col_fwd()[1])

    times["im2col"] = {"fwd": _gpu_ms(cp, im2col_fwd, reps), "fwd_bwd": _gpu_ms(cp, im2col_fb, reps)}

    ref = None
    if torch is not None:
        functional = torch.nn.functional
        xt, wt_t, bt = (torch.as_tensor(a, device="cuda").requires_grad_(True) for a in (x, wt, b))
        dt = torch.as_tensor(dout, device="cuda")

        def torch_fwd():
            with torch.no_grad():
                return functional.conv2d(xt, wt_t, bt, stride=s, padding=p)

        def torch_fb():
            out = functional.conv2d(xt, wt_t, bt, stride=s, padding=p)
            return torch.autograd.grad(out, (xt, wt_t, bt), dt)

        torch.cuda.synchronize()
        times["torch"] = {"fwd": _gpu_ms(cp, torch_fwd, reps), "fwd_bwd": _gpu_ms(cp, torch_fb, reps)}
        ref = torch_fwd().cpu().numpy()

    if numpy_reps:
        def numpy_fb():
            return conv.conv_backward(dout, conv.conv_forward(x, wt, b, stride=s, pad=p)[1])

        times["numpy"] = {"fwd": _cpu_ms(lambda: conv.conv_forward(x, wt, b, stride=s, pad=p), numpy_reps),
                          "fwd_bwd": _cpu_ms(numpy_fb, numpy_reps)}
    if ref is None:  # no torch: compare with the NumPy path instead
        ref = conv.conv_forward(x, wt, b, stride=s, pad=p)[0]
    diffs = {"im2col": float(np.abs(cp.asnumpy(im2col_fwd()[0]) - ref).max())}
    if direct_fwd is not None:
        diffs["direct"] = float(np.abs(cp.asnumpy(direct_fwd()) - ref).max())
    flops = 2.0 * n * f * c * k * k * ref.shape[2] * ref.shape[3]
    return {"shape": dict(zip(SHAPE_KEYS, shape)), "gflop_fwd": flops / 1e9, "ms": times, "max_abs_diff": diffs}


def measure(shapes, *, reps: int = 20, numpy_reps: int = 3, use_torch: bool = True, allow_tf32: bool = False,
            progress=None) -> dict:
    """Time every method on every ``(N, C, H, W, F, k, stride, pad)`` shape; the results dict of the module docstring.

    Raises:
        RuntimeError: no usable GPU (CuPy missing or no CUDA device).
    """
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError(f"the GPU benchmark needs CuPy and a CUDA device (backend: {backend_name()})")
    from . import kernels  # noqa: PLC0415

    torch, torch_info = load_torch_cuda(allow_tf32) if use_torch else (None, "disabled")
    meta = {
        "device": backend_name(), "date": time.strftime("%Y-%m-%d"), "dtype": "float32",
        "cupy": cp.__version__, "torch": torch_info, "numpy": np.__version__,
        "python": platform.python_version(), "reps": reps, "numpy_reps": numpy_reps or None,
        "tf32": bool(allow_tf32), "kernels": kernels.compile_all(),
    }
    rows = []
    for shape in shapes:
        rows.append(_measure_shape(cp, torch, tuple(shape), reps, numpy_reps))
        if progress is not None:
            progress(shape)
    return {"meta": meta, "rows": rows}


def load(path) -> dict:
    """Read and check a results file written by ``benchmarks/conv_gpu.py --json``.

    Raises:
        ValueError: the file does not have the format of the module docstring (names what is missing).
    """
    with open(path, encoding="utf-8") as fh:
        results = json.load(fh)
    if not isinstance(results, dict) or not {"meta", "rows"} <= results.keys():
        raise ValueError(f"{path}: a GPU benchmark file needs the keys 'meta' and 'rows'")
    for key in ("device", "date"):
        if key not in results["meta"]:
            raise ValueError(f"{path}: meta has no {key!r}: stored figures must say where and when they were measured")
    for i, row in enumerate(results["rows"]):
        missing = [key for key in ("shape", "ms") if key not in row]
        missing += [key for key in SHAPE_KEYS if key not in row.get("shape", {})]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {', '.join(missing)}")
    return results


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def format_table(results) -> str:
    """A text table: ms per method (forward, forward+backward) and the ratios the course's targets use.

    ``f+b/cuDNN`` is our im2col forward+backward over PyTorch's (target <= 2);
    ``NumPy/GPU`` is the NumPy path's forward+backward over ours (target >= 20 on large layers).
    """
    meta, rows = results["meta"], results["rows"]
    cells = [f"{m} {kind}" for kind in ("fwd", "f+b") for m in METHODS]
    lines = [f"device: {meta['device']}; measured {meta['date']}; {meta.get('torch', '')}; {meta.get('dtype', 'float32')}",
             f"{'N,C,H,W,F,k,s,p':<26}" + "".join(f"{c:>12}" for c in cells) + f"{'f+b/cuDNN':>11}{'NumPy/GPU':>11}"]
    for row in rows:
        label = ",".join(str(row["shape"][key]) for key in SHAPE_KEYS)
        ms = row["ms"]
        values = [ms.get(m, {}).get("fwd") for m in METHODS] + [ms.get(m, {}).get("fwd_bwd") for m in METHODS]
        ours = ms.get("im2col", {}).get("fwd_bwd")
        ratios = (_ratio(ours, ms.get("torch", {}).get("fwd_bwd")), _ratio(ms.get("numpy", {}).get("fwd_bwd"), ours))
        lines.append(f"{label:<26}" + "".join("-".rjust(12) if v is None else f"{v:12.3f}" for v in values)
                     + "".join("-".rjust(11) if r is None else f"{r:11.2f}" for r in ratios))
    lines.append("times in ms (median); direct f+b = direct forward + im2col/cuBLAS/col2im backward")
    return "\n".join(lines)


def plot(results, *, kind: str = "fwd", ax=None, title: str | None = None):
    """Log-log plot of time against layer size (GFLOP) for every method; returns the Axes."""
    if kind not in ("fwd", "fwd_bwd"):
        raise ValueError(f"kind must be 'fwd' or 'fwd_bwd', got {kind!r}")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3))
    rows = sorted(results["rows"], key=lambda r: r["gflop_fwd"])
    for method in METHODS:
        points = [(r["gflop_fwd"], r["ms"][method][kind]) for r in rows
                  if r["ms"].get(method, {}).get(kind) is not None]
        if points:
            ax.loglog(*zip(*points), marker="o", ms=3, label=method, ls="--" if method == "numpy" else "-")
    ax.set_xlabel("layer size (GFLOP, forward)")
    ax.set_ylabel(f"time per {'forward' if kind == 'fwd' else 'forward + backward'} (ms)")
    meta = results["meta"]
    ax.set_title(title or f"measured on {meta['device']}, {meta['date']}", fontsize=8)
    ax.legend(fontsize=8)
    return ax
