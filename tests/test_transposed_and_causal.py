"""Transposed convolution against torch; the causal convolution never looks ahead."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncourse import causal, transposed

torch = pytest.importorskip("torch")


@settings(max_examples=30, deadline=None)
@given(stride=st.integers(1, 3), pad=st.integers(0, 2), dilation=st.integers(1, 2), k=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 10**6))
def test_conv_transpose_matches_torch(stride, pad, dilation, k, bias, seed):
    rng = np.random.default_rng(seed)
    output_padding = rng.integers(0, max(stride, dilation))
    x, w = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(3, 2, k, k))
    b = rng.normal(size=2) if bias else None
    try:
        expected = torch.nn.functional.conv_transpose2d(
            torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b),
            stride=stride, padding=pad, dilation=dilation, output_padding=int(output_padding))
    except RuntimeError:  # torch says no output; so must we
        with pytest.raises(ValueError):
            transposed.conv_transpose_forward(x, w, b, stride=stride, pad=pad, dilation=dilation, output_padding=int(output_padding))
        return
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out_t = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=stride, padding=pad, dilation=dilation,
                                                 output_padding=int(output_padding))
    out, cache = transposed.conv_transpose_forward(x, w, b, stride=stride, pad=pad, dilation=dilation,
                                                   output_padding=int(output_padding))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-9, atol=1e-12)
    dout = rng.normal(size=out.shape)
    out_t.backward(torch.tensor(dout))
    dx, dw, db = transposed.conv_transpose_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-7, atol=1e-12)
    if bias:
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-7)
    else:
        assert db is None


def test_conv_transpose_undoes_the_shape_of_a_strided_conv():
    assert transposed.conv_transpose_output_size(4, 3, stride=2, pad=1, output_padding=1) == 8


def test_conv_transpose_bad_channels():
    with pytest.raises(ValueError, match="weight input channels must match input channels"):
        transposed.conv_transpose_forward(np.ones((1, 3, 4, 4)), np.ones((2, 2, 3, 3)))


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_causal_conv_never_looks_ahead(dilation, rng):
    x = rng.normal(size=(2, 3, 20))
    w = rng.normal(size=(4, 3, 3))
    out, _ = causal.causal_conv1d_forward(x, w, rng.normal(size=4), dilation=dilation)
    assert out.shape == (2, 4, 20)
    for t in (0, 7, 19):
        changed = x.copy()
        changed[:, :, t:] += rng.normal(size=changed[:, :, t:].shape)  # change only the present and future
        out2, _ = causal.causal_conv1d_forward(changed, w, None, dilation=dilation)
        out_nobias, _ = causal.causal_conv1d_forward(x, w, None, dilation=dilation)
        np.testing.assert_array_equal(out2[:, :, :t], out_nobias[:, :, :t])
        assert not np.allclose(out2[:, :, t:], out_nobias[:, :, t:])


def test_causal_conv_matches_torch_with_left_padding(rng):
    x, w, b = rng.normal(size=(2, 3, 16)), rng.normal(size=(4, 3, 2)), rng.normal(size=4)
    dil = 4
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(xt, (dil * (w.shape[2] - 1), 0)), wt, bt, dilation=dil)
    out, cache = causal.causal_conv1d_forward(x, w, b, dilation=dil)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10)
    dout = rng.normal(size=out.shape)
    ref.backward(torch.tensor(dout))
    for ours, theirs in zip(causal.causal_conv1d_backward(dout, cache), (xt, wt, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_receptive_field_of_wavenet_stack():
    assert causal.causal_receptive_field(2, [1, 2, 4, 8]) == 16
    assert causal.causal_receptive_field(2, [1, 2, 4, 8] * 2) == 31
