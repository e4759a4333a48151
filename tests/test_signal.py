"""cnncourse.signal against independent oracles: scipy.ndimage and numpy.convolve."""
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncourse import signal

# our boundary name -> scipy.ndimage's mode name
NDIMAGE_MODE = {"zero": "constant", "replicate": "nearest", "mirror": "mirror", "periodic": "wrap"}

sizes = st.tuples(st.integers(1, 40), st.integers(1, 25), st.integers(0, 2**31 - 1))


def _random(n, k, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(size=k)


@settings(max_examples=50, deadline=None)
@given(sizes, st.sampled_from(signal.BOUNDARIES), st.sampled_from(["direct", "fft", "auto"]))
def test_correlate_same_matches_ndimage(nks, boundary, method):
    n, k, seed = nks
    x, w = _random(n, k, seed)
    ours = signal.correlate1d(x, w, mode="same", boundary=boundary, method=method)
    ref = ndi.correlate1d(x, w, mode=NDIMAGE_MODE[boundary])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=50, deadline=None)
@given(sizes, st.sampled_from(["direct", "fft"]))
def test_convolve_matches_numpy(nks, method):
    n, k, seed = nks
    x, w = _random(n, k, seed)
    np.testing.assert_allclose(signal.convolve1d(x, w, mode="full", method=method), np.convolve(x, w, "full"), atol=1e-10)
    if n >= k:
        for mode in ("same", "valid"):
            np.testing.assert_allclose(signal.convolve1d(x, w, mode=mode, method=method), np.convolve(x, w, mode), atol=1e-10)


@settings(max_examples=50, deadline=None)
@given(sizes, st.sampled_from(signal.BOUNDARIES), st.sampled_from(signal.MODES))
def test_fft_equals_direct(nks, boundary, mode):
    n, k, seed = nks
    if mode == "valid" and k > n:
        return
    x, w = _random(n, k, seed)
    direct = signal.correlate1d(x, w, mode=mode, boundary=boundary, method="direct")
    fft = signal.correlate1d(x, w, mode=mode, boundary=boundary, method="fft")
    np.testing.assert_allclose(fft, direct, atol=1e-10)
    assert direct.shape == (signal.output_length(n, k, mode),)


@settings(max_examples=50, deadline=None)
@given(sizes, st.sampled_from(signal.MODES))
def test_conv_matrix_reproduces_correlation(nks, mode):
    n, k, seed = nks
    if mode == "valid" and k > n:
        return
    x, w = _random(n, k, seed)
    M = signal.conv_matrix(w, n, mode=mode)
    np.testing.assert_allclose(M @ x, signal.correlate1d(x, w, mode=mode), atol=1e-10)


def test_conv_matrix_is_banded_with_k_values():
    w = np.array([1.0, 2.0, 3.0])
    M = signal.conv_matrix(w, 6)
    assert set(np.unique(M)) == {0.0, 1.0, 2.0, 3.0}
    assert np.all(np.diag(M) == 2.0) and np.all(np.diag(M, 1) == 3.0) and np.all(np.diag(M, -1) == 1.0)
    assert np.count_nonzero(np.triu(M, 2)) == 0


def test_worked_example_convolution():
    # SYLLABUS 01: [2, -1, 1] * [1, 1, 2] = [2, 1, 4, -1, 2]
    np.testing.assert_allclose(signal.convolve1d([2.0, -1, 1], [1.0, 1, 2], mode="full"), [2, 1, 4, -1, 2])


def test_worked_example_filters_on_fibonacci():
    x = np.array([0, 1, 1, 2, 3, 5, 8, 13.0])
    np.testing.assert_allclose(signal.correlate1d(x, [0, 1, 0]), x)
    np.testing.assert_allclose(signal.correlate1d(x, [0, 0, 1])[:-1], [1, 1, 2, 3, 5, 8, 13])
    avg = signal.correlate1d(x, np.full(3, 1 / 3), mode="valid")
    np.testing.assert_allclose(avg, [2 / 3, 4 / 3, 2, 10 / 3, 16 / 3, 26 / 3])
    np.testing.assert_allclose(signal.pad1d(x, 3, 3, "replicate"), [0, 0, 0, *x, 13, 13, 13])
    np.testing.assert_allclose(signal.pad1d(x, 3, 3, "mirror"), [2, 1, 1, *x, 8, 5, 3])
    np.testing.assert_allclose(signal.pad1d(x, 3, 3, "zero"), [0, 0, 0, *x, 0, 0, 0])


def test_float32_stays_float32_and_ints_become_float64():
    x32 = np.arange(10, dtype=np.float32)
    assert signal.correlate1d(x32, np.ones(3, np.float32)).dtype == np.float32
    assert signal.correlate1d(np.arange(10), [1, 2, 1]).dtype == np.float64
    assert signal.correlate1d(x32, np.ones(3, np.float32), method="fft").dtype == np.float32


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: signal.correlate1d(np.ones((3, 3)), [1.0]), ValueError, r"signal x must be 1-D, got a 2-D"),
        (lambda: signal.correlate1d(np.ones(5), []), ValueError, r"filter w is empty"),
        (lambda: signal.correlate1d(np.ones(5), [1.0], mode="middle"), ValueError, r"unknown mode 'middle'"),
        (lambda: signal.correlate1d(np.ones(5), [1.0], boundary="wrap"), ValueError, r"unknown boundary 'wrap'"),
        (lambda: signal.correlate1d(np.ones(5), [1.0], method="fast"), ValueError, r"unknown method 'fast'"),
        (lambda: signal.correlate1d(np.array(["a", "b"]), [1.0]), TypeError, r"signal x must hold real numbers"),
        (lambda: signal.correlate1d(np.ones(3, dtype=bool), [1.0]), TypeError, r"dtype bool"),
        (lambda: signal.correlate1d(np.ones(3), np.ones(5), mode="valid"), ValueError, r"K=5 > n=3"),
        (lambda: signal.conv_matrix([1.0, 2.0], 0), ValueError, r"n must be a positive integer"),
        (lambda: signal.convolve1d(np.ones(4), np.ones((2, 2))), ValueError, r"filter w must be 1-D"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
