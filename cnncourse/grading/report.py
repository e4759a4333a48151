"""Grade reports: one row per submission x exercise, as CSV, JSON and per-student Markdown.

Statuses, besides the checks' own "passed", "failed" and "not attempted":

===================  ==========================================================
``timeout``          the cell or the function ran past its time limit
``memory limit``     it ran out of memory (MemoryError under the memory limit)
``crashed``          the Python process died from a signal (segfault, kill ...)
``exited``           the code ended the process (``sys.exit``, ``os._exit``)
``output limit``     it printed (or wrote) more than the output limit
``missing``          no function of the exercise's name is defined (renamed?)
``forbidden``        it called a package function the exercise forbids, or
                     tried to read the package's source or a notebook file
``invalid notebook`` the submission is not valid JSON or has no code cells
``error``            the cell defining the function failed, or the child's
                     reply could not be read
===================  ==========================================================

Only "passed" earns the exercise's points.

Nothing a submission controls can forge a report: every text field of a
:class:`Row` is cleaned when the row is made (:func:`clean_text`: lone
surrogates, control characters, NUL, bidirectional overrides and line
separators become visible ``\\x..``/``\\u....`` escapes; only the feedback
keeps its newlines and tabs); CSV cells that a spreadsheet would run as a
formula (starting with ``= + - @``, a tab or a carriage return) get a leading
``'``; student names, notebook and exercise names are escaped in Markdown
and HTML; feedback text sits in a fenced code block it cannot close.  Each
file is written with an explicit encoding and ``errors="replace"`` to a
temporary file that is then renamed over the target, so an interrupted run
never leaves a truncated CSV.  Feedback files are named
``<readable name>-<8 hex digits of the student's hash>.md``: two students
whose names sanitise alike (Zoé, Zoë) never share a file.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import io
import json
import os
import re
import tempfile
import unicodedata
from collections import defaultdict
from pathlib import Path

__all__ = ["Row", "STATUSES", "write_reports", "write_csv", "write_json", "write_feedback", "summary", "clean_text",
           "csv_cell", "markdown_text", "feedback_name"]

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SEPARATORS = frozenset("\u2028\u2029\x85")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")  # always mid-line here: no list or heading markers


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(text, *, multiline: bool = False, limit: int = 100_000) -> str:
    """``text`` made safe for any report: every character that could hide, reorder or forge content escaped.

    Lone surrogates, control characters (NUL, escape sequences, carriage
    returns; newlines and tabs too unless ``multiline``), bidirectional
    marks and overrides, and Unicode line separators become ``\\xNN`` or
    ``\\uNNNN``; the result is at most ``limit`` characters.
    """
    if not isinstance(text, str):
        text = str(text)
    out = []
    for ch in text[:limit]:
        if multiline and ch in "\n\t":
            out.append(ch)
        elif 0xD800 <= ord(ch) <= 0xDFFF or ch in _BIDI or ch in _SEPARATORS or unicodedata.category(ch) == "Cc":
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text: a leading ``= + - @``, tab or CR is neutralised with ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def markdown_text(text: str) -> str:
    """One line of untrusted text for Markdown: HTML escaped, Markdown punctuation backslash-escaped."""
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", clean_text(text)), quote=True)


def feedback_name(student: str) -> str:
    """``<readable name>-<hash>.md``: readable, and unique per student (the hash is of the full name)."""
    readable = unicodedata.normalize("NFKD", clean_text(student))
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", readable.encode("ascii", "ignore").decode()).strip("._")[:60]
    digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable or 'student'}-{digest}.md"


def _write_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8, unencodable characters replaced) to a temporary file, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8", errors="replace", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

STATUSES = ("passed", "failed", "not attempted", "timeout", "memory limit", "crashed", "exited", "output limit",
            "missing", "forbidden", "invalid notebook", "error")
FIELDS = ("student", "notebook", "exercise", "points", "max", "status", "feedback", "submission")


@dataclasses.dataclass
class Row:
    """One graded exercise of one submission."""

    student: str
    notebook: str
    exercise: str
    points: float
    max: float
    status: str
    feedback: str
    submission: str = ""

    def __post_init__(self):
        for name in ("student", "notebook", "exercise", "status", "submission"):
            setattr(self, name, clean_text(getattr(self, name), limit=1000))
        self.feedback = clean_text(self.feedback, multiline=True)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summary(rows) -> dict:
    """``{student: {"points": p, "max": m}}`` over all their rows."""
    totals: dict = defaultdict(lambda: {"points": 0.0, "max": 0.0})
    for r in rows:
        totals[r.student]["points"] += r.points
        totals[r.student]["max"] += r.max
    return dict(sorted(totals.items()))


def write_csv(rows, path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_cell(v) for k, v in r.as_dict().items()})
    _write_atomic(path, buffer.getvalue())


def write_json(rows, path, *, meta: dict | None = None) -> None:
    data = {**(meta or {}), "summary": summary(rows), "rows": [r.as_dict() for r in rows]}
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_feedback(rows, folder) -> list[Path]:
    """One ``<student>-<hash>.md`` per student: a table per notebook, then each diagnostic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict = defaultdict(list)
    for r in rows:
        by_student[r.student].append(r)
    written = []
    for student, own in sorted(by_student.items()):
        total, maximum = sum(r.points for r in own), sum(r.max for r in own)
        lines = [f"# Feedback for {markdown_text(student)}", "", f"Total: **{total:g} / {maximum:g}** points.", ""]
        notebooks: dict = defaultdict(list)
        for r in own:
            notebooks[r.notebook].append(r)
        for name, nb_rows in notebooks.items():
            lines += [f"## {markdown_text(name)}", "", "| exercise | points | status |", "| --- | --- | --- |"]
            lines += [f"| {markdown_text(r.exercise)} | {r.points:g} / {r.max:g} | {markdown_text(r.status)} |"
                      for r in nb_rows]
            lines.append("")
            for r in nb_rows:
                text = re.sub(r"`{3,}|~{3,}", lambda m: "'" * len(m.group()), clean_text(r.feedback, multiline=True))
                lines += [f"**Exercise {markdown_text(r.exercise)}** ({markdown_text(r.status)})", "",
                          "```text", text, "```", ""]
        path = folder / feedback_name(student)
        _write_atomic(path, "\n".join(lines))
        written.append(path)
    return written


def write_reports(rows, out_dir, *, meta: dict | None = None) -> dict:
    """Write ``grades.csv``, ``grades.json`` and ``feedback/<student>-<hash>.md`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "grades.csv")
    write_json(rows, out_dir / "grades.json", meta=meta)
    feedback = write_feedback(rows, out_dir / "feedback")
    return {"csv": out_dir / "grades.csv", "json": out_dir / "grades.json", "feedback": feedback}
