"""Exercise 5.4: a convolution layer from the student's im2col and one matrix product (checked against PyTorch)."""
from __future__ import annotations

import numpy as np
import pytest

from cnncourse import checks
from cnncourse.im2col import im2col_cpu

torch = pytest.importorskip("torch")


def _layer(x, w, b, *, stride=1, pad=0, flip=False, wrong_w=False, no_bias=False, wrong_reshape=False):
    N, F = x.shape[0], w.shape[0]
    kh, kw = w.shape[2:]
    oh = (x.shape[2] + 2 * pad - kh) // stride + 1
    ow = (x.shape[3] + 2 * pad - kw) // stride + 1
    if flip:
        w = w[:, :, ::-1, ::-1]
    cols = im2col_cpu(x, kh, kw, stride=stride, pad=pad)
    w_mat = w.reshape(-1, F).T if wrong_w else w.reshape(F, -1)
    out = w_mat @ cols + (0 if no_bias else b[:, None])
    return out.reshape(N, F, ow, oh) if wrong_reshape else out.reshape(N, F, oh, ow)


def test_a_right_layer_passes_and_matches_torch():
    assert checks.check_conv_layer_im2col(_layer).passed
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    want = torch.nn.functional.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), stride=2, padding=1).numpy()
    np.testing.assert_allclose(_layer(x, w, b, stride=2, pad=1), want, rtol=1e-10)


@pytest.mark.parametrize("mistake, cause", [
    ({"no_bias": True}, "the bias is missing"),
    ({"wrong_w": True}, "the weights are flattened the wrong way"),
    ({"flip": True}, "the kernel is flipped"),
    ({"wrong_reshape": True}, "reshaped in the wrong order"),
])
def test_mistakes_are_named(mistake, cause):
    result = checks.check_conv_layer_im2col(lambda x, w, b, **kw: _layer(x, w, b, **kw, **mistake))
    assert not result.passed and cause in result.message, result.message


def test_registered_with_the_package_layers_forbidden():
    entry = checks.EXERCISES["5.4"]
    assert entry.function == "conv_layer_im2col" and entry.notebook == "05_fast_convolution"
    assert {"cnncourse.conv.conv_forward", "cnncourse.im2col.im2col"} <= set(entry.forbidden)
