"""Checks of notebook 09: pass the reference, fail plausible mistakes with the right cause."""
import numpy as np

from cnncourse import batchnorm, checks


def _forward(x, gamma, beta, eps=1e-5):
    return batchnorm.spatial_batchnorm_forward(x, gamma, beta, training=True, eps=eps)[0]


def _backward(dout, x, gamma, eps=1e-5):
    _, cache, _, _ = batchnorm.spatial_batchnorm_forward(x, gamma, np.zeros_like(gamma), training=True, eps=eps)
    return batchnorm.spatial_batchnorm_backward(dout, cache)


def test_forward_check():
    assert checks.check_spatial_batchnorm_train(_forward).passed

    def per_batch_only(x, gamma, beta, eps=1e-5):
        mu, var = x.mean(axis=0, keepdims=True), x.var(axis=0, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]

    assert "over (N,) only" in checks.check_spatial_batchnorm_train(per_batch_only).message

    def unbiased(x, gamma, beta, eps=1e-5):
        mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), ddof=1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]

    assert "unbiased" in checks.check_spatial_batchnorm_train(unbiased).message


def test_backward_check():
    assert checks.check_spatial_batchnorm_backward(_backward).passed

    def constant_stats(dout, x, gamma, eps=1e-5):
        dx, dg, db = _backward(dout, x, gamma, eps)
        inv_std = 1 / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
        return dout * gamma[:, None, None] * inv_std, dg, db

    assert "treated as constants" in checks.check_spatial_batchnorm_backward(constant_stats).message
