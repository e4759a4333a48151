"""Benchmark: ``cnncourse grade`` on 30 submissions of one notebook, ``--jobs 2``.

Usage::

    .venv/bin/python benchmarks/grade_30.py                                  # the grading fixture
    .venv/bin/python benchmarks/grade_30.py --notebook notebooks/03_convolution_2d.ipynb --copies 30

It releases the notebook, builds ``--copies`` submissions (two thirds copies of
the source, which pass every check and so exercise the slowest path, one third
untouched student copies), then times the whole command, as an instructor
would run it, from a fresh interpreter.  The target is two minutes for 30
submissions on two cores; the script exits 1 when it is slower.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "grading" / "source" / "01_convolution_1d.ipynb"
BUDGET_S = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=FIXTURE, help="source notebook (default: the grading fixture)")
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work folder and print its path")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cnncourse-bench-grade-"))
    try:
        release = work / "release"
        subprocess.run([sys.executable, "-m", "cnncourse.cli", "release", str(args.notebook), "-o", str(release)],
                       check=True, capture_output=True)
        subs = []
        for i in range(args.copies):
            student = work / "submitted" / f"student{i:02d}"
            student.mkdir(parents=True)
            origin = args.notebook if i % 3 != 2 else release / args.notebook.name
            shutil.copy(origin, student / args.notebook.name)
            subs.append(str(student))
        report = work / "report"
        cmd = [sys.executable, "-m", "cnncourse.cli", "grade", *subs, "--release", str(release), "-o", str(report),
               "--jobs", str(args.jobs), "--no-progress"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n")
            return 1
        rows = json.loads((report / "grades.json").read_text())["rows"]
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"graded {args.copies} submissions of {args.notebook.name} ({len(rows)} rows: "
              f"{', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))})")
        print(f"wall time {elapsed:.1f} s with --jobs {args.jobs} on {cpus} CPU(s) "
              f"({elapsed / args.copies:.2f} s per submission); budget {BUDGET_S:.0f} s for 30")
        if args.keep:
            print(f"work folder: {work}")
        return 0 if elapsed * 30 / args.copies <= BUDGET_S else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
