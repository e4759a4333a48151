"""Checks of notebooks 06-10 name the classic mistakes (issues 17 and 18).

Every wrong answer here is written as a student would write it: a whole
function with the slip in it, not an answer taken from the check module.
"""
import numpy as np
import pytest

from cnncourse import activations, batchnorm, checks, conv, gradcheck, losses


def _named(result, cause):
    assert not result.passed, result.message
    assert cause in result.message, result.message


# --------------------------------------------------------------------------- 7.2 conv backward


def conv2d_backward_loops(dout, x, w, *, stride=1, pad=0, crop=True, step=None):
    """A student's loop backward; ``crop=False`` forgets to cut the padding, ``step=1`` ignores the stride."""
    step = stride if step is None else step
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[2:]
    for n in range(dout.shape[0]):
        for f in range(dout.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    r, c = i * step, j * step
                    dxp[n, :, r : r + kh, c : c + kw] += w[f] * dout[n, f, i, j]
                    dw[f] += xp[n, :, r : r + kh, c : c + kw] * dout[n, f, i, j]
    h, wd = x.shape[2:]
    dx = dxp[:, :, pad : pad + h, pad : pad + wd] if crop else dxp
    return dx, dw, dout.sum(axis=(0, 2, 3))


def test_conv2d_backward_loops_are_right_and_each_slip_is_named():
    assert checks.check_conv2d_backward(conv2d_backward_loops).passed
    no_crop = checks.check_conv2d_backward(lambda *a, **k: conv2d_backward_loops(*a, **k, crop=False))
    _named(no_crop, "padding is not cropped")
    assert "wrong shape" in no_crop.message or "shape" in no_crop.message

    def stride_ignored(dout, x, w, *, stride=1, pad=0):
        if stride == 1:
            return conv2d_backward_loops(dout, x, w, stride=stride, pad=pad)
        return conv2d_backward_loops(dout, x, w, stride=stride, pad=pad, step=1)

    _named(checks.check_conv2d_backward(stride_ignored), "stride is ignored in the backward")


# --------------------------------------------------------------------------- 7.4 numerical gradient


def nudge_in_place(f, x, h=1e-5):
    """Valid: nudge x[k] up, down twice, up again; x ends within rounding of where it was."""
    grad = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        x[k] += h
        up = f(x)
        x[k] -= 2 * h
        down = f(x)
        x[k] += h
        grad[k] = (up - down) / (2 * h)
    return grad


def test_gradient_check_accepts_in_place_nudging_left_off_by_rounding():
    # The premise: this way of nudging really does leave x a few ulps off for these inputs.
    rng = np.random.default_rng(704)
    x = rng.normal(size=5)
    before = x.copy()
    nudge_in_place(lambda v: float(np.sum(v)), x)
    assert not np.array_equal(x, before) and np.allclose(x, before, rtol=1e-14, atol=1e-15)
    assert checks.check_gradient_check(nudge_in_place).passed


def test_gradient_check_still_reports_a_real_change_of_the_input():
    def forgets_to_restore(f, x, h=1e-5):
        grad = gradcheck.numerical_gradient(f, x.copy(), h=h)
        x[0] += 1e-3
        return grad

    assert "modified its input" in checks.check_gradient_check(forgets_to_restore).message


# --------------------------------------------------------------------------- 8.1 softmax cross-entropy


def test_softmax_log_of_underflowed_probability_points_to_log_sum_exp():
    def max_shift_then_log(logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        n = len(y)
        loss = -np.mean(np.log(p[np.arange(n), y]))
        d = p.copy()
        d[np.arange(n), y] -= 1
        return loss, d / n

    with np.errstate(divide="ignore"):
        result = checks.check_softmax_cross_entropy_exercise(max_shift_then_log)
    _named(result, "log-sum-exp")
    assert "no max-subtraction" not in result.message


def test_softmax_sign_flipped_gradient():
    def flipped(logits, y):
        loss, d = losses.softmax_cross_entropy(logits, y)
        return loss, -d

    _named(checks.check_softmax_cross_entropy_exercise(flipped), "wrong sign")


# --------------------------------------------------------------------------- 8.2 Adam


def adam(w, dw, m, v, t, *, lr, beta1, beta2, eps, square=True, sign=1.0):
    m = beta1 * m + (1 - beta1) * dw
    v = beta2 * v + (1 - beta2) * (dw * dw if square else dw)
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    with np.errstate(invalid="ignore"):
        return w - sign * lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def test_adam_more_slips_are_named():
    assert checks.check_adam_step(adam).passed
    _named(checks.check_adam_step(lambda *a, **k: adam(*a, **k, square=False)), "not its square")
    _named(checks.check_adam_step(lambda *a, **k: adam(*a, **k, sign=-1.0)), "wrong sign")


# --------------------------------------------------------------------------- 9.1 / 9.2 batch norm


def bn_forward(x, gamma, beta, eps=1e-5, *, axes=(0, 2, 3), eps_outside=False, swap=False):
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    xhat = (x - mu) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
    g, b = (beta, gamma) if swap else (gamma, beta)
    return xhat * g[None, :, None, None] + b[None, :, None, None]


@pytest.mark.parametrize("options, cause", [
    (dict(axes=(2, 3)), "instance norm"),
    (dict(eps_outside=True), "outside the square root"),
    (dict(swap=True), "swapped"),
])
def test_batchnorm_forward_slips_are_named(options, cause):
    assert checks.check_spatial_batchnorm_train(bn_forward).passed
    _named(checks.check_spatial_batchnorm_train(lambda *a, **k: bn_forward(*a, **k, **options)), cause)


def bn_backward(dout, x, gamma, eps=1e-5, *, gamma_in_dx=True, sigma_sign=-1.0, param_axes=(0, 2, 3)):
    """Written from the chain rule through mu and var (not the compact formula the check uses)."""
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    xmu = x - mu
    inv = 1 / np.sqrt(var + eps)
    xhat = xmu * inv
    dxhat = dout * gamma[None, :, None, None] if gamma_in_dx else dout
    dvar = np.sum(dxhat * xmu, axis=axes, keepdims=True) * -0.5 * inv**3
    dmu = -np.sum(dxhat * inv, axis=axes, keepdims=True) + dvar * np.mean(-2 * xmu, axis=axes, keepdims=True)
    dx = dxhat * inv - sigma_sign * dvar * 2 * xmu / m + dmu / m
    return dx, (dout * xhat).sum(axis=param_axes), dout.sum(axis=param_axes)


@pytest.mark.parametrize("options, cause", [
    (dict(gamma_in_dx=False), "gamma is forgotten"),
    (dict(sigma_sign=1.0), "sign error on the path through sigma"),
    (dict(param_axes=0), "summed over N only"),
])
def test_batchnorm_backward_slips_are_named(options, cause):
    assert checks.check_spatial_batchnorm_backward(bn_backward).passed
    _named(checks.check_spatial_batchnorm_backward(lambda *a, **k: bn_backward(*a, **k, **options)), cause)


# --------------------------------------------------------------------------- 10.2 residual block backward


def _conv_dx(d, w, *, flip=True):
    """Input gradient of a 3x3, pad-1 correlation: a full convolution, written with np loops over taps."""
    wk = w[:, :, ::-1, ::-1] if flip else w
    dp = np.pad(d, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, wd = d.shape[2:]
    dx = np.zeros((d.shape[0], w.shape[1], h, wd))
    for i in range(3):
        for j in range(3):
            dx += np.einsum("nfhw,fc->nchw", dp[:, :, i : i + h, j : j + wd], wk[:, :, i, j])
    return dx


def block_backward(dout, x, w1, w2, *, inner_mask=True, flip=True):
    a, c1 = conv.conv_forward(x, w1, None, pad=1)
    h = np.maximum(a, 0)
    m, c2 = conv.conv_forward(h, w2, None, pad=1)
    dsum = dout * ((m + x) > 0)
    dw2 = conv.conv_backward(dsum, c2)[1]
    dh = _conv_dx(dsum, w2, flip=flip)
    da = dh * (a > 0) if inner_mask else dh
    dw1 = conv.conv_backward(da, c1)[1]
    return _conv_dx(da, w1, flip=flip) + dsum, dw1, dw2


@pytest.mark.parametrize("options, cause", [
    (dict(inner_mask=False), "inner ReLU's mask is forgotten"),
    (dict(flip=False), "kernel is not flipped"),
])
def test_residual_backward_slips_are_named(options, cause):
    assert checks.check_residual_block_backward_exercise(block_backward).passed
    _named(checks.check_residual_block_backward_exercise(lambda *a: block_backward(*a, **options)), cause)


# --------------------------------------------------------------------------- 8.3 / 8.4 dropout (new exercises)


def dropout_forward(x, p, *, training=True, rng=None, keep_is_p=False, scale=True, eval_scale=False,
                    global_rng=False, bool_mask=False):
    r = p if keep_is_p else 1 - p
    if not training:
        return (x * (1 - p) if eval_scale else x.copy()), None
    u = np.random.random(x.shape) if global_rng else rng.random(x.shape)
    mask = (u < r).astype(float)
    scaled = mask / (1 - p) if scale else mask
    return x * scaled, (mask if bool_mask else scaled)


@pytest.mark.parametrize("options, cause", [
    (dict(keep_is_p=True), "p is used as the keep probability"),
    (dict(scale=False), "not divided by the keep"),
    (dict(eval_scale=True), "scaled by r at test time"),
    (dict(global_rng=True), "must come from the `rng` argument"),
    (dict(bool_mask=True), "the mask returned is 0/1"),
])
def test_dropout_forward_slips_are_named(options, cause):
    assert checks.check_dropout_forward_exercise(dropout_forward).passed
    _named(checks.check_dropout_forward_exercise(lambda *a, **k: dropout_forward(*a, **k, **options)), cause)


def test_dropout_forward_passes_torchs_rule_and_reports_a_fixed_seed():
    torch = pytest.importorskip("torch")

    def via_torch(x, p, *, training=True, rng=None):     # torch's dropout, its mask drawn by our rng
        if not training:
            return x.copy(), None
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        keep = torch.bernoulli(torch.full(x.shape, 1 - p, dtype=torch.float64), generator=gen).numpy()
        return x * keep / (1 - p), keep / (1 - p)

    assert checks.check_dropout_forward_exercise(via_torch).passed

    def fixed_seed(x, p, *, training=True, rng=None):
        return dropout_forward(x, p, training=training, rng=np.random.default_rng(0))

    _named(checks.check_dropout_forward_exercise(fixed_seed), "fresh mask")
    assert checks.check_dropout_forward_exercise(lambda x, p, **k: (_ for _ in ()).throw(NotImplementedError)).status \
        == "not attempted"


@pytest.mark.parametrize("wrong, cause", [
    (lambda dout, m: dout * (m > 0), "not scaled by 1/r"),
    (lambda dout, m: dout, "passed through unchanged"),
    (lambda dout, m: dout * (m == 0) * m.max(), "mask is inverted"),
])
def test_dropout_backward(wrong, cause):
    assert checks.check_dropout_backward_exercise(lambda dout, m: dout * m).passed
    _named(checks.check_dropout_backward_exercise(wrong), cause)


# --------------------------------------------------------------------------- 8.5 initial loss


def initial_loss(model, X, y, *, k_from=None, log=np.log, total=False):
    logits = np.asarray(model(X), dtype=float)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(y)), y]
    k = logits.shape[1] if k_from is None else k_from(y)
    return (nll.sum() if total else nll.mean()), log(k)


@pytest.mark.parametrize("options, cause", [
    (dict(log=np.log10), "log10"),
    (dict(k_from=lambda y: len(np.unique(y))), "counted from the labels"),
    (dict(total=True), "summed over the batch"),
])
def test_initial_loss_check(options, cause):
    assert checks.check_initial_loss_check(initial_loss).passed
    _named(checks.check_initial_loss_check(lambda *a: initial_loss(*a, **options)), cause)


# --------------------------------------------------------------------------- 9.3 layer norm


def layernorm(x, gamma, beta, eps=1e-5, *, axes=None, ddof=0):
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (np.prod([x.shape[a] for a in axes]) - ddof)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def test_layernorm_passes_torch():
    torch = pytest.importorskip("torch")

    def via_torch(x, gamma, beta, eps=1e-5):
        return torch.nn.functional.layer_norm(torch.tensor(x), x.shape[1:], torch.tensor(gamma), torch.tensor(beta),
                                              eps).numpy()

    assert checks.check_layernorm_forward_exercise(via_torch).passed
    assert checks.check_layernorm_forward_exercise(layernorm).passed


@pytest.mark.parametrize("options, cause", [
    (dict(axes=(0,)), "that is batch norm"),
    (dict(ddof=1), "unbiased"),
    (dict(axes=(1,)), "axis 1 only"),
])
def test_layernorm_slips_are_named(options, cause):
    _named(checks.check_layernorm_forward_exercise(lambda *a, **k: layernorm(*a, **k, **options)), cause)


def test_new_exercises_are_registered():
    for number, function, notebook in (("8.3", "dropout_forward_exercise", "08_training_a_cnn"),
                                       ("8.4", "dropout_backward_exercise", "08_training_a_cnn"),
                                       ("8.5", "initial_loss_check", "08_training_a_cnn"),
                                       ("9.3", "layernorm_forward_exercise", "09_normalisation_and_gradients")):
        entry = checks.EXERCISES[number]
        assert (entry.function, entry.notebook) == (function, notebook)


def test_batchnorm_backward_missing_mu_path_and_chance_probability_are_named():
    def no_mu_path(dout, x, gamma, eps=1e-5):
        axes = (0, 2, 3)
        inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
        dxhat = dout * gamma[None, :, None, None]
        dx = inv * (dxhat - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)

    _named(checks.check_spatial_batchnorm_backward(no_mu_path), "path through mu is missing")

    def chance_probability(model, X, y):
        loss, k = initial_loss(model, X, y)
        return loss, 1 / np.exp(k)

    _named(checks.check_initial_loss_check(chance_probability), "expected = 1/K")


# --------------------------------------------------------------------------- 9.4 layer norm backward


def layernorm_backward(dout, x, gamma, eps=1e-5, *, constants=False, use_gamma=True):
    """Written from the chain rule through mu and var, per sample (not the compact formula of the package)."""
    axes = tuple(range(1, x.ndim))
    d = np.prod(x.shape[1:])
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    xmu, inv = x - mu, 1 / np.sqrt(var + eps)
    dxhat = dout * gamma if use_gamma else dout
    if constants:
        dx = dxhat * inv
    else:
        dvar = np.sum(dxhat * xmu, axis=axes, keepdims=True) * -0.5 * inv**3
        dmu = -np.sum(dxhat * inv, axis=axes, keepdims=True) + dvar * np.mean(-2 * xmu, axis=axes, keepdims=True)
        dx = dxhat * inv + dvar * 2 * xmu / d + dmu / d
    return dx, (dout * xmu * inv).sum(axis=0), dout.sum(axis=0)


def test_layernorm_backward_passes_torch_and_names_slips():
    torch = pytest.importorskip("torch")

    def via_torch(dout, x, gamma, eps=1e-5):
        xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(gamma, requires_grad=True)
        bt = torch.zeros_like(gt, requires_grad=True)
        torch.nn.functional.layer_norm(xt, x.shape[1:], gt, bt, eps).backward(torch.tensor(dout))
        return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()

    assert checks.check_layernorm_backward_exercise(via_torch).passed
    assert checks.check_layernorm_backward_exercise(layernorm_backward).passed
    _named(checks.check_layernorm_backward_exercise(lambda *a, **k: layernorm_backward(*a, **k, constants=True)),
           "treated as constants")
    _named(checks.check_layernorm_backward_exercise(lambda *a, **k: layernorm_backward(*a, **k, use_gamma=False)),
           "gamma is forgotten")
    assert checks.EXERCISES["9.4"].notebook == "09_normalisation_and_gradients"
