"""The GPU runner: compile a module with NVRTC (through CuPy) and launch a :class:`~.plans.LaunchPlan`.

Nothing here imports CuPy at import time: each ``.cu`` module is compiled
(``cupy.RawModule`` with every instantiation as a name expression) the first
time one of its kernels is launched, and memoised.
"""
from __future__ import annotations

import functools

from ..backend import cupy_or_none
from .plans import LaunchPlan, bind_arguments
from .sources import COMPILE_OPTIONS, KERNEL_TEMPLATES, name_expressions, read_source

__all__ = ["cupy", "compile_all", "run_plan"]


def cupy():
    """The CuPy module, or a RuntimeError saying how to run the kernels without a GPU."""
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError(
            "the GPU kernels need CuPy and a CUDA device, and none is usable here; "
            "use NumPy arrays (the CPU path), run the kernels on the CPU emulator "
            "(`with cnncourse.kernels.emulated():` and NumPy arrays), or install cupy-cuda12x on a GPU machine"
        )
    return cp


@functools.cache
def _module(module: str):
    """The compiled ``cupy.RawModule`` of ``<module>.cu`` (compiled once per process)."""
    cp = cupy()
    return cp.RawModule(code=read_source(module), options=COMPILE_OPTIONS, name_expressions=name_expressions(module))


@functools.cache
def _kernel(module: str, name_expression: str):
    return _module(module).get_function(name_expression)


def compile_all() -> dict[str, str]:
    """Compile every kernel module on the GPU; ``{module: "ok" | error message}``.

    Used by ``cnncourse doctor``.  Without a usable GPU every entry says so.
    """
    report = {}
    for module in KERNEL_TEMPLATES:
        try:
            mod = _module(module)
            for expr in name_expressions(module):
                mod.get_function(expr)
            report[module] = "ok"
        except Exception as err:  # compile errors, no device, driver trouble ...
            report[module] = f"{type(err).__name__}: {err}".strip()
    return report


def run_plan(plan: LaunchPlan, inputs: dict) -> dict:
    """Launch ``plan`` on the GPU with CuPy ``inputs`` (by name); return its outputs by name."""
    cp = cupy()
    args, outs = bind_arguments(plan, inputs, cp)
    _kernel(plan.module, plan.kernel)(plan.grid, plan.block, tuple(args), shared_mem=plan.shared_bytes)
    return outs
