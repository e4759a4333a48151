"""The ``cnncourse`` command: release, validate, grade, run-notebooks, doctor.

A thin layer over :mod:`cnncourse.grading`; run ``cnncourse <command> --help``
for each command's options (``python -m cnncourse.cli`` works too).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _release(args) -> int:
    from .grading import release as rel

    paths = args.notebooks or rel.default_notebooks()
    if not paths:
        print("no notebooks given and none found in notebooks/", file=sys.stderr)
        return 2
    try:
        manifest = rel.release(paths, args.output, nbgrader_source=args.nbgrader_source)
    except rel.ReleaseError as err:
        print(f"release failed:\n{err}", file=sys.stderr)
        return 1
    for name in sorted(Path(p).stem for p in paths):
        entry = manifest["notebooks"][name]
        print(f"{entry['file']}: {len(entry['exercises'])} exercise(s), {entry['total_points']:g} point(s)")
    print(f"wrote {len(paths)} notebook(s) and {rel.MANIFEST} to {args.output}")
    return 0


def _limits(args):
    from .grading.sandbox import Limits

    return Limits(exercise_timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                  memory_mb=args.memory_mb, output_mb=args.output_mb,
                  scratch_mb=getattr(args, "scratch_mb", Limits.scratch_mb))


def _validate(args) -> int:
    from .grading import release as rel
    from .grading.validate import validate

    paths = args.notebooks or rel.default_notebooks()
    if not paths:
        print("no notebooks given and none found in notebooks/", file=sys.stderr)
        return 2
    ok = validate(paths, limits=_limits(args), execute=args.execute, timeout=args.cell_timeout)
    return 0 if ok else 1


def _grade(args) -> int:
    import signal

    from .grading import release as rel
    from .grading.autograde import GradingInterrupted, grade
    from .grading.report import clean_text, summary, write_reports

    def terminate(signum, frame):  # SIGTERM stops the run as Ctrl-C does: what is done is still written
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    interrupted = False
    try:
        rows = grade(args.submissions, args.release, jobs=args.jobs, limits=_limits(args),
                     progress=not args.no_progress)
    except rel.ReleaseError as err:
        print(err, file=sys.stderr)
        return 2
    except GradingInterrupted as stop:
        rows, interrupted = stop.rows, True
    finally:
        signal.signal(signal.SIGTERM, previous)
    written = write_reports(rows, args.output, meta={"release": str(Path(args.release).resolve()),
                                                     "interrupted": interrupted})
    for student, total in summary(rows).items():
        print(f"{clean_text(student)}: {total['points']:g} / {total['max']:g}")
    print(f"wrote {written['csv']}, {written['json']} and {len(written['feedback'])} feedback file(s)")
    if interrupted:
        print("grading was interrupted: submissions not graded have an 'error' row saying so", file=sys.stderr)
        return 130
    return 0


def _run_notebooks(args) -> int:
    from .grading.execute import run_notebooks

    return 1 if run_notebooks(args.paths, args.out, timeout=args.timeout, kernel=args.kernel,
                              in_place=args.in_place) else 0


def _doctor(args) -> int:
    from .grading.doctor import doctor

    return doctor()


def _add_limits(p: argparse.ArgumentParser) -> None:
    from .grading.sandbox import Limits

    d = Limits()
    p.add_argument("--timeout", type=float, default=d.exercise_timeout, metavar="S",
                   help=f"seconds per exercise (default {d.exercise_timeout:g})")
    p.add_argument("--notebook-timeout", type=float, default=d.notebook_timeout, metavar="S",
                   help=f"seconds per submitted notebook (default {d.notebook_timeout:g})")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, metavar="MB",
                   help=f"memory limit of the sandbox (default {d.memory_mb})")
    p.add_argument("--output-mb", type=float, default=d.output_mb, metavar="MB",
                   help=f"printed output allowed per submission (default {d.output_mb:g})")
    p.add_argument("--scratch-mb", type=float, default=d.scratch_mb, metavar="MB",
                   help=f"all files a submission writes in its scratch folder together (default {d.scratch_mb:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnncourse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("release", help="write student copies of source notebooks and a manifest")
    p.add_argument("notebooks", nargs="*", help="source notebooks (default: every notebooks/NN_*.ipynb)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the student copies")
    p.add_argument("--nbgrader-source", action="store_true",
                   help="keep the solutions and add hidden asserts: notebooks for nbgrader's source/ folder")
    p.set_defaults(func=_release)

    p = sub.add_parser("validate", help="check that each source earns full marks and its release zero")
    p.add_argument("notebooks", nargs="*", help="source notebooks (default: every notebooks/NN_*.ipynb)")
    p.add_argument("--execute", action="store_true", help="also run each student copy to the end in a kernel")
    p.add_argument("--cell-timeout", type=float, default=600, metavar="S", help="per-cell limit with --execute")
    _add_limits(p)
    p.set_defaults(func=_validate)

    p = sub.add_parser("grade", help="grade submissions in a sandbox; write CSV, JSON and feedback")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="a student's folder (its name is the student) or a notebook file")
    p.add_argument("--release", required=True, metavar="DIR", help="the folder written by `cnncourse release`")
    p.add_argument("-o", "--output", required=True, metavar="REPORT", help="folder for the reports")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="submissions graded in parallel")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_limits(p)
    p.set_defaults(func=_grade)

    p = sub.add_parser("run-notebooks", help="execute notebooks headless; write executed copies and HTML")
    p.add_argument("paths", nargs="+", metavar="DIR", help="folders of notebooks (or notebook files)")
    p.add_argument("--out", default="build", metavar="DIR", help="output folder (default: build)")
    p.add_argument("--timeout", type=float, default=600, metavar="S", help="seconds per cell (default 600)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    p.add_argument("--in-place", action="store_true",
                   help="store each executed notebook over its source, ready to commit (widget state dropped, "
                        "progress bars at their final text); failed ones are left as they were")
    p.set_defaults(func=_run_notebooks)

    p = sub.add_parser("doctor", help="report Python, NumPy, CuPy, GPU, CUDA and kernel status")
    p.set_defaults(func=_doctor)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
