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
import linecache
import os
import sys
import sysconfig
import traceback
from typing import Any, Callable, Iterable

import numpy as np

from ..backend import to_numpy

__all__ = ["CheckResult", "Case", "CaseSet", "Exercise", "EXERCISES", "Tolerance", "exercise", "run_cases",
           "compare", "collect_cases", "student_line", "MAX_LINES"]

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"

#: No diagnostic is longer than this many lines.
MAX_LINES = 25

# How many values a window shows: rows x columns of a 2-D slice, or values of a 1-D array.
_WINDOW_ROWS, _WINDOW_COLS, _WINDOW_1D = 3, 6, 8
# Tolerance for answers of lower precision: rtol, and atol as a fraction of the answer's largest value.
# float32 keeps about 7 significant digits; sums of many terms lose one or two of them.
_LOW_PRECISION_TOL = {32: 1e-5, 16: 1e-2}


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
    forbidden: tuple[str, ...] = ()  # package functions the student may not call


EXERCISES: dict[str, Exercise] = {}


def exercise(number: str, function: str, *, notebook: str, points: float = 1.0, forbidden: Iterable[str] = ()):
    """Decorator registering ``check_<exercise>`` under its exercise number."""

    def register(check: Callable) -> Callable:
        if number in EXERCISES:
            raise RuntimeError(f"exercise {number} registered twice")
        EXERCISES[number] = Exercise(number, function, check, notebook, points, tuple(forbidden))
        check.exercise_number = number
        return check

    return register


# --------------------------------------------------------------------------- tolerance


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """``|got - expected| <= atol + rtol * |expected|``, for answers of ``bits``-bit floats."""

    rtol: float
    atol: float
    bits: int = 64

    def for_precision(self, bits: int | None, scale: float) -> "Tolerance":
        """This tolerance, widened for ``bits``-bit data whose largest magnitude is ``scale``."""
        if bits is None or bits >= 64 or bits not in _LOW_PRECISION_TOL:
            return self
        loose = _LOW_PRECISION_TOL[bits]
        return Tolerance(max(self.rtol, loose), max(self.atol, loose * scale), bits)

    def close(self, expected: np.ndarray, got: np.ndarray) -> np.ndarray:
        return np.isclose(got, expected, rtol=self.rtol, atol=self.atol, equal_nan=True)

    def describe(self) -> str:
        text = f"|got - expected| <= {self.atol:.1e} + {self.rtol:.1e} |expected|"
        return text + (f", float{self.bits} precision" if self.bits < 64 else "")


def _float_bits(value) -> int | None:
    """Bits of a floating-point value or array (complex: of each part); None for anything else."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return 64 if isinstance(value, float) else None
    try:
        dtype = np.dtype(str(dtype).replace("torch.", ""))
    except TypeError:
        return None
    if dtype.kind == "f":
        return dtype.itemsize * 8
    if dtype.kind == "c":
        return dtype.itemsize * 4
    return None


def _input_bits(case: Case) -> int | None:
    """Lowest floating-point precision among the case's array inputs (None: no float arrays)."""
    found = []

    def visit(value, depth=0):
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            bits = _float_bits(value)
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


# --------------------------------------------------------------------------- comparing answers


class _NotNumeric(Exception):
    pass


def _as_array(value) -> np.ndarray:
    """``value`` as a NumPy array (torch tensors and CuPy arrays too); _NotNumeric if it is not numbers."""
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, possibly with grad
            value = value.detach().cpu().numpy()
        arr = to_numpy(value) if hasattr(value, "shape") else np.asarray(value)
    except Exception as err:
        raise _NotNumeric(f"expected a numeric array, got {type(value).__name__}") from err
    if arr.dtype.kind not in "biufc":
        raise _NotNumeric(f"expected a numeric array, got {type(value).__name__}"
                          + (f" of {arr.dtype}" if arr.dtype.kind != "O" else ""))
    return arr


@dataclasses.dataclass
class _Mismatch:
    """Why an answer differs: a one-line summary, more lines of detail, a window of values."""

    summary: str
    details: list = dataclasses.field(default_factory=list)
    window: list = dataclasses.field(default_factory=list)
    path: tuple = ()  # which output of a tuple answer (0-based indices)
    expected: Any = None  # the arrays compared (of that output)
    got: Any = None
    shape_only: bool = False  # the shapes differ

    def lines(self) -> list[str]:
        return [self.summary, *self.details, *self.window]


def _index_text(index: tuple) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"


def _number(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}g}"


def _pair(expected: float, got: float) -> tuple[str, str]:
    """Expected and got, with enough digits that two different numbers never print alike."""
    for digits in (6, 8, 10, 13, 17):
        e, g = _number(expected, digits), _number(got, digits)
        if e != g or expected == got:
            return e, g
    return repr(float(expected)), repr(float(got))


def _relative(expected: np.ndarray, diff: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected != 0, diff / np.abs(expected), np.inf)


def _grid(rows: list[list[float]], marks: list[list[bool]] | None, width: int) -> list[str]:
    lines = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            star = "*" if marks is not None and marks[r][c] else " "
            cells.append(_number(value, 5).rjust(width) + star)
        lines.append(" ".join(cells))
    return lines


def _window(e: np.ndarray, g: np.ndarray, differ: np.ndarray, first: tuple) -> list[str]:
    """A few values around the first difference: expected above got, ``*`` marking differences."""
    if e.ndim == 0 or e.size <= 1:
        return []
    if e.ndim == 1:
        n = e.shape[0]
        start = max(0, min(first[0] - 2, n - _WINDOW_1D))
        stop = min(n, start + _WINDOW_1D)
        where = "the whole array" if (start, stop) == (0, n) else f"values [{start}:{stop}] of {n}"
        block_e, block_g, block_d = [e[start:stop]], [g[start:stop]], [differ[start:stop]]
        heading = f"around it, {where} (* marks a difference):"
    else:
        lead, (i, j) = first[:-2], first[-2:]
        h, w = e.shape[-2:]
        r0 = max(0, min(i - 1, h - _WINDOW_ROWS))
        c0 = max(0, min(j - 2, w - _WINDOW_COLS))
        r1, c1 = min(h, r0 + _WINDOW_ROWS), min(w, c0 + _WINDOW_COLS)
        block_e = e[lead][r0:r1, c0:c1]
        block_g = g[lead][r0:r1, c0:c1]
        block_d = differ[lead][r0:r1, c0:c1]
        part = ", ".join([*([f"rows {r0}:{r1}"] if (r0, r1) != (0, h) else []),
                          *([f"columns {c0}:{c1}"] if (c0, c1) != (0, w) else [])])
        slice_name = "[" + ", ".join([*(str(k) for k in lead), ":", ":"]) + "]"
        heading = (f"around it, the {h}x{w} slice {slice_name}{', ' + part if part else ''}" if lead
                   else f"around it, {part} of the {h}x{w} matrix" if part else "around it, the whole matrix")
        heading += " (* marks a difference):"
    values = [float(v) for row in (*block_e, *block_g) for v in np.atleast_1d(row)]
    width = max(len(_number(v, 5)) for v in values)
    block_d = [list(np.atleast_1d(row)) for row in block_d]
    lines = [heading]
    for name, block, marks in (("expected", block_e, None), ("got", block_g, block_d)):
        for k, text in enumerate(_grid([list(np.atleast_1d(row)) for row in block], marks, width)):
            lines.append(f"  {name if k == 0 else '':<9}{text.rstrip()}")
    return lines


def _outputs(numbers: list[int], verdict: str) -> str:
    """'output 2 is right', 'outputs 1 and 3 are wrong too'."""
    if len(numbers) == 1:
        return f"output {numbers[0]} is {verdict}"
    listed = ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"
    return f"outputs {listed} are {verdict}"


def _near_miss(relative_error: float, tol: Tolerance) -> bool:
    """Worth printing the tolerance: the answer is close (error below 1 % of its scale), or of reduced precision."""
    return tol.bits < 64 or not np.isfinite(relative_error) or relative_error < 1e-2


def _diagnose(expected, got, tol: Tolerance, input_bits: int | None = None, notes: list | None = None,
              path: tuple = ()) -> _Mismatch | None:
    """None when ``got`` matches ``expected`` within ``tol``, else a :class:`_Mismatch`.

    Tuples are compared output by output. ``notes`` collects ``(bits, largest relative
    difference)`` for answers accepted only thanks to a lower-precision tolerance.
    """
    with np.errstate(all="ignore"):  # inf - inf, overflow ...: reported as such, never as a warning
        return _diagnose_values(expected, got, tol, input_bits, notes, path)


def _diagnose_values(expected, got, tol: Tolerance, input_bits: int | None, notes: list | None,
                     path: tuple) -> _Mismatch | None:
    if isinstance(expected, tuple):
        if got is None:
            return _Mismatch("got None: did the function forget to `return` its results?", path=path)
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else 1
            return _Mismatch(f"expected a tuple of {len(expected)} outputs, got {n} ({type(got).__name__})", path=path)
        for i, (e, g) in enumerate(zip(expected, got)):
            found = _diagnose(e, g, tol, input_bits, notes, path + (i,))
            if found is not None:
                found.summary = f"output {i + 1} of {len(expected)}: {found.summary}"
                others = [k for k in range(len(expected)) if k != i]
                if others:
                    wrong = [k + 1 for k in others if _diagnose(expected[k], got[k], tol, input_bits) is not None]
                    right = [k + 1 for k in others if k + 1 not in wrong]
                    found.details.append(", ".join(_outputs(ks, verdict) for ks, verdict in
                                                   ((right, "right"), (wrong, "wrong too")) if ks))
                return found
        return None
    if expected is None:
        return None if got is None else _Mismatch(f"expected None, got {type(got).__name__}", path=path)
    if got is None:
        return _Mismatch("got None: did the function forget to `return` its result?", path=path)
    try:
        g = _as_array(got)
    except _NotNumeric as err:
        return _Mismatch(str(err), path=path)
    e = _as_array(expected)
    if g.dtype.kind == "c" and e.dtype.kind != "c":
        imag = float(np.max(np.abs(g.imag))) if g.size else 0.0
        return _Mismatch(f"got complex values (largest imaginary part {imag:.2g}); the answer is real: "
                         f"return its real part (`.real`, or np.fft.irfft for a real signal)", path=path)
    if g.shape != e.shape:
        found = _Mismatch(f"wrong shape: expected {e.shape}, got {g.shape}", path=path, expected=e, got=g,
                          shape_only=True)
        if e.ndim == 0 and g.size == 1:
            found.details.append("one number is expected: return it as a number (float(value)), "
                                 "not as an array holding it")
        elif g.size == e.size and tuple(n for n in g.shape if n != 1) == tuple(n for n in e.shape if n != 1):
            found.details.append("the same values with axes of length 1 added or dropped "
                                 "(keepdims=True, or a missing reshape/squeeze?)")
        elif g.size == e.size and g.size > 1:
            found.details.append(f"the same number of values ({g.size}) in another shape: "
                                 f"transposed or reshaped in the wrong order?")
        elif g.ndim == e.ndim:
            axes = [f"axis {k}: {n} instead of {m}" for k, (m, n) in enumerate(zip(e.shape, g.shape)) if m != n]
            found.details.append("; ".join(axes) + " (the output-size formula? padding? stride?)"
                                 if len(axes) <= 2 else "; ".join(axes))
        else:
            found.details.append(f"{g.ndim} axes instead of {e.ndim}")
        return found
    bits = min(b for b in (_float_bits(g), _float_bits(e), input_bits, 64) if b is not None)
    g = g.astype(complex if e.dtype.kind == "c" else float)
    e = e.astype(complex if e.dtype.kind == "c" else float)
    finite = np.abs(e[np.isfinite(e)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    used = tol.for_precision(bits, scale)
    close = used.close(e, g)
    diff = np.abs(g - e)
    if close.all():
        if notes is not None and used is not tol and not tol.close(e, g).all():
            notes.append((bits, float(np.nanmax(_relative(e, diff)[np.isfinite(_relative(e, diff))], initial=0.0))))
        return None
    differ = ~close
    bad = np.argwhere(differ)
    first = tuple(int(i) for i in bad[0])
    found = _Mismatch("", path=path, expected=e, got=g)
    new_nan = np.isnan(g) & ~np.isnan(e)
    new_inf = np.isinf(g) & ~np.isinf(e)
    if new_nan.any() or new_inf.any():
        kind, mask = ("NaN", new_nan) if new_nan.any() else ("inf", new_inf)
        where = tuple(int(i) for i in np.argwhere(mask)[0])
        found.summary = f"{kind} at index {_index_text(where)} ({int(mask.sum())} of {e.size} values are {kind})"
        if e.size > 1:
            found.window = _window(e, g, differ, where)
        return found
    if e.size == 1:
        ev, gv = e.reshape(-1)[0], g.reshape(-1)[0]
        es, gs = _pair(ev.real, gv.real) if e.dtype.kind != "c" else (str(ev), str(gv))
        found.summary = f"expected {es}, got {gs}"
        rel = float(_relative(e, diff).reshape(-1)[0])
        found.details.append(f"difference {float(diff.reshape(-1)[0]):.2g}"
                             + (f" (relative {rel:.2g})" if np.isfinite(rel) else "")
                             + (f"; allowed: {used.describe()}" if _near_miss(rel, used) else ""))
    else:
        found.summary = f"shape {e.shape} as expected; {len(bad)} of {e.size} values differ"
        es, gs = _pair(e[first].real, g[first].real) if e.dtype.kind != "c" else (str(e[first]), str(g[first]))
        rel = _relative(e, diff)
        abs_errors = np.where(differ & ~np.isnan(diff), diff, -1.0)
        rel_errors = np.where(differ & np.isfinite(rel), rel, -1.0)
        worst = np.unravel_index(int(np.argmax(abs_errors)), e.shape)
        worst_rel = np.unravel_index(int(np.argmax(rel_errors)), e.shape)
        if len(bad) == 1:  # one difference: its size belongs on the same line
            sizes = (f" (absolute error {float(diff[first]):.3g}"
                     + (f", relative {float(rel[first]):.2g}" if np.isfinite(rel[first]) else "") + ")"
                     if abs_errors[first] >= 0 else "")
            found.details.append(f"first at index {_index_text(first)} (the only one): expected {es}, got {gs}{sizes}")
        else:
            found.details.append(f"first at index {_index_text(first)}: expected {es}, got {gs}")
            if abs_errors[worst] >= 0:
                rel_here = f", relative {float(rel[worst]):.2g}" if np.isfinite(rel[worst]) else ""
                found.details.append(f"largest absolute error {float(diff[worst]):.3g} at {_index_text(worst)} "
                                     f"(expected %s, got %s{rel_here})" % _pair(e[worst].real, g[worst].real))
            repeat = np.isfinite(rel[worst]) and rel[worst_rel] <= 1.01 * rel[worst]  # nothing new to say
            if rel_errors[worst_rel] >= 0 and not repeat:
                found.details.append(f"largest relative error {float(rel[worst_rel]):.3g} at {_index_text(worst_rel)} "
                                     f"(expected %s, got %s)" % _pair(e[worst_rel].real, g[worst_rel].real))
        if abs_errors[worst] >= 0 and _near_miss(float(diff[worst]) / scale, used):
            found.details.append(f"allowed: {used.describe()}")
        found.window = _window(e.real, g.real, differ, first)
    if used.bits == 64 and tol.for_precision(32, scale).close(e, g).all():
        found.details.append("the answer matches to float32 precision only: is part of the work done in float32? "
                             "The check expects float64 here.")
    return found


def compare(expected, got, *, rtol: float = 1e-6, atol: float = 1e-8) -> str | None:
    """Return None when ``got`` matches ``expected``, else a short diagnosis (a few lines).

    Tuples are compared element by element ("output 2 of 3 ...").
    """
    found = _diagnose(expected, got, Tolerance(rtol, atol))
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
            if _diagnose(answer, got, tol, bits) is None:
                causes.append(cause)
        except Exception:  # an answer of another kind: not this mistake
            continue
    return causes


def _causes_of_shape(case: Case, mismatch: _Mismatch) -> list[str]:
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
            if _diagnose(_leaf(answer, path), _leaf(got, path), tol, bits) is None:
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
                wrong_before = answer is not None and _diagnose(case.expected, answer, tol, _input_bits(case)) is not None
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
        if _diagnose(case.expected, got, tol, _input_bits(case)) is None:
            continue  # right here: no evidence either way
        matching = set(_matching_causes(case, got, tol))
        kept = [c for c in causes if c in matching or c not in listed]
        causes = kept or causes
    return causes


# --------------------------------------------------------------------------- errors in the student's code


def _library_dirs() -> tuple[str, ...]:
    dirs = {os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}  # the package
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(os.path.realpath(sysconfig.get_paths()[key]))
        except KeyError:
            pass
    for entry in sys.path:
        if entry.rstrip("/").endswith(("site-packages", "dist-packages")):
            dirs.add(os.path.realpath(entry))
    return tuple(d + os.sep for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_student_code(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen ...>, <__array_function__ internals>; but cells are student code
        return filename.startswith(("<ipython-input", "<cell", "<string>", "<stdin>", "<input>"))
    return not os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def _place(filename: str, lineno: int) -> str:
    """'cell In[7], line 3' in a notebook, else 'file.py, line 3'."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    try:
        named = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:
        named = None
    if named:
        return f"{named[0].lower()} {named[1]}, line {lineno}"
    if filename.startswith("<cell ") and filename.endswith(">"):  # the autograder's name for cell N
        return f"cell {filename[6:-1]}, line {lineno}"
    if not filename.startswith("<"):
        relative = os.path.relpath(filename)
        filename = relative if not relative.startswith("..") else filename
    return f"{filename}, line {lineno}"


def student_line(err: BaseException) -> list[str]:
    """Where in the student's code ``err`` was raised: the place and its source line (0-2 lines).

    An exception relayed from a sandbox may carry this already, as ``err.student_line`` (the
    lines this function gave in the sandbox, joined by newlines).
    """
    relayed = getattr(err, "student_line", None)
    if isinstance(relayed, str) and relayed.strip():
        return relayed.strip().splitlines()[:2]
    frames = list(traceback.walk_tb(err.__traceback__))
    own = [(frame, lineno) for frame, lineno in frames if _is_student_code(frame.f_code.co_filename)]
    if not own:
        return []
    frame, lineno = own[-1]
    filename = frame.f_code.co_filename
    source = linecache.getline(filename, lineno, frame.f_globals).strip()
    if len(source) > 100:
        source = source[:97] + "..."
    name = frame.f_code.co_name
    lines = [f"at {_place(filename, lineno)}" + (f", in {name}" if name != "<module>" else "")
             + (f": {source}" if source else "")]
    position = [f for f, _ in frames].index(frame)
    if position < len(frames) - 1:  # raised in library code the student's line called
        called = frames[position + 1][0]
        package = str(called.f_globals.get("__name__", "?")).split(".")[0]
        lines.append(f"(raised inside {package}'s {called.f_code.co_name}, called from that line)")
    return lines


def _error_text(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:
        return "<unprintable message>"
    lines = text.strip().splitlines() or [""]
    text = "\n  ".join(line[:300] for line in lines[:3]) + ("\n  ..." if len(lines) > 3 else "")
    return text


# --------------------------------------------------------------------------- running the cases


def _call_student(fn: Callable, args: tuple, kwargs: dict):
    """The one place where a check calls the student's function (a guard can wrap this call)."""
    return fn(*args, **kwargs)


def _changed_input(case: Case, args: tuple) -> int | None:
    """1-based index of an array argument the student's function modified in place, if any."""
    for i, (before, after) in enumerate(zip(case.args, args)):
        if hasattr(before, "shape"):
            try:
                if not np.array_equal(_as_array(before), _as_array(after), equal_nan=True):
                    return i + 1
            except (_NotNumeric, TypeError, ValueError):
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
             mismatch: _Mismatch, tol: Tolerance) -> CheckResult:
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
    lines = [f"✘ {head}: case '{case.label}' raised {type(err).__name__}: {_error_text(err)}"]
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
    for index, case in enumerate(cases):
        args = copy.deepcopy(case.args)
        try:
            got = _call_student(fn, args, case.kwargs)
        except NotImplementedError:
            return CheckResult(number, title, NOT_ATTEMPTED,
                               f"… {head}: not attempted yet (the function still raises NotImplementedError)", 0, len(cases))
        except Exception as err:  # the student's bug, reported, not raised
            return _raised(number, title, head, cases, index, err)
        mismatch = _diagnose(case.expected, got, tol, _input_bits(case), notes)
        if mismatch is None:
            changed = _changed_input(case, args)
            if changed is not None:
                mismatch = _Mismatch(f"the function modified its input argument {changed} in place "
                                     f"(work on a copy, or build a new array)")
        if mismatch is not None:
            return _failure(number, title, head, fn, cases, index, got, mismatch, tol)
    message = f"✔ {head}: all {len(cases)} cases pass" + (_low_precision_note(notes) if notes else "")
    return CheckResult(number, title, PASSED, message, len(cases), len(cases))


# --------------------------------------------------------------------------- the cases, for tests


_RECORDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("cnncourse_recording", default=None)


def _same(a, b) -> bool:
    """Equal arguments (arrays element for element, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return a is b


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
    recording: list = []
    token = _RECORDING.set(recording)
    try:
        EXERCISES[number].check(_unfinished)
    finally:
        _RECORDING.reset(token)
    return recording
