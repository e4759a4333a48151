"""GPU benchmark: convolution layer forward and forward+backward, float32.

Usage (on a machine with CuPy and a CUDA device)::

    .venv/bin/python benchmarks/conv_gpu.py                      # table on stdout
    .venv/bin/python benchmarks/conv_gpu.py --json gpu.json      # ... and the numbers as JSON
    .venv/bin/python benchmarks/conv_gpu.py --reps 50 --no-numpy --allow-tf32

Compared, per shape ``(N, C, H, W, F, k, stride, pad)``:

* ``direct``: our shared-memory kernel ``kernels.conv_forward_direct_gpu``; it has
  no backward of its own, so its forward+backward column is the direct forward
  followed by ``conv.conv_backward`` (im2col + cuBLAS + col2im kernel);
* ``im2col``: ``conv.conv_forward``/``conv_backward`` on CuPy arrays -- our
  im2col/col2im kernels and cuBLAS (``cupy.matmul``);
* ``torch``: ``torch.nn.functional.conv2d`` on the GPU (cuDNN, ``benchmark=True``),
  backward through autograd (dx, dw, db);
* ``numpy``: ``conv.conv_forward``/``conv_backward`` on the CPU (wall clock).

GPU times are the median of ``--reps`` runs after warm-up, measured with
``cupy.cuda.Event`` pairs on the null stream (the stream PyTorch uses too).
TF32 is off for cuDNN unless ``--allow-tf32`` (cuBLAS in CuPy does not use it),
so every column computes in true float32.  "max|diff|" compares the direct and
im2col forwards with PyTorch's.  Without a usable GPU the script says so and
exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import numpy as np

from cnncourse import conv, kernels
from cnncourse.backend import backend_name, cupy_or_none
from conv_cpu import SHAPES as CPU_SHAPES  # benchmarks/ is on sys.path when this script runs

# The CPU benchmark's shapes plus two wide layers where a GPU shines.
SHAPES = CPU_SHAPES + [
    (64, 128, 16, 16, 128, 3, 1, 1),
    (64, 256, 8, 8, 256, 3, 1, 1),
]
METHODS = ("direct", "im2col", "torch", "numpy")
NO_GPU_MESSAGE = (
    "conv_gpu.py needs a usable GPU: CuPy is not installed or no CUDA device is visible "
    f"(backend: {{backend}}). Install cupy-cuda12x on a GPU machine, or run benchmarks/conv_cpu.py."
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="timed GPU runs per measurement (median reported)")
    p.add_argument("--numpy-reps", type=int, default=3, help="timed CPU runs per NumPy measurement")
    p.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy column")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even where it has CUDA")
    p.add_argument("--allow-tf32", action="store_true", help="let cuDNN use TF32 (faster, less precise)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return p.parse_args(argv)


def out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def conv_flops(shape) -> float:
    n, c, h, w, f, k, s, p = shape
    return 2.0 * n * f * c * k * k * out_size(h, k, s, p) * out_size(w, k, s, p)


def make_inputs(shape, seed: int = 0):
    n, c, h, w, f, k, s, p = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((f, c, k, k), dtype=np.float32) / np.float32(math.sqrt(c * k * k))
    b = rng.standard_normal(f, dtype=np.float32)
    dout = rng.standard_normal((n, f, out_size(h, k, s, p), out_size(w, k, s, p)), dtype=np.float32)
    return x, wt, b, dout


def gpu_ms(cp, fn, reps: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn()`` on the GPU, timed with CUDA events."""
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


def cpu_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def load_torch(enabled: bool, allow_tf32: bool):
    """PyTorch with CUDA, or ``(None, reason)``."""
    if not enabled:
        return None, "disabled (--no-torch)"
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


def bench_shape(cp, torch, shape, args) -> dict:
    n, c, h, w, f, k, s, p = shape
    x, wt, b, dout = make_inputs(shape)
    xg, wg, bg, dg = (cp.asarray(a) for a in (x, wt, b, dout))
    row = {"shape": dict(zip("N C H W F k stride pad".split(), shape)), "gflop_fwd": conv_flops(shape) / 1e9}
    times: dict[str, dict[str, float | None]] = {m: {"fwd": None, "fwd_bwd": None} for m in METHODS}

    # ours: direct kernel (forward), im2col + cuBLAS backward
    def direct_fwd():
        return kernels.conv_forward_direct_gpu(xg, wg, bg, stride=s, pad=p)

    def direct_fb():
        out = direct_fwd()
        cache = conv.ConvCache(xg, wg, bg, (s, s), (p, p), (1, 1), None)
        return out, conv.conv_backward(dg, cache)

    times["direct"] = {"fwd": gpu_ms(cp, direct_fwd, args.reps), "fwd_bwd": gpu_ms(cp, direct_fb, args.reps)}

    # ours: im2col kernel + cuBLAS, col2im kernel in the backward pass
    def im2col_fwd():
        return conv.conv_forward(xg, wg, bg, stride=s, pad=p)

    def im2col_fb():
        out, cache = im2col_fwd()
        return conv.conv_backward(dg, cache)

    times["im2col"] = {"fwd": gpu_ms(cp, im2col_fwd, args.reps), "fwd_bwd": gpu_ms(cp, im2col_fb, args.reps)}

    ref = None
    if torch is not None:
        F = torch.nn.functional
        xt = torch.as_tensor(x, device="cuda").requires_grad_(True)
        wt_t = torch.as_tensor(wt, device="cuda").requires_grad_(True)
        bt = torch.as_tensor(b, device="cuda").requires_grad_(True)
        dt = torch.as_tensor(dout, device="cuda")

        def torch_fwd():
            with torch.no_grad():
                return F.conv2d(xt, wt_t, bt, stride=s, padding=p)

        def torch_fb():
            out = F.conv2d(xt, wt_t, bt, stride=s, padding=p)
            return torch.autograd.grad(out, (xt, wt_t, bt), dt)

        torch.cuda.synchronize()
        times["torch"] = {"fwd": gpu_ms(cp, torch_fwd, args.reps), "fwd_bwd": gpu_ms(cp, torch_fb, args.reps)}
        ref = torch_fwd().cpu().numpy()

    if not args.no_numpy:
        def numpy_fb():
            out, cache = conv.conv_forward(x, wt, b, stride=s, pad=p)
            return conv.conv_backward(dout, cache)

        times["numpy"] = {
            "fwd": cpu_ms(lambda: conv.conv_forward(x, wt, b, stride=s, pad=p), args.numpy_reps),
            "fwd_bwd": cpu_ms(numpy_fb, args.numpy_reps),
        }

    if ref is None:  # no torch: compare with the NumPy path instead
        ref = conv.conv_forward(x, wt, b, stride=s, pad=p)[0]
    row["max_abs_diff"] = {
        "direct": float(np.abs(cp.asnumpy(direct_fwd()) - ref).max()),
        "im2col": float(np.abs(cp.asnumpy(im2col_fwd()[0]) - ref).max()),
    }
    row["ms"] = times
    return row


def fmt(v) -> str:
    return "-" if v is None else f"{v:9.3f}"


def print_table(rows, header_lines):
    for line in header_lines:
        print(line)
    cols = [f"{m} {kind}" for kind in ("fwd", "f+b") for m in METHODS]
    print(f"{'N, C, H, W, F, k, s, p':<30}" + "".join(f"{c:>14}" for c in cols) + f"{'max|diff|':>11}")
    for r in rows:
        label = ", ".join(str(v) for v in r["shape"].values())
        vals = [r["ms"][m]["fwd"] for m in METHODS] + [r["ms"][m]["fwd_bwd"] for m in METHODS]
        diff = max(r["max_abs_diff"].values())
        print(f"{label:<30}" + "".join(f"{fmt(v):>14}" for v in vals) + f"{diff:>11.1e}")
    print("times in ms (median); direct f+b = direct forward + im2col/cuBLAS/col2im backward")


def main(argv=None) -> int:
    args = parse_args(argv)
    cp = cupy_or_none()
    if cp is None:
        print(NO_GPU_MESSAGE.format(backend=backend_name()), file=sys.stderr)
        return 2
    torch, torch_info = load_torch(not args.no_torch, args.allow_tf32)
    meta = {
        "device": backend_name(),
        "cupy": cp.__version__,
        "torch": torch_info,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "dtype": "float32",
        "reps": args.reps,
        "numpy_reps": None if args.no_numpy else args.numpy_reps,
        "tf32": bool(args.allow_tf32),
        "kernels": kernels.compile_all(),
    }
    rows = []
    for shape in SHAPES:
        rows.append(bench_shape(cp, torch, shape, args))
        print(f"done {shape}", file=sys.stderr, flush=True)
    print_table(rows, [f"device: {meta['device']}; {meta['torch']}; CuPy {meta['cupy']}; float32; TF32 {'on' if args.allow_tf32 else 'off'}"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
