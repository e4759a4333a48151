"""The one switch between NumPy (CPU) and CuPy (GPU).

This is the only module in the package that imports CuPy.  Everything else
asks :func:`get_array_module` for the array library that matches its inputs,
so the same code runs on both devices.  CuPy is imported lazily: ``import
cnncourse`` never needs CuPy, a GPU or a CUDA toolkit.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "HAS_CUPY",
    "cupy_or_none",
    "get_array_module",
    "is_gpu_array",
    "to_device",
    "to_numpy",
    "backend_name",
]


@functools.lru_cache(maxsize=1)
def cupy_or_none():
    """Return the ``cupy`` module if it imports *and* a CUDA device works, else None."""
    try:
        import cupy  # noqa: PLC0415  (lazy on purpose: keeps import fast)

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        cupy.zeros(1).sum()  # touch the device: fails early on a broken driver
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, driver mismatch ...
        return None


class _LazyFlag:
    """``HAS_CUPY`` that only probes CuPy when first used as a bool."""

    def __bool__(self) -> bool:
        return cupy_or_none() is not None

    def __repr__(self) -> str:
        return repr(bool(self))


HAS_CUPY = _LazyFlag()


def is_gpu_array(x) -> bool:
    """True when ``x`` is a CuPy array (checked without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """Return ``numpy`` or ``cupy``, whichever owns the given arrays.

    Raises:
        TypeError: if NumPy and CuPy arrays are mixed in one call.
    """
    kinds = {is_gpu_array(a) for a in arrays if a is not None and hasattr(a, "shape")}
    if kinds == {True, False}:
        names = ", ".join(f"{type(a).__module__}.{type(a).__name__}" for a in arrays if hasattr(a, "shape"))
        raise TypeError(
            f"cannot mix NumPy (CPU) and CuPy (GPU) arrays in one call (got {names}); "
            "move them to one device with cc.to_device(x, 'gpu') or cc.to_numpy(x)"
        )
    if kinds == {True}:
        return cupy_or_none()
    return np


def to_device(x, device: str):
    """Copy an array to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""
    if device == "cpu":
        return to_numpy(x)
    if device == "gpu":
        cp = cupy_or_none()
        if cp is None:
            raise RuntimeError("no usable GPU: CuPy is not installed or no CUDA device is visible")
        return cp.asarray(x)
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def to_numpy(x):
    """Return ``x`` as a NumPy array (copying from the GPU if needed)."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


def backend_name() -> str:
    """'cupy (GPU name)' when a GPU is usable, else 'numpy (CPU)'."""
    cp = cupy_or_none()
    if cp is None:
        return "numpy (CPU)"
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"cupy (GPU: {name})"
