"""cnncourse: the helper package of an open course on convolutional networks.

Submodules load on first use (``cc.conv``, ``cc.plotting`` ...), so
``import cnncourse as cc`` stays fast and never needs a GPU, CuPy or
matplotlib.
"""
from __future__ import annotations

import importlib

from .backend import HAS_CUPY, backend_name, get_array_module, to_device, to_numpy  # noqa: F401

__version__ = "0.1.0"

_SUBMODULES = {
    "backend", "signal", "filters", "conv", "fastconv", "im2col", "pool", "activations", "linear", "dropout",
    "batchnorm", "residual", "losses", "nn", "optim", "gradcheck", "models", "train", "data",
    "plotting", "widgets", "checks", "grading", "kernels", "cli", "gpu_benchmark", "threads", "layout", "transposed", "causal", "receptive",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cnncourse' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
