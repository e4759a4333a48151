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


def _eps_outside(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    sd = x.std(axis=(0, 2, 3), keepdims=True)
    return (x - mu) / (sd + eps) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


def _backward_written_out(dout, x, gamma, eps=1e-5, *, use_gamma=True, sigma_sign=1.0, mu_path=True,
                          sigma_path=True, param_axes=(0, 2, 3)):
    """Batch-norm backward term by term, with switches for the classic mistakes (defaults: right).

    dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)): the direct path, the path
    through mu, the path through sigma (means per channel over N, H, W).
    """
    axes = (0, 2, 3)
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv_std
    dxhat = dout * gamma.reshape(1, -1, 1, 1) if use_gamma else dout
    dx = dxhat.copy()
    if mu_path:
        dx = dx - dxhat.mean(axis=axes, keepdims=True)
    if sigma_path:
        dx = dx - sigma_sign * xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
    return dx * inv_std, (dout * xhat).sum(axis=param_axes), dout.sum(axis=param_axes)


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
            "statistics taken per image and channel over (H, W): that is instance norm; batch norm pools "
            "each channel over the whole batch too, axis=(0, 2, 3)": _wrong_axes_forward(x, gamma, beta, (2, 3)),
            "eps is added outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps":
                _eps_outside(x, gamma, beta),
            "gamma and beta are swapped: out = gamma * xhat + beta": _wrong_axes_forward(x, beta, gamma, (0, 2, 3)),
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
            "gamma is forgotten in dx: the gradient reaching xhat is dout * gamma (out = gamma * xhat + beta)":
                _backward_written_out(dout, x, gamma, use_gamma=False),
            "sign error on the path through sigma: d var / d x pulls the other way, the term is "
            "- xhat * mean(dxhat * xhat), subtracted like the mean's term":
                _backward_written_out(dout, x, gamma, sigma_sign=-1.0),
            "the path through sigma is missing (mu's term is there): var depends on x too":
                _backward_written_out(dout, x, gamma, sigma_path=False),
            "the path through mu is missing (sigma's term is there): mu depends on x too":
                _backward_written_out(dout, x, gamma, mu_path=False),
            "dgamma and dbeta summed over N only: one value per channel, summed over N, H and W":
                _backward_written_out(dout, x, gamma, param_axes=0),
        }))
    return run_cases("9.2", "spatial_batchnorm_backward", fn, cases, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- 9.3 · layer norm


def _layernorm(x, gamma, beta, eps=1e-5, *, axes=None, ddof=0, eps_outside=False):
    """Layer norm written out, with switches for the classic mistakes (defaults: right)."""
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, ddof=ddof, keepdims=True)
    xhat = (x - mu) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
    return xhat * gamma + beta


@exercise("9.3", "layernorm_forward_exercise", notebook=NOTEBOOK, forbidden=("cnncourse.batchnorm.layernorm_forward",
                                                                           "cnncourse.batchnorm.groupnorm_forward"))
def check_layernorm_forward_exercise(fn):
    """``fn(x, gamma, beta, eps=1e-5) -> out``: each sample of (N, ...) standardised over all its features.

    gamma and beta have the shape of one sample, ``x.shape[1:]`` (as ``torch.nn.LayerNorm``).
    """
    rng = np.random.default_rng(903)
    cases = []
    for shape in ((4, 6), (3, 2, 4, 5), (5, 3)):
        x = rng.normal(0.7, 2.0, size=shape) + rng.normal(size=(shape[0],) + (1,) * (len(shape) - 1))
        gamma, beta = rng.normal(size=shape[1:]), rng.normal(size=shape[1:])
        out = batchnorm.layernorm_forward(x, gamma, beta)[0]
        mistakes = {
            "statistics taken over the batch (axis 0): that is batch norm; layer norm standardises each sample "
            "over its own features": _layernorm(x, gamma, beta, axes=(0,)),
            "the unbiased variance (ddof=1) is used; normalise with the plain mean of squares (ddof=0)":
                _layernorm(x, gamma, beta, ddof=1),
            "eps is added outside the square root: divide by sqrt(var + eps)":
                _layernorm(x, gamma, beta, eps_outside=True),
            "gamma and beta are not applied": _layernorm(x, np.ones(shape[1:]), np.zeros(shape[1:])),
        }
        if len(shape) > 2:
            mistakes["statistics taken over axis 1 only: for a sample of shape (C, H, W) layer norm uses all "
                     "of C, H and W, axis=tuple(range(1, x.ndim))"] = _layernorm(x, gamma, beta, axes=(1,))
            mistakes["statistics taken per channel over (H, W): that is instance norm, not layer norm"] = (
                _layernorm(x, gamma, beta, axes=(2, 3)))
        cases.append(Case(f"x of shape {shape}, gamma and beta of shape {shape[1:]}", (x, gamma, beta),
                          expected=out, mistakes=mistakes))
    return run_cases("9.3", "layernorm_forward_exercise", fn, cases)


def _layernorm_backward(dout, x, gamma, eps=1e-5, *, axes=None, use_gamma=True, constants=False, param_axes=0):
    """Layer-norm gradients written out, with switches for the classic mistakes (defaults: right)."""
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv_std
    dxhat = dout * gamma if use_gamma else dout
    if constants:
        dx = dxhat * inv_std
    else:
        dx = inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    return dx, (dout * xhat).sum(axis=param_axes), dout.sum(axis=param_axes)


@exercise("9.4", "layernorm_backward_exercise", notebook=NOTEBOOK, forbidden=("cnncourse.batchnorm.layernorm_backward",
                                                                            "cnncourse.batchnorm.groupnorm_backward"))
def check_layernorm_backward_exercise(fn):
    """``fn(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)`` for the layer norm of exercise 9.3."""
    rng = np.random.default_rng(904)
    cases = []
    for shape in ((4, 6), (3, 2, 4, 5), (5, 3)):
        x = rng.normal(0.7, 2.0, size=shape)
        gamma, beta, dout = rng.normal(size=shape[1:]), rng.normal(size=shape[1:]), rng.normal(size=shape)
        _, cache = batchnorm.layernorm_forward(x, gamma, beta)
        expected = batchnorm.layernorm_backward(dout, cache)
        cases.append(Case(f"x of shape {shape}, gamma of shape {shape[1:]}", (dout, x, gamma), expected=expected, mistakes={
            "the batch norm gradient (means over axis 0): layer norm's mean and variance are per sample, so the "
            "two extra terms average over each sample's features": _layernorm_backward(dout, x, gamma, axes=(0,)),
            "mu and var are treated as constants: they depend on x too (two extra terms)":
                _layernorm_backward(dout, x, gamma, constants=True),
            "gamma is forgotten in dx: the gradient reaching xhat is dout * gamma":
                _layernorm_backward(dout, x, gamma, use_gamma=False),
            "dgamma and dbeta summed over the features instead of the batch: they have the shape of one sample, "
            "summed over N": _layernorm_backward(dout, x, gamma, param_axes=tuple(range(1, x.ndim))),
        }))
    return run_cases("9.4", "layernorm_backward_exercise", fn, cases, rtol=1e-5, atol=1e-8)
