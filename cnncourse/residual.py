"""The residual block of a ResNet, composed from existing forward/backward pairs.

    main path:  conv3x3(stride s) -> BN -> ReLU -> conv3x3 -> BN
    shortcut:   identity, or conv1x1(stride s) -> BN when the shape changes
    out = ReLU(main + shortcut)

If the best thing a block can do is nothing, it only has to drive its main
path to zero (weights towards 0), which is far easier than making a stack of
plain layers learn the identity.  And the gradient reaches earlier layers
through the ``+ shortcut`` unchanged, however deep the net.

Batch-norm running statistics are passed in and returned explicitly: a tuple
of ``(mean, var)`` pairs, one per BN layer (2, or 3 with a projection).
"""
from __future__ import annotations

from .activations import relu_backward, relu_forward
from .batchnorm import spatial_batchnorm_backward, spatial_batchnorm_forward
from .conv import conv_backward, conv_forward

__all__ = ["residual_block_forward", "residual_block_backward"]


def _conv_bn(x, w, gamma, beta, stats, *, stride, pad, training, momentum, eps):
    y, conv_cache = conv_forward(x, w, None, stride=stride, pad=pad)
    mean, var = stats if stats is not None else (None, None)
    z, bn_cache, new_mean, new_var = spatial_batchnorm_forward(
        y, gamma, beta, training=training, running_mean=mean, running_var=var, momentum=momentum, eps=eps)
    return z, (conv_cache, bn_cache), (new_mean, new_var)


def _conv_bn_backward(dz, cache):
    conv_cache, bn_cache = cache
    dy, dgamma, dbeta = spatial_batchnorm_backward(dz, bn_cache)
    dx, dw, _ = conv_backward(dy, conv_cache)
    return dx, dw, dgamma, dbeta


def residual_block_forward(x, w1, gamma1, beta1, w2, gamma2, beta2, w_proj=None, gamma_proj=None, beta_proj=None,
                           *, stride: int = 1, training: bool, running_stats=None, momentum: float = 0.1, eps: float = 1e-5):
    """Forward pass of a basic residual block.

    Args:
        x: ``(N, C, H, W)``.
        w1: ``(F, C, 3, 3)``; w2: ``(F, F, 3, 3)``; gamma*/beta*: ``(F,)``.
        w_proj: ``(F, C, 1, 1)`` for the projection shortcut, needed when ``C != F`` or ``stride != 1``.
        running_stats: None, or a tuple of (mean, var) pairs for BN1, BN2 (and the projection's BN).

    Returns:
        (out ``(N, F, H', W')``, cache, new running_stats).
    """
    needs_projection = x.shape[1] != w1.shape[0] or stride != 1
    if needs_projection and w_proj is None:
        raise ValueError(
            f"the shortcut must change shape (C={x.shape[1]} -> F={w1.shape[0]}, stride={stride}): pass a 1x1 projection w_proj")
    n_bn = 3 if w_proj is not None else 2
    stats = running_stats if running_stats is not None else (None,) * n_bn
    if len(stats) != n_bn:
        raise ValueError(f"running_stats must hold {n_bn} (mean, var) pairs, got {len(stats)}")
    common = dict(training=training, momentum=momentum, eps=eps)
    a, cache1, new1 = _conv_bn(x, w1, gamma1, beta1, stats[0], stride=stride, pad=1, **common)
    h, relu1_cache = relu_forward(a)
    main, cache2, new2 = _conv_bn(h, w2, gamma2, beta2, stats[1], stride=1, pad=1, **common)
    if w_proj is not None:
        shortcut, cache_proj, new_proj = _conv_bn(x, w_proj, gamma_proj, beta_proj, stats[2], stride=stride, pad=0, **common)
        new_stats = (new1, new2, new_proj)
    else:
        shortcut, cache_proj, new_stats = x, None, (new1, new2)
    out, relu_out_cache = relu_forward(main + shortcut)
    return out, (cache1, relu1_cache, cache2, cache_proj, relu_out_cache), new_stats


def residual_block_backward(dout, cache):
    """Gradients of :func:`residual_block_forward`, one per array input, in the same order.

    Returns:
        ``(dx, dw1, dgamma1, dbeta1, dw2, dgamma2, dbeta2)`` plus
        ``(dw_proj, dgamma_proj, dbeta_proj)`` when the block has a projection.
    """
    cache1, relu1_cache, cache2, cache_proj, relu_out_cache = cache
    dsum = relu_backward(dout, relu_out_cache)
    # The sum sends the same gradient down both paths.
    dh, dw2, dgamma2, dbeta2 = _conv_bn_backward(dsum, cache2)
    da = relu_backward(dh, relu1_cache)
    dx, dw1, dgamma1, dbeta1 = _conv_bn_backward(da, cache1)
    grads = [dx, dw1, dgamma1, dbeta1, dw2, dgamma2, dbeta2]
    if cache_proj is None:
        grads[0] = dx + dsum
    else:
        dx_short, dw_p, dgamma_p, dbeta_p = _conv_bn_backward(dsum, cache_proj)
        grads[0] = dx + dx_short
        grads += [dw_p, dgamma_p, dbeta_p]
    return tuple(grads)
