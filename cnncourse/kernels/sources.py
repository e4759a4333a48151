"""The CUDA sources of the package, their template instantiations and their C signatures."""
from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np

from .emulator import Param, parse_signature

__all__ = ["COMPILE_OPTIONS", "CTYPE", "KERNEL_TEMPLATES", "cu_sources", "source_path", "read_source",
           "name_expressions", "kernel_params"]

#: Options for NVRTC (CuPy) and for the ``nvcc --ptx`` test alike.
COMPILE_OPTIONS = ("-std=c++17",)

#: C type name of each supported array dtype.
CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

#: module (= ``<module>.cu``) -> kernel templates; ``{T}`` is ``float`` or ``double``.
KERNEL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "im2col": ("im2col<{T}>", "col2im<{T}>"),
    "pool": (
        "max_pool_forward<{T}, unsigned char>",
        "max_pool_forward<{T}, int>",
        "max_pool_backward<{T}, unsigned char>",
        "max_pool_backward<{T}, int>",
        "avg_pool_forward<{T}>",
        "avg_pool_backward<{T}>",
    ),
    "relu": ("relu_forward<{T}>", "relu_backward<{T}>", "relu_backward_mask<{T}>"),
    "conv_direct": ("conv_forward_direct<{T}, 4>", "conv_forward_direct<{T}, 8>"),
    "batchnorm": ("channel_sums<{T}>",),
}


def _package_dir() -> Path:
    return Path(str(importlib.resources.files("cnncourse.kernels")))


def cu_sources() -> list[Path]:
    """Paths of every CUDA source of the package (``cnncourse/kernels/*.cu``), sorted."""
    return sorted(_package_dir().glob("*.cu"))


def _check_module(module: str) -> None:
    if module not in KERNEL_TEMPLATES:
        raise ValueError(f"unknown kernel module {module!r}; choose one of {', '.join(map(repr, KERNEL_TEMPLATES))}")


def source_path(module: str) -> Path:
    """Path of ``<module>.cu``."""
    _check_module(module)
    return _package_dir() / f"{module}.cu"


def read_source(module: str) -> str:
    """The CUDA C source of ``<module>.cu``."""
    _check_module(module)
    return importlib.resources.files("cnncourse.kernels").joinpath(f"{module}.cu").read_text(encoding="utf-8")


def name_expressions(module: str) -> list[str]:
    """Every template instantiation of ``module``: float ones first, then double."""
    return [t.format(T=c) for c in CTYPE.values() for t in KERNEL_TEMPLATES[module]]


@functools.cache
def kernel_params(module: str, name_expression: str) -> tuple[Param, ...]:
    """The C parameters of one instantiation, parsed from ``<module>.cu`` (``const float*``, ``int`` ...)."""
    return tuple(parse_signature(read_source(module), name_expression))
