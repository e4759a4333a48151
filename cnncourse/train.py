"""A training loop with a progress bar and a history, plus evaluation helpers.

:func:`fit` runs mini-batch training of a :class:`cnncourse.nn.Module` with
any optimiser of :mod:`cnncourse.optim`: for each batch ``forward -> loss ->
zero_grad -> backward -> step``.  After each epoch it measures the
validation loss and accuracy, updates a tqdm progress bar and records
everything in a :class:`History`.  With ``early_stopping=patience`` it stops
once the validation loss has not improved for ``patience`` epochs and puts
back the weights of the best epoch.

All array work goes through the array module of the data, so the same loop
runs on the GPU when the model (``model.to("gpu")``) and the data
(``cc.to_device(X, "gpu")``) are CuPy arrays.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import get_array_module
from .data import batches
from .losses import softmax_cross_entropy
from .nn import Conv2d, Linear

__all__ = ["History", "fit", "evaluate", "predict", "confusion_matrix"]


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch.

    Attributes:
        loss: mean training loss over the epoch's batches (weighted by batch size).
        train_acc: accuracy on the training batches as they were seen during
            the epoch (the model changes while it is measured, as in Keras).
        val_loss, val_acc: loss and accuracy on the validation set after the epoch (eval mode).
        time: seconds the epoch took (training and validation).
        grad_norms: ``{layer name: [norm per epoch]}``, the L2 norm of each
            Conv2d/Linear weight gradient averaged over the epoch's steps
            (only with ``record_grad_norms=True``).
        best_epoch: index of the epoch with the lowest validation loss.
        stopped_early: True when early stopping ended training.
    """

    loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    time: list = field(default_factory=list)
    grad_norms: dict = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)


def _split(data):
    """``data`` as (X_train, y_train, X_val, y_val): a Digits-like object or a 4-tuple (val may be None)."""
    if hasattr(data, "X_train"):
        return data.X_train, data.y_train, getattr(data, "X_val", None), getattr(data, "y_val", None)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        X, y, *val = data
        return (X, y, *val) if val else (X, y, None, None)
    raise TypeError("data must have X_train, y_train, X_val, y_val attributes (cc.data.load_digits()) "
                    "or be a tuple (X_train, y_train[, X_val, y_val])")


def _weight_layers(model):
    return [(f"{name or 'model'}: {type(m).__name__}", m) for name, m in model.named_modules() if isinstance(m, (Conv2d, Linear))]


def fit(model, optimizer, data, *, epochs: int, batch_size: int, seed, loss=softmax_cross_entropy,
        early_stopping: int | None = None, progress: bool = True, record_grad_norms: bool = False,
        augment=None) -> History:
    """Train ``model`` with ``optimizer`` on ``data`` by mini-batches.

    Args:
        model: a Module producing logits ``(N, K)``.
        optimizer: built over ``model.parameters()`` (e.g. ``cc.optim.Adam(model.parameters())``).
        data: ``cc.data.load_digits()`` (anything with ``X_train, y_train, X_val, y_val``)
            or a tuple ``(X_train, y_train[, X_val, y_val])``.
        epochs: passes over the training set.
        batch_size: samples per step.
        seed: int, seeds the shuffling (one generator for the whole run).
        loss: ``loss(logits, y) -> (value, dlogits)``.
        early_stopping: patience in epochs (needs validation data), or None.
            The weights of the epoch with the lowest validation loss are put back at the end.
        progress: show a tqdm progress bar (one tick per epoch; postfix loss and accuracies).
        record_grad_norms: record per-layer weight-gradient norms in ``History.grad_norms``.
        augment: None, or ``augment(Xb, rng) -> Xb'`` applied to every training batch
            (same shape), e.g. :func:`cnncourse.data.random_shifts`; ``rng`` is the run's
            generator, so augmented runs stay seeded.  Validation data is never augmented.

    Returns:
        :class:`History`.
    """
    X, y, X_val, y_val = _split(data)
    has_val = X_val is not None and len(X_val) > 0
    if early_stopping is not None and not has_val:
        raise ValueError("early_stopping needs validation data (X_val, y_val)")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be None or a callable augment(Xb, rng), got {augment!r}")
    rng = np.random.default_rng(seed)
    xp = get_array_module(X)
    history = History()
    layers = _weight_layers(model) if record_grad_norms else []
    history.grad_norms = {name: [] for name, _ in layers}
    best_loss, best_state, waited = math.inf, None, 0

    bar = range(epochs)
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415  (only when a bar is wanted)

        bar = tqdm(bar, desc="training", unit="epoch", leave=True)
    try:
        for _epoch in bar:
            start = time.perf_counter()
            model.train()
            total_loss, correct, seen, steps = 0.0, 0, 0, 0
            norms = [0.0] * len(layers)
            # only the parameters' gradients are needed: skip the data's (see Module.backward_params)
            backward = getattr(model, "backward_params", model.backward)
            for Xb, yb in batches(X, y, batch_size, shuffle=True, seed=rng):
                if augment is not None:
                    Xb = augment(Xb, rng)
                logits = model(Xb)
                value, dlogits = loss(logits, yb)
                optimizer.zero_grad()
                backward(dlogits)
                optimizer.step()
                n = len(yb)
                total_loss += float(value) * n
                correct += int((logits.argmax(axis=1) == yb).sum())
                seen += n
                steps += 1
                for k, (_, layer) in enumerate(layers):
                    norms[k] += float(xp.linalg.norm(layer.weight.grad))
            history.loss.append(total_loss / seen)
            history.train_acc.append(correct / seen)
            for k, (name, _) in enumerate(layers):
                history.grad_norms[name].append(norms[k] / steps)
            if has_val:
                val_loss, val_acc = _loss_and_accuracy(model, X_val, y_val, loss, 256)
                history.val_loss.append(val_loss)
                history.val_acc.append(val_acc)
                if val_loss < best_loss:
                    best_loss, waited = val_loss, 0
                    history.best_epoch = len(history.val_loss) - 1
                    if early_stopping is not None:
                        best_state = model.state_dict()
                else:
                    waited += 1
            history.time.append(time.perf_counter() - start)
            if progress:
                postfix = {"loss": f"{history.loss[-1]:.4f}", "train_acc": f"{history.train_acc[-1]:.3f}"}
                if has_val:
                    postfix["val_acc"] = f"{history.val_acc[-1]:.3f}"
                bar.set_postfix(postfix)
            if early_stopping is not None and waited >= early_stopping:
                history.stopped_early = True
                break
    finally:
        if progress:
            bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _forward_in_batches(model, X, batch_size: int):
    """Logits for all of ``X`` in eval mode (the model's mode is restored afterwards)."""
    xp = get_array_module(X)
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        return xp.concatenate([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        for m, mode in modes:
            m.training = mode


def _loss_and_accuracy(model, X, y, loss, batch_size):
    logits = _forward_in_batches(model, X, batch_size)
    value, _ = loss(logits, y)
    return float(value), float((logits.argmax(axis=1) == y).mean())


def predict(model, X, batch_size: int = 256):
    """Predicted classes ``argmax(logits)`` for every row of ``X`` (eval mode), on the device of ``X``."""
    return _forward_in_batches(model, X, batch_size).argmax(axis=1)


def evaluate(model, X, y, batch_size: int = 256) -> float:
    """Accuracy (fraction of correct predictions) of ``model`` on ``(X, y)``, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    return float((predict(model, X, batch_size) == y).mean())


def confusion_matrix(y_true, y_pred, num_classes: int):
    """``C[i, j]`` = number of samples of true class ``i`` predicted as class ``j`` (int64, rows sum to class counts)."""
    xp = get_array_module(y_true, y_pred)
    y_true = xp.asarray(y_true).astype(np.int64).ravel()
    y_pred = xp.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}")
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if v.size and (int(v.min()) < 0 or int(v.max()) >= num_classes):
            raise ValueError(f"{name} must hold classes in 0..{num_classes - 1}, got values in {int(v.min())}..{int(v.max())}")
    return xp.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# ---------------------------------------------------------------------------- gradient flow (notebooks 09 and 10)
__all__ += ["gradient_norms"]


def gradient_norms(model, X=None, y=None, *, loss=softmax_cross_entropy) -> dict:
    """L2 norm of the gradient of every weight array (ndim >= 2), in order from input to output.

    Biases and normalisation parameters (vectors) are left out, so the
    entries are the conv filters and dense matrices, including the two
    convolutions (and projection) inside each residual block.

    Args:
        model: a Module.
        X, y: a batch.  When given, the gradients are first computed afresh:
            one forward pass in the model's current mode (training mode
            updates batch-norm running statistics), the loss, ``zero_grad``
            and a backward pass.  Without them the current ``.grad`` values
            are read.
        loss: ``loss(logits, y) -> (value, dlogits)``.

    Returns:
        ``{parameter name: float norm}``, e.g. ``{"0.weight": ..., "3.w1": ...}``.
    """
    if (X is None) != (y is None):
        raise ValueError("pass both X and y (to compute fresh gradients) or neither (to read the current ones)")
    if X is not None:
        _, dlogits = loss(model(X), y)
        model.zero_grad()
        getattr(model, "backward_params", model.backward)(dlogits)
    return {name: float(get_array_module(p.grad).linalg.norm(p.grad))
            for name, p in model.named_parameters() if p.value.ndim >= 2}
