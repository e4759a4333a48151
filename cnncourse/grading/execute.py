"""Run notebooks headless (nbclient) and export them to HTML (nbconvert): ``cnncourse run-notebooks``.

Every notebook is tried; one that fails is reported with the cell and the
error, its partly executed copy is still written, and the command exits
non-zero at the end.  nbclient, nbconvert and nbformat come with the
``dev`` extra (``pip install -e ".[dev]"``).

``--in-place`` stores the executed notebook over its source, the way the
course's notebooks are kept in the repository (:func:`prepare_for_storage`).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

__all__ = ["find_notebooks", "run_notebook", "run_notebooks", "prepare_for_storage"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def find_notebooks(paths) -> list[Path]:
    """The ``.ipynb`` files named, or found (sorted, checkpoints skipped) in the folders named."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.glob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
        else:
            found.append(p)
    return found


def _first_error(nb) -> str:
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {i}: {output.get('ename')}: {output.get('evalue')}"
    return ""


STORED_WIDGET_TEXT = "[interactive widget: run this cell to use it]"


def _progress_text(state: dict, model_id: str) -> str | None:
    """The final text of a tqdm notebook bar (an HBox of label, FloatProgress, stats), or None for other widgets."""
    box = state.get(model_id, {})
    children = box.get("state", {}).get("children") or []
    parts = [state.get(str(c).removeprefix("IPY_MODEL_"), {}) for c in children]
    if box.get("model_name") != "HBoxModel" or [p.get("model_name") for p in parts] != \
            ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (p.get("state", {}) for p in parts)

    def text(widget):
        return html.unescape(widget.get("value") or "").replace("\u2007", " ")  # tqdm pads with figure spaces

    label = text(left)
    percent = re.search(r"(\d+)%", label)  # the label's own figure: a bar closed early keeps its last text
    done = int(percent.group(1)) / 100 if percent else (bar.get("value") or 0) / (bar.get("max") or 1)
    cells = min(10, max(0, round(10 * done)))
    return f"{label}|{'█' * cells}{' ' * (10 - cells)}|{text(right)}"


def prepare_for_storage(nb) -> None:
    """Make an executed notebook fit to commit, in place.

    Widget state is dropped: it would make the file several times larger, and
    a live kernel recreates it.  Without it JupyterLab cannot draw a stored
    widget ("Error displaying widget: model not found"), so every widget
    output whose state was there is turned into plain text: a progress bar
    into its final line ("training: 100%|...| 30/30 [...] loss=0.05"), any
    other widget into :data:`STORED_WIDGET_TEXT`.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            model_id = view.get("model_id", "") if isinstance(view, dict) else ""
            if model_id in state:
                output["data"] = {"text/plain": _progress_text(state, model_id) or STORED_WIDGET_TEXT}
    nb.metadata.pop("widgets", None)


def run_notebook(path, *, out_notebook=None, out_html=None, cwd=None, timeout: float = 600,
                 kernel: str = "python3", store: bool = False) -> str | None:
    """Execute one notebook; write the executed copy and its HTML if asked.  Return None or the error.

    ``store``: :func:`prepare_for_storage` before writing the executed copy.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                            resources={"metadata": {"path": str(Path(cwd or path.parent).resolve())}})
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = _first_error(nb) or str(err).strip().splitlines()[-1]
    except (DeadKernelError, TimeoutError, RuntimeError) as err:  # kernel died, cell timed out, no kernel
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    if out_html:
        from nbconvert import HTMLExporter

        Path(out_html).parent.mkdir(parents=True, exist_ok=True)
        body, _ = HTMLExporter().from_notebook_node(nb)  # before storage: the HTML keeps live widget state
        Path(out_html).write_text(body, encoding="utf-8")
    if store:
        prepare_for_storage(nb)
    if out_notebook and not (store and error):  # never overwrite a stored notebook with a failed run
        Path(out_notebook).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_notebook)
    return error


def run_notebooks(paths, out_dir, *, timeout: float = 600, kernel: str = "python3", out=print,
                  in_place: bool = False) -> int:
    """Run every notebook; executed copies go to ``out_dir/notebooks``, HTML to ``out_dir/html``.

    ``in_place``: the executed copy, prepared for storage, replaces the source
    notebook instead (a notebook that fails is left as it was).
    Returns the number of notebooks that failed.
    """
    out_dir = Path(out_dir)
    notebooks = find_notebooks(paths)
    failures = 0
    for path in notebooks:
        try:
            error = run_notebook(path, out_notebook=path if in_place else out_dir / "notebooks" / path.name,
                                 out_html=out_dir / "html" / f"{path.stem}.html", timeout=timeout, kernel=kernel,
                                 store=in_place)
        except Exception as err:  # unreadable notebook, missing kernel ...: report, go on
            error = f"{type(err).__name__}: {err}"
        if error:
            failures += 1
            out(f"✘ {path}: {error}")
        else:
            out(f"✔ {path}")
    if not notebooks:
        out("no notebooks found")
    where = "notebooks stored in place" if in_place else f"outputs in {out_dir}/notebooks"
    out(f"{len(notebooks) - failures} of {len(notebooks)} notebooks ran; {where}, HTML in {out_dir}/html")
    return failures
