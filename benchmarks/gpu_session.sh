#!/usr/bin/env bash
# Everything issue 6 needs from a GPU machine, in one command (a lent GPU's time is short):
#   1. the `gpu` tests (parity of every CuPy kernel with NumPy), and the kernel tests on both runners;
#   2. the GPU benchmark, stored where notebook 05 reads it (notebooks/data/gpu_benchmark.json);
#   3. one small_resnet training epoch on CPU and GPU;
#   4. `cnncourse doctor`.
# Usage (repo root, a Python with numpy/scipy/cupy/torch/pytest/hypothesis):
#   PYTHON=python3 OUT=/tmp/gpu_out bash benchmarks/gpu_session.sh
# Logs go to $OUT; copy notebooks/data/gpu_benchmark.json back, re-run notebook 05, commit both.
set -u
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT" notebooks/data
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -m cnncourse.cli doctor 2>&1 | tee "$OUT/doctor.txt"
"$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -40 | tee "$OUT/pytest_gpu.txt"
# The kernel tests on both runners (CuPy/NVRTC and the CPU emulator) and the CUDA C exercise on the GPU:
# NVRTC must accept every name expression the emulator builds (issue 19).
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_checks_cuda_exercise.py 2>&1 | tail -20 | tee "$OUT/pytest_kernels_both.txt"
(cd benchmarks && "$PYTHON" conv_gpu.py --json ../notebooks/data/gpu_benchmark.json) 2>&1 | tee "$OUT/conv_gpu.txt"
cp notebooks/data/gpu_benchmark.json "$OUT/" 2>/dev/null
(cd benchmarks && "$PYTHON" train_resnet.py --no-train --threads 16) 2>&1 | tee "$OUT/train_resnet.txt"
