"""Checks of notebooks 07-08: pass the reference, fail each plausible mistake with the right cause."""
import numpy as np
import pytest

from cnncourse import checks, conv, gradcheck, losses, optim, pool
from cnncourse.nn import Parameter


def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise")


def _failed_with(result, phrase):
    assert result.status == "failed", result.message
    assert "likely cause" in result.message and phrase in result.message, result.message


# --------------------------------------------------------------------------- 7.1


def _conv1d_ref(dy, x, w):
    return np.convolve(dy, w), np.correlate(x, dy, "valid"), dy.sum()


def test_conv1d_backward_check():
    assert checks.check_conv1d_backward(_conv1d_ref).passed
    assert checks.check_conv1d_backward(_raise).status == "not attempted"
    # Oracle independent of the check: the gradient of sum(y * dy) by finite differences.
    rng = np.random.default_rng(0)
    x, w, dy = rng.normal(size=7), rng.normal(size=3), rng.normal(size=5)
    num = gradcheck.numerical_gradient(lambda v: np.correlate(v, w, "valid"), x.copy(), dy)
    assert gradcheck.rel_error(num, _conv1d_ref(dy, x, w)[0]) < 1e-8


def test_conv1d_backward_mistakes():
    _failed_with(checks.check_conv1d_backward(lambda dy, x, w: (np.correlate(dy, w, "full"), *_conv1d_ref(dy, x, w)[1:])),
                 "flipped kernel")
    _failed_with(checks.check_conv1d_backward(lambda dy, x, w: (np.convolve(dy, w), np.convolve(x, dy[::-1], "valid")[::-1],
                                                                dy.sum())), "dw is reversed")
    _failed_with(checks.check_conv1d_backward(lambda dy, x, w: (*_conv1d_ref(dy, x, w)[:2], 0.0)), "db is missing")


# --------------------------------------------------------------------------- 7.2


def _conv2d_ref(dout, x, w, *, stride=1, pad=0):
    _, cache = conv.conv_forward_naive(x, w, np.zeros(w.shape[0]), stride=stride, pad=pad)
    return conv.conv_backward_naive(dout, cache)


def test_conv2d_backward_check_against_torch():
    torch = pytest.importorskip("torch")
    assert checks.check_conv2d_backward(_conv2d_ref).passed

    def torch_backward(dout, x, w, *, stride=1, pad=0):
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
        torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad).backward(torch.tensor(dout))
        return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()

    assert checks.check_conv2d_backward(torch_backward).passed


def test_conv2d_backward_mistakes():
    def flipped(dout, x, w, **kw):
        dx = _conv2d_ref(dout, x, w[:, :, ::-1, ::-1].copy(), **kw)[0]
        return (dx, *_conv2d_ref(dout, x, w, **kw)[1:])

    _failed_with(checks.check_conv2d_backward(flipped), "flipped kernel")

    def overwrite(dout, x, w, **kw):  # the classic: dw = ... inside the loop over images
        dx = _conv2d_ref(dout, x, w, **kw)[0]
        for n in range(len(x)):
            _, dw, db = _conv2d_ref(dout[n : n + 1], x[n : n + 1], w, **kw)
        return dx, dw, db

    _failed_with(checks.check_conv2d_backward(overwrite), "not summed over the batch")

    def db_per_image(dout, x, w, **kw):
        dx, dw, _ = _conv2d_ref(dout, x, w, **kw)
        return dx, dw, dout.sum(axis=(2, 3))

    _failed_with(checks.check_conv2d_backward(db_per_image), "not summed over the batch")

    def averaged(dout, x, w, **kw):
        dx, dw, db = _conv2d_ref(dout, x, w, **kw)
        return dx, dw / len(x), db / len(x)

    _failed_with(checks.check_conv2d_backward(averaged), "averaged over the batch")

    def transposed_bank(dout, x, w, **kw):
        dx = _conv2d_ref(dout, x, w.transpose(1, 0, 2, 3).copy(), **kw)[0]
        return (dx, *_conv2d_ref(dout, x, w, **kw)[1:])

    _failed_with(checks.check_conv2d_backward(transposed_bank), "missing transpose")

    def transposed_dw(dout, x, w, **kw):
        dx, dw, db = _conv2d_ref(dout, x, w, **kw)
        return dx, dw.transpose(1, 0, 2, 3), db

    _failed_with(checks.check_conv2d_backward(transposed_dw), "missing transpose")
    assert checks.check_conv2d_backward(_raise).status == "not attempted"


def test_conv2d_backward_exercise_is_registered_with_forbidden_calls():
    entry = checks.EXERCISES["7.2"]
    assert entry.function == "conv2d_backward"
    assert "cnncourse.conv.conv_backward" in entry.forbidden and "cnncourse.conv.conv_backward_naive" in entry.forbidden


# --------------------------------------------------------------------------- 7.3


def _maxpool_ref(dout, x, size=2):
    _, cache = pool.max_pool_forward(x, size=size)
    return pool.max_pool_backward(dout, cache)


def _maxpool_loop(dout, x, size, pick):
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*dout.shape):
        win = dx[n, c, i * size : (i + 1) * size, j * size : (j + 1) * size]
        pick(win, x[n, c, i * size : (i + 1) * size, j * size : (j + 1) * size], dout[n, c, i, j])
    return dx


def test_max_pool_backward_check():
    assert checks.check_max_pool_backward_exercise(_maxpool_ref).passed

    def first(win, xw, g):
        win.flat[np.argmax(xw)] += g

    assert checks.check_max_pool_backward_exercise(lambda d, x, size=2: _maxpool_loop(d, x, size, first)).passed
    torch = pytest.importorskip("torch")

    def torch_backward(dout, x, size=2):
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.max_pool2d(xt, size).backward(torch.tensor(dout))
        return xt.grad.numpy()

    assert checks.check_max_pool_backward_exercise(torch_backward).passed


def test_max_pool_backward_mistakes():
    def everywhere(win, xw, g):
        win += g

    def every_max(win, xw, g):
        win += g * (xw == xw.max())

    def last_max(win, xw, g):
        k = np.flatnonzero(xw == xw.max())[-1]
        win.flat[k] += g

    def average(win, xw, g):
        win += g / xw.size

    def check(pick):
        return checks.check_max_pool_backward_exercise(lambda d, x, size=2: _maxpool_loop(d, x, size, pick))

    _failed_with(check(everywhere), "spread to all elements of the window")
    _failed_with(check(every_max), "ties: every element equal to the maximum")
    _failed_with(check(last_max), "ties go to the last")
    _failed_with(check(average), "average pooling")
    assert checks.check_max_pool_backward_exercise(_raise).status == "not attempted"


# --------------------------------------------------------------------------- 7.4


def test_gradient_check_check():
    assert checks.check_gradient_check(lambda f, x, h=1e-5: gradcheck.numerical_gradient(f, x, h=h)).passed

    def copying(f, x, h=1e-5):  # another correct way: perturb copies, never x itself
        grad = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            e = np.zeros_like(x)
            e[idx] = h
            grad[idx] = (f(x + e) - f(x - e)) / (2 * h)
        return grad

    assert checks.check_gradient_check(copying).passed


def test_gradient_check_mistakes():
    def forward(f, x, h=1e-5):
        grad = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            e = np.zeros_like(x)
            e[idx] = h
            grad[idx] = (f(x + e) - f(x)) / h
        return grad

    _failed_with(checks.check_gradient_check(forward), "forward differences")
    _failed_with(checks.check_gradient_check(lambda f, x, h=1e-5: 2 * gradcheck.numerical_gradient(f, x, h=h)),
                 "divided by h instead of 2h")
    _failed_with(checks.check_gradient_check(lambda f, x, h=1e-5: gradcheck.numerical_gradient(f, x, h=1e-5)),
                 "ignored")

    def not_restored(f, x, h=1e-5):
        grad = gradcheck.numerical_gradient(f, x, h=h)
        x += h
        return grad

    assert "modified its input" in checks.check_gradient_check(not_restored).message
    assert checks.check_gradient_check(_raise).status == "not attempted"


# --------------------------------------------------------------------------- 8.1


def test_softmax_cross_entropy_check():
    assert checks.check_softmax_cross_entropy_exercise(losses.softmax_cross_entropy).passed

    def written_out(logits, y):  # an independent correct version via log-sum-exp
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        d = np.exp(logp)
        d[np.arange(n), y] -= 1
        return -logp[np.arange(n), y].mean(), d / n

    assert checks.check_softmax_cross_entropy_exercise(written_out).passed
    assert checks.check_softmax_cross_entropy_exercise(_raise).status == "not attempted"


def test_softmax_cross_entropy_mistakes():
    def summed(logits, y):
        loss, d = losses.softmax_cross_entropy(logits, y)
        return loss * len(y), d * len(y)

    _failed_with(checks.check_softmax_cross_entropy_exercise(summed), "not divided by N")

    def grad_not_divided(logits, y):
        loss, d = losses.softmax_cross_entropy(logits, y)
        return loss, d * len(y)

    _failed_with(checks.check_softmax_cross_entropy_exercise(grad_not_divided), "gradient is not averaged")

    def no_onehot(logits, y):
        return losses.softmax_cross_entropy(logits, y)[0], losses.softmax(logits) / len(y)

    _failed_with(checks.check_softmax_cross_entropy_exercise(no_onehot), "onehot")

    def no_max_subtraction(logits, y):  # two common ways to write it: both overflow for large logits
        e = np.exp(logits)
        p = e / e.sum(axis=1, keepdims=True)
        d = p.copy()
        d[np.arange(len(y)), y] -= 1
        return -np.mean(np.log(p[np.arange(len(y)), y])), d / len(y)

    def log_of_sum(logits, y):
        lse = np.log(np.exp(logits).sum(axis=1))
        loss = np.mean(lse - logits[np.arange(len(y)), y])
        d = np.exp(logits - lse[:, None])
        d[np.arange(len(y)), y] -= 1
        return loss, d / len(y)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for wrong in (no_max_subtraction, log_of_sum):
            result = checks.check_softmax_cross_entropy_exercise(wrong)
            _failed_with(result, "no max-subtraction")
            assert "thousands" in result.message


# --------------------------------------------------------------------------- 8.2


def _adam_ref(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    p = Parameter(w.copy())
    p.grad[...] = dw
    opt = optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    opt.t = t - 1
    opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"] = m.copy(), v.copy()
    opt.step()
    return p.value, opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]


def _adam_written(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, bias=True, eps_inside=False, dt=0):
    m = beta1 * m + (1 - beta1) * dw
    v = beta2 * v + (1 - beta2) * dw**2
    m_hat, v_hat = (m / (1 - beta1 ** (t + dt)), v / (1 - beta2 ** (t + dt))) if bias else (m, v)
    denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    return w - lr * m_hat / denom, m, v


def test_adam_step_check():
    assert checks.check_adam_step(_adam_ref).passed
    assert checks.check_adam_step(_adam_written).passed
    assert checks.check_adam_step(_raise).status == "not attempted"


def test_adam_step_check_against_torch():
    torch = pytest.importorskip("torch")

    def torch_step(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        p = torch.nn.Parameter(torch.tensor(w))
        opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
        p.grad = torch.tensor(dw)
        opt.state[p] = {"step": torch.tensor(float(t - 1)), "exp_avg": torch.tensor(m), "exp_avg_sq": torch.tensor(v)}
        opt.step()
        return p.detach().numpy(), opt.state[p]["exp_avg"].numpy(), opt.state[p]["exp_avg_sq"].numpy()

    assert checks.check_adam_step(torch_step).passed


@pytest.mark.parametrize("kwargs, cause", [
    (dict(bias=False), "no bias correction"),
    (dict(eps_inside=True), "eps inside the square root"),
    (dict(dt=1), "t off by one"),
    (dict(dt=-1), "t off by one"),
])
def test_adam_step_mistakes(kwargs, cause):
    def wrong(*args, **kw):
        with np.errstate(divide="ignore", invalid="ignore"):
            return _adam_written(*args, **kw, **kwargs)

    _failed_with(checks.check_adam_step(wrong), cause)


def test_adam_step_detects_in_place_state_update():
    def in_place(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        m *= beta1
        m += (1 - beta1) * dw
        v *= beta2
        v += (1 - beta2) * dw**2
        return w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps), m, v

    assert "modified its input" in checks.check_adam_step(in_place).message
