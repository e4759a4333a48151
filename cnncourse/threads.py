"""Run NumPy's single-threaded copies and adds on several cores.

BLAS spreads a matrix product over the cores by itself, but NumPy copies,
transposes and ``+=`` on one core.  In the CPU convolution those copies cost
about as much as the product, so on a two-core laptop they would make half of
the layer single-threaded.  NumPy releases the GIL inside a large copy or
ufunc loop, so plain Python threads, each working on its own slice of the
leading axis, do run in parallel.  Small arrays stay on the calling thread:
handing work to another thread costs some tens of microseconds, and on a small
copy one core already saturates the memory bus.

``set_threads(n)`` chooses how many threads (default: ``CNNCOURSE_NUM_THREADS``,
``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` where set, else one per available
core, at most ``MAX_DEFAULT``); ``set_threads(1)`` turns it off.  ``with limit(n):``
limits these threads *and* the BLAS libraries' for a block, e.g. for a fair
one-thread timing against another library.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["MAX_DEFAULT", "MIN_ELEMENTS", "CHUNKS_PER_THREAD", "get_threads", "set_threads", "limit", "run_chunks", "copyto"]

MAX_DEFAULT = 8
MIN_ELEMENTS = 1 << 22  # smaller arrays stay on the calling thread (measured: below ~4M elements threads did not pay)

_state: dict = {"threads": None, "pool": None}


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


THREAD_ENV_VARS = ("CNNCOURSE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _default_threads() -> int:
    """The first of ``THREAD_ENV_VARS`` that is set (the user's BLAS thread count), else one per core."""
    if sys.platform == "emscripten":  # Pyodide (the JupyterLite edition): a browser tab cannot start threads
        return 1
    for name in THREAD_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return max(1, min(MAX_DEFAULT, _available_cores()))


def get_threads() -> int:
    """How many threads the copies use."""
    if _state["threads"] is None:
        _state["threads"] = _default_threads()
    return _state["threads"]


def set_threads(n: int | None) -> None:
    """Use ``n`` threads for copies and adds (``None``: one per available core, capped at ``MAX_DEFAULT``)."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"threads must be a positive int or None, got {n!r}")
    if _state["pool"] is not None:
        _state["pool"].shutdown(wait=True)
    _state.update(threads=n, pool=None)


@contextlib.contextmanager
def limit(n: int):
    """Inside the block: ``n`` threads for cnncourse's copies and for every BLAS (via threadpoolctl, if installed)."""
    before = _state["threads"]
    set_threads(n)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415  (optional)
    except ImportError:
        blas = contextlib.nullcontext()
    else:
        import scipy.linalg  # noqa: F401, PLC0415  (load SciPy's own BLAS first, or the limit misses it)

        blas = threadpool_limits(limits=n, user_api="blas")
    try:
        with blas:
            yield
    finally:
        set_threads(before)


CHUNKS_PER_THREAD = 4  # more, smaller chunks: a thread that starts late just finds less left to do


class _Job:
    """Chunks of one ``run_chunks`` call, handed out one at a time to whichever thread asks first."""

    def __init__(self, fn, bounds):
        self.fn, self.bounds = fn, bounds
        self.next = itertools.count()  # next() is atomic in CPython: no lock needed to claim a chunk
        self.done = 0
        self.errors: list[BaseException] = []
        self.finished = threading.Condition()

    def work(self) -> None:
        count = len(self.bounds) - 1
        while (k := next(self.next)) < count:
            try:
                self.fn(self.bounds[k], self.bounds[k + 1])
            except BaseException as error:  # noqa: BLE001  (handed to the caller)
                self.errors.append(error)
            with self.finished:
                self.done += 1
                if self.done == count:
                    self.finished.notify_all()


def run_chunks(fn, length: int, elements: int) -> None:
    """Call ``fn(start, stop)`` on contiguous chunks that cover ``range(length)``, in parallel when worth it.

    ``elements`` is the amount of work (array elements touched); below
    ``MIN_ELEMENTS`` or with one thread, ``fn(0, length)`` runs here.  The
    calling thread works too, and chunks go to whichever thread is free: on a
    busy machine, where a helper thread may not get a core for milliseconds,
    the caller simply does the work itself instead of waiting for it.
    """
    threads = min(get_threads(), length)
    if threads < 2 or elements < MIN_ELEMENTS:
        fn(0, length)
        return
    chunks = min(length, threads * CHUNKS_PER_THREAD)
    job = _Job(fn, [length * k // chunks for k in range(chunks + 1)])
    try:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(get_threads() - 1, thread_name_prefix="cnncourse")
        for _ in range(threads - 1):
            _state["pool"].submit(job.work)
    except RuntimeError:  # "can't start new thread" (Pyodide, or a process at its thread limit)
        _fall_back_to_one_thread()
    job.work()  # claims whatever chunks no helper thread took: all of them when none started
    with job.finished:  # wait only for chunks other threads have started
        job.finished.wait_for(lambda: job.done == chunks)
    if job.errors:
        raise job.errors[0]


def _fall_back_to_one_thread() -> None:
    """Stop using threads, quietly: the calling thread does all the work from now on."""
    pool = _state["pool"]
    _state.update(threads=1, pool=None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def copyto(dst, src) -> None:
    """``dst[...] = src`` for arrays of the same shape, split along the leading axis."""
    def part(a, b):
        np.copyto(dst[a:b], src[a:b])

    run_chunks(part, dst.shape[0], dst.size)
