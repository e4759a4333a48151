"""2D convolution: filtering against SciPy, the layer against PyTorch, numerical gradients, naive == fast."""
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncourse import conv, fastconv, filters
from cnncourse.backend import to_numpy

torch = pytest.importorskip("torch")
F = torch.nn.functional

FORWARDS = [conv.conv_forward, conv.conv_forward_naive]
BACKWARDS = [conv.conv_backward, conv.conv_backward_naive]


def rel_error(a, b):
    """Norm-wise relative error: robust to entries that are zero by cancellation."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)
    return np.linalg.norm(a - b) / scale


def numerical_gradient(f, a, h=1e-6):
    """Centred differences (f(a + h e_i) - f(a - h e_i)) / 2h of a scalar function, one entry at a time."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        plus = f()
        a[i] = old - h
        minus = f()
        a[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


@st.composite
def layers(draw, max_n=3):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * pad[0]) + draw(st.integers(0, 5))
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pad[1]) + draw(st.integers(0, 5))
    n, c, f = draw(st.integers(1, max_n)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return (n, c, h, w), (f, c, kh, kw), bias, dict(stride=stride, pad=pad, dilation=dilation)


def make(rng, x_shape, w_shape, bias, dtype=np.float64):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


def torch_conv(x, w, b, hyper, dout=None):
    """Forward (and, with dout, backward by autograd) of torch.nn.functional.conv2d in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(xt, wt, bt, stride=hyper["stride"], padding=hyper["pad"], dilation=hyper["dilation"])
    if dout is None:
        return out.detach().numpy()
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if b is None else bt.grad.numpy()


# --------------------------------------------------------------------------- output size


def test_conv_output_size_formula_and_brute_force():
    for n in range(1, 9):
        for k in range(1, 4):
            for s in range(1, 4):
                for p in range(3):
                    for d in range(1, 3):
                        positions = [o for o in range(0, n + 2 * p) if o + d * (k - 1) < n + 2 * p][::s]
                        if positions:
                            assert conv.conv_output_size(n, k, stride=s, pad=p, dilation=d) == len(positions)
    assert conv.conv_output_size(28, 5) == 24
    assert conv.conv_output_size(32, 3, stride=2, pad=1) == 16


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(n=3, k=5), ValueError, r"kernel k=5 .* spans 5 samples, more than the padded input n \+ 2\*pad = 3 \+ 2\*0 = 3"),
        (dict(n=4, k=3, dilation=2), ValueError, r"spans 5 samples"),
        (dict(n=4, k=3, stride=0), ValueError, r"stride must be >= 1, got 0"),
        (dict(n=4, k=3, dilation=0), ValueError, r"dilation must be >= 1, got 0"),
        (dict(n=4, k=3, pad=-1), ValueError, r"pad must be >= 0, got -1"),
        (dict(n=4.0, k=3), TypeError, r"n must be an integer"),
    ],
)
def test_conv_output_size_errors(kwargs, error, match):
    n, k = kwargs.pop("n"), kwargs.pop("k")
    with pytest.raises(error, match=match):
        conv.conv_output_size(n, k, **kwargs)


# --------------------------------------------------------------------------- single-channel filtering


@pytest.mark.parametrize("mode", ["valid", "full"])
@pytest.mark.parametrize("kshape", [(1, 1), (2, 3), (3, 3), (4, 2)])
def test_correlate2d_and_convolve2d_match_scipy_signal(mode, kshape):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((7, 9)), rng.standard_normal(kshape)
    np.testing.assert_allclose(conv.correlate2d(x, w, mode=mode), scipy.signal.correlate2d(x, w, mode), atol=1e-12)
    np.testing.assert_allclose(conv.convolve2d(x, w, mode=mode), scipy.signal.convolve2d(x, w, mode), atol=1e-12)


@pytest.mark.parametrize("kshape", [(1, 1), (2, 3), (3, 3), (4, 2), (5, 3)])
def test_convolve2d_same_matches_scipy_signal(kshape):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((6, 8)), rng.standard_normal(kshape)
    np.testing.assert_allclose(conv.convolve2d(x, w, mode="same"), scipy.signal.convolve2d(x, w, "same"), atol=1e-12)


@pytest.mark.parametrize(("boundary", "ndimage_mode"),
                         [("zero", "constant"), ("replicate", "nearest"), ("mirror", "mirror"), ("periodic", "wrap")])
@pytest.mark.parametrize("kshape", [(1, 1), (3, 3), (2, 3), (4, 4), (5, 1)])
def test_correlate2d_same_matches_ndimage_for_every_boundary(boundary, ndimage_mode, kshape):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((6, 7)), rng.standard_normal(kshape)
    expected = scipy.ndimage.correlate(x, w, mode=ndimage_mode, cval=0.0)
    np.testing.assert_allclose(conv.correlate2d(x, w, mode="same", boundary=boundary), expected, atol=1e-12)


def test_mirror_does_not_repeat_the_edge_pixel():
    x = np.arange(4.0)[None, :]  # a b c d
    shift2 = np.array([[1.0, 0, 0, 0, 0]])  # reads the pixel 2 to the left
    np.testing.assert_array_equal(conv.correlate2d(x, shift2, mode="same", boundary="mirror"), [[2, 1, 0, 1]])
    np.testing.assert_array_equal(conv.correlate2d(x, shift2, mode="same", boundary="replicate"), [[0, 0, 0, 1]])
    np.testing.assert_array_equal(conv.correlate2d(x, shift2, mode="same", boundary="periodic"), [[2, 3, 0, 1]])
    single = np.array([[5.0]])
    assert conv.correlate2d(single, np.ones((3, 3)), mode="same", boundary="mirror")[0, 0] == 45.0


def dilate_kernel(w, dy, dx):
    out = np.zeros((dy * (w.shape[0] - 1) + 1, dx * (w.shape[1] - 1) + 1))
    out[::dy, ::dx] = w
    return out


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("boundary", ["zero", "mirror"])
def test_correlate2d_stride_and_dilation(mode, boundary):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((11, 12)), rng.standard_normal((3, 3))
    # dilation = a kernel with zeros between the taps (odd sizes keep the same centre)
    np.testing.assert_allclose(conv.correlate2d(x, w, mode=mode, boundary=boundary, dilation=(2, 3)),
                               conv.correlate2d(x, dilate_kernel(w, 2, 3), mode=mode, boundary=boundary), atol=1e-12)
    # stride = every s-th output of the stride-1 result
    full = conv.correlate2d(x, w, mode=mode, boundary=boundary)
    np.testing.assert_allclose(conv.correlate2d(x, w, mode=mode, boundary=boundary, stride=(2, 3)), full[::2, ::3])


def test_worked_example_true_convolution_full():
    x = np.array([[1, 3, 1], [0, -1, 1], [2, 2, -1]])
    w = np.array([[1, 2], [0, -1]])
    expected = [[1, 5, 7, 2], [0, -2, -4, 1], [2, 6, 4, -3], [0, -2, -2, 1]]
    np.testing.assert_allclose(conv.convolve2d(x, w, mode="full"), expected)


def test_worked_example_cross_correlation_valid():
    image = np.array([[1, 0.5, 1, 0], [0, 0.25, 0.5, 1], [1, 0.25, 0, 1], [0.5, 0, 1, 1]])
    w = np.array([[1, 0], [0, 2]])
    expected = [[1.5, 1.5, 3], [0.5, 0.25, 2.5], [1, 2.25, 2]]
    np.testing.assert_allclose(conv.correlate2d(image, w), expected)


def test_translation_equivariance():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((10, 10)), rng.standard_normal((3, 3))
    shifted = np.roll(x, (2, 1), axis=(0, 1))
    np.testing.assert_allclose(conv.correlate2d(shifted, w, mode="same", boundary="periodic"),
                               np.roll(conv.correlate2d(x, w, mode="same", boundary="periodic"), (2, 1), axis=(0, 1)))


def test_correlate2d_dtypes():
    x32 = np.ones((5, 5), dtype=np.float32)
    assert conv.correlate2d(x32, np.ones((3, 3), dtype=np.float32), mode="same").dtype == np.float32
    assert conv.correlate2d(x32, np.ones((3, 3)), mode="same").dtype == np.float64
    assert conv.convolve2d(np.ones((5, 5), dtype=int), np.ones((2, 2), dtype=int)).dtype == np.float64


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: conv.correlate2d(np.ones((3, 3)), np.ones((4, 2))), ValueError, r"mode='valid' needs a kernel no larger than the image: kernel spans 4x2, image is 3x3"),
        (lambda: conv.correlate2d(np.ones((3, 3, 1)), np.ones((2, 2))), ValueError, r"image x must be 2-D"),
        (lambda: conv.correlate2d(np.ones((3, 3)), np.ones(2)), ValueError, r"kernel w must be 2-D"),
        (lambda: conv.correlate2d(np.ones((3, 3)), np.ones((2, 2)), mode="centre"), ValueError, r"unknown mode 'centre'"),
        (lambda: conv.correlate2d(np.ones((3, 3)), np.ones((2, 2)), mode="same", boundary="reflect"), ValueError, r"unknown boundary 'reflect'"),
        (lambda: conv.correlate2d(np.array([["a"]]), np.ones((1, 1))), TypeError, r"image x must hold real numbers"),
        (lambda: conv.convolve2d(np.ones((3, 3)), np.ones((2, 2)), stride=0), ValueError, r"stride must be >= 1"),
    ],
)
def test_filtering_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- 2D filters


@pytest.mark.parametrize(("make", "total"), [
    (filters.blur, 1.0), (filters.gaussian2d, 1.0), (lambda: filters.gaussian2d(0.7, 3), 1.0),
    (filters.sharpen2d, 4.0), (filters.laplacian2d, 0.0), (filters.laplacian2d_diagonal, 0.0),
    (filters.sobel_x, 0.0), (filters.sobel_y, 0.0), (filters.horizontal_difference, 0.0),
])
def test_2d_filter_sums(make, total):
    assert make().sum() == pytest.approx(total, abs=1e-12)


def test_2d_filter_values():
    np.testing.assert_array_equal(filters.blur() * 8, [[0, 1, 0], [1, 4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(filters.sharpen2d(), 4 * np.pad([[1.0]], 1) + filters.laplacian2d())
    np.testing.assert_array_equal(filters.sobel_y(), [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    np.testing.assert_array_equal(filters.horizontal_difference().shape, (1, 2))
    g = filters.gaussian2d(1.5, 4, normalize=False)
    i = np.arange(-4, 5)
    np.testing.assert_allclose(g, np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * 1.5**2)) / (2 * np.pi * 1.5**2))
    assert filters.gaussian2d(1.0).shape == (9, 9)


def test_2d_filters_on_images():
    ramp = np.tile(np.arange(8.0), (6, 1))  # brightness grows to the right
    assert np.allclose(conv.correlate2d(ramp, filters.laplacian2d()), 0)  # linear image: no bending
    assert np.allclose(conv.convolve2d(ramp, filters.sobel_x()), 8)  # x-derivative 1, times 1+2+1 weights, times 2
    assert np.allclose(conv.correlate2d(ramp, filters.horizontal_difference()), 1)
    flat = np.full((6, 6), 3.0)
    assert np.allclose(conv.correlate2d(flat, filters.blur(), mode="same", boundary="replicate"), 3)


# --------------------------------------------------------------------------- the layer: oracles


@settings(max_examples=40, deadline=None)
@given(layers(), st.integers(0, 2**32 - 1))
def test_conv_forward_matches_torch(layer, seed):
    x_shape, w_shape, bias, hyper = layer
    x, w, b = make(np.random.default_rng(seed), x_shape, w_shape, bias)
    expected = torch_conv(x, w, b, hyper)
    for forward in FORWARDS:
        out, cache = forward(x, w, b, **hyper)
        assert out.shape == expected.shape
        assert rel_error(out, expected) < 1e-9


@settings(max_examples=40, deadline=None)
@given(layers(max_n=2), st.integers(0, 2**32 - 1))
def test_conv_backward_matches_torch_autograd(layer, seed):
    x_shape, w_shape, bias, hyper = layer
    rng = np.random.default_rng(seed)
    x, w, b = make(rng, x_shape, w_shape, bias)
    out, cache_fast = conv.conv_forward(x, w, b, **hyper)
    _, cache_naive = conv.conv_forward_naive(x, w, b, **hyper)
    dout = rng.standard_normal(out.shape)
    _, dx_t, dw_t, db_t = torch_conv(x, w, b, hyper, dout)
    for backward in BACKWARDS:
        for cache in (cache_fast, cache_naive):  # either backward takes either forward's cache
            dx, dw, db = backward(dout, cache)
            assert dx.shape == x.shape and dw.shape == w.shape
            assert rel_error(dx, dx_t) < 1e-7
            assert rel_error(dw, dw_t) < 1e-7
            if bias:
                assert rel_error(db, db_t) < 1e-7
            else:
                assert db is None


@settings(max_examples=40, deadline=None)
@given(layers(max_n=2), st.integers(0, 2**32 - 1), st.booleans())
def test_cpu_fast_paths_match_torch(layer, seed, need_dx):
    # conv_forward picks a path by the number of channels; call both fastconv paths directly on any geometry
    x_shape, w_shape, bias, hyper = layer
    rng = np.random.default_rng(seed)
    x, w, b = make(rng, x_shape, w_shape, bias)
    stride, pad, dilation = (conv.as_pair(hyper[k], k, minimum=0) for k in ("stride", "pad", "dilation"))
    out_taps = fastconv.taps_forward(x, w, b, stride, pad, dilation)
    out_rows, rows = fastconv.rows_forward(x, w, b, stride, pad, dilation)
    dout = rng.standard_normal(out_taps.shape)
    expected, dx_t, dw_t, _ = torch_conv(x, w, b, hyper, dout)
    assert rel_error(out_taps, expected) < 1e-9 and rel_error(out_rows, expected) < 1e-9
    for dx, dw in (fastconv.taps_backward(dout, x, w, stride, pad, dilation, need_dx=need_dx),
                   fastconv.rows_backward(dout, x.shape, w, rows, stride, pad, dilation, need_dx=need_dx)):
        assert rel_error(dw, dw_t) < 1e-7
        if need_dx:
            assert rel_error(dx, dx_t) < 1e-7
        else:
            assert dx is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hyper", [dict(stride=1, pad=1, dilation=1), dict(stride=2, pad=(1, 0), dilation=(1, 2))])
@pytest.mark.parametrize("channels, size, path", [
    (1, 9, "cols"), (fastconv.ROWS_MIN_CHANNELS, 9, "rows"),
    (fastconv.TAPS_MIN_CHANNELS, 9, "rows"), (fastconv.TAPS_MIN_CHANNELS, 48, "taps"),
])
def test_conv_forward_picks_each_cpu_path(dtype, hyper, channels, size, path):
    rng = np.random.default_rng(10)
    x, w, b = make(rng, (2, channels, size, size - 1), (5, channels, 3, 3), True, dtype=dtype)
    out, cache = conv.conv_forward(x, w, b, **hyper)
    assert fastconv.pick_path(x, 3, 3, out.shape[2:]) == path
    assert (cache.cols is not None, cache.rows is not None) == (path == "cols", path == "rows")
    out_naive, cache_naive = conv.conv_forward_naive(x, w, b, **hyper)
    assert out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, dx_t, dw_t, db_t = torch_conv(x, w, b, hyper, dout)
    assert rel_error(out, out_naive) < tol
    for backward in BACKWARDS:
        for c_ in (cache, cache_naive):
            dx, dw, db = backward(dout, c_)
            assert dx.dtype == dw.dtype == db.dtype == dtype
            assert rel_error(dx, dx_t) < tol and rel_error(dw, dw_t) < tol and rel_error(db, db_t) < tol
    dx, dw, db = conv.conv_backward(dout, cache, need_dx=False)
    assert dx is None and rel_error(dw, dw_t) < tol and rel_error(db, db_t) < tol


@pytest.mark.parametrize("algorithm", conv.ALGORITHMS)
def test_every_algorithm_can_be_forced_and_its_backward_follows(algorithm):
    rng = np.random.default_rng(4)
    hyper = dict(stride=(2, 1), pad=(1, 2), dilation=(1, 2))
    x, w, b = make(rng, (3, 5, 11, 10), (4, 5, 3, 3), True)
    out, cache = conv.conv_forward(x, w, b, algorithm=algorithm, **hyper)
    dout = rng.standard_normal(out.shape)
    expected, dx_t, dw_t, db_t = torch_conv(x, w, b, hyper, dout)
    assert rel_error(out, expected) < 1e-9
    assert (cache.cols is not None, cache.rows is not None, cache.taps) == tuple(a == algorithm for a in conv.ALGORITHMS)
    dx, dw, db = conv.conv_backward(dout, cache)
    assert rel_error(dx, dx_t) < 1e-7 and rel_error(dw, dw_t) < 1e-7 and rel_error(db, db_t) < 1e-7


def test_unknown_algorithm_is_named():
    x, w, b = make(np.random.default_rng(0), (1, 2, 5, 5), (3, 2, 3, 3), True)
    with pytest.raises(ValueError, match="unknown algorithm 'fft'"):
        conv.conv_forward(x, w, b, algorithm="fft")


@pytest.mark.parametrize("hyper", [
    dict(stride=1, pad=0, dilation=1), dict(stride=2, pad=1, dilation=1),
    dict(stride=(1, 2), pad=(2, 0), dilation=(2, 1)), dict(stride=3, pad=2, dilation=2),
])
def test_naive_equals_fast(hyper):
    rng = np.random.default_rng(6)
    x, w, b = make(rng, (3, 2, 9, 8), (4, 2, 3, 2), True)
    out_fast, cache_fast = conv.conv_forward(x, w, b, **hyper)
    out_naive, cache_naive = conv.conv_forward_naive(x, w, b, **hyper)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out_fast.shape)
    for fast, naive in zip(conv.conv_backward(dout, cache_fast), conv.conv_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(fast, naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hyper", [dict(stride=1, pad=1, dilation=1), dict(stride=(2, 1), pad=(0, 1), dilation=(1, 2))])
@pytest.mark.parametrize("backward", BACKWARDS)
def test_backward_matches_numerical_gradients(hyper, backward):
    rng = np.random.default_rng(7)
    x, w, b = make(rng, (2, 2, 5, 6), (3, 2, 3, 2), True)
    forward = conv.conv_forward_naive if backward is conv.conv_backward_naive else conv.conv_forward
    out, cache = forward(x, w, b, **hyper)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)

    def loss():
        return float(np.sum(conv.conv_forward(x, w, b, **hyper)[0] * dout))

    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-7
    assert rel_error(dw, numerical_gradient(loss, w)) < 1e-7
    assert rel_error(db, numerical_gradient(loss, b)) < 1e-7


def test_bias_is_added_per_filter():
    x = np.zeros((1, 1, 3, 3))
    out, _ = conv.conv_forward(x, np.ones((2, 1, 2, 2)), np.array([1.0, -2.0]))
    np.testing.assert_array_equal(out[0, 0], 1.0)
    np.testing.assert_array_equal(out[0, 1], -2.0)


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize("backward", BACKWARDS)
def test_float32_in_float32_out(forward, backward):
    rng = np.random.default_rng(8)
    x, w, b = make(rng, (2, 3, 6, 6), (4, 3, 3, 3), True, dtype=np.float32)
    out, cache = forward(x, w, b, stride=2, pad=1)
    assert out.dtype == np.float32
    grads = backward(np.ones_like(out), cache)
    assert all(g.dtype == np.float32 for g in grads)
    expected = torch_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), dict(stride=2, pad=1, dilation=1))
    assert rel_error(out, expected) < 1e-5
    # a float64 upstream gradient does not promote the float32 layer
    assert all(g.dtype == np.float32 for g in backward(np.ones(out.shape), cache))


def test_integer_inputs_compute_in_float64():
    out, cache = conv.conv_forward(np.ones((1, 1, 3, 3), dtype=int), np.ones((1, 1, 2, 2), dtype=int))
    assert out.dtype == np.float64 and np.all(out == 4)


def test_cache_contract():
    x, w = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
    _, fast = conv.conv_forward(x, w, None, stride=(1, 2), pad=1)
    _, naive = conv.conv_forward_naive(x, w, None, stride=(1, 2), pad=1)
    for cache in (fast, naive):
        assert isinstance(cache, conv.ConvCache)
        assert cache.stride == (1, 2) and cache.pad == (1, 1) and cache.dilation == (1, 1) and cache.b is None
    assert fast.cols.shape == (1, 2 * 3 * 3, 4 * 2)
    assert naive.cols is None
    assert conv.conv_backward(np.ones((1, 3, 4, 2)), fast)[2] is None


def test_layer_on_every_backend(xp):
    rng = np.random.default_rng(9)
    x, w, b = make(rng, (2, 3, 7, 7), (4, 3, 3, 3), True, dtype=np.float32)
    out, cache = conv.conv_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), stride=2, pad=1, dilation=(1, 2))
    ref, ref_cache = conv.conv_forward(x, w, b, stride=2, pad=1, dilation=(1, 2))
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-5, atol=1e-5)
    dout = rng.standard_normal(ref.shape).astype(np.float32)
    for got, want in zip(conv.conv_backward(xp.asarray(dout), cache), conv.conv_backward(dout, ref_cache)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the layer: bad input


class FakeCupyArray:
    """Looks like a CuPy array to the backend switch (its class lives in a 'cupy' module)."""

    __module__ = "cupy._core.core"
    shape = (1, 1, 3, 3)
    dtype = np.dtype(np.float64)


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b", "kwargs", "error", "match"),
    [
        ((1, 3, 5), (2, 3, 3, 3), None, {}, ValueError, r"input x .* must be 4-D, got a 3-D array"),
        ((1, 3, 5, 5), (2, 3, 3), None, {}, ValueError, r"filter w .* must be 4-D, got a 3-D array"),
        ((1, 3, 5, 5), (2, 4, 3, 3), None, {}, ValueError,
         r"filter channels must match input channels: filter w has C=4 but input x has C=3"),
        ((1, 1, 2, 2), (1, 1, 3, 3), None, {}, ValueError, r"kernel 3x3 .* is larger than the padded input 2x2"),
        ((1, 1, 2, 2), (1, 1, 3, 3), None, dict(dilation=2, pad=1), ValueError,
         r"spans 5x5\) is larger than the padded input 4x4"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, dict(stride=0), ValueError, r"stride must be >= 1"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, dict(dilation=(1, 0)), ValueError, r"dilation must be >= 1"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, dict(pad=-1), ValueError, r"pad must be >= 0.*negative"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, dict(stride=1.0), TypeError, r"stride must be an int"),
        ((1, 1, 5, 5), (2, 1, 3, 3), np.ones(3), {}, ValueError,
         r"bias b must have one value per filter: F=2 filters but b has length 3"),
        ((1, 1, 5, 5), (2, 1, 3, 3), np.ones((2, 1)), {}, ValueError, r"bias b .* must be 1-D"),
    ],
)
def test_layer_errors(forward, x_shape, w_shape, b, kwargs, error, match):
    with pytest.raises(error, match=match):
        forward(np.ones(x_shape), np.ones(w_shape), b, **kwargs)


@pytest.mark.parametrize("forward", FORWARDS)
def test_layer_rejects_non_numeric_data(forward):
    with pytest.raises(TypeError, match=r"input x .* must hold real numbers"):
        forward(np.full((1, 1, 3, 3), "a"), np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match=r"filter w .* must hold real numbers.*bool"):
        forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2), dtype=bool))


@pytest.mark.parametrize("forward", FORWARDS)
def test_layer_rejects_a_numpy_cupy_mix(forward):
    with pytest.raises(TypeError, match=r"cannot mix NumPy \(CPU\) and CuPy \(GPU\) arrays"):
        forward(np.ones((1, 1, 3, 3)), FakeCupyArray())


@pytest.mark.parametrize("backward", BACKWARDS)
def test_backward_checks_dout_shape(backward):
    _, cache = conv.conv_forward(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(1, 2, 2, 2\), got \(1, 2, 3, 3\)"):
        backward(np.ones((1, 2, 3, 3)), cache)
