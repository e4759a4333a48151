"""Numerical gradients, relative error and grad_check (which must catch wrong gradients)."""
import numpy as np
import pytest

from cnncourse.backend import to_numpy
from cnncourse.gradcheck import GradCheckResult, grad_check, numerical_gradient, rel_error
from cnncourse.linear import linear_backward, linear_forward


def test_numerical_gradient_of_scalar_function():
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(numerical_gradient(lambda x: np.sum(x**3), x), 3 * x**2, rtol=1e-8)


def test_numerical_gradient_with_dout(xp):
    x = xp.asarray(np.arange(6.0).reshape(2, 3))
    dout = xp.asarray(np.random.default_rng(0).standard_normal((2, 3)))
    g = numerical_gradient(lambda x: x**2, x, dout)
    assert g.dtype == np.float64 and type(g) is type(x)
    np.testing.assert_allclose(to_numpy(g), to_numpy(2 * x * dout), rtol=1e-8)


def test_numerical_gradient_restores_x():
    x = np.random.default_rng(1).standard_normal((3, 4))
    before = x.copy()
    numerical_gradient(lambda x: np.tanh(x), x, np.ones((3, 4)))
    np.testing.assert_array_equal(x, before)

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(boom, x)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_perturbs_in_place():
    """f may ignore its argument and read x through a closure: it must still see the nudge."""
    x = np.array([2.0])
    np.testing.assert_allclose(numerical_gradient(lambda _: 5 * x[0], x), [5.0], rtol=1e-8)


def test_numerical_gradient_input_checks():
    with pytest.raises(TypeError, match="must be a float array"):
        numerical_gradient(np.sum, np.array([1, 2]))
    with pytest.raises(TypeError, match="must be a float array"):
        numerical_gradient(np.sum, [1.0, 2.0])
    with pytest.warns(UserWarning, match="use float64"):
        numerical_gradient(np.sum, np.ones(2, dtype=np.float32))


def test_rel_error():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == 1.0
    assert rel_error(np.array([10.0, 1e-12]), np.array([10.0, 2e-12])) < 1e-13  # near-zero entries don't blow up
    assert rel_error(np.array([1.0, 3.0]), np.array([1.0, 3.5])) == pytest.approx(0.5 / 6.5)
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(2), np.zeros(3))


def _linear_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)


def test_grad_check_passes_a_correct_layer():
    x, w, b = _linear_inputs()
    x0 = x.copy()
    res = grad_check(linear_forward, linear_backward, x, w, b)
    assert isinstance(res, GradCheckResult)
    assert res.ok and bool(res)
    assert [e.name for e in res.entries] == ["x", "w", "b"]
    assert all(e.rel_error < 1e-8 for e in res.entries)
    np.testing.assert_array_equal(x, x0)  # inputs untouched
    text = repr(res)
    assert text.startswith("grad_check: OK")
    assert "x: ok" in text and "rel error" in text and "worst at" in text


def test_grad_check_detects_a_wrong_gradient():
    def bad_backward(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        dw = dw.copy()
        dw[2, 1] += 0.5  # one wrong entry
        return dx, dw, 2 * db  # and a forgotten factor

    x, w, b = _linear_inputs(1)
    res = grad_check(linear_forward, bad_backward, x, w, b)
    assert not res.ok
    by_name = {e.name: e for e in res.entries}
    assert by_name["x"].ok
    assert not by_name["w"].ok and by_name["w"].worst_index == (2, 1)
    assert by_name["w"].got - by_name["w"].expected == pytest.approx(0.5, rel=1e-6)
    assert not by_name["b"].ok
    text = repr(res)
    assert text.startswith("grad_check: FAILED")
    assert "w: FAIL" in text and "worst at (2, 1)" in text and "expected" in text and "got" in text


def test_grad_check_reports_shape_and_missing_gradients(capsys):
    x = np.ones((2, 3))
    res = grad_check(lambda x: (x * 2, None), lambda dout, cache: dout.T, x, verbose=True)
    assert not res.ok and "gradient shape (3, 2) != input shape (2, 3)" in repr(res)
    assert "grad_check: FAILED" in capsys.readouterr().out
    res = grad_check(lambda x: (x * 2, None), lambda dout, cache: (None,), x)
    assert not res.ok and "backward returned None" in repr(res)
    with pytest.raises(ValueError, match=r"backward returned 1 gradient\(s\) for 2 input\(s\)"):
        grad_check(lambda x, y: (x * y, None), lambda dout, cache: dout, x, x)


def test_grad_check_works_on_float32_inputs_in_float64():
    x, w, b = (a.astype(np.float32) for a in _linear_inputs(2))
    assert grad_check(linear_forward, linear_backward, x, w, b).ok
