"""Pooling: the syllabus worked example, PyTorch as oracle, ties, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncourse.backend import to_numpy
from cnncourse.gradcheck import grad_check, rel_error
from cnncourse.pool import (
    adaptive_avg_pool_backward,
    adaptive_avg_pool_forward,
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    max_pool_backward,
    max_pool_forward,
    pool_output_size,
)

# SYLLABUS 06 worked example
WE = [[1, 5, 3, 2], [0, 2, 1, 1], [4, 4, 6, 35], [4, 4, 6, 17]]


def _we(xp, dtype=np.float64):
    return xp.asarray(np.array(WE, dtype=dtype)[None, None])


# ----------------------------------------------------------------------------- forward (both backends)


def test_worked_example_max(xp):
    out, _ = max_pool_forward(_we(xp), size=2)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[5, 3], [4, 35]])


def test_worked_example_avg(xp):
    out, _ = avg_pool_forward(_we(xp), size=2)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[2, 1.75], [4, 16]])
    out4, _ = avg_pool_forward(_we(xp), size=4)
    assert to_numpy(out4).shape == (1, 1, 1, 1)
    assert to_numpy(out4)[0, 0, 0, 0] == 5.9375


def test_global_avg_pool(xp):
    out, cache = global_avg_pool_forward(_we(xp))
    assert out.shape == (1, 1)
    assert float(out[0, 0]) == 5.9375
    dx = to_numpy(global_avg_pool_backward(xp.asarray([[16.0]]), cache))
    np.testing.assert_array_equal(dx, np.ones((1, 1, 4, 4)))


@pytest.mark.parametrize("forward", [max_pool_forward, avg_pool_forward])
def test_float32_preserved(xp, forward):
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32))
    out, cache = forward(x, size=3, stride=2, pad=1)
    assert out.dtype == np.float32
    backward = max_pool_backward if forward is max_pool_forward else avg_pool_backward
    assert backward(xp.ones(out.shape, dtype=np.float32), cache).dtype == np.float32
    out, cache = forward(x[:, :, :, :6], size=2)  # fast path too
    assert out.dtype == np.float32
    assert backward(xp.ones(out.shape, dtype=np.float32), cache).dtype == np.float32
    assert global_avg_pool_forward(x)[0].dtype == np.float32


def test_integer_input_computes_in_float64(xp):
    out, _ = avg_pool_forward(xp.asarray(np.array(WE)[None, None]), size=2)
    assert out.dtype == np.float64


def test_max_pool_padding_is_minus_infinity(xp):
    x = xp.asarray(-np.arange(1.0, 5.0).reshape(1, 1, 2, 2))  # all negative: zero padding would win
    out, _ = max_pool_forward(x, size=2, stride=2, pad=1)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[-1, -2], [-3, -4]])


def test_avg_pool_padding_counts_zeros_and_full_window(xp):
    out, _ = avg_pool_forward(xp.ones((1, 1, 2, 2)), size=2, stride=2, pad=1)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], np.full((2, 2), 0.25))


def test_output_size_rounds_down():
    assert pool_output_size(5, 2, 2) == 2
    assert pool_output_size(7, 3, 2, 1) == 4
    out, _ = max_pool_forward(np.zeros((1, 1, 5, 7)), size=2)
    assert out.shape == (1, 1, 2, 3)


# ----------------------------------------------------------------------------- PyTorch oracle


@st.composite
def pool_geometry(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), draw(st.integers(0, 2**31))


def _torch_pool(kind, x, dout, size, stride, pad):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    out = fn(xt, size, stride, pad)
    if dout is None:
        return out.detach().numpy(), None
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=40, deadline=None)
@given(geometry=pool_geometry())
def test_matches_torch(kind, geometry):
    pytest.importorskip("torch")
    shape, size, stride, pad, seed = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)  # continuous: no ties, so the arg-max is unique
    forward, backward = (max_pool_forward, max_pool_backward) if kind == "max" else (avg_pool_forward, avg_pool_backward)
    out, cache = forward(x, size=size, stride=stride, pad=pad)
    dout = rng.standard_normal(out.shape)
    want_out, want_dx = _torch_pool(kind, x, dout, size, stride, pad)
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-12)
    dx = backward(dout, cache)
    assert dx.shape == x.shape
    assert rel_error(dx, want_dx) < 1e-7


@pytest.mark.parametrize(
    "size,stride,pad",
    [(2, None, 0), (2, 1, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1)), (4, 4, 2), (1, 1, 0)],
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_matches_torch_named_cases(kind, size, stride, pad):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 8, 8))
    forward, backward = (max_pool_forward, max_pool_backward) if kind == "max" else (avg_pool_forward, avg_pool_backward)
    out, cache = forward(x, size=size, stride=stride, pad=pad)
    dout = rng.standard_normal(out.shape)
    want_out, want_dx = _torch_pool(kind, x, dout, size, size if stride is None else stride, pad)
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-12)
    assert rel_error(backward(dout, cache), want_dx) < 1e-7


def test_large_window_uses_wide_argmax():
    # 17 * 17 = 289 window positions do not fit in uint8
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 17, 17))
    out, cache = max_pool_forward(x, size=17)
    want_out, want_dx = _torch_pool("max", x, np.ones(out.shape), 17, 17, 0)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(max_pool_backward(np.ones(out.shape), cache), want_dx)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_fast_path_equals_strided_path(kind):
    """A non-contiguous input takes the stride-tricks path; a contiguous one the reshape path."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 8, 6))
    x_f = np.asfortranarray(x)
    assert not x_f.flags.c_contiguous
    forward, backward = (max_pool_forward, max_pool_backward) if kind == "max" else (avg_pool_forward, avg_pool_backward)
    out, cache = forward(x, size=2)
    out_f, cache_f = forward(x_f, size=2)
    np.testing.assert_array_equal(out, out_f)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(backward(dout, cache), backward(dout, cache_f))


# ----------------------------------------------------------------------------- numerical gradients


@pytest.mark.parametrize("size,stride,pad", [(2, None, 0), (3, 2, 1), (2, 1, 1)])
def test_max_pool_gradcheck(size, stride, pad):
    x = np.random.default_rng(1).permutation(72).reshape(2, 1, 6, 6) / 7.0  # distinct values, far apart vs h
    res = grad_check(lambda x: max_pool_forward(x, size=size, stride=stride, pad=pad), max_pool_backward, x)
    assert res.ok, res


@pytest.mark.parametrize("size,stride,pad", [(2, None, 0), (3, 2, 1), (2, 1, 1)])
def test_avg_pool_gradcheck(size, stride, pad):
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 6))
    res = grad_check(lambda x: avg_pool_forward(x, size=size, stride=stride, pad=pad), avg_pool_backward, x)
    assert res.ok, res


def test_global_avg_pool_gradcheck():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    assert grad_check(global_avg_pool_forward, global_avg_pool_backward, x).ok


# ----------------------------------------------------------------------------- ties


def test_tie_goes_to_first_in_row_major_order():
    x = np.array([[1.0, 1.0], [1.0, 1.0]])[None, None]
    out, cache = max_pool_forward(x, size=2)
    np.testing.assert_array_equal(max_pool_backward(np.ones(out.shape), cache)[0, 0], [[1, 0], [0, 0]])
    x = np.array([[0.0, 2.0], [2.0, 1.0]])[None, None]
    out, cache = max_pool_forward(x, size=2)
    np.testing.assert_array_equal(max_pool_backward(np.full(out.shape, 3.0), cache)[0, 0], [[0, 3], [0, 0]])


@pytest.mark.parametrize("size,stride,pad", [(2, None, 0), (2, 1, 1), (3, 2, 1), ((2, 3), 1, 0)])
def test_ties_match_torch_cpu(size, stride, pad):
    x = np.random.default_rng(11).integers(0, 3, size=(2, 2, 7, 8)).astype(np.float64)  # many ties
    out, cache = max_pool_forward(x, size=size, stride=stride, pad=pad)
    dout = np.random.default_rng(12).standard_normal(out.shape)
    _, want_dx = _torch_pool("max", x, dout, size, size if stride is None else stride, pad)
    assert rel_error(max_pool_backward(dout, cache), want_dx) < 1e-12


def test_ties_in_strided_path_too():
    x = np.asfortranarray(np.zeros((1, 1, 4, 4)))  # all tied, non-contiguous
    out, cache = max_pool_forward(x, size=2)
    dx = max_pool_backward(np.ones(out.shape), cache)[0, 0]
    np.testing.assert_array_equal(dx, [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_overlapping_windows_accumulate():
    x = np.array([0.0, 5.0, 0.0])[None, None, None]  # both 1x2 windows pick the 5
    out, cache = max_pool_forward(x, size=(1, 2), stride=1)
    np.testing.assert_array_equal(out[0, 0, 0], [5, 5])
    np.testing.assert_array_equal(max_pool_backward(np.array([[[[1.0, 2.0]]]]), cache)[0, 0, 0], [0, 3, 0])
    out, cache = avg_pool_forward(x, size=(1, 2), stride=1)
    np.testing.assert_array_equal(avg_pool_backward(np.array([[[[1.0, 2.0]]]]), cache)[0, 0, 0], [0.5, 1.5, 1.0])


def test_leftover_rows_get_zero_gradient():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    out, cache = avg_pool_forward(x, size=2)
    dx = avg_pool_backward(np.ones(out.shape), cache)
    assert np.all(dx[0, 0, 4, :] == 0) and np.all(dx[0, 0, :, 4] == 0)
    assert np.all(dx[0, 0, :4, :4] == 0.25)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("forward", [max_pool_forward, avg_pool_forward])
@pytest.mark.parametrize(
    "shape,kwargs,error,match",
    [
        ((4, 4), {}, ValueError, "x must be 4-D"),
        ((1, 1, 4, 4, 1), {}, ValueError, "x must be 4-D"),
        ((1, 1, 3, 3), {"size": 4}, ValueError, "larger than the padded input"),
        ((1, 1, 3, 8), {"size": (4, 2)}, ValueError, "larger than the padded input"),
        ((1, 1, 4, 4), {"size": 0}, ValueError, "size must be >= 1"),
        ((1, 1, 4, 4), {"stride": 0}, ValueError, "stride must be >= 1"),
        ((1, 1, 4, 4), {"stride": (1, -1)}, ValueError, "stride must be >= 1"),
        ((1, 1, 4, 4), {"pad": -1}, ValueError, "pad must be >= 0"),
        ((1, 1, 4, 4), {"size": 2, "pad": 2}, ValueError, "pad must be at most half"),
        ((1, 1, 4, 4), {"size": 3, "pad": 2}, ValueError, "pad must be at most half"),
        ((1, 1, 4, 4), {"size": 2.0}, TypeError, "size must be an int or a pair"),
        ((1, 1, 4, 4), {"size": (2, 2, 2)}, TypeError, "size must be an int or a pair"),
        ((1, 1, 4, 4), {"stride": True}, TypeError, "stride must be an int or a pair"),
    ],
)
def test_bad_input(forward, shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        forward(np.zeros(shape), **kwargs)


def test_window_fits_once_padded():
    out, _ = max_pool_forward(np.ones((1, 1, 3, 3)), size=4, pad=1)  # 5x5 padded
    assert out.shape == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "forward,backward", [(max_pool_forward, max_pool_backward), (avg_pool_forward, avg_pool_backward)]
)
def test_backward_rejects_wrong_dout_shape(forward, backward):
    _, cache = forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"dout must have the shape .*\(1, 2, 2, 2\)"):
        backward(np.zeros((1, 2, 3, 3)), cache)


def test_global_pool_errors():
    with pytest.raises(ValueError, match="x must be 4-D"):
        global_avg_pool_forward(np.zeros((2, 3)))
    _, cache = global_avg_pool_forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"dout must have the shape .*\(2, 3\)"):
        global_avg_pool_backward(np.zeros((3, 2)), cache)


@pytest.mark.parametrize("hw, out_hw", [((7, 10), (3, 4)), ((8, 8), (4, 4)), ((5, 6), (1, 1)), ((9, 9), (9, 9)), ((11, 13), (4, 5))])
def test_adaptive_avg_pool_matches_torch(hw, out_hw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, *hw))
    out, cache = adaptive_avg_pool_forward(x, out_hw)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.adaptive_avg_pool2d(xt, out_hw)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    dout = rng.normal(size=out.shape)
    ref.backward(torch.tensor(dout))
    np.testing.assert_allclose(adaptive_avg_pool_backward(dout, cache), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_adaptive_avg_pool_rejects_a_grid_larger_than_the_input():
    with pytest.raises(ValueError, match="larger than the input"):
        adaptive_avg_pool_forward(np.ones((1, 1, 3, 3)), (4, 2))
