"""cnncourse.layout: channels-last memory changes speed, never values, shapes or the layout a caller gets back."""
import numpy as np
import pytest

from cnncourse import conv, layout, nn, pool


def channels_last_copy(a):
    """The values of ``a`` (N, C, H, W), stored in NHWC memory order."""
    out = layout.empty(a.shape, a.dtype, channels_last=True)
    out[...] = a
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_is_channels_last_reads_the_strides(rng):
    a = rng.standard_normal((2, 3, 4, 5))
    assert not layout.is_channels_last(a)
    assert layout.is_channels_last(channels_last_copy(a))
    assert not layout.is_channels_last(np.zeros((2, 1, 4, 5)))  # one channel: both orders are the same
    assert not layout.is_channels_last(np.zeros((2, 3)))


def test_to_channels_last_is_a_free_view_only_when_it_can_be(rng):
    a = rng.standard_normal((2, 3, 4, 5))
    last = layout.to_channels_last(a)
    assert last.shape == (2, 4, 5, 3) and last.flags.c_contiguous
    np.testing.assert_array_equal(last, a.transpose(0, 2, 3, 1))
    b = channels_last_copy(a)
    assert np.shares_memory(layout.to_channels_last(b), b)


@pytest.mark.parametrize("source_last", [False, True])
@pytest.mark.parametrize("like_last", [False, True])
def test_match_copies_into_the_order_of_the_reference(rng, source_last, like_last):
    a = rng.standard_normal((2, 3, 4, 5))
    src = channels_last_copy(a) if source_last else a
    like = channels_last_copy(a) if like_last else a.copy()
    out = layout.match(src, like)
    np.testing.assert_array_equal(out, a)
    assert layout.is_channels_last(out) == like_last
    assert (out is src) == (source_last == like_last)


@pytest.mark.parametrize("algorithm", ["rows", "taps"])
@pytest.mark.parametrize("hyper", [dict(stride=1, pad=1), dict(stride=2, pad=(1, 0), dilation=(1, 2)), dict(stride=1, pad=0)])
def test_fast_conv_returns_channels_last_and_gives_the_same_numbers_for_either_input_order(rng, algorithm, hyper):
    x = rng.standard_normal((3, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    out, cache = conv.conv_forward(x, w, b, **hyper, algorithm=algorithm)
    out_last, cache_last = conv.conv_forward(channels_last_copy(x), w, b, **hyper, algorithm=algorithm)
    reference, _ = conv.conv_forward(x, w, b, **hyper, algorithm="cols")
    assert layout.is_channels_last(out) and layout.is_channels_last(out_last)
    np.testing.assert_array_equal(out, out_last)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw, db = conv.conv_backward(dout, cache)
    dx_last, dw_last, db_last = conv.conv_backward(channels_last_copy(dout), cache_last)
    assert not layout.is_channels_last(dx) and dx.flags.c_contiguous  # the input's order: NCHW in, NCHW back
    assert layout.is_channels_last(dx_last)  # channels-last in, channels-last back (no copy)
    np.testing.assert_array_equal(dx, dx_last)
    np.testing.assert_array_equal(dw, dw_last)
    np.testing.assert_allclose(db, db_last, rtol=1e-5, atol=1e-5)  # a sum over the batch: order-dependent rounding


@pytest.mark.parametrize("geometry", [dict(size=2), dict(size=3, stride=2, pad=1), dict(size=3, stride=1)])
def test_max_pool_keeps_the_input_order_both_ways(rng, geometry):
    x = rng.standard_normal((2, 4, 8, 8))
    out, cache = pool.max_pool_forward(x, **geometry)
    out_last, cache_last = pool.max_pool_forward(channels_last_copy(x), **geometry)
    np.testing.assert_array_equal(out, out_last)
    dout = rng.standard_normal(out.shape)
    dx = pool.max_pool_backward(dout, cache)
    dx_last = pool.max_pool_backward(channels_last_copy(dout), cache_last)
    np.testing.assert_array_equal(dx, dx_last)
    assert not layout.is_channels_last(out) and not layout.is_channels_last(dx)
    if geometry.get("pad", 0) == 0:  # padding goes through np.pad, which stores NCHW
        assert layout.is_channels_last(out_last) and layout.is_channels_last(dx_last)


def test_a_network_gives_the_same_gradients_as_with_channels_first_copies(rng):
    """conv (rows) -> ReLU -> pool -> conv -> flatten -> linear: channels-last inside, identical numbers."""
    def net():
        r = np.random.default_rng(0)
        return nn.Sequential(nn.Conv2d(4, 8, 3, pad=1, rng=r), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 8, 3, rng=r), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 2, 3, rng=r))

    x = rng.standard_normal((5, 4, 8, 8)).astype(np.float32)
    fast = net()
    logits = fast(x)
    fast.backward(np.ones_like(logits))
    assert layout.is_channels_last(fast.layers[1].cache)  # the ReLU mask after the first conv
    # Oracle: the same layers, with every activation forced back to C order between layers.
    slow = net()
    h = x
    for layer in slow.layers:
        h = np.ascontiguousarray(layer(h))
    d = np.ones_like(h)
    for layer in reversed(slow.layers):
        d = np.ascontiguousarray(layer.backward(d))
    np.testing.assert_allclose(h, logits, rtol=1e-5, atol=1e-6)
    for (name, p_fast), (_, p_slow) in zip(fast.named_parameters(), slow.named_parameters()):
        np.testing.assert_allclose(p_fast.grad, p_slow.grad, rtol=1e-4, atol=1e-5, err_msg=name)


def test_spatial_batchnorm_takes_a_channels_last_input_in_channels_first_order(rng):
    """Batch norm's per-channel broadcasts are faster on NCHW rows, so it reorders a conv's output once."""
    from cnncourse import batchnorm

    x = rng.standard_normal((4, 3, 5, 6))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    out, cache, mean, var = batchnorm.spatial_batchnorm_forward(x, gamma, beta, training=True)
    out_last, cache_last, mean_last, var_last = batchnorm.spatial_batchnorm_forward(
        channels_last_copy(x), gamma, beta, training=True)
    assert out_last.flags.c_contiguous
    np.testing.assert_array_equal(out, out_last)
    np.testing.assert_array_equal(mean, mean_last)
    dout = rng.standard_normal(out.shape)
    for a, b in zip(batchnorm.spatial_batchnorm_backward(dout, cache),
                    batchnorm.spatial_batchnorm_backward(channels_last_copy(dout), cache_last)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
