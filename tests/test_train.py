"""The training loop learns (and a broken backward does not), evaluation helpers, early stopping."""
import numpy as np
import pytest

from cnncourse import data, models, nn, optim, train


@pytest.fixture(scope="module")
def small():
    """400 training and 200 validation digits: enough to learn, quick to fit."""
    d = data.load_digits(seed=0)
    return (d.X_train[:400], d.y_train[:400], d.X_val[:200], d.y_val[:200])


def _small_net(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, pad=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128, 10, rng=rng))


def _fit(net, small, epochs=8, **kw):
    return train.fit(net, optim.Adam(net.parameters(), lr=0.01), small, epochs=epochs, batch_size=32, seed=0,
                     progress=False, **kw)


def test_fit_learns(small):
    net = _small_net()
    history = _fit(net, small)
    assert history.epochs == 8 and len(history.val_acc) == 8 and len(history.time) == 8
    assert history.loss[-1] < 0.3 < history.loss[0]
    assert history.val_acc[-1] > 0.85 and history.train_acc[-1] > 0.9
    assert train.evaluate(net, small[2], small[3]) == pytest.approx(history.val_acc[-1])


@pytest.mark.parametrize("breakage", ["zeros", "wrong sign"])
def test_broken_backward_does_not_learn(small, monkeypatch, breakage):
    def broken(self, dout):
        dx, dw, db = original(dout, self.cache)
        self.weight.grad += 0 * dw if breakage == "zeros" else -dw
        self.bias.grad += 0 * db if breakage == "zeros" else -db
        return dx

    original = nn.linear.linear_backward
    monkeypatch.setattr(nn.Linear, "backward", lambda self, dout: broken(self, dout))
    monkeypatch.setattr(nn.Conv2d, "backward", lambda self, dout: broken_conv(self, dout))

    def broken_conv(self, dout):
        dx, dw, db = nn.conv.conv_backward(dout, self.cache)
        self.weight.grad += 0 * dw if breakage == "zeros" else -dw
        self.bias.grad += 0 * db if breakage == "zeros" else -db
        return dx

    history = _fit(_small_net(), small)
    assert history.loss[-1] > 1.5  # a correct backward reaches < 0.3 (test_fit_learns)


def test_fit_is_deterministic(small):
    h1 = _fit(_small_net(), small, epochs=2)
    h2 = _fit(_small_net(), small, epochs=2)
    assert h1.loss == h2.loss and h1.val_acc == h2.val_acc


def test_fit_with_tuple_without_validation_and_progress_bar(small, capsys):
    net = _small_net()
    history = train.fit(net, optim.SGD(net.parameters(), lr=0.1, momentum=0.9), small[:2], epochs=2, batch_size=64,
                        seed=0, progress=True)
    assert history.val_acc == [] and history.epochs == 2 and history.best_epoch is None
    assert "loss" in capsys.readouterr().err  # tqdm writes its postfix to stderr
    with pytest.raises(ValueError, match="validation"):
        train.fit(net, optim.SGD(net.parameters(), lr=0.1), small[:2], epochs=1, batch_size=64, seed=0,
                  progress=False, early_stopping=2)


def test_fit_augments_training_batches_only(small):
    seen = []

    def identity(Xb, rng):  # draws nothing from rng: the run must equal one without augmentation
        assert isinstance(rng, np.random.Generator)
        seen.append(Xb.shape)
        return Xb

    plain = _fit(_small_net(), small, epochs=2)
    with_identity = _fit(_small_net(), small, epochs=2, augment=identity)
    assert with_identity.loss == plain.loss and with_identity.val_acc == plain.val_acc
    assert len(seen) == 2 * 13 and sum(shape[0] for shape in seen) == 2 * 400  # training batches, not validation
    shifted = _fit(_small_net(), small, epochs=2, augment=data.random_shifts)
    assert shifted.loss != plain.loss
    assert _fit(_small_net(), small, epochs=2, augment=data.random_shifts).loss == shifted.loss  # still seeded
    with pytest.raises(ValueError, match="augment"):
        _fit(_small_net(), small, epochs=1, augment="shifts")


def test_grad_norms_recorded(small):
    history = _fit(_small_net(), small, epochs=2, record_grad_norms=True)
    assert list(history.grad_norms) == ["0: Conv2d", "4: Linear"]
    assert all(len(v) == 2 and all(n > 0 for n in v) for v in history.grad_norms.values())


def test_early_stopping_restores_best_weights(small):
    net = _small_net()
    # A learning rate far too large: the validation loss soon stops improving.
    history = train.fit(net, optim.SGD(net.parameters(), lr=3.0, momentum=0.9), small, epochs=30, batch_size=32,
                        seed=0, progress=False, early_stopping=2)
    assert history.stopped_early and history.epochs < 30
    assert history.epochs == history.best_epoch + 3  # best, then 2 epochs of patience
    val_loss, val_acc = train._loss_and_accuracy(net, small[2], small[3], train.softmax_cross_entropy, 256)
    assert val_loss == pytest.approx(min(history.val_loss))
    assert val_acc == pytest.approx(history.val_acc[history.best_epoch])


def test_evaluate_and_predict_restore_mode():
    net = nn.Sequential(nn.Dropout(0.5, rng=0), nn.Linear(4, 3, rng=0))
    X = np.random.default_rng(0).random((10, 4), dtype=np.float32)
    pred = train.predict(net, X, batch_size=3)
    np.testing.assert_array_equal(pred, (X @ net[1].weight.value + net[1].bias.value).argmax(axis=1))  # no dropout
    assert net.training and net[0].training
    assert train.evaluate(net, X, pred) == 1.0
    assert train.evaluate(net, X, (pred + 1) % 3) == 0.0
    net.eval()
    train.evaluate(net, X, pred)
    assert not net[0].training


def test_confusion_matrix():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = train.confusion_matrix(y_true, y_pred, 4)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    assert cm.sum() == 6 and np.trace(cm) == 4
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 100), rng.integers(0, 5, 100)
    np.testing.assert_array_equal(train.confusion_matrix(a, b, 5), sklearn_metrics.confusion_matrix(a, b, labels=range(5)))
    with pytest.raises(ValueError, match="0..3"):
        train.confusion_matrix([0, 4], [0, 1], 4)


def test_lenet_learns_digits_quickly():
    """A few epochs of the course's LeNet on all training digits: well above chance."""
    d = data.load_digits()
    net = models.lenet(seed=0)
    history = train.fit(net, optim.Adam(net.parameters(), lr=2e-3), d, epochs=3, batch_size=32, seed=0,
                        progress=False)
    assert history.loss[-1] < 0.6 and history.val_acc[-1] > 0.85


@pytest.mark.slow
def test_lenet_recipe_reaches_98_percent():
    """models.LENET_RECIPE, as notebook 08 and benchmarks/train_digits.py run it (seed 0): >= 98 % test accuracy."""
    import functools

    r = models.LENET_RECIPE
    d = data.load_digits()
    X, y = np.concatenate([d.X_train, d.X_val]), np.concatenate([d.y_train, d.y_val])
    mean, std = X.mean(), X.std()
    augment = functools.partial(data.random_shifts, max_shift=r["max_shift"], p=r["shift_p"], fill=float(-mean / std))
    net = models.lenet(seed=0, width=r["width"], dropout=r["dropout"])
    opt = optim.Adam(net.parameters(), lr=r["lr"])
    train.fit(net, opt, ((X - mean) / std, y), epochs=r["epochs"], batch_size=r["batch_size"], seed=0, progress=False,
              augment=augment)
    opt.lr = r["fine_tune_lr"]
    train.fit(net, opt, ((X - mean) / std, y), epochs=r["fine_tune_epochs"], batch_size=r["batch_size"], seed=100,
              progress=False, augment=augment)
    assert train.evaluate(net, (d.X_test - mean) / std, d.y_test) >= 0.98
