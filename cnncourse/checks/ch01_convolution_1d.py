"""Checks for notebook 01 (1D convolution)."""
from __future__ import annotations

import numpy as np

from .. import signal
from .core import Case, exercise, run_cases

NOTEBOOK = "01_convolution_1d"


def _signals():
    rng = np.random.default_rng(101)
    yield "x=[0 1 1 2 3 5 8 13], w=[1/3 1/3 1/3]", np.array([0, 1, 1, 2, 3, 5, 8, 13.0]), np.full(3, 1 / 3)
    yield "random x (n=11), asymmetric w (K=3)", rng.normal(size=11), np.array([2.0, -1.0, 0.5])
    yield "random x (n=9), K=5", rng.normal(size=9), rng.normal(size=5)
    yield "short x (n=4), K=5", rng.normal(size=4), rng.normal(size=5)


@exercise("1.1", "correlate_same", notebook=NOTEBOOK,
          forbidden=("cnncourse.signal.correlate1d", "cnncourse.signal.convolve1d"))
def check_correlate_same(fn):
    """``fn(x, w, boundary)``: "same"-size cross-correlation with a boundary rule, odd K."""
    cases = []
    for label, x, w in _signals():
        for boundary in signal.BOUNDARIES:
            ref = lambda xx, ww, b=boundary: signal.correlate1d(xx, ww, mode="same", boundary=b)
            cases.append(Case(
                f"{label}, boundary='{boundary}'", (x, w, boundary), expected=ref(x, w),
                mistakes={
                    "the filter is flipped (that is convolution, not correlation)": ref(x, w[::-1]),
                    "the boundary rule is ignored (zeros used instead)": ref(x, w, "zero"),
                    "mirror repeats the edge sample (that is 'replicate'-like 'symmetric' padding)":
                        np.correlate(np.pad(x, len(w) // 2, mode="symmetric"), w, "valid") if len(w) // 2 <= len(x) else None,
                    "the output is shifted by one: is the filter centred on tap K//2?":
                        np.roll(ref(x, w), 1),
                    "only the 'valid' part is returned: a same-size output needs K//2 invented samples on each side":
                        signal.correlate1d(x, w, mode="valid") if len(w) <= len(x) else None,
                },
            ))
    return run_cases("1.1", "correlate_same", fn, cases)


@exercise("1.2", "toeplitz_matrix", notebook=NOTEBOOK, forbidden=("cnncourse.signal.conv_matrix",))
def check_toeplitz_matrix(fn):
    """``fn(w, n)``: the n x n matrix M with ``M @ x == correlate1d(x, w, mode='same')``."""
    cases = []
    rng = np.random.default_rng(102)
    for w, n in [(np.array([1.0, 2.0, 3.0]), 5), (rng.normal(size=3), 8), (rng.normal(size=5), 7), (np.array([2.0, -1.0, 1.0]), 3)]:
        M = signal.conv_matrix(w, n, mode="same")
        m = len(w) // 2
        circulant = np.zeros((n, n))
        uncentred = np.zeros((n, n))
        for i in range(n):
            for j in range(-m, m + 1):
                circulant[i, (i + j) % n] += w[j + m]
                if 0 <= i + j + m < n:
                    uncentred[i, i + j + m] = w[j + m]
        cases.append(Case(f"w={np.round(w, 3).tolist()}, n={n}", (w, n), expected=M, mistakes={
            # For an odd filter in "same" mode, flipping w and transposing M are the same mistake.
            "the matrix is transposed, or equivalently the filter is flipped along each row "
            "(row i must hold w at the columns of the inputs output i reads)": M.T,
            "the band wraps around into the corners (that is the periodic, circulant matrix): with zero "
            "padding, taps whose column i + j falls outside 0..n-1 are dropped": circulant,
            "the band is not centred: row i must put the centre tap w_0 (w[K//2]) on the diagonal, M[i, i], "
            "not the first tap": uncentred,
        }))
    return run_cases("1.2", "toeplitz_matrix", fn, cases)
