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

The measuring, the JSON format (read by notebook 05) and the table live in
:mod:`cnncourse.gpu_benchmark`.  GPU times are the median of ``--reps`` runs
after warm-up, measured with ``cupy.cuda.Event`` pairs on the null stream
(the stream PyTorch uses too).
TF32 is off for cuDNN unless ``--allow-tf32`` (cuBLAS in CuPy does not use it),
so every column computes in true float32.  "max|diff|" compares the direct and
im2col forwards with PyTorch's.  Without a usable GPU the script says so and
exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from cnncourse import gpu_benchmark
from cnncourse.backend import backend_name, cupy_or_none
from conv_cpu import SHAPES as CPU_SHAPES  # benchmarks/ is on sys.path when this script runs

# The CPU benchmark's shapes plus two wide layers where a GPU shines.
SHAPES = CPU_SHAPES + [
    (64, 128, 16, 16, 128, 3, 1, 1),
    (64, 256, 8, 8, 256, 3, 1, 1),
]
NO_GPU_MESSAGE = (
    "conv_gpu.py needs a usable GPU: CuPy is not installed or no CUDA device is visible "
    "(backend: {backend}). Install cupy-cuda12x on a GPU machine, or run benchmarks/conv_cpu.py."
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="timed GPU runs per measurement (median reported)")
    p.add_argument("--numpy-reps", type=int, default=3, help="timed CPU runs per NumPy measurement")
    p.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy column")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even where it has CUDA")
    p.add_argument("--allow-tf32", action="store_true", help="let cuDNN use TF32 (faster, less precise)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (notebook 05 reads it)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if cupy_or_none() is None:
        print(NO_GPU_MESSAGE.format(backend=backend_name()), file=sys.stderr)
        return 2
    results = gpu_benchmark.measure(
        SHAPES, reps=args.reps, numpy_reps=0 if args.no_numpy else args.numpy_reps, use_torch=not args.no_torch,
        allow_tf32=args.allow_tf32, progress=lambda shape: print(f"done {shape}", file=sys.stderr, flush=True),
    )
    print(gpu_benchmark.format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
