"""The grader: release, sandboxed autograding of a corpus of submissions, reports.

The corpus (``tests/grading/submissions/<case>/01_convolution_1d.ipynb``) is
built from the release of ``tests/grading/source/01_convolution_1d.ipynb``, a
small source notebook with exercises 1.1 and 1.2; each case is one behaviour
(a correct or partial answer, a crash, a tampering attempt ...).  The whole
corpus is graded once, two submissions at a time, and every row is asserted.
"""
from __future__ import annotations

import base64
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncourse.checks import EXERCISES
from cnncourse.checks.core import Exercise
from cnncourse.grading import autograde, notebook as nbio, release as rel, report, wire
from cnncourse.grading.sandbox import Limits

HERE = Path(__file__).parent / "grading"
sys.path.insert(0, str(HERE))
import fixture  # noqa: E402  (tests/grading/fixture.py: the fixture notebook and its release)
from fixture import FORBIDDEN, SOURCE, exercises as _exercises  # noqa: E402
CORPUS = HERE / "submissions"
LIMITS = Limits(exercise_timeout=8, notebook_timeout=90, memory_mb=1024, output_mb=1, startup_timeout=90)

# case -> ((status, points) of exercise 1.1, (status, points) of exercise 1.2)
EXPECTED = {
    "correct": (("passed", 1), ("passed", 1)),
    "partial": (("passed", 1), ("failed", 0)),
    "empty_release": (("not attempted", 0), ("not attempted", 0)),
    "allowed_elsewhere": (("passed", 1), ("forbidden", 0)),  # allowlist in 1.1; package refused by default in 1.2
    # failures, each contained to its exercise or submission
    "infinite_loop": (("timeout", 0), ("passed", 1)),
    "toplevel_loop": (("passed", 1), ("timeout", 0)),
    "memory_bomb": (("memory limit", 0), ("passed", 1)),
    "sys_exit": (("exited", 0), ("passed", 1)),
    "os_exit": (("exited", 0), ("passed", 1)),
    "segfault": (("crashed", 0), ("passed", 1)),
    "kernel_dies": (("crashed", 0), ("passed", 1)),
    "huge_print": (("output limit", 0), ("passed", 1)),
    "cell_error": (("passed", 1), ("error", 0)),
    "renamed": (("missing", 0), ("passed", 1)),
    "invalid_json": (("invalid notebook", 0), ("invalid notebook", 0)),
    "no_cells": (("invalid notebook", 0), ("invalid notebook", 0)),
    # tampering earns nothing
    "tamper_checks": (("failed", 0), ("not attempted", 0)),
    "tamper_numpy": (("failed", 0), ("failed", 0)),
    "tamper_builtins": (("failed", 0), ("not attempted", 0)),
    "fake_print": (("not attempted", 0), ("failed", 0)),
    "fake_report": (("failed", 0), ("not attempted", 0)),
    "forge_channel": (("error", 0), ("passed", 1)),  # old-format frames: garbage sizes, over the stray cap
    "forbidden_direct": (("forbidden", 0), ("forbidden", 0)),
    "forbidden_sneaky": (("forbidden", 0), ("forbidden", 0)),
    "forbidden_reload": (("forbidden", 0), ("failed", 0)),
}

# case -> (text in the feedback of 1.1, text in the feedback of 1.2)
FEEDBACK = {
    "infinite_loop": ("the function ran longer than the 8 s limit", "✔"),
    "toplevel_loop": ("✔", "the cell that defines it (its top-level code) ran longer than the 8 s limit"),
    "memory_bomb": ("needed more than the 1024 MB limit", "✔"),
    "sys_exit": ("sys.exit(3)", "✔"),
    "os_exit": ("exit code 0", "✔"),
    "segfault": ("SIGSEGV", "✔"),
    "kernel_dies": ("SIGKILL", "✔"),
    "huge_print": ("printed more than the 1 MB output limit", "✔"),
    "cell_error": ("✔", "raised SyntaxError"),
    "renamed": ("no cell defines `def correlate_same(`", "✔"),
    "invalid_json": ("not valid JSON", "not valid JSON"),
    "no_cells": ("no list of cells", "no list of cells"),
    "allowed_elsewhere": ("✔", "uses `cc.signal.correlate1d`, which this exercise asks you to write yourself"),
    "forbidden_direct": ("uses `cc.signal.correlate1d`, which this exercise", "uses `cc.signal.conv_matrix`"),
    "forbidden_sneaky": ("uses `cc.signal.correlate1d`", "reads the source of cnncourse.signal"),
    "forbidden_reload": ("reads the source of cnncourse.signal", "could not get source code"),
    "forge_channel": ("that was not a reply", "✔"),
}


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    return fixture.release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def graded(release_dir):
    paths = sorted(CORPUS.iterdir())
    rows = autograde.grade(paths, release_dir, jobs=2, limits=LIMITS, exercises=_exercises(), progress=False)
    return {student: [r for r in rows if r.student == student] for student in {r.student for r in rows}}


# ---- release --------------------------------------------------------------------------------

def test_release_manifest(release_dir):
    manifest = rel.read_manifest(release_dir)
    entry = manifest["notebooks"]["01_convolution_1d"]
    assert [(e["exercise"], e["function"], e["points"]) for e in entry["exercises"]] == [
        ("1.1", "correlate_same", 1.0), ("1.2", "toeplitz_matrix", 1.0)]
    assert [e["grade_id"] for e in entry["exercises"]] == ["ex-1_1-correlate_same", "ex-1_2-toeplitz_matrix"]
    assert entry["exercises"][0]["forbidden"] == list(FORBIDDEN["1.1"])
    assert entry["total_points"] == manifest["total_points"] == 2.0
    assert entry["answers"] == [{"grade_id": "answer-01-1", "cell": 8, "points": 0}]


def test_release_student_copy(release_dir):
    nb = nbio.load(release_dir / SOURCE.name)
    sources = [nbio.source(c) for c in nb["cells"]]
    text = "\n".join(sources)
    assert "BEGIN SOLUTION" not in text and "np.pad" not in text and "Each diagonal holds" not in text
    assert '    raise NotImplementedError("Exercise 1.1")' in sources[3]
    assert '    raise NotImplementedError("Exercise 1.2")' in sources[6]
    assert rel.PLACEHOLDER in sources[8]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    meta = [c["metadata"].get("nbgrader") for c in nb["cells"]]
    assert meta[3] == {"grade": False, "solution": True, "locked": False, "grade_id": "ex-1_1-correlate_same",
                       "schema_version": 3, "cell_type": "code"}
    assert meta[4] == {"grade": True, "solution": False, "locked": True, "grade_id": "check-1_1-correlate_same",
                       "points": 1.0, "schema_version": 3, "cell_type": "code"}
    assert meta[8]["grade"] and meta[8]["solution"] and meta[8]["points"] == 0
    assert meta[0] is None and meta[1] is None
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(set(ids)) and all(c.isalnum() or c in "_-" for i in ids for c in i)


def test_corpus_empty_release_is_the_release(release_dir):
    """The corpus was built from this release (a change of metadata format leaves it valid)."""
    released = nbio.load(release_dir / SOURCE.name)["cells"]
    stored = nbio.load(CORPUS / "empty_release" / SOURCE.name)["cells"]
    assert [(c["cell_type"], nbio.source(c)) for c in released] == [(c["cell_type"], nbio.source(c)) for c in stored]


def test_release_nbgrader_source(tmp_path):
    rel.release([SOURCE], tmp_path)
    plain = nbio.load(tmp_path / SOURCE.name)
    rel.release([SOURCE], tmp_path / "nbgrader", nbgrader_source=True)
    nb = nbio.load(tmp_path / "nbgrader" / SOURCE.name)
    assert "### BEGIN SOLUTION" in nbio.source(nb["cells"][3])
    assert nbio.source(nb["cells"][4]).endswith(
        "### BEGIN HIDDEN TESTS\nassert (cc.checks.check_correlate_same(correlate_same)).passed\n### END HIDDEN TESTS")
    assert [c["metadata"].get("nbgrader") for c in nb["cells"]] == [c["metadata"].get("nbgrader") for c in plain["cells"]]


def _fake_exercises():
    def check(fn):  # never called here
        raise AssertionError

    return {"9.1": Exercise("9.1", "first", check, "09_fake", 2.0),
            "9.2": Exercise("9.2", "second", check, "09_fake", 1.0)}


def _write_nb(path, cells):
    nb = {"cells": [{"cell_type": kind, "metadata": {}, "source": src, **({"outputs": [{"output_type": "stream",
           "name": "stdout", "text": "old"}], "execution_count": 7} if kind == "code" else {})} for kind, src in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_release_regions_take_their_enclosing_exercise(tmp_path):
    src = ("def first(x):\n    if x:\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"
           "    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n\n\n"
           "def second(y):\n\t### BEGIN SOLUTION\n\treturn y\n\t### END SOLUTION\n")
    nb = _write_nb(tmp_path / "09_fake.ipynb", [("code", src), ("code", "check_first(first)")])
    manifest = rel.release([nb], tmp_path / "out", exercises=_fake_exercises())
    out = nbio.load(tmp_path / "out" / "09_fake.ipynb")
    assert nbio.source(out["cells"][0]) == (
        'def first(x):\n    if x:\n        raise NotImplementedError("Exercise 9.1")\n'
        '    raise NotImplementedError("Exercise 9.1")\n\n\n'
        'def second(y):\n\traise NotImplementedError("Exercise 9.2")\n')
    assert manifest["notebooks"]["09_fake"]["total_points"] == 3.0


@pytest.mark.parametrize("cells, message", [
    ([("code", "def first():\n    ### BEGIN SOLUTION\n    return 1\n"), ("code", "def second(): pass")], "without a matching END"),
    ([("code", "def first():\n    return 1\n    ### END SOLUTION\n"), ("code", "def second(): pass")], "without a matching BEGIN"),
    ([("code", "def first(): pass"), ("code", "def second(): pass"), ("code", "x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION")],
     "defines no registered exercise"),
    ([("code", "def first(): pass")], "exercise 9.2 is registered"),
    ([("code", "def first(): pass"), ("code", "def second(): pass"), ("markdown", "<!-- BEGIN SOLUTION --> no end")], "unbalanced"),
])
def test_release_errors_name_the_problem(tmp_path, cells, message):
    nb = _write_nb(tmp_path / "09_fake.ipynb", cells)
    with pytest.raises(rel.ReleaseError, match=message):
        rel.release([nb], tmp_path / "out", exercises=_fake_exercises())


# ---- grading the corpus ---------------------------------------------------------------------

def test_corpus_has_a_case_for_each_expectation():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


def test_every_submission_gets_its_rows(graded):
    assert sorted(graded) == sorted(EXPECTED)
    assert all([r.exercise for r in rows] == ["1.1", "1.2"] for rows in graded.values())


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_rows(graded, case):
    rows = graded[case]
    got = [(r.exercise, r.status, r.points, r.max, r.notebook) for r in rows]
    want = [(ex, status, float(points), 1.0, "01_convolution_1d")
            for ex, (status, points) in zip(("1.1", "1.2"), EXPECTED[case])]
    assert got == want, [r.feedback for r in rows]
    for row, text in zip(rows, FEEDBACK.get(case, ("", ""))):
        assert text in row.feedback


def _in_process(source: str, name: str):
    namespace: dict = {}
    exec("import numpy as np\nimport cnncourse as cc\n" + source, namespace)
    return namespace[name]


def test_feedback_is_the_checks_own_message(graded):
    cells = nbio.load(CORPUS / "partial" / SOURCE.name)["cells"]
    wrong = _in_process(nbio.source(cells[6]), "toeplitz_matrix")
    assert graded["partial"][1].feedback == EXERCISES["1.2"].check(wrong).message
    assert "likely cause" in graded["partial"][1].feedback
    right = _in_process(nbio.source(cells[3]), "correlate_same")
    assert graded["partial"][0].feedback == EXERCISES["1.1"].check(right).message
    unattempted = _in_process(nbio.source(nbio.load(CORPUS / "empty_release" / SOURCE.name)["cells"][3]), "correlate_same")
    assert graded["empty_release"][0].feedback == EXERCISES["1.1"].check(unattempted).message


def test_fake_report_files_are_not_written(graded):
    assert not Path("/tmp/cnncourse-fake-report.json").exists()
    assert graded["fake_report"][0].points == 0


def test_reports(graded, tmp_path):
    rows = [r for case in ("correct", "partial", "invalid_json") for r in graded[case]]
    written = report.write_reports(rows, tmp_path, meta={"release": "r"})
    assert written["csv"].read_text().splitlines()[0] == "student,notebook,exercise,points,max,status,feedback,submission"
    with open(written["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["student"], r["status"], r["points"]) for r in table] == [
        (r.student, r.status, str(r.points)) for r in rows]
    assert "likely cause" in table[3]["feedback"]  # multi-line diagnostics survive the CSV
    data = json.loads(written["json"].read_text())
    assert data["summary"] == {"correct": {"points": 2.0, "max": 2.0}, "invalid_json": {"points": 0.0, "max": 2.0},
                               "partial": {"points": 1.0, "max": 2.0}}
    assert [(r["student"], r["exercise"], r["status"]) for r in data["rows"]][:2] == [
        ("correct", "1.1", "passed"), ("correct", "1.2", "passed")]
    md = (tmp_path / "feedback" / report.feedback_name("partial")).read_text()
    assert "Total: **1 / 2** points." in md and "| 1.2 | 0 / 1 | failed |" in md and "likely cause" in md


def test_source_passes_with_forbidden_lists(release_dir):
    sub = autograde.Submission(SOURCE, "source", "01_convolution_1d")
    rows = autograde.grade_submission(sub, rel.read_manifest(release_dir), limits=LIMITS, exercises=_exercises())
    assert [r.status for r in rows] == ["passed", "passed"]


def test_unknown_notebook_gets_a_row(release_dir, tmp_path):
    other = _write_nb(tmp_path / "99_other.ipynb", [("code", "x = 1")])
    rel.release([SOURCE], tmp_path / "two", exercises=_exercises())
    manifest = rel.read_manifest(tmp_path / "two")
    manifest["notebooks"]["02_filters"] = {"exercises": [], "total_points": 0}
    (tmp_path / "two" / rel.MANIFEST).write_text(json.dumps(manifest))
    rows = autograde.grade([other], tmp_path / "two", exercises=_exercises(), progress=False)
    assert [(r.student, r.status, r.points, r.max) for r in rows] == [("99_other", "invalid notebook", 0.0, 0.0)]


def test_find_submissions_names_students():
    notebooks = {"01_convolution_1d": {}, "02_filters": {}}
    subs = autograde.find_submissions([CORPUS / "correct", Path("x/alice_01_convolution_1d.ipynb"),
                                       Path("bob/02_filters.ipynb")], notebooks)
    assert [(s.student, s.notebook) for s in subs] == [
        ("correct", "01_convolution_1d"), ("alice", "01_convolution_1d"), ("bob", "02_filters")]


# ---- pieces ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, True, 3, 2**80, 1.5, float("nan"), 1 + 2j, "text", np.float32(2.5), np.arange(6.0).reshape(2, 3),
    np.array([1, 2], dtype=np.int8), (np.ones(2), [1, 2.0]), list(range(100)), {"a": np.zeros(1)},
])
def test_wire_roundtrip(value):
    back = wire.decode(wire.loads(wire.dumps({"v": wire.encode(value)}))["v"])
    assert type(back) is type(value)
    if isinstance(value, dict):
        np.testing.assert_array_equal(back["a"], value["a"])
    elif isinstance(value, tuple):
        np.testing.assert_array_equal(back[0], value[0])
        assert back[1] == value[1]
    else:
        np.testing.assert_array_equal(back, value)


def test_wire_keeps_only_a_type_name_of_other_objects():
    class Sneaky:
        def __reduce__(self):
            return (os.system, ("true",))

    back = wire.decode(wire.encode(Sneaky()))
    assert type(back).__name__ == "Sneaky" and not callable(back)
    assert "expected a numeric array, got Sneaky" in EXERCISES["1.1"].check(lambda x, w, b: Sneaky()).message


@pytest.mark.parametrize("spec", [
    {"t": "ndarray", "dtype": "<f8", "shape": [10**12], "data": ""},  # claims more than it sends
    {"t": "ndarray", "dtype": "|O", "shape": [1], "data": base64.b64encode(b"x" * 8).decode()},  # objects
    {"t": "ndarray", "dtype": "<f8", "shape": [-1], "data": ""},
    {"t": "pickle", "v": "gASVAAAA"},
    {"t": "list", "items": "not a list of values"},
    "not even a dict",
])
def test_wire_rejects_malformed_values(spec):
    with pytest.raises(wire.FrameError):
        wire.decode(spec)


def test_frames_time_out_and_refuse_oversize():
    r, w = os.pipe()
    try:
        with pytest.raises(wire.FrameTimeout):
            wire.read_frame(r, __import__("time").monotonic() + 0.05)
        os.write(w, (0).to_bytes(8, "big") + (2**40).to_bytes(8, "big"))  # header: sequence number, length
        with pytest.raises(wire.FrameError, match="exceeds"):
            wire.read_frame(r, None)
    finally:
        os.close(r)
        os.close(w)


def test_import_code_and_magics():
    nb = {"cells": [{"cell_type": "code", "source": "%matplotlib inline\nimport numpy as np\nx = 1\nfrom scipy import (b,\n  c)\nimport _posixsubprocess"},
                    {"cell_type": "code", "source": "import os\ndef f(): pass"}]}
    assert nbio.import_code(nb, skip={1}) == ("try:\n    import numpy as np\nexcept BaseException:\n    pass\n"
                                              "try:\n    from scipy import b, c\nexcept BaseException:\n    pass\n")
    assert nbio.mentions("def f(x):\n    return cc.signal.correlate1d(x, x)\n", "f", ["cnncourse.signal.correlate1d"])
    assert not nbio.mentions("def f(x):\n    return correlate1d_mine(x)\n", "f", ["cnncourse.signal.correlate1d"])


# ---- the sandbox itself ----------------------------------------------------------------------

ESCAPES = [
    "__import__('subprocess').run(['true'])",
    "os.system('true')",
    "os.fork()",
    "__import__('_posixsubprocess').fork_exec(*[None] * 23)",
    "__import__('ctypes').CDLL(None).getpid()",
    "__import__('gc').get_objects()",
    "sys.settrace(lambda *a: None)",
    "os.kill(os.getppid(), 0)",
    "open('/tmp/cnncourse-escape-test', 'w')",
    "open(TEST_FILE)",
    "open('/proc/%d/environ' % os.getppid())",
    "__import__('socket').create_connection(('127.0.0.1', 9), timeout=1)",
    "os.symlink('/etc/passwd', 'link')",
    "os.chdir('/')",
    "setattr(probe, '__code__', (lambda: 0).__code__)",
]


def _probe(snippets, prelude=""):
    """Run each snippet inside a sandbox child; return what each did."""
    import pickle
    import time

    from cnncourse.grading.sandbox import Sandbox, default_policy

    code = (f"import os, sys\nTEST_FILE = {__file__!r}\n{prelude}\n"
            "def probe(snippets):\n"
            "    out = []\n"
            "    for s in snippets:\n"
            "        try:\n"
            "            eval(s)\n"
            "            out.append('ran')\n"
            "        except BaseException as err:\n"
            "            out.append(type(err).__name__)\n"
            "    return out\n")
    with Sandbox(LIMITS, default_policy()) as box:
        box.start(time.monotonic() + 60)
        assert box.request({"op": "exec", "code": code}, time.monotonic() + 30)["ok"]
        reply = box.request({"op": "call", "name": "probe", "payload": pickle.dumps(((snippets,), {}))},
                            time.monotonic() + 30)
    return dict(zip(snippets, wire.decode(reply["value"])))


def test_sandbox_refuses_escapes():
    got = _probe(ESCAPES)
    assert [s for s, outcome in got.items() if outcome == "ran"] == []
    assert not Path("/tmp/cnncourse-escape-test").exists()


def test_landlock_holds_when_python_level_checks_are_subverted():
    from cnncourse.grading import landlock

    if landlock.abi() < 1:
        pytest.skip("this kernel has no Landlock")
    # make every os.path.realpath answer a path inside the scratch folder: the audit hook's
    # path checks are fooled, the kernel's are not
    prelude = "import posixpath\nposixpath._joinrealpath = lambda path, rest, strict, seen: (os.getcwd() + '/x', True)"
    got = _probe(["open(TEST_FILE)", "open('/tmp/cnncourse-escape-test', 'w')", "os.listdir(os.path.dirname(TEST_FILE))"],
                 prelude)
    assert set(got.values()) == {"PermissionError"}, got


def test_in_place_modification_is_reported_as_in_the_notebook(release_dir, tmp_path):
    nb = nbio.load(CORPUS / "correct" / SOURCE.name)
    src = nbio.source(nb["cells"][3]).replace("    return np.array(", "    out = np.array(") + \
        "\n    x[0] = 99.0  # spoils the caller's array\n    return out\n"
    src = src.replace("x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)", "w = np.asarray(w, dtype=float)")
    nb["cells"][3]["source"] = src
    rel.write_notebook(nb, tmp_path / SOURCE.name)
    sub = autograde.Submission(tmp_path / SOURCE.name, "inplace", "01_convolution_1d")
    row = autograde.grade_submission(sub, rel.read_manifest(release_dir), limits=LIMITS, exercises=_exercises())[0]
    assert row.status == "failed" and "modified its input argument 1 in place" in row.feedback
    assert row.feedback == EXERCISES["1.1"].check(_in_process(src, "correlate_same")).message
