"""Grade submissions: each exercise's hidden check runs here, the student's code in a sandbox.

For one submitted notebook the grader takes the code of the exercise cells
(every code cell that defines an exercise function) and the notebook's
top-level import statements that bind a name those cells use (no matplotlib
for a function that never plots), and runs them in a fresh child process
(:class:`~cnncourse.grading.sandbox.Sandbox`).  Then, for each exercise in
the release manifest, it calls the registered ``check_<name>`` *in this
process* with a proxy for the student's function: every call the check makes
is forwarded to the child and its returned value comes back as plain data.
The verdict and the feedback are the check's own :class:`CheckResult`, the
same text the notebook prints.  Why this cannot be forged is explained in
:mod:`cnncourse.grading.sandbox`.

Failures stay where they happen: a cell that hangs, crashes or exhausts
memory at its top level costs the exercises it defines (the child restarts
without it); a function that does so costs its exercise; a notebook that
cannot be read costs its own rows.  Every submission gets one row per
exercise, whatever happens.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..checks import policy as _policy
from . import notebook as nbio
from . import release as rel
from . import wire
from .report import Row, clean_text
from .sandbox import (STOPPED_READING, Limits, Sandbox, SandboxError, _minimal_env, default_policy, kill_all,
                      remove_tree, wait_for_cleanup)

__all__ = ["Submission", "find_submissions", "grade_submission", "grade", "Limits", "GradingInterrupted"]

_ABORT = threading.Event()  # set when the instructor interrupts the run: no new child starts


class GradingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during :func:`grade`; ``rows`` holds every finished submission's rows."""

    def __init__(self, rows):
        super().__init__("grading interrupted")
        self.rows = rows


@dataclasses.dataclass(frozen=True)
class Submission:
    """One notebook file to grade, with the student it belongs to."""

    path: Path
    student: str
    notebook: str | None  # stem of the released notebook it answers; None: could not tell
    problem: str | None = None  # why it is refused unread ("not a regular file ...")
    note: str | None = None  # a warning put in front of every row's feedback (two files, one student)


def _which_notebook(stem: str, notebooks) -> str | None:
    matches = [n for n in notebooks if n in stem]
    if matches:
        return max(matches, key=len)
    return next(iter(notebooks)) if len(notebooks) == 1 else None


def _student_name(text: str) -> str:
    """A student name from a path part: one line, no control or bidi characters, at most 100 characters."""
    return clean_text(" ".join(str(text).split()), limit=100).strip() or "student"


def _walk_notebooks(root: Path):
    """``.ipynb`` entries below ``root`` (checkpoints skipped), without following links and without recursion."""
    todo, found = [root], []
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name != ".ipynb_checkpoints":
                    todo.append(Path(entry.path))
            elif entry.name.endswith(".ipynb"):
                found.append(Path(entry.path))
    return sorted(found)


def _not_regular(path: Path) -> str | None:
    """Why ``path`` is not a submission the grader may read (None: a regular file)."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"cannot read the file ({err.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "not a regular file (a link): the grader reads only regular files inside the submission folders"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, device, socket or folder): the grader reads only regular files"
    return None


def find_submissions(paths, notebooks) -> list[Submission]:
    """Turn command-line paths into submissions.

    A folder is one student (its name); every ``.ipynb`` below it is a
    submission (checkpoints skipped; links, to files or folders, are not
    followed).  A file is one submission: the student is the file name
    without the notebook's name (``alice_01_convolution_1d.ipynb`` ->
    ``alice``) or, for a file named exactly like the notebook, its folder's
    name.  The notebook is the released one whose name the file name contains
    (or the only released one).

    Anything that is not a regular file (a link, even to a notebook; a FIFO;
    a device) becomes a submission with a ``problem``: it gets a clear row
    and is never opened.  Names are sanitised (one line, no control or
    bidirectional characters).  Two submissions of one notebook that map to
    the same student are both kept, under distinct names
    (``name [file-hash]``) and with a warning in their feedback: never merged.
    """
    subs = []
    for p in map(Path, paths):
        if p.is_dir():
            files = _walk_notebooks(p)
            student = _student_name(p.resolve().name)
            if not files:
                subs.append(Submission(p, student, None))
            for f in files:
                subs.append(Submission(f, student, _which_notebook(f.stem, notebooks), _not_regular(f)))
        else:
            nb = _which_notebook(p.stem, notebooks)
            rest = p.stem.replace(nb, "").strip(" _-.") if nb else p.stem
            student = _student_name(rest or p.absolute().parent.name)
            subs.append(Submission(p, student, nb, _not_regular(p)))
    groups: dict = {}
    for i, sub in enumerate(subs):
        if sub.notebook is not None:
            groups.setdefault((sub.student, sub.notebook), []).append(i)
    for (student, notebook), members in groups.items():
        if len(members) < 2:
            continue
        files = ", ".join(clean_text(str(subs[i].path), limit=300) for i in members)
        for i in members:
            tag = hashlib.sha256(str(subs[i].path).encode("utf-8", "surrogateescape")).hexdigest()[:6]
            note = (f"⚠ {len(members)} submissions of {notebook} map to the student '{student}' ({files}); "
                    "each is graded on its own under a distinct name: check which one is theirs")
            subs[i] = dataclasses.replace(subs[i], student=f"{student} [{tag}]", note=note)
    return subs


# ---- one submission ---------------------------------------------------------------------------

class _MatplotlibCache:
    """A font cache built once per grading run by a trusted process and read-only to children."""

    def __init__(self):
        self._lock, self.folder = threading.Lock(), None

    def get(self) -> str:
        with self._lock:
            if self.folder is None:
                self.folder = tempfile.mkdtemp(prefix="cnncourse-mpl-")
                env = _minimal_env(self.folder, {"MPLCONFIGDIR": self.folder})
                try:
                    subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], env=env,
                                   cwd=self.folder, capture_output=True, timeout=300, check=False)
                except (OSError, subprocess.SubprocessError):
                    pass
            return self.folder

    def remove(self) -> None:
        if self.folder:
            remove_tree(self.folder)
            self.folder = None


class _Session:
    """The child for one submission: started on demand, restarted (without a fatal cell) when it dies."""

    def __init__(self, imports: str, cells, limits: Limits, policy: dict, env: dict, deadline: float):
        self.imports, self.cells, self.limits = imports, cells, limits
        self.policy, self.env, self.deadline = policy, env, deadline
        self.sandbox: Sandbox | None = None
        self.fatal: dict[int, SandboxError] = {}  # cell index -> what its top level did
        self.errors: dict[int, dict] = {}  # cell index -> exception its top level raised
        self.broken: SandboxError | None = None  # Python or the imports failed: no exercise can run

    def _bounded(self, seconds: float) -> float:
        return min(self.deadline, time.monotonic() + seconds)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    def ensure(self) -> Sandbox:
        """A running child with the imports and every non-fatal cell executed."""
        if self.broken is not None:
            raise self.broken
        while self.sandbox is None:
            if _ABORT.is_set():
                raise SandboxError("error", "the grading run was interrupted")
            box = Sandbox(self.limits, self.policy, env=self.env, hard_deadline=self.deadline + 5)
            try:
                _check_reply(box.start(self._bounded(self.limits.startup_timeout), self.imports), ("ready",))
            except SandboxError as err:
                tail = box.output_tail().strip()
                box.close()
                detail = err.detail + (f"; it printed: {tail[-300:]}" if tail and err.status != "timeout" else "")
                self.broken = SandboxError(err.status, detail)
                raise self.broken from None
            for index, src, _functions in self.cells:
                if index in self.fatal:
                    continue
                try:
                    reply = _check_reply(box.request({"op": "exec", "code": src, "filename": f"<cell {index}>"},
                                                     self._bounded(self.limits.exercise_timeout)), ("ok",))
                except SandboxError as err:
                    box.close()
                    if err.detail == STOPPED_READING:  # an earlier cell broke the sandbox: no restart helps
                        self.broken = err
                        raise self.broken from None
                    self.fatal[index] = err
                    break
                box.take_records()  # calls at a cell's top level are blocked, not penalised
                error = reply.get("error") or {}
                if reply.get("output_limit") or error.get("output"):
                    self.fatal[index] = SandboxError("output limit", "output limit")
                elif error.get("memory"):
                    self.fatal[index] = SandboxError("memory limit", "memory limit")
                elif error:
                    self.errors[index] = error
                    continue
                else:
                    continue
                box.close()  # restart without this cell: its output file is full or its memory is suspect
                break
            else:
                self.sandbox = box
        return self.sandbox

    def request(self, command: dict, deadline: float) -> dict:
        """The child's reply, plus ``"records"``: what its audit hook recorded meanwhile (set here, not by it)."""
        try:
            box = self.ensure()
            reply = box.request(command, deadline)
            reply["records"] = box.take_records()
            return reply
        except SandboxError:
            self.close()
            raise


def _check_reply(reply: dict, keys) -> dict:
    if not all(k in reply for k in keys):
        raise SandboxError("error", "the grader could not read the reply (the submission interfered with the grader)")
    return reply


def _exception(info: dict, base=Exception):
    """An exception that prints like the student's (same class name and message)."""
    raw = str(info.get("type", "Exception"))[:80]
    name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in raw) or "Exception"
    if name[0].isdigit():
        name = "_" + name
    return type(name, (base,), {})(clean_text(info.get("message", ""), multiline=True, limit=2000))


class _Retry(BaseException):
    """The function called a package function that only *another* exercise forbids.

    The child arms the tripwires of all the notebook's exercises at once; such a
    call is legitimate here, so the exercise is graded again in a child armed
    with its own forbidden list only.
    """


class _Proxy:
    """Stands in for the student's function inside the check; forwards each call to the child."""

    def __init__(self, session: _Session, function: str, deadline: float, own_forbidden):
        self.session, self.function, self.deadline = session, function, deadline
        self.own = {f"called {name}" for name in own_forbidden}
        self.__name__ = function

    def _forbidden(self, labels) -> None:
        labels = sorted({str(x)[:200] for x in labels})
        # the child armed one policy per exercise function (cnncourse.checks.policy): every label counts
        if labels:
            raise SandboxError("forbidden", _policy.forbidden_message(labels))

    def __call__(self, *args, **kwargs):
        import numpy as np

        try:
            payload = pickle.dumps((args, kwargs))
        except Exception as err:
            raise SandboxError("error", f"the grader cannot send the check's arguments ({err})") from None
        sent = {i: a for i, a in enumerate(args) if isinstance(a, np.ndarray)}
        reply = self.session.request({"op": "call", "name": self.function, "payload": payload}, self.deadline)
        reply = _check_reply(reply, ("outcome",))
        error = reply.get("error") or {}
        if not isinstance(error, dict):
            raise SandboxError("error", "the grader could not read the reply "
                                        "(the submission interfered with the grader)")
        labels = list(reply.get("records") or [])
        claimed = reply.get("forbidden") or []
        labels += [str(x) for x in claimed] if isinstance(claimed, list) else []
        if error.get("forbidden"):
            labels.append(str(error.get("message", "")))
        self._forbidden(labels)
        if reply.get("output_limit") or error.get("output"):
            raise SandboxError("output limit", "output limit")
        if reply["outcome"] == "raised":
            if error.get("type") == "PermissionError":  # a sandbox refusal: say what is unavailable, and why
                error = dict(error, message=_policy.explain_refusal(error.get("message", "")))
            if error.get("memory"):
                raise SandboxError("memory limit", "memory limit")
            if "exit" in error:
                raise SandboxError("exited", f"it called sys.exit({clean_text(error['exit'], limit=200)})")
            raise _exception(error, NotImplementedError if error.get("not_implemented") else Exception)
        try:
            value = wire.decode(reply.get("value"))
            after = reply.get("args_after")
            if not isinstance(after, dict) or sorted(after) != sorted(map(str, sent)):
                raise wire.FrameError("the reply does not carry the array arguments back")
            returned = {int(k): wire.decode(v) for k, v in after.items()}
        except (wire.FrameError, ValueError, AttributeError, TypeError) as err:
            raise SandboxError("error", f"the grader could not read the returned value ({err})") from None
        for i, new in returned.items():  # the grader decides whether an argument changed, and mirrors it
            _mirror(args[i], new)
        return value


def _mirror(arg, new) -> None:
    """Make the check's array ``arg`` look as the child's copy does after the call (the in-place check's input)."""
    import numpy as np

    same_layout = isinstance(new, np.ndarray) and new.shape == arg.shape and new.dtype == arg.dtype
    if same_layout and np.array_equal(new, arg, equal_nan=arg.dtype.kind in "fc"):
        return
    try:
        if same_layout:
            arg[...] = new
            return
        flat = arg.reshape(-1)  # reshaped, resized or retyped in place: make "not what it passed" visible
        if flat.size:
            flat[0] = 1 if flat[0] == 0 else 0
    except (TypeError, ValueError, AttributeError):
        pass


_WHAT = {"function": "the function", "cell": "the cell that defines it (its top-level code)",
         "notebook": "starting Python with the notebook's imports"}


def _failure(head: str, err: SandboxError, what: str, limits: Limits) -> tuple[str, str]:
    thing = _WHAT[what]
    status, detail = err.status, err.detail
    if status == "timeout":
        limit = limits.exercise_timeout if what != "notebook" else limits.startup_timeout
        text = f"timed out: {thing} ran longer than the {limit:g} s limit (an infinite loop?)"
        if detail != "time limit":
            text = f"timed out ({detail})"
    elif status == "memory limit":
        text = f"ran out of memory: {thing} needed more than the {limits.memory_mb} MB limit"
    elif status == "crashed":
        text = f"the Python process crashed ({detail}) while running {thing}"
    elif status == "exited":
        text = f"{thing} ended the Python process ({detail}): do not call sys.exit or os._exit"
    elif status == "output limit":
        text = f"{thing} printed more than the {limits.output_mb:g} MB output limit"
        if detail.startswith("scratch folder"):
            text = (f"{thing} wrote too much: its {detail} ({limits.scratch_mb:g} MB and "
                    f"{limits.scratch_entries} files and folders in all)")
    elif status == "forbidden":
        text = f"{thing} {detail}"  # the policy's wording (cnncourse.checks.policy.forbidden_message)
    else:
        text = detail
    return status, f"✘ {head}: {text}"


def _row(sub: Submission, entry: dict, status: str, feedback: str, passed: bool = False) -> Row:
    points = float(entry["points"])
    if sub.note:
        feedback = f"{sub.note}\n{feedback}"
    return Row(sub.student, sub.notebook or "", entry["exercise"], points if passed else 0.0, points, status, feedback,
               str(sub.path))


def _grade_exercise(session: _Session, sub: Submission, entry: dict, exercise, plan: dict, limits: Limits,
                    forbidden: list) -> Row:
    """One row; raises :class:`_Retry` when the exercise must run in a child armed for it alone."""
    function, number = entry["function"], entry["exercise"]
    head = f"Exercise {number} ({function})"
    cells = [i for i, _src, fns in session.cells if function in fns]
    if time.monotonic() >= session.deadline:
        return _row(sub, entry, "timeout", f"✘ {head}: not graded: the submission used up its "
                                           f"{limits.notebook_timeout:g} s time limit before this exercise")
    if exercise is None:
        return _row(sub, entry, "error", f"✘ {head}: the grader has no check registered for exercise {number}")
    if not cells:
        others = plan["defined"]
        hint = f" (the notebook defines: {', '.join(others[:8])})" if others else ""
        return _row(sub, entry, "missing", f"✘ {head}: no cell defines `def {function}(`{hint}. "
                                           f"Keep the function's name: the grader looks for it.")
    mentioned = nbio.mentions(plan["sources"][cells[-1]], function, forbidden)
    if mentioned:
        detail = _policy.forbidden_message(f"called {name}" for name in mentioned)
        return _row(sub, entry, *_failure(head, SandboxError("forbidden", detail), "function", limits))
    try:
        session.ensure()
    except SandboxError as err:
        return _row(sub, entry, *_failure(head, err, "notebook", limits))
    fatal = [session.fatal[i] for i in cells if i in session.fatal]
    start = time.monotonic()
    deadline = min(session.deadline, start + limits.exercise_timeout)
    try:
        found = _check_reply(session.request({"op": "lookup", "name": function}, deadline), ("defined", "callable"))
    except SandboxError as err:
        if err.status == "timeout" and err.detail != STOPPED_READING:  # a lookup runs no student code
            session.broken = SandboxError("timeout", "the sandbox stopped answering the grader after running the "
                                                     "notebook's exercise cells (their top-level code broke it)")
            err = session.broken
        return _row(sub, entry, *_failure(head, err, "function", limits))
    if not found["defined"]:
        if fatal:
            return _row(sub, entry, *_failure(head, fatal[-1], "cell", limits))
        errors = [session.errors[i] for i in cells if i in session.errors]
        if errors:
            e = errors[-1]
            return _row(sub, entry, "error", f"✘ {head}: the cell that defines it raised "
                                             f"{e.get('type')}: {e.get('message')}")
        return _row(sub, entry, "missing", f"✘ {head}: `{function}` is not defined after running its cell")
    if found["callable"]:
        target = _Proxy(session, function, deadline, forbidden)
    else:  # the check reports "expected a function, got <type>", as in the notebook
        target = wire.decode({"t": "opaque", "type": str(found.get("type", "object"))})
    try:
        with _policy.grading():  # the child enforces the policy; no in-process watch here
            result = exercise.check(target)
    except SandboxError as err:
        if err.status != "forbidden":  # a refused call leaves the child intact: the next exercise reuses it
            session.close()
        return _row(sub, entry, *_failure(head, err, "function", limits))
    except _Retry:
        session.close()
        raise
    except Exception as err:  # a bug in a check, not the student's fault
        return _row(sub, entry, "error", f"✘ {head}: the grader's check failed ({type(err).__name__}: {err})")
    return _row(sub, entry, result.status, result.message, passed=result.passed)


def _plan(nb: dict, entries) -> dict:
    functions = [e["function"] for e in entries]
    ex_cells = nbio.exercise_cells(nb, functions)
    sources = dict(nbio.code_cells(nb))
    defined = [f for i in ex_cells for f in nbio.defined_functions(sources[i])]
    if not ex_cells:  # renamed functions: offer every function the notebook defines as a hint
        defined = [f for src in sources.values() for f in nbio.defined_functions(src)]
    cells = [(i, nbio.strip_magics(sources[i]), fns) for i, fns in ex_cells.items()]
    needed = set().union(*(nbio.referenced_names(sources[i]) for i in ex_cells))
    return {"cells": cells, "sources": sources, "defined": defined,
            "imports": nbio.import_code(nb, needed=needed)}


def grade_submission(sub: Submission, manifest: dict, *, limits: Limits = Limits(), exercises=None,
                     policy: dict | None = None, mpl_cache: _MatplotlibCache | None = None) -> list[Row]:
    """Grade one submitted notebook; always return one row per exercise of its notebook."""
    if exercises is None:
        from ..checks import EXERCISES as exercises
    notebooks = manifest.get("notebooks", {})
    if sub.notebook is None or sub.notebook not in notebooks:
        names = ", ".join(notebooks) or "none"
        return [Row(sub.student, "", "", 0.0, 0.0, "invalid notebook",
                    f"✘ cannot tell which released notebook {sub.path.name} answers (released: {names})",
                    str(sub.path))]
    entries = notebooks[sub.notebook]["exercises"]

    def invalid(reason: str) -> list[Row]:
        return [_row(sub, e, "invalid notebook", f"✘ Exercise {e['exercise']} ({e['function']}): the submission "
                                                 f"is not a readable notebook: {reason}") for e in entries]

    if sub.problem:
        return invalid(sub.problem)
    try:
        nb = nbio.load(sub.path)
        plan = _plan(nb, entries)
    except nbio.InvalidNotebook as err:
        return invalid(str(err))
    except (RecursionError, MemoryError) as err:  # the grader's own parsers on a pathological cell
        return invalid(f"a cell is too deeply nested or too large to parse ({type(err).__name__})")
    policy = dict(policy or default_policy())
    env, own_cache = None, mpl_cache is None
    mpl_cache = mpl_cache or _MatplotlibCache()
    if "matplotlib" in plan["imports"] or "pylab" in plan["imports"]:
        env = {"MPLCONFIGDIR": mpl_cache.get()}
        policy["allow_roots"] = [*policy.get("allow_roots", ()), env["MPLCONFIGDIR"]]
    deadline = time.monotonic() + limits.notebook_timeout
    sessions: dict[tuple, _Session] = {}
    # one policy per exercise function, enforced in the child (cnncourse.checks.policy, grading.gates)
    policy.update(_policy.child_setup(entries, exercises))

    def session(forbidden) -> _Session:
        key = tuple(sorted(forbidden))
        if key not in sessions:
            sessions[key] = _Session(plan["imports"], plan["cells"], limits, dict(policy, forbidden=list(key)), env,
                                     deadline)
        return sessions[key]

    def forbidden_of(e) -> set:  # the old per-exercise lists: now only for the static look at the source
        registered = exercises[e["exercise"]].forbidden if e["exercise"] in exercises else ()
        return set(e.get("forbidden") or ()) | set(registered)

    rows = []
    try:
        for e in entries:
            args = (sub, e, exercises.get(e["exercise"]), plan, limits, sorted(forbidden_of(e)))
            rows.append(_grade_exercise(session(()), *args))
        return rows
    finally:
        for s in sessions.values():
            s.close()
        if own_cache:
            mpl_cache.remove()


# ---- many submissions -------------------------------------------------------------------------

def _error_rows(sub: Submission, manifest: dict, text: str) -> list[Row]:
    entries = manifest.get("notebooks", {}).get(sub.notebook, {}).get("exercises") or [None]
    return [_row(sub, e, "error", f"✘ Exercise {e['exercise']} ({e['function']}): {text}") if e else
            Row(sub.student, sub.notebook or "", "", 0.0, 0.0, "error", f"✘ {text}", str(sub.path))
            for e in entries]


def _grade_safely(sub: Submission, manifest: dict, **kwargs) -> list[Row]:
    """:func:`grade_submission`, turning anything it raises into "error" rows instead of stopping the run.

    It catches ``BaseException``: a ``SystemExit``, a stray ``SandboxError`` or
    any other exception escaping the grading of one submission costs that
    submission only.  (The instructor's Ctrl-C arrives in the main thread,
    where :func:`grade` handles it.)
    """
    try:
        return grade_submission(sub, manifest, **kwargs)
    except BaseException as err:  # noqa: BLE001 - one submission must never end the run
        try:
            detail = clean_text(f"{type(err).__name__}: {err}", limit=500)
        except BaseException:
            detail = type(err).__name__
        return _error_rows(sub, manifest, f"the grader failed on this submission ({detail}); please report it")


def _sort_key(row: Row):
    return (row.student, row.notebook, rel._number_key(row.exercise) if row.exercise else (), row.submission)


def _policy_for(paths, release_dir, subs) -> dict:
    """The child's policy: the grading folders unreadable, every notebook recognised by identity.

    The child is told the *parents* of the folders and files named on the
    command line (and the release folder), never a student's folder or file
    name, and it gets the notebooks to guard as ``[device, inode]`` pairs.
    """
    named = [Path(p).absolute() for p in paths]
    deny = {Path(release_dir).resolve(), *(p.parent.resolve() for p in named)}
    policy = default_policy(extra_deny=sorted(map(str, deny)))
    keys = set(map(tuple, policy.get("guard_keys", ())))
    for path in [s.path for s in subs if not s.problem] + sorted(Path(release_dir).glob("*.ipynb")):
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        keys.add((st.st_dev, st.st_ino))
    policy["guard_keys"] = sorted(keys)
    return policy


def grade(paths, release_dir, *, jobs: int = 1, limits: Limits = Limits(), exercises=None,
          progress: bool = True) -> list[Row]:
    """Grade every submission under ``paths`` against the release in ``release_dir``.

    ``jobs`` submissions are graded at once (each in its own child process).
    Rows come back sorted by student, notebook and exercise; every submission
    gets its rows, whatever it does.  Ctrl-C (KeyboardInterrupt) kills the
    running children at once and raises :class:`GradingInterrupted`, whose
    ``rows`` hold the finished submissions' rows and an "error" row
    ("not graded: the run was interrupted") for each of the others.
    """
    from tqdm.auto import tqdm

    manifest = rel.read_manifest(release_dir)
    subs = find_submissions(paths, manifest.get("notebooks", {}))
    policy = _policy_for(paths, release_dir, subs)
    mpl = _MatplotlibCache()
    done: dict[int, list[Row]] = {}
    _ABORT.clear()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    interrupted = False
    try:
        futures = {pool.submit(_grade_safely, s, manifest, limits=limits, exercises=exercises, policy=policy,
                               mpl_cache=mpl): i for i, s in enumerate(subs)}
        try:
            for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), unit="notebook",
                               desc="grading", disable=not progress):
                done[futures[future]] = future.result()
        except KeyboardInterrupt:
            interrupted = True
            _ABORT.set()
            for future in futures:
                future.cancel()
            kill_all()  # running children die now: their workers return at once
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        mpl.remove()
        wait_for_cleanup()  # every scratch folder is gone when grade() returns
    rows = [r for i in sorted(done) for r in done[i]]
    if interrupted:
        rows += [r for i, s in enumerate(subs) if i not in done
                 for r in _error_rows(s, manifest, "not graded: the grading run was interrupted")]
        raise GradingInterrupted(sorted(rows, key=_sort_key))
    return sorted(rows, key=_sort_key)
