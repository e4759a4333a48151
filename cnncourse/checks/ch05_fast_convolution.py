"""Checks for notebook 05 (fast convolution: im2col, FFT, GPU)."""
from __future__ import annotations

import numpy as np

from .. import signal
from ..im2col import im2col
from ..kernels.simulate import launch
from .core import Case, exercise, run_cases

NOTEBOOK = "05_fast_convolution"


# ----------------------------------------------------------------------------- 5.1 im2col


def _im2col_cases():
    """(label, x, kh, kw, stride, pad); ``None`` stride/pad means "use the default"."""
    rng = np.random.default_rng(501)
    yield "x (1, 1, 4, 4) = 0..15, 3x3 kernel, defaults", np.arange(16.0).reshape(1, 1, 4, 4), 3, 3, None, None
    yield "x (2, 3, 5, 6), 3x2 kernel, stride=1, pad=1", rng.normal(size=(2, 3, 5, 6)), 3, 2, 1, 1
    yield "x (1, 2, 7, 7), 3x3 kernel, stride=2, pad=0", rng.normal(size=(1, 2, 7, 7)), 3, 3, 2, 0
    yield "x (2, 2, 6, 5), 2x3 kernel, stride=2, pad=1", rng.normal(size=(2, 2, 6, 5)), 2, 3, 2, 1
    yield "x (1, 4, 3, 3), 1x1 kernel, stride=1, pad=0", rng.normal(size=(1, 4, 3, 3)), 1, 1, 1, 0


def _reorder_rows(cols, c, kh, kw, order):
    """Rows of ``cols`` regrouped: ``order`` is a permutation of the axes (c, i, j)."""
    n, _, p = cols.shape
    return cols.reshape(n, c, kh, kw, p).transpose(0, *(1 + a for a in order), 4).reshape(n, c * kh * kw, p)


@exercise("5.1", "im2col_exercise", notebook=NOTEBOOK,
          forbidden=("cnncourse.im2col.im2col", "cnncourse.im2col.im2col_cpu"))
def check_im2col_exercise(fn):
    """``fn(x, kh, kw, *, stride=1, pad=0)``: columns ``(N, C*KH*KW, OH*OW)`` in the package's layout."""
    cases = []
    for label, x, kh, kw, stride, pad in _im2col_cases():
        s, p = stride or 1, pad or 0
        ref = im2col(x, kh, kw, stride=s, pad=p)
        c = x.shape[1]
        oh = (x.shape[2] + 2 * p - kh) // s + 1
        ow = (x.shape[3] + 2 * p - kw) // s + 1
        by_pixel = ref.reshape(x.shape[0], -1, oh, ow).transpose(0, 1, 3, 2).reshape(ref.shape)
        kwargs = {} if stride is None else {"stride": stride, "pad": pad}
        cases.append(Case(label, (x, kh, kw), kwargs, expected=ref, mistakes={
            "the padding is ignored: pad the input with `pad` zeros on each side first (np.pad)":
                im2col(x, kh, kw, stride=s, pad=0),
            "the stride is ignored: output pixel (oy, ox) starts at row oy*stride, column ox*stride":
                im2col(x, kh, kw, stride=1, pad=p),
            "the layout is transposed: the package wants (N, C*KH*KW, OH*OW), one column per output pixel, "
            "not one row per output pixel": ref.transpose(0, 2, 1),
            "wrong tap order inside the kernel: rows must run (c, i, j) with j (the column) fastest, like "
            "w.reshape(F, -1); you have i fastest (column-major)": _reorder_rows(ref, c, kh, kw, (0, 2, 1)),
            "wrong row order: channel c must be the slowest index, (c, i, j) like w.reshape(F, -1); "
            "you have (i, j, c)": _reorder_rows(ref, c, kh, kw, (1, 2, 0)),
            "the columns run over output pixels in column-major order: column oy*OW + ox needs ox fastest":
                by_pixel,
        }))
    return run_cases("5.1", "im2col_exercise", fn, cases)


# ----------------------------------------------------------------------------- 5.2 one thread per output


def run_conv1d_threads(thread_fn, x, w, *, block_size: int = 4, seed: int = 0):
    """Launch ``thread_fn(i, x, w, out)`` over the ``len(x) - len(w) + 1`` valid outputs; return ``out``.

    The grid is rounded up to whole blocks, so some threads have ``i >= len(out)``.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    out = np.zeros(len(x) - len(w) + 1)
    launch(thread_fn, out.shape[0], x, w, out, block_size=block_size, seed=seed)
    return out


def _shifted_left(x, w):
    """What ``out[i] = sum_j w[j] x[i + j - 1]`` gives (Python reads x[-1] as the last sample)."""
    n_out = len(x) - len(w) + 1
    return np.array([sum(w[j] * x[i + j - 1] for j in range(len(w))) for i in range(n_out)])


@exercise("5.2", "conv1d_thread", notebook=NOTEBOOK, forbidden=("cnncourse.signal.correlate1d",))
def check_conv1d_thread(fn):
    """``fn(i, x, w, out)``: thread ``i`` writes ``out[i] = sum_j w[j] x[i + j]`` (valid correlation), if ``i`` is in range."""
    rng = np.random.default_rng(502)
    signals = [
        ("x = [0 1 1 2 3 5 8 13], w = [1 2 3]", np.array([0, 1, 1, 2, 3, 5, 8, 13.0]), np.array([1.0, 2.0, 3.0])),
        ("random x (n=11), w (K=4), 2 blocks of 4 threads", rng.normal(size=11), rng.normal(size=4)),
        ("random x (n=20), w (K=5)", rng.normal(size=20), rng.normal(size=5)),
        ("x (n=5), w (K=5): one output", rng.normal(size=5), rng.normal(size=5)),
    ]
    cases = []
    for label, x, w in signals:
        ref = signal.correlate1d(x, w, mode="valid")
        cases.append(Case(label, (x, w), expected=ref, mistakes={
            "the filter is flipped (w[K-1-j]): that is convolution; correlation reads w[j] with x[i + j]":
                signal.correlate1d(x, w[::-1], mode="valid"),
            "off by one: output i starts at x[i] (valid mode has no padding), not x[i - 1]":
                _shifted_left(x, w),
            "off by one: the loop over taps stops one short; use range(K), all K taps":
                signal.correlate1d(x, np.append(w[:-1], 0.0), mode="valid"),
        }))
    if not callable(fn):  # let run_cases say so
        return run_cases("5.2", "conv1d_thread", fn, cases)
    return run_cases("5.2", "conv1d_thread", lambda x, w: run_conv1d_threads(fn, x, w), cases)
