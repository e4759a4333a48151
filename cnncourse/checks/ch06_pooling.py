"""Checks for notebook 06 (nonlinearity and pooling)."""
from __future__ import annotations

import numpy as np

from .. import pool
from .core import Case, exercise, run_cases

NOTEBOOK = "06_pooling_and_nonlinearity"

#: The lecture-notes example (Edinburgh): a 4x4 map pooled with k = 2 and k = 4.
NOTES_MAP = np.array([[1, 5, 3, 2], [0, 2, 1, 1], [4, 4, 6, 35], [4, 4, 6, 17]], dtype=float)


def _pool_cases():
    """(label, x, size, stride); ``stride=None`` means "call without it" (default: stride = size)."""
    rng = np.random.default_rng(601)
    yield "the notes' 4x4 map as (1, 1, 4, 4), size=2", NOTES_MAP[None, None], 2, None
    yield "x (2, 3, 6, 6), size=2", rng.normal(size=(2, 3, 6, 6)), 2, None
    yield "x (2, 3, 5, 7), size=2 (rows/columns left over)", rng.normal(size=(2, 3, 5, 7)), 2, None
    yield "x (1, 2, 7, 7), size=3, stride=2 (overlapping windows)", rng.normal(size=(1, 2, 7, 7)), 3, 2
    yield "x (2, 2, 9, 8), size=2, stride=3 (gaps between windows)", rng.normal(size=(2, 2, 9, 8)), 2, 3
    yield "the notes' 4x4 map, size=4 (one window)", NOTES_MAP[None, None], 4, None


def _pool_any(x, size, stride, reduce):
    """Plain pooling of (N, C, H, W) with floor output size; ``reduce`` acts on axes (-2, -1) of windows."""
    n, c, h, w = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.empty((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            out[:, :, oy, ox] = reduce(x[:, :, oy * stride : oy * stride + size, ox * stride : ox * stride + size])
    return out


def _ceil_pool(x, size, stride, kind):
    """Output size rounded up: the last windows hang over the edge and use what is there."""
    n, c, h, w = x.shape
    oh, ow = -(-(h - size) // stride) + 1, -(-(w - size) // stride) + 1
    oh, ow = oh - ((oh - 1) * stride >= h), ow - ((ow - 1) * stride >= w)  # a window must start inside
    out = np.empty((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            win = x[:, :, oy * stride : oy * stride + size, ox * stride : ox * stride + size]
            out[:, :, oy, ox] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def _mistakes(x, size, stride, kind, ref):
    """Likely cause -> the answer that mistake gives."""
    s = size if stride is None else stride
    red = (lambda win: win.max(axis=(-2, -1))) if kind == "max" else (lambda win: win.mean(axis=(-2, -1)))
    # Pooling across channels: every channel gets the max/mean over all channels of the window.
    whole = (lambda win: win.max(axis=(1, 2, 3))) if kind == "max" else (lambda win: win.mean(axis=(1, 2, 3)))
    n, c, h, w = x.shape
    oh, ow = (h - size) // s + 1, (w - size) // s + 1
    pooled_all = np.empty((n, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            pooled_all[:, oy, ox] = whole(x[:, :, oy * s : oy * s + size, ox * s : ox * s + size])
    mistakes = {
        "pooling across channels: each channel must be pooled on its own (reduce over the window's "
        "rows and columns only, axis=(-2, -1), never over C)": np.repeat(pooled_all[:, None], c, axis=1),
        "the windows overlap: they must step by `stride` pixels (stride=None means stride = size), not by 1":
            _pool_any(x, size, 1, red) if s != 1 else None,
        "the stride is ignored: windows step by `size`, but this call asked for a different stride":
            _pool_any(x, size, size, red) if s != size else None,
        "wrong output size: OH = floor((H - size) / stride) + 1 rounds down; the partial windows at the "
        "edge must be dropped, not pooled (ceil)": _ceil_pool(x, size, s, kind),
        "the window is one pixel too small: rows oy*stride .. oy*stride + size - 1 are size pixels, so the "
        "slice ends at oy*stride + size": _pool_any(x, size - 1, s, red)[:, :, : ref.shape[2], : ref.shape[3]]
        if size > 1 else None,
    }
    if kind == "avg":
        mistakes["the average is over a window of the wrong size: divide the window's sum by size*size, "
                 "not by size"] = ref * size
        mistakes["the average is over a window of the wrong size: divide by size*size, not by "
                 "stride*stride"] = ref * size * size / (s * s) if s != size else None
    return {k: v for k, v in mistakes.items() if v is not None}


def _check_pool(number, name, fn, kind):
    forward = pool.max_pool_forward if kind == "max" else pool.avg_pool_forward
    cases = []
    for label, x, size, stride in _pool_cases():
        ref = forward(x, size=size, stride=stride)[0]
        kwargs = {"size": size} if stride is None else {"size": size, "stride": stride}
        cases.append(Case(label, (x,), kwargs, expected=ref, mistakes=_mistakes(x, size, stride, kind, ref)))
    return run_cases(number, name, fn, cases)


@exercise("6.1", "max_pool_exercise", notebook=NOTEBOOK, forbidden=("cnncourse.pool.max_pool_forward",))
def check_max_pool_exercise(fn):
    """``fn(x, size=2, stride=None)``: max pooling of (N, C, H, W), channel by channel, floor output size."""
    return _check_pool("6.1", "max_pool_exercise", fn, "max")


@exercise("6.2", "avg_pool_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.pool.avg_pool_forward", "cnncourse.pool.global_avg_pool_forward"))
def check_avg_pool_exercise(fn):
    """``fn(x, size=2, stride=None)``: average pooling of (N, C, H, W), channel by channel, floor output size."""
    return _check_pool("6.2", "avg_pool_exercise", fn, "avg")
