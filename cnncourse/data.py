"""Offline data sets for the course: nothing is ever downloaded.

* :func:`make_signal_classes`: the 3-class 1D signal problem of notebook 02.
"""
from __future__ import annotations

import numpy as np

from .filters import gaussian

__all__ = ["make_signal_classes", "SIGNAL_CLASS_NAMES"]

SIGNAL_CLASS_NAMES = ("smooth", "small", "spiky")


def _smooth_noise(rng, n_samples: int, length: int, amplitude: float) -> np.ndarray:
    """Random smooth curves: white noise blurred by a wide Gaussian, scaled to ``amplitude``."""
    kernel = gaussian(sigma=3.0, normalize=True)
    noise = rng.normal(size=(n_samples, length + len(kernel) - 1))
    smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in noise])
    return amplitude * smooth / np.abs(smooth).max(axis=1, keepdims=True)


def make_signal_classes(n_per_class: int = 100, length: int = 64, *, seed: int = 0, test_fraction: float = 0.3):
    """The 3-class 1D signal problem.

    * class 0 ("smooth"): smooth curves with values up to about +-1;
    * class 1 ("small"): the same kind of curves, but small (values up to about +-0.3);
    * class 2 ("spiky"): values in the same range as class 0, but with a few sharp spikes.

    Classes 0 and 2 overlap in their range of values, so the raw values alone
    cannot tell them apart; a filter that responds to spikes (the Laplacian of
    a Gaussian) can.

    Returns:
        (X_train, y_train, X_test, y_test): X of shape ``(N, length)``, y of shape ``(N,)`` in {0, 1, 2}.
    """
    if n_per_class < 2 or length < 16:
        raise ValueError(f"need n_per_class >= 2 and length >= 16, got {n_per_class}, {length}")
    rng = np.random.default_rng(seed)
    smooth = _smooth_noise(rng, n_per_class, length, 1.0) * rng.uniform(0.6, 1.0, size=(n_per_class, 1))
    small = _smooth_noise(rng, n_per_class, length, 0.3) * rng.uniform(0.6, 1.0, size=(n_per_class, 1))
    spiky = _smooth_noise(rng, n_per_class, length, 0.6)
    for row in spiky:  # 2 to 4 narrow spikes, positive or negative, that keep values within +-1
        where = rng.choice(np.arange(2, length - 2), size=rng.integers(2, 5), replace=False)
        row[where] = rng.choice([-1, 1], size=where.size) * rng.uniform(0.7, 1.0, size=where.size)
    X = np.concatenate([smooth, small, spiky])
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    n_test = int(round(test_fraction * len(y)))
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]
