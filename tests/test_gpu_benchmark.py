"""The GPU benchmark's results format: what benchmarks/conv_gpu.py writes and notebook 05 reads."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncourse import gpu_benchmark
from cnncourse.backend import cupy_or_none

ROOT = Path(__file__).resolve().parents[1]


def sample_results():
    rows = []
    for n, c, f in ((8, 3, 4), (64, 64, 64)):
        ms = {m: {"fwd": None, "fwd_bwd": None} for m in gpu_benchmark.METHODS}
        ms["im2col"] = {"fwd": 0.1 * n, "fwd_bwd": 0.3 * n}
        ms["torch"] = {"fwd": 0.05 * n, "fwd_bwd": 0.2 * n}
        ms["numpy"] = {"fwd": 10.0 * n, "fwd_bwd": 30.0 * n}
        rows.append({"shape": dict(zip(gpu_benchmark.SHAPE_KEYS, (n, c, 16, 16, f, 3, 1, 1))),
                     "gflop_fwd": 2 * n * c * f * 9 * 256 / 1e9, "ms": ms, "max_abs_diff": {"im2col": 1e-6}})
    return {"meta": {"device": "cupy (Test GPU)", "date": "2026-11-22", "dtype": "float32"}, "rows": rows}


def test_load_round_trips_and_the_table_shows_the_ratios(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(sample_results()))
    results = gpu_benchmark.load(path)
    table = gpu_benchmark.format_table(results)
    assert "Test GPU" in table and "2026-11-22" in table
    first = next(line for line in table.splitlines() if line.startswith("8,3,16,16,4,3,1,1"))
    cells = first.split()
    assert cells[-2] == "1.50" and cells[-1] == "100.00"  # 2.4/1.6 ms vs cuDNN; 240/2.4 ms NumPy over ours
    assert cells[1] == "-"  # the direct kernel's missing figure


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("rows"), "'meta' and 'rows'"),
    (lambda r: r["meta"].pop("date"), "where and when"),
    (lambda r: r["rows"][1]["shape"].pop("stride"), "row 1 lacks stride"),
    (lambda r: r["rows"][0].pop("ms"), "row 0 lacks ms"),
])
def test_load_names_what_is_missing(tmp_path, edit, message):
    results = sample_results()
    edit(results)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=message):
        gpu_benchmark.load(path)


def test_plot_draws_one_line_per_method_with_figures():
    import matplotlib

    matplotlib.use("Agg")
    ax = gpu_benchmark.plot(sample_results(), kind="fwd_bwd")
    assert sorted(line.get_label() for line in ax.get_lines()) == ["im2col", "numpy", "torch"]
    assert "Test GPU" in ax.get_title()
    with pytest.raises(ValueError, match="kind"):
        gpu_benchmark.plot(sample_results(), kind="backward")


@pytest.mark.skipif(cupy_or_none() is not None, reason="this checks the message on machines without a GPU")
def test_without_a_gpu_measure_and_the_script_say_so():
    with pytest.raises(RuntimeError, match="needs CuPy and a CUDA device"):
        gpu_benchmark.measure([(2, 3, 8, 8, 4, 3, 1, 1)])
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv_gpu.py")], capture_output=True, text=True,
                         cwd=ROOT / "benchmarks")
    assert run.returncode == 2 and "needs a usable GPU" in run.stderr


@pytest.mark.gpu
def test_measure_on_the_gpu_writes_a_loadable_file(tmp_path):
    if cupy_or_none() is None:
        pytest.skip("no usable GPU")
    results = gpu_benchmark.measure([(4, 3, 12, 12, 8, 3, 1, 1)], reps=2, numpy_reps=1)
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(results))
    loaded = gpu_benchmark.load(path)
    row = loaded["rows"][0]
    assert row["ms"]["im2col"]["fwd"] > 0 and row["ms"]["numpy"]["fwd_bwd"] > 0
    assert max(row["max_abs_diff"].values()) < 1e-3
    assert np.isfinite(row["gflop_fwd"])
