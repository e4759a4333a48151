"""Small, consistent figures for the notebooks.

Nothing here changes matplotlib's global state on import; notebooks call
:func:`notebook_style` once in their set-up cell.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

__all__ = ["notebook_style", "plot_signals", "show_matrix", "show_images"]


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
    ax.imshow(M, cmap=cmap, vmin=-vmax, vmax=vmax)
    ax.grid(False)
    if annotate is None:
        annotate = M.size <= 64
    if annotate:
        for (i, j), v in np.ndenumerate(M):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7)
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
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig
