"""The check machinery (``cnncourse.checks.core``): diagnostics, tolerance, likely causes, errors.

The first tests run over the whole registry: for every exercise, every mistake listed in
its cases is turned into a function that makes exactly that mistake, and the check must
fail it, name that cause, and say so in at most 25 lines.
"""
from __future__ import annotations

import re
import sys
import textwrap
import warnings

import numpy as np
import pytest

from cnncourse import checks  # noqa: F401  (registers every exercise)
from cnncourse.checks import core
from cnncourse.checks.core import EXERCISES, MAX_LINES, Case, collect_cases, compare, run_cases

# --------------------------------------------------------------------------- every listed mistake


def _listed_mistakes():
    for number in EXERCISES:
        for set_index, case_set in enumerate(collect_cases(number)):
            for cause in case_set.causes():
                yield pytest.param(number, set_index, cause, id=f"{number}-{cause[:40]}")


@pytest.mark.parametrize("number,set_index,cause", list(_listed_mistakes()))
def test_every_listed_mistake_gets_its_cause_named_in_at_most_25_lines(number, set_index, cause):
    case_set = collect_cases(number)[set_index]
    result = case_set.run(case_set.mistaken_function(cause))
    assert result.status == "failed", f"exercise {number}: the mistake {cause!r} is never told apart from the right answer"
    assert cause in result.message, f"exercise {number}: {cause!r} not named in\n{result.message}"
    assert len(result.message.splitlines()) <= MAX_LINES, result.message
    assert "likely cause" in result.message and cause in result.message.split("likely cause", 1)[1]
    if "likely cause, one of:" in result.message:  # only for mistakes no case tells apart
        others = [line[4:] for line in result.message.splitlines() if line.startswith("  - ") and line[4:] != cause]
        for other in others:
            twin = case_set.mistaken_function(other)
            mine = case_set.mistaken_function(cause)
            for case in case_set.cases:
                assert compare(mine(*case.args, **case.kwargs), twin(*case.args, **case.kwargs), rtol=0, atol=0) is None, (
                    f"exercise {number}: {cause!r} and {other!r} differ on case {case.label!r} but were not told apart")


@pytest.mark.parametrize("number", list(EXERCISES))
def test_every_exercise_lists_mistakes_and_its_right_answer_passes(number):
    if getattr(EXERCISES[number].check, "property_based", False):
        pytest.skip(f"exercise {number}'s check tests properties of a random answer (its own tests cover it)")
    case_sets = collect_cases(number)
    assert case_sets, f"exercise {number}'s check records no cases"
    assert any(case_set.causes() for case_set in case_sets), f"exercise {number} lists no likely causes"
    for case_set in case_sets:
        right = case_set.mistaken_function("no such mistake")  # every case answered right
        assert case_set.run(right).passed


def test_collect_cases_runs_no_student_code(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise NotImplementedError

    monkeypatch.setattr(core, "_unfinished", spy)
    for number in EXERCISES:
        case_sets = collect_cases(number)
        if getattr(EXERCISES[number].check, "property_based", False):
            assert case_sets == []
            continue
        assert case_sets and all(isinstance(s, core.CaseSet) and s.number == number for s in case_sets)
    assert not calls
    # outside collect_cases the checks run the function as usual
    result = EXERCISES["1.1"].check(lambda *a, **k: calls.append(a) or None)
    assert calls and result.status == "failed" and "forget to `return`" in result.message


# --------------------------------------------------------------------------- a small exercise to diagnose


def _run(got, expected, *, rtol=1e-6, atol=1e-8, args=(0,), mistakes=None):
    cases = [Case("the only case", args, expected=expected, mistakes=mistakes or {})]
    return run_cases("0.1", "demo", lambda *a, **k: got, cases, rtol=rtol, atol=atol)


def _numbers_shown(message: str) -> int:
    return len(re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", message))


@pytest.mark.parametrize("shape", [(50,), (30, 40), (6, 7, 30, 40), (2, 3, 4, 20, 20)])
def test_diagnostic_of_a_large_array_is_compact(shape):
    rng = np.random.default_rng(0)
    expected = rng.normal(size=shape)
    got = expected + rng.normal(size=shape)
    result = _run(got, expected)
    lines = result.message.splitlines()
    assert result.status == "failed" and len(lines) <= MAX_LINES
    assert _numbers_shown(result.message) <= 50, result.message  # a window (3 x 6 values of each), never the whole array
    assert f"{expected.size} of {expected.size} values differ" in lines[0]
    assert "first at index (" + ", ".join(["0"] * len(shape)) in result.message
    assert "largest absolute error" in result.message and "largest relative error" in result.message
    # the full arrays stay on the result
    assert result.expected is expected and result.got is got and result.case == "the only case"


def test_window_shows_rows_of_one_2d_slice_around_the_first_difference():
    expected = np.arange(2 * 3 * 8 * 9, dtype=float).reshape(2, 3, 8, 9)
    got = expected.copy()
    got[1, 2, 5, 6] += 0.5
    got[1, 2, 6, 7] += 3.0
    message = _run(got, expected).message
    lines = message.splitlines()
    assert "2 of 432 values differ" in lines[0]
    assert "first at index (1, 2, 5, 6): expected 411, got 411.5" in message
    assert "largest absolute error 3 at (1, 2, 6, 7)" in message
    assert "8x9 slice [1, 2, :, :], rows 4:7, columns 3:9" in message
    expected_rows = [line for line in lines if line.startswith("    expected")]
    # row 4, columns 3 to 8 of the slice (1, 2): 216 + 2 * 72 + 4 * 9 + (3 .. 8)
    assert expected_rows[0].split()[1:] == [str(v) for v in range(399, 405)]
    got_block = lines[lines.index(next(line for line in lines if line.startswith("    got"))):][:3]
    assert sum(line.count("*") for line in got_block) == 2  # exactly the two differences are marked
    assert "411.5*" in got_block[1]


def test_scalar_answers_print_enough_digits_to_show_the_difference():
    message = _run(np.float64(-0.20874612), np.float64(-0.20874598), rtol=1e-7).message
    first = message.splitlines()[0]
    assert "expected -0.20874598, got -0.20874612" in first
    assert "difference 1.4e-07" in message and "allowed:" in message


def test_shape_is_checked_first_and_a_mistake_of_that_shape_is_named():
    expected = np.zeros((4, 6))
    result = _run(np.ones((3, 5)), expected, mistakes={"forgot the padding": np.zeros((3, 5)) + 7})
    lines = result.message.splitlines()
    assert "wrong shape: expected (4, 6), got (3, 5)" in lines[0]
    assert "likely cause (it gives this shape): forgot the padding" in result.message
    assert len(lines) <= 4


def test_same_values_in_another_shape_is_pointed_out():
    message = _run(np.zeros((6, 4)), np.zeros((4, 6))).message
    assert "transposed or reshaped" in message
    assert "axis 1: 4 instead of 5" in _run(np.zeros((2, 4)), np.zeros((2, 5))).message
    assert "3 axes instead of 2" in _run(np.zeros((2, 2, 5)), np.zeros((2, 5))).message
    assert "axes of length 1 added or dropped" in _run(np.zeros((1, 2, 5)), np.zeros((2, 5))).message
    assert "return it as a number" in _run(np.array([2.0]), np.float64(2.0)).message


def test_tuple_answers_name_the_output():
    expected = (np.zeros(3), np.ones((2, 2)), 5.0)
    result = _run((np.zeros(3), np.ones((2, 2)), 4.0), expected)
    assert "output 3 of 3: expected 5, got 4" in result.message
    assert "outputs 1 and 2 are right" in result.message
    result = _run((np.zeros(3), np.zeros((2, 2)), 4.0), expected)
    assert "output 2 of 3: shape (2, 2) as expected; 4 of 4 values differ" in result.message and "output 1 is right, output 3 is wrong too" in result.message
    assert "got None: did the function forget" in _run(None, expected).message
    assert "expected a tuple of 3 outputs, got 2" in _run((1.0, 2.0), expected).message


def test_nan_and_inf_are_reported_where_they_appear():
    got = np.arange(12.0).reshape(3, 4)
    got[2, 1] = np.nan
    assert "NaN at index (2, 1) (1 of 12 values are NaN)" in _run(got, np.arange(12.0).reshape(3, 4)).message
    got[2, 1] = np.inf
    assert "are inf" in _run(got, np.arange(12.0).reshape(3, 4)).message


def test_zeros_and_nan_in_the_expected_answer():
    expected = np.array([0.0, 0.0, 2.0, np.nan])
    message = _run(np.array([1.0, 0.0, 2.1, 5.0]), expected).message
    assert "3 of 4 values differ" in message and "first at index (0,): expected 0, got 1" in message
    assert "largest absolute error 1 at (0,)" in message  # the NaN position has no error size
    assert "largest relative error 0.05 at (2,)" in message  # relative to a nonzero expected value only


def test_complex_answers_are_rejected_with_a_reason():
    got = np.fft.ifft(np.fft.fft(np.arange(4.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning may leak into the student's output
        result = _run(got, np.arange(4.0))
    assert result.status == "failed" and "complex" in result.message and ".real" in result.message


def test_non_numeric_answers():
    assert "expected a numeric array, got str" in _run("abc", np.zeros(2)).message
    assert "expected a numeric array, got dict" in _run({"a": 1}, np.zeros(2)).message


# --------------------------------------------------------------------------- tolerance and dtype


def test_success_line_is_unchanged():
    result = _run(np.arange(3.0), np.arange(3.0))
    assert result.message == "✔ Exercise 0.1 (demo): all 1 cases pass" and result.passed


def test_float32_answers_are_accepted_at_float32_precision():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 64))
    expected = x @ x.T  # float64 reference
    got = x.astype(np.float32) @ x.T.astype(np.float32)
    assert not np.allclose(got, expected, rtol=1e-6, atol=1e-8)  # float64 tolerance would reject it
    result = _run(got, expected)
    assert result.passed
    assert result.message.startswith("✔ Exercise 0.1 (demo): all 1 cases pass (float32 answers: "
                                     "matches to float32 precision, largest relative difference")
    # the issue's example: a scalar that prints alike at 6 digits
    result = _run(np.float32(-0.20874613), -0.2087461234567)
    assert result.passed


def test_float32_answers_with_a_real_mistake_still_fail():
    expected = np.linspace(-1, 1, 20)
    got = (expected * 1.001).astype(np.float32)
    result = _run(got, expected)
    assert result.status == "failed" and "float32 precision" in result.message  # the tolerance it used
    assert "largest absolute error" in result.message


def test_float32_inputs_set_float32_tolerance_even_for_float64_answers():
    x = np.linspace(0.1, 1, 10, dtype=np.float32)
    expected = np.cumsum(x.astype(float))
    got = np.cumsum(x).astype(float)  # computed in float32, returned as float64
    noisy = got * (1 + 3e-6)
    assert not np.allclose(noisy, expected, rtol=1e-6, atol=1e-8)
    assert _run(noisy, expected, args=(x,)).passed


def test_float64_answer_off_at_float32_level_is_told_why():
    expected = np.linspace(-1, 1, 9) * np.pi
    got = expected.astype(np.float32).astype(float)
    result = _run(got, expected, rtol=1e-9, atol=1e-12)
    assert result.status == "failed"
    assert "the answer matches to float32 precision only" in result.message
    assert "allowed:" in result.message


def test_torch_tensors_are_compared_as_arrays():
    torch = pytest.importorskip("torch")
    expected = np.arange(6.0).reshape(2, 3)
    assert _run(torch.tensor(expected, requires_grad=True) * 1.0, expected).passed
    assert _run(torch.tensor(expected, dtype=torch.float32), expected).passed
    assert "float16 precision" in _run(torch.tensor(expected * 1.1, dtype=torch.bfloat16), expected).message


# --------------------------------------------------------------------------- likely causes


def test_likely_cause_is_narrowed_over_later_cases():
    # Both mistakes give the same answer on case 1; only case 2 tells them apart.
    cases = [
        Case("symmetric", (1,), expected=np.array([1.0, 2.0]),
             mistakes={"flipped": np.array([2.0, 1.0]), "reversed output": np.array([2.0, 1.0])}),
        Case("asymmetric", (2,), expected=np.array([1.0, 2.0, 3.0]),
             mistakes={"flipped": np.array([3.0, 2.0, 1.0]), "reversed output": np.array([9.0, 9.0, 9.0])}),
    ]
    answers = {1: np.array([2.0, 1.0]), 2: np.array([3.0, 2.0, 1.0])}
    result = run_cases("0.1", "demo", lambda k: answers[k], cases)
    assert "likely cause: flipped" in result.message and "reversed output" not in result.message
    assert result.cause == "flipped" and result.cases_passed == 0
    # when nothing tells them apart, both are named
    answers[2] = np.array([0.0, 0.0, 0.0])
    result = run_cases("0.1", "demo", lambda k: answers[k], cases)
    assert "likely cause, one of:" in result.message
    assert "  - flipped" in result.message and "  - reversed output" in result.message


def test_a_mistake_that_would_have_failed_a_passed_case_is_not_named():
    cases = [
        Case("first", (1,), expected=np.array([1.0, 2.0]), mistakes={"no bias": np.array([0.0, 1.0])}),
        Case("second", (2,), expected=np.array([1.0, 2.0]),
             mistakes={"no bias": np.array([2.0, 1.0]), "flipped": np.array([2.0, 1.0])}),
    ]
    answers = {1: np.array([1.0, 2.0]), 2: np.array([2.0, 1.0])}  # right on the first case
    result = run_cases("0.1", "demo", lambda k: answers[k], cases)
    assert "likely cause: flipped" in result.message and "no bias" not in result.message


def test_a_mistake_in_one_output_is_named_when_another_output_is_wrong_too():
    expected = (np.arange(4.0), np.ones(3), 2.0)
    cases = [Case("c", (1,), expected=expected,
                  mistakes={"dx flipped": (np.arange(4.0)[::-1], np.ones(3), 2.0), "db missing": (expected[0], expected[1], 0.0)})]
    result = run_cases("0.1", "demo", lambda k: (np.arange(4.0)[::-1], np.ones(3), 0.0), cases)  # both mistakes at once
    assert "output 1 of 3" in result.message and "output 3 is wrong too" in result.message
    assert "likely cause of the error in output 1: dx flipped" in result.message and result.cause == "dx flipped"


def test_a_mistake_can_be_given_as_a_function():
    cases = [Case("x = [1, 2, 3]", (np.array([1.0, 2.0, 3.0]),), expected=np.array([1.0, 3.0, 6.0]),
                  mistakes={"the sum starts at the second element": lambda x: np.cumsum(x) - x[0],
                            "a mistake that fails here": lambda x: x[10]})]
    result = run_cases("0.1", "demo", lambda x: np.cumsum(x) - x[0], cases)
    assert "likely cause: the sum starts at the second element" in result.message
    assert list(cases[0].mistake_answers()) == ["the sum starts at the second element"]


def test_mistaken_function_replays_each_case():
    cases = [Case(f"n={n}", (n,), {"scale": 2}, expected=np.full(n, 2.0), mistakes={"no scale": np.ones(n)})
             for n in (2, 3)]
    cases[1].mistakes = {}  # the mistake gives nothing here: the right answer is replayed
    case_set = core.CaseSet("0.1", "demo", cases, 1e-6, 1e-8)
    mistaken = case_set.mistaken_function("no scale")
    assert np.array_equal(mistaken(2, scale=2), np.ones(2))
    assert np.array_equal(mistaken(3, scale=2), np.full(3, 2.0))
    with pytest.raises(LookupError):
        mistaken(4, scale=2)
    assert case_set.causes() == ["no scale"]


# --------------------------------------------------------------------------- the student's code raising


def test_error_shows_the_students_file_line_and_source(tmp_path, monkeypatch):
    module = tmp_path / "student_answer.py"
    module.write_text(textwrap.dedent("""\
        import numpy as np

        def answer(x):
            y = x * 2
            return y[100]

        def answer_via_numpy(x):
            return np.pad(x, -3)
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import student_answer

    cases = [Case("x of length 3", (np.arange(3.0),), expected=np.arange(3.0))]
    result = run_cases("0.1", "demo", student_answer.answer, cases)
    lines = result.message.splitlines()
    assert "case 'x of length 3' raised IndexError: index 100 is out of bounds" in lines[0]
    assert "student_answer.py, line 5, in answer: return y[100]" in lines[1]
    assert isinstance(result.error, IndexError)

    result = run_cases("0.1", "demo", student_answer.answer_via_numpy, cases)
    assert "student_answer.py, line 8, in answer_via_numpy: return np.pad(x, -3)" in result.message
    assert "(raised inside numpy's pad, called from that line)" in result.message
    sys.modules.pop("student_answer", None)


def test_error_in_a_notebook_cell_names_the_cell():
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        shell.run_cell("x0 = 1", store_history=True)
        outcome = shell.run_cell(textwrap.dedent("""\
            import numpy as np
            from cnncourse.checks.core import Case, run_cases

            def answer(x):
                return x.reshape(7)

            result = run_cases("0.1", "demo", answer, [Case("x (2, 3)", (np.zeros((2, 3)),), expected=np.zeros(6))])
            """), store_history=True)
        assert outcome.success
        message = shell.user_ns["result"].message
        count = shell.execution_count - 1
        assert f"at cell In[{count}], line 5, in answer: return x.reshape(7)" in message, message
    finally:
        interactiveshell.InteractiveShell.clear_instance()


def test_error_relayed_from_a_sandbox_keeps_its_line():
    err = ValueError("shapes (2,3) and (4,) not aligned")
    err.student_line = "at cell In[12], line 4, in answer: return w @ x"

    def answer(x):
        raise err

    message = run_cases("0.1", "demo", answer, [Case("c", (1,), expected=1.0)]).message
    assert message.splitlines()[1] == "  at cell In[12], line 4, in answer: return w @ x"


def test_long_error_messages_are_cut():
    def answer(x):
        raise RuntimeError("\n".join(f"line {i}" for i in range(100)))

    message = run_cases("0.1", "demo", answer, [Case("c", (1,), expected=1.0)]).message
    assert len(message.splitlines()) <= MAX_LINES and "line 99" not in message


# --------------------------------------------------------------------------- other outcomes


def test_not_attempted_not_callable_and_modified_input():
    cases = [Case("c", (np.arange(3.0),), expected=np.arange(3.0))]

    def unfinished(x):
        raise NotImplementedError("Exercise 0.1")

    assert run_cases("0.1", "demo", unfinished, cases).status == "not attempted"
    assert "expected a function, got int" in run_cases("0.1", "demo", 3, cases).message

    def mutating(x):
        out = x.copy()
        x[0] = 5
        return out

    assert "modified its input argument 1 in place" in run_cases("0.1", "demo", mutating, cases).message


def test_compare_returns_none_or_text():
    assert compare(np.ones(3), np.ones(3)) is None
    text = compare(np.ones(3), np.array([1.0, 2.0, 1.0]))
    assert text.startswith("shape (3,) as expected; 1 of 3 values differ")
    assert "first at index (1,) (the only one): expected 1, got 2 (absolute error 1, relative 1)" in text


def test_issue_17_instance_norm_answer_to_9_1_is_compact():
    """Exercise 9.1 answered with per-image statistics used to print two whole 4-D arrays."""

    def instance_norm(x, gamma, beta, eps=1e-5):
        mu = x.mean(axis=(2, 3), keepdims=True)
        var = x.var(axis=(2, 3), keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)

    result = checks.check_spatial_batchnorm_train(instance_norm)
    assert result.status == "failed"
    assert len(result.message.splitlines()) <= MAX_LINES
    assert _numbers_shown(result.message) <= 50
    assert result.got.shape == result.expected.shape == (4, 3, 5, 5)


def test_error_in_a_cell_run_by_the_autograder_names_the_cell():
    import linecache

    source = "def answer(x):\n    return x.undefined_attribute\n"
    linecache.cache["<cell 4>"] = (len(source), None, source.splitlines(True), "<cell 4>")
    namespace: dict = {}
    exec(compile(source, "<cell 4>", "exec"), namespace)
    try:
        message = run_cases("0.1", "demo", namespace["answer"], [Case("c", (np.zeros(2),), expected=np.zeros(2))]).message
    finally:
        linecache.cache.pop("<cell 4>", None)
    assert "raised AttributeError" in message
    assert "  at cell 4, line 2, in answer: return x.undefined_attribute" in message.splitlines()


# --------------------------------------------------------------------------- any answer at all


def test_any_wrong_answer_gets_a_compact_diagnostic_and_never_an_exception():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    shapes = st.lists(st.integers(1, 9), min_size=0, max_size=5).map(tuple)

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(shape=shapes, seed=st.integers(0, 2**16), kind=st.sampled_from(["noise", "few", "nan", "inf", "shape",
                                                                           "float32", "int", "tuple"]))
    def check(shape, seed, kind):
        rng = np.random.default_rng(seed)
        expected = np.asarray(rng.normal(size=shape) * 10.0 ** rng.integers(-6, 6))
        got = expected.copy()
        flat = got.reshape(-1)  # a view: writing to it changes got
        if kind == "noise":
            got = got + rng.normal(size=shape) * (1 + np.abs(got))
        elif kind == "few":
            picked = rng.integers(0, flat.size, size=3)
            flat[picked] += 1 + np.abs(flat[picked])
        elif kind == "nan":
            flat[rng.integers(0, flat.size)] = np.nan
        elif kind == "inf":
            flat[rng.integers(0, flat.size)] = -np.inf
        elif kind == "shape":
            got = np.zeros(tuple(n + 1 for n in shape) or (2,))
        elif kind == "float32":
            got = (got * 1.01 + np.sign(got) + (got == 0)).astype(np.float32)
        elif kind == "int":
            got = np.ones(shape, dtype=int) * 7
        else:
            expected, got = (expected, 3.0), (got, 2.0)
        result = _run(got, expected)
        assert result.status == "failed"
        assert len(result.message.splitlines()) <= MAX_LINES
        assert _numbers_shown(result.message) <= 50

    check()


def test_no_numpy_warning_leaks_from_the_comparison():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _run(np.array([np.inf, 1.0, -np.inf]), np.array([np.inf, 2.0, np.inf])).status == "failed"
        assert _run(np.array([1e308, -1e308]), np.array([-1e308, 1e308])).status == "failed"  # overflow
        assert _run(np.array([0.0, 1.0]), np.array([0.0, 0.0])).status == "failed"
