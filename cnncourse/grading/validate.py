"""Check a source notebook against its release: the source earns full marks, the release zero.

Every exercise must have a grading policy (:mod:`cnncourse.checks.policy`).
Both are graded exactly as students' submissions are (sandbox and all), so a
pass here means the grader, the checks and the release agree: every exercise
of the source passes its check, and every exercise of the student copy is
reported "not attempted" (not "failed", not a crash).  With ``execute=True``
the student copy is also run top to bottom in a Jupyter kernel, which must
reach the end without an error.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from . import release as rel
from .autograde import Submission, grade_submission
from .sandbox import Limits, default_policy

__all__ = ["validate_notebook", "validate", "policy_problems"]


def policy_problems(stem: str, exercises=None) -> list[str]:
    """An exercise without a grading policy (:mod:`cnncourse.checks.policies`) cannot be graded fairly."""
    from ..checks.policy import POLICIES

    return [f"exercise {e.number} ({e.function}) has no grading policy: add one to cnncourse/checks/policies.py "
            "or pass policy=Policy(...) to its @exercise (what it may use from cnncourse, which third-party "
            "functions would solve it) and state it in its markdown cell"
            for e in rel.notebook_exercises(stem, exercises)
            if e.number not in POLICIES and getattr(e, "policy", None) is None]


def validate_notebook(path, *, exercises=None, limits: Limits = Limits(), execute: bool = False,
                      timeout: float = 600) -> list[str]:
    """Return the problems found with one source notebook (an empty list: it validates)."""
    path = Path(path)
    problems: list[str] = policy_problems(path.stem, exercises)
    with tempfile.TemporaryDirectory(prefix="cnncourse-validate-") as tmp:
        try:
            manifest = rel.release([path], tmp, exercises=exercises)
        except rel.ReleaseError as err:
            return problems + [f"release failed: {err}"]
        stem = path.stem
        if not manifest["notebooks"][stem]["exercises"]:
            return problems
        policy = default_policy()
        kwargs = dict(limits=limits, exercises=exercises, policy=policy)
        for row in grade_submission(Submission(path, "source", stem), manifest, **kwargs):
            if row.status != "passed":
                problems.append(f"source, exercise {row.exercise}: {row.status}: {row.feedback}")
        student_copy = Path(tmp) / path.name
        for row in grade_submission(Submission(student_copy, "release", stem), manifest, **kwargs):
            if row.status != "not attempted":
                problems.append(f"release, exercise {row.exercise}: {row.status} (expected 'not attempted'): "
                                f"{row.feedback}")
        if execute:
            from .execute import run_notebook

            error = run_notebook(student_copy, cwd=path.parent, timeout=timeout)
            if error:
                problems.append(f"release does not run to the end: {error}")
    return problems


def validate(paths, *, exercises=None, limits: Limits = Limits(), execute: bool = False, timeout: float = 600,
             out=print) -> bool:
    """Validate several notebooks, printing one line each (and the problems); True if all pass."""
    ok = True
    for path in map(Path, paths):
        problems = validate_notebook(path, exercises=exercises, limits=limits, execute=execute, timeout=timeout)
        n = len(rel.notebook_exercises(path.stem, exercises))
        if problems:
            ok = False
            out(f"✘ {path.name}: {len(problems)} problem(s)")
            for p in problems:
                out("    " + p.replace("\n", "\n    "))
        else:
            what = f"{n} exercise(s): source passes, release not attempted" if n else "no registered exercises"
            out(f"✔ {path.name}: {what}" + (", student copy runs" if execute and n else ""))
    return ok
