"""Comparing an answer with the expected one, and saying how it differs.

:func:`diagnose` returns None for a match, else a :class:`Mismatch`: a one-line
summary (the shape check first, then how many values differ), detail lines
(the first difference, the largest absolute and relative errors and where,
the tolerance when it matters) and a window of a few values around the first
difference (one 2-D slice, expected above got, ``*`` on the values that differ).

The tolerance follows the precision of the data (:class:`Tolerance`): float32
answers, or answers to float32 inputs, are compared at float32 precision.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..backend import to_numpy

__all__ = ["Tolerance", "Mismatch", "NotNumeric", "diagnose", "as_array", "float_bits"]

# How many values a window shows: rows x columns of a 2-D slice, or values of a 1-D array.
_WINDOW_ROWS, _WINDOW_COLS, _WINDOW_1D = 3, 6, 8
# Tolerance for answers of lower precision: rtol, and atol as a fraction of the answer's largest value.
# float32 keeps about 7 significant digits; sums of many terms lose one or two of them.
_LOW_PRECISION_TOL = {32: 1e-5, 16: 1e-2}


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


def float_bits(value) -> int | None:
    """Bits of a floating-point value or array (complex: of each part); None for anything else."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return 64 if isinstance(value, float) else None
    if "bfloat16" in str(dtype):  # torch's bfloat16: NumPy has no such dtype
        return 16
    try:
        dtype = np.dtype(str(dtype).replace("torch.", ""))
    except TypeError:
        return None
    if dtype.kind == "f":
        return dtype.itemsize * 8
    if dtype.kind == "c":
        return dtype.itemsize * 4
    return None


class NotNumeric(Exception):
    """The answer is not numbers (a string, a dict, a ragged list ...)."""


def as_array(value) -> np.ndarray:
    """``value`` as a NumPy array (torch tensors and CuPy arrays too); NotNumeric if it is not numbers."""
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, possibly with grad
            value = value.detach().cpu()
            value = (value.float() if "bfloat16" in str(value.dtype) else value).numpy()
        arr = to_numpy(value) if hasattr(value, "shape") else np.asarray(value)
    except Exception as err:
        raise NotNumeric(f"expected a numeric array, got {type(value).__name__}") from err
    if arr.dtype.kind not in "biufc":
        raise NotNumeric(f"expected a numeric array, got {type(value).__name__}"
                         + (f" of {arr.dtype}" if arr.dtype.kind != "O" else ""))
    return arr


@dataclasses.dataclass
class Mismatch:
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


def diagnose(expected, got, tol: Tolerance, input_bits: int | None = None, notes: list | None = None,
              path: tuple = ()) -> Mismatch | None:
    """None when ``got`` matches ``expected`` within ``tol``, else a :class:`Mismatch`.

    Tuples are compared output by output. ``notes`` collects ``(bits, largest relative
    difference)`` for answers accepted only thanks to a lower-precision tolerance.
    """
    with np.errstate(all="ignore"):  # inf - inf, overflow ...: reported as such, never as a warning
        return _diagnose_values(expected, got, tol, input_bits, notes, path)


def _diagnose_values(expected, got, tol: Tolerance, input_bits: int | None, notes: list | None,
                     path: tuple) -> Mismatch | None:
    if isinstance(expected, tuple):
        if got is None:
            return Mismatch("got None: did the function forget to `return` its results?", path=path)
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else 1
            return Mismatch(f"expected a tuple of {len(expected)} outputs, got {n} ({type(got).__name__})", path=path)
        for i, (e, g) in enumerate(zip(expected, got)):
            found = diagnose(e, g, tol, input_bits, notes, path + (i,))
            if found is not None:
                found.summary = f"output {i + 1} of {len(expected)}: {found.summary}"
                others = [k for k in range(len(expected)) if k != i]
                if others:
                    wrong = [k + 1 for k in others if diagnose(expected[k], got[k], tol, input_bits) is not None]
                    right = [k + 1 for k in others if k + 1 not in wrong]
                    found.details.append(", ".join(_outputs(ks, verdict) for ks, verdict in
                                                   ((right, "right"), (wrong, "wrong too")) if ks))
                return found
        return None
    if expected is None:
        return None if got is None else Mismatch(f"expected None, got {type(got).__name__}", path=path)
    if got is None:
        return Mismatch("got None: did the function forget to `return` its result?", path=path)
    try:
        g = as_array(got)
    except NotNumeric as err:
        return Mismatch(str(err), path=path)
    e = as_array(expected)
    if g.dtype.kind == "c" and e.dtype.kind != "c":
        imag = float(np.max(np.abs(g.imag))) if g.size else 0.0
        return Mismatch(f"got complex values (largest imaginary part {imag:.2g}); the answer is real: "
                         f"return its real part (`.real`, or np.fft.irfft for a real signal)", path=path)
    if g.shape != e.shape:
        found = Mismatch(f"wrong shape: expected {e.shape}, got {g.shape}", path=path, expected=e, got=g,
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
    bits = min(b for b in (float_bits(got), float_bits(g), float_bits(e), input_bits, 64) if b is not None)
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
    found = Mismatch("", path=path, expected=e, got=g)
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
