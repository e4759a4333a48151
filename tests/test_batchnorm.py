"""Normalisation layers against torch (float64): forward, backward, running statistics."""
import numpy as np
import pytest

from cnncourse import batchnorm as bn

torch = pytest.importorskip("torch")


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(a).max() + np.abs(b).max(), 1e-300)


def _torch_grads(module, x, dout):
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), module.weight.grad.numpy(), module.bias.grad.numpy()


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6), (2, 7, 1, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_train_matches_torch(shape, momentum, rng):
    C = shape[1]
    x = rng.normal(2.0, 3.0, size=shape)
    gamma, beta = rng.normal(size=C), rng.normal(size=C)
    rm, rv = rng.normal(size=C), rng.uniform(0.5, 2, size=C)
    dout = rng.normal(size=shape)
    layer = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(C, momentum=momentum).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma)); layer.bias.copy_(torch.tensor(beta))
        layer.running_mean.copy_(torch.tensor(rm)); layer.running_var.copy_(torch.tensor(rv))
    layer.train()
    t_out, t_dx, t_dg, t_db = _torch_grads(layer, x, dout)
    forward = bn.batchnorm_forward if len(shape) == 2 else bn.spatial_batchnorm_forward
    out, cache, new_rm, new_rv = forward(x, gamma, beta, training=True, running_mean=rm, running_var=rv, momentum=momentum)
    dx, dg, db = bn.batchnorm_backward(dout, cache)
    for ours, theirs in [(out, t_out), (dx, t_dx), (dg, t_dg), (db, t_db),
                         (new_rm, layer.running_mean.numpy()), (new_rv, layer.running_var.numpy())]:
        assert _rel(ours, theirs) < 1e-7


def test_momentum_convention_is_pytorchs():
    """new = (1 - momentum) * old + momentum * batch, with the unbiased batch variance."""
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased var 14/3, unbiased var 7
    _, _, rm, rv = bn.batchnorm_forward(x, np.ones(1), np.zeros(1), training=True,
                                        running_mean=np.array([10.0]), running_var=np.array([1.0]), momentum=0.25)
    assert rm[0] == pytest.approx(0.75 * 10 + 0.25 * 3)
    assert rv[0] == pytest.approx(0.75 * 1 + 0.25 * 7)


def test_batchnorm_eval_uses_running_statistics_and_matches_torch(rng):
    x = rng.normal(size=(3, 4, 2, 2))
    gamma, beta, rm, rv = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)
    dout = rng.normal(size=x.shape)
    layer = torch.nn.BatchNorm2d(4).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma)); layer.bias.copy_(torch.tensor(beta))
        layer.running_mean.copy_(torch.tensor(rm)); layer.running_var.copy_(torch.tensor(rv))
    layer.eval()
    t_out, t_dx, t_dg, t_db = _torch_grads(layer, x, dout)
    out, cache, new_rm, new_rv = bn.spatial_batchnorm_forward(x, gamma, beta, training=False, running_mean=rm, running_var=rv)
    dx, dg, db = bn.spatial_batchnorm_backward(dout, cache)
    np.testing.assert_array_equal(new_rm, rm)
    for ours, theirs in [(out, t_out), (dx, t_dx), (dg, t_dg), (db, t_db)]:
        assert _rel(ours, theirs) < 1e-7


@pytest.mark.parametrize("shape", [(4, 6), (3, 4, 5), (2, 3, 4, 5)])
def test_layernorm_matches_torch(shape, rng):
    x, dout = rng.normal(size=shape), rng.normal(size=shape)
    gamma, beta = rng.normal(size=shape[1:]), rng.normal(size=shape[1:])
    layer = torch.nn.LayerNorm(shape[1:]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma)); layer.bias.copy_(torch.tensor(beta))
    t_out, t_dx, t_dg, t_db = _torch_grads(layer, x, dout)
    out, cache = bn.layernorm_forward(x, gamma, beta)
    for ours, theirs in zip((out, *bn.layernorm_backward(dout, cache)), (t_out, t_dx, t_dg, t_db)):
        assert _rel(ours, theirs) < 1e-7


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groupnorm_matches_torch(groups, rng):
    x, dout = rng.normal(size=(3, 6, 4, 5)), rng.normal(size=(3, 6, 4, 5))
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    layer = torch.nn.GroupNorm(groups, 6).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma)); layer.bias.copy_(torch.tensor(beta))
    t_out, t_dx, t_dg, t_db = _torch_grads(layer, x, dout)
    out, cache = bn.groupnorm_forward(x, gamma, beta, groups=groups)
    for ours, theirs in zip((out, *bn.groupnorm_backward(dout, cache)), (t_out, t_dx, t_dg, t_db)):
        assert _rel(ours, theirs) < 1e-7


def test_gradient_matches_finite_differences(rng):
    """An oracle independent of torch: centred differences of sum(out * dout)."""
    x, dout = rng.normal(size=(4, 3, 2, 2)), rng.normal(size=(4, 3, 2, 2))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    f = lambda xx: (bn.spatial_batchnorm_forward(xx, gamma, beta, training=True)[0] * dout).sum()
    _, cache, _, _ = bn.spatial_batchnorm_forward(x, gamma, beta, training=True)
    dx = bn.spatial_batchnorm_backward(dout, cache)[0]
    num = np.zeros_like(x)
    h = 1e-6
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h; plus = f(x)
        x[idx] = old - h; minus = f(x)
        x[idx] = old
        num[idx] = (plus - minus) / (2 * h)
    assert _rel(dx, num) < 1e-6


def test_float32_stays_float32(rng):
    x = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    out, cache, rm, rv = bn.spatial_batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), training=True)
    assert out.dtype == np.float32 and bn.spatial_batchnorm_backward(out, cache)[0].dtype == np.float32


@pytest.mark.parametrize("call, match", [
    (lambda: bn.batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), training=True), "more than one value per channel"),
    (lambda: bn.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(4), np.zeros(3), training=True), r"gamma must have length 3"),
    (lambda: bn.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(3), np.zeros(2), training=True), r"beta must have length 3"),
    (lambda: bn.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(3), np.zeros(3), training=False,
                                          running_mean=np.zeros(5)), r"running_mean must have length 3"),
    (lambda: bn.spatial_batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), training=True), r"x must be 4-D"),
    (lambda: bn.groupnorm_forward(np.ones((2, 6, 2, 2)), None, None, groups=4), r"divisor of the channel count C=6"),
    (lambda: bn.layernorm_forward(np.ones((2, 6)), np.ones(5), None), r"gamma must have shape \(6,\)"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_eval_mode_with_batch_of_one_is_fine():
    out, *_ = bn.spatial_batchnorm_forward(np.ones((1, 2, 1, 1)), np.ones(2), np.zeros(2), training=False)
    assert out.shape == (1, 2, 1, 1)
