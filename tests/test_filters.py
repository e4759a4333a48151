"""Named 1D filters: published values and the sums that make them what they are."""
import numpy as np
import pytest

from cnncourse import filters, signal


def test_gaussian_matches_published_values():
    expected = [0.0001, 0.0044, 0.0540, 0.2420, 0.3989, 0.2420, 0.0540, 0.0044, 0.0001]
    np.testing.assert_allclose(np.round(filters.gaussian(1.0, 4), 4), expected)


def test_gaussian_is_the_normal_density():
    from scipy.stats import norm

    np.testing.assert_allclose(filters.gaussian(2.0, 6), norm.pdf(np.arange(-6, 7), scale=2.0))
    assert filters.gaussian(1.5, normalize=True).sum() == pytest.approx(1.0)


def test_log_matches_published_values_and_is_zero_mean():
    expected = [-0.1416, -0.1781, -0.2746, 0.1640, 0.8607, 0.1640, -0.2746, -0.1781, -0.1416]
    w = filters.laplacian_of_gaussian(1.0, 4)
    np.testing.assert_allclose(np.round(w, 4), expected)
    assert w.sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("make", [filters.laplacian, filters.forward_difference, filters.backward_difference,
                                  filters.centred_difference, filters.second_difference, filters.laplacian_of_gaussian])
def test_difference_filters_sum_to_zero(make):
    assert make().sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("make", [filters.identity, filters.shift, filters.box, filters.trapezoid, filters.simpson,
                                  filters.sharpen, lambda: filters.box(9)])
def test_averaging_filters_sum_to_one(make):
    assert make().sum() == pytest.approx(1.0)


def test_shift_translates():
    x = np.arange(10.0)
    np.testing.assert_allclose(signal.correlate1d(x, filters.shift(2))[:-2], x[2:])
    np.testing.assert_allclose(signal.correlate1d(x, filters.shift(-1))[1:], x[:-1])


@pytest.mark.parametrize("make, order", [(filters.forward_difference, 1), (filters.centred_difference, 2)])
def test_derivative_error_order(make, order):
    """Error of the derivative of sin shrinks like h^order (measured slope on a log-log fit)."""
    hs = np.logspace(-3, -1, 6)
    errors = []
    for h in hs:
        t = np.arange(0, 2 * np.pi, h)
        d = signal.correlate1d(np.sin(t), make(h), mode="valid")
        errors.append(np.abs(d - np.cos(t[1:-1])).max())
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.1)


def test_second_difference_is_second_derivative():
    h = 1e-2
    t = np.arange(0, 3, h)
    d2 = signal.correlate1d(t**3, filters.second_difference(h), mode="valid")
    np.testing.assert_allclose(d2, 6 * t[1:-1], atol=1e-6)


def test_simpson_and_trapezoid_integrate():
    t = np.linspace(0, np.pi, 101)  # 100 intervals: an even count, as Simpson needs
    h = t[1] - t[0]
    trap = signal.correlate1d(np.sin(t), filters.trapezoid(), mode="valid").sum() * h
    simp = signal.correlate1d(np.sin(t), filters.simpson(), mode="valid")[::2].sum() * 2 * h
    assert trap == pytest.approx(2.0, abs=2e-4)  # error ~ (pi^3/12) h^2 = 1.6e-4
    assert simp == pytest.approx(2.0, abs=1e-7)


@pytest.mark.parametrize("call", [lambda: filters.gaussian(0), lambda: filters.box(0), lambda: filters.gaussian(1, -1),
                                  lambda: filters.laplacian_of_gaussian(-1.0)])
def test_bad_parameters(call):
    with pytest.raises(ValueError):
        call()
