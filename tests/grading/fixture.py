"""The grader's fixture notebook, shared by tests/test_grading.py and tests/test_grading_attacks.py.

Its source (exercises 1.1 and 1.2), the per-exercise forbidden lists the tests
grade with, and its student release.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from cnncourse.checks import EXERCISES
from cnncourse.grading import release as rel

SOURCE = Path(__file__).parent / "source" / "01_convolution_1d.ipynb"
FORBIDDEN = {"1.1": ("cnncourse.signal.correlate1d", "cnncourse.signal.convolve1d"),
             "1.2": ("cnncourse.signal.conv_matrix",)}


def exercises() -> dict:
    """The course's exercises, with the fixture's forbidden lists on 1.1 and 1.2."""
    ex = dict(EXERCISES)
    for number, names in FORBIDDEN.items():
        ex[number] = dataclasses.replace(ex[number], forbidden=names)
    return ex


def release(out: Path) -> Path:
    """Write the fixture's student release into ``out``; return ``out``."""
    rel.release([SOURCE], out, exercises=exercises())
    return out
