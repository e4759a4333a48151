"""Checks of notebooks 05-06 and the thread simulator: pass the reference, fail each plausible mistake with its cause."""
import numpy as np
import pytest

from cnncourse import checks, im2col, pool, signal
from cnncourse.kernels import simulate


def _cause(result):
    """The "likely cause" line of a failed check ('' when there is none)."""
    return result.message.split("likely cause:", 1)[1] if "likely cause:" in result.message else ""


def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise")


# ----------------------------------------------------------------------------- the thread simulator


def test_grid_size_rounds_up_to_whole_blocks():
    assert simulate.grid_size(10, 4) == 3
    assert simulate.grid_size(8, 4) == 2
    assert simulate.grid_size(0, 32) == 1  # a launch always has at least one block
    assert simulate.grid_size(1, 256) == 1
    with pytest.raises(ValueError, match="block_size"):
        simulate.grid_size(5, 0)
    with pytest.raises(TypeError, match="integer"):
        simulate.grid_size(5.0, 4)


@pytest.mark.parametrize("shuffle", [True, False])
def test_thread_indices_cover_the_grid_once(shuffle):
    triples = list(simulate.thread_indices(10, 4, shuffle=shuffle, seed=3))
    assert sorted(i for i, _, _ in triples) == list(range(12))
    assert all(i == b * 4 + t for i, b, t in triples)
    if not shuffle:
        assert [i for i, _, _ in triples] == list(range(12))


def test_shuffled_order_is_seeded_and_not_sequential():
    order = lambda seed: [i for i, _, _ in simulate.thread_indices(64, 8, seed=seed)]
    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != list(range(64))


def test_launch_runs_one_thread_per_grid_slot_and_a_guarded_kernel_works():
    x = np.array([-2.0, -0.5, 0.0, 1.5, 3.0])
    out = np.full_like(x, np.nan)

    def relu_thread(i, x, out):
        if i >= out.shape[0]:
            return
        out[i] = max(x[i], 0.0)

    assert simulate.launch(relu_thread, x.size, x, out, block_size=4) == 8
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_launch_names_the_thread_and_hints_at_the_bounds_guard():
    x, out = np.arange(5.0), np.zeros(5)

    def unguarded(i, x, out):
        out[i] = x[i]

    with pytest.raises(simulate.KernelError, match=r"thread i=[5-7] .*IndexError.*bounds guard") as info:
        simulate.launch(unguarded, 5, x, out, block_size=4)
    assert info.value.thread >= 5 and info.value.block == 1
    assert isinstance(info.value.__cause__, IndexError)


def test_launch_without_hint_for_an_in_range_thread_and_passes_not_implemented_through():
    def broken(i, out):
        raise ValueError("boom")

    with pytest.raises(simulate.KernelError, match="ValueError: boom") as info:
        simulate.launch(broken, 4, np.zeros(4), block_size=4)
    assert "bounds guard" not in str(info.value)
    with pytest.raises(NotImplementedError):
        simulate.launch(_raise, 4, block_size=4)


def test_launch_exposes_order_dependent_kernels():
    """A kernel that reads another thread's output only works if threads run in order."""

    def prefix_sum_wrong(i, x, out):
        if i >= out.shape[0]:
            return
        out[i] = x[i] + (out[i - 1] if i > 0 else 0.0)

    x = np.ones(16)
    in_order = np.zeros(16)
    simulate.launch(prefix_sum_wrong, 16, x, in_order, shuffle=False)
    np.testing.assert_array_equal(in_order, np.arange(1, 17))
    shuffled = np.zeros(16)
    simulate.launch(prefix_sum_wrong, 16, x, shuffled, block_size=4, seed=0)
    assert not np.array_equal(shuffled, np.arange(1, 17))


def test_launch_rejects_nonsense():
    with pytest.raises(TypeError, match="kernel"):
        simulate.launch("not a function", 3)
    with pytest.raises(ValueError, match="n must be"):
        simulate.launch(lambda i: None, -1)


# ----------------------------------------------------------------------------- 5.1 im2col


def _im2col_student(*, pad_ok=True, stride_ok=True, transpose=False, tap_order="cij", pixel_order="row"):
    """A loop implementation a student might write, with one switch per mistake."""

    def fn(x, kh, kw, *, stride=1, pad=0):
        s = stride if stride_ok else 1
        p = pad if pad_ok else 0
        n, c, h, w = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        cols = np.zeros((n, c * kh * kw, oh * ow))
        for ci in range(c):
            for i in range(kh):
                for j in range(kw):
                    row = {"cij": (ci * kh + i) * kw + j, "cji": (ci * kw + j) * kh + i, "ijc": (i * kw + j) * c + ci}[tap_order]
                    for oy in range(oh):
                        for ox in range(ow):
                            col = oy * ow + ox if pixel_order == "row" else ox * oh + oy
                            cols[:, row, col] = xp[:, ci, oy * s + i, ox * s + j]
        return cols.transpose(0, 2, 1) if transpose else cols

    return fn


def test_im2col_passes_reference_and_loops():
    ref = lambda x, kh, kw, stride=1, pad=0: im2col.im2col(x, kh, kw, stride=stride, pad=pad)
    assert checks.check_im2col_exercise(ref).passed
    assert checks.check_im2col_exercise(_im2col_student()).passed
    assert checks.check_im2col_exercise(_raise).status == "not attempted"


@pytest.mark.parametrize("mistake, cause", [
    (dict(pad_ok=False), "padding is ignored"),
    (dict(stride_ok=False), "stride is ignored"),
    (dict(transpose=True), "layout is transposed"),
    (dict(tap_order="cji"), "wrong tap order inside the kernel"),
    (dict(tap_order="ijc"), "channel c must be the slowest"),
    (dict(pixel_order="col"), "column-major order"),
])
def test_im2col_mistakes(mistake, cause):
    result = checks.check_im2col_exercise(_im2col_student(**mistake))
    assert result.status == "failed"
    assert cause in _cause(result), result.message


def test_im2col_registered_with_forbidden_reference():
    entry = checks.EXERCISES["5.1"]
    assert entry.function == "im2col_exercise" and entry.notebook == "05_fast_convolution"
    assert "cnncourse.im2col.im2col" in entry.forbidden and "cnncourse.im2col.im2col_cpu" in entry.forbidden


# ----------------------------------------------------------------------------- 5.2 one thread per output


def _thread_student(*, offset=0, flip=False, taps_short=False, guard=True):
    def conv1d_thread(i, x, w, out):
        if guard and i >= out.shape[0]:
            return
        K = len(w) - 1 if taps_short else len(w)
        acc = 0.0
        for j in range(K):
            tap = w[len(w) - 1 - j] if flip else w[j]
            acc += tap * x[i + j + offset]
        out[i] = acc

    return conv1d_thread


def test_conv1d_thread_passes_reference():
    assert checks.check_conv1d_thread(_thread_student()).passed
    assert checks.check_conv1d_thread(_raise).status == "not attempted"
    assert "expected a function" in checks.check_conv1d_thread(None).message


@pytest.mark.parametrize("mistake, cause", [
    (dict(flip=True), "filter is flipped"),
    (dict(offset=-1), "off by one: output i starts at x[i]"),
    (dict(taps_short=True), "off by one: the loop over taps stops one short"),
])
def test_conv1d_thread_mistakes(mistake, cause):
    result = checks.check_conv1d_thread(_thread_student(**mistake))
    assert result.status == "failed"
    assert cause in _cause(result), result.message


def test_conv1d_thread_missing_guard_or_reading_past_the_end_is_reported_per_thread():
    unguarded = checks.check_conv1d_thread(_thread_student(guard=False))
    assert unguarded.status == "failed" and "KernelError" in unguarded.message and "bounds guard" in unguarded.message
    past_end = checks.check_conv1d_thread(_thread_student(offset=1))
    assert past_end.status == "failed" and "IndexError" in past_end.message


def test_run_conv1d_threads_matches_valid_correlation():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=13), rng.normal(size=3)
    from cnncourse.checks.ch05_fast_convolution import run_conv1d_threads

    np.testing.assert_allclose(run_conv1d_threads(_thread_student(), x, w), signal.correlate1d(x, w, mode="valid"))


# ----------------------------------------------------------------------------- 6.1 / 6.2 pooling


def _pool_student(kind, *, across_channels=False, step=None, ceil=False, window_delta=0, divisor=None):
    """A loop implementation with one switch per mistake.

    step: None (correct), "one" (windows step by 1), "size" (stride ignored: step by size).
    divisor: None (size*size), "size" or "stride2" (avg only).
    """

    def fn(x, size=2, stride=None):
        s = size if stride is None else stride
        s = {None: s, "one": 1, "size": size}[step]
        n, c, h, w = x.shape
        if ceil:
            oh, ow = -(-(h - size) // s) + 1, -(-(w - size) // s) + 1
            oh, ow = oh - ((oh - 1) * s >= h), ow - ((ow - 1) * s >= w)
        else:
            oh, ow = (h - size) // s + 1, (w - size) // s + 1
        k = size + window_delta
        out = np.zeros((n, c, oh, ow))
        for oy in range(oh):
            for ox in range(ow):
                win = x[:, :, oy * s : oy * s + k, ox * s : ox * s + k]
                axes = (1, 2, 3) if across_channels else (2, 3)
                if kind == "max":
                    val = win.max(axis=axes)
                elif divisor is None:
                    val = win.mean(axis=axes)
                else:
                    val = win.sum(axis=axes) / {"size": size, "stride2": s * s}[divisor]
                out[:, :, oy, ox] = val[:, None] if across_channels else val
        return out

    return fn


@pytest.mark.parametrize("kind, check, forward", [
    ("max", checks.check_max_pool_exercise, pool.max_pool_forward),
    ("avg", checks.check_avg_pool_exercise, pool.avg_pool_forward),
])
def test_pool_passes_reference_and_loops(kind, check, forward):
    assert check(lambda x, size=2, stride=None: forward(x, size=size, stride=stride)[0]).passed
    assert check(_pool_student(kind)).passed
    assert check(_raise).status == "not attempted"


COMMON_POOL_MISTAKES = [
    (dict(across_channels=True), "pooling across channels"),
    (dict(step="one"), "the windows overlap"),
    (dict(step="size"), "the stride is ignored"),
    (dict(ceil=True), "wrong output size"),
    (dict(window_delta=-1), "the window is one pixel too small"),
]


@pytest.mark.parametrize("mistake, cause", COMMON_POOL_MISTAKES)
def test_max_pool_mistakes(mistake, cause):
    result = checks.check_max_pool_exercise(_pool_student("max", **mistake))
    assert result.status == "failed"
    assert cause in _cause(result), result.message


@pytest.mark.parametrize("mistake, cause", COMMON_POOL_MISTAKES + [
    (dict(divisor="size"), "divide the window's sum by size*size, not by size"),
    (dict(divisor="stride2"), "not by stride*stride"),
])
def test_avg_pool_mistakes(mistake, cause):
    result = checks.check_avg_pool_exercise(_pool_student("avg", **mistake))
    assert result.status == "failed"
    assert cause in _cause(result), result.message


def test_pool_checks_include_the_notes_example():
    """The first case is the lecture-notes map: a wrong answer there is reported on it."""
    wrong = checks.check_max_pool_exercise(lambda x, size=2, stride=None: np.zeros((1, 1, 2, 2)))
    assert "the notes' 4x4 map" in wrong.message and "expected 5" in wrong.message


@pytest.mark.parametrize("number, name", [("6.1", "max_pool_exercise"), ("6.2", "avg_pool_exercise"),
                                          ("5.2", "conv1d_thread")])
def test_registry(number, name):
    entry = checks.EXERCISES[number]
    assert entry.function == name and entry.notebook.startswith(number.split(".")[0].zfill(2))
    assert entry.forbidden
