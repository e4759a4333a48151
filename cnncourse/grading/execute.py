"""Run notebooks headless (nbclient) and export them to HTML (nbconvert): ``cnncourse run-notebooks``.

Every notebook is tried; one that fails is reported with the cell and the
error, its partly executed copy is still written, and the command exits
non-zero at the end.  nbclient, nbconvert and nbformat come with the
``dev`` extra (``pip install -e ".[dev]"``).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["find_notebooks", "run_notebook", "run_notebooks"]


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


def run_notebook(path, *, out_notebook=None, out_html=None, cwd=None, timeout: float = 600,
                 kernel: str = "python3") -> str | None:
    """Execute one notebook; write the executed copy and its HTML if asked.  Return None or the error."""
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
    if out_notebook:
        Path(out_notebook).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_notebook)
    if out_html:
        from nbconvert import HTMLExporter

        Path(out_html).parent.mkdir(parents=True, exist_ok=True)
        body, _ = HTMLExporter().from_notebook_node(nb)
        Path(out_html).write_text(body, encoding="utf-8")
    return error


def run_notebooks(paths, out_dir, *, timeout: float = 600, kernel: str = "python3", out=print) -> int:
    """Run every notebook; executed copies go to ``out_dir/notebooks``, HTML to ``out_dir/html``.

    Returns the number of notebooks that failed.
    """
    out_dir = Path(out_dir)
    notebooks = find_notebooks(paths)
    failures = 0
    for path in notebooks:
        try:
            error = run_notebook(path, out_notebook=out_dir / "notebooks" / path.name,
                                 out_html=out_dir / "html" / f"{path.stem}.html", timeout=timeout, kernel=kernel)
        except Exception as err:  # unreadable notebook, missing kernel ...: report, go on
            error = f"{type(err).__name__}: {err}"
        if error:
            failures += 1
            out(f"✘ {path}: {error}")
        else:
            out(f"✔ {path}")
    if not notebooks:
        out("no notebooks found")
    out(f"{len(notebooks) - failures} of {len(notebooks)} notebooks ran; "
        f"outputs in {out_dir}/notebooks and {out_dir}/html")
    return failures
