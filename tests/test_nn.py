"""Module classes against torch.nn (same weights, float64) and the published parameter counts."""
import math

import numpy as np
import pytest

from cnncourse import models, nn
from cnncourse.backend import cupy_or_none
from cnncourse.gradcheck import rel_error

torch = pytest.importorskip("torch")
tnn = torch.nn


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _copy_into_torch(ours: nn.Module, theirs):
    """Copy our parameters into the matching torch layer (Linear weights transposed)."""
    with torch.no_grad():
        if isinstance(ours, nn.Conv2d):
            theirs.weight.copy_(_t(ours.weight.value))
        else:
            theirs.weight.copy_(_t(ours.weight.value.T))
        if ours.bias is not None:
            theirs.bias.copy_(_t(ours.bias.value))


def _compare(ours, theirs, x, *, tol=1e-10, seed=0):
    """Forward and backward of one module vs its torch twin; returns nothing, asserts."""
    xt = _t(x).requires_grad_(True)
    out_t = theirs(xt)
    out = ours(x)
    assert out.shape == tuple(out_t.shape)
    assert rel_error(out, out_t.detach().numpy()) < tol
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    out_t.backward(_t(dout))
    dx = ours.backward(dout)
    assert dx.shape == x.shape
    assert rel_error(dx, xt.grad.numpy()) < tol


@pytest.mark.parametrize("hyper", [dict(), dict(stride=2, pad=1), dict(pad=2, dilation=2), dict(bias=False)])
def test_conv2d_matches_torch(hyper):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 7, 6))
    ours = nn.Conv2d(2, 4, 3, rng=1, dtype=np.float64, **hyper)
    theirs = tnn.Conv2d(2, 4, 3, padding=hyper.get("pad", 0), stride=hyper.get("stride", 1),
                        dilation=hyper.get("dilation", 1), bias=hyper.get("bias", True)).double()
    _copy_into_torch(ours, theirs)
    _compare(ours, theirs, x)
    assert rel_error(ours.weight.grad, theirs.weight.grad.numpy()) < 1e-10
    if ours.bias is not None:
        assert rel_error(ours.bias.grad, theirs.bias.grad.numpy()) < 1e-10
    else:
        assert [p.name for p in ours.parameters()] == ["weight"]


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    x = np.random.default_rng(1).standard_normal((5, 2, 2, 3))  # flattened to 12 features
    ours = nn.Linear(12, 7, bias=bias, rng=0, dtype=np.float64)
    theirs = tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 7, bias=bias).double())
    _copy_into_torch(ours, theirs[1])
    _compare(ours, theirs, x)
    assert rel_error(ours.weight.grad, theirs[1].weight.grad.numpy().T) < 1e-10
    if bias:
        assert rel_error(ours.bias.grad, theirs[1].bias.grad.numpy()) < 1e-10


@pytest.mark.parametrize("ours, theirs", [
    (nn.MaxPool2d(2), tnn.MaxPool2d(2)),
    (nn.MaxPool2d(3, stride=2, pad=1), tnn.MaxPool2d(3, stride=2, padding=1)),
    (nn.AvgPool2d(2), tnn.AvgPool2d(2)),
    (nn.AvgPool2d(3, stride=1, pad=1), tnn.AvgPool2d(3, stride=1, padding=1)),
    (nn.ReLU(), tnn.ReLU()),
    (nn.LeakyReLU(0.1), tnn.LeakyReLU(0.1)),
    (nn.Flatten(), tnn.Flatten()),
    (nn.GlobalAvgPool(), tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())),
], ids=lambda m: repr(m).replace(" ", ""))
def test_parameter_free_modules_match_torch(ours, theirs):
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    _compare(ours, theirs, x)
    assert list(ours.parameters()) == []


def test_dropout_train_and_eval():
    x = np.random.default_rng(3).standard_normal((64, 32)) + 5.0  # no zeros in x
    layer = nn.Dropout(0.25, rng=0)
    out = layer(x)
    kept = out != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(out[kept], x[kept] / 0.75)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, kept / 0.75)  # the forward pass's mask, not a new draw
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))
    a, b = nn.Dropout(0.5, rng=7), nn.Dropout(0.5, rng=7)
    np.testing.assert_array_equal(a(x), b(x))  # seeded


def test_default_init_like_torch():
    conv = nn.Conv2d(16, 32, 3, rng=0)
    bound = 1 / math.sqrt(16 * 9)  # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = conv.weight.value
    assert w.dtype == np.float32 and conv.bias.value.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(conv.bias.value).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    ref = tnn.Conv2d(16, 32, 3)
    assert abs(w.std() - ref.weight.detach().numpy().std()) < 0.05 * bound
    lin = nn.Linear(100, 50, rng=0, dtype=np.float64)
    assert lin.weight.shape == (100, 50) and lin.weight.dtype == np.float64
    assert np.abs(lin.weight.value).max() <= 0.1
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 5, rng=42).weight.value, nn.Conv2d(3, 4, 5, rng=42).weight.value)
    assert not np.array_equal(nn.Conv2d(3, 4, 5, rng=1).weight.value, nn.Conv2d(3, 4, 5, rng=2).weight.value)


def _torch_lenet(ours: nn.Sequential):
    """The torch twin of models.lenet (float64, same weights)."""
    theirs = tnn.Sequential(
        tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(128, 64), tnn.ReLU(), tnn.Linear(64, 10),
    ).double()
    for a, b in zip(ours.layers, theirs):
        if isinstance(a, (nn.Conv2d, nn.Linear)):
            _copy_into_torch(a, b)
    return theirs


def test_lenet_logits_and_gradients_match_torch():
    from cnncourse.losses import softmax_cross_entropy

    ours = models.lenet(seed=3, dtype=np.float64)
    theirs = _torch_lenet(ours)
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 1, 8, 8)), rng.integers(0, 10, 8)
    logits = ours(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    ours.zero_grad()
    dx = ours.backward(dlogits)

    xt = _t(x).requires_grad_(True)
    logits_t = theirs(xt)
    loss_t = tnn.functional.cross_entropy(logits_t, torch.tensor(y))
    loss_t.backward()
    assert rel_error(logits, logits_t.detach().numpy()) < 1e-7
    assert abs(loss - loss_t.item()) < 1e-12
    assert rel_error(dx, xt.grad.numpy()) < 1e-7
    torch_params = [p for m in theirs if isinstance(m, (tnn.Conv2d, tnn.Linear)) for p in (m.weight, m.bias)]
    for (name, p), q in zip(ours.named_parameters(), torch_params):
        g = q.grad.numpy()
        g = g.T if g.ndim == 2 else g
        assert rel_error(p.grad, g) < 1e-7, name


@pytest.mark.parametrize("make", [models.lenet, models.lenet28])
def test_backward_params_gives_the_same_gradients_without_the_input_gradient(make, monkeypatch):
    from cnncourse import conv
    from cnncourse.losses import softmax_cross_entropy

    net = make(seed=1, dtype=np.float64)
    side = 8 if make is models.lenet else 28
    rng = np.random.default_rng(2)
    x, y = rng.random((4, 1, side, side)), rng.integers(0, 10, 4)
    _, dlogits = softmax_cross_entropy(net(x), y)
    net.zero_grad()
    net.backward(dlogits)
    full = [p.grad.copy() for p in net.parameters()]
    calls = []
    real = conv.conv_backward
    monkeypatch.setattr(conv, "conv_backward", lambda *a, **k: calls.append(k.get("need_dx", True)) or real(*a, **k))
    net.zero_grad()
    assert net.backward_params(dlogits) is None
    assert calls == [True, False]  # the second conv still passes its gradient on; the first skips dx
    for g, p in zip(full, net.parameters()):
        assert rel_error(p.grad, g) < 1e-12


def test_lenet_float32_by_default():
    net = models.lenet()
    assert all(p.dtype == np.float32 for p in net.parameters())
    out = net(np.zeros((2, 1, 8, 8), np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 10)
    assert net.backward(np.ones_like(out)).dtype == np.float32


# ---------------------------------------------------------------------------- published parameter counts


def test_cpsc340_net_593674_parameters():
    net = models.cpsc340_net()
    assert nn.count_parameters(net) == 593_674
    rows = nn.summary(net, (3, 28, 28), print_table=False)
    assert [r.params for r in rows if r.params] == [2_432, 589_952, 1_290]
    assert rows[2].output_shape == (32, 12, 12)


def test_lwls_example_table(capsys):
    rows = nn.summary(models.lwls_example_net(), (1, 28, 28))
    weighted = [r for r in rows if r.params]
    assert [math.prod(r.output_shape) for r in weighted] == [3136, 1568, 588, 200, 10]
    assert [r.params for r in weighted] == [104, 808, 1548, 117_800, 2010]
    printed = capsys.readouterr().out
    assert "117,800" in printed and "total" in printed and "122,270" in printed


def test_edinburgh_net():
    net = models.edinburgh_mnist_net()
    rows = nn.summary(net, (1, 28, 28), print_table=False)
    assert rows[-2].output_shape == (3136,)  # 64 * 7 * 7 features into the last layer
    assert [r.params for r in rows if r.params] == [32 * 9 + 32, 64 * 32 * 9 + 64, 3136 * 10 + 10]
    assert nn.count_parameters(net) == 50_186


def test_lenet28_shapes():
    rows = nn.summary(models.lenet28(), (1, 1, 28, 28), print_table=False)  # batch axis ignored
    assert rows[-1].output_shape == (10,)
    assert nn.count_parameters(models.lenet28()) == 61_706


def test_summary_has_no_side_effects():
    net = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Dropout(0.5, rng=0))
    state = net.layers[1].rng.bit_generator.state
    nn.summary(net, (4,), print_table=False)
    assert net.training and net.layers[1].training
    assert net.layers[1].rng.bit_generator.state == state  # eval mode: no random draw


# ---------------------------------------------------------------------------- Module machinery


def test_parameters_recursive_named_and_unique():
    inner = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU())
    net = nn.Sequential(inner, nn.Flatten(), nn.Linear(2, 3, rng=0))
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.0.weight", "0.0.bias", "2.weight", "2.bias"]
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    shared = nn.Linear(3, 3, rng=0)
    assert len(list(nn.Sequential(shared, nn.ReLU(), shared).parameters())) == 2  # listed once


def test_gradients_accumulate_and_zero_grad():
    net = nn.Sequential(nn.Linear(3, 2, rng=0, dtype=np.float64))
    x = np.ones((4, 3))
    net(x)
    net.backward(np.ones((4, 2)))
    g1 = net[0].weight.grad.copy()
    net(x)
    net.backward(np.ones((4, 2)))
    np.testing.assert_allclose(net[0].weight.grad, 2 * g1)
    grad_array = net[0].weight.grad
    net.zero_grad()
    assert all(not p.grad.any() for p in net.parameters())
    assert net[0].weight.grad is grad_array  # zeroed in place


def test_train_eval_propagate():
    net = nn.Sequential(nn.Sequential(nn.Dropout(0.5, rng=0)), nn.ReLU())
    assert net.eval() is net
    assert [m.training for _, m in net.named_modules()] == [False, False, False, False]
    net.train()
    assert all(m.training for _, m in net.named_modules())


def test_state_dict_roundtrip():
    net = models.lenet(seed=0)
    state = net.state_dict()
    before = [p.value for p in net.parameters()]
    for p in net.parameters():
        p.value += 1.0
    net.load_state_dict(state)
    for p, v in zip(net.parameters(), before):
        assert p.value is v  # restored in place: an optimiser's references stay valid
        np.testing.assert_array_equal(p.value, state[[n for n, q in net.named_parameters() if q is p][0]])


def test_to_cpu_and_gpu():
    net = models.lenet(seed=0)
    assert net.to("cpu") is net
    assert all(isinstance(p.value, np.ndarray) for p in net.parameters())
    with pytest.raises(ValueError, match="device"):
        net.to("tpu")


@pytest.mark.gpu
@pytest.mark.skipif(cupy_or_none() is None, reason="no usable GPU (CuPy missing or no CUDA device)")
def test_gpu_forward_backward_matches_cpu():
    cp = cupy_or_none()
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    cpu = models.lenet(seed=0)
    gpu = models.lenet(seed=0).to("gpu")
    out = cpu(x)
    out_gpu = gpu(cp.asarray(x))
    np.testing.assert_allclose(cp.asnumpy(out_gpu), out, rtol=1e-4, atol=1e-5)
    gpu.backward(cp.ones_like(out_gpu))
    cpu.backward(np.ones_like(out))
    for p, q in zip(cpu.parameters(), gpu.parameters()):
        np.testing.assert_allclose(cp.asnumpy(q.grad), p.grad, rtol=1e-3, atol=1e-4)
    gpu.to("cpu")
    assert all(isinstance(p.value, np.ndarray) for p in gpu.parameters())


def test_repr_is_readable():
    text = repr(models.lwls_example_net())
    assert text.startswith("Sequential(\n  (0): Conv2d(1, 4, k=5, pad=2)")
    assert "(2): Conv2d(4, 8, k=5, stride=2, pad=2)" in text and "Linear(588, 200)" in text
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(3, 2, bias=False)"


def test_custom_module_pattern():
    """A new layer needs only forward/backward and Parameter attributes (the nn docstring's recipe)."""

    class Scale(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.gamma = nn.Parameter(np.full(c, 2.0), "gamma")

        def forward(self, x):
            self.cache = x
            return x * self.gamma.value

        def backward(self, dout):
            self.gamma.grad += (dout * self.cache).sum(axis=0)
            return dout * self.gamma.value

    net = nn.Sequential(Scale(3), nn.ReLU())
    assert [p.name for p in net.parameters()] == ["gamma"]
    x = np.array([[1.0, -1.0, 2.0]])
    np.testing.assert_allclose(net(x), [[2.0, 0.0, 4.0]])
    np.testing.assert_allclose(net.backward(np.ones((1, 3))), [[2.0, 0.0, 2.0]])
    np.testing.assert_allclose(net[0].gamma.grad, [1.0, 0.0, 2.0])
    assert nn.count_parameters(net) == 3 and "Scale()" in repr(net)


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
