"""Where in the student's code an exception was raised: cell (or file), line number, source.

Frames of this package, of the standard library and of installed packages are
not the student's; the deepest remaining frame is. In a notebook the cell is
named as IPython names it (``cell In[7], line 3``); in the autograder's sandbox
cells are compiled as ``<cell N>``.
"""
from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import traceback

__all__ = ["student_line", "error_text"]


def _library_dirs() -> tuple[str, ...]:
    dirs = {os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}  # the package
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(os.path.realpath(sysconfig.get_paths()[key]))
        except KeyError:
            pass
    for entry in sys.path:
        if entry.rstrip("/").endswith(("site-packages", "dist-packages")):
            dirs.add(os.path.realpath(entry))
    return tuple(d + os.sep for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_student_code(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen ...>, <__array_function__ internals>; but cells are student code
        return filename.startswith(("<ipython-input", "<cell", "<string>", "<stdin>", "<input>"))
    return not os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def _place(filename: str, lineno: int) -> str:
    """'cell In[7], line 3' in a notebook, else 'file.py, line 3'."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    try:
        named = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:
        named = None
    if named:
        return f"{named[0].lower()} {named[1]}, line {lineno}"
    if filename.startswith("<cell ") and filename.endswith(">"):  # the autograder's name for cell N
        return f"cell {filename[6:-1]}, line {lineno}"
    if not filename.startswith("<"):
        relative = os.path.relpath(filename)
        filename = relative if not relative.startswith("..") else filename
    return f"{filename}, line {lineno}"


def student_line(err: BaseException) -> list[str]:
    """Where in the student's code ``err`` was raised: the place and its source line (0-2 lines).

    An exception relayed from a sandbox may carry this already, as ``err.student_line`` (the
    lines this function gave in the sandbox, joined by newlines).
    """
    relayed = getattr(err, "student_line", None)
    if isinstance(relayed, str) and relayed.strip():
        return relayed.strip().splitlines()[:2]
    frames = list(traceback.walk_tb(err.__traceback__))
    own = [(frame, lineno) for frame, lineno in frames if _is_student_code(frame.f_code.co_filename)]
    if not own:
        return []
    frame, lineno = own[-1]
    filename = frame.f_code.co_filename
    source = linecache.getline(filename, lineno, frame.f_globals).strip()
    if len(source) > 100:
        source = source[:97] + "..."
    name = frame.f_code.co_name
    lines = [f"at {_place(filename, lineno)}" + (f", in {name}" if name != "<module>" else "")
             + (f": {source}" if source else "")]
    position = [f for f, _ in frames].index(frame)
    if position < len(frames) - 1:  # raised in library code the student's line called
        called = frames[position + 1][0]
        package = str(called.f_globals.get("__name__", "?")).split(".")[0]
        lines.append(f"(raised inside {package}'s {called.f_code.co_name}, called from that line)")
    return lines


def error_text(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:
        return "<unprintable message>"
    lines = text.strip().splitlines() or [""]
    text = "\n  ".join(line[:300] for line in lines[:3]) + ("\n  ..." if len(lines) > 3 else "")
    return text
