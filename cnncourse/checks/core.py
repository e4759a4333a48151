"""The machinery behind every ``check_<exercise>(fn)``.

A check runs the student's function on a few fixed cases, compares each
result with the reference answer and returns a :class:`CheckResult` whose
one-line text is what the notebook shows.  On a mismatch the text says which
case, which element, expected vs got, and, when the wrong answer matches a
known mistake (a flipped filter, a missing bias ...), the likely cause.

Checks never raise for a wrong or missing answer: an unfinished exercise
must not stop the rest of the notebook.  The autograder uses the same
objects (``result.passed``, ``result.status``, ``result.message``).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Iterable

import numpy as np

from ..backend import to_numpy
from . import policy as _policy

__all__ = ["CheckResult", "Case", "Exercise", "EXERCISES", "exercise", "run_cases", "compare"]

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
FORBIDDEN = "forbidden"  # the function took a route its exercise's policy refuses (cnncourse.checks.policy)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one exercise check."""

    exercise: str  # "1.2"
    title: str  # "conv_matrix"
    status: str  # "passed" | "failed" | "not attempted"
    message: str  # one line on success; a diagnostic otherwise
    cases_passed: int = 0
    cases_total: int = 0

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:  # what a notebook cell shows
        return self.message

    def _repr_pretty_(self, printer, cycle):  # IPython: no quotes, no object address
        printer.text(self.message)

    def __bool__(self) -> bool:
        return self.passed


@dataclasses.dataclass
class Case:
    """One test case: call ``fn(*args, **kwargs)`` and expect ``expected``.

    ``label`` describes the case to the student ("x of length 8, mode='same'").
    ``mistakes`` maps a likely cause to the answer that mistake would give.
    """

    label: str
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    expected: Any = None
    mistakes: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Exercise:
    """Registry entry: which function a student writes, and how it is checked."""

    number: str  # "1.1"
    function: str  # name of the function the student defines in the notebook
    check: Callable
    notebook: str  # "01_convolution_1d"
    points: float = 1.0
    forbidden: tuple[str, ...] = ()  # package functions the student may not call (also named in the source)
    policy: Any = None  # its grading policy when given here; else cnncourse.checks.policies has it


EXERCISES: dict[str, Exercise] = {}


def exercise(number: str, function: str, *, notebook: str, points: float = 1.0, forbidden: Iterable[str] = (),
             policy=None):
    """Decorator registering ``check_<exercise>`` under its exercise number."""

    def register(check: Callable) -> Callable:
        if number in EXERCISES:
            raise RuntimeError(f"exercise {number} registered twice")
        EXERCISES[number] = Exercise(number, function, check, notebook, points, tuple(forbidden), policy)
        check.exercise_number = number
        return check

    return register


def _fmt(value) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.array2string(arr, precision=6)
    return np.array2string(arr, precision=4, suppress_small=True, threshold=40, edgeitems=2, max_line_width=100)


def compare(expected, got, *, rtol: float = 1e-6, atol: float = 1e-8) -> str | None:
    """Return None when ``got`` matches ``expected``, else a short diagnosis.

    Tuples are compared element by element ("output 2 of 3 ...").
    """
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else 1
            return f"expected a tuple of {len(expected)} outputs, got {n} ({type(got).__name__})"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, rtol=rtol, atol=atol)
            if problem:
                return f"output {i + 1} of {len(expected)}: {problem}"
        return None
    if expected is None:
        return None if got is None else f"expected None, got {type(got).__name__}"
    if got is None:
        return "got None: did the function forget to `return` its result?"
    try:
        g = to_numpy(got).astype(float) if hasattr(got, "shape") else np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return f"expected a numeric array, got {type(got).__name__}"
    e = np.asarray(to_numpy(expected), dtype=float)
    if g.shape != e.shape:
        return f"wrong shape: expected {e.shape}, got {g.shape}"
    if np.isnan(g).any() and not np.isnan(e).any():
        where = tuple(int(i) for i in np.argwhere(np.isnan(g))[0])
        return f"NaN at index {where}"
    close = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    bad = np.argwhere(~close)
    where = tuple(int(i) for i in bad[0])
    return (
        f"{len(bad)} of {e.size} values differ; first at index {where}: "
        f"expected {e[where]:.6g}, got {g[where]:.6g}\n  expected: {_fmt(e)}\n  got:      {_fmt(g)}"
    )


def _likely_cause(case: Case, got) -> str | None:
    for cause, wrong_answer in case.mistakes.items():
        try:
            if compare(wrong_answer, got) is None:
                return cause
        except Exception:  # a wrong answer of another shape: not this mistake
            continue
    return None


def run_cases(number: str, title: str, fn: Callable, cases: list[Case], *, rtol: float = 1e-6, atol: float = 1e-8) -> CheckResult:
    """Run ``fn`` on every case and summarise the outcome in a :class:`CheckResult`."""
    head = f"Exercise {number} ({title})"
    if not callable(fn):
        return CheckResult(number, title, FAILED, f"✘ {head}: expected a function, got {type(fn).__name__}", 0, len(cases))
    fn = _policy.watch(number, fn)  # policy hook: a forbidden route is reported at once, in the grader's words
    for passed, case in enumerate(cases):
        args = copy.deepcopy(case.args)
        try:
            got = fn(*args, **case.kwargs)
        except _policy.ForbiddenRoute as err:
            return CheckResult(number, title, FORBIDDEN, f"✘ {head}: {err}", passed, len(cases))
        except NotImplementedError:
            return CheckResult(number, title, NOT_ATTEMPTED,
                               f"… {head}: not attempted yet (the function still raises NotImplementedError)", 0, len(cases))
        except Exception as err:  # the student's bug, reported, not raised
            return CheckResult(number, title, FAILED,
                               f"✘ {head}: case '{case.label}' raised {type(err).__name__}: {err}", passed, len(cases))
        problem = compare(case.expected, got, rtol=rtol, atol=atol)
        if problem is None:
            changed = [i for i, (a, b) in enumerate(zip(case.args, args)) if hasattr(a, "shape") and compare(a, b, rtol=0, atol=0)]
            if changed:
                problem = f"the function modified its input argument {changed[0] + 1} in place"
        if problem is not None:
            cause = _likely_cause(case, got)
            hint = f"\n  likely cause: {cause}" if cause else ""
            return CheckResult(number, title, FAILED, f"✘ {head}: case '{case.label}': {problem}{hint}", passed, len(cases))
    return CheckResult(number, title, PASSED, f"✔ {head}: all {len(cases)} cases pass", len(cases), len(cases))
