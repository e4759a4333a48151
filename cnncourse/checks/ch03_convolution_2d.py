"""Checks for notebook 03 (2D convolution and image filters)."""
from __future__ import annotations

import numpy as np

from .. import conv
from .core import Case, exercise, run_cases
from .probes import explain_errors

NOTEBOOK = "03_convolution_2d"


def _reference(x, w, pad=0, stride=1, dilation=1, *, pad_widths=None):
    """Zero-pad (``pad`` per side, or explicit ``pad_widths``) then valid cross-correlation."""
    xp = np.pad(x, pad if pad_widths is None else pad_widths)
    try:
        return conv.correlate2d(xp, w, mode="valid", stride=stride, dilation=dilation)
    except ValueError:  # a mistake that leaves no room for the kernel gives no comparable answer
        return None


def _cases_3_1():
    rng = np.random.default_rng(301)
    image = np.array([[1, .5, 1, 0], [0, .25, .5, 1], [1, .25, 0, 1], [.5, 0, 1, 1]])
    yield "the 4x4 image of notebook 03 with [[1, 0], [0, 2]]", image, np.array([[1.0, 0.0], [0.0, 2.0]]), {}
    yield "6x7 image, 3x3 kernel, pad=1", rng.normal(size=(6, 7)), rng.normal(size=(3, 3)), {"pad": 1}
    yield "7x7 image, 3x2 kernel, pad=2, stride=2", rng.normal(size=(7, 7)), rng.normal(size=(3, 2)), \
        {"pad": 2, "stride": 2}
    yield "9x8 image, 3x3 kernel, pad=1, dilation=2", rng.normal(size=(9, 8)), rng.normal(size=(3, 3)), \
        {"pad": 1, "dilation": 2}
    yield "10x9 image, 2x3 kernel, pad=1, stride=3, dilation=2", rng.normal(size=(10, 9)), rng.normal(size=(2, 3)), \
        {"pad": 1, "stride": 3, "dilation": 2}
    yield from random_cases_3_1(np.random.default_rng(3011), 3)


def random_cases_3_1(rng, count):
    """``count`` seeded random cases: image and kernel sizes, pad, stride and dilation all drawn."""
    made = 0
    while made < count:
        kh, kw = (int(v) for v in rng.integers(2, 5, size=2))
        pad, stride, dilation = int(rng.integers(0, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = (int(v) for v in rng.integers(4, 13, size=2))
        if dilation * (kh - 1) + 1 > h + 2 * pad or dilation * (kw - 1) + 1 > w + 2 * pad:
            continue  # no valid position: not a case
        made += 1
        yield (f"random case {made}: {h}x{w} image, {kh}x{kw} kernel, pad={pad}, stride={stride}, dilation={dilation}",
               rng.normal(size=(h, w)), rng.normal(size=(kh, kw)), {"pad": pad, "stride": stride, "dilation": dilation})


def _explain_3_1(err, args, kwargs) -> str | None:
    """A likely cause for an exception raised by a 3.1 answer."""
    dilation = kwargs.get("dilation", 1)
    text = str(err)
    if dilation > 1 and isinstance(err, (ValueError, IndexError)) and ("broadcast" in text or "index" in text):
        return ("the output size ignores the dilation: a dilated kernel spans d(k-1)+1 pixels, so "
                "OH = (H + 2p - d(KH-1) - 1) // s + 1; sized with KH alone, the last windows run off the "
                "padded image and come out smaller than the kernel")
    if isinstance(err, (ValueError, IndexError)) and "broadcast" in text:
        return ("a window and the kernel have different shapes: each window must be KH x KW taps, "
                "spaced `dilation` apart (slice with a step), and the output size must leave room for it")
    return None


@exercise("3.1", "correlate2d_padded", notebook=NOTEBOOK,
          forbidden=("cnncourse.conv.correlate2d", "cnncourse.conv.convolve2d"))
def check_correlate2d_padded(fn):
    """``fn(x, w, *, pad=0, stride=1, dilation=1)``: zero padding per side, then strided, dilated correlation."""
    cases = []
    for label, x, w, hyper in _cases_3_1():
        pad, stride, dilation = hyper.get("pad", 0), hyper.get("stride", 1), hyper.get("dilation", 1)
        mistakes = {
            "the kernel is flipped (that is true convolution; a CNN layer does not flip)":
                _reference(x, w[::-1, ::-1], pad, stride, dilation),
            "padding added on one side only: pad zeros go before AND after each axis (n + 2p)":
                _reference(x, w, 0, stride, dilation, pad_widths=((pad, 0), (pad, 0))),
            "padding added on one side only (after the image): pad zeros go before AND after each axis (n + 2p)":
                _reference(x, w, 0, stride, dilation, pad_widths=((0, pad), (0, pad))),
            "off-by-one padding: one zero too many on each side": _reference(x, w, pad + 1, stride, dilation),
            "off-by-one padding: one zero too few on each side": _reference(x, w, pad - 1, stride, dilation)
            if pad else None,
            "the stride is ignored: consecutive outputs must move the window `stride` pixels":
                _reference(x, w, pad, 1, dilation),
            "the dilation is ignored: kernel taps must be `dilation` pixels apart":
                _reference(x, w, pad, stride, 1),
            "dilation off by one: dilation d puts taps d pixels apart (d=1 means adjacent)":
                _reference(x, w, pad, stride, dilation + 1),
        }
        mistakes = {cause: answer for cause, answer in mistakes.items()
                    if answer is not None and cause is not None}
        cases.append(Case(label, (x, w), hyper, expected=_reference(x, w, pad, stride, dilation), mistakes=mistakes))
    return run_cases("3.1", "correlate2d_padded", explain_errors(fn, _explain_3_1), cases)
