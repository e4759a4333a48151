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
    # 2D kernels (notebook 03)
    "blur", "gaussian2d", "sharpen2d", "laplacian2d", "laplacian2d_diagonal", "sobel_x", "sobel_y",
    "horizontal_difference",
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


# --------------------------------------------------------------------------- 2D kernels (notebook 03)
# Like the 1D filters, these are correlation weights for cnncourse.conv.correlate2d
# (row index j1 downwards, column index j2 to the right, centre tap in the middle).


def blur() -> np.ndarray:
    """``[[0, 1, 0], [1, 4, 1], [0, 1, 0]] / 8``: a pixel averaged with its 4 neighbours; sums to 1."""
    return np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 8.0


def gaussian2d(sigma: float = 1.0, m: int | None = None, normalize: bool = True) -> np.ndarray:
    """Isotropic Gaussian blur ``w[i, j] ∝ exp(-(i^2 + j^2) / 2 sigma^2)``, i, j = -m..m.

    It is the outer product of two 1D :func:`gaussian` filters (separable:
    blurring rows then columns is the same as one 2D blur, at 2(2m+1) instead
    of (2m+1)^2 multiplications per pixel).

    Args:
        sigma: standard deviation in pixels (> 0).
        m: half-width; defaults to ``ceil(4 sigma)``.
        normalize: divide by the sum so the taps add up to exactly 1 (keeps the
            mean brightness); False gives the sampled 2D normal density
            ``exp(-(i^2 + j^2) / 2 sigma^2) / (2 pi sigma^2)``.

    Returns:
        w: shape ``(2m+1, 2m+1)``.
    """
    g = gaussian(sigma, m)
    w = np.outer(g, g)
    return w / w.sum() if normalize else w


def sharpen2d() -> np.ndarray:
    """``[[0, -1, 0], [-1, 8, -1], [0, -1, 0]]`` (the syllabus value) = 4 * identity + :func:`laplacian2d`.

    Its taps sum to **4**, not 1, so it also multiplies the brightness by 4
    (rescale the image for display, or divide by 4 for a unit-gain sharpen:
    identity + laplacian / 4).  The common unit-gain variant is
    ``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]`` = identity + laplacian.
    """
    return np.array([[0.0, -1.0, 0.0], [-1.0, 8.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian2d() -> np.ndarray:
    """``[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]``: minus the 5-point Laplacian; edges, sums to 0."""
    return np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian2d_diagonal() -> np.ndarray:
    """``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``: Laplacian with the diagonals too; sums to 0."""
    w = -np.ones((3, 3))
    w[1, 1] = 8.0
    return w


def sobel_x() -> np.ndarray:
    """``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]``: horizontal gradient, smoothed vertically; sums to 0.

    As a correlation weight it gives ``left - right`` (positive where brightness
    falls to the right); as a convolution (flipped) it is ``right - left``, the
    x-derivative.  Responds to vertical edges.
    """
    return np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def sobel_y() -> np.ndarray:
    """``sobel_x().T`` = ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]``: vertical gradient; responds to horizontal edges."""
    return sobel_x().T.copy()


def horizontal_difference() -> np.ndarray:
    """``[[-1, 1]]`` (shape 1x2): ``z[i, j] = x[i, j+1] - x[i, j]`` in correlation; sums to 0."""
    return np.array([[-1.0, 1.0]])
