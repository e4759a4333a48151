"""The JupyterLite edition (make lite) in headless Chromium, served from 127.0.0.1.

JupyterLab's interface loads from the build alone and its file browser lists every
chapter's student copy.  Starting the Pyodide kernel needs Pyodide's CDN and is not
tested here; what the kernel would install is: the first cell of each notebook installs
the course (under Pyodide only) from the wheel that the build indexes for piplite.
"""
from __future__ import annotations

import json
import sys
import zipfile

import nbformat
import pytest

from e2e_lab import REPO, artifact
from site_server import serve
from test_site import LITE, LITE_PYTHON, NAMES, Offline, build_once

sys.path.insert(0, str(REPO / "site"))
from build_lite import BOOTSTRAP_TAG  # noqa: E402


@pytest.fixture(scope="session")
def lite_url():
    build_once("build_lite.py", LITE, LITE_PYTHON, "lite")
    with serve(LITE) as url:
        yield url


@pytest.fixture
def lite(browser, lite_url):
    visit = Offline(browser, lite_url, service_workers="allow")  # JupyterLite registers one for its files
    try:
        yield visit
    finally:
        visit.context.close()


def test_jupyterlab_loads_and_lists_the_notebooks(lite):
    page = lite.goto("lab/index.html")
    page.wait_for_selector(".jp-DirListing-item", timeout=60_000)
    page.wait_for_function(f"() => document.querySelectorAll('.jp-DirListing-item').length >= {len(NAMES)}",
                           timeout=30_000)
    listed = page.eval_on_selector_all(".jp-DirListing-item .jp-DirListing-itemText",
                                       "els => els.map(e => e.textContent.trim())")
    assert sorted(listed) == sorted(f"{name}.ipynb" for name in NAMES), f"the file browser lists {listed}"
    launcher = page.locator(".jp-Launcher")
    launcher.wait_for()
    assert "Pyodide" in launcher.inner_text(), "no Pyodide kernel in the launcher"
    page.screenshot(path=artifact("lite_lab.png"))
    assert not lite.external, f"loading the interface left 127.0.0.1: {lite.external}"
    assert not lite.errors, f"JavaScript errors: {lite.errors}"


def test_each_notebook_installs_the_course_first_under_pyodide_only():
    for name in NAMES:
        nb = nbformat.read(LITE / "files" / f"{name}.ipynb", as_version=4)
        first = nb.cells[0]
        assert BOOTSTRAP_TAG in first.metadata.get("tags", []), f"{name}: the install cell is not first"
        assert 'sys.platform == "emscripten"' in first.source and "piplite.install" in first.source
        assert nb.metadata["kernelspec"]["name"] == "python"
        assert not any(c.get("outputs") for c in nb.cells), f"{name}: a student copy with outputs"


def test_the_course_wheel_is_indexed_for_piplite():
    index = json.loads((LITE / "pypi" / "all.json").read_text())
    assert "cnncourse" in index, f"piplite's index has no cnncourse: {sorted(index)}"
    wheels = sorted((LITE / "pypi").glob("cnncourse-*-py3-none-any.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert "cnncourse/__init__.py" in names and "cnncourse/conv.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))], "the wheel must be pure Python for Pyodide"
