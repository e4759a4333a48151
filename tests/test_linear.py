"""The affine layer against PyTorch and numerical gradients."""
import numpy as np
import pytest

from cnncourse.backend import to_numpy
from cnncourse.gradcheck import grad_check, rel_error
from cnncourse.linear import linear_backward, linear_forward


def _params(seed=0, x_shape=(4, 2, 3, 3), M=5):
    rng = np.random.default_rng(seed)
    D = int(np.prod(x_shape[1:]))
    return rng.standard_normal(x_shape), rng.standard_normal((D, M)), rng.standard_normal(M)


def test_forward_small(xp):
    x = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    w = xp.asarray([[1.0, 0.0, -1.0], [0.5, 1.0, 2.0]])
    out, _ = linear_forward(x, w, xp.asarray([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(to_numpy(out), [[2, 3, 5], [5, 5, 7]])
    out, _ = linear_forward(x, w, None)
    np.testing.assert_allclose(to_numpy(out), [[2, 2, 3], [5, 4, 5]])


def test_forward_flattens_4d(xp):
    x, w, b = _params()
    out, _ = linear_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b))
    np.testing.assert_allclose(to_numpy(out), x.reshape(4, -1) @ w + b)


def test_float32_preserved(xp):
    x, w, b = (xp.asarray(a.astype(np.float32)) for a in _params())
    out, cache = linear_forward(x, w, b)
    assert out.dtype == np.float32
    dx, dw, db = linear_backward(xp.ones(out.shape, dtype=np.float32), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    out, _ = linear_forward(x, xp.asarray(np.ones((18, 5))), None)  # one float64 input: float64
    assert out.dtype == np.float64


def test_against_torch():
    torch = pytest.importorskip("torch")
    x, w, b = _params(1)
    dout = np.random.default_rng(2).standard_normal((4, 5))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ot = torch.nn.functional.linear(xt.flatten(1), wt.T, bt)  # torch stores w as (M, D)
    ot.backward(torch.tensor(dout))
    out, cache = linear_forward(x, w, b)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-12)
    dx, dw, db = linear_backward(dout, cache)
    assert dx.shape == x.shape
    assert rel_error(dx, xt.grad.numpy()) < 1e-7
    assert rel_error(dw, wt.grad.numpy()) < 1e-7
    assert rel_error(db, bt.grad.numpy()) < 1e-7


def test_no_bias_gives_no_db():
    x, w, _ = _params()
    out, cache = linear_forward(x, w)
    assert linear_backward(np.ones(out.shape), cache)[2] is None


def test_gradcheck():
    x, w, b = _params(3, x_shape=(3, 2, 2, 2), M=4)
    res = grad_check(linear_forward, linear_backward, x, w, b)
    assert res.ok, res
    assert [e.name for e in res.entries] == ["x", "w", "b"]
    assert grad_check(lambda x, w: linear_forward(x, w, None), linear_backward, x, w).ok


def test_bad_input():
    x, w, b = _params()
    with pytest.raises(ValueError, match=r"x has D = 18 features per sample .* but w has 17 rows"):
        linear_forward(x, w[:17], b)
    with pytest.raises(ValueError, match=r"bias b must have shape \(M,\) = \(5,\)"):
        linear_forward(x, w, b[:4])
    with pytest.raises(ValueError, match=r"bias b must have shape"):
        linear_forward(x, w, b[None])
    with pytest.raises(ValueError, match="x must have a batch axis first"):
        linear_forward(np.ones(18), w, b)
    with pytest.raises(ValueError, match="weights w must be 2-D"):
        linear_forward(x, w.ravel(), b)
    _, cache = linear_forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have the shape of the layer output \(N, M\) = \(4, 5\)"):
        linear_backward(np.ones((4, 6)), cache)
