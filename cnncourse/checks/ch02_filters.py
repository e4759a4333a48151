"""Checks for notebook 02 (filters and finite differences)."""
from __future__ import annotations

import numpy as np

from .. import filters, signal
from .core import Case, exercise, run_cases

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
        errors = c * hs**p * np.exp(rng.normal(scale=0.02, size=hs.size))
        slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
        cases.append(Case(f"errors ~ {c} h^{p:g}", (hs, errors), expected=np.float64(slope), mistakes={
            "log10 of one and natural log of the other? The slope needs the same log on both axes":
                np.float64(np.polyfit(np.log10(hs), np.log(errors), 1)[0]),
            "the sign is flipped: error grows with h, so the slope is positive": np.float64(-slope),
        }))
    return run_cases("2.2", "error_order", fn, cases, rtol=1e-3)


@exercise("2.3", "fft_correlate_periodic", notebook=NOTEBOOK)
def check_fft_correlate_periodic(fn):
    """``fn(x, w)``: same-size periodic correlation computed with the FFT."""
    cases = []
    rng = np.random.default_rng(203)
    for n, k in ((8, 3), (16, 5), (33, 9), (64, 31)):
        x, w = rng.normal(size=n), rng.normal(size=k)
        ref = signal.correlate1d(x, w, mode="same", boundary="periodic")
        cases.append(Case(f"n={n}, K={k}", (x, w), expected=ref, mistakes={
            "this is convolution: the filter must be flipped (or the spectrum conjugated) for correlation":
                signal.convolve1d(x, w, mode="same", boundary="periodic"),
            "the result is not re-centred: roll by K//2 so tap K//2 sits on each output":
                np.roll(ref, k // 2),
            "the result is rolled the wrong way":
                np.roll(ref, -(k // 2)),
        }))
    return run_cases("2.3", "fft_correlate_periodic", fn, cases)
