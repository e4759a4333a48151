"""Input checks shared by every layer: clear errors instead of deep IndexErrors."""
from __future__ import annotations

import numpy as np

from .backend import get_array_module


def as_numeric_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None):
    """Return ``x`` as a float/int array, raising a named error when it is not one.

    Args:
        x: array-like (NumPy or CuPy array, list ...).
        name: the argument name used in error messages.
        ndim: required number of dimensions (an int or a tuple of allowed ones).

    Raises:
        TypeError: non-numeric data (strings, objects, booleans).
        ValueError: wrong number of dimensions or an empty array.
    """
    xp = get_array_module(x)
    if not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array: {err}") from None
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got a {x.ndim}-D array of shape {tuple(x.shape)}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return xp.asarray(x)


def choose(value: str, name: str, allowed: tuple[str, ...]) -> str:
    """Check that a string option is one of ``allowed`` and return it."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(repr, allowed))}")
    return value


def float_dtype(*arrays):
    """Result dtype: float32 stays float32, everything else computes in float64."""
    dtypes = [a.dtype for a in arrays if a is not None]
    if dtypes and all(d == np.float32 or d.kind in "iu" and d.itemsize <= 2 for d in dtypes) and any(
        d == np.float32 for d in dtypes
    ):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
