"""A student's round trip through a released notebook, in the browser.

`cnncourse release` replaces each solution with ``raise NotImplementedError("Exercise N.k")``.
Open the released 01_convolution_1d.ipynb, Run All: its first check says "not attempted".
Then type a correct answer into the exercise cell with the keyboard, run it and the check
cell: the check shows "✔".
"""
from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

from e2e_lab import REPO, artifact

NOTEBOOK = "01_convolution_1d.ipynb"


def _release_reason() -> str | None:
    if not (REPO / "cnncourse" / "cli.py").exists():
        return "cnncourse/cli.py (the `cnncourse release` command) is not written yet"
    probe = subprocess.run([sys.executable, "-m", "cnncourse.cli", "release", "--help"], capture_output=True,
                           text=True, cwd=REPO)
    if probe.returncode != 0:
        return f"`cnncourse release` is not available: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None


def test_released_notebook_check_round_trip(lab, findings, tmp_path):
    reason = _release_reason()
    if reason:
        pytest.skip(reason)
    source = lab.server.root / NOTEBOOK  # the server's temporary copy: the repository is never touched
    if not source.exists():
        pytest.skip(f"notebooks/{NOTEBOOK} does not exist")
    out = lab.server.root / "release"
    done = subprocess.run([sys.executable, "-m", "cnncourse.cli", "release", str(source), "-o", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, f"cnncourse release failed:\n{done.stdout}\n{done.stderr}"
    released = sorted(out.rglob(NOTEBOOK))
    assert released, f"cnncourse release wrote no {NOTEBOOK} under {out}: {sorted(p.name for p in out.rglob('*'))}"
    relpath = released[0].relative_to(lab.server.root).as_posix()

    # The first exercise cell of the release, its check cell, and the answer from the source notebook.
    student = nbformat.read(released[0], as_version=4).cells
    exercise = next(i for i, c in enumerate(student)
                    if c.cell_type == "code" and re.search(r'raise NotImplementedError\("Exercise 1\.\d+"\)', c.source))
    function = re.search(r"^def (\w+)\(", student[exercise].source, flags=re.M).group(1)
    check = next(i for i, c in enumerate(student) if i > exercise and c.cell_type == "code"
                 and re.search(rf"cc\.checks\.check_\w+\(\s*{function}\s*\)", c.source))
    answer = next(c.source for c in nbformat.read(source, as_version=4).cells
                  if c.cell_type == "code" and re.search(rf"^def {function}\(", c.source, flags=re.M))
    assert "NotImplementedError" not in answer

    lab.open(relpath)
    state = lab.run_all(timeout=300)
    if state["executed"] < state["cells"] or lab.errors():
        findings(f"released {NOTEBOOK}: Run All stops with an error before the student has written anything "
                 f"({'; '.join(lab.errors())[:300]}); {state['executed']} of {state['cells']} code cells ran")
    assert lab.page.evaluate(f"() => window.jupyterapp.shell.currentWidget.content.widgets[{check}]"
                             ".model.executionCount") is not None, "Run All stopped before the check cell"
    before = lab.output_text(check)
    lab.cell_screenshot(check, artifact("release_01_check_not_attempted.png"))
    assert "not attempted" in before, f"check cell {check} should say 'not attempted', shows:\n{before}"

    # Type the answer: click into the exercise cell's editor, select all, type.
    editor = lab.cell(exercise).locator(".jp-InputArea-editor .cm-content").first
    editor.scroll_into_view_if_needed()
    editor.click()
    lab.page.keyboard.press("Control+a")
    lab.page.keyboard.insert_text(answer)
    typed = lab.page.evaluate(f"() => window.jupyterapp.shell.currentWidget.content.widgets[{exercise}]"
                              ".model.sharedModel.getSource()")
    assert typed.strip() == answer.strip(), f"the editor holds something else than was typed:\n{typed}"

    lab.run_cell(exercise)
    lab.run_cell(check)
    after = lab.output_text(check)
    lab.cell_screenshot(check, artifact("release_01_check_passed.png"))
    assert "✔" in after, f"after typing the answer the check should pass, it shows:\n{after}"
    assert not [e for e in lab.errors() if e.startswith((f"cell {exercise}:", f"cell {check}:"))]
