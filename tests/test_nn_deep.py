"""Normalisation and residual modules against their torch.nn twins (same weights, float64).

Each module runs forward and backward in training mode, then in eval mode,
next to the torch module holding the same parameters; outputs, input and
parameter gradients, and running statistics must agree to 1e-7 relative error.
"""
import numpy as np
import pytest

from cnncourse import models, nn, train
from cnncourse.gradcheck import rel_error

torch = pytest.importorskip("torch")
tnn = torch.nn
TOL = 1e-7


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _run(ours, theirs, x, seed):
    """One forward/backward pass of both; returns (out, dx, torch out, torch dx)."""
    xt = _t(x).requires_grad_(True)
    out_t = theirs(xt)
    out = ours(x)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    out_t.backward(_t(dout))
    return out, ours.backward(dout), out_t.detach().numpy(), xt.grad.numpy()


def _assert_pass(ours, theirs, x, pairs, *, seed=0):
    """Compare outputs, dx and every (our Parameter, torch parameter) gradient; grads are zeroed first."""
    ours.zero_grad()
    theirs.zero_grad()
    out, dx, out_t, dx_t = _run(ours, theirs, x, seed)
    assert out.shape == out_t.shape
    assert rel_error(out, out_t) < TOL
    assert rel_error(dx, dx_t) < TOL
    for p, tp in pairs:
        assert rel_error(p.grad, tp.grad.numpy()) < TOL, p.name


def _randomise_affine(ours, theirs, rng, pairs):
    """Random gamma/beta (so a wrong broadcast cannot hide behind ones and zeros), copied into torch."""
    with torch.no_grad():
        for p, tp in pairs:
            p.value[...] = rng.normal(size=p.shape)
            tp.copy_(_t(p.value))


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm2d_train_then_eval(momentum):
    rng = np.random.default_rng(0)
    ours = nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    theirs = tnn.BatchNorm2d(3, momentum=momentum).double()
    pairs = [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)]
    _randomise_affine(ours, theirs, rng, pairs)
    for step in range(3):  # several steps: the running averages compound
        x = rng.normal(2.0, 3.0, size=(4, 3, 5, 6))
        _assert_pass(ours, theirs, x, pairs, seed=step)
        assert rel_error(ours.running_mean, theirs.running_mean.numpy()) < TOL
        assert rel_error(ours.running_var, theirs.running_var.numpy()) < TOL
    ours.eval()
    theirs.eval()
    before = ours.running_mean.copy()
    _assert_pass(ours, theirs, rng.normal(size=(2, 3, 4, 4)), pairs, seed=9)
    assert np.array_equal(ours.running_mean, before)  # eval mode never updates the statistics


def test_batchnorm1d_train_then_eval():
    rng = np.random.default_rng(1)
    ours, theirs = nn.BatchNorm1d(5, dtype=np.float64), tnn.BatchNorm1d(5).double()
    pairs = [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)]
    _randomise_affine(ours, theirs, rng, pairs)
    _assert_pass(ours, theirs, rng.normal(1.0, 2.0, size=(8, 5)), pairs)
    assert rel_error(ours.running_var, theirs.running_var.numpy()) < TOL
    ours.eval()
    theirs.eval()
    _assert_pass(ours, theirs, rng.normal(size=(3, 5)), pairs, seed=1)


def test_batchnorm_buffers_keep_dtype_and_are_saved():
    bn = nn.BatchNorm2d(2)
    bn(np.random.default_rng(0).normal(size=(4, 2, 3, 3)).astype(np.float32))
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32
    state = bn.state_dict()
    assert set(state) == {"gamma", "beta", "running_mean", "running_var"}
    fresh = nn.BatchNorm2d(2)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.running_var, bn.running_var)


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 4, 5)])
def test_layernorm(shape):
    rng = np.random.default_rng(2)
    ours, theirs = nn.LayerNorm(shape[1:], dtype=np.float64), tnn.LayerNorm(shape[1:]).double()
    pairs = [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)]
    _randomise_affine(ours, theirs, rng, pairs)
    for mode in ("train", "eval"):  # no running statistics: both modes agree with torch
        getattr(ours, mode)()
        getattr(theirs, mode)()
        _assert_pass(ours, theirs, rng.normal(1.0, 2.0, size=shape), pairs)


def test_layernorm_rejects_a_wrong_sample_shape():
    with pytest.raises(ValueError, match="normalises whole samples"):
        nn.LayerNorm((3, 4, 4))(np.zeros((2, 3, 5, 5)))


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groupnorm(groups):
    rng = np.random.default_rng(3)
    ours, theirs = nn.GroupNorm(groups, 6, dtype=np.float64), tnn.GroupNorm(groups, 6).double()
    pairs = [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)]
    _randomise_affine(ours, theirs, rng, pairs)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        _assert_pass(ours, theirs, rng.normal(size=(2, 6, 4, 3)), pairs)


class _TorchBlock(tnn.Module):
    """The reference ResNet basic block in torch.nn."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(c_out)
        self.conv2 = tnn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(c_out)
        self.proj = None
        if c_in != c_out or stride != 1:
            self.proj = tnn.Sequential(tnn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), tnn.BatchNorm2d(c_out))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        shortcut = x if self.proj is None else self.proj(x)
        return torch.relu(self.bn2(self.conv2(h)) + shortcut)


def _block_pairs(ours, theirs):
    pairs = [(ours.w1, theirs.conv1.weight), (ours.gamma1, theirs.bn1.weight), (ours.beta1, theirs.bn1.bias),
             (ours.w2, theirs.conv2.weight), (ours.gamma2, theirs.bn2.weight), (ours.beta2, theirs.bn2.bias)]
    if ours.has_projection:
        pairs += [(ours.w_proj, theirs.proj[0].weight), (ours.gamma_proj, theirs.proj[1].weight),
                  (ours.beta_proj, theirs.proj[1].bias)]
    stats = [((ours.mean1, ours.var1), theirs.bn1), ((ours.mean2, ours.var2), theirs.bn2)]
    if ours.has_projection:
        stats.append(((ours.mean_proj, ours.var_proj), theirs.proj[1]))
    return pairs, stats


@pytest.mark.parametrize("c_in, c_out, stride", [(4, 4, 1), (3, 5, 1), (4, 6, 2), (4, 4, 2)])
def test_residual_block(c_in, c_out, stride):
    rng = np.random.default_rng(4)
    ours = nn.Residual(c_in, c_out, stride=stride, rng=0, dtype=np.float64)
    theirs = _TorchBlock(c_in, c_out, stride).double()
    assert ours.has_projection == (theirs.proj is not None)
    pairs, stats = _block_pairs(ours, theirs)
    with torch.no_grad():
        for p, tp in pairs:
            if p.value.ndim > 1:
                tp.copy_(_t(p.value))
    _randomise_affine(ours, theirs, rng, [pq for pq in pairs if pq[0].value.ndim == 1])
    assert sum(p.size for p, _ in pairs) == nn.count_parameters(ours) == sum(p.numel() for p in theirs.parameters())
    for step in range(2):
        _assert_pass(ours, theirs, rng.normal(size=(3, c_in, 6, 6)), pairs, seed=step)
        for (mean, var), bn in stats:
            assert rel_error(mean, bn.running_mean.numpy()) < TOL
            assert rel_error(var, bn.running_var.numpy()) < TOL
    ours.eval()
    theirs.eval()
    _assert_pass(ours, theirs, rng.normal(size=(2, c_in, 6, 6)), pairs, seed=5)


def test_residual_zero_init_is_relu_of_the_input():
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    block = nn.Residual(3, 3, rng=0, zero_init=True, dtype=np.float64)
    assert np.allclose(block(x), np.maximum(x, 0))


def test_residual_buffers_move_with_state_dict():
    block = nn.Residual(2, 4, stride=2, rng=0)
    block(np.random.default_rng(6).normal(size=(4, 2, 4, 4)).astype(np.float32))
    state = block.state_dict()
    assert {"mean_proj", "var_proj", "mean1", "var2"} <= set(state)
    fresh = nn.Residual(2, 4, stride=2, rng=1)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.var_proj, block.var_proj) and np.array_equal(fresh.w1.value, block.w1.value)
    no_proj = nn.Residual(3, 3, rng=0)
    assert "mean_proj" not in no_proj.state_dict()


# ---------------------------------------------------------------------------- models of notebook 10


def _conv_count(model):
    return sum(1 for name, p in model.named_parameters() if p.value.ndim == 4 and p.shape[-1] == 3)


@pytest.mark.parametrize("blocks", [1, 4])
def test_plain_and_residual_nets_have_equal_depth(blocks):
    plain = models.plain_cnn(2 * blocks + 1)
    res = models.resnet(blocks)
    assert _conv_count(plain) == _conv_count(res) == 2 * blocks + 1
    x = np.zeros((2, 1, 8, 8), np.float32)
    assert plain(x).shape == res(x).shape == (2, 10)
    assert models.plain_cnn(3, batchnorm=True)(x).shape == (2, 10)


def test_models_are_seeded():
    a, b = models.resnet(2, seed=3), models.resnet(2, seed=3)
    assert all(np.array_equal(p.value, q.value) for p, q in zip(a.parameters(), b.parameters()))
    c = models.small_resnet(seed=1)
    assert any(not np.array_equal(p.value, q.value) for p, q in zip(models.small_resnet(seed=0).parameters(), c.parameters()))


def test_gradient_norms_one_per_weight_layer():
    rng = np.random.default_rng(7)
    X, y = rng.random((8, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 8)
    res = models.resnet(2)
    norms = train.gradient_norms(res, X, y)
    assert len(norms) == 1 + 2 * 2 + 1  # stem, two convs per block, classifier
    assert all(v > 0 for v in norms.values())
    plain = models.plain_cnn(3)
    assert list(train.gradient_norms(plain, X, y)) == [name for name, p in plain.named_parameters() if p.value.ndim > 1]
