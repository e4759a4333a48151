"""The CPU runner: launch a :class:`~.plans.LaunchPlan` on the CUDA emulator, with NumPy arrays.

Inside ``with cnncourse.kernels.emulated():`` the public ``*_gpu`` wrappers take
and return NumPy arrays and run the course's own ``.cu`` kernels on the CPU
(:mod:`.emulator`): correct results, not GPU speed.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses

import numpy as np

from . import emulator
from .plans import MAX_BLOCKS, MAX_GRID_Z, LaunchPlan, bind_arguments
from .sources import source_path

__all__ = ["EmulatorOptions", "emulated", "active", "run_plan", "emulator_status", "kernel"]


@dataclasses.dataclass(frozen=True)
class EmulatorOptions:
    """How :func:`emulated` runs kernels (see :func:`emulated`)."""

    shuffle: bool = False
    seed: int = 0
    sanitize: bool = False
    max_blocks: int = MAX_BLOCKS
    max_grid_z: int = MAX_GRID_Z


_ACTIVE: contextvars.ContextVar[EmulatorOptions | None] = contextvars.ContextVar("cnncourse_emulated", default=None)


@contextlib.contextmanager
def emulated(*, shuffle: bool = False, seed: int = 0, sanitize: bool = False,
             max_blocks: int = MAX_BLOCKS, max_grid_z: int = MAX_GRID_Z):
    """Run the ``*_gpu`` wrappers on the CPU emulator, with NumPy arrays in and out.

    Args:
        shuffle: run the blocks, and the threads of each block, in a random order
            (fixed by ``seed``) instead of index order: a kernel whose result
            depends on an order the GPU does not promise gives another answer.
        seed: seed of that order.
        sanitize: use AddressSanitizer/UBSan builds (the process must have been
            started with ``LD_PRELOAD`` = :func:`cnncourse.kernels.emulator.asan_preload`).
        max_blocks: cap on the grid of the 1-D kernels (default: the GPU cap);
            a small cap makes every grid-stride loop run several times.
        max_grid_z: cap on ``gridDim.z`` of the direct convolution (default 65,535).

    Example::

        with cnncourse.kernels.emulated():
            out = cnncourse.kernels.conv_forward_direct_gpu(x, w, b, pad=1)  # NumPy in, NumPy out
    """
    if max_blocks < 1 or max_grid_z < 1:
        raise ValueError(f"max_blocks and max_grid_z must be >= 1, got {max_blocks}, {max_grid_z}")
    token = _ACTIVE.set(EmulatorOptions(bool(shuffle), int(seed), bool(sanitize), int(max_blocks), int(max_grid_z)))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def active() -> EmulatorOptions | None:
    """The options of the innermost :func:`emulated` block, or None outside one."""
    return _ACTIVE.get()


def kernel(module: str, name_expression: str, *, sanitize: bool = False) -> emulator.Kernel:
    """The compiled (cached) emulator kernel ``name_expression`` of ``<module>.cu``."""
    return emulator.compile_kernel(source_path(module), name_expression, sanitize=sanitize)


def run_plan(plan: LaunchPlan, inputs: dict, options: EmulatorOptions | None = None, *,
             source: str | None = None) -> dict:
    """Launch ``plan`` on the emulator with NumPy ``inputs`` (by name); return its outputs by name.

    ``source`` replaces the module's ``.cu`` text (a variant of the kernel with
    the same signature: the tests plant bugs this way and check that they show).
    """
    opts = options or active() or EmulatorOptions()
    args, outs = bind_arguments(plan, inputs, np)
    if source is None:
        k = kernel(plan.module, plan.kernel, sanitize=opts.sanitize)
    else:
        k = emulator.compile_kernel(source, plan.kernel, sanitize=opts.sanitize, filename=f"{plan.module}_variant.cu")
    k(plan.grid, plan.block, args, shared_mem=plan.shared_bytes, shuffle=opts.shuffle, seed=opts.seed)
    return outs


def emulator_status() -> tuple[bool, str]:
    """``(works, message)``: is there a compiler, and does one course kernel run and agree with NumPy?"""
    cxx = emulator.find_compiler()
    if cxx is None:
        return False, "no C++ compiler (set $CXX or install g++/clang++): the CPU emulator of the CUDA kernels is off"
    try:
        from .plans import relu_forward_plan  # noqa: PLC0415

        x = np.linspace(-1.0, 1.0, 7, dtype=np.float32)
        out = run_plan(relu_forward_plan(x.shape, x.dtype), {"x": x}, EmulatorOptions())["out"]
        if not np.array_equal(out, np.maximum(x, 0)):
            return False, f"compiler {cxx} found, but relu_forward<float> gave a wrong result"
    except Exception as err:  # compile error, loader trouble ...
        return False, f"compiler {cxx} found, but the emulator failed: {type(err).__name__}: {str(err)[:300]}"
    return True, f"ok (compiler {cxx}, relu_forward<float> ran; cache {emulator.cache_dir()})"
