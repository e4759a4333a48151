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
import pickle
import shutil
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
from .report import Row
from .sandbox import Limits, Sandbox, SandboxError, _minimal_env, default_policy

__all__ = ["Submission", "find_submissions", "grade_submission", "grade", "Limits"]


@dataclasses.dataclass(frozen=True)
class Submission:
    """One notebook file to grade, with the student it belongs to."""

    path: Path
    student: str
    notebook: str | None  # stem of the released notebook it answers; None: could not tell


def _which_notebook(stem: str, notebooks) -> str | None:
    matches = [n for n in notebooks if n in stem]
    if matches:
        return max(matches, key=len)
    return next(iter(notebooks)) if len(notebooks) == 1 else None


def find_submissions(paths, notebooks) -> list[Submission]:
    """Turn command-line paths into submissions.

    A folder is one student (its name); every ``.ipynb`` below it is a
    submission (checkpoints skipped).  A file is one submission: the student
    is the file name without the notebook's name (``alice_01_convolution_1d.ipynb``
    -> ``alice``) or, for a file named exactly like the notebook, its folder's
    name.  The notebook is the released one whose name the file name contains
    (or the only released one).
    """
    subs = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
            if not files:
                subs.append(Submission(p, p.name, None))
            for f in files:
                subs.append(Submission(f, p.name, _which_notebook(f.stem, notebooks)))
        else:
            nb = _which_notebook(p.stem, notebooks)
            rest = p.stem.replace(nb, "").strip(" _-.") if nb else p.stem
            student = rest or p.resolve().parent.name
            subs.append(Submission(p, student, nb))
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
            shutil.rmtree(self.folder, ignore_errors=True)
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
            box = Sandbox(self.limits, self.policy, env=self.env)
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
                    self.fatal[index] = err
                    box.close()
                    break
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
        try:
            return self.ensure().request(command, deadline)
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
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in raw) or "Exception"
    if name[0].isdigit():
        name = "_" + name
    return type(name, (base,), {})(str(info.get("message", ""))[:2000])


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
        reply = self.session.request({"op": "call", "name": self.function, "payload": payload}, self.deadline)
        reply = _check_reply(reply, ("outcome",))
        error = reply.get("error") or {}
        labels = list(reply.get("forbidden") or [])
        if error.get("forbidden"):
            labels.append(error.get("message", ""))
        self._forbidden(labels)
        if reply.get("output_limit") or error.get("output"):
            raise SandboxError("output limit", "output limit")
        if reply["outcome"] == "raised":
            if error.get("type") == "PermissionError":  # a sandbox refusal: say what is unavailable, and why
                error = dict(error, message=_policy.explain_refusal(error.get("message", "")))
            if error.get("memory"):
                raise SandboxError("memory limit", "memory limit")
            if "exit" in error:
                raise SandboxError("exited", f"it called sys.exit({error['exit']})")
            raise _exception(error, NotImplementedError if error.get("not_implemented") else Exception)
        try:
            value = wire.decode(reply.get("value"))
            changed = {int(k): wire.decode(v) for k, v in (reply.get("changed_args") or {}).items()}
        except (wire.FrameError, ValueError, AttributeError) as err:
            raise SandboxError("error", f"the grader could not read the returned value ({err})") from None
        for i, new in changed.items():  # mirror in-place changes so the check can report them
            if 0 <= i < len(args) and isinstance(args[i], np.ndarray) and np.shape(new) == args[i].shape:
                try:
                    args[i][...] = new
                except (TypeError, ValueError):
                    pass
        return value


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
    elif status == "forbidden":
        text = f"{thing} {detail}"  # the policy's wording (cnncourse.checks.policy.forbidden_message)
    else:
        text = detail
    return status, f"✘ {head}: {text}"


def _row(sub: Submission, entry: dict, status: str, feedback: str, passed: bool = False) -> Row:
    points = float(entry["points"])
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
    try:
        nb = nbio.load(sub.path)
    except nbio.InvalidNotebook as err:
        return [_row(sub, e, "invalid notebook", f"✘ Exercise {e['exercise']} ({e['function']}): "
                                                 f"the submission is not a readable notebook: {err}") for e in entries]
    plan = _plan(nb, entries)
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

def _grade_safely(sub: Submission, manifest: dict, **kwargs) -> list[Row]:
    """:func:`grade_submission`, turning a grader bug into "error" rows instead of stopping the run."""
    try:
        return grade_submission(sub, manifest, **kwargs)
    except Exception as err:
        entries = manifest.get("notebooks", {}).get(sub.notebook, {}).get("exercises") or [None]
        text = f"the grader failed on this submission ({type(err).__name__}: {err}); please report it"
        return [_row(sub, e, "error", f"✘ Exercise {e['exercise']} ({e['function']}): {text}") if e else
                Row(sub.student, sub.notebook or "", "", 0.0, 0.0, "error", f"✘ {text}", str(sub.path))
                for e in entries]


def _sort_key(row: Row):
    return (row.student, row.notebook, rel._number_key(row.exercise) if row.exercise else (), row.submission)


def grade(paths, release_dir, *, jobs: int = 1, limits: Limits = Limits(), exercises=None,
          progress: bool = True) -> list[Row]:
    """Grade every submission under ``paths`` against the release in ``release_dir``.

    ``jobs`` submissions are graded at once (each in its own child process).
    Rows come back sorted by student, notebook and exercise.
    """
    from tqdm.auto import tqdm

    manifest = rel.read_manifest(release_dir)
    subs = find_submissions(paths, manifest.get("notebooks", {}))
    deny = {Path(release_dir).resolve(), *(Path(p).resolve() for p in paths)}
    deny |= {p.parent for p in deny if p.is_file()}
    notebooks = [s.path for s in subs] + sorted(Path(release_dir).glob("*.ipynb"))
    policy = default_policy(extra_deny=sorted(map(str, deny)), guard_files=notebooks)
    mpl = _MatplotlibCache()
    rows: list[Row] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(_grade_safely, s, manifest, limits=limits, exercises=exercises, policy=policy,
                               mpl_cache=mpl) for s in subs]
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), unit="notebook",
                           desc="grading", disable=not progress):
            rows.extend(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: finish the running ones, drop the rest
        mpl.remove()
    return sorted(rows, key=_sort_key)
