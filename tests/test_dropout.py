"""Inverted dropout: statistics, the mask reused in backward, evaluation mode, errors."""
import numpy as np
import pytest

from cnncourse.backend import to_numpy
from cnncourse.dropout import dropout_backward, dropout_forward
from cnncourse.gradcheck import grad_check


def test_statistics(xp):
    x = xp.asarray(np.full((200, 500), 3.0))
    p = 0.3
    out, _ = dropout_forward(x, p=p, training=True, rng=np.random.default_rng(0))
    out = to_numpy(out)
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 0.01  # 100,000 draws: standard error ~0.0015
    np.testing.assert_allclose(out[out != 0], 3.0 / (1 - p))  # survivors scaled by 1/r
    assert abs(out.mean() - 3.0) < 0.03  # expected activation unchanged


def test_mean_preserved_for_random_input():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2, size=(100_000,))
    out, _ = dropout_forward(x, p=0.5, rng=rng)
    assert abs(out.mean() - x.mean()) < 0.02


def test_backward_reuses_the_forward_mask(xp):
    rng = np.random.default_rng(2)
    x = xp.asarray(rng.standard_normal((4, 3, 5, 5)))
    out, cache = dropout_forward(x, p=0.4, training=True, rng=rng)
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx = to_numpy(dropout_backward(dout, cache))
    kept = to_numpy(out) != 0
    assert np.all(dx[~kept] == 0)
    np.testing.assert_allclose(dx[kept], to_numpy(dout)[kept] / 0.6)
    np.testing.assert_array_equal(dx, to_numpy(dropout_backward(dout, cache)))  # no new draw


def test_eval_mode_is_identity(xp):
    x = xp.asarray(np.random.default_rng(3).standard_normal((3, 4)))
    out, cache = dropout_forward(x, p=0.9, training=False, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(to_numpy(out), to_numpy(x))
    assert cache is None
    dout = xp.ones((3, 4))
    np.testing.assert_array_equal(to_numpy(dropout_backward(dout, cache)), np.ones((3, 4)))


def test_p_zero_keeps_everything():
    x = np.arange(6.0)
    out, cache = dropout_forward(x, p=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(dropout_backward(np.ones(6), cache), np.ones(6))


def test_seeded_rng_is_reproducible():
    x = np.ones((10, 10))
    a, _ = dropout_forward(x, p=0.5, rng=np.random.default_rng(42))
    b, _ = dropout_forward(x, p=0.5, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


def test_default_rng_works(xp):
    out, cache = dropout_forward(xp.ones((50, 50)), p=0.5)
    assert 0.3 < float((out == 0).mean()) < 0.7
    assert cache.shape == (50, 50)


def test_float32_preserved(xp):
    x = xp.ones((4, 4), dtype=np.float32)
    out, cache = dropout_forward(x, p=0.5, rng=np.random.default_rng(0))
    assert out.dtype == np.float32
    assert dropout_backward(xp.ones((4, 4), dtype=np.float32), cache).dtype == np.float32


def test_gradcheck_with_a_fixed_mask():
    x = np.random.default_rng(4).standard_normal((3, 4))
    res = grad_check(lambda x: dropout_forward(x, p=0.5, rng=np.random.default_rng(0)), dropout_backward, x)
    assert res.ok, res


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"p": 1.0}, ValueError, r"drop probability\) must be in \[0, 1\)"),
        ({"p": -0.1}, ValueError, r"must be in \[0, 1\)"),
        ({"p": "0.5"}, TypeError, "must be a number"),
        ({"p": 0.5, "rng": 0}, TypeError, "rng must be a numpy.random.Generator"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        dropout_forward(np.ones(3), **kwargs)


def test_backward_rejects_wrong_shape():
    _, cache = dropout_forward(np.ones((2, 3)), p=0.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"dout must have the shape of the layer output \(2, 3\)"):
        dropout_backward(np.ones((3, 2)), cache)
