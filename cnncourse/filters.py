"""Named filters, as arrays of taps indexed -m..m (centre tap in the middle).

All 1D filters here are *correlation* weights for :func:`cnncourse.signal.correlate1d`:
``z_i = sum_j w_j x_{i+j}``.  Lecture notes often print difference filters
in convolution order (flipped): our ``centred_difference()`` is ``[-1/2, 0, 1/2]``,
which the notes write as ``[1, 0, -1] / 2``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "identity", "shift", "box", "gaussian", "laplacian", "sharpen", "laplacian_of_gaussian",
    "forward_difference", "backward_difference", "centred_difference", "second_difference",
    "trapezoid", "simpson",
]


def _taps(m: int) -> np.ndarray:
    if not isinstance(m, (int, np.integer)) or m < 0:
        raise ValueError(f"half-width m must be a non-negative integer, got {m!r}")
    return np.arange(-m, m + 1, dtype=np.float64)


def identity() -> np.ndarray:
    """``[0, 1, 0]``: returns the signal unchanged."""
    return np.array([0.0, 1.0, 0.0])


def shift(steps: int = 1) -> np.ndarray:
    """A single 1 at tap ``steps``: ``z_i = x_{i+steps}`` (``shift(1) == [0, 0, 1]``)."""
    if not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an integer, got {steps!r}")
    w = np.zeros(2 * abs(steps) + 1)
    w[abs(steps) + steps] = 1.0
    return w


def box(width: int = 3) -> np.ndarray:
    """Moving average of ``width`` samples: ``ones(width) / width``."""
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"box width must be a positive integer, got {width!r}")
    return np.full(width, 1.0 / width)


def gaussian(sigma: float = 1.0, m: int | None = None, *, normalize: bool = False) -> np.ndarray:
    """Sampled normal density ``w_i = exp(-i^2 / 2 sigma^2) / (sqrt(2 pi) sigma)``, i = -m..m.

    Args:
        sigma: standard deviation in samples (> 0).
        m: half-width; defaults to ``ceil(4 sigma)``, beyond which the taps are < 0.0004 of the peak.
        normalize: divide by the sum so the taps add up to exactly 1 (a pure blur).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    i = _taps(int(np.ceil(4 * sigma)) if m is None else m)
    w = np.exp(-(i**2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    return w / w.sum() if normalize else w


def laplacian_of_gaussian(sigma: float = 1.0, m: int | None = None) -> np.ndarray:
    """Zero-mean "Mexican hat": ``(1 - i^2 / 2 sigma^2) exp(-i^2 / 2 sigma^2)`` minus its mean.

    Subtracting the mean makes the filter ignore constant signals (the taps
    sum to 0), as every derivative-like filter should.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    i = _taps(int(np.ceil(4 * sigma)) if m is None else m)
    r = i**2 / (2 * sigma**2)
    w = (1 - r) * np.exp(-r)
    return w - w.mean()


def laplacian() -> np.ndarray:
    """``[-1, 2, -1]``: minus the second difference; large where the signal bends."""
    return np.array([-1.0, 2.0, -1.0])


def sharpen() -> np.ndarray:
    """``[-1, 3, -1]`` = identity + laplacian: boosts bends, keeps the signal."""
    return np.array([-1.0, 3.0, -1.0])


def forward_difference(h: float = 1.0) -> np.ndarray:
    """``(x_{i+1} - x_i) / h``: taps ``[0, -1, 1] / h``; error O(h)."""
    return np.array([0.0, -1.0, 1.0]) / h


def backward_difference(h: float = 1.0) -> np.ndarray:
    """``(x_i - x_{i-1}) / h``: taps ``[-1, 1, 0] / h``; error O(h)."""
    return np.array([-1.0, 1.0, 0.0]) / h


def centred_difference(h: float = 1.0) -> np.ndarray:
    """``(x_{i+1} - x_{i-1}) / 2h``: taps ``[-1, 0, 1] / 2h``; error O(h^2)."""
    return np.array([-0.5, 0.0, 0.5]) / h


def second_difference(h: float = 1.0) -> np.ndarray:
    """``(x_{i-1} - 2 x_i + x_{i+1}) / h^2``: taps ``[1, -2, 1] / h^2``; error O(h^2)."""
    return np.array([1.0, -2.0, 1.0]) / h**2


def trapezoid() -> np.ndarray:
    """Trapezoid rule weights ``[1/2, 1/2]`` (times h: the area of one interval)."""
    return np.array([0.5, 0.5])


def simpson() -> np.ndarray:
    """Simpson's rule weights ``[1/6, 4/6, 1/6]`` (times 2h: the area over two intervals)."""
    return np.array([1.0, 4.0, 1.0]) / 6.0
