"""Watch *how* a student's function computes, for exercises that prescribe a method.

A check compares answers; some exercises also ask for a route ("use ``np.fft``,
no loops over samples").  :func:`watch` runs the function once under a tracer and
reports what the student's own code did:

* ``fft_calls``: FFTs (``numpy.fft``/``scipy.fft``) called directly from the
  student's code; an FFT computed inside a package function does not count;
* ``lines``: lines executed in the student's own code; a loop over samples
  shows up as a count that grows with the signal length;
* ``package_calls``: the ``cnncourse`` functions the student's code called.

"The student's code" is every frame whose file lies outside NumPy, SciPy, the
standard library, installed packages and ``cnncourse`` itself (a notebook cell,
a submission, a test file).  When no such frame runs, for example when the
autograder's proxy forwards the call to a sandboxed process, nothing can be
observed and :func:`watch` returns ``None``: a check then skips its method test
rather than fail a correct answer.

:func:`explain_errors` wraps a function so that an exception it raises carries a
likely cause in its message (the same exception object, traceback intact).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import sysconfig
from typing import Callable

import numpy as np

__all__ = ["Trace", "watch", "explain_errors"]

_FFT_NAMES = frozenset({"fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2",
                        "fftn", "ifftn", "rfftn", "irfftn"})


def _root(module_file: str) -> str:
    return os.path.dirname(os.path.realpath(module_file)) + os.sep


def _library_roots() -> tuple[str, ...]:
    import scipy

    from .. import __file__ as package_file

    roots = {_root(np.__file__), _root(scipy.__file__), _root(package_file)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path) + os.sep)
    return tuple(sorted(roots))


_LIBRARY = _library_roots()
_PACKAGE = _root(__file__).rsplit(os.sep + "checks" + os.sep, 1)[0] + os.sep
_cache: dict[str, bool] = {}


def _is_student(filename: str) -> bool:
    """True for code outside the libraries (a notebook cell, a submission, a test file)."""
    known = _cache.get(filename)
    if known is None:
        if filename.startswith("<frozen"):  # "<string>", "<stdin>": code exec()-ed by a user is theirs
            known = False
        else:
            path = os.path.realpath(filename) if os.sep in filename else filename
            known = not path.startswith(_LIBRARY)
        _cache[filename] = known
    return known


def _is_fft(frame) -> bool:
    """Is this frame the entry of an FFT: ``numpy.fft.fft`` & co, or ``scipy.fft``'s backend dispatch of one?"""
    code = frame.f_code
    path = code.co_filename.replace(os.sep, "/")
    if path.endswith("numpy/fft/_pocketfft.py"):
        return code.co_name in _FFT_NAMES
    if path.endswith("scipy/fft/_backend.py") and code.co_name == "__ua_function__":
        return getattr(frame.f_locals.get("method"), "__name__", "") in _FFT_NAMES
    return False


@dataclasses.dataclass
class Trace:
    """What the student's code did during one call."""

    result: object = None
    lines: int = 0  # lines executed in the student's own frames
    fft_calls: int = 0  # FFTs called directly from the student's code
    package_calls: set = dataclasses.field(default_factory=set)  # "cnncourse.signal.correlate1d", ...


def watch(fn: Callable, *args, **kwargs) -> Trace | None:
    """Call ``fn(*args, **kwargs)`` under a tracer; ``None`` when the student's code cannot be observed.

    Exceptions from ``fn`` propagate unchanged.
    """
    trace = Trace()

    def local(frame, event, arg):
        if event == "line":
            trace.lines += 1
        return local

    def on_call(frame, event, arg):
        code = frame.f_code
        if _is_student(code.co_filename):
            return local
        caller = frame.f_back
        if caller is None or not _is_student(caller.f_code.co_filename):
            return None  # library code called by library code: not the student's doing
        if _is_fft(frame):
            trace.fft_calls += 1
        elif os.path.realpath(code.co_filename).startswith(_PACKAGE) and not code.co_name.startswith("_"):
            module = frame.f_globals.get("__name__", "cnncourse")
            trace.package_calls.add(f"{module}.{code.co_name}")
        return None

    previous = sys.gettrace()
    try:
        sys.settrace(on_call)
    except Exception:  # a sandbox that refuses tracers: nothing can be observed
        return None
    try:
        trace.result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return trace if trace.lines else None


def explain_errors(fn: Callable, explain: Callable[[BaseException, tuple, dict], str | None]) -> Callable:
    """Wrap ``fn`` so that an exception it raises names a likely cause.

    ``explain(err, args, kwargs)`` returns the cause or None.  The exception keeps its
    type and traceback; only its message gains a "likely cause" line.
    """
    if not callable(fn):
        return fn

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as err:
            try:
                cause = explain(err, args, kwargs)
            except Exception:
                cause = None
            if cause and err.args and isinstance(err.args[0], str) and "likely cause" not in err.args[0]:
                err.args = (f"{err.args[0]}\n  likely cause: {cause}", *err.args[1:])
            elif cause and not err.args:
                err.args = (f"likely cause: {cause}",)
            raise

    wrapped.__name__ = getattr(fn, "__name__", "function")
    wrapped.__wrapped__ = fn
    return wrapped
