"""Hostile submissions (issues 20 and 22): none can earn a point, leak, forge a report, abort or hang a run.

One batch (``tests/grading/attacks.py``: honest copies plus one submission per
attack) is graded once, two at a time; each attack has its own assertions on
that batch, and the batch as a whole must write a complete report in which
every honest row passes.  Attacks on the sandbox itself are probed in a
single child; the pieces (frames, reports, names, clean-up) are tested
directly.  Every test is bounded (well under 1 GB and 30 s of its own).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnncourse.grading import autograde, notebook as nbio, release as rel, report, sandbox, wire
from cnncourse.grading.sandbox import Limits, Sandbox, default_policy

HERE = Path(__file__).parent / "grading"
sys.path.insert(0, str(HERE))
import attacks  # noqa: E402  (tests/grading/attacks.py: data builders, not tests)
import fixture  # noqa: E402  (tests/grading/fixture.py: the fixture notebook and its release)
from fixture import FORBIDDEN, SOURCE, exercises as _exercises  # noqa: E402

LIMITS = Limits(exercise_timeout=4, notebook_timeout=60, memory_mb=1024, output_mb=1, startup_timeout=60,
                scratch_mb=8)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    return fixture.release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def batch(release_dir, tmp_path_factory):
    """The whole attack corpus graded in one run: (rows by student, expected, report folder, seconds)."""
    folder = tmp_path_factory.mktemp("attacks")
    paths, expected = attacks.build(folder)
    start = time.monotonic()
    rows = autograde.grade(paths, release_dir, jobs=2, limits=LIMITS, exercises=_exercises(), progress=False)
    elapsed = time.monotonic() - start
    out = folder / "report"
    report.write_reports(rows, out)
    by_student: dict = {}
    for r in rows:
        by_student.setdefault(r.student, []).append(r)
    return by_student, expected, out, elapsed


def _rows(batch, student):
    rows = batch[0][student]
    return [(r.status, r.points) for r in rows], [r.feedback for r in rows]


# ---- the batch as a whole -------------------------------------------------------------------

def test_batch_writes_a_complete_report_and_every_honest_row_passes(batch):
    by_student, expected, out, elapsed = batch
    students = set(by_student)
    for name in expected:
        if name == "honest [*]":
            assert len([s for s in students if s.startswith("honest [")]) == 2
        else:
            assert name in students, sorted(students)
    assert all(len(rows) == 2 for rows in by_student.values())
    honest = [r for s, rows in by_student.items() if s.startswith("honest0") for r in rows]
    assert len(honest) == 8 and all(r.status == "passed" and r.points == 1 for r in honest)
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == sum(len(rows) for rows in by_student.values())
    data = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    assert len(data["rows"]) == len(table)
    assert len(list((out / "feedback").glob("*.md"))) == len(by_student)
    assert not list(out.glob("**/.*.tmp"))  # atomic writes leave no temporary file


@pytest.mark.parametrize("case", sorted(attacks.ATTACKS) + ["stop_reading", "deep_parse", "deep_json", "symlink",
                                                            "fifo"])
def test_attack_rows(batch, case):
    got, feedback = _rows(batch, case)
    want = batch[1][case]
    for (status, points), expect, text in zip(got, want, feedback):
        if expect is None:
            assert points == 0 and status != "passed", text
        else:
            assert (status, points) == expect, text


def test_stray_frames_end_the_child_without_being_parsed(batch):
    _, feedback = _rows(batch, "stray_flood")
    assert "that was not a reply" in feedback[0]


def test_reply_that_would_parse_into_millions_of_objects_is_refused(batch):
    _, feedback = _rows(batch, "reply_bomb")
    assert "too many values to parse" in feedback[0]


def test_in_place_change_is_seen_by_the_grader(batch):
    _, feedback = _rows(batch, "inplace_hidden")
    assert "modified its input argument 1 in place" in feedback[0]


def test_forbidden_call_recorded_outside_the_child(batch):
    _, feedback = _rows(batch, "forbidden_hidden")
    assert "uses `cc.signal.correlate1d`" in feedback[0]


def test_forged_labels_end_in_a_row_not_a_crash(batch):
    _, feedback = _rows(batch, "forge_labels")
    # every package function outside 1.1's allowlist is refused, so a forged record of one only costs the
    # forger this exercise: a row that names the call, never a crash or a retry loop
    assert "cc.signal.conv_matrix" in feedback[0] and "earns no points" in feedback[0]


def test_dirty_messages_are_escaped_everywhere(batch):
    _, feedback = _rows(batch, "dirty_message")
    text = feedback[0]
    assert "\\udcff" in text and "\\x1b" in text and "\\u202e" in text and "\\x00" in text
    assert not any(c in text for c in ("\udcff", "\x1b", "\u202e", "\x00", "\r"))
    out = batch[2]
    md = (out / "feedback" / report.feedback_name("dirty_message")).read_text(encoding="utf-8")
    assert [ln for ln in md.splitlines() if ln.startswith("Total")] == ["Total: **1 / 2** points."]
    assert md.count("```") == 4  # two fenced diagnostics, neither closed early
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        assert "\\udcff" in f.read()


def test_nothing_leaks_from_the_stack_or_modules(batch):
    _, feedback = _rows(batch, "stack_walk")
    assert "LEAK:[]" in feedback[0], feedback[0]


def test_hung_command_pipe_times_out(batch):
    _, feedback = _rows(batch, "stop_reading")
    assert all("timed out" in text for text in feedback)


def test_scratch_quota(batch):
    got, feedback = _rows(batch, "scratch_fill")
    assert got[0][1] == 0
    assert "scratch folder is full" in feedback[0] or "output limit" in feedback[0] or "quota" in feedback[0]


def test_links_and_fifos_are_refused_unread(batch):
    for case in ("symlink", "fifo"):
        _, feedback = _rows(batch, case)
        assert all("not a regular file" in text for text in feedback)
        assert "BEGIN SOLUTION" not in "".join(feedback)


def test_deep_notebooks_are_rows_not_crashes(batch):
    _, feedback = _rows(batch, "deep_json")
    assert "not valid JSON (RecursionError" in feedback[0]


def test_report_names_cannot_forge_reports(batch):
    by_student, _, out, _ = batch
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    formula = [r for r in table if "HYPERLINK" in r["student"]]
    assert formula and all(r["student"].startswith("'=") for r in formula)
    assert all(not r[k].startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for k in r)
    evil = [s for s in by_student if s.startswith("evil")]
    assert evil == ["evil # Total: **2 of 2** points <img src=x onerror=alert(1)>"]
    md = (out / "feedback" / report.feedback_name(evil[0])).read_text(encoding="utf-8")
    assert [ln for ln in md.splitlines() if ln.startswith("Total:")] == ["Total: **1 / 2** points."]
    assert "<img" not in md and "&lt;img" in md
    assert "\n# Total" not in md


def test_two_submissions_of_one_student_are_flagged_not_merged(batch):
    by_student = batch[0]
    pair = sorted(s for s in by_student if s.startswith("honest ["))
    assert len(pair) == 2
    statuses = sorted(tuple(r.status for r in by_student[s]) for s in pair)
    assert statuses == [("passed", "failed"), ("passed", "passed")]
    assert all(by_student[s][0].feedback.startswith("⚠ 2 submissions") for s in pair)


def test_names_that_sanitise_alike_keep_their_own_feedback(batch):
    out = batch[2]
    files = {report.feedback_name("Zoé"), report.feedback_name("Zoë")}
    assert len(files) == 2 and all((out / "feedback" / f).exists() for f in files)
    assert "Feedback for Zoé" in (out / "feedback" / report.feedback_name("Zoé")).read_text(encoding="utf-8")


# ---- the sandbox probed directly ------------------------------------------------------------

def _probe(snippets, prelude=""):
    code = (f"import os, sys, socket, shutil\nTEST_FILE = {__file__!r}\n{prelude}\n"
            "def probe(snippets):\n"
            "    out = []\n"
            "    for s in snippets:\n"
            "        try:\n"
            "            exec(s, globals())\n"
            "            out.append('ran')\n"
            "        except BaseException as err:\n"
            "            out.append(type(err).__name__)\n"
            "    return out\n")
    with Sandbox(LIMITS, default_policy()) as box:
        ready = box.start(time.monotonic() + 60)
        assert box.request({"op": "exec", "code": code}, time.monotonic() + 30)["ok"]
        reply = box.request({"op": "call", "name": "probe", "payload": pickle.dumps(((snippets,), {}))},
                            time.monotonic() + 30)
    return ready, dict(zip(snippets, wire.decode(reply["value"])))


KERNEL_ESCAPES = [
    "os.memfd_create('hold')",
    "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))",
    "socket.socket(socket.AF_UNIX).connect('/run/dbus/system_bus_socket')",
    "socket.socketpair()",
    "os.setsid()",
    "os.fork()",
    "os.posix_spawn('/bin/true', ['true'], {})",
    "shutil.copy('/lib64/ld-linux-x86-64.so.2', 'ld.so'); os.chmod('ld.so', 0o755); os.execv('ld.so', ['ld.so'])",
    "open('/dev/shm/cnncourse-probe', 'wb').write(b'x')",
    "os.close(os.open('/dev/shm/cnncourse-probe', os.O_WRONLY | os.O_CREAT))",
    "KEEP = [open(f'fd{i}', 'w') for i in range(100)]",  # RLIMIT_NOFILE 64
]


def test_kernel_layers_refuse_processes_programs_sockets_memfd():
    ready, got = _probe(KERNEL_ESCAPES)
    assert [s for s, outcome in got.items() if outcome == "ran"] == [], got
    assert not Path("/dev/shm/cnncourse-probe").exists()
    from cnncourse.grading import seccomp

    if seccomp.available():
        assert ready["seccomp"] is True


# Rewriting the guard's module state, or any function's defaults, changes nothing for the audit hook.
GUARD_REWRITES = """
from cnncourse.grading import guard as _g
for _name in list(vars(_g)):
    if _name.isupper() and isinstance(getattr(_g, _name), frozenset):
        setattr(_g, _name, frozenset())
_g._WRITE_FLAGS = 0
_g.os = None
"""


def test_no_compiled_module_from_scratch():
    load = ("open('evil.cpython-311-x86_64-linux-gnu.so', 'wb').write(b'\\x7fELF not really');"
            "import importlib.machinery, importlib.util;"
            "loader = importlib.machinery.ExtensionFileLoader('evil', os.path.abspath("
            "'evil.cpython-311-x86_64-linux-gnu.so'));"
            "loader.create_module(importlib.util.spec_from_loader('evil', loader))")
    _, got = _probe([load])
    assert got == {load: "PermissionError"}


def test_the_guard_cannot_be_rewritten_from_inside():
    _, got = _probe(["os.chdir('/')", "open(TEST_FILE)", "__import__('gc').get_objects()",
                     "_g._trip.__defaults__ = (print,)", "_g._scratch_usage.__defaults__ = (os.scandir, 0)",
                     "_g._make_hook.__kwdefaults__ = {}", "probe.__code__ = (lambda s: 0).__code__",
                     "open('/tmp/cnncourse-guard-rewrite', 'w')", "os.fork()"], GUARD_REWRITES)
    assert [s for s, outcome in got.items() if outcome == "ran"] == [], got
    assert not Path("/tmp/cnncourse-guard-rewrite").exists()
    _, got = _probe(["import collections; collections.namedtuple('P', 'a b', defaults=(1,))",
                     "probe.__defaults__ = (1,)"])  # the standard library and student functions may set defaults
    assert set(got.values()) == {"ran"}, got


def test_seccomp_filter_in_a_plain_process():
    from cnncourse.grading import seccomp

    if not seccomp.available():
        pytest.skip("no seccomp here")
    code = ("import os, socket, threading\nfrom cnncourse.grading import seccomp\nassert seccomp.install()\n"
            "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
            "for f in (os.fork, lambda: socket.socket(), lambda: os.memfd_create('x'),"
            " lambda: os.execv('/bin/true', ['true'])):\n"
            "    try:\n        f(); print('ran')\n    except OSError as e:\n        print(e.errno)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["1", "1", "1", "1"], out.stderr


# ---- pieces ---------------------------------------------------------------------------------

def test_write_to_a_reader_that_stopped_reading_has_a_deadline():
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        start = time.monotonic()
        with pytest.raises(wire.FrameTimeout):
            wire.write_frame(w, b"x" * (1 << 20), time.monotonic() + 0.5)
        assert time.monotonic() - start < 3
        start = time.monotonic()
        with pytest.raises(wire.FrameTimeout):  # no byte taken for `stall` seconds: given up long before the deadline
            wire.write_frame(w, b"x" * (1 << 20), time.monotonic() + 600, stall=0.3)
        assert time.monotonic() - start < 3
    finally:
        os.close(r)
        os.close(w)


def _fake_box(frames: bytes):
    """A Sandbox whose reply pipe holds ``frames`` (no child: only the grader's reading is tested)."""
    box = Sandbox(LIMITS, {})
    r, w = os.pipe()
    rec_r, rec_w = os.pipe()
    os.write(w, frames)
    box._result_fd, box._record_fd, box._seq = r, rec_r, 5
    os.set_blocking(rec_r, False)
    return box, (r, w, rec_r, rec_w)


def test_receive_skips_stray_frames_unparsed_and_caps_them(monkeypatch):
    good = json.dumps({"seq": 5, "answer": 1}).encode()
    stray = struct.pack(">QQ", 4, 9) + b"not json!"
    box, fds = _fake_box(stray * 3 + struct.pack(">QQ", 5, len(good)) + good)
    try:
        assert box._receive(time.monotonic() + 2) == {"seq": 5, "answer": 1}
        assert box._stray == 3 * (16 + 9)
    finally:
        for fd in fds:
            os.close(fd)
    monkeypatch.setattr(sandbox, "STRAY_BYTES", 50)
    box, fds = _fake_box(stray * 3 + struct.pack(">QQ", 5, len(good)) + good)
    try:
        with pytest.raises(sandbox.SandboxError, match="that was not a reply"):
            box._receive(time.monotonic() + 2)
    finally:
        for fd in fds:
            os.close(fd)


def test_loads_refuses_object_floods_before_parsing():
    with pytest.raises(wire.FrameError, match="too many values"):
        wire.loads(b"[" + b"{}," * 200_000 + b"{}]")
    with pytest.raises(wire.FrameError):
        wire.loads(b"[" * 100_000 + b"]" * 100_000)
    assert wire.loads(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_remove_tree_handles_any_depth(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(1500):  # 1500 levels of 50-character names: deeper than recursion, longer than PATH_MAX
        os.mkdir("a" * 50, dir_fd=fd)
        child = os.open("a" * 50, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    (lambda f: (os.write(f, b"x"), os.close(f)))(os.open("file", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)
    os.symlink("/etc", root / "link")  # links are removed, never followed
    sandbox.remove_tree(str(root))
    assert not root.exists() and Path("/etc/passwd").exists()


def test_find_submissions_refuses_links_and_fifos_and_flags_duplicates(tmp_path):
    notebooks = {"01_convolution_1d": {}}
    (tmp_path / "alice").mkdir()
    os.symlink(SOURCE, tmp_path / "alice" / "01_convolution_1d.ipynb")
    (tmp_path / "bob").mkdir()
    os.mkfifo(tmp_path / "bob" / "01_convolution_1d.ipynb")
    (tmp_path / "carol").mkdir()
    os.symlink(HERE / "submissions", tmp_path / "carol" / "linked_folder")
    (tmp_path / "dave").mkdir()
    (tmp_path / "dave" / "01_convolution_1d.ipynb").write_text("{}")
    (tmp_path / "dave_01_convolution_1d.ipynb").write_text("{}")
    bad = tmp_path / "x\x1b[31m\u202e\nname"
    bad.mkdir()
    subs = autograde.find_submissions([tmp_path / n for n in ("alice", "bob", "carol", "dave")]
                                      + [tmp_path / "dave_01_convolution_1d.ipynb", bad], notebooks)
    by = {s.student: s for s in subs}
    assert "not a regular file (a link)" in by["alice"].problem
    assert "not a regular file (a FIFO" in by["bob"].problem
    assert by["carol"].notebook is None  # the linked folder is not followed: nothing found
    daves = [s for s in subs if s.student.startswith("dave [")]
    assert len(daves) == 2 and all(s.note.startswith("⚠ 2 submissions") for s in daves)
    assert "x\\x1b[31m\\u202e name" in by


def test_fifo_never_blocks_the_grader(tmp_path, release_dir):
    os.mkfifo(tmp_path / "01_convolution_1d.ipynb")
    start = time.monotonic()
    with pytest.raises(nbio.InvalidNotebook, match="not a regular file"):
        nbio.load(tmp_path / "01_convolution_1d.ipynb")
    assert time.monotonic() - start < 2


def test_parser_errors_become_invalid_notebook_rows(tmp_path, release_dir):
    nb = json.loads(attacks.CORRECT.read_text())
    nb["cells"][3]["source"] = 'def correlate_same(x, w, boundary="zero"):\n    return -' + "-" * 100_000 + "1\n"
    path = tmp_path / "01_convolution_1d.ipynb"
    path.write_text(json.dumps(nb))
    sub = autograde.Submission(path, "deep", "01_convolution_1d")
    rows = autograde.grade_submission(sub, rel.read_manifest(release_dir), limits=LIMITS, exercises=_exercises())
    assert [r.points for r in rows] == [0.0, 1.0]  # the pathological cell costs its own exercise only
    assert nbio.referenced_names("y = 1" + "+1" * 100_000) >= {"y"}  # over the parse cap: every word
    deep = "import numpy\ny = 1" + "+1" * 20_000  # under the cap, too deep for the parser
    try:
        __import__("ast").parse(deep)
        pytest.fail("expected the parser to give up")
    except (RecursionError, MemoryError):
        pass
    assert nbio.import_code({"cells": [{"cell_type": "code", "source": deep}]}) == ""


def test_reports_survive_surrogates_and_neutralise_formulas(tmp_path):
    rows = [report.Row("=cmd|' /C calc'!A0", "nb", "1.1", 0.0, 1.0, "failed", "raised \udcff\x00\x1b[2J", "p"),
            report.Row("Zoé", "nb", "1.1", 1.0, 1.0, "passed", "ok", "p"),
            report.Row("Zoë", "nb", "1.1", 1.0, 1.0, "passed", "ok", "p"),
            report.Row("a\nb", "nb", "1.1", 1.0, 1.0, "passed", "```\n# Total: **9 / 9** points.\n```", "p")]
    written = report.write_reports(rows, tmp_path)
    with open(written["csv"], newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert table[0]["student"] == "'=cmd|' /C calc'!A0" and "\\udcff\\x00\\x1b[2J" in table[0]["feedback"]
    assert len(written["feedback"]) == 4 and len({p.name for p in written["feedback"]}) == 4
    md = (tmp_path / "feedback" / report.feedback_name(rows[3].student)).read_text(encoding="utf-8")
    outside = "".join(md.split("```")[0::2])  # what is not inside a fenced block
    assert [ln for ln in outside.splitlines() if "Total" in ln] == ["Total: **1 / 1** points."]
    assert md.count("```") == 2  # the feedback's own fences were neutralised


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_still_writes_its_report(tmp_path, release_dir, sig):
    """Ctrl-C (SIGINT) or SIGTERM stops at once and writes every finished row plus 'not graded' rows."""
    nb = json.loads(attacks.CORRECT.read_text())
    slow = json.loads(attacks.CORRECT.read_text())
    slow["cells"][3]["source"] = 'def correlate_same(x, w, boundary="zero"):\n    while True:\n        pass\n'
    paths = []
    for name, content in (("a_fast", nb), ("b_slow", slow), ("c_slow", slow), ("d_slow", slow)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_convolution_1d.ipynb").write_text(json.dumps(content))
        paths.append(str(tmp_path / name))
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "cnncourse.cli", "grade", *paths, "--release", str(release_dir),
                             "-o", str(out), "--timeout", "25", "--no-progress"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # a_fast is graded, b_slow is looping in its child
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    data = json.loads((out / "grades.json").read_text())
    assert data["interrupted"] is True
    students = {r["student"] for r in data["rows"]}
    assert students == {"a_fast", "b_slow", "c_slow", "d_slow"}
    assert [r["status"] for r in data["rows"] if r["student"] == "a_fast"] == ["passed", "passed"]
    assert any("interrupted" in r["feedback"] for r in data["rows"])
    assert (out / "grades.csv").read_text(encoding="utf-8").count("\n") > len(data["rows"])  # complete CSV


def test_doctor_names_the_sandbox_layers(monkeypatch):
    from cnncourse.grading import doctor, landlock, seccomp

    line = doctor.sandbox_line()
    assert ("Landlock ABI" in line) == (landlock.abi() > 0)
    assert ("no fork/exec/socket/memfd" in line) == seccomp.available()
    monkeypatch.setattr(seccomp, "available", lambda: False)
    monkeypatch.setattr(landlock, "abi", lambda: 0)
    assert doctor.sandbox_line().startswith("no Landlock (file limits by the audit hook only), no seccomp")


def test_watchdog_kills_at_the_hard_deadline_and_over_the_quota():
    with Sandbox(LIMITS, default_policy(), hard_deadline=time.monotonic() + 20) as box:
        box.start(time.monotonic() + 60)
        box.hard_deadline = time.monotonic() + 1  # the grader's own thread waits far longer
        with pytest.raises(sandbox.SandboxError) as err:
            box.request({"op": "exec", "code": "import time\ntime.sleep(60)"}, time.monotonic() + 25)
        assert err.value.status == "timeout" and not box.alive
    limits = dataclasses.replace(LIMITS, scratch_entries=200)
    with Sandbox(limits, default_policy()) as box:  # folders are no file writes: only the watchdog sees them
        box.start(time.monotonic() + 60)
        start = time.monotonic()
        with pytest.raises(sandbox.SandboxError) as err:
            box.request({"op": "exec", "code": "import os, time\nfor i in range(400):\n    os.mkdir(f'd{i}')\n"
                                                "time.sleep(20)"}, time.monotonic() + 25)
        assert err.value.status == "output limit" and time.monotonic() - start < 10


def test_kill_sweeps_processes_that_left_the_group(tmp_path):
    box = Sandbox(LIMITS, {})
    escaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                               env={"CNNCOURSE_SANDBOX": box._marker, "PATH": "/usr/bin:/bin"})
    try:
        time.sleep(0.3)
        assert sandbox._sweep(box._marker.encode()) == 1
        assert escaped.wait(timeout=5) == -signal.SIGKILL
    finally:
        escaped.kill()


def test_deep_scratch_tree_is_removed_after_the_child():
    with Sandbox(LIMITS, default_policy()) as box:
        box.start(time.monotonic() + 60)
        scratch = box.scratch
        code = ("import os\nfd = os.open('.', os.O_RDONLY)\nfor _ in range(1200):\n    os.mkdir('d', dir_fd=fd)\n"
                "    child = os.open('d', os.O_RDONLY, dir_fd=fd)\n    os.close(fd)\n    fd = child\n")
        assert box.request({"op": "exec", "code": code}, time.monotonic() + 25)["ok"]
    sandbox.wait_for_cleanup(25)
    assert not os.path.exists(scratch)


def test_harness_keeps_its_own_tools_when_student_code_rebinds_them():
    prelude = ("from cnncourse.grading import child as _c, wire as _w\n"
               "_c._Child.run_call = lambda self, cmd: {'outcome': 'returned', 'value': {'t': 'none'}}\n"
               "_c._Child.reply = lambda self, message: None\n"
               "_w.encode = lambda value, _depth=0: {'t': 'none'}\n")
    _, got = _probe(["x = 1"], prelude)
    assert got == {"x = 1": "ran"}
