"""cnncourse.threads: chunked copies and adds on several threads give exactly the one-thread result."""
import threading

import numpy as np
import pytest

from cnncourse import conv, threads


@pytest.fixture
def two_threads():
    before = threads.get_threads()
    threads.set_threads(2)
    yield
    threads.set_threads(before)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 64])
def test_run_chunks_covers_the_range_once_and_uses_a_worker(two_threads, length):
    seen, names = [], set()

    def fn(a, b):
        seen.extend(range(a, b))
        names.add(threading.current_thread().name)

    threads.run_chunks(fn, length, elements=threads.MIN_ELEMENTS)
    assert sorted(seen) == list(range(length))
    assert 1 <= len(names) <= min(2, length)  # the caller may do every chunk before the worker starts


def test_a_slow_worker_does_not_hold_up_the_chunks_it_has_not_claimed(two_threads):
    import time

    seen, started = [], threading.Event()

    def fn(a, b):
        if threading.current_thread() is not threading.main_thread() and not started.is_set():
            started.set()
            time.sleep(0.2)  # the worker is "descheduled" in the middle of its first chunk
        seen.extend(range(a, b))

    threads.run_chunks(fn, 64, elements=threads.MIN_ELEMENTS)
    assert sorted(seen) == list(range(64))


def test_small_work_stays_on_the_calling_thread(two_threads):
    names = []
    threads.run_chunks(lambda a, b: names.append((a, b, threading.current_thread().name)), 10, elements=10)
    assert names == [(0, 10, threading.current_thread().name)]


def test_a_workers_exception_reaches_the_caller(two_threads):
    def fn(a, b):
        if a > 0:
            raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        threads.run_chunks(fn, 4, elements=threads.MIN_ELEMENTS)


def test_copyto_equals_assignment(two_threads):
    x = np.random.default_rng(0).standard_normal((9, 40, 50, 7))
    dst = np.empty((9, 50, 7, 40))
    threads.copyto(dst, x.transpose(0, 2, 3, 1))
    assert np.array_equal(dst, x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="positive int"):
        threads.set_threads(bad)


@pytest.mark.parametrize("shape", [(16, 1, 40, 40, 6, 5, 1, 2), (16, 8, 30, 30, 16, 3, 2, 1), (8, 64, 32, 32, 8, 3, 1, 1)])
def test_conv_is_bitwise_identical_with_one_and_two_threads(shape, monkeypatch):
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 1)  # split even these small arrays
    n, c, h, w, f, k, s, p = shape
    rng = np.random.default_rng(1)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, k, k)), rng.standard_normal(f)
    results = []
    before = threads.get_threads()
    try:
        for count in (1, 2):
            threads.set_threads(count)
            out, cache = conv.conv_forward(x, wt, b, stride=s, pad=p)
            results.append((out, *conv.conv_backward(np.ones_like(out) * out, cache)))
    finally:
        threads.set_threads(before)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


def test_limit_sets_and_restores_both_thread_counts():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = threads.get_threads()
    with threads.limit(1):
        assert threads.get_threads() == 1
        assert all(info["num_threads"] == 1 for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")
    assert threads.get_threads() == before


@pytest.mark.parametrize("env, expected", [({"OMP_NUM_THREADS": "1"}, 1), ({"CNNCOURSE_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, 3),
                                           ({"OPENBLAS_NUM_THREADS": "2"}, 2), ({"OMP_NUM_THREADS": "x"}, None)])
def test_the_default_follows_the_usual_environment_variables(monkeypatch, env, expected):
    for name in threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = threads.get_threads()
    threads.set_threads(None)
    try:
        assert threads.get_threads() == (expected or min(threads.MAX_DEFAULT, threads._available_cores()))
    finally:
        threads.set_threads(before)
