"""Student copies of the source notebooks, with nbgrader-compatible metadata and a manifest.

In a code cell, every region from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
becomes ``raise NotImplementedError("Exercise N.k")`` at the indentation of the
``BEGIN`` line; ``N.k`` is the exercise (from the ``EXERCISES`` registry) whose
function encloses the region, or that the cell defines.  In a markdown cell,
``<!-- BEGIN SOLUTION -->...<!-- END SOLUTION -->`` becomes ``_Your answer here._``.
Outputs and execution counts are cleared.

Cells are marked the way nbgrader marks them (cell metadata schema 3):
exercise cells as "autograded answer" (``solution``), check cells as
"autograder tests" (``grade``, ``locked``, with the exercise's points),
markdown answers as "manually graded answer" (``grade`` and ``solution``,
0 points unless the source cell says otherwise).  ``manifest.json`` lists, per
notebook, the exercises, their points and grade ids; the grader reads it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

from . import notebook as nbio

__all__ = ["ReleaseError", "release", "release_notebook", "read_manifest", "write_notebook", "default_notebooks",
           "notebook_exercises", "MANIFEST", "PLACEHOLDER"]

MANIFEST = "manifest.json"
PLACEHOLDER = "_Your answer here._"
_MD_REGION = re.compile(r"<!--\s*BEGIN SOLUTION\s*-->.*?<!--\s*END SOLUTION\s*-->", re.DOTALL)
_MD_MARKER = re.compile(r"<!--\s*(BEGIN|END) SOLUTION\s*-->")
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")
_CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


class ReleaseError(Exception):
    """The source notebook cannot be released as it is (the message says where and why)."""


def _number_key(number: str):
    return tuple(int(p) if p.isdigit() else p for p in number.split("."))


def notebook_exercises(stem: str, exercises=None) -> list:
    """The registered exercises of one notebook, in exercise order."""
    if exercises is None:
        from ..checks import EXERCISES as exercises
    return sorted((e for e in exercises.values() if e.notebook == stem), key=lambda e: _number_key(e.number))


def grade_id(kind: str, number: str, function: str) -> str:
    """nbgrader ids allow letters, digits, ``_`` and ``-`` only: ``ex-1_2-toeplitz_matrix``."""
    return f"{kind}-{number.replace('.', '_')}-{function}"


def _nbgrader(cell_type: str, *, grade: bool, solution: bool, locked: bool, gid: str, points=None) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": gid, "schema_version": 3,
            "cell_type": cell_type}
    if grade:
        meta["points"] = points if points is not None else 0
    return meta


def _strip_code_solutions(src: str, by_function: dict, cell_exercise, where: str) -> str:
    """Replace every solution region with ``raise NotImplementedError("Exercise N.k")``."""
    out, inside, defs = [], None, []
    for line in src.splitlines(keepends=True):
        marker = line.strip()
        match = _DEF.match(line)
        if inside is None and match:
            defs.append((len(match.group(1).expandtabs()), match.group(2)))
        if marker == nbio.SOLUTION_BEGIN:
            if inside is not None:
                raise ReleaseError(f"{where}: '{nbio.SOLUTION_BEGIN}' inside another solution region")
            indent = line[: len(line) - len(line.lstrip())]
            depth = len(indent.expandtabs())
            enclosing = [name for d, name in defs if d < depth]
            exercise = by_function.get(enclosing[-1]) if enclosing else None
            exercise = exercise or cell_exercise
            if exercise is None:
                raise ReleaseError(f"{where}: a solution region outside any registered exercise function")
            out.append(f'{indent}raise NotImplementedError("Exercise {exercise.number}")\n')
            inside = exercise
        elif marker == nbio.SOLUTION_END:
            if inside is None:
                raise ReleaseError(f"{where}: '{nbio.SOLUTION_END}' without a matching BEGIN")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ReleaseError(f"{where}: '{nbio.SOLUTION_BEGIN}' without a matching END")
    text = "".join(out)
    return text.rstrip("\n") if not src.endswith("\n") else text


def _hidden_test(call: str) -> str:
    """nbgrader's hidden test (its tests must raise to fail; our checks only report)."""
    return f"\n### BEGIN HIDDEN TESTS\nassert ({call}).passed\n### END HIDDEN TESTS"


def release_notebook(src_path, out_dir, *, exercises=None, nbgrader_source: bool = False) -> dict:
    """Write the student copy of one source notebook into ``out_dir``; return its manifest entry.

    With ``nbgrader_source=True`` the solutions stay (nbgrader strips them itself)
    and each check cell gains a hidden ``assert``, giving a notebook to put in
    nbgrader's ``source/`` folder.
    """
    src_path, out_dir = Path(src_path), Path(out_dir)
    stem = src_path.stem
    try:
        nb = nbio.load(src_path)
    except nbio.InvalidNotebook as err:
        raise ReleaseError(f"{src_path}: {err}") from None
    nb = copy.deepcopy(nb)
    registered = notebook_exercises(stem, exercises)
    by_function = {e.function: e for e in registered}
    by_check = {getattr(e.check, "__name__", ""): e for e in registered}
    entries, answers, seen_cells, seen_checks = [], [], {}, {}
    for i, cell in enumerate(nb["cells"]):
        kind, src, where = cell.get("cell_type"), nbio.source(cell), f"{src_path.name}, cell {i}"
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)
        if kind == "code":
            cell["outputs"], cell["execution_count"] = [], None
            defined = [by_function[f] for f in nbio.defined_functions(src) if f in by_function]
            checked = [by_check[m] for m in _CHECK_CALL.findall(src) if m in by_check]
            if defined:
                first = defined[0]
                if not nbgrader_source:
                    src = _strip_code_solutions(src, by_function, first if len(defined) == 1 else None, where)
                meta["nbgrader"] = _nbgrader("code", grade=False, solution=True, locked=False,
                                             gid=grade_id("ex", first.number, first.function))
                meta["deletable"] = False
                for e in defined:
                    seen_cells[e.number] = i
            elif any(line.strip() == nbio.SOLUTION_BEGIN for line in src.splitlines()):
                raise ReleaseError(f"{where}: a solution region in a cell that defines no registered exercise "
                                   f"function (registered for {stem}: {sorted(by_function) or 'none'})")
            elif checked:
                first = checked[0]
                meta["nbgrader"] = _nbgrader("code", grade=True, solution=False, locked=True,
                                             gid=grade_id("check", first.number, first.function),
                                             points=sum(e.points for e in checked))
                meta.update(editable=False, deletable=False)
                if nbgrader_source:
                    src = src.rstrip("\n") + "".join(_hidden_test(ln.strip()) for ln in src.splitlines()
                                                     if _CHECK_CALL.search(ln) and not ln.lstrip().startswith("#"))
                for e in checked:
                    seen_checks[e.number] = i
            cell["source"] = src
        elif kind == "markdown" and _MD_MARKER.search(src):
            if _MD_MARKER.search(_MD_REGION.sub("", src)):
                raise ReleaseError(f"{where}: unbalanced <!-- BEGIN/END SOLUTION --> markers")
            gid = f"answer-{stem.split('_')[0]}-{len(answers) + 1}"
            points = (meta.get("nbgrader") or {}).get("points", 0)
            if not nbgrader_source:
                cell["source"] = _MD_REGION.sub(PLACEHOLDER, src)
            meta["nbgrader"] = _nbgrader("markdown", grade=True, solution=True, locked=False, gid=gid, points=points)
            answers.append({"grade_id": gid, "cell": i, "points": points})
    for e in registered:
        if e.number not in seen_cells:
            raise ReleaseError(f"{src_path.name}: exercise {e.number} is registered for {stem} but no code cell "
                               f"defines `def {e.function}(`")
        entries.append({"exercise": e.number, "function": e.function, "points": e.points,
                        "grade_id": grade_id("ex", e.number, e.function), "cell": seen_cells[e.number],
                        "check_grade_id": grade_id("check", e.number, e.function) if e.number in seen_checks else None,
                        "forbidden": list(e.forbidden)})
    out_dir.mkdir(parents=True, exist_ok=True)
    write_notebook(nb, out_dir / src_path.name)
    return {"file": src_path.name, "source_sha256": hashlib.sha256(src_path.read_bytes()).hexdigest(),
            "exercises": entries, "answers": answers, "total_points": sum(e["points"] for e in entries)}


def write_notebook(nb: dict, path) -> None:
    """Write a notebook as nbformat does (1-space indent, sorted keys, trailing newline)."""
    Path(path).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(release_dir) -> dict:
    path = Path(release_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReleaseError(f"cannot read the release manifest {path} ({err}); run `cnncourse release` first") from None


def release(paths, out_dir, *, exercises=None, nbgrader_source: bool = False) -> dict:
    """Release several notebooks into ``out_dir`` and update its ``manifest.json``.

    Notebooks already in the manifest and not released again keep their entries.
    Every notebook is tried; a :class:`ReleaseError` listing all failures is
    raised at the end if any failed.
    """
    from .. import __version__

    out_dir = Path(out_dir)
    try:
        manifest = read_manifest(out_dir)
    except ReleaseError:
        manifest = {}
    notebooks = dict(manifest.get("notebooks", {}))
    errors = []
    for path in paths:
        try:
            notebooks[Path(path).stem] = release_notebook(path, out_dir, exercises=exercises,
                                                          nbgrader_source=nbgrader_source)
        except ReleaseError as err:
            errors.append(str(err))
    manifest = {"generator": f"cnncourse {__version__}", "schema": 1, "nbgrader_source": nbgrader_source,
                "notebooks": dict(sorted(notebooks.items())),
                "total_points": sum(n["total_points"] for n in notebooks.values())}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if errors:
        raise ReleaseError("\n".join(errors))
    return manifest


def default_notebooks(root=None) -> list[Path]:
    """Every ``notebooks/NN_*.ipynb`` under ``root`` (default: the current folder, else the repository)."""
    candidates = [Path(root)] if root else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for base in candidates:
        found = sorted((base / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if found:
            return found
    return []
