"""Softmax, log-softmax and softmax cross-entropy against PyTorch, stability, errors."""
import numpy as np
import pytest

from cnncourse.backend import to_numpy
from cnncourse.gradcheck import numerical_gradient, rel_error
from cnncourse.losses import log_softmax, softmax, softmax_cross_entropy

BIG = np.array([[1000.0, -1000.0, 3.0], [-1000.0, 999.0, 1000.0], [0.5, 0.2, -0.1]])


def test_softmax_basic(xp):
    p = to_numpy(softmax(xp.asarray([[0.0, 0.0], [0.0, np.log(3.0)]])))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_softmax_stable_and_normalised(xp):
    p = to_numpy(softmax(xp.asarray(BIG)))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    lp = to_numpy(log_softmax(xp.asarray(BIG)))
    assert np.all(np.isfinite(lp))


def test_shift_invariance():
    z = np.random.default_rng(0).standard_normal((4, 6))
    np.testing.assert_allclose(softmax(z + 1234.5), softmax(z), rtol=1e-10)


def test_against_torch_softmax():
    torch = pytest.importorskip("torch")
    z = np.vstack([BIG, np.random.default_rng(1).standard_normal((5, 3)) * 50])
    np.testing.assert_allclose(softmax(z), torch.softmax(torch.tensor(z), 1).numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_softmax(z), torch.log_softmax(torch.tensor(z), 1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(softmax(z.T, axis=0), softmax(z).T)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_cross_entropy_against_torch(scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z = rng.standard_normal((8, 5)) * scale
    z[0] = [1000, -1000, 0, 0, 0]
    y = rng.integers(0, 5, size=8)
    y[0] = 1  # the worst possible prediction: loss 2000 / 8 from this row
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(y))
    lt.backward()
    loss, dz = softmax_cross_entropy(z, y)
    assert isinstance(loss, float)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, lt.item(), rtol=1e-12)
    assert rel_error(dz, zt.grad.numpy()) < 1e-7


def test_cross_entropy_values(xp):
    loss, dz = softmax_cross_entropy(xp.asarray([[0.0, 0.0], [0.0, 0.0]]), xp.asarray([0, 1]))
    np.testing.assert_allclose(loss, np.log(2.0))
    np.testing.assert_allclose(to_numpy(dz), [[-0.25, 0.25], [0.25, -0.25]])
    loss, _ = softmax_cross_entropy(xp.asarray([[1000.0, -1000.0]]), [0])
    assert loss == 0.0


def test_cross_entropy_numerical_gradient():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    num = numerical_gradient(lambda z: softmax_cross_entropy(z, y)[0], z)
    assert rel_error(softmax_cross_entropy(z, y)[1], num) < 1e-7


def test_float32_preserved(xp):
    z = xp.asarray(BIG.astype(np.float32))
    assert softmax(z).dtype == log_softmax(z).dtype == np.float32
    loss, dz = softmax_cross_entropy(z, xp.asarray([0, 1, 2]))
    assert dz.dtype == np.float32 and np.isfinite(loss)


def test_whole_number_float_labels_accepted():
    z = np.zeros((2, 3))
    assert softmax_cross_entropy(z, np.array([0.0, 2.0]))[0] == softmax_cross_entropy(z, [0, 2])[0]


@pytest.mark.parametrize(
    "logits,y,match",
    [
        (np.zeros((2, 3)), [0, 3], r"labels y must be in 0..2 for K = 3 classes; y\[1\] = 3 is out of range"),
        (np.zeros((2, 3)), [-1, 0], r"y\[0\] = -1 is out of range"),
        (np.zeros((2, 3)), [0.5, 1], r"labels y must be integer class indices; y\[0\] = 0.5"),
        (np.zeros((2, 3)), np.array([True, False]), "labels y must be integer class indices, got dtype bool"),
        (np.zeros((2, 3)), np.array(["a", "b"]), "labels y must be integer class indices"),
        (np.zeros((2, 3)), [0, 1, 2], "batch size mismatch: logits have N = 2 rows but labels y have 3"),
        (np.zeros((2, 3)), [[0], [1]], r"labels y must be 1-D"),
        (np.array([[0.0, np.nan, 0.0], [0, 0, 0]]), [0, 0], r"logits contain NaN or inf \(first at index \(0, 1\)"),
        (np.array([[0.0, 0.0], [np.inf, 0]]), [0, 0], r"logits contain NaN or inf \(first at index \(1, 0\)"),
        (np.zeros(3), [0], "logits must be 2-D"),
    ],
)
def test_cross_entropy_bad_input(logits, y, match):
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(logits, y)


def test_softmax_rejects_nonfinite():
    with pytest.raises(ValueError, match="logits contain NaN or inf"):
        softmax(np.array([[-np.inf, 0.0]]))
    with pytest.raises(ValueError, match="logits contain NaN or inf"):
        log_softmax(np.array([[np.nan, 0.0]]))
