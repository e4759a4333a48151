"""Per-exercise grading policies (issue 16), enforced by the sandboxed grader.

Every route of ``tests/policy_routes.py`` (each public package function that
accepts an exercise's inputs, each denylisted third-party function, the glued
routes) is one exercise function of a single submission, graded by
:func:`cnncourse.grading.autograde.grade_submission` exactly as a student's
notebook is: each must earn 0 with status "forbidden".  The course notebooks'
solutions and the honest variants, in the same submission, keep full marks.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import cnncourse as cc
from cnncourse.checks import EXERCISES
from cnncourse.grading.autograde import Submission, grade_submission
from cnncourse.grading.sandbox import Limits

import policy_routes as routes

pytestmark = pytest.mark.slow
pytest.importorskip("torch")

STEM = "policy_routes"
LIMITS = Limits(exercise_timeout=60, notebook_timeout=1200, memory_mb=4096, output_mb=4, startup_timeout=120)
IMPORTS = ("import importlib\n\nimport numpy as np\nimport scipy\nimport scipy.linalg\nimport scipy.ndimage\n"
           "import scipy.optimize\nimport scipy.signal\nimport scipy.special\nimport scipy.stats\nimport torch\n\n"
           "import cnncourse as cc\n")


def _notebook(path: Path, cells: list[str], imports: str = IMPORTS) -> None:
    def code(src):
        return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}

    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [code(imports)] + [code(c) for c in cells]}
    path.write_text(json.dumps(nb))


def _grade(tmp_path: Path, entries: list[tuple[str, str, str]], imports: str = IMPORTS) -> dict:
    """Grade one submission whose cells are ``(exercise, function name, source)``; return {name: row}."""
    path = tmp_path / f"{STEM}.ipynb"
    _notebook(path, [src for _, _, src in entries], imports)
    manifest = {"notebooks": {STEM: {"exercises": [
        {"exercise": number, "function": name, "points": 1.0, "grade_id": f"ex-{name}"}
        for number, name, _ in entries]}}}
    rows = grade_submission(Submission(path, "policy", STEM), manifest, limits=LIMITS)
    return {e[1]: row for e, row in zip(entries, rows)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One submission holding every route and every honest solution, graded once."""
    entries, kinds = [], {}

    def add(number, kind, source):
        name = f"{kind}_{len(entries)}"
        entries.append((number, name, source.format(name=name) if "{name}" in source else source))
        kinds[name] = (number, kind, source)

    for number in EXERCISES:
        for dotted in routes.package_routes(number):
            module, _, attr = dotted.rpartition(".")
            add(number, "package", "def {name}(*args, **kwargs):\n"
                                   f"    return importlib.import_module({module!r}).{attr}(*args, **kwargs)\n")
        for target in routes.deny_routes(number):
            add(number, "deny", "def {name}(*args, **kwargs):\n"
                                f"    return {routes.call_expression(target)}(*args, **kwargs)\n")
    for number, source in routes.ADAPTED:
        add(number, "adapted", source)
    solutions = routes.reference_solutions()
    for number, source in sorted(solutions.items()):
        name = f"reference_{len(entries)}"
        # an exercise may build on an earlier one's function (5.4 on 5.1's im2col): define that one too
        earlier = [solutions[n] for n, e in EXERCISES.items()
                   if n != number and n in solutions and e.notebook == EXERCISES[number].notebook
                   and re.search(rf"\b{e.function}\b", source)]
        entries.append((number, name, "\n".join([*earlier, routes.define(source, name, EXERCISES[number].function)])))
        kinds[name] = (number, "reference", source)
    for number, source in routes.HONEST:
        add(number, "honest", source)
    rows = _grade(tmp_path_factory.mktemp("policy"), entries)
    return rows, kinds


def _of(graded, kind):
    rows, kinds = graded
    return [(name, kinds[name][0], rows[name]) for name in rows if kinds[name][1] == kind]


@pytest.mark.parametrize("kind", ["package", "deny", "adapted"])
def test_every_forbidden_route_earns_nothing(graded, kind):
    found = _of(graded, kind)
    assert found
    wrong = [(number, kind, row.status, row.feedback) for _, number, row in found
             if row.status != "forbidden" or row.points != 0]
    assert not wrong, wrong
    for _, number, row in found:
        assert "which this exercise asks you to write yourself" in row.feedback or "reads the source" in row.feedback


def test_every_exercise_has_forbidden_routes_graded(graded):
    covered = {number for kind in ("package", "deny", "adapted") for _, number, _ in _of(graded, kind)}
    assert covered == set(EXERCISES)


@pytest.mark.parametrize("kind", ["reference", "honest"])
def test_honest_solutions_keep_full_marks(graded, kind):
    found = _of(graded, kind)
    assert found
    lost = [(number, row.status, row.feedback) for _, number, row in found if row.points != row.max]
    assert not lost, "\n".join(map(str, lost))


def test_every_reference_solution_was_graded(graded):
    assert {number for _, number, _ in _of(graded, "reference")} == set(EXERCISES)


def test_grader_feedback_matches_the_notebook(graded, monkeypatch):
    """The one-row route of the issue: the grader's sentence is the notebook check's sentence."""
    rows, kinds = graded
    name = next(n for n, (num, kind, src) in kinds.items() if kind == "adapted" and src == routes.ADAPTED[0][1])
    namespace = {"np": np, "cc": cc}
    exec(routes.define(routes.ADAPTED[0][1], "correlate_same"), namespace)
    monkeypatch.setattr(sys.modules["__main__"], "correlate_same", namespace["correlate_same"], raising=False)
    in_notebook = EXERCISES["1.1"].check(namespace["correlate_same"]).message
    assert in_notebook.split(": ", 1)[1] == (
        "uses `cc.conv.correlate2d`, which this exercise asks you to write yourself, so it earns no points "
        "(its grading note says what you may use)")
    assert rows[name].feedback == f"✘ Exercise 1.1 ({name}): the function " + in_notebook.split(": ", 1)[1]


def test_the_gate_can_read_the_childs_call():
    """The gate learns which exercise runs from the child's ``run_call`` frame (``cmd``, ``args``, ``kwargs``)."""
    from cnncourse.grading.child import _Child

    names = _Child.run_call.__code__.co_varnames
    assert {"cmd", "args", "kwargs"} <= set(names), (
        "cnncourse/grading/gates.py reads these locals of _Child.run_call; keep them or update the gate")


# ---- libraries loaded while the function runs, tampering, refusals ---------------------------------

LATE = [
    # scipy.ndimage imported inside the function, after the guards: gated as it loads
    ("2.3", "late_scipy", "def late_scipy(x, w):\n    import scipy.ndimage\n"
                          "    return scipy.ndimage.correlate1d(x, w, mode='wrap')\n"),
    # the gate's private tables (the original code) cannot be read
    ("1.1", "gate_defaults", "def gate_defaults(x, w, boundary='zero'):\n"
                             "    gate = vars(cc.signal)['__cnncourse_gate__']\n"
                             "    clones = gate.__defaults__[0]\n"
                             "    target = getattr(cc.signal, 'correlate' + '1d')\n"
                             "    return [c for f, c, *_ in clones if f is target][0](x, w, mode='same', boundary=boundary)\n"),
    # the checks' own helpers are package code too (here not even importable)
    ("9.1", "check_helper", "def check_helper(x, gamma, beta, eps=1e-5):\n"
                            "    from cnncourse.checks.ch09_normalisation import _wrong_axes_forward\n"
                            "    return _wrong_axes_forward(x, gamma, beta, (0, 2, 3), eps)\n"),
    # a thread started by the function has no grader frame on its stack: still refused
    ("1.2", "in_thread", "def in_thread(w, n):\n    import threading\n    out = []\n"
                         "    f = getattr(cc.signal, 'conv' + '_matrix')\n"
                         "    t = threading.Thread(target=lambda: out.append(f(w, n)))\n    t.start()\n    t.join()\n"
                         "    return out[0] if out else np.zeros((n, n))\n"),
    # importing PyTorch inside the function: a clear message about what grading offers
    ("7.1", "torch_inside", "def torch_inside(dy, x, w):\n    import torch\n    return torch.zeros(3)\n"),
    # the package's own calls inside an allowed function are not the student's
    ("10.1", "allowed", "def allowed(x, w1, w2):\n    a, _ = cc.conv.conv_forward(x, w1, None, pad=1)\n"
                        "    m, _ = cc.conv.conv_forward(np.maximum(a, 0), w2, None, pad=1)\n"
                        "    return np.maximum(m + x, 0)\n"),
    # top-level calls of a cell (not while a function is checked) are not graded
    ("1.1", "top_level", "reference = cc.signal.correlate1d(np.arange(4.0), np.ones(3))\n\n"
                         "def top_level(x, w, boundary='zero'):\n    m = len(w) // 2\n"
                         "    p = cc.signal.pad1d(np.asarray(x, float), m, m, boundary)\n"
                         "    return np.array([p[i:i + len(w)] @ w for i in range(len(x))])\n"),
]


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    return _grade(tmp_path_factory.mktemp("late"), LATE, imports="import numpy as np\n\nimport cnncourse as cc\n")


def test_a_library_imported_inside_the_function_is_gated(late):
    assert late["late_scipy"].status == "forbidden", late["late_scipy"].feedback
    assert "uses `scipy.ndimage.correlate1d`" in late["late_scipy"].feedback


def test_removing_the_import_hook_does_not_help(tmp_path):
    """Without the gating finder every later import is refused (scipy.ndimage is not loaded before)."""
    source = ("def no_hook(x, w):\n    import sys\n    sys.meta_path[:] = sys.meta_path[1:]\n"
              "    import scipy.ndimage\n    return scipy.ndimage.correlate1d(x, w, mode='wrap')\n")
    row = _grade(tmp_path, [("2.3", "no_hook", source)], imports="import numpy as np\n\nimport cnncourse as cc\n")["no_hook"]
    assert row.points == 0 and "import hook was removed" in row.feedback, row.feedback


def test_the_gates_tables_cannot_be_read(late):
    row = late["gate_defaults"]
    assert row.points == 0 and "does not allow reading its tripwires" in row.feedback, row.feedback


def test_the_checks_helpers_are_refused(late):
    row = late["check_helper"]
    assert row.status == "forbidden" and "reads the source of cnncourse.checks" in row.feedback, row.feedback


def test_a_thread_does_not_escape_the_policy(late):
    assert late["in_thread"].status == "forbidden", late["in_thread"].feedback


def test_importing_torch_inside_the_function_is_explained(late):
    row = late["torch_inside"]
    assert row.points == 0
    assert "PyTorch" in row.feedback and "not available inside your function during grading" in row.feedback
    assert "top of the notebook" in row.feedback and "ctypes" not in row.feedback, row.feedback


def test_allowed_and_top_level_calls_keep_full_marks(late):
    for name in ("allowed", "top_level"):
        assert late[name].status == "passed", late[name].feedback
