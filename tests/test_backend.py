"""The backend switch: NumPy always works, CuPy is optional and never imported eagerly."""
import subprocess
import sys

import numpy as np
import pytest

from cnncourse import backend


def test_numpy_arrays_use_numpy():
    assert backend.get_array_module(np.ones(3), None, np.zeros(2)) is np
    assert backend.get_array_module() is np


def test_to_numpy_and_cpu_round_trip():
    x = np.arange(4.0)
    assert backend.to_numpy(x) is x
    np.testing.assert_array_equal(backend.to_device([1, 2], "cpu"), [1, 2])


def test_unknown_device():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        backend.to_device(np.ones(2), "tpu")


def test_gpu_request_without_gpu_is_clear():
    if backend.cupy_or_none() is not None:
        pytest.skip("a GPU is usable here")
    assert not backend.HAS_CUPY
    with pytest.raises(RuntimeError, match="no usable GPU"):
        backend.to_device(np.ones(2), "gpu")
    assert backend.backend_name() == "numpy (CPU)"


def test_mixing_devices_is_a_type_error():
    class FakeCupyArray:  # looks like a CuPy array to the type check
        shape = (2,)

    FakeCupyArray.__module__ = "cupy._core.core"
    with pytest.raises(TypeError, match="cannot mix NumPy .* and CuPy"):
        backend.get_array_module(np.ones(2), FakeCupyArray())


def test_import_is_light():
    """`import cnncourse` must not pull in CuPy, torch, matplotlib or scipy (that is what keeps it fast)."""
    code = "import sys, cnncourse; print(sorted(m for m in ('cupy', 'torch', 'matplotlib', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_submodules_load_lazily():
    import cnncourse as cc

    assert cc.signal.correlate1d is not None
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        cc.nonexistent  # noqa: B018
