"""Per-exercise grading policies (issue 16), in the notebook's own process.

Each exercise earns points only for the student's own code: the check run in a
notebook reports a forbidden route at once (status "forbidden", the grader's
wording), reference and honest solutions keep full marks, every exercise has a
policy, and its markdown states that policy.  The same routes are graded in the
sandbox by ``tests/test_policy_grading.py``.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import scipy.optimize
import scipy.signal
import scipy.special
import scipy.stats

import cnncourse as cc
from cnncourse.checks import EXERCISES, policy
from cnncourse.checks.policies import POLICIES
from cnncourse.grading import notebook as nbio
from cnncourse.grading.validate import policy_problems, validate_notebook

import policy_routes as routes

NUMBERS = sorted(EXERCISES, key=lambda n: tuple(int(p) for p in n.split(".")))
torch = pytest.importorskip("torch")


def _namespace() -> dict:
    return {"np": np, "cc": cc, "scipy": scipy, "importlib": importlib, "torch": torch}


def _function(source: str, name: str):
    namespace = _namespace()
    exec(compile(source, f"<student {name}>", "exec"), namespace)
    return namespace[name]


def _check(number: str, fn):
    """Check ``fn`` as the notebook does: bound in ``__main__`` under the exercise's name."""
    main, name = sys.modules["__main__"], EXERCISES[number].function
    had, old = hasattr(main, name), getattr(main, name, None)
    setattr(main, name, fn)
    try:
        return EXERCISES[number].check(fn)
    finally:
        if had:
            setattr(main, name, old)
        else:
            delattr(main, name)


# ---- every exercise has a policy, and the policy is well formed ----------------------------------

def test_every_exercise_has_a_policy():
    missing = sorted(set(EXERCISES) - set(policy.registered_policies()), key=NUMBERS.index)
    assert not missing, (f"exercises without a grading policy: {missing}; add them to "
                         "cnncourse/checks/policies.py and state them in the markdown "
                         "(python -m cnncourse.checks.policy notebooks/*.ipynb)")


def test_a_policy_can_sit_next_to_its_check(monkeypatch):
    from cnncourse.checks.core import exercise

    registry = dict(EXERCISES)
    monkeypatch.setattr("cnncourse.checks.core.EXERCISES", registry)
    mine = policy.Policy(allow=("cnncourse.dropout",))

    @exercise("99.1", "my_dropout", notebook="99_test", policy=mine)
    def check_my_dropout(fn):  # pragma: no cover - never run
        return None

    assert policy.policy_for("99.1") is mine
    assert policy_problems("99_test", registry) == []
    assert "any function of `cc.dropout`" in mine.sentence()


def test_policies_name_only_registered_exercises():
    assert set(POLICIES) <= set(EXERCISES)


@pytest.mark.parametrize("number", sorted(POLICIES))
def test_policy_targets_exist(number):
    """Every allowlisted name is a package function or module; every denied target resolves."""
    p = POLICIES[number]
    for name in p.allow:
        module, _, attr = name.rpartition(".")
        if name in policy.computing_modules():
            continue
        assert module in policy.computing_modules(), name
        assert callable(getattr(importlib.import_module(module), attr)), name
    for target in p.deny_targets:
        _, _, obj = policy.resolve(target)
        assert callable(obj), target


def test_computing_modules_leave_out_only_the_plumbing():
    modules = policy.computing_modules()
    for name in ("cnncourse.signal", "cnncourse.conv", "cnncourse.nn", "cnncourse.checks.ch01_convolution_1d",
                 "cnncourse.kernels.simulate", "cnncourse.plotting"):
        assert name in modules
    for name in ("cnncourse.backend", "cnncourse.grading.guard", "cnncourse.checks.core", "cnncourse.checks.policy"):
        assert name not in modules


def test_validate_refuses_an_exercise_without_policy(tmp_path):
    source = Path(__file__).parent / "grading" / "source" / "01_convolution_1d.ipynb"
    exercises = dict(EXERCISES)
    exercises["1.9"] = dataclasses.replace(EXERCISES["1.2"], number="1.9")
    del exercises["1.2"]
    assert policy_problems("01_convolution_1d", exercises) and "1.9" in policy_problems("01_convolution_1d", exercises)[0]
    assert policy_problems("01_convolution_1d") == []
    problems = validate_notebook(source, exercises=exercises)
    assert any("exercise 1.9 (toeplitz_matrix) has no grading policy" in p for p in problems), problems


# ---- the markdown states the policy ----------------------------------------------------------------

def _exercise_markdown(number: str) -> str:
    ex = EXERCISES[number]
    nb = nbio.load(routes.NOTEBOOKS / f"{ex.notebook}.ipynb")
    heading = policy.exercise_heading(number)
    cells = [nbio.source(c) for c in nb["cells"] if c.get("cell_type") == "markdown" and heading.search(nbio.source(c))]
    assert cells, f"no markdown cell opens exercise {number} in {ex.notebook}"
    return cells[0]


_NEGATION = re.compile(r"\b(not|no|never|without|don't|do not|may not|cannot)\b", re.IGNORECASE)
_PERMISSION = re.compile(r"\b(may use|you may|can use|will do|is fine|are fine|helps)\b", re.IGNORECASE)


@pytest.mark.parametrize("number", NUMBERS)
def test_markdown_states_the_policy(number):
    text = _exercise_markdown(number)
    stated = policy.stated_policy(text)
    assert stated == " ".join(policy.policy_for(number).sentence().split()), (
        f"exercise {number}: the markdown's grading note differs from its policy; run "
        "python -m cnncourse.checks.policy notebooks/*.ipynb")
    # The rest of the exercise's text must agree: what it forbids is not allowed, what it offers is.
    rest = "\n\n".join(p for p in text.split("\n\n") if not p.strip().startswith(policy.MARK))
    for sentence in re.split(r"(?<=[.;:])\s+", rest):
        for match in re.finditer(r"`cc\.([a-z_0-9.]+)", sentence):
            name = "cnncourse." + match.group(1).rstrip(".")
            before = sentence[: match.start()]
            if _NEGATION.search(before):
                assert not policy.policy_for(number).allows({name}), (number, sentence)
            elif _PERMISSION.search(sentence) and not _NEGATION.search(sentence):
                assert policy.policy_for(number).allows({name}), (number, sentence)


def test_writing_the_statements_again_changes_nothing(tmp_path):
    import shutil

    copy = tmp_path / "01_convolution_1d.ipynb"
    shutil.copy(routes.NOTEBOOKS / "01_convolution_1d.ipynb", copy)
    assert policy.write_statements(copy) == []
    assert copy.read_bytes() == (routes.NOTEBOOKS / "01_convolution_1d.ipynb").read_bytes()


def test_sentence_names_what_is_allowed_and_refused():
    p = POLICIES["1.1"]
    text = p.sentence()
    assert text.startswith(policy.MARK) and "`cc.signal.pad1d`" in text and "any other `cnncourse` function" in text
    assert all(family.label in text for family in p.deny)
    assert "any function of `cc.signal`" in POLICIES["7.1"].sentence()
    assert "any `cnncourse` function is refused" in POLICIES["2.1"].sentence()
    assert "the function `f` you are given" in POLICIES["7.4"].sentence()


# ---- in the notebook: forbidden routes are reported at once ----------------------------------------

def _route_source(number: str, dotted: str) -> str:
    module, _, attr = dotted.rpartition(".")
    return (f"def route(*args, **kwargs):\n"
            f"    return importlib.import_module({module!r}).{attr}(*args, **kwargs)\n")


@pytest.mark.parametrize("number", NUMBERS)
def test_package_routes_are_forbidden_in_the_notebook(number):
    found = routes.package_routes(number)
    for dotted in found:
        result = _check(number, _function(_route_source(number, dotted), "route"))
        assert result.status == "forbidden", (number, dotted, result.message)
        assert f"uses `{policy.display(dotted)}`" in result.message or "uses `cc." in result.message
        assert "which this exercise asks you to write yourself" in result.message


def _bound_call(target: str, args) -> str:
    """Call arguments for ``target`` built from the exercise's inputs, as many as its signature needs."""
    _, _, obj = policy.resolve(target)
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a C function: its profile event fires before it checks arguments
        return "(*args)"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    n = max(len(required), min(len(args), len(positional)))
    return f"(*[args[i % len(args)] for i in range({n})])"


def _aliases(target: str) -> set[str]:
    """Display names of every denied target that is the same function (or shares its code) as ``target``."""
    def key(t):
        obj = policy.resolve(t)[2]
        obj = getattr(obj, "_implementation", obj)
        return id(getattr(obj, "__code__", obj))

    mine = key(target)
    return {policy.display(t) for p in POLICIES.values() for t in p.deny_targets if key(t) == mine}


@pytest.mark.parametrize("number", NUMBERS)
def test_denied_functions_are_forbidden_in_the_notebook(number):
    args, _ = routes.first_case(number)
    for target in routes.deny_routes(number):
        src = f"def route(*args, **kwargs):\n    return {routes.call_expression(target)}{_bound_call(target, args)}\n"
        result = _check(number, _function(src, "route"))
        assert result.status == "forbidden", (number, target, result.message)
        assert any(f"uses `{name}`" in result.message for name in _aliases(target)), result.message


@pytest.mark.parametrize("number, source", routes.ADAPTED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(routes.ADAPTED)])
def test_adapted_routes_are_forbidden_in_the_notebook(number, source):
    result = _check(number, _function(routes.define(source, "route"), "route"))
    assert result.status == "forbidden", result.message
    assert result.message.startswith(f"✘ Exercise {number} (")


def test_the_issue_examples_use_the_graders_wording():
    one_row = _function(routes.define(routes.ADAPTED[0][1], "route"), "route")
    assert _check("1.1", one_row).message == (
        "✘ Exercise 1.1 (correlate_same): uses `cc.conv.correlate2d`, which this exercise asks you to write "
        "yourself, so it earns no points (its grading note says what you may use)")
    scipy_route = _function(routes.define(routes.ADAPTED[7][1], "route"), "route")
    assert "uses `scipy.signal.correlate2d`, which this exercise asks you to write yourself" in \
        _check("3.1", scipy_route).message


def test_a_package_function_handed_in_directly_is_forbidden():
    assert _check("1.2", cc.signal.conv_matrix).status == "forbidden"


def test_a_caught_forbidden_call_still_counts():
    sneaky = _function(routes.define(routes.ADAPTED[2][1], "route"), "route")
    assert _check("1.1", sneaky).status == "forbidden"


# ---- in the notebook: honest solutions keep full marks ---------------------------------------------

@pytest.mark.parametrize("number", NUMBERS)
def test_reference_solution_passes(number):
    solutions = routes.reference_solutions()
    assert number in solutions, f"no solution cell for exercise {number}"
    exercise = EXERCISES[number]
    # an exercise may build on the student's own function from an earlier one (5.4 uses 5.1's im2col)
    earlier = [solutions[n] for n, e in EXERCISES.items()
               if n != number and n in solutions and e.notebook == exercise.notebook
               and re.search(rf"\b{e.function}\b", solutions[number])]
    fn = _function("\n".join([*earlier, solutions[number]]), exercise.function)
    result = _check(number, fn)
    assert result.passed, result.message


@pytest.mark.parametrize("number, source", routes.HONEST, ids=[f"{n}-{i}" for i, (n, _) in enumerate(routes.HONEST)])
def test_honest_solutions_pass(number, source):
    result = _check(number, _function(routes.define(source, "honest"), "honest"))
    assert result.passed, result.message


def test_the_students_earlier_function_is_fine():
    """10.2 reusing the student's own 10.1 function, which itself uses the allowed cc.conv.conv_forward."""
    solutions = routes.reference_solutions()
    namespace = _namespace()
    exec(solutions["10.1"], namespace)
    exec("def residual_block_backward_exercise(dout, x, w1, w2):\n"
         "    out = residual_block_forward_exercise(x, w1, w2)\n"
         "    a, c1 = cc.conv.conv_forward(x, w1, None, pad=1)\n    h = np.maximum(a, 0)\n"
         "    m, c2 = cc.conv.conv_forward(h, w2, None, pad=1)\n    ds = dout * (out > 0)\n"
         "    dh, dw2, _ = cc.conv.conv_backward(ds, c2)\n"
         "    dxm, dw1, _ = cc.conv.conv_backward(dh * (a > 0), c1)\n    return dxm + ds, dw1, dw2\n", namespace)
    assert _check("10.2", namespace["residual_block_backward_exercise"]).passed


def test_the_package_may_call_itself_inside_an_allowed_function():
    """cc.conv.conv_forward (allowed in 10.1) runs fastconv/im2col code inside: not the student's calls."""
    fn = _function(routes.reference_solutions()["10.1"], "residual_block_forward_exercise")
    assert _check("10.1", fn).passed


# ---- wording and the grader's switch ---------------------------------------------------------------

def test_forbidden_message_wording():
    assert policy.forbidden_message(["called scipy.signal.correlate2d"]) == (
        "uses `scipy.signal.correlate2d`, which this exercise asks you to write yourself, so it earns no points "
        "(its grading note says what you may use)")
    assert policy.forbidden_message(["called numpy.correlate", "called cnncourse.signal.correlate1d"]).startswith(
        "uses `cc.signal.correlate1d` and uses `np.correlate`")
    text = policy.forbidden_message(["read the source of cnncourse.signal"])
    assert "reads the source of cnncourse.signal" in text and "not allowed while grading" in text


def test_sandbox_refusals_are_explained():
    text = policy.explain_refusal("the grader does not allow ctypes")
    assert "PyTorch" in text and "not available inside your function during grading" in text
    assert "top of the notebook" in text and "ctypes" not in text
    assert "subprocess" in policy.explain_refusal("the grader does not allow starting processes")
    assert policy.explain_refusal("something else") == "something else"
    assert "not available during grading" in policy.explain_refusal("the grader does not allow reading /etc/passwd")
    assert policy.explain_refusal("the grader does not allow reading its tripwires").endswith("its tripwires")


def test_no_watch_inside_the_grader(monkeypatch):
    cheat = _function(_route_source("1.1", "cnncourse.signal.correlate1d"), "route")
    monkeypatch.setattr(sys.modules["__main__"], "correlate_same", cheat, raising=False)
    with policy.grading():
        assert policy.watch("1.1", cheat) is cheat
    assert policy.watch("1.1", cheat) is not cheat


def test_only_the_exercise_function_is_watched(monkeypatch):
    """Notebook 00 demonstrates the check with the package's own functions: a demo is not graded, not watched."""
    demo = lambda x, w, boundary="zero": cc.signal.correlate1d(x, w, mode="same", boundary=boundary)  # noqa: E731
    assert EXERCISES["1.1"].check(demo).passed
    monkeypatch.setattr(sys.modules["__main__"], "correlate_same", demo, raising=False)
    assert EXERCISES["1.1"].check(demo).status == "forbidden"


def test_a_check_that_wraps_the_function_still_watches_it():
    """Exercise 4.2's check adapts the student's function before run_cases sees it."""
    fn = _function(routes.define(routes.ADAPTED[10][1], "route"), "route")
    assert routes.ADAPTED[10][0] == "4.2" and _check("4.2", fn).status == "forbidden"
