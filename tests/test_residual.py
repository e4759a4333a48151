"""The residual block against torch autograd of the same block (float64)."""
import numpy as np
import pytest

from cnncourse import residual

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_block(x, params, stride, stats, training):
    t = [torch.tensor(p, requires_grad=True) for p in params]
    xt = torch.tensor(x, requires_grad=True)
    bufs = [(torch.tensor(m), torch.tensor(v)) for m, v in stats]

    def conv_bn(inp, w, g, b, buf, s, p):
        y = F.conv2d(inp, w, None, stride=s, padding=p)
        return F.batch_norm(y, buf[0], buf[1], g, b, training=training, momentum=0.1, eps=1e-5)

    h = F.relu(conv_bn(xt, t[0], t[1], t[2], bufs[0], stride, 1))
    main = conv_bn(h, t[3], t[4], t[5], bufs[1], 1, 1)
    short = conv_bn(xt, t[6], t[7], t[8], bufs[2], stride, 0) if len(t) == 9 else xt
    return F.relu(main + short), xt, t, bufs


@pytest.mark.parametrize("C, Fo, stride, training", [(4, 4, 1, True), (3, 5, 2, True), (3, 5, 1, True), (4, 4, 1, False)])
def test_block_matches_torch(C, Fo, stride, training, rng):
    x = rng.normal(size=(3, C, 6, 5))
    params = [rng.normal(size=(Fo, C, 3, 3)) * 0.3, rng.normal(size=Fo), rng.normal(size=Fo),
              rng.normal(size=(Fo, Fo, 3, 3)) * 0.3, rng.normal(size=Fo), rng.normal(size=Fo)]
    if C != Fo or stride != 1:
        params += [rng.normal(size=(Fo, C, 1, 1)), rng.normal(size=Fo), rng.normal(size=Fo)]
    stats = tuple((rng.normal(size=Fo), rng.uniform(0.5, 2, size=Fo)) for _ in range(len(params) // 3))
    out, cache, new_stats = residual.residual_block_forward(x, *params, stride=stride, training=training, running_stats=stats)
    t_out, xt, t_params, bufs = _torch_block(x, params, stride, stats, training)
    dout = rng.normal(size=out.shape)
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-9, atol=1e-12)
    grads = residual.residual_block_backward(dout, cache)
    assert len(grads) == 1 + len(params)
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-7, atol=1e-10)
    for ours, theirs in zip(grads[1:], t_params):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-7, atol=1e-10)
    for (m, v), (tm, tv) in zip(new_stats, bufs):
        np.testing.assert_allclose(m, tm.numpy(), rtol=1e-10)
        np.testing.assert_allclose(v, tv.numpy(), rtol=1e-10)


def test_shape_change_needs_projection(rng):
    x = rng.normal(size=(2, 3, 4, 4))
    w1, w2, g, b = rng.normal(size=(5, 3, 3, 3)), rng.normal(size=(5, 5, 3, 3)), np.ones(5), np.zeros(5)
    with pytest.raises(ValueError, match="pass a 1x1 projection"):
        residual.residual_block_forward(x, w1, g, b, w2, g, b, training=True)


def test_gradient_flows_through_the_shortcut(rng):
    """With the main path's last BN scaled to zero the block is ReLU(x): dx = dout * (x > 0)."""
    x = rng.normal(size=(2, 3, 4, 4))
    w = rng.normal(size=(3, 3, 3, 3))
    zeros, ones = np.zeros(3), np.ones(3)
    out, cache, _ = residual.residual_block_forward(x, w, ones, zeros, w, zeros, zeros, training=True)
    np.testing.assert_allclose(out, np.maximum(x, 0))
    dout = rng.normal(size=x.shape)
    np.testing.assert_allclose(residual.residual_block_backward(dout, cache)[0], dout * (x > 0))
