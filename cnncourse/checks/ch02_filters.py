"""Checks for notebook 02 (filters and finite differences)."""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import filters, signal
from . import probes
from .core import FAILED, Case, CheckResult, exercise, run_cases

NOTEBOOK = "02_filters_and_finite_differences"


@exercise("2.1", "difference_filters", notebook=NOTEBOOK)
def check_difference_filters(fn):
    """``fn(h) -> (forward, centred, second)``: correlation taps of length 3, scaled by h."""
    cases = []
    for h in (1.0, 0.1, 0.5):
        ref = (filters.forward_difference(h), filters.centred_difference(h), filters.second_difference(h))
        cases.append(Case(f"h={h}", (h,), expected=ref, mistakes={
            "taps are in convolution order (flipped): correlate1d needs [0, -1, 1] for the forward difference":
                tuple(r[::-1] for r in ref),
            "the taps are not divided by h (h^2 for the second difference)":
                (filters.forward_difference(), filters.centred_difference(), filters.second_difference()),
            "the centred difference is not halved: (x[i+1] - x[i-1]) spans 2h":
                (ref[0], 2 * ref[1], ref[2]),
            "the second difference has the slide's typo [-1, 2, 1]; it must sum to 0: [1, -2, 1]":
                (ref[0], ref[1], np.array([-1.0, 2.0, 1.0]) / h**2),
        }))
    return run_cases("2.1", "difference_filters", fn, cases)


@exercise("2.2", "error_order", notebook=NOTEBOOK)
def check_error_order(fn):
    """``fn(hs, errors) -> p``: the slope of log(error) against log(h) (least squares)."""
    cases = []
    rng = np.random.default_rng(202)
    for p, c in ((1.0, 0.3), (2.0, 5.0), (4.0, 1.0)):
        hs = np.logspace(-3, -1, 7)
        # 10 % scatter, as measured errors have: a line through two points is then visibly not the fit
        errors = c * hs**p * np.exp(rng.normal(scale=0.1, size=hs.size))
        log_h, log_e = np.log(hs), np.log(errors)
        slope, intercept = np.polyfit(log_h, log_e, 1)
        cases.append(Case(f"errors ~ {c} h^{p:g} with 10% scatter", (hs, errors), expected=np.float64(slope), mistakes={
            "log10 of one and natural log of the other? The slope needs the same log on both axes":
                np.float64(np.polyfit(np.log10(hs), log_e, 1)[0]),
            "the sign is flipped: error grows with h, so the slope is positive": np.float64(-slope),
            "a slope through two points only (the first and the last; the mean of the consecutive slopes is the "
            "same number): least squares uses every point":
                np.float64((log_e[-1] - log_e[0]) / (log_h[-1] - log_h[0])),
            "the axes are swapped: fit log(error) as a function of log(h), not log(h) against log(error)":
                np.float64(np.polyfit(log_e, log_h, 1)[0]),
            "np.polyfit returns (slope, intercept): return only the slope, element [0]":
                np.array([slope, intercept]),
            "that is the intercept (log C), element [1] of np.polyfit; the order is the slope, element [0]":
                np.float64(intercept),
        }))
    return run_cases("2.2", "error_order", fn, cases, rtol=1e-3)


# --------------------------------------------------------------------------- 2.3 FFT correlation

_NOT_FFT = ("exercise 2.3 asks for the FFT route: compute the spectra with np.fft (or scipy.fft) in your "
            "function, multiply them and transform back")


def _real_part(fn, seen: list):
    """Run ``fn``; remember a complex result and hand the check its real part (no ComplexWarning)."""

    def wrapped(x, w):
        got = fn(x, w)
        if np.iscomplexobj(got):
            seen.append(got)
            return np.real(got)
        return got

    return wrapped if callable(fn) else fn


def _method_problem(fn) -> str | None:
    """Why the answer, though right, is not the FFT route the exercise asks for (None: it is)."""
    rng = np.random.default_rng(2031)
    w = rng.normal(size=5)
    short, long = probes.watch(fn, rng.normal(size=32), w), probes.watch(fn, rng.normal(size=512), w)
    if short is None or long is None:  # the code cannot be observed (e.g. graded in a sandbox): no verdict
        return None
    used = sorted(short.package_calls | long.package_calls)
    shortcut = [name for name in used if name.rsplit(".", 1)[-1] in ("correlate1d", "convolve1d")]
    if shortcut:
        return (f"it calls {shortcut[0].replace('cnncourse.', 'cc.')}, which the exercise does not allow; "
                + _NOT_FFT)
    if long.fft_calls == 0:
        return ("your function never calls np.fft or scipy.fft itself (an FFT hidden inside another library "
                "function, such as scipy.signal.fftconvolve, does not count): " + _NOT_FFT)
    if long.lines > short.lines + 64 or long.fft_calls > short.fft_calls:
        return (f"it loops over the samples ({short.lines} lines run for n=32, {long.lines} for n=512): "
                "the FFT route needs no loop, only whole-array operations")
    return None


@exercise("2.3", "fft_correlate_periodic", notebook=NOTEBOOK,
          forbidden=("cnncourse.signal.correlate1d", "cnncourse.signal.convolve1d"))
def check_fft_correlate_periodic(fn):
    """``fn(x, w)``: same-size periodic correlation computed with the FFT, as a real array.

    Beyond the values, the check asks for the method: the result must be real (not complex),
    the function must call an FFT itself, and its work must not grow with a loop over samples.
    """
    cases = []
    rng = np.random.default_rng(203)
    for n, k in ((8, 3), (16, 5), (33, 9), (64, 31)):
        x, w = rng.normal(size=n), rng.normal(size=k)
        m = k // 2
        ref = signal.correlate1d(x, w, mode="same", boundary="periodic")
        convolution = signal.convolve1d(x, w, mode="same", boundary="periodic")
        flip = "this is convolution: the filter must be flipped (or the spectrum conjugated) for correlation"
        late, early = f"{m} sample{'s' * (m > 1)} late", f"{m} sample{'s' * (m > 1)} early"
        cases.append(Case(f"n={n}, K={k}", (x, w), expected=ref, mistakes={
            flip: convolution,
            # the plain product of the spectra, not rolled: convolution anchored at tap 0
            flip + "; the result is also not re-centred (np.roll by K//2)": np.roll(convolution, m),
            flip + "; the result is also rolled the wrong way": np.roll(convolution, -m),
            # flipped filter without a roll leaves the result K//2 samples late; conjugated spectrum, early
            f"the result is not re-centred: it comes out K//2 = {late} (what the flipped filter gives); "
            f"np.roll it by -K//2 so that tap w[K//2] sits on each output": np.roll(ref, m),
            f"the result is not re-centred: it comes out K//2 = {early} (what the conjugated spectrum gives); "
            f"np.roll it by +K//2 so that tap w[K//2] sits on each output": np.roll(ref, -m),
            f"the result is rolled the wrong way: it is {2 * m} samples late; np.roll by -K//2, not +K//2":
                np.roll(ref, 2 * m),
            f"the result is rolled the wrong way: it is {2 * m} samples early; np.roll by +K//2, not -K//2":
                np.roll(ref, -2 * m),
            "np.abs of the inverse FFT throws the signs away: take its real part (.real)": np.abs(ref),
        }))
    seen: list = []
    result = run_cases("2.3", "fft_correlate_periodic", _real_part(fn, seen), cases)
    head = "✘ Exercise 2.3 (fft_correlate_periodic)"
    if seen:
        worst = max(float(np.max(np.abs(np.imag(g)))) if np.size(g) else 0.0 for g in seen)
        note = (f"the function returns a complex array ({np.asarray(seen[0]).dtype}, largest imaginary part "
                f"{worst:.1e}): the correlation of real signals is real, so return the real part of the inverse "
                f"FFT (.real, or use np.fft.rfft / np.fft.irfft)")
        if result.passed:
            return CheckResult("2.3", result.title, FAILED, f"{head}: the values are right, but {note}",
                               0, result.cases_total)
        return dataclasses.replace(result, message=f"{result.message}\n  also: {note}")
    if result.passed:
        try:
            problem = _method_problem(fn)
        except Exception:  # it passed every case; a failure on the probe's inputs is not a method verdict
            problem = None
        if problem:
            return CheckResult("2.3", result.title, FAILED, f"{head}: the values are right, but {problem}",
                               0, result.cases_total)
    return result
