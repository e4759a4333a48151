"""End-to-end browser tests: JupyterLab driven by Playwright (Python) in headless Chromium.

Opt-in.  The normal ``pytest tests`` run does not collect this folder; run it with

    CNNCOURSE_E2E=1 .venv/bin/python -m pytest tests/e2e -v      # or: make test-browser

(``tests/e2e/install_browser.sh`` installs Chromium and Playwright).  Without
``CNNCOURSE_E2E=1`` the files here are ignored, or, when this folder is named on
the command line, collected and skipped with that reason.  Where Playwright or
a Chromium binary is missing every test here is skipped with the reason.

A session-scoped fixture starts ``jupyter lab`` on a free loopback port with a
random token, a temporary JUPYTER_CONFIG_DIR / JUPYTER_DATA_DIR /
JUPYTER_RUNTIME_DIR / IPYTHONDIR, and its root on a temporary copy of
``notebooks/`` (the repository's notebooks are never opened).  Screenshots and
the server log go to ``build/e2e/``; ``build/e2e/findings.md`` collects what a
student would trip over (slow redraws, big figures, long outputs, links).

Environment: CNNCOURSE_CHROMIUM (path of the browser binary; default: the first
of chromium, chromium-browser, google-chrome on PATH),
CNNCOURSE_E2E_HEADED=1 (show the browser, for debugging).
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest

from e2e_lab import CHROMIUM_ARGS, E2E_DIR, FINDINGS, Lab, find_chromium, lab_server as _lab_server, missing_reason, note

ENABLED = os.environ.get("CNNCOURSE_E2E") == "1"
OPT_IN_REASON = "end-to-end browser tests are opt-in: run with CNNCOURSE_E2E=1 (make test-browser)"


# --------------------------------------------------------------------------- opt-in and skips


def _inside_e2e(path) -> bool:
    path = Path(path).resolve()
    return path == E2E_DIR or E2E_DIR in path.parents


def _named_on_command_line(config) -> bool:
    for arg in config.args:
        target = Path(str(arg).split("::")[0])
        if not target.is_absolute():
            target = Path(config.invocation_params.dir) / target
        if _inside_e2e(target):
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    """Keep `pytest tests` from collecting this folder unless CNNCOURSE_E2E=1."""
    if ENABLED or _named_on_command_line(config):
        return None
    if _inside_e2e(collection_path) and Path(collection_path).resolve() != E2E_DIR:
        return True
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test in a real browser (opt-in, CNNCOURSE_E2E=1)")


def pytest_collection_modifyitems(config, items):
    ours = [item for item in items if _inside_e2e(item.path)]
    if not ours:
        return
    reason = OPT_IN_REASON if not ENABLED else missing_reason()
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if FINDINGS:
        terminalreporter.section("e2e findings (also in build/e2e/findings.md)")
        for line in FINDINGS:
            terminalreporter.write_line(f"- {line}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    """`jupyter lab` on a free loopback port, random token, temporary dirs, root on a copy of notebooks/."""
    try:
        with _lab_server(tmp_path_factory.mktemp("jupyter")) as server:
            yield server
    except RuntimeError as err:
        if "did not start" not in str(err):
            raise
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS,
                                             headless=os.environ.get("CNNCOURSE_E2E_HEADED") != "1")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def lab(browser, lab_server):
    """A fresh browser context (1280 x 900) on the server; its kernels are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    try:
        yield Lab(page, lab_server, console_errors)
    finally:
        context.close()
        try:
            lab_server.shutdown_kernels()
        except (urllib.error.URLError, OSError):
            pass


@pytest.fixture
def findings():
    """``findings("...")`` records something a student would trip over, without failing the test."""
    return note
