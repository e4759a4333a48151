"""Checks of notebooks 01-02: pass the reference, fail each plausible mistake with its cause."""
import numpy as np
import pytest

from cnncourse import checks, filters, signal


def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise")


def test_correlate_same():
    assert checks.check_correlate_same(lambda x, w, b="zero": signal.correlate1d(x, w, boundary=b)).passed
    flipped = checks.check_correlate_same(lambda x, w, b="zero": signal.convolve1d(x, w, boundary=b))
    assert flipped.status == "failed" and "flipped" in flipped.message
    ignores = checks.check_correlate_same(lambda x, w, b="zero": signal.correlate1d(x, w))
    assert ignores.status == "failed" and "boundary rule is ignored" in ignores.message
    shifted = checks.check_correlate_same(lambda x, w, b="zero": np.roll(signal.correlate1d(x, w, boundary=b), 1))
    assert "shifted by one" in shifted.message
    symmetric = checks.check_correlate_same(
        lambda x, w, b="zero": signal.correlate1d(x, w, boundary=b) if b != "mirror"
        else np.correlate(np.pad(x, len(w) // 2, mode="symmetric"), w, "valid"))
    assert "repeats the edge" in symmetric.message
    assert checks.check_correlate_same(_raise).status == "not attempted"


def test_correlate_same_reports_wrong_length_and_exceptions():
    short = checks.check_correlate_same(lambda x, w, b="zero": signal.correlate1d(x, w, mode="valid"))
    assert "wrong shape" in short.message
    boom = checks.check_correlate_same(lambda x, w, b="zero": x[100])
    assert "raised IndexError" in boom.message
    none = checks.check_correlate_same(lambda x, w, b="zero": None)
    assert "forget to `return`" in none.message


def test_check_detects_input_mutation():
    def mutating(x, w, b="zero"):
        out = signal.correlate1d(x, w, boundary=b)
        x[:] = 0
        return out

    assert "modified its input" in checks.check_correlate_same(mutating).message


def test_toeplitz_matrix():
    assert checks.check_toeplitz_matrix(lambda w, n: signal.conv_matrix(w, n)).passed
    assert "transposed" in checks.check_toeplitz_matrix(lambda w, n: signal.conv_matrix(w, n).T).message
    assert "flipped" in checks.check_toeplitz_matrix(lambda w, n: signal.conv_matrix(w[::-1], n)).message
    assert "wrong shape" in checks.check_toeplitz_matrix(lambda w, n: signal.conv_matrix(w, n, mode="full")).message


def _differences(h):
    return filters.forward_difference(h), filters.centred_difference(h), filters.second_difference(h)


def test_difference_filters():
    assert checks.check_difference_filters(_differences).passed
    flipped = checks.check_difference_filters(lambda h: tuple(f[::-1] for f in _differences(h)))
    assert "convolution order" in flipped.message
    unscaled = checks.check_difference_filters(lambda h: _differences(1.0))
    assert "not divided by h" in unscaled.message
    typo = checks.check_difference_filters(lambda h: (*_differences(h)[:2], np.array([-1.0, 2, 1]) / h**2))
    assert "typo" in typo.message


def test_error_order():
    fit = lambda hs, e: np.polyfit(np.log(hs), np.log(e), 1)[0]
    assert checks.check_error_order(fit).passed
    assert "sign" in checks.check_error_order(lambda hs, e: -fit(hs, e)).message
    assert "same log" in checks.check_error_order(lambda hs, e: np.polyfit(np.log10(hs), np.log(e), 1)[0]).message


def test_fft_correlate_periodic():
    ref = lambda x, w: signal.correlate1d(x, w, boundary="periodic", method="fft")
    assert checks.check_fft_correlate_periodic(ref).passed
    conv = checks.check_fft_correlate_periodic(lambda x, w: signal.convolve1d(x, w, boundary="periodic"))
    assert "this is convolution" in conv.message
    rolled = checks.check_fft_correlate_periodic(lambda x, w: np.roll(ref(x, w), len(w) // 2))
    assert "not re-centred" in rolled.message


def test_results_render_as_one_line():
    result = checks.check_error_order(lambda hs, e: np.polyfit(np.log(hs), np.log(e), 1)[0])
    assert repr(result) == "✔ Exercise 2.2 (error_order): all 3 cases pass"
    assert bool(result)


@pytest.mark.parametrize("number", ["1.1", "1.2", "2.1", "2.2", "2.3"])
def test_registry_lists_exercises(number):
    entry = checks.EXERCISES[number]
    assert entry.check.exercise_number == number
    assert entry.notebook.startswith(number.split(".")[0].zfill(2))
