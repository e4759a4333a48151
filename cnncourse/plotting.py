"""Small, consistent figures for the notebooks.

Nothing here changes matplotlib's global state on import; notebooks call
:func:`notebook_style` once in their set-up cell.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

__all__ = [
    "notebook_style", "plot_signals", "show_matrix", "show_images",
    "plot_history", "plot_confusion", "show_filters", "show_feature_maps", "text_colour_for", "MIN_FONT_SIZE",
]

#: No text in a course figure is smaller than this (points, at the stored size): smaller is unreadable
#: at the notebooks' 80 dpi.  ``tests/test_plotting.py`` holds every helper to it.
MIN_FONT_SIZE = 8


def text_colour_for(rgba) -> str:
    """"black" or "white", whichever contrasts more with a background colour (WCAG relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in tuple(rgba)[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast ratios (L1 + 0.05) / (L2 + 0.05) against white (L = 1) and black (L = 0).
    return "white" if (1.05 / (luminance + 0.05)) > ((luminance + 0.05) / 0.05) else "black"


def notebook_style(dpi: int = 80) -> None:
    """Small figures with a fixed size and dpi, so stored notebooks stay light and stable."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.figsize": (7.0, 2.6), "figure.dpi": dpi, "savefig.dpi": dpi,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "image.cmap": "gray",
        "figure.max_open_warning": 0,
    })


def plot_signals(signals: dict, *, ax=None, title: str | None = None, stem: bool = False):
    """Plot several 1D signals (name -> array of shape (n,)) on one axis; returns the axis."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots()[1]
    for name, y in signals.items():
        y = to_numpy(y)
        if stem:
            ax.stem(np.arange(len(y)), y, label=name, basefmt=" ")
        else:
            ax.plot(np.arange(len(y)), y, marker=".", label=name)
    if title:
        ax.set_title(title)
    ax.set_xlabel("sample i")
    ax.legend(loc="best")
    return ax


def show_matrix(M, *, ax=None, title: str | None = None, annotate: bool | None = None, cmap: str = "RdBu_r"):
    """Show a matrix as an image with a symmetric colour scale (zero = white)."""
    import matplotlib.pyplot as plt

    M = to_numpy(M)
    ax = ax or plt.subplots(figsize=(3.2, 3.2))[1]
    vmax = float(np.abs(M).max()) or 1.0
    image = ax.imshow(M, cmap=cmap, vmin=-vmax, vmax=vmax)
    ax.grid(False)
    if annotate is None:
        annotate = M.size <= 64
    if annotate:
        for (i, j), v in np.ndenumerate(M):  # the text colour that reads on this cell's colour
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=MIN_FONT_SIZE,
                    color=text_colour_for(image.cmap(image.norm(v))))
    if title:
        ax.set_title(title)
    return ax


def show_images(images, titles=None, *, ncols: int | None = None, size: float = 1.8, cmap: str = "gray", symmetric: bool = False):
    """Show a list of 2D images in a row (or grid) with optional titles; returns the figure."""
    import matplotlib.pyplot as plt

    images = [to_numpy(im) for im in images]
    ncols = ncols or len(images)
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        im = images[k]
        if symmetric:
            vmax = float(np.abs(im).max()) or 1.0
            ax.imshow(im, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        else:
            ax.imshow(im, cmap=cmap)
        if titles is not None:
            ax.set_title(titles[k], fontsize=MIN_FONT_SIZE)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- training (notebook 08)


def plot_history(history, *, figsize=(7.0, 2.6)):
    """Loss (left) and accuracy (right) per epoch from a :class:`cnncourse.train.History`; returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=figsize)
    epochs = np.arange(1, len(history.loss) + 1)
    ax_loss.plot(epochs, history.loss, marker=".", label="train")
    if getattr(history, "val_loss", None):
        ax_loss.plot(epochs[: len(history.val_loss)], history.val_loss, marker=".", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, history.train_acc, marker=".", label="train")
    if history.val_acc:
        ax_acc.plot(epochs[: len(history.val_acc)], history.val_acc, marker=".", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    best = getattr(history, "best_epoch", None)
    for ax in (ax_loss, ax_acc):
        if best is not None:
            ax.axvline(best + 1, color="gray", linestyle=":", linewidth=1)
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_confusion(cm, class_names=None, *, ax=None, title: str = "confusion matrix"):
    """Confusion matrix (rows: true class, columns: predicted) with counts written in; returns the figure."""
    import matplotlib.pyplot as plt

    cm = to_numpy(cm)
    k = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if ax is None:  # cells wide enough for a three-digit count at MIN_FONT_SIZE
        fig, ax = plt.subplots(figsize=(0.32 * k + 1.6, 0.32 * k + 1.4))
    else:
        fig = ax.figure
    image = ax.imshow(cm, cmap="Blues")
    ax.grid(False)
    ax.set_xticks(range(k), names, fontsize=MIN_FONT_SIZE)
    ax.set_yticks(range(k), names, fontsize=MIN_FONT_SIZE)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=MIN_FONT_SIZE,
                    color=text_colour_for(image.cmap(image.norm(v))))
    fig.tight_layout()
    return fig


def show_filters(weights, *, ncols: int = 8, size: float = 0.8, title: str | None = None):
    """Grid of first-layer filters ``(F, C, KH, KW)`` (or a Conv2d / its Parameter); returns the figure.

    One-channel filters use a symmetric red-blue scale (zero = white); three
    channels are shown as colour images, rescaled to ``[0, 1]``.  For other
    channel counts the first channel is shown.
    """
    import matplotlib.pyplot as plt

    w = getattr(weights, "weight", weights)
    w = to_numpy(getattr(w, "value", w))
    if w.ndim != 4:
        raise ValueError(f"weights must have shape (F, C, KH, KW), got {w.shape}")
    F, C = w.shape[:2]
    ncols = min(ncols, F)
    nrows = int(np.ceil(F / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    vmax = float(np.abs(w).max()) or 1.0
    for f, ax in enumerate(axes.flat):
        ax.axis("off")
        if f >= F:
            continue
        if C == 3:
            rgb = w[f].transpose(1, 2, 0)
            ax.imshow((rgb - rgb.min()) / (np.ptp(rgb) or 1.0))
        else:
            ax.imshow(w[f, 0], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    if title:
        fig.suptitle(title, fontsize=max(9, MIN_FONT_SIZE))
    fig.tight_layout()
    return fig


def show_feature_maps(model, image, *, max_maps: int = 8, size: float | None = None):
    """Activations of one image after each Conv2d / ReLU / pooling layer of a Sequential model.

    One row per layer, up to ``max_maps`` channels each; the model runs in
    eval mode (its mode is restored).  ``image`` has shape ``(C, H, W)`` or
    ``(H, W)``.  ``size`` is the side of one map in inches (default: the
    figure stays at most 3 inches tall).  Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .backend import get_array_module
    from .nn import AvgPool2d, Conv2d, LeakyReLU, MaxPool2d, ReLU

    shown = (Conv2d, ReLU, LeakyReLU, MaxPool2d, AvgPool2d)
    params = list(model.parameters())
    xp = get_array_module(params[0].value) if params else np
    x = xp.asarray(image, dtype=params[0].dtype if params else np.float32)
    x = x.reshape((1, 1, *x.shape) if x.ndim == 2 else (1, *x.shape))
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    maps = []
    try:
        for k, layer in enumerate(getattr(model, "layers", [model])):
            x = layer(x)
            if isinstance(layer, shown) and x.ndim == 4:
                maps.append((f"{k}: {type(layer).__name__}", to_numpy(x[0, :max_maps])))
    finally:
        for m, mode in modes:
            m.training = mode
    if not maps:
        raise ValueError("the model has no Conv2d, ReLU or pooling layer with 4-D output to show")
    ncols = max(m.shape[0] for _, m in maps)
    size = size or min(0.9, 3.0 / len(maps))
    fig, axes = plt.subplots(len(maps), ncols, figsize=(size * ncols + 0.8, size * len(maps)), squeeze=False)
    for row, (name, fmap) in zip(axes, maps):
        for c, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < fmap.shape[0]:
                ax.imshow(fmap[c], cmap="gray")
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=MIN_FONT_SIZE)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- gradient flow (notebooks 09 and 10)
__all__ += ["plot_grad_norms"]


def plot_grad_norms(norms, *, ax=None, title: str | None = "gradient norm per layer", labels: bool = False):
    """Per-layer gradient norms on a log scale, input layer on the left.

    Args:
        norms: ``{layer name: norm}`` for one network (as returned by
            :func:`cnncourse.train.gradient_norms`), or ``{net label: {layer name: norm}}``
            to draw several networks as several lines.
        ax: axis to draw on (a new figure when None).
        title: axis title.
        labels: write the layer names under the x axis (else layer numbers 1, 2, ...).

    Returns:
        the axis.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.0, 2.6))[1]
    series = norms if norms and isinstance(next(iter(norms.values())), dict) else {None: norms}
    for label, layer_norms in series.items():
        values = np.asarray(list(layer_norms.values()), dtype=float)
        ax.semilogy(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    longest = max(series.values(), key=len)
    if labels:
        ax.set_xticks(np.arange(1, len(longest) + 1), list(longest), rotation=60, ha="right", fontsize=MIN_FONT_SIZE)
    ax.set(xlabel="layer (input → output)", ylabel="‖∂L/∂W‖")
    if title:
        ax.set_title(title)
    if len(series) > 1 or None not in series:
        ax.legend(loc="best")
    return ax
