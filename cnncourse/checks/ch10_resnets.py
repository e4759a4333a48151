"""Checks for notebook 10 (ResNets): a residual block without batch norm, forward and backward.

The block is ``out = ReLU(conv(ReLU(conv(x, w1)), w2) + x)``, both convolutions
3x3 with padding 1, stride 1 and no bias, so the shortcut is the identity.
Expected answers are composed from :mod:`cnncourse.conv` and
:mod:`cnncourse.activations`.
"""
from __future__ import annotations

import numpy as np

from .. import activations, conv
from .core import Case, exercise, run_cases

NOTEBOOK = "10_resnets"


def _main_path(x, w1, w2):
    """(main path output before the addition, caches) of the simplified block."""
    a, conv1 = conv.conv_forward(x, w1, None, pad=1)
    h, relu1 = activations.relu_forward(a)
    m, conv2 = conv.conv_forward(h, w2, None, pad=1)
    return m, (conv1, relu1, conv2)


def _relu(v):
    return np.maximum(v, 0)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    for N, C, H, W in ((2, 3, 5, 5), (1, 2, 4, 6), (3, 4, 3, 3)):
        x = rng.normal(size=(N, C, H, W))
        # Filters scaled so that the main path and the shortcut are of similar size: both matter.
        w1 = rng.normal(size=(C, C, 3, 3)) / np.sqrt(9 * C)
        w2 = rng.normal(size=(C, C, 3, 3)) / np.sqrt(9 * C)
        yield f"x of shape {(N, C, H, W)}, w1 and w2 of shape {(C, C, 3, 3)}", x, w1, w2, rng.normal(size=(N, C, H, W))


@exercise("10.1", "residual_block_forward_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.residual.residual_block_forward",))
def check_residual_block_forward_exercise(fn):
    """``fn(x, w1, w2) -> out = relu(conv3x3(relu(conv3x3(x, w1)), w2) + x)`` (pad 1, no bias)."""
    cases = []
    for label, x, w1, w2, _ in _inputs(1001):
        m, _ = _main_path(x, w1, w2)
        h_no_relu = conv.conv_forward(conv.conv_forward(x, w1, None, pad=1)[0], w2, None, pad=1)[0]
        cases.append(Case(label, (x, w1, w2), expected=_relu(m + x), mistakes={
            "the ReLU is applied to the main path *before* the addition: the block's last ReLU "
            "comes after adding the shortcut, out = relu(F(x) + x)": _relu(m) + x,
            "the final ReLU is missing: out = relu(F(x) + x), not F(x) + x": m + x,
            "the shortcut is missing: a residual block adds its input x to the main path": _relu(m),
            "the ReLU between the two convolutions is missing": _relu(h_no_relu + x),
        }))
    return run_cases("10.1", "residual_block_forward_exercise", fn, cases)


def _reference_backward(dout, x, w1, w2):
    """Gradients of the simplified block, plus the pieces the mistakes are built from."""
    m, (conv1, relu1, conv2) = _main_path(x, w1, w2)
    mask = (m + x) > 0

    def through_main(dsum):
        dh, dw2, _ = conv.conv_backward(dsum, conv2)
        da = activations.relu_backward(dh, relu1)
        dx_main, dw1, _ = conv.conv_backward(da, conv1)
        return dx_main, dw1, dw2

    dsum = dout * mask
    dx_main, dw1, dw2 = through_main(dsum)
    return (dx_main + dsum, dw1, dw2), (dx_main, dsum, through_main)


def _written_out_backward(dout, x, w1, w2, *, inner_mask=True, flip=True):
    """The block's backward with switches for two classic mistakes (defaults: right).

    ``inner_mask=False`` forgets the ReLU between the convolutions; ``flip=False`` sends the
    gradient back through each convolution by correlating with the *unflipped* kernel, where
    the input gradient of a correlation is a full convolution (a flipped kernel).
    """
    m, (conv1, relu1, conv2) = _main_path(x, w1, w2)
    dsum = dout * ((m + x) > 0)

    def back(d, cache, w):
        dinput, dw, _ = conv.conv_backward(d, cache)
        if not flip:
            wrong_cache = conv.conv_forward(cache.x, w[:, :, ::-1, ::-1].copy(), None, pad=1)[1]
            dinput = conv.conv_backward(d, wrong_cache)[0]
        return dinput, dw

    dh, dw2 = back(dsum, conv2, w2)
    da = activations.relu_backward(dh, relu1) if inner_mask else dh
    dx_main, dw1 = back(da, conv1, w1)
    return dx_main + dsum, dw1, dw2


@exercise("10.2", "residual_block_backward_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.residual.residual_block_backward",))
def check_residual_block_backward_exercise(fn):
    """``fn(dout, x, w1, w2) -> (dx, dw1, dw2)`` for the block of exercise 10.1."""
    cases = []
    for label, x, w1, w2, dout in _inputs(1002):
        (dx, dw1, dw2), (dx_main, dsum, through_main) = _reference_backward(dout, x, w1, w2)
        dx_nomask, dw1_nomask, dw2_nomask = through_main(dout)
        cases.append(Case(label, (dout, x, w1, w2), expected=(dx, dw1, dw2), mistakes={
            "the shortcut's gradient is missing from dx: the sum sends its gradient down both paths, "
            "so dx = (gradient through the convolutions) + (gradient through the identity)": (dx_main, dw1, dw2),
            "the final ReLU's mask is ignored: multiply dout by (F(x) + x > 0) before splitting it "
            "between the two paths": (dx_nomask + dout, dw1_nomask, dw2_nomask),
            "the final ReLU's mask is applied to the main path only: the shortcut's gradient "
            "passes through that ReLU too": (dx_main + dout, dw1, dw2),
            "the inner ReLU's mask is forgotten: between the convolutions the gradient passes only where "
            "conv(x, w1) > 0 (multiply by that mask before the first convolution's backward)":
                _written_out_backward(dout, x, w1, w2, inner_mask=False),
            "the kernel is not flipped in the input gradient: the gradient of a correlation with w is a "
            "*full convolution* with w (a correlation with w flipped in both spatial axes and the "
            "filter bank transposed)": _written_out_backward(dout, x, w1, w2, flip=False),
        }))
    return run_cases("10.2", "residual_block_backward_exercise", fn, cases)
