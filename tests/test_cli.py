"""The ``cnncourse`` command on the grading fixture: release, validate, grade, run-notebooks, doctor."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnncourse.cli import main
from cnncourse.grading import notebook as nbio
from cnncourse.grading import release as rel

HERE = Path(__file__).parent / "grading"
SOURCE = HERE / "source" / "01_convolution_1d.ipynb"
CORPUS = HERE / "submissions"
FAST = ["--timeout", "8", "--memory-mb", "1024"]


def test_release_writes_copies_and_manifest(tmp_path, capsys):
    assert main(["release", str(SOURCE), "-o", str(tmp_path)]) == 0
    assert (tmp_path / SOURCE.name).exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(manifest["notebooks"]) == ["01_convolution_1d"]
    assert "01_convolution_1d.ipynb: 2 exercise(s), 2 point(s)" in capsys.readouterr().out


def test_release_without_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rel, "default_notebooks", lambda root=None: [])
    assert main(["release", "-o", str(tmp_path)]) == 2
    assert "no notebooks" in capsys.readouterr().err


def test_release_reports_a_broken_source(tmp_path, capsys):
    nb = nbio.load(SOURCE)
    nb["cells"][3]["source"] = nbio.source(nb["cells"][3]).replace("    ### END SOLUTION", "")
    rel.write_notebook(nb, tmp_path / SOURCE.name)
    assert main(["release", str(tmp_path / SOURCE.name), "-o", str(tmp_path / "out")]) == 1
    assert "without a matching END" in capsys.readouterr().err


def test_validate_fixture(capsys):
    assert main(["validate", str(SOURCE), *FAST]) == 0
    assert "✔ 01_convolution_1d.ipynb: 2 exercise(s): source passes, release not attempted" in capsys.readouterr().out


def test_validate_flags_a_wrong_solution(tmp_path, capsys):
    nb = nbio.load(SOURCE)
    nb["cells"][6]["source"] = nbio.source(nb["cells"][6]).replace("    return M\n", "    return M.T\n")
    rel.write_notebook(nb, tmp_path / SOURCE.name)
    assert main(["validate", str(tmp_path / SOURCE.name), *FAST]) == 1
    out = capsys.readouterr().out
    assert "✘ 01_convolution_1d.ipynb: 1 problem(s)" in out and "source, exercise 1.2: failed" in out


def test_validate_execute_runs_the_student_copy(capsys):
    pytest.importorskip("nbclient")
    assert main(["validate", str(SOURCE), "--execute", "--cell-timeout", "120", *FAST]) == 0
    assert "student copy runs" in capsys.readouterr().out


def test_grade_writes_reports(tmp_path, capsys):
    assert main(["release", str(SOURCE), "-o", str(tmp_path / "release")]) == 0
    subs = [str(CORPUS / case) for case in ("correct", "partial", "empty_release", "invalid_json")]
    assert main(["grade", *subs, "--release", str(tmp_path / "release"), "-o", str(tmp_path / "report"),
                 "--jobs", "2", "--no-progress", *FAST]) == 0
    out = capsys.readouterr().out
    assert "correct: 2 / 2" in out and "partial: 1 / 2" in out and "invalid_json: 0 / 2" in out
    data = json.loads((tmp_path / "report" / "grades.json").read_text())
    assert [(r["student"], r["exercise"], r["status"], r["points"]) for r in data["rows"]] == [
        ("correct", "1.1", "passed", 1.0), ("correct", "1.2", "passed", 1.0),
        ("empty_release", "1.1", "not attempted", 0.0), ("empty_release", "1.2", "not attempted", 0.0),
        ("invalid_json", "1.1", "invalid notebook", 0.0), ("invalid_json", "1.2", "invalid notebook", 0.0),
        ("partial", "1.1", "passed", 1.0), ("partial", "1.2", "failed", 0.0)]
    assert (tmp_path / "report" / "grades.csv").exists()
    from cnncourse.grading.report import feedback_name  # <name>-<hash>.md: unique per student

    assert sorted(p.name for p in (tmp_path / "report" / "feedback").iterdir()) == sorted(
        feedback_name(s) for s in ("correct", "empty_release", "invalid_json", "partial"))


def test_grade_needs_a_release(tmp_path, capsys):
    assert main(["grade", str(CORPUS / "correct"), "--release", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    assert "cnncourse release" in capsys.readouterr().err


def test_run_notebooks_reports_failures_and_goes_on(tmp_path, capsys):
    pytest.importorskip("nbclient")
    pytest.importorskip("nbconvert")
    src = tmp_path / "nbs"
    src.mkdir()
    shutil.copy(SOURCE, src / SOURCE.name)
    broken = nbio.load(SOURCE)
    broken["cells"] = broken["cells"][:2] + [{"cell_type": "code", "id": "boom", "metadata": {}, "outputs": [],
                                              "execution_count": None, "source": "1 / 0"}]
    rel.write_notebook(broken, src / "00_broken.ipynb")
    out_dir = tmp_path / "build"
    assert main(["run-notebooks", str(src), "--out", str(out_dir), "--timeout", "120"]) == 1
    out = capsys.readouterr().out
    assert "✘" in out and "00_broken.ipynb: cell 2: ZeroDivisionError" in out
    assert f"✔ {src / SOURCE.name}" in out
    assert sorted(p.name for p in (out_dir / "notebooks").iterdir()) == ["00_broken.ipynb", SOURCE.name]
    assert sorted(p.name for p in (out_dir / "html").iterdir()) == ["00_broken.html", "01_convolution_1d.html"]
    executed = nbio.load(out_dir / "notebooks" / SOURCE.name)
    printed = json.dumps([c.get("outputs") for c in executed["cells"]])
    assert "all 16 cases pass" in printed


def test_run_notebooks_in_place_stores_a_progress_bar_at_its_final_text(tmp_path, capsys):
    pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='steps'): pass"),
                nbformat.v4.new_code_cell("1 / 0")]
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    nb.cells = nb.cells[:1]
    nbformat.write(nb, good)
    before_bad = bad.read_text()
    assert main(["run-notebooks", str(good), str(bad), "--in-place", "--out", str(tmp_path / "b")]) == 1
    assert "notebooks stored in place" in capsys.readouterr().out
    stored = nbformat.read(good, as_version=4)
    assert "widgets" not in stored.metadata
    (output,) = stored.cells[0].outputs
    assert list(output["data"]) == ["text/plain"]  # JupyterLab cannot draw a widget whose state is gone
    assert output["data"]["text/plain"].startswith("steps: 100%|██████████| 3/3 [")
    assert bad.read_text() == before_bad  # a failed run never replaces the stored notebook


def test_prepare_for_storage_says_run_the_cell_for_other_widgets_and_keeps_unknown_ones():
    nbformat = pytest.importorskip("nbformat")
    from cnncourse.grading.execute import STORED_WIDGET_TEXT, prepare_for_storage

    def widget_output(model_id):
        view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
        return nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": view,
                                                            "text/plain": "VBox(...)"})

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("explorer()", outputs=[widget_output("box"), widget_output("gone")])]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        "box": {"model_name": "VBoxModel", "state": {"children": []}}}}}
    prepare_for_storage(nb)
    explorer, unknown = nb.cells[0].outputs
    assert explorer["data"] == {"text/plain": STORED_WIDGET_TEXT} and "widgets" not in nb.metadata
    assert "application/vnd.jupyter.widget-view+json" in unknown["data"]  # no state to judge it by: untouched


def test_a_progress_bar_closed_early_is_drawn_from_its_own_label():
    from cnncourse.grading.execute import _progress_text

    def html_model(value):
        return {"model_name": "HTMLModel", "state": {"value": value}}

    state = {"bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
             "l": html_model("gone:\u2007\u20070%"), "r": html_model("\u20070/5\u2007[00:00&lt;?]"),
             "p": {"model_name": "FloatProgressModel", "state": {"value": 5.0, "max": 5.0}}}
    assert _progress_text(state, "bar") == "gone:  0%|          | 0/5 [00:00<?]"
    assert _progress_text(state, "l") is None


def test_doctor(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for label in ("Python", "NumPy", "CuPy", "GPU", "CUDA driver", "CUDA runtime", "kernels", "notebooks will use"):
        assert any(line.startswith(label) for line in out.splitlines()), label


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "cnncourse.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("release", "validate", "grade", "run-notebooks", "doctor"):
        assert command in done.stdout
