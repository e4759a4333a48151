"""Checks of notebook 08 against torch's own loss and optimiser."""
import numpy as np
import pytest

from cnncourse import checks, losses
from cnncourse.checks.ch08_training import _adam, _naive_softmax_ce

torch = pytest.importorskip("torch")


def _torch_adam_step(w, dw, m, v, t, *, lr, beta1, beta2, eps):
    """One Adam step by torch.optim.Adam, starting from the given state (an independent oracle)."""
    p = torch.nn.Parameter(torch.tensor(w))
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    p.grad = torch.tensor(dw)
    opt.state[p] = {"step": torch.tensor(float(t - 1)), "exp_avg": torch.tensor(m), "exp_avg_sq": torch.tensor(v)}
    opt.step()
    state = opt.state[p]
    return p.detach().numpy(), state["exp_avg"].numpy(), state["exp_avg_sq"].numpy()


def test_softmax_cross_entropy_check_passes_the_reference_and_torch():
    assert checks.check_softmax_cross_entropy_exercise(losses.softmax_cross_entropy).passed

    def via_torch(logits, y):
        lt = torch.tensor(logits, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(lt, torch.tensor(y))
        loss.backward()
        return loss.item(), lt.grad.numpy()

    assert checks.check_softmax_cross_entropy_exercise(via_torch).passed


def test_softmax_cross_entropy_mistakes():
    def summed(logits, y):
        loss, d = losses.softmax_cross_entropy(logits, y)
        return loss * len(y), d * len(y)

    assert "averaged over the batch" in checks.check_softmax_cross_entropy_exercise(summed).message
    no_onehot = checks.check_softmax_cross_entropy_exercise(
        lambda logits, y: (losses.softmax_cross_entropy(logits, y)[0], losses.softmax(logits) / len(y)))
    assert "misses the -1" in no_onehot.message
    assert "subtract each row's maximum" in checks.check_softmax_cross_entropy_exercise(_naive_softmax_ce).message


def test_adam_check_passes_torch():
    assert checks.check_adam_step(_torch_adam_step).passed


@pytest.mark.parametrize("kwargs, cause", [
    (dict(correct=False), "no bias correction"),
    (dict(t_shift=1), "off by one"),
    (dict(eps_inside=True), "inside the square root"),
])
def test_adam_mistakes(kwargs, cause):
    def wrong(w, dw, m, v, t, *, lr, beta1, beta2, eps):
        return _adam(w, dw, m, v, t, lr, beta1, beta2, eps, **kwargs)

    result = checks.check_adam_step(wrong)
    assert result.status == "failed" and cause in result.message


def test_not_attempted():
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert checks.check_adam_step(stub).status == "not attempted"
    assert checks.check_softmax_cross_entropy_exercise(stub).status == "not attempted"
