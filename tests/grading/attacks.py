"""A corpus of hostile submissions (issues 20 and 22), built on demand from the ``correct`` case.

``build(folder)`` writes one submission per attack under ``folder`` and
returns ``(paths, expected)``: the command-line paths to grade and, per
student name, the expected ``(status, points)`` of exercises 1.1 and 1.2
(``None``: any status that earns no points).  Used by
``tests/test_grading_attacks.py`` and ``benchmarks/grade_30.py --attacks``.
Every attack is bounded: at most a few hundred MB and a few seconds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "source" / "01_convolution_1d.ipynb"
CORRECT = HERE / "submissions" / "correct" / "01_convolution_1d.ipynb"
PARTIAL = HERE / "submissions" / "partial" / "01_convolution_1d.ipynb"
NAME = "01_convolution_1d.ipynb"

# The body of a correct correlate_same, to reuse after an attack's first lines.
BODY = '''    x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
    modes = {"zero": "constant", "replicate": "edge", "mirror": "reflect", "periodic": "wrap"}
    padded = np.pad(x, len(w) // 2, mode=modes[boundary])
    return np.array([padded[i:i + len(w)] @ w for i in range(len(x))])
'''
HEAD = 'def correlate_same(x, w, boundary="zero"):\n'

ATTACKS = {
    # issue 20.2: 24 MB of '[{},{},...]' frames that are not the awaited reply: over the stray cap, never parsed
    "stray_flood": (HEAD + '''    import os, struct, sys
    junk = b"[" + b"{}," * 350_000 + b"{}]"
    for _ in range(24):
        os.write(int(sys.argv[1]), struct.pack(">QQ", 999_999, len(junk)) + junk)
    return None
''', ("error", 0), ("passed", 1)),
    # stray frames (invalid JSON, wrong sequence number) are skipped unparsed; the real reply still counts
    "stray_skipped": (HEAD + '''    import os, struct, sys
    for junk in (b"not json {{{", b"[" * 5000):
        os.write(int(sys.argv[1]), struct.pack(">QQ", 0, len(junk)) + junk)
''' + BODY, ("passed", 1), ("passed", 1)),
    # a reply that would parse into 200,000 Python objects is refused before parsing
    "reply_bomb": (HEAD + "    return [{} for _ in range(150_000)]\n", ("error", 0), ("passed", 1)),
    # issue 20.5: modifies its input in place and rewrites what the old child used to detect it
    "inplace_hidden": (HEAD + '''    np.array_equal = lambda *a, **k: True
    out = correlate_inner(x, w, boundary)
    if isinstance(x, np.ndarray) and x.size:
        x[0] = 99.0
    return out


def correlate_inner(x, w, boundary="zero"):
''' + BODY.replace("x, w = np.asarray(x, dtype=float),", "x = np.array(x, dtype=float); w ="), ("failed", 0),
                       ("passed", 1)),
    # issue 20.5: calls the forbidden reference, swallows the tripwire, erases the in-child record
    "forbidden_hidden": (HEAD + '''    from cnncourse.grading import guard
    try:
        getattr(cc.signal, "correlate" + "1d")(np.zeros(3), np.ones(1))
    except BaseException:
        pass
    guard._CALLS.clear()
''' + BODY, ("forbidden", 0), ("passed", 1)),
    # issue 22.1: forges another exercise's "called X" label on every call (once: two retries, then a crash)
    "forge_labels": (HEAD + '''    import os, sys
    from cnncourse.grading import guard
    guard._CALLS.append("called cnncourse.signal.conv_matrix")
    os.write(int(sys.argv[2]), b"called cnncourse.signal.conv_matrix\\n")
''' + BODY, ("forbidden", 0), ("passed", 1)),
    # issue 22.2: lone surrogate, terminal escapes, bidi override, NUL and a forged Markdown line in a message
    "dirty_message": (HEAD + '''    raise ValueError("\\udcff bad \\x1b[2J\\u202e evil\\x00 end\\r\\n"
                     "# Total: **2 of 2** points <script>x</script>")
''', ("failed", 0), ("passed", 1)),
    # issue 20.5: walks up the stack and through every module looking for other students' names or paths
    "stack_walk": (HEAD + '''    import sys
    hits = []
    frame = sys._getframe()
    while frame is not None:
        text = repr(frame.f_locals)[:200_000]
        if "honest" in text or ".ipynb" in text or "submissions" in text:
            hits.append(frame.f_code.co_name)
        frame = frame.f_back
    for name, module in list(sys.modules.items()):
        for key, value in list(vars(module).items()):
            if isinstance(value, (str, list, tuple, dict, set, frozenset)):
                text = repr(value)[:200_000]
                if "honest0" in text or "submissions_attack" in text:
                    hits.append(name + "." + key)
    hits += [a for a in sys.argv if "honest" in a]
    raise ValueError("LEAK:" + repr(hits)[:1500])
''', ("failed", 0), ("passed", 1)),
    # issue 22.4: ``from _posixsubprocess import fork_exec`` in the setup cell never runs before the guards
    "setup_fork_exec": (HEAD + "    fork_exec\n" + BODY, ("failed", 0), ("passed", 1)),
    # issue 22.5: a 1,200-deep folder tree in scratch; clean-up must not fail, the answer still counts
    "deep_tree": (HEAD + '''    import os
    if not os.path.exists("deep"):
        fd = os.open(".", os.O_RDONLY)
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(fd)
        os.rename("d", "deep")
''' + BODY, ("passed", 1), ("passed", 1)),
    # issue 20.3: 40 files of 0.9 MB against an 8 MB scratch quota
    "scratch_fill": (HEAD + '''    for i in range(40):
        with open(f"f{i}.bin", "wb") as f:
            f.write(b"x" * 900_000)
''' + BODY, None, ("passed", 1)),
}


def _notebook(base: Path = CORRECT) -> dict:
    return json.loads(base.read_text())


def _write(nb: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def build(folder, honest: int = 4) -> tuple[list[Path], dict]:
    """Write the corpus; return (paths to grade, {student: ((status, points) of 1.1, of 1.2) or None})."""
    folder = Path(folder) / "submissions_attack"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    expected: dict = {}
    for i in range(honest):
        d = folder / f"honest{i:02d}"
        _write(_notebook(), d / NAME)
        paths.append(d)
        expected[d.name] = (("passed", 1), ("passed", 1))
    for name, (cell, first, second) in ATTACKS.items():
        nb = _notebook()
        nb["cells"][3]["source"] = cell
        _write(nb, folder / name / NAME)
        paths.append(folder / name)
        expected[name] = (first, second)
    # issue 22.3: swaps its command pipe and stops reading; the next command (200 KB) must not hang the grader
    nb = _notebook()
    nb["cells"][3]["source"] += ('\n\nimport os, sys\n_harness = sys._getframe(1).f_locals.get("self")\n'
                                 'if _harness is not None:\n    _keep = os.dup(_harness.cmd_fd)\n'
                                 '    _r, _w = os.pipe()\n    os.dup2(_r, _harness.cmd_fd)\n')
    nb["cells"][6]["source"] += "\n" + "# padding\n" * 20_000
    _write(nb, folder / "stop_reading" / NAME)
    paths.append(folder / "stop_reading")
    expected["stop_reading"] = (("timeout", 0), ("timeout", 0))
    # issue 22.4: the setup cell imports a raw fork-exec (dropped by the import allowlist)
    path = folder / "setup_fork_exec" / NAME
    nb = _notebook(path)
    nb["cells"][1]["source"] = "import numpy as np\nfrom _posixsubprocess import fork_exec\nimport cnncourse as cc"
    _write(nb, path)
    # issue 20.6: a non-exercise cell nested too deeply for the grader's parser
    nb = _notebook()
    nb["cells"].insert(2, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": "y = 1" + "+1" * 100_000})
    _write(nb, folder / "deep_parse" / NAME)
    paths.append(folder / "deep_parse")
    expected["deep_parse"] = (("passed", 1), ("passed", 1))
    # ... and a notebook file nested too deeply for the JSON parser
    d = folder / "deep_json"
    d.mkdir()
    (d / NAME).write_text("[" * 200_000 + "]" * 200_000)
    paths.append(d)
    expected["deep_json"] = (("invalid notebook", 0), ("invalid notebook", 0))
    # issue 20.1: a link to the instructor's solutions, and a FIFO named like a notebook
    d = folder / "symlink"
    d.mkdir()
    os.symlink(SOURCE.resolve(), d / NAME)
    paths.append(d)
    expected["symlink"] = (("invalid notebook", 0), ("invalid notebook", 0))
    d = folder / "fifo"
    d.mkdir()
    os.mkfifo(d / NAME)
    paths.append(d)
    expected["fifo"] = (("invalid notebook", 0), ("invalid notebook", 0))
    # issue 20.4: names that would forge reports
    formula = folder / f'=HYPERLINK("https:evil.example")_{NAME}'
    _write(_notebook(PARTIAL), formula)
    paths.append(formula)
    expected['=HYPERLINK("https:evil.example")'] = (("passed", 1), ("failed", 0))
    forged = "evil\n# Total: **2 of 2** points\n<img src=x onerror=alert(1)>"
    d = folder / forged
    _write(_notebook(PARTIAL), d / NAME)
    paths.append(d)
    expected["evil # Total: **2 of 2** points <img src=x onerror=alert(1)>"] = (("passed", 1), ("failed", 0))
    # two submissions that map to one student: both flagged, never merged
    merge = folder / f"honest._{NAME}"
    _write(_notebook(PARTIAL), merge)
    paths.append(merge)
    d = folder / "honest"
    _write(_notebook(), d / NAME)
    paths.append(d)
    expected["honest [*]"] = None  # two rows sets, told apart by their file hash
    # issue 22.5: names that sanitise alike must not share a feedback file
    for name in ("Zoé", "Zoë"):
        _write(_notebook(), folder / name / NAME)
        paths.append(folder / name)
        expected[name] = (("passed", 1), ("passed", 1))
    return paths, expected
