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
"""
from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["Row", "STATUSES", "write_reports", "write_csv", "write_json", "write_feedback", "summary"]

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
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict())


def write_json(rows, path, *, meta: dict | None = None) -> None:
    data = {**(meta or {}), "summary": summary(rows), "rows": [r.as_dict() for r in rows]}
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", student).strip(".") or "student"


def write_feedback(rows, folder) -> list[Path]:
    """One ``<student>.md`` per student: a table per notebook, then each diagnostic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict = defaultdict(list)
    for r in rows:
        by_student[r.student].append(r)
    written = []
    for student, own in sorted(by_student.items()):
        total, maximum = sum(r.points for r in own), sum(r.max for r in own)
        lines = [f"# Feedback for {student}", "", f"Total: **{total:g} / {maximum:g}** points.", ""]
        notebooks: dict = defaultdict(list)
        for r in own:
            notebooks[r.notebook].append(r)
        for name, nb_rows in notebooks.items():
            lines += [f"## {name}", "", "| exercise | points | status |", "| --- | --- | --- |"]
            lines += [f"| {r.exercise} | {r.points:g} / {r.max:g} | {r.status} |" for r in nb_rows]
            lines.append("")
            for r in nb_rows:
                text = r.feedback.replace("```", "'''")
                lines += [f"**Exercise {r.exercise}** ({r.status})", "", "```text", text, "```", ""]
        path = folder / f"{_safe_name(student)}.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        written.append(path)
    return written


def write_reports(rows, out_dir, *, meta: dict | None = None) -> dict:
    """Write ``grades.csv``, ``grades.json`` and ``feedback/<student>.md`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "grades.csv")
    write_json(rows, out_dir / "grades.json", meta=meta)
    feedback = write_feedback(rows, out_dir / "feedback")
    return {"csv": out_dir / "grades.csv", "json": out_dir / "grades.json", "feedback": feedback}
