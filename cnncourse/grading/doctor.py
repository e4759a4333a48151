"""``cnncourse doctor``: what this machine offers the course (Python, NumPy, CuPy, GPU, CUDA, kernels).

Every probe is guarded: a missing or broken piece is reported, never raised.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
import sys

__all__ = ["report", "doctor"]


def _cuda_version(v: int) -> str:
    """CUDA encodes 12.4 as 12040."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _run(argv) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cupy_lines() -> list[tuple[str, str]]:
    try:
        import cupy
    except ImportError:
        smi = ""
        if shutil.which("nvidia-smi"):
            smi = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
        gpu = smi.splitlines()[0] if smi else "none found"
        return [("CuPy", "not installed"), ("GPU", gpu + (" (CuPy is needed to use it)" if smi else "")),
                ("CUDA driver", "unknown (no CuPy)"), ("CUDA runtime", "unknown (no CuPy)")]
    except Exception as err:  # installed but broken (missing CUDA libraries ...)
        return [("CuPy", f"broken: {type(err).__name__}: {err}")]
    lines = [("CuPy", cupy.__version__)]
    try:
        rt = cupy.cuda.runtime
        count = rt.getDeviceCount()
        names = []
        for i in range(count):
            name = rt.getDeviceProperties(i)["name"]
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        lines.append(("GPU", ", ".join(names) if names else "none found"))
        lines.append(("CUDA driver", _cuda_version(rt.driverGetVersion())))
        lines.append(("CUDA runtime", _cuda_version(rt.runtimeGetVersion())))
    except Exception as err:  # no device, driver mismatch ...
        lines.append(("GPU", f"not usable: {type(err).__name__}: {err}"))
    return lines


def _kernel_lines() -> list[tuple[str, str]]:
    try:
        from .. import kernels
    except ImportError:
        return [("kernels", "no kernels")]
    except Exception as err:
        return [("kernels", f"cnncourse.kernels fails to import: {type(err).__name__}: {err}")]
    compile_all = getattr(kernels, "compile_all", None)
    if compile_all is None:
        return [("kernels", "no kernels")]
    try:
        result = compile_all()
    except Exception as err:
        return [("kernels", f"compile_all() failed: {type(err).__name__}: {err}")]
    items = result.items() if isinstance(result, dict) else ((str(r), "ok") for r in (result or []))
    by_status: dict[str, list[str]] = {}
    for name, status in items:
        by_status.setdefault((str(status).splitlines() or [""])[0], []).append(str(name))
    lines = [("kernels", f"compile ({', '.join(names)})" if status == "ok"
              else f"do not compile ({', '.join(names)}): {status}") for status, names in by_status.items()]
    nvcc = shutil.which("nvcc")
    version = _run([nvcc, "--version"]).splitlines()[-1] if nvcc else ""
    lines.append(("nvcc", version or "not found"))
    lines.append(_emulator_line(kernels))
    return lines or [("kernels", "no kernels")]


def _emulator_line(kernels) -> tuple[str, str]:
    """Whether the CPU emulator of the CUDA kernels works (compiler found, one kernel run)."""
    status = getattr(kernels, "emulator_status", None)
    if status is None:
        return ("CUDA emulator", "not available")
    try:
        ok, message = status()
    except Exception as err:
        return ("CUDA emulator", f"failed: {type(err).__name__}: {err}")
    return ("CUDA emulator", message if ok else f"off: {message}")


def sandbox_line() -> str:
    """Which layers the grading sandbox gets on this machine (see docs/instructors.md, section 4)."""
    from .landlock import abi
    from .seccomp import available

    try:
        version = abi()
    except Exception:
        version = 0
    try:
        filtered = available()
    except Exception:
        filtered = False
    parts = [f"Landlock ABI {version} (kernel file, exec, network limits)" if version else
             "no Landlock (file limits by the audit hook only)",
             "seccomp (no fork/exec/socket/memfd)" if filtered else
             "no seccomp (process, socket and memfd limits by the audit hook only)",
             "rlimits (memory, CPU, file size, open files)", "scratch quota", "audit hook"]
    return ", ".join(parts)


def report() -> list[tuple[str, str]]:
    """``(label, value)`` pairs, in the order :func:`doctor` prints them."""
    import numpy

    lines = [("Python", f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"),
             ("NumPy", numpy.__version__)]
    lines += _cupy_lines()
    lines += _kernel_lines()
    lines.append(("grading sandbox", sandbox_line()))
    try:
        from ..backend import backend_name

        lines.append(("notebooks will use", backend_name()))
    except Exception as err:
        lines.append(("notebooks will use", f"unknown ({type(err).__name__}: {err})"))
    return lines


def doctor(out=print) -> int:
    """Print the report; return 0 (the command only informs)."""
    lines = report()
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        out(f"{label:<{width}}  {value}")
    return 0
