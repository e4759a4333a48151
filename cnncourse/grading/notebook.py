"""Reading notebooks as the grader sees them: cells, exercise cells, import statements.

Notebooks are read as plain JSON (not validated against the nbformat schema):
a student's notebook with a slightly odd cell still grades, and one that is
not JSON or has no cells raises :class:`InvalidNotebook` with a readable reason.
"""
from __future__ import annotations

import ast
import errno
import json
import os
import re
import stat

__all__ = ["InvalidNotebook", "load", "read_regular_file", "ALLOWED_IMPORTS", "import_allowed", "MAX_PARSED_CELL",
           "source", "code_cells", "defines", "exercise_cells", "import_code",
           "referenced_names", "strip_magics", "defined_functions", "mentions"]

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"


class InvalidNotebook(Exception):
    """The file is not a notebook the grader can read."""


# A cell the parser cannot read: bad syntax, NUL bytes, or nesting deep enough to exhaust its stack or memory.
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)
# Python's parser needs about 200 bytes of memory per token: a cell longer than this (no honest exercise
# cell comes close) is treated as unparsable rather than let a 10 MB expression cost the grader gigabytes.
MAX_PARSED_CELL = 64 * 1024


def _parse(src: str) -> ast.Module:
    if len(src) > MAX_PARSED_CELL:
        raise SyntaxError(f"cell longer than {MAX_PARSED_CELL // 1024} KB")
    return ast.parse(strip_magics(src))

# Modules whose import statements run in the child *before* its guards (libraries that load C code at
# import).  Anything else is left out: it is imported, if at all, by the cell itself, under the guards.
ALLOWED_IMPORTS = frozenset({
    "cnncourse", "numpy", "scipy", "matplotlib", "torch", "torchvision", "sklearn", "pandas", "PIL", "tqdm",
    "ipywidgets", "IPython", "math", "cmath", "random", "statistics", "time", "itertools", "functools",
    "collections", "typing", "dataclasses", "fractions", "decimal", "numbers", "operator", "copy", "string", "re",
    "json", "textwrap", "warnings", "abc", "enum", "heapq", "bisect", "pprint", "contextlib", "inspect", "os",
    "sys", "pathlib", "timeit", "importlib", "gzip", "struct", "array", "hashlib", "types", "builtins", "datetime",
    "io", "csv", "base64", "zlib", "unicodedata", "faulthandler",  # (never __future__: not valid inside try)
})


def import_allowed(node) -> bool:
    """May this import statement run before the guards (every module it names on :data:`ALLOWED_IMPORTS`)?"""
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in ALLOWED_IMPORTS
    return all(alias.name.split(".")[0] in ALLOWED_IMPORTS for alias in node.names)


MAX_NOTEBOOK_BYTES = 64 * 2**20  # a submission larger than this is not read


def read_regular_file(path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, FIFO, device or folder) of at most ``limit`` bytes.

    Opened without following a link and without blocking (a FIFO named
    ``*.ipynb`` must not hang the grader), then checked on the open
    descriptor, so the file cannot be swapped between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InvalidNotebook("not a regular file (a link): the grader reads only regular files") from None
        raise InvalidNotebook(f"cannot read the file ({type(err).__name__}: {err.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidNotebook("not a regular file (a FIFO, device, socket or folder): the grader reads only "
                                  "regular files")
        if st.st_size > limit:
            raise InvalidNotebook(f"the file is larger than {limit // 2**20} MB")
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise InvalidNotebook(f"the file is larger than {limit // 2**20} MB")
        return b"".join(chunks)
    except OSError as err:
        raise InvalidNotebook(f"cannot read the file ({type(err).__name__}: {err.strerror})") from None
    finally:
        os.close(fd)


def load(path) -> dict:
    """Read a notebook file as JSON; raise :class:`InvalidNotebook` with the reason.

    Only a regular file is read (:func:`read_regular_file`); a notebook so deeply
    nested, or so large once parsed, that the parser runs out of stack or
    memory is invalid, never a crash of the grader.
    """
    try:
        text = read_regular_file(path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidNotebook(f"cannot read the file (not UTF-8: {err.reason})") from None
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError, MemoryError) as err:
        raise InvalidNotebook(f"not valid JSON ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise InvalidNotebook("the file has no list of cells")
    if not any(isinstance(c, dict) and c.get("cell_type") == "code" for c in nb["cells"]):
        raise InvalidNotebook("the notebook has no code cells")
    return nb


def source(cell: dict) -> str:
    """A cell's source as one string (stored either as a string or a list of lines)."""
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def code_cells(nb: dict) -> list[tuple[int, str]]:
    """``(index, source)`` of every code cell, in notebook order."""
    return [(i, source(c)) for i, c in enumerate(nb["cells"]) if isinstance(c, dict) and c.get("cell_type") == "code"]


def defines(src: str, function: str) -> bool:
    """Does this source contain a top-level ``def function(``?"""
    return re.search(rf"^(async\s+)?def\s+{re.escape(function)}\s*\(", src, re.MULTILINE) is not None


def exercise_cells(nb: dict, functions) -> dict[int, list[str]]:
    """Map code-cell index -> the exercise functions that cell defines."""
    out: dict[int, list[str]] = {}
    for i, src in code_cells(nb):
        names = [f for f in functions if defines(src, f)]
        if names:
            out[i] = names
    return out


def strip_magics(src: str) -> str:
    """Blank out IPython-only lines (``%magic``, ``!shell``, ``%%cell magic``) so the code parses.

    Lines are blanked, not removed, so line numbers in error messages still match the cell.
    """
    lines = src.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        return ""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


def _bound_names(node) -> set[str]:
    """Names an import statement binds (``*`` for ``from m import *``)."""
    if isinstance(node, ast.Import):
        return {a.asname or a.name.split(".")[0] for a in node.names}
    return {a.asname or a.name for a in node.names}


def referenced_names(src: str) -> set[str]:
    """Every name a piece of code reads or writes (an unparsable cell: every word in it)."""
    try:
        tree = _parse(src)
    except _UNPARSABLE:
        return set(re.findall(r"[A-Za-z_]\w*", src))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def import_code(nb: dict, skip=(), needed: set[str] | None = None) -> str:
    """The top-level ``import``/``from ... import`` statements of every code cell not in ``skip``.

    With ``needed``, only the statements that bind one of those names (or ``*``)
    are kept: the grader need not import matplotlib for a function that never
    plots.  Only statements whose modules are on :data:`ALLOWED_IMPORTS` are
    kept (``from _posixsubprocess import fork_exec`` would otherwise run
    before the guards).  Each statement is wrapped in ``try``, so one missing
    module does not stop the others.
    """
    statements: list[str] = []
    for i, src in code_cells(nb):
        if i in skip:
            continue
        try:
            tree = _parse(src)
        except _UNPARSABLE:
            continue
        for node in tree.body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or not import_allowed(node):
                continue
            names = _bound_names(node)
            if needed is not None and "*" not in names and not names & needed:
                continue
            if ast.unparse(node) not in statements:
                statements.append(ast.unparse(node))
    return "".join(f"try:\n    {s}\nexcept BaseException:\n    pass\n" for s in statements)


def defined_functions(src: str) -> list[str]:
    """Names of the top-level functions a cell defines (for "did you rename it?" feedback)."""
    return re.findall(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", src, re.MULTILINE)


def mentions(src: str, function: str, names) -> list[str]:
    """Which of ``names`` (dotted, e.g. "cnncourse.signal.correlate1d") the body of ``function`` refers to.

    A static look at the code: ``signal.correlate1d`` / ``cc.signal.correlate1d``
    or ``from cnncourse.signal import correlate1d`` inside the function.  It
    gives a clear message before anything runs; the child's tripwires catch
    every other route (aliases, ``getattr``, helper functions).
    """
    try:
        tree = _parse(src)
    except _UNPARSABLE:
        return []
    bodies = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function]
    found = []
    for name in names:
        parts = name.split(".")
        if len(parts) < 2:
            continue
        parent, short = parts[-2], parts[-1]
        for node in (n for body in bodies for n in ast.walk(body)):
            if isinstance(node, ast.Attribute) and node.attr == short and (
                    (isinstance(node.value, ast.Name) and node.value.id == parent)
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == parent)):
                found.append(name)
                break
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == parent \
                    and any(a.name == short for a in node.names):
                found.append(name)
                break
    return found
