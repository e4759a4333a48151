"""The JupyterLite edition runs cnncourse under Pyodide: no threads, no subprocesses, fewer packages.

Each test runs a fresh interpreter that imitates Pyodide: the packages Pyodide lacks
(or that the lite edition installs only later) cannot be imported, starting a thread
raises ``RuntimeError("can't start new thread")`` as it does there, starting a
subprocess raises ``OSError``, and ``sys.platform`` is ``"emscripten"``.  Then
``import cnncourse`` and the submodules the notebooks use must import, and the
code paths that use threads on a desktop must quietly run on one thread.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Not in Pyodide's distribution, or installed by the lite notebooks' first cell only after import.
UNAVAILABLE = ("torch", "cupy", "ipywidgets", "tqdm", "IPython", "ipykernel", "jupyterlab", "jupyter_server",
               "notebook", "nbformat", "nbclient", "sklearn", "skimage", "threadpoolctl", "psutil")

#: Submodules a student's notebook never imports (instructor tools, the GPU benchmark, the CLI).
DESKTOP_ONLY = {"grading", "cli", "gpu_benchmark"}

PRELUDE = f"""
import importlib.abc, subprocess, sys, threading
import numpy, scipy, scipy.fft, scipy.signal, scipy.ndimage, matplotlib
matplotlib.use("Agg")

BLOCKED = {UNAVAILABLE!r}

class NotInPyodide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not available under Pyodide)", name=name)
        return None

for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
sys.meta_path.insert(0, NotInPyodide())

def no_threads(self, *args, **kwargs):
    raise RuntimeError("can't start new thread")

def no_processes(*args, **kwargs):
    raise OSError("subprocesses are not supported under Pyodide")

threading.Thread.start = no_threads
subprocess.Popen.__init__ = no_processes
sys.platform = "emscripten"
"""


def run_as_pyodide(body: str) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg",
                               "HOME": str(REPO / "build")})


def test_the_imitation_really_blocks():
    """The prelude works: a blocked package cannot be imported and a thread cannot start."""
    done = run_as_pyodide("""
        for name in ("ipywidgets", "torch", "tqdm"):
            try:
                __import__(name)
            except ModuleNotFoundError:
                pass
            else:
                raise SystemExit(f"{name} imported")
        try:
            threading.Thread(target=print).start()
        except RuntimeError:
            print("no threads")
    """)
    assert done.returncode == 0, done.stderr
    assert "no threads" in done.stdout


def test_import_cnncourse_needs_nothing_pyodide_lacks():
    done = run_as_pyodide("""
        import cnncourse as cc
        print(cc.backend_name())
        assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], "a blocked module got imported"
    """)
    assert done.returncode == 0, done.stderr
    assert "numpy (CPU)" in done.stdout


def test_every_notebook_submodule_imports():
    """Each submodule a notebook may use imports without torch, ipywidgets, tqdm, scikit-learn/-image."""
    import cnncourse

    names = sorted(set(cnncourse._SUBMODULES) - DESKTOP_ONLY)
    done = run_as_pyodide(f"""
        import importlib
        failed = []
        for name in {names!r}:
            try:
                importlib.import_module("cnncourse." + name)
            except Exception as error:
                failed.append(f"cnncourse.{{name}}: {{type(error).__name__}}: {{error}}")
        print("\\n".join(failed))
        raise SystemExit(1 if failed else 0)
    """)
    assert done.returncode == 0, f"submodules that do not import under Pyodide:\n{done.stdout}\n{done.stderr}"


def test_threaded_paths_fall_back_to_one_thread_quietly():
    """Copies big enough to be split over threads on a desktop run on the calling thread, same result."""
    done = run_as_pyodide("""
        import warnings
        warnings.simplefilter("error")
        import numpy as np
        import cnncourse as cc

        assert cc.threads.get_threads() == 1, cc.threads.get_threads()
        cc.threads.set_threads(4)  # as a notebook on a desktop might: must still not need a thread
        src = np.arange(cc.threads.MIN_ELEMENTS * 2, dtype=np.float32).reshape(64, -1)
        dst = np.empty_like(src)
        cc.threads.copyto(dst, src)
        assert np.array_equal(dst, src)
        assert cc.threads.get_threads() == 1, "did not fall back to one thread"

        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 16, 64, 64))  # its im2col matrix (9.4M elements) is past MIN_ELEMENTS
        w = rng.standard_normal((8, 16, 3, 3))
        b = rng.standard_normal(8)
        out = cc.conv.conv_forward(x, w, b, stride=1, pad=1)
        out = out[0] if isinstance(out, tuple) else out
        import scipy.signal
        for n, f in ((0, 1), (15, 7)):
            expected = sum(scipy.signal.correlate(x[n, c], w[f, c], mode="same") for c in range(16)) + b[f]
            assert np.allclose(out[n, f], expected), "conv_forward disagrees with SciPy"
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


# --------------------------------------------------------------------------- the lite notebooks' first cell


def _run_bootstrap(platform: str) -> list:
    """Run the install cell that make lite puts first, with a stand-in for piplite; return its calls."""
    import ast
    import asyncio
    import builtins
    import types

    sys.path.insert(0, str(REPO / "site"))
    from build_lite import bootstrap_source, browser_requirements

    calls = []

    async def install(requirements, deps=True):
        calls.append((requirements, deps))

    fake_sys = types.SimpleNamespace(platform=platform)
    code = compile(bootstrap_source(browser_requirements()), "<first cell>", "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace = {}
    modules = {"sys": fake_sys, "piplite": types.SimpleNamespace(install=install)}

    def fake_import(name, *args, **kwargs):
        return modules[name] if name in modules else builtins.__import__(name, *args, **kwargs)

    namespace["__builtins__"] = {**vars(builtins), "__import__": fake_import}
    result = eval(code, namespace)  # noqa: S307  (our own cell, compiled with top-level await)
    if asyncio.iscoroutine(result):  # driven by hand: the stand-in never suspends, and another test
        try:                          # (Playwright) may hold this thread's event loop
            result.send(None)
        except StopIteration:
            pass
        else:
            raise AssertionError("the first cell awaited something other than piplite.install")
    return calls


def test_first_cell_installs_the_course_under_pyodide():
    calls = _run_bootstrap("emscripten")
    assert len(calls) == 2, calls
    requirements, _ = calls[0]
    for needed in ("numpy", "scipy", "matplotlib", "ipywidgets", "tqdm"):
        assert needed in requirements
    assert "jupyterlab" not in requirements, "JupyterLab cannot be installed inside the browser's Python"
    assert calls[1] == ("cnncourse", False), "the course wheel goes in without its desktop dependencies"


def test_first_cell_does_nothing_outside_the_browser():
    assert _run_bootstrap("linux") == []
