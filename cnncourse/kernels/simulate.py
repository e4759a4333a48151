"""A GPU launch simulated in plain Python: write a per-thread function, run it on a grid.

A CUDA kernel is the body of a loop whose iterations run in parallel: the GPU
starts one *thread* per element, and each thread finds its element from its
global index ``i = blockIdx.x * blockDim.x + threadIdx.x``.  This module runs
such a body -- a Python function ``kernel(i, *args)`` -- once per thread index,
so the thread-per-element way of thinking can be practised without a GPU
(notebook 05)::

    def relu_thread(i, x, out):
        if i >= out.shape[0]:        # the last block has threads past the end
            return
        out[i] = max(x[i], 0.0)

    out = np.empty_like(x)
    launch(relu_thread, x.size, x, out)

What is simulated, and what is not:

* the **grid**: ``n`` elements need ``ceil(n / block_size)`` blocks of
  ``block_size`` threads, so up to ``block_size - 1`` threads of the last
  block have no element and must return early (the bounds guard);
* the **order**: a GPU promises no order between threads, so by default the
  blocks, and the threads inside each block, run in a shuffled (seeded) order.
  A kernel whose result depends on the order is wrong on a real GPU too;
* not simulated: real concurrency (two threads writing one address race on a
  GPU, here the later one simply wins), shared memory, ``__syncthreads()``,
  speed (a Python call per thread is *slow*; the point is the mapping).
  To run real CUDA C, shared memory and barriers included, without a GPU, use
  the CPU emulator (``cnncourse.kernels.emulator``, ``with cnncourse.kernels.emulated():``).

Exceptions raised inside a thread are reported as :class:`KernelError` naming
the thread (``NotImplementedError`` passes through unchanged, so an
unfinished exercise reads as "not attempted").
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["KernelError", "grid_size", "thread_indices", "launch"]


class KernelError(RuntimeError):
    """An exception raised inside one simulated thread; the message names the thread."""

    def __init__(self, message: str, *, thread: int, block: int, thread_in_block: int):
        super().__init__(message)
        self.thread = thread
        self.block = block
        self.thread_in_block = thread_in_block


def _check_count(value, name: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def grid_size(n: int, block_size: int) -> int:
    """Blocks needed to give each of ``n`` elements a thread: ``ceil(n / block_size)`` (at least 1).

    The CUDA launch ``kernel<<<grid_size(n, B), B>>>(...)`` starts
    ``grid_size(n, B) * B >= n`` threads.
    """
    n = _check_count(n, "n", 0)
    block_size = _check_count(block_size, "block_size", 1)
    return max(1, math.ceil(n / block_size))


def thread_indices(n: int, block_size: int = 32, *, shuffle: bool = True, seed: int = 0):
    """The ``(i, block, thread_in_block)`` triples of a launch over ``n`` elements, in run order.

    ``i = block * block_size + thread_in_block`` is the global thread index
    (CUDA's ``blockIdx.x * blockDim.x + threadIdx.x``).  With ``shuffle`` the
    blocks, and the threads inside each block, come in a random order fixed by ``seed``.
    """
    blocks = grid_size(n, block_size)
    rng = np.random.default_rng(seed)
    block_order = rng.permutation(blocks) if shuffle else np.arange(blocks)
    for b in block_order:
        thread_order = rng.permutation(block_size) if shuffle else np.arange(block_size)
        for t in thread_order:
            yield int(b) * block_size + int(t), int(b), int(t)


def launch(kernel: Callable, n: int, *args, block_size: int = 32, shuffle: bool = True, seed: int = 0) -> int:
    """Run ``kernel(i, *args)`` once for every thread of a 1-D grid covering ``n`` elements.

    Like the CUDA launch ``kernel<<<ceil(n / block_size), block_size>>>(args...)``:
    ``grid_size(n, block_size) * block_size`` threads run, so the last
    ``(-n) % block_size`` of them have ``i >= n`` and must do nothing.  The
    kernel returns nothing; it writes its result into an output array
    passed in ``args`` (NumPy arrays are passed by reference, like device
    pointers).

    Args:
        kernel: the per-thread function, ``kernel(i, *args)``; ``i`` is the global thread index.
        n: number of elements the grid must cover (>= 0).
        *args: the kernel's arguments (arrays and scalars), passed unchanged to every thread.
        block_size: threads per block (>= 1); 32 is one warp.
        shuffle: run blocks and threads in a random order (a GPU guarantees none).
        seed: seed of that order, so a simulated run is repeatable.

    Returns:
        The number of threads that ran.

    Raises:
        KernelError: a thread raised; the message names the thread and, for a
            thread past the end, reminds that it needs a bounds guard.
        NotImplementedError: passed through unchanged (an unfinished exercise).
    """
    if not callable(kernel):
        raise TypeError(f"kernel must be a function kernel(i, *args), got {type(kernel).__name__}")
    block_size = _check_count(block_size, "block_size", 1)
    n = _check_count(n, "n", 0)
    ran = 0
    for i, b, t in thread_indices(n, block_size, shuffle=shuffle, seed=seed):
        try:
            kernel(i, *args)
        except NotImplementedError:
            raise
        except Exception as err:
            total = grid_size(n, block_size) * block_size
            hint = ""
            if i >= n:
                hint = (f" -- the grid has {total} threads for {n} elements, so threads with i >= {n} must "
                        f"return without touching memory (a bounds guard such as `if i >= n: return`)")
            raise KernelError(
                f"thread i={i} (block {b}, thread {t} of {block_size}) raised {type(err).__name__}: {err}{hint}",
                thread=i, block=b, thread_in_block=t,
            ) from err
        ran += 1
    return ran
