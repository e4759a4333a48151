"""Speed of the CPU emulator of the CUDA kernels (issue 13's bar: < 10 s on two cores, compile included).

A 2x16x64x64 float32 input through ``conv_forward_direct_gpu`` (16 filters, 3x3)
inside ``cnncourse.kernels.emulated()``: the first call compiles ``conv_direct.cu``
into a fresh cache folder, the second reuses it.  Prints both times and the
number of compiler runs.  Usage: ``python benchmarks/emulator_speed.py``.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CNNCOURSE_EMULATOR_CACHE"] = cache  # cold cache: the first call compiles
        from cnncourse import kernels
        from cnncourse.kernels import emulator

        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 16, 64, 64), dtype=np.float32)
        w = rng.standard_normal((16, 16, 3, 3), dtype=np.float32)
        b = rng.standard_normal(16, dtype=np.float32)
        times = []
        with kernels.emulated():
            for _ in range(2):
                start = time.perf_counter()
                out = kernels.conv_forward_direct_gpu(x, w, b, pad=1)
                times.append(time.perf_counter() - start)
        import torch

        ref = torch.nn.functional.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), padding=1).numpy()
        print(f"first call (compile + run): {times[0]:.2f} s; second call: {times[1]:.3f} s; "
              f"compiler runs: {emulator.compile_count}; max |out - torch| = {np.abs(out - ref).max():.2e}")


if __name__ == "__main__":
    main()
