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


def _band(w, n, *, wrap=False, offset=0):
    """A student's banded matrix: w_j at column i + j + offset, wrapping round the corners if asked."""
    m = len(w) // 2
    M = np.zeros((n, n))
    for i in range(n):
        for j in range(-m, m + 1):
            col = i + j + offset
            if wrap:
                M[i, col % n] += w[j + m]
            elif 0 <= col < n:
                M[i, col] = w[j + m]
    return M


@pytest.mark.parametrize("wrong, cause", [
    (lambda w, n: _band(w, n, wrap=True), "circulant"),
    (lambda w, n: _band(w, n, offset=len(w) // 2), "not centred"),
    (lambda w, n: _band(w[::-1], n), "flipped"),
])
def test_toeplitz_matrix_mistakes(wrong, cause):
    assert checks.check_toeplitz_matrix(lambda w, n: _band(w, n)).passed
    result = checks.check_toeplitz_matrix(wrong)
    assert result.status == "failed" and cause in result.message.split("likely cause:")[1], result.message


def test_correlate_same_valid_only_is_named():
    result = checks.check_correlate_same(lambda x, w, b="zero": signal.correlate1d(x, w, mode="valid", boundary=b))
    assert "wrong shape" in result.message and "'valid' part" in result.message.split("likely cause:")[1]


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


def test_difference_filters_centred_not_halved():
    result = checks.check_difference_filters(lambda h: (_differences(h)[0], 2 * _differences(h)[1], _differences(h)[2]))
    assert "not halved" in result.message.split("likely cause:")[1]


def _fit(hs, e):
    return np.polyfit(np.log(hs), np.log(e), 1)[0]


def test_error_order():
    assert checks.check_error_order(_fit).passed
    assert checks.check_error_order(lambda hs, e: float(np.linalg.lstsq(
        np.column_stack([np.log(hs), np.ones(len(hs))]), np.log(e), rcond=None)[0][0])).passed   # another route
    assert checks.check_error_order(lambda hs, e: np.polyfit(np.log10(hs), np.log10(e), 1)[0]).passed  # same log


@pytest.mark.parametrize("wrong, cause", [
    (lambda hs, e: -_fit(hs, e), "sign"),
    (lambda hs, e: np.polyfit(np.log10(hs), np.log(e), 1)[0], "same log"),
    (lambda hs, e: (np.log(e[-1]) - np.log(e[0])) / (np.log(hs[-1]) - np.log(hs[0])), "two points only"),
    (lambda hs, e: np.mean(np.diff(np.log(e)) / np.diff(np.log(hs))), "two points only"),
    (lambda hs, e: np.polyfit(np.log(e), np.log(hs), 1)[0], "axes are swapped"),
    (lambda hs, e: np.polyfit(np.log(hs), np.log(e), 1), "only the slope"),
    (lambda hs, e: np.polyfit(np.log(hs), np.log(e), 1)[1], "intercept"),
])
def test_error_order_mistakes(wrong, cause):
    result = checks.check_error_order(wrong)
    assert result.status == "failed" and cause in result.message.split("likely cause:")[1], result.message


# --------------------------------------------------------------------------- 2.3


def _fft_flip(x, w):
    circular = np.fft.ifft(np.fft.fft(x) * np.fft.fft(w[::-1], len(x))).real
    return np.roll(circular, -(len(w) // 2))


def _fft_conj(x, w):
    circular = np.fft.ifft(np.fft.fft(x) * np.conj(np.fft.fft(w, len(x)))).real
    return np.roll(circular, len(w) // 2)


def _rfft(x, w):
    import scipy.fft
    spectrum = scipy.fft.rfft(x) * np.conj(scipy.fft.rfft(w, len(x)))
    return np.roll(scipy.fft.irfft(spectrum, len(x)), len(w) // 2)


@pytest.mark.parametrize("answer", [_fft_flip, _fft_conj, _rfft])
def test_fft_correlate_periodic_passes_fft_routes(answer):
    result = checks.check_fft_correlate_periodic(answer)
    assert result.passed, result.message


@pytest.mark.parametrize("wrong, cause", [
    (lambda x, w: signal.convolve1d(x, w, boundary="periodic"), "this is convolution"),
    (lambda x, w: np.fft.ifft(np.fft.fft(x) * np.fft.fft(w, len(x))).real, "this is convolution"),
    # the omitted roll, in both formulations, is "not re-centred" (not "the wrong way")
    (lambda x, w: np.fft.ifft(np.fft.fft(x) * np.fft.fft(w[::-1], len(x))).real, "not re-centred"),
    (lambda x, w: np.fft.ifft(np.fft.fft(x) * np.conj(np.fft.fft(w, len(x)))).real, "not re-centred"),
    # a real wrong-direction roll, in both formulations
    (lambda x, w: np.roll(np.fft.ifft(np.fft.fft(x) * np.fft.fft(w[::-1], len(x))).real, len(w) // 2), "wrong way"),
    (lambda x, w: np.roll(np.fft.ifft(np.fft.fft(x) * np.conj(np.fft.fft(w, len(x)))).real, -(len(w) // 2)),
     "wrong way"),
    (lambda x, w: np.abs(np.roll(np.fft.ifft(np.fft.fft(x) * np.fft.fft(w[::-1], len(x))), -(len(w) // 2))), "np.abs"),
])
def test_fft_correlate_periodic_mistakes(wrong, cause):
    result = checks.check_fft_correlate_periodic(wrong)
    assert result.status == "failed" and cause in result.message.split("likely cause:")[1], result.message


def test_fft_correlate_periodic_rejects_complex_results_without_warnings():
    import warnings

    complex_answer = lambda x, w: np.roll(np.fft.ifft(np.fft.fft(x) * np.fft.fft(w[::-1], len(x))), -(len(w) // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a ComplexWarning from the check would raise here
        result = checks.check_fft_correlate_periodic(complex_answer)
    assert result.status == "failed"
    assert "the values are right" in result.message and "complex" in result.message and ".real" in result.message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrong_and_complex = checks.check_fft_correlate_periodic(
            lambda x, w: np.fft.ifft(np.fft.fft(x) * np.fft.fft(w, len(x))))
    assert "this is convolution" in wrong_and_complex.message and "complex" in wrong_and_complex.message


def _loop(x, w):
    m, n = len(w) // 2, len(x)
    return np.array([sum(w[j + m] * x[(i + j) % n] for j in range(-m, m + 1)) for i in range(n)])


def _fft_per_sample(x, w):
    z = np.zeros(len(x))
    for i in range(len(x)):                     # the FFT is used, but once per output sample
        z[i] = _fft_flip(x, w)[i]
    return z


def test_fft_correlate_periodic_requires_the_fft_route():
    loop = checks.check_fft_correlate_periodic(_loop)
    assert loop.status == "failed" and "the values are right" in loop.message and "never calls np.fft" in loop.message
    package = checks.check_fft_correlate_periodic(lambda x, w: signal.correlate1d(x, w, boundary="periodic",
                                                                                   method="fft"))
    assert package.status == "failed" and "cc.signal.correlate1d" in package.message
    import scipy.signal

    def hidden_fft(x, w):                                   # the FFT runs inside SciPy, not in the answer
        n = len(x)
        return scipy.signal.fftconvolve(np.tile(x, 3), w[::-1], mode="same")[n:2 * n]

    hidden = checks.check_fft_correlate_periodic(hidden_fft)
    assert hidden.status == "failed" and "never calls np.fft" in hidden.message, hidden.message
    per_sample = checks.check_fft_correlate_periodic(_fft_per_sample)
    assert per_sample.status == "failed" and "loops over the samples" in per_sample.message
    assert checks.check_fft_correlate_periodic(_raise).status == "not attempted"
    assert "cnncourse.signal.correlate1d" in checks.EXERCISES["2.3"].forbidden


def test_fft_method_check_is_skipped_where_code_cannot_be_watched(monkeypatch):
    import sys

    def refuse(*args):
        raise RuntimeError("tracing refused (as in the grader's sandbox)")

    monkeypatch.setattr(sys, "settrace", refuse)
    assert checks.check_fft_correlate_periodic(_loop).passed     # values right, method unknown: no false verdict


def test_probes_watch_counts_only_the_students_own_ffts():
    from cnncourse.checks import probes

    x, w = np.arange(16.0), np.ones(3)
    own = probes.watch(_fft_flip, x, w)
    assert own.fft_calls == 3 and own.lines >= 2 and not own.package_calls
    via_package = probes.watch(lambda x, w: signal.correlate1d(x, w, method="fft"), x, w)
    assert via_package.fft_calls == 0 and via_package.package_calls == {"cnncourse.signal.correlate1d"}
    assert probes.watch(_loop, np.arange(64.0), w).lines > probes.watch(_loop, x, w).lines


def test_results_render_as_one_line():
    result = checks.check_error_order(lambda hs, e: np.polyfit(np.log(hs), np.log(e), 1)[0])
    assert repr(result) == "✔ Exercise 2.2 (error_order): all 3 cases pass"
    assert bool(result)


@pytest.mark.parametrize("number", ["1.1", "1.2", "2.1", "2.2", "2.3"])
def test_registry_lists_exercises(number):
    entry = checks.EXERCISES[number]
    assert entry.check.exercise_number == number
    assert entry.notebook.startswith(number.split(".")[0].zfill(2))


def test_fft_method_check_sees_exec_defined_answers():
    """Code exec()-ed from a string (filename "<string>"), as graders and tests run submissions, is the student's."""
    namespace: dict = {}
    exec("import numpy as np\n"
         "def loop(x, w):\n"
         "    m, n = len(w) // 2, len(x)\n"
         "    return np.array([sum(w[j + m] * x[(i + j) % n] for j in range(-m, m + 1)) for i in range(n)])\n"
         "def good(x, w):\n"
         "    c = np.fft.irfft(np.fft.rfft(x) * np.conj(np.fft.rfft(w, len(x))), len(x))\n"
         "    return np.roll(c, len(w) // 2)\n", namespace)
    assert "never calls np.fft" in checks.check_fft_correlate_periodic(namespace["loop"]).message
    assert checks.check_fft_correlate_periodic(namespace["good"]).passed
