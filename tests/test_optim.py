"""Each optimiser against torch.optim, step for step, on the same parameters and gradients."""
import numpy as np
import pytest

from cnncourse import optim
from cnncourse.nn import Linear, Parameter, Sequential

torch = pytest.importorskip("torch")

CASES = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.01)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (optim.RMSprop, torch.optim.RMSprop, dict()),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.003, alpha=0.9, eps=1e-6, weight_decay=0.05)),
    (optim.Adagrad, torch.optim.Adagrad, dict()),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, eps=1e-8, weight_decay=0.02)),
    (optim.Adam, torch.optim.Adam, dict()),
    (optim.Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("ours_cls, torch_cls, hyper", CASES, ids=lambda v: str(v) if isinstance(v, dict) else None)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_for_five_steps(ours_cls, torch_cls, hyper, dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 1, 3, 3)]
    params = [Parameter(rng.standard_normal(s).astype(dtype), f"p{k}") for k, s in enumerate(shapes)]
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    ours = ours_cls(params, **hyper)
    theirs = torch_cls(tparams, **hyper)
    arrays = [p.value for p in params]
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for _ in range(5):
        ours.zero_grad()
        theirs.zero_grad()
        for p, t in zip(params, tparams):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad += g
            t.grad = torch.tensor(g)
        ours.step()
        theirs.step()
        for p, t in zip(params, tparams):
            np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=tol, atol=tol)
    assert all(p.value is a for p, a in zip(params, arrays))  # updated in place
    assert all(p.dtype == dtype for p in params)
    assert ours.t == 5


def test_takes_a_module_and_zero_grad():
    net = Sequential(Linear(3, 2, rng=0))
    opt = optim.SGD(net, lr=0.1)
    assert len(opt.params) == 2
    for p in net.parameters():
        p.grad += 1.0
    opt.zero_grad()
    assert all(not p.grad.any() for p in net.parameters())


def test_grad_not_modified_by_weight_decay():
    p = Parameter(np.ones(3))
    p.grad += 0.5
    optim.Adam([p], weight_decay=0.1).step()
    np.testing.assert_array_equal(p.grad, 0.5)


def test_plain_sgd_is_gradient_descent():
    p = Parameter(np.array([1.0, -2.0]))
    p.grad[:] = [0.5, 0.25]
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.value, [0.95, -2.025])


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=-1.0),
    lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: optim.Adam(ps, betas=(1.0, 0.999)),
    lambda ps: optim.RMSprop(ps, alpha=1.5),
    lambda ps: optim.Adagrad([]),
])
def test_bad_hyper_parameters(make):
    with pytest.raises(ValueError):
        make([Parameter(np.zeros(2))])


def test_repr():
    text = repr(optim.Adam([Parameter(np.zeros(2))], lr=0.01))
    assert text.startswith("Adam(") and "lr=0.01" in text and "betas=(0.9, 0.999)" in text
