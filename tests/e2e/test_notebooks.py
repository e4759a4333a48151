"""Every notebook opens in JupyterLab, runs top to bottom (Run > Run All Cells) and shows no error."""
from __future__ import annotations

import json
import os
import re

import pytest

from e2e_lab import NOTEBOOKS, artifact

NOTEBOOK_NAMES = sorted(path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

RUN_ALL_TIMEOUT_S = float(os.environ.get("CNNCOURSE_E2E_TIMEOUT", 600))  # generous: CI has two shared cores
SLOW_CELL_S = 15  # a cell a student waits on without feedback
LONG_OUTPUT_LINES = 40  # more text than fits a screen
BIG_IMAGE_PX = (900, 650)  # natural width/height at the course's dpi (8 x 3 inches at 80 dpi = 640 x 240)


def _links(cells) -> list[str]:
    text = "\n".join(cell["source"] for cell in cells if cell["type"] == "markdown")
    return re.findall(r"\]\(([^)\s]+?\.ipynb)(?:#[^)]*)?\)", text)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_runs_in_jupyterlab(lab, name, findings):
    lab.open(name)
    try:
        state = lab.run_all(timeout=RUN_ALL_TIMEOUT_S)
    except AssertionError:
        lab.page.screenshot(path=artifact(f"notebook_{name.removesuffix('.ipynb')}_timeout.png"))
        raise
    errors = lab.errors()
    lab.scroll_to_top()
    lab.page.screenshot(path=artifact(f"notebook_{name.removesuffix('.ipynb')}.png"))

    # Polish a student would notice (recorded, not failed).
    stem = name.removesuffix(".ipynb")
    report = lab.report()
    artifact(f"notebook_{stem}.json").write_text(json.dumps({"run_all_seconds": round(state["seconds"], 1),
                                                             "cells": report}, indent=1))
    if state["seconds"] > 90:
        findings(f"{stem}: Run All takes {state['seconds']:.0f} s in the browser")
    for cell in report:
        where = f"{stem} cell {cell['index']} ({cell['source'].splitlines()[0] if cell['source'] else ''!r})"
        if cell.get("seconds", 0) > SLOW_CELL_S:
            findings(f"{where}: runs {cell['seconds']:.0f} s")
        if cell.get("text_lines", 0) > LONG_OUTPUT_LINES:
            findings(f"{where}: prints {cell['text_lines']} lines of text")
        for image in cell.get("images", []):
            (nw, nh), sw = image["natural"], image["shown"][0]
            if nw > BIG_IMAGE_PX[0] or nh > BIG_IMAGE_PX[1]:
                findings(f"{where}: figure {nw}x{nh} px (larger than the course's small-figure size)")
            if sw and sw < 0.8 * nw:
                findings(f"{where}: figure {nw} px wide is shrunk to {sw} px in a 1280 px window (small text)")
    cells = lab.cells()
    for target in _links(cells):
        if not (NOTEBOOKS / target).exists() and not target.startswith("http"):
            findings(f"{stem}: links to {target}, which does not exist (yet)")
    number = int(stem[:2])
    following = [t for t in _links(cells) if re.match(rf"(\./)?{number + 1:02d}_", t)]
    if not following and number < max(int(n[:2]) for n in NOTEBOOK_NAMES):
        findings(f"{stem}: no link to the next notebook ({number + 1:02d}_...)")
    if following and (lab.server.root / following[-1]).exists() and not errors:
        # Click the link to the next notebook as a student would: it must open that notebook in JupyterLab.
        target = following[-1].removeprefix("./")
        lab.page.locator(f'.jp-RenderedMarkdown a[href*="/files/{target}"]').last.click()
        lab.page.wait_for_function("p => window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.context"
                                   " && window.jupyterapp.shell.currentWidget.context.path === p", arg=target)

    assert not errors, f"{name}: errors after Run All:\n" + "\n".join(errors)
    assert state["executed"] == state["cells"], f"{name}: only {state['executed']} of {state['cells']} code cells ran"
    assert not lab.console_errors, f"{name}: JavaScript errors in the page: {lab.console_errors}"
