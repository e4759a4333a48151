"""Checks for notebook 09 (normalisation and gradients)."""
from __future__ import annotations

import numpy as np

from .. import batchnorm
from .core import Case, exercise, run_cases

NOTEBOOK = "09_normalisation_and_gradients"


def _inputs(seed):
    rng = np.random.default_rng(seed)
    for shape in ((4, 3, 5, 5), (2, 5, 3, 4), (8, 2, 1, 1)):
        C = shape[1]
        yield f"x of shape {shape}", rng.normal(1.5, 2.0, size=shape), rng.normal(size=C), rng.normal(size=C), rng.normal(size=shape)


def _wrong_axes_forward(x, gamma, beta, axes, eps=1e-5):
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


@exercise("9.1", "spatial_batchnorm_train", notebook=NOTEBOOK, forbidden=("cnncourse.batchnorm.spatial_batchnorm_forward",))
def check_spatial_batchnorm_train(fn):
    """``fn(x, gamma, beta, eps=1e-5) -> out``: training-mode batch norm of (N, C, H, W), per channel."""
    cases = []
    for label, x, gamma, beta, _ in _inputs(901):
        out = batchnorm.spatial_batchnorm_forward(x, gamma, beta, training=True)[0]
        C = x.shape[1]
        unbiased = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), ddof=1, keepdims=True) + 1e-5)
        cases.append(Case(label, (x, gamma, beta), expected=out, mistakes={
            "statistics taken over (N,) only: for conv activations average over N, H and W per channel":
                _wrong_axes_forward(x, gamma, beta, (0,)),
            "statistics taken per sample over (C, H, W): that is layer norm, not batch norm":
                _wrong_axes_forward(x, gamma, beta, (1, 2, 3)),
            "the unbiased variance (ddof=1) is used for normalising; batch norm divides by the count":
                unbiased * gamma.reshape(1, C, 1, 1) + beta.reshape(1, C, 1, 1),
            "gamma and beta are not applied": _wrong_axes_forward(x, np.ones(C), np.zeros(C), (0, 2, 3)),
        }))
    return run_cases("9.1", "spatial_batchnorm_train", fn, cases)


@exercise("9.2", "spatial_batchnorm_backward", notebook=NOTEBOOK, forbidden=("cnncourse.batchnorm.spatial_batchnorm_backward",
                                                                           "cnncourse.batchnorm.batchnorm_backward"))
def check_spatial_batchnorm_backward(fn):
    """``fn(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)`` for training-mode spatial batch norm."""
    cases = []
    for label, x, gamma, beta, dout in _inputs(902):
        _, cache, _, _ = batchnorm.spatial_batchnorm_forward(x, gamma, beta, training=True)
        dx, dgamma, dbeta = batchnorm.spatial_batchnorm_backward(dout, cache)
        inv_std = cache["inv_std"]
        cases.append(Case(label, (dout, x, gamma), expected=(dx, dgamma, dbeta), mistakes={
            "mu and var are treated as constants: they depend on x too (two extra terms)":
                (dout * gamma.reshape(1, -1, 1, 1) * inv_std, dgamma, dbeta),
        }))
    return run_cases("9.2", "spatial_batchnorm_backward", fn, cases, rtol=1e-5, atol=1e-8)
