"""The site's strict build (site/build_site.py) refuses a broken link, a missing image and a chapter out of order.

Each test builds a copy of the course (the stored notebooks) into a temporary folder,
after breaking it in one way, and expects the build to stop and name
the problem.  A sound copy builds.  Runs with make site's own venv (.venv-site).
"""
from __future__ import annotations

import shutil
import subprocess

import nbformat
import pytest

from e2e_lab import REPO

SITE_PYTHON = REPO / ".venv-site" / "bin" / "python"  # make site's own venv
if not SITE_PYTHON.exists():
    pytest.skip(".venv-site does not exist: run `make site` once", allow_module_level=True)

CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _course(tmp_path, names=None):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for path in CHAPTERS:
        shutil.copy2(path, notebooks / (names or {}).get(path.name, path.name))
    return notebooks


def _build(tmp_path, notebooks):
    return subprocess.run([str(SITE_PYTHON), str(REPO / "site" / "build_site.py"), "--notebooks", str(notebooks),
                           "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), ],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def _append_markdown(path, text):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(text))
    nbformat.write(nb, path)


def test_a_sound_copy_builds(tmp_path):
    done = _build(tmp_path, _course(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "chapters" / f"{CHAPTERS[1].stem}.html").exists()
    assert (tmp_path / "out" / "student" / CHAPTERS[1].name).exists()


def test_a_broken_link_fails_the_build(tmp_path):
    notebooks = _course(tmp_path)
    _append_markdown(notebooks / CHAPTERS[1].name, "More in [the next chapter](02_does_not_exist.ipynb).")
    done = _build(tmp_path, notebooks)
    assert done.returncode != 0, "a link to a missing chapter should fail the build"
    assert "02_does_not_exist" in done.stdout + done.stderr


def test_a_missing_image_fails_the_build(tmp_path):
    notebooks = _course(tmp_path)
    _append_markdown(notebooks / CHAPTERS[0].name, "![a figure](figures/missing.png)")
    done = _build(tmp_path, notebooks)
    assert done.returncode != 0, "a missing image should fail the build"
    assert "missing.png" in done.stdout + done.stderr


def test_a_chapter_out_of_order_fails_the_build(tmp_path):
    second = CHAPTERS[1].name
    notebooks = _course(tmp_path, {second: "02" + second[2:]})
    done = _build(tmp_path, notebooks)
    assert done.returncode != 0, "two chapters numbered 02 (and no 01) should fail the build"
    assert "out of order" in done.stdout + done.stderr
