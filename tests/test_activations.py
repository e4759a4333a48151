"""ReLU and Leaky ReLU against PyTorch and numerical gradients."""
import numpy as np
import pytest

from cnncourse.activations import leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward
from cnncourse.backend import to_numpy
from cnncourse.gradcheck import grad_check, rel_error


def _x(shape=(2, 3, 4, 5), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_relu_forward(xp):
    x = xp.asarray([[-2.0, 0.0, 3.0]])
    out, _ = relu_forward(x)
    np.testing.assert_array_equal(to_numpy(out), [[0, 0, 3]])


def test_leaky_relu_forward(xp):
    out, _ = leaky_relu_forward(xp.asarray([[-2.0, 0.0, 3.0]]), slope=0.1)
    np.testing.assert_allclose(to_numpy(out), [[-0.2, 0, 3]])
    out, _ = leaky_relu_forward(xp.asarray([-100.0]))
    np.testing.assert_allclose(to_numpy(out), [-1.0])  # default slope 0.01, like PyTorch


@pytest.mark.parametrize("forward", [relu_forward, leaky_relu_forward])
def test_float32_preserved(xp, forward):
    x = xp.asarray(_x().astype(np.float32))
    out, cache = forward(x)
    assert out.dtype == np.float32
    backward = relu_backward if forward is relu_forward else leaky_relu_backward
    assert backward(xp.ones(out.shape, dtype=np.float32), cache).dtype == np.float32


def test_integer_input_becomes_float64():
    out, _ = relu_forward(np.array([-1, 2]))
    assert out.dtype == np.float64


def test_gradient_at_zero_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, 0.0, 1.0])
    for forward, backward, fn in [
        (relu_forward, relu_backward, torch.relu),
        (leaky_relu_forward, leaky_relu_backward, lambda t: torch.nn.functional.leaky_relu(t, 0.01)),
    ]:
        _, cache = forward(x)
        xt = torch.tensor(x, requires_grad=True)
        fn(xt).sum().backward()
        np.testing.assert_array_equal(backward(np.ones(3), cache), xt.grad.numpy())


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0])
def test_against_torch(slope):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    xt = torch.tensor(x, requires_grad=True)
    ot = torch.nn.functional.leaky_relu(xt, slope)
    ot.backward(torch.tensor(dout))
    out, cache = leaky_relu_forward(x, slope=slope)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-15)
    assert rel_error(leaky_relu_backward(dout, cache), xt.grad.numpy()) < 1e-7
    if slope == 0.0:
        out_r, cache_r = relu_forward(x)
        np.testing.assert_array_equal(out_r, out)
        np.testing.assert_array_equal(relu_backward(dout, cache_r), xt.grad.numpy())


def test_gradcheck():
    x = _x()
    x[np.abs(x) < 1e-3] = 0.5  # keep clear of the kink at 0
    assert grad_check(relu_forward, relu_backward, x).ok
    assert grad_check(lambda x: leaky_relu_forward(x, slope=0.1), leaky_relu_backward, x).ok


def test_bad_input():
    with pytest.raises(TypeError, match="slope must be a real number"):
        leaky_relu_forward(np.ones(3), slope="0.1")
    with pytest.raises(ValueError, match="slope must be finite"):
        leaky_relu_forward(np.ones(3), slope=float("nan"))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        relu_forward(np.array(["a"]))
    _, cache = relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the shape of the layer output \(2, 3\)"):
        relu_backward(np.ones((3, 2)), cache)
    _, cache = leaky_relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the shape"):
        leaky_relu_backward(np.ones(6), cache)
