"""im2col / col2im: the column layout, the adjoint identity, the dispatcher and input errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncourse import im2col as m
from cnncourse.backend import to_numpy


def reference_im2col(x, kh, kw, stride, pad, dilation):
    """The documented layout, written out element by element."""
    (sy, sx), (py, px), (dy, dx) = stride, pad, dilation
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    oh = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
    ow = (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    cols = np.zeros((n, c * kh * kw, oh * ow), dtype=x.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for oy in range(oh):
                    for ox in range(ow):
                        cols[:, (ci * kh + i) * kw + j, oy * ow + ox] = xpad[:, ci, oy * sy + i * dy, ox * sx + j * dx]
    return cols


@st.composite
def geometries(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * pad[0]) + draw(st.integers(0, 5))
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pad[1]) + draw(st.integers(0, 5))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return shape, kh, kw, stride, pad, dilation


@settings(max_examples=40, deadline=None)
@given(geometries(), st.integers(0, 2**32 - 1))
def test_im2col_matches_the_documented_layout(geometry, seed):
    shape, kh, kw, stride, pad, dilation = geometry
    x = np.random.default_rng(seed).standard_normal(shape)
    cols = m.im2col(x, kh, kw, stride=stride, pad=pad, dilation=dilation)
    np.testing.assert_array_equal(cols, reference_im2col(x, kh, kw, stride, pad, dilation))
    assert cols.flags.c_contiguous


@settings(max_examples=40, deadline=None)
@given(geometries(), st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(geometry, seed):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: col2im is exactly the backward pass of im2col.
    shape, kh, kw, stride, pad, dilation = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    hyper = dict(stride=stride, pad=pad, dilation=dilation)
    cols = m.im2col(x, kh, kw, **hyper)
    c = rng.standard_normal(cols.shape)
    dx = m.col2im(c, shape, kh, kw, **hyper)
    assert dx.shape == shape
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, dx), rel=1e-10, abs=1e-10)


def test_col2im_counts_how_many_patches_hold_each_pixel():
    shape = (1, 1, 4, 4)
    ones = np.ones((1, 9, 4))  # 3x3 kernel, 2x2 outputs
    counts = m.col2im(ones, shape, 3, 3)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_stride_larger_than_kernel_skips_pixels():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    cols = m.im2col(x, 1, 1, stride=3)
    np.testing.assert_array_equal(cols[0, 0], [0, 3, 15, 18])
    back = m.col2im(np.ones_like(cols), x.shape, 1, 1, stride=3)
    assert back.sum() == 4 and back[0, 0, 1, 1] == 0


def test_layout_turns_the_layer_into_one_matrix_product():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 2))
    cols = m.im2col(x, 3, 2, stride=(2, 1), pad=(1, 0), dilation=(1, 2))
    out = (w.reshape(4, -1) @ cols).reshape(2, 4, 3, 5)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(2, 1),
                                          padding=(1, 0), dilation=(1, 2)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x = np.ones((1, 2, 5, 5), dtype=dtype)
    cols = m.im2col(x, 3, 3, pad=1)
    assert cols.dtype == dtype
    assert m.col2im(cols, x.shape, 3, 3, pad=1).dtype == dtype


def test_dispatcher_follows_the_array(xp):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    hyper = dict(stride=(2, 1), pad=(1, 2), dilation=(1, 2))
    cols = m.im2col(xp.asarray(x), 3, 2, **hyper)
    assert type(cols) is type(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(cols), m.im2col_cpu(x, 3, 2, **hyper), rtol=1e-6)
    c = rng.standard_normal(cols.shape).astype(np.float32)
    dx = m.col2im(xp.asarray(c), x.shape, 3, 2, **hyper)
    np.testing.assert_allclose(to_numpy(dx), m.col2im_cpu(c, x.shape, 3, 2, **hyper), rtol=1e-5, atol=1e-5)


def test_as_pair():
    assert m.as_pair(2, "stride", minimum=1) == (2, 2)
    assert m.as_pair((1, 3), "stride", minimum=1) == (1, 3)
    assert m.as_pair(np.int64(0), "pad", minimum=0) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(stride=0), ValueError, r"stride must be >= 1"),
        (dict(stride=(1, -1)), ValueError, r"stride must be >= 1"),
        (dict(dilation=0), ValueError, r"dilation must be >= 1"),
        (dict(pad=-1), ValueError, r"pad must be >= 0.*negative"),
        (dict(stride=1.5), TypeError, r"stride must be an int or a pair of ints"),
        (dict(pad=(1, 2, 3)), TypeError, r"pad must be an int or a pair"),
        (dict(dilation=True), TypeError, r"dilation must be an int"),
    ],
)
def test_bad_hyper_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        m.im2col(np.ones((1, 1, 5, 5)), 3, 3, **kwargs)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel 3x3 \(dilation 2x2: spans 5x5\) is larger than the padded input 4x4"):
        m.im2col(np.ones((1, 1, 2, 2)), 3, 3, pad=1, dilation=2)


def test_col2im_checks_the_column_shape():
    with pytest.raises(ValueError, match=r"cols must have shape \(1, 9, 4\)"):
        m.col2im(np.ones((1, 9, 5)), (1, 1, 4, 4), 3, 3)
