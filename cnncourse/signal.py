"""1D convolution and cross-correlation, boundary handling, the Toeplitz matrix.

Conventions (used throughout the course):

* **cross-correlation** ``z_i = sum_j w_j x_{i+j-c}`` slides the filter as it is;
* **convolution** ``(w * x)_t = sum_tau w_tau x_{t-tau}`` flips it first.

``c`` is where the filter is anchored: ``K // 2`` for ``mode="same"`` (as in
``scipy.ndimage``), ``K - 1`` for ``"full"`` and ``0`` for ``"valid"``.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ._validate import as_numeric_array, choose, float_dtype
from .backend import get_array_module

__all__ = ["correlate1d", "convolve1d", "conv_matrix", "pad1d", "output_length", "MODES", "BOUNDARIES"]

MODES = ("same", "valid", "full")
BOUNDARIES = ("zero", "replicate", "mirror", "periodic")
METHODS = ("direct", "fft", "auto")
# np.pad's names for our boundary rules.  "mirror" is d c b | a b c d | c b a
# (the edge sample is not repeated), which NumPy calls "reflect".
_NP_PAD_MODE = {"zero": "constant", "replicate": "edge", "mirror": "reflect", "periodic": "wrap"}
# Above this many filter taps "auto" switches to the FFT; notebook 02 measures
# the crossover (it sits between 30 and 100 taps on a laptop).
FFT_CROSSOVER_TAPS = 48


def output_length(n: int, k: int, mode: str) -> int:
    """Length of the output of a 1D correlation of ``n`` samples with ``k`` taps."""
    choose(mode, "mode", MODES)
    return {"same": n, "valid": n - k + 1, "full": n + k - 1}[mode]


def pad1d(x, before: int, after: int, boundary: str = "zero"):
    """Extend a 1D signal by ``before``/``after`` samples using a boundary rule.

    Example (x = a b c d, two samples each side):
    zero ``0 0|a b c d|0 0``, replicate ``a a|a b c d|d d``,
    mirror ``c b|a b c d|c b``, periodic ``c d|a b c d|a b``.
    """
    xp = get_array_module(x)
    choose(boundary, "boundary", BOUNDARIES)
    if boundary == "mirror" and x.shape[0] == 1:
        boundary = "replicate"  # a single sample mirrors onto itself
    return xp.pad(x, (before, after), mode=_NP_PAD_MODE[boundary])


def _anchor(k: int, mode: str) -> int:
    return {"same": k // 2, "valid": 0, "full": k - 1}[mode]


def correlate1d(x, w, *, mode: str = "same", boundary: str = "zero", method: str = "direct"):
    """Cross-correlate a 1D signal with a filter: ``z_i = sum_j w_j x_{i+j-c}``.

    Args:
        x: signal, shape ``(n,)``.
        w: filter, shape ``(K,)``; tap ``K // 2`` is its centre in "same" mode.
        mode: "same" (length n), "valid" (n - K + 1, no padding) or "full" (n + K - 1).
        boundary: how samples outside the signal are invented: "zero",
            "replicate", "mirror" or "periodic".  Ignored by "valid".
        method: "direct" (sliding dot products, O(nK)), "fft" (O(n log n)) or
            "auto" (FFT for filters longer than ``FFT_CROSSOVER_TAPS``).

    Returns:
        z: shape ``(output_length(n, K, mode),)``; float32 if the inputs are
        float32, else float64.
    """
    x = as_numeric_array(x, "signal x", ndim=1)
    w = as_numeric_array(w, "filter w", ndim=1)
    get_array_module(x, w)  # raises on a NumPy/CuPy mix
    choose(mode, "mode", MODES)
    choose(boundary, "boundary", BOUNDARIES)
    choose(method, "method", METHODS)
    n, k = x.shape[0], w.shape[0]
    if mode == "valid" and k > n:
        raise ValueError(f"mode='valid' needs a filter no longer than the signal (K={k} > n={n})")
    dtype = float_dtype(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    # Pad K-1 samples each side; every mode is then a window of the full output.
    padded = pad1d(x, k - 1, k - 1, boundary)
    if method == "fft" or (method == "auto" and k > FFT_CROSSOVER_TAPS):
        full = _correlate_valid_fft(padded, w)
    else:
        full = _correlate_valid_direct(padded, w)
    start = (k - 1) - _anchor(k, mode)
    return full[start : start + output_length(n, k, mode)]


def _correlate_valid_direct(x, w):
    """Valid correlation as one matrix-vector product over sliding windows."""
    xp = get_array_module(x)
    windows = xp.lib.stride_tricks.sliding_window_view(x, w.shape[0])  # (n-K+1, K), no copy
    return windows @ w


def _correlate_valid_fft(x, w):
    """Valid correlation through the FFT: correlation = convolution with the flipped filter.

    The FFT computes a *circular* convolution; padding both to length n + K - 1
    (at least) leaves no wrap-around in the samples we keep.
    """
    xp = get_array_module(x)
    fft = scipy.fft if xp is np else xp.fft
    n, k = x.shape[0], w.shape[0]
    size = scipy.fft.next_fast_len(n + k - 1, real=True)
    spectrum = fft.rfft(x, size) * fft.rfft(w[::-1], size)
    linear = fft.irfft(spectrum, size)[: n + k - 1]
    return linear[k - 1 : n].astype(x.dtype, copy=False)


def convolve1d(x, w, *, mode: str = "same", boundary: str = "zero", method: str = "direct"):
    """True convolution ``(w * x)_t = sum_tau w_tau x_{t-tau}``: correlation with the flipped filter.

    Same arguments as :func:`correlate1d`.  "full" equals ``numpy.convolve``;
    "same" is the centred part of "full" (``numpy.convolve(..., "same")`` when n >= K).
    """
    w = as_numeric_array(w, "filter w", ndim=1)
    return correlate1d(x, w[::-1], mode=mode, boundary=boundary, method=method)


def conv_matrix(w, n: int, *, mode: str = "same"):
    """The banded (Toeplitz) matrix ``M`` with ``M @ x == correlate1d(x, w, mode=mode, boundary="zero")``.

    Row i holds the filter taps at the columns of the inputs that output i
    reads: ``M[i, i + j - c] = w_j``.  Only K distinct values appear, one per
    diagonal, however large n is.

    Returns:
        M: shape ``(output_length(n, K, mode), n)``.
    """
    w = as_numeric_array(w, "filter w", ndim=1)
    choose(mode, "mode", MODES)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    k = w.shape[0]
    rows = output_length(n, k, mode)
    if rows < 1:
        raise ValueError(f"mode='valid' needs a filter no longer than the signal (K={k} > n={n})")
    xp = get_array_module(w)
    M = xp.zeros((rows, n), dtype=float_dtype(w))
    out_idx = xp.arange(rows)
    for j in range(k):  # one diagonal per tap
        cols = out_idx + j - _anchor(k, mode)
        inside = (cols >= 0) & (cols < n)
        M[out_idx[inside], cols[inside]] = w[j]
    return M
