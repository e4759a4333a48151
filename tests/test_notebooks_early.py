"""Regression tests for the text of notebooks 00-04 (issue 21): what is asked before it is answered."""
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _cells(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4).cells


def _first(cells, pattern, kind=None):
    for i, cell in enumerate(cells):
        if (kind is None or cell.cell_type == kind) and re.search(pattern, cell.source):
            return i
    raise AssertionError(f"no cell matches {pattern!r}")


def test_exercise_2_1_is_asked_before_its_taps_are_shown():
    cells = _cells("02_filters_and_finite_differences.ipynb")
    asked = _first(cells, r"## Exercise 2\.1", "markdown")
    for tell_tale in (r"\[0,\\,-1,\\,1\]", r"forward_difference\(h\)", r"\[-1,\\,0,\\,1\]/2h"):
        assert _first(cells, tell_tale) > asked, tell_tale


def test_notebook_00_does_not_present_the_package_call_as_an_answer():
    cells = _cells("00_start_here.ipynb")
    correct = cells[_first(cells, r"def correct\(", "code")].source
    assert "correlate1d" not in correct and "check_correlate_same(correct)" in correct
    shortcut = _first(cells, r"forbidden shortcut", "markdown")
    assert "forbidden" in cells[shortcut + 1].source


@pytest.mark.parametrize("name, pattern", [
    ("03_convolution_2d.ipynb", r"often even-sized"),
    ("04_convolution_layers.ipynb", r"do not enlarge the field at once"),
    ("02_filters_and_finite_differences.ipynb", r"sampled 1D version does not sum to zero"),
])
def test_corrected_sentences_stay_corrected(name, pattern):
    assert not any(re.search(pattern, cell.source) for cell in _cells(name))


def test_a_kernel_is_learned_by_gradient_descent_in_notebook_04():
    cells = _cells("04_convolution_layers.ipynb")
    code = cells[_first(cells, r"learning_rate \* grad", "code")]
    assert "assert np.allclose(w_learned, true_kernel" in code.source
    assert any("image/png" in out.get("data", {}) for out in code.outputs)       # the loss/kernel figure
