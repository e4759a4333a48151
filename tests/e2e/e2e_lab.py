"""Support for the end-to-end tests: a JupyterLab server in temporary dirs, and a page driver.

Used by tests/e2e/conftest.py (fixtures) and the tests.  Nothing here imports Playwright;
the tests get a Playwright page through the fixtures.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "build" / "e2e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

#: What a student would trip over, gathered by the tests; written to build/e2e/findings.md as it grows.
FINDINGS: list[str] = []


def note(finding: str) -> None:
    """Record something a student would trip over (does not fail the test)."""
    if finding not in FINDINGS:
        FINDINGS.append(finding)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "findings.md").write_text("# e2e findings\n\n" + "".join(f"- {f}\n" for f in FINDINGS))


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def find_chromium() -> str | None:
    explicit = os.environ.get("CNNCOURSE_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_reason() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (run tests/e2e/install_browser.sh)"
    if find_chromium() is None:
        return ("no Chromium binary found (apt-get install chromium, run tests/e2e/install_browser.sh, "
                "or set CNNCOURSE_CHROMIUM)")
    return None


# --------------------------------------------------------------------------- the JupyterLab server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


class LabServer:
    """A running `jupyter lab` (url, token, root folder, log file) with a tiny REST client."""

    def __init__(self, url: str, token: str, root: Path, log_path: Path, process: subprocess.Popen):
        self.url, self.token, self.root, self.log_path, self.process = url, token, root, log_path, process

    def api(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions") or []:
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            except urllib.error.URLError:
                pass

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


@contextlib.contextmanager
def lab_server(base: Path):
    """Run `jupyter lab` on a copy of notebooks/ under `base`, with config/data/runtime dirs there too."""
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    config_dir, data_dir, runtime_dir = base / "config", base / "data", base / "runtime"
    for folder in (config_dir, data_dir, runtime_dir, base / "ipython"):
        folder.mkdir()
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    # No news/update toasts (no network here, and they cover the page); cell timings recorded for the report.
    _write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"recordTiming": True})
    _write_json(config_dir / "jupyter_server_config.json", {
        "ServerApp": {"open_browser": False},
        "LabApp": {"expose_app_in_browser": True, "news_url": None,
                   "check_for_updates_class": "jupyterlab.NeverCheckForUpdate", "extension_manager": "readonly"},
    })
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_DATA_DIR": str(data_dir),
           "JUPYTER_RUNTIME_DIR": str(runtime_dir), "IPYTHONDIR": str(base / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("JUPYTER_PATH", None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyter-server.log"
    token = secrets.token_hex(24)
    last_error = ""
    for _attempt in range(3):  # the port is free when picked; retry if someone takes it meanwhile
        port = _free_port()
        log = open(log_path, "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = LabServer(f"http://127.0.0.1:{port}", token, root, log_path, process)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        else:
            last_error = log_path.read_text(errors="replace")[-3000:]
            if process.poll() is None:
                process.terminate()
                process.wait(20)
            log.close()
            continue
        try:
            yield server
        finally:
            try:
                server.shutdown_kernels()
            except (urllib.error.URLError, OSError):
                pass
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
        return
    raise RuntimeError(f"JupyterLab did not start; end of its log:\n{last_error}")


# --------------------------------------------------------------------------- driving the page


# JavaScript run in the page; `window.jupyterapp` is there because of LabApp.expose_app_in_browser.
_JS_PANEL = "const app = window.jupyterapp; const w = app.shell.currentWidget;"
JS_STATE = _JS_PANEL + """
  if (!w || !w.sessionContext || !w.content) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const prompts = Array.from(w.content.node.querySelectorAll('.jp-InputPrompt')).map(p => p.textContent);
  return {
    path: w.context.path,
    kernel: kernel ? kernel.status : null,
    connection: kernel ? kernel.connectionStatus : null,
    cells: cells.length,
    executed: cells.filter(c => c.model.executionCount !== null).length,
    pending: prompts.filter(p => p.includes('*')).length
             + cells.filter(c => c.model.executionState === 'running').length,
    errors: cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error')),
    statusbar: Array.from(document.querySelectorAll('#jp-main-statusbar *'))
                    .map(e => e.textContent).filter(t => / \\| /.test(t)).slice(-1)[0] || '',
  };
"""
JS_ERRORS = _JS_PANEL + """
  const found = [];
  w.content.widgets.forEach((c, i) => {
    if (c.model.type !== 'code') return;
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') found.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      const text = Array.isArray(o.text) ? o.text.join('') : (o.text || '');
      if (o.output_type === 'stream' && o.name === 'stderr' && /Traceback/.test(text))
        found.push(`cell ${i}: stderr traceback: ${text.slice(0, 300)}`);
    }
  });
  for (const el of w.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    if (/Traceback/.test(el.textContent)) found.push('stderr output with a traceback: ' + el.textContent.slice(0, 300));
  for (const el of w.node.querySelectorAll('.jp-OutputArea-output'))
    if (/Error displaying widget|Failed to load model class/.test(el.textContent))
      found.push('widget failed to render: ' + el.textContent.slice(0, 200));
  return found;
"""
JS_REPORT = _JS_PANEL + """
  const cells = [];
  w.content.widgets.forEach((c, i) => {
    const entry = {index: i, type: c.model.type, source: c.model.sharedModel.getSource().slice(0, 80)};
    if (c.model.type === 'code') {
      let lines = 0;
      for (const o of c.model.outputs.toJSON()) {
        const text = o.text || (o.data && !o.data['image/png'] && !o.data['text/html'] && o.data['text/plain']) || '';
        lines += (Array.isArray(text) ? text.join('') : text).split('\\n').length;
      }
      entry.text_lines = lines;
      const ex = c.model.getMetadata('execution') || {};
      if (ex['iopub.execute_input'] && ex['shell.execute_reply'])
        entry.seconds = (Date.parse(ex['shell.execute_reply']) - Date.parse(ex['iopub.execute_input'])) / 1000;
      entry.images = Array.from(c.node.querySelectorAll('.jp-OutputArea-output img')).map(img => ({
        natural: [img.naturalWidth, img.naturalHeight], shown: [img.clientWidth, img.clientHeight]}));
    }
    cells.push(entry);
  });
  return cells;
"""


class Lab:
    """A JupyterLab page with the few actions the tests need."""

    def __init__(self, page, server: LabServer, console_errors: list[str]):
        self.page, self.server, self.console_errors = page, server, console_errors

    # -- opening and kernel state
    def open(self, path: str, *, timeout: float = 120) -> None:
        """Open /lab/tree/<path> and wait until its kernel is connected and idle.

        ``?reset`` starts from an empty workspace, so tabs of earlier tests (and their kernels) do not come back.
        """
        self.page.goto(f"{self.server.url}/lab/tree/{path}?reset&token={self.server.token}", wait_until="domcontentloaded")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                    "&& window.jupyterapp.shell.currentWidget.context "
                                    f"&& window.jupyterapp.shell.currentWidget.context.path === {json.dumps(path)}",
                                    timeout=timeout * 1000)
        self.wait_for_kernel_idle(timeout=timeout)

    def state(self) -> dict | None:
        return self.page.evaluate(f"() => {{ {JS_STATE} }}")

    def wait_for_kernel_idle(self, *, timeout: float = 120) -> None:
        # A run-all sent before the kernel is connected is silently dropped: wait for "Idle" first.
        self.page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(
            timeout=timeout * 1000)
        self.page.wait_for_function(f"() => {{ {JS_STATE} }}",  # null until the panel is there
                                    timeout=timeout * 1000)
        self._poll(lambda s: s["kernel"] == "idle" and s["connection"] == "connected", timeout,
                   "the kernel to be connected and idle")

    def _poll(self, ready, timeout: float, what: str, *, stable: int = 1) -> dict:
        deadline, hits, state = time.monotonic() + timeout, 0, None
        while time.monotonic() < deadline:
            state = self.state()
            hits = hits + 1 if state and ready(state) else 0
            if hits >= stable:
                return state
            self.page.wait_for_timeout(300)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last state {state}")

    # -- running
    def menu(self, menu: str, command: str) -> None:
        """Click a main-menu entry, e.g. menu("Run", "runmenu:run-all")."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()

    def run_all(self, *, timeout: float = 180) -> dict:
        """Clear outputs, Run > Run All Cells, wait for busy -> idle with every code cell executed.

        Returns the final state; stops waiting early when a cell errors (run-all stops there).
        """
        self.menu("Edit", "editmenu:clear-all")  # Edit > Clear Outputs of All Cells
        self._poll(lambda s: s["executed"] == 0, 30, "outputs to be cleared")
        start = time.monotonic()
        self.menu("Run", "runmenu:run-all")  # Run > Run All Cells
        self._poll(lambda s: s["pending"] > 0 or s["kernel"] == "busy" or s["executed"] == s["cells"], 30,
                   "run-all to start (busy)")
        state = self._poll(lambda s: s["kernel"] == "idle" and s["pending"] == 0
                           and (s["executed"] == s["cells"] or s["errors"]), timeout,
                           "every cell to run and the kernel to go idle", stable=3)
        state["seconds"] = time.monotonic() - start
        return state

    def run_cell(self, index: int, *, timeout: float = 60) -> None:
        """Select cell `index`, Run > Run Selected Cell and Do not Advance, wait until it has run."""
        self.page.evaluate(f"() => {{ {_JS_PANEL} w.content.activeCellIndex = {index}; w.content.mode = 'command'; }}")
        before = self.page.evaluate(f"() => {{ {_JS_PANEL} return w.content.widgets[{index}].model.executionCount; }}")
        self.menu("Run", "notebook:run-cell")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.page.evaluate(f"() => {{ {_JS_PANEL} const c = w.content.widgets[{index}]; "
                                     "return [c.model.executionCount, c.model.executionState]; }")
            if now[0] is not None and now[0] != before and now[1] != "running" and self.state()["kernel"] == "idle":
                return
            self.page.wait_for_timeout(200)
        raise AssertionError(f"cell {index} did not finish in {timeout} s")

    # -- reading
    def errors(self) -> list[str]:
        return self.page.evaluate(f"() => {{ {JS_ERRORS} }}")

    def report(self) -> list[dict]:
        return self.page.evaluate(f"() => {{ {JS_REPORT} }}")

    def cells(self) -> list[dict]:
        return self.page.evaluate(f"() => {{ {_JS_PANEL} return w.content.widgets.map(c => "
                                  "({type: c.model.type, source: c.model.sharedModel.getSource()})); }")

    def output_text(self, index: int) -> str:
        return self.page.evaluate(f"() => {{ {_JS_PANEL} const c = w.content.widgets[{index}]; "
                                  "return c.outputArea ? c.outputArea.node.innerText : ''; }")

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def cell_screenshot(self, index: int, path) -> None:
        """Screenshot one cell after scrolling it into view (cells above may change height when shown)."""
        for _ in range(2):
            self.page.evaluate(f"async () => {{ {_JS_PANEL} await w.content.scrollToItem({index}, 'center'); }}")
            self.page.wait_for_timeout(400)
        self.cell(index).screenshot(path=path)

    def scroll_to_top(self) -> None:
        self.page.evaluate(f"async () => {{ {_JS_PANEL} w.content.activeCellIndex = 0; w.content.mode = 'command';"
                           " await w.content.scrollToItem(0, 'start'); }")
        self.page.wait_for_timeout(300)

