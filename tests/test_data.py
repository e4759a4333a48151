"""Offline data sets."""
import numpy as np
import pytest

from cnncourse import data, filters, signal


def test_signal_classes_shapes_and_determinism():
    a = data.make_signal_classes(50, 64, seed=3)
    b = data.make_signal_classes(50, 64, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    Xtr, ytr, Xte, yte = a
    assert Xtr.shape == (105, 64) and Xte.shape == (45, 64)
    assert set(np.unique(ytr)) == {0, 1, 2}


def test_signal_classes_have_the_described_structure():
    X, y, _, _ = data.make_signal_classes(100, 64, seed=0, test_fraction=0.0)
    peak = np.abs(X).max(axis=1)
    log_peak = np.abs(np.stack([signal.correlate1d(r, filters.laplacian_of_gaussian(1.0)) for r in X])).max(axis=1)
    # class 1 is small; classes 0 and 2 overlap in range; class 2 responds strongly to the LoG
    assert peak[y == 1].max() < peak[y == 0].min()
    assert peak[y == 2].min() < peak[y == 0].max()
    assert np.median(log_peak[y == 2]) > 2 * np.median(log_peak[y == 0])


def test_signal_classes_bad_sizes():
    with pytest.raises(ValueError, match="n_per_class"):
        data.make_signal_classes(1)
