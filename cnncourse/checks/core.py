"""The machinery behind every ``check_<exercise>(fn)``.

A check runs the student's function on a few fixed cases, compares each
result with the reference answer and returns a :class:`CheckResult` whose
text is what the notebook shows: one line when every case passes, a short
diagnostic (at most 25 lines) at the first case that fails:

* the case, then the shape check (expected vs got shape, and which known
  mistake gives the shape the student got);
* how many values differ, the first difference, the largest absolute and
  relative errors and where they are, the tolerance used;
* a small window around the first difference (a few rows of one 2-D slice,
  expected above got, ``*`` marking the values that differ);
* the likely cause, when the wrong answer is what a known mistake gives
  (a flipped filter, a missing bias ...; listed per case in ``Case.mistakes``);
* for an exception, the student's own line (notebook cell or file, line
  number and source).

The full arrays stay on the result (``result.expected``, ``result.got``).
How an answer is compared and described lives in :mod:`.diagnose`; how the
student's line is found, in :mod:`.tracebacks`.

The tolerance follows the precision of the data: a float32 answer (or a case
whose inputs are float32) is compared at float32 precision, and the success
line then says it "matches to float32 precision".

Checks never raise for a wrong or missing answer: an unfinished exercise
must not stop the rest of the notebook.  The autograder uses the same
objects (``result.passed``, ``result.status``, ``result.message``).

For tests, :func:`collect_cases` records the cases a check runs without
calling any student code, and :meth:`CaseSet.mistaken_function` builds, for
every listed mistake, a function that makes exactly that mistake.
"""
from __future__ import annotations

import contextvars
import copy
import dataclasses
from typing import Any, Callable, Iterable

import numpy as np

from .diagnose import Mismatch, NotNumeric, Tolerance, as_array, diagnose, float_bits
from .tracebacks import error_text, student_line
from . import policy as _policy

__all__ = ["CheckResult", "Case", "CaseSet", "Exercise", "EXERCISES", "Tolerance", "exercise", "run_cases",
           "compare", "collect_cases", "student_line", "MAX_LINES"]

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
FORBIDDEN = "forbidden"  # the function took a route its exercise's policy refuses (cnncourse.checks.policy)

#: No diagnostic is longer than this many lines.
MAX_LINES = 25

@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one exercise check.

    On a failure ``case`` names the failing case, ``expected`` and ``got`` hold
    the full answers (arrays, or tuples of them), ``cause`` the likely cause if
    one was recognised and ``error`` the exception the student's code raised.
    """

    exercise: str  # "1.2"
    title: str  # "conv_matrix"
    status: str  # "passed" | "failed" | "not attempted"
    message: str  # one line on success; a diagnostic otherwise
    cases_passed: int = 0
    cases_total: int = 0
    case: str | None = dataclasses.field(default=None, compare=False)
    expected: Any = dataclasses.field(default=None, repr=False, compare=False)
    got: Any = dataclasses.field(default=None, repr=False, compare=False)
    cause: str | None = dataclasses.field(default=None, compare=False)
    error: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)

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
    ``mistakes`` maps a likely cause to the answer that mistake gives for this
    case, or to a function that makes the mistake (called with the case's
    arguments to get that answer). ``None`` means "this mistake gives no answer here".
    """

    label: str
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    expected: Any = None
    mistakes: dict = dataclasses.field(default_factory=dict)
    _answers: dict | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def mistake_answers(self) -> dict:
        """Likely cause -> the answer that mistake gives for this case (mistakes without one left out)."""
        if self._answers is None:
            answers = {}
            for cause, value in self.mistakes.items():
                if callable(value):
                    try:
                        value = value(*copy.deepcopy(self.args), **copy.deepcopy(self.kwargs))
                    except Exception:  # the mistake gives no answer for this case
                        value = None
                if value is not None:
                    answers[cause] = value
            self._answers = answers
        return self._answers


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


# --------------------------------------------------------------------------- comparing


def _input_bits(case: Case) -> int | None:
    """Lowest floating-point precision among the case's array inputs (None: no float arrays)."""
    found = []

    def visit(value, depth=0):
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            bits = float_bits(value)
            if bits is not None:
                found.append(bits)
        elif isinstance(value, (tuple, list)) and depth < 2:
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict) and depth < 2:
            for item in value.values():
                visit(item, depth + 1)

    visit(case.args)
    visit(case.kwargs)
    return min(found) if found else None


def compare(expected, got, *, rtol: float = 1e-6, atol: float = 1e-8) -> str | None:
    """Return None when ``got`` matches ``expected``, else a short diagnosis (a few lines).

    Tuples are compared element by element ("output 2 of 3 ...").
    """
    found = diagnose(expected, got, Tolerance(rtol, atol))
    return None if found is None else "\n  ".join(found.lines())


# --------------------------------------------------------------------------- likely causes


def _leaf(value, path: tuple):
    for i in path:
        if not isinstance(value, (tuple, list)) or i >= len(value):
            return None
        value = value[i]
    return value


def _matching_causes(case: Case, got, tol: Tolerance) -> list[str]:
    """The listed mistakes whose answer for this case is ``got``."""
    causes = []
    bits = _input_bits(case)
    for cause, answer in case.mistake_answers().items():
        try:
            if diagnose(answer, got, tol, bits) is None:
                causes.append(cause)
        except Exception:  # an answer of another kind: not this mistake
            continue
    return causes


def _causes_of_shape(case: Case, mismatch: Mismatch) -> list[str]:
    """Listed mistakes that give the (wrong) shape the student's answer has."""
    if not mismatch.shape_only or mismatch.got is None:
        return []
    causes = []
    for cause, answer in case.mistake_answers().items():
        try:
            if np.shape(_leaf(answer, mismatch.path)) == mismatch.got.shape:
                causes.append(cause)
        except Exception:
            continue
    return causes


def _causes_of_output(case: Case, got, path: tuple, tol: Tolerance) -> list[str]:
    """Listed mistakes whose answer, in the output at ``path`` alone, is what the student got there."""
    causes = []
    bits = _input_bits(case)
    for cause, answer in case.mistake_answers().items():
        try:
            if diagnose(_leaf(answer, path), _leaf(got, path), tol, bits) is None:
                causes.append(cause)
        except Exception:
            continue
    return causes


def _excluded_by_passed(causes: list[str], passed: list[Case], tol: Tolerance) -> list[str]:
    """Drop the mistakes that would have failed a case the student's function passed."""
    kept = []
    for cause in causes:
        wrong_before = False
        for case in passed:
            answer = case.mistake_answers().get(cause)
            try:
                wrong_before = answer is not None and diagnose(case.expected, answer, tol, _input_bits(case)) is not None
            except Exception:
                wrong_before = False
            if wrong_before:
                break
        if not wrong_before:
            kept.append(cause)
    return kept or causes


def _narrow(causes: list[str], fn: Callable, later: list[Case], tol: Tolerance) -> list[str]:
    """Several mistakes explain the failing case: keep those that also explain the later cases."""
    for case in later:
        if len(causes) <= 1:
            break
        listed = [c for c in causes if c in case.mistake_answers()]
        if not listed:
            continue
        try:
            got = _call_student(fn, copy.deepcopy(case.args), case.kwargs)
        except Exception:
            break
        if diagnose(case.expected, got, tol, _input_bits(case)) is None:
            continue  # right here: no evidence either way
        matching = set(_matching_causes(case, got, tol))
        kept = [c for c in causes if c in matching or c not in listed]
        causes = kept or causes
    return causes


# --------------------------------------------------------------------------- running the cases


def _call_student(fn: Callable, args: tuple, kwargs: dict):
    """The one place where a check calls the student's function (a guard can wrap this call)."""
    return fn(*args, **kwargs)


def _changed_input(case: Case, args: tuple) -> int | None:
    """1-based index of an array argument the student's function modified in place, if any."""
    for i, (before, after) in enumerate(zip(case.args, args)):
        if hasattr(before, "shape"):
            try:
                if not np.array_equal(as_array(before), as_array(after), equal_nan=True):
                    return i + 1
            except (NotNumeric, TypeError, ValueError):
                continue
    return None


def _fit(head: list[str], details: list[str], window: list[str], tail: list[str], limit: int = MAX_LINES) -> str:
    """The diagnostic text in at most ``limit`` lines: the window goes first, then details are cut."""

    def split(part):
        return [line for text in part for line in text.split("\n")]

    head, details, window, tail = split(head), split(details), split(window), split(tail)
    lines = head + details + window + tail
    if len(lines) > limit:
        lines = head + details + tail
    if len(lines) > limit:
        keep = max(0, limit - len(head) - len(tail) - 1)
        lines = head + details[:keep] + ["  ..."] + tail
    return "\n".join(lines[:limit])


def _failure(number: str, title: str, head: str, fn: Callable, cases: list[Case], index: int, got,
             mismatch: Mismatch, tol: Tolerance) -> CheckResult:
    case = cases[index]
    causes = _matching_causes(case, got, tol)
    if len(causes) > 1:
        causes = _excluded_by_passed(causes, cases[:index], tol)
    if len(causes) > 1:
        causes = _narrow(causes, fn, cases[index + 1:], tol)
    cause_lines, named = [], causes[0] if causes else None
    if len(causes) == 1:
        cause_lines = [f"likely cause: {causes[0]}"]
    elif causes:
        cause_lines = ["likely cause, one of:", *(f"  - {c}" for c in causes[:3])]
    elif mismatch.shape_only:
        shaped = _causes_of_shape(case, mismatch)
        if shaped:
            cause_lines, named = [f"likely cause (it gives this shape): {shaped[0]}"], shaped[0]
    elif mismatch.path:  # no mistake explains every output: one may explain the wrong one
        partial = _causes_of_output(case, got, mismatch.path, tol)
        if partial:
            cause_lines, named = [f"likely cause of the error in output {mismatch.path[0] + 1}: {partial[0]}"], partial[0]
    footer = []
    shown = sum(len(line) for line in mismatch.window)
    if mismatch.expected is not None and np.size(mismatch.expected) > 1 and (mismatch.shape_only or shown):
        footer = ["the full answers: .expected and .got of the returned result (in the next cell: _.expected, _.got)"]
    first = f"✘ {head}: case '{case.label}': {mismatch.summary}"
    details = [f"  {line}" for line in mismatch.details]
    window = [f"  {line}" for line in mismatch.window]
    tail = [f"  {line}" for line in cause_lines + footer]
    message = _fit([first], details, window, tail)
    return CheckResult(number, title, FAILED, message, index, len(cases), case=case.label, expected=case.expected,
                       got=got, cause=named)


def _raised(number: str, title: str, head: str, cases: list[Case], index: int, err: Exception) -> CheckResult:
    case = cases[index]
    lines = [f"✘ {head}: case '{case.label}' raised {type(err).__name__}: {error_text(err)}"]
    lines += [f"  {line}" for line in student_line(err)]
    message = _fit(lines[:1], lines[1:], [], [])
    return CheckResult(number, title, FAILED, message, index, len(cases), case=case.label, expected=case.expected,
                       error=err)


def _low_precision_note(notes: list) -> str:
    bits = min(b for b, _ in notes)
    largest = max(r for _, r in notes)
    return f" (float{bits} answers: matches to float{bits} precision, largest relative difference {largest:.2g})"


def run_cases(number: str, title: str, fn: Callable, cases: list[Case], *, rtol: float = 1e-6, atol: float = 1e-8) -> CheckResult:
    """Run ``fn`` on every case and summarise the outcome in a :class:`CheckResult`."""
    head = f"Exercise {number} ({title})"
    recording = _RECORDING.get()
    if recording is not None:  # collect_cases: record the cases, run nothing
        recording.append(CaseSet(number, title, list(cases), rtol, atol))
        return CheckResult(number, title, NOT_ATTEMPTED, f"… {head}: cases recorded, nothing run", 0, len(cases))
    if not callable(fn):
        return CheckResult(number, title, FAILED, f"✘ {head}: expected a function, got {type(fn).__name__}", 0, len(cases))
    tol = Tolerance(rtol, atol)
    notes: list = []  # answers accepted at float32 (float16) precision
    fn = _policy.watch(number, fn)  # policy hook: a forbidden route is reported at once, in the grader's words
    for index, case in enumerate(cases):
        args = copy.deepcopy(case.args)
        try:
            got = _call_student(fn, args, case.kwargs)
        except _policy.ForbiddenRoute as err:
            return CheckResult(number, title, FORBIDDEN, f"✘ {head}: {err}", index, len(cases))
        except NotImplementedError:
            return CheckResult(number, title, NOT_ATTEMPTED,
                               f"… {head}: not attempted yet (the function still raises NotImplementedError)", 0, len(cases))
        except Exception as err:  # the student's bug, reported, not raised
            return _raised(number, title, head, cases, index, err)
        mismatch = diagnose(case.expected, got, tol, _input_bits(case), notes)
        if mismatch is None:
            changed = _changed_input(case, args)
            if changed is not None:
                mismatch = Mismatch(f"the function modified its input argument {changed} in place "
                                     f"(work on a copy, or build a new array)")
        if mismatch is not None:
            return _failure(number, title, head, fn, cases, index, got, mismatch, tol)
    message = f"✔ {head}: all {len(cases)} cases pass" + (_low_precision_note(notes) if notes else "")
    return CheckResult(number, title, PASSED, message, len(cases), len(cases))


# --------------------------------------------------------------------------- the cases, for tests


_RECORDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("cnncourse_recording", default=None)


def _same(a, b, depth: int = 0) -> bool:
    """Equal arguments (arrays element for element, NaN equal to NaN; objects such as a model
    attribute for attribute, since run_cases hands the student a deep copy)."""
    if a is b:
        return True
    if depth > 32:
        return False
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)):
        return (isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same(x, y, depth + 1) for x, y in zip(a, b)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k], depth + 1) for k in a)
    if type(a) is type(b) and dataclasses.is_dataclass(a) and not isinstance(a, type):
        return all(_same(getattr(a, f.name), getattr(b, f.name), depth + 1) for f in dataclasses.fields(a))
    if type(a) is type(b) and type(a).__eq__ is object.__eq__:
        slots = [name for klass in type(a).__mro__ for name in getattr(klass, "__slots__", ())]
        if hasattr(a, "__dict__") or slots:
            return (_same(getattr(a, "__dict__", {}), getattr(b, "__dict__", {}), depth + 1)
                    and all(_same(getattr(a, n, None), getattr(b, n, None), depth + 1) for n in slots))
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclasses.dataclass(frozen=True)
class CaseSet:
    """The cases one ``run_cases`` call of a check runs, as :func:`collect_cases` recorded them."""

    number: str
    title: str
    cases: list
    rtol: float
    atol: float

    def causes(self) -> list[str]:
        """Every likely cause listed in any case, in order of first appearance."""
        return list(dict.fromkeys(c for case in self.cases for c in case.mistake_answers()))

    def mistaken_function(self, cause: str) -> Callable:
        """A function making exactly the mistake ``cause``: on each case it returns the answer that
        mistake gives there, or the right answer where the case lists no answer for it."""

        def mistaken(*args, **kwargs):
            for case in self.cases:
                if _same(tuple(case.args), tuple(args)) and _same(dict(case.kwargs), dict(kwargs)):
                    return copy.deepcopy(case.mistake_answers().get(cause, case.expected))
            raise LookupError(f"exercise {self.number}: called with arguments of no recorded case")

        mistaken.__name__ = mistaken.__qualname__ = f"mistaken_{self.title}"
        return mistaken

    def run(self, fn: Callable) -> CheckResult:
        """``run_cases`` on these cases with ``fn`` (bypassing any wrapper the check puts around it)."""
        return run_cases(self.number, self.title, fn, self.cases, rtol=self.rtol, atol=self.atol)


def _unfinished(*args, **kwargs):
    raise NotImplementedError


def collect_cases(number: str) -> list[CaseSet]:
    """The cases the check of exercise ``number`` runs, recorded without running student code."""
    if getattr(EXERCISES[number].check, "property_based", False):
        return []  # its answers are random: the check tests properties, not recorded cases
    recording: list = []
    token = _RECORDING.set(recording)
    try:
        EXERCISES[number].check(_unfinished)
    finally:
        _RECORDING.reset(token)
    return recording
