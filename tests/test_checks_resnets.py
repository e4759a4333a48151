"""Checks of notebook 10: pass a reference solution, fail each plausible mistake with its likely cause.

The wrong answers are written the way a student would write them (whole
functions), not taken from the check module.
"""
import numpy as np
import pytest

from cnncourse import activations, checks, conv


def _conv(x, w):
    return conv.conv_forward(x, w, None, pad=1)[0]


def _relu(v):
    return np.maximum(v, 0)


def forward(x, w1, w2):
    return _relu(_conv(_relu(_conv(x, w1)), w2) + x)


def forward_relu_before_add(x, w1, w2):
    return _relu(_conv(_relu(_conv(x, w1)), w2)) + x


def forward_no_final_relu(x, w1, w2):
    return _conv(_relu(_conv(x, w1)), w2) + x


def forward_no_shortcut(x, w1, w2):
    return _relu(_conv(_relu(_conv(x, w1)), w2))


def _backward(dout, x, w1, w2, *, shortcut=True, final_mask=True):
    a, c1 = conv.conv_forward(x, w1, None, pad=1)
    h, r1 = activations.relu_forward(a)
    m, c2 = conv.conv_forward(h, w2, None, pad=1)
    dsum = dout * ((m + x) > 0) if final_mask else dout
    dh, dw2, _ = conv.conv_backward(dsum, c2)
    dx, dw1, _ = conv.conv_backward(activations.relu_backward(dh, r1), c1)
    return (dx + dsum if shortcut else dx), dw1, dw2


def backward(dout, x, w1, w2):
    return _backward(dout, x, w1, w2)


def test_forward_reference_passes():
    result = checks.check_residual_block_forward_exercise(forward)
    assert result.passed, result.message
    assert result.message.startswith("✔ Exercise 10.1")


@pytest.mark.parametrize("wrong, cause", [
    (forward_relu_before_add, "*before* the addition"),
    (forward_no_final_relu, "final ReLU is missing"),
    (forward_no_shortcut, "shortcut is missing"),
])
def test_forward_mistakes_are_named(wrong, cause):
    result = checks.check_residual_block_forward_exercise(wrong)
    assert not result.passed
    assert cause in result.message, result.message


def test_backward_reference_passes():
    result = checks.check_residual_block_backward_exercise(backward)
    assert result.passed, result.message


@pytest.mark.parametrize("options, cause", [
    (dict(shortcut=False), "shortcut's gradient is missing"),
    (dict(final_mask=False), "final ReLU's mask is ignored"),
])
def test_backward_mistakes_are_named(options, cause):
    result = checks.check_residual_block_backward_exercise(lambda *a: _backward(*a, **options))
    assert not result.passed
    assert cause in result.message, result.message


def test_unattempted_exercises_are_reported_not_raised():
    def todo(*args):
        raise NotImplementedError("Exercise 10.1")

    assert checks.check_residual_block_forward_exercise(todo).status == "not attempted"
    assert checks.check_residual_block_backward_exercise(todo).status == "not attempted"


def test_registered_with_notebook_10():
    assert checks.EXERCISES["10.1"].notebook == "10_resnets"
    assert checks.EXERCISES["10.2"].function == "residual_block_backward_exercise"
