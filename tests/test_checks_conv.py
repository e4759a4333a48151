"""Checks of notebooks 03-04: pass the reference, fail each plausible mistake with its likely cause."""
import math

import numpy as np
import pytest

from cnncourse import checks, conv, receptive
from cnncourse.checks.core import EXERCISES


def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --------------------------------------------------------------------------- 3.1


def _corr(x, w, pad=0, stride=1, dilation=1, widths=None):
    return conv.correlate2d(np.pad(x, pad if widths is None else widths), w, stride=stride, dilation=dilation)


def _loops(x, w, *, pad=0, stride=1, dilation=1):
    """What a student writes: pad, then one dot product per output pixel."""
    xp = np.pad(np.asarray(x, dtype=float), pad)
    kh, kw = w.shape
    oh = (xp.shape[0] - dilation * (kh - 1) - 1) // stride + 1
    ow = (xp.shape[1] - dilation * (kw - 1) - 1) // stride + 1
    z = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[i * stride: i * stride + dilation * (kh - 1) + 1: dilation,
                       j * stride: j * stride + dilation * (kw - 1) + 1: dilation]
            z[i, j] = np.sum(patch * w)
    return z


def test_correlate2d_padded_passes_reference_and_loops():
    assert checks.check_correlate2d_padded(lambda x, w, *, pad=0, stride=1, dilation=1:
                                           _corr(x, w, pad, stride, dilation)).passed
    assert checks.check_correlate2d_padded(_loops).passed
    assert checks.check_correlate2d_padded(_raise).status == "not attempted"


@pytest.mark.parametrize("wrong, cause", [
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w[::-1, ::-1], pad, stride, dilation), "flipped"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, pad + 1, stride, dilation), "one zero too many"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, max(pad - 1, 0), stride, dilation), "one zero too few"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, 0, stride, dilation, ((pad, 0), (pad, 0))),
     "one side only"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, 0, stride, dilation, ((0, pad), (0, pad))),
     "one side only (after"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, pad, 1, dilation), "stride is ignored"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, pad, stride, 1), "dilation is ignored"),
    (lambda x, w, *, pad=0, stride=1, dilation=1: _corr(x, w, pad, stride, dilation + 1), "dilation off by one"),
])
def test_correlate2d_padded_mistakes(wrong, cause):
    result = checks.check_correlate2d_padded(wrong)
    assert result.status == "failed"
    assert "likely cause: " in result.message and cause in result.message.split("likely cause:")[1]


def test_correlate2d_padded_wrong_output_size_is_reported():
    valid_only = checks.check_correlate2d_padded(lambda x, w, *, pad=0, stride=1, dilation=1:
                                                 _corr(x, w, pad, stride, dilation)[:-1])
    assert valid_only.status == "failed" and "wrong shape" in valid_only.message


# --------------------------------------------------------------------------- 4.1


def _layer(x, w, b, *, stride=1, pad=0):
    return conv.conv_forward(x, w, b, stride=stride, pad=pad)[0]


def _layer_loops(x, w, b, *, stride=1, pad=0):
    n_img, _, h, wd = x.shape
    f_count, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n_img, f_count, oh, ow))
    for n in range(n_img):
        for f in range(f_count):
            for i in range(oh):
                for j in range(ow):
                    block = xp[n, :, i * stride: i * stride + kh, j * stride: j * stride + kw]
                    out[n, f, i, j] = np.sum(block * w[f]) + b[f]
    return out


def test_conv_layer_forward_passes_reference_and_loops():
    assert checks.check_conv_layer_forward(_layer).passed
    assert checks.check_conv_layer_forward(_layer_loops).passed
    assert checks.check_conv_layer_forward(_raise).status == "not attempted"
    assert EXERCISES["4.1"].forbidden[0] == "cnncourse.conv.conv_forward"


def _pad_sides(x, before, after):
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


@pytest.mark.parametrize("wrong, cause", [
    (lambda x, w, b, *, stride=1, pad=0: _layer(x, w, None, stride=stride, pad=pad), "bias is missing"),
    (lambda x, w, b, *, stride=1, pad=0: _layer(x, w[:, :, ::-1, ::-1], b, stride=stride, pad=pad), "flipped"),
    (lambda x, w, b, *, stride=1, pad=0: _layer(_pad_sides(x, pad, 0), w, b, stride=stride), "one side only"),
    (lambda x, w, b, *, stride=1, pad=0: _layer(x, w, b, stride=stride, pad=pad + 1), "one zero too many"),
    (lambda x, w, b, *, stride=1, pad=0: _layer(x, w, b, stride=1, pad=pad), "stride is ignored"),
    (lambda x, w, b, *, stride=1, pad=0: _layer(x[:, :1], w[:, :1], b, stride=stride, pad=pad), "first input channel"),
])
def test_conv_layer_forward_mistakes(wrong, cause):
    result = checks.check_conv_layer_forward(wrong)
    assert result.status == "failed"
    assert cause in result.message.split("likely cause:")[1]


def test_conv_layer_forward_swapped_filter_axes():
    def swapped(x, w, b, *, stride=1, pad=0):
        if w.shape[0] != w.shape[1]:  # pass the cases where the swap would not even run
            return _layer(x, w, b, stride=stride, pad=pad)
        return _layer(x, w.transpose(1, 0, 2, 3), b, stride=stride, pad=pad)

    assert "w[c, f]" in checks.check_conv_layer_forward(swapped).message


def test_conv_layer_forward_returning_the_cache_is_reported():
    result = checks.check_conv_layer_forward(lambda x, w, b, *, stride=1, pad=0:
                                             conv.conv_forward(x, w, b, stride=stride, pad=pad))
    assert result.status == "failed"


# --------------------------------------------------------------------------- 4.2


def _student_table(input_shape, layers, *, mistake=None):
    """A student-style calculator with switchable mistakes (independent of layer_table's code)."""
    c, h, w = input_shape
    shape, rows = (c, h, w), []
    for spec in layers:
        if spec["type"] == "conv":
            k, s, p = spec["k"], spec.get("stride", 1), spec.get("pad", 0)
            if mistake == "stride ignored":
                s = 1
            padded = p if mistake == "pad once" else 2 * p
            size = (shape[1] + padded - k) // s + 1, (shape[2] + padded - k) // s + 1
            if mistake == "ceil":
                size = tuple(math.ceil((n + 2 * p - k) / s) + 1 for n in shape[1:])
            c_in = 1 if mistake == "no channels" else shape[0]
            bias = spec["filters"] if spec.get("bias", True) and mistake != "no bias" else 0
            rows.append(((spec["filters"], *size), spec["filters"] * c_in * k * k + bias))
        elif spec["type"] == "pool":
            k = spec["k"]
            s = spec.get("stride", 1 if mistake == "pool stride 1" else k)
            rows.append(((shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1), 0))
        elif spec["type"] == "dense":
            fan_in = math.prod(shape[1:]) if mistake == "no flatten" and len(shape) == 3 else math.prod(shape)
            bias = spec["units"] if spec.get("bias", True) and mistake != "no bias" else 0
            rows.append(((spec["units"],), fan_in * spec["units"] + bias))
        shape = rows[-1][0]
    return rows


def test_layer_shapes_passes_reference_and_student_version():
    assert checks.check_layer_shapes(receptive.layer_table).passed
    assert checks.check_layer_shapes(_student_table).passed
    assert checks.check_layer_shapes(lambda s, l: [[list(sh), p] for sh, p in _student_table(s, l)]).passed
    assert checks.check_layer_shapes(_raise).status == "not attempted"


@pytest.mark.parametrize("mistake, cause", [
    ("no bias", "biases are not counted"),
    ("no channels", "C x k x k"),
    ("pad once", "padding counted once"),
    ("stride ignored", "stride is ignored"),
    ("ceil", "rounding up"),
    ("pool stride 1", "moves by its own size"),
    ("no flatten", "flatten every channel"),
])
def test_layer_shapes_mistakes(mistake, cause):
    result = checks.check_layer_shapes(lambda s, l: _student_table(s, l, mistake=mistake))
    assert result.status == "failed"
    assert cause in result.message.split("likely cause:")[1], result.message


def test_layer_shapes_wrong_form_is_explained():
    short = checks.check_layer_shapes(lambda s, l: _student_table(s, l)[:-1] if len(l) > 1 else _student_table(s, l))
    assert "one (output_shape, n_params) pair per layer" in short.message
    flat = checks.check_layer_shapes(lambda s, l: [(math.prod(sh), p) for sh, p in _student_table(s, l)])
    assert "must be a tuple" in flat.message
    assert "expected a function" in checks.check_layer_shapes(42).message


# --------------------------------------------------------------------------- issue 21: causes and random cases


def _loops_sized_without_dilation(x, w, *, pad=0, stride=1, dilation=1):
    """3.1 with the output size computed as if dilation were 1 (a classic slip)."""
    xp = np.pad(np.asarray(x, dtype=float), pad)
    kh, kw = w.shape
    oh, ow = (xp.shape[0] - kh) // stride + 1, (xp.shape[1] - kw) // stride + 1
    z = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[i * stride: i * stride + dilation * (kh - 1) + 1: dilation,
                       j * stride: j * stride + dilation * (kw - 1) + 1: dilation]
            z[i, j] = np.sum(patch * w)
    return z


def test_correlate2d_padded_size_without_dilation_gets_a_cause():
    result = checks.check_correlate2d_padded(_loops_sized_without_dilation)
    assert result.status == "failed" and "dilation=2" in result.message
    assert "broadcast" in result.message                      # the student's own error is still shown
    assert "ignores the dilation" in result.message.split("likely cause:")[1]


def test_correlate2d_padded_error_hint_keeps_type_and_traceback():
    from cnncourse.checks.probes import explain_errors

    def boom(x, w, **kw):
        return np.ones((2, 3)) * np.ones((3, 2))

    wrapped = explain_errors(boom, lambda err, args, kwargs: "a cause")
    with pytest.raises(ValueError) as info:
        wrapped(1, 2)
    assert "likely cause: a cause" in str(info.value)
    assert any(frame.name == "boom" for frame in __import__("traceback").extract_tb(info.value.__traceback__))


def test_layer_checks_have_seeded_random_cases():
    from cnncourse.checks import ch03_convolution_2d as ch03, ch04_convolution_layers as ch04

    first = [label for label, *_ in ch03._cases_3_1()]
    assert first == [label for label, *_ in ch03._cases_3_1()]   # seeded: the same cases every run
    assert sum(label.startswith("random case") for label in first) == 3
    random_4_1 = [case for case in ch04._cases_4_1() if case[0].startswith("random case")]
    assert len(random_4_1) == 3
    # the random cases draw real variety: more than one stride, and some padding
    assert len({case[4]["stride"] for case in random_4_1}) > 1 or len({case[4]["pad"] for case in random_4_1}) > 1
    # an independent oracle agrees with the check's expected answers on the random cases
    scipy_signal = pytest.importorskip("scipy.signal")
    for label, x, w, hyper in ch03._cases_3_1():
        if label.startswith("random case"):
            p, s, d = hyper["pad"], hyper["stride"], hyper["dilation"]
            holes = np.zeros((d * (w.shape[0] - 1) + 1, d * (w.shape[1] - 1) + 1))
            holes[::d, ::d] = w
            oracle = scipy_signal.correlate2d(np.pad(x, p), holes, mode="valid")[::s, ::s]
            assert np.allclose(ch03._reference(x, w, p, s, d), oracle)


def test_random_cases_catch_a_stride_only_bug():
    """An answer right for stride 1 and 2 but wrong for stride 3 fails (the fixed cases alone had one stride-3 case)."""
    def stride_capped(x, w, *, pad=0, stride=1, dilation=1):
        return _corr(x, w, pad, min(stride, 2), dilation)

    assert checks.check_correlate2d_padded(stride_capped).status == "failed"


def test_conv_layer_forward_ignored_padding_is_named():
    result = checks.check_conv_layer_forward(lambda x, w, b, *, stride=1, pad=0: _layer(x, w, b, stride=stride, pad=0))
    assert result.status == "failed" and "padding is ignored" in result.message.split("likely cause:")[1]


def test_conv_layer_forward_padding_after_only_is_named():
    result = checks.check_conv_layer_forward(lambda x, w, b, *, stride=1, pad=0:
                                             _layer(_pad_sides(x, 0, pad), w, b, stride=stride))
    assert result.status == "failed" and "one side only (after" in result.message.split("likely cause:")[1]


def test_conv_layer_forward_random_cases_match_torch():
    torch = pytest.importorskip("torch")
    from cnncourse.checks import ch04_convolution_layers as ch04

    for label, x, w, b, hyper in ch04._cases_4_1():
        oracle = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                            stride=hyper.get("stride", 1), padding=hyper.get("pad", 0)).numpy()
        assert np.allclose(ch04._forward(x, w, b, hyper.get("stride", 1), hyper.get("pad", 0)), oracle), label


def test_layer_shapes_random_nets_are_seeded_and_checked_against_the_modules():
    from cnncourse.checks import ch04_convolution_layers as ch04

    nets = list(ch04.random_nets_4_2(np.random.default_rng(4021), 3))
    assert [n[2] for n in nets] == [n[2] for n in ch04.random_nets_4_2(np.random.default_rng(4021), 3)]
    assert len(nets) == 3 and all(n[2][-1]["type"] == "dense" for n in nets)
    # independent oracle: the test's own hand-written calculator agrees with layer_table
    for name, input_shape, layers in nets:
        table = receptive.layer_table(input_shape, layers)
        assert table == _student_table(input_shape, layers), name
    result = checks.check_layer_shapes(_student_table)
    assert result.passed and result.cases_total == 13 + 3
