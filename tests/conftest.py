"""Shared fixtures: the array backend and seeded random generators."""
import numpy as np
import pytest

from cnncourse.backend import cupy_or_none


def _backends():
    yield pytest.param(np, id="numpy")
    yield pytest.param(
        "cupy",
        id="cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(cupy_or_none() is None, reason="no usable GPU (CuPy missing or no CUDA device)")],
    )


@pytest.fixture(params=list(_backends()))
def xp(request):
    """The array module under test: NumPy always, CuPy where a GPU is usable."""
    return cupy_or_none() if request.param == "cupy" else request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
