"""What a student's function may call while it is checked: one :class:`Policy` per exercise.

An exercise earns points only for the student's own code.  Each policy says

* which ``cnncourse`` functions the exercise may use (``allow``: a function,
  ``"cnncourse.signal.pad1d"``, or a whole module, ``"cnncourse.signal"``).
  Every *other* function of the package's computing modules
  (:func:`computing_modules`: everything but the plumbing in
  :data:`INFRASTRUCTURE`) is refused by default while the student's function
  runs, so a function added to the package later opens no new route;
* which third-party functions would solve the exercise outright (``deny``:
  families such as SciPy's correlation and filter functions, or the autograd
  of a framework for a backward pass), chosen to match the exercise's text.

NumPy itself (``np.pad``, slicing, ``np.sum``, ``np.einsum`` ...) and the
student's own functions are always fine.  A package function may call any
other package function: only calls *from the student's code* (or from a
third-party library the student's code called) into a refused function count.

The same policy object is used three times:

1. :meth:`Policy.sentence` is the "Grading:" paragraph of the exercise's
   markdown cell (a test checks that notebook and policy agree);
2. :func:`watch` wraps the student's function inside the notebook's check, so a
   forbidden route is reported at once, in the grader's words;
3. :func:`rules` is what the grader hands to the sandboxed child, whose
   tripwires (:mod:`cnncourse.grading.guard`) enforce it.

Targets of ``deny`` are written ``"module:attribute.path"``
(``"scipy.signal:correlate2d"``, ``"torch:Tensor.backward"``) so that the
module to import is never ambiguous.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import sys
import threading
import types
from typing import Callable, Iterable

from ..grading.gates import canonical, package_functions, resolve
from ..grading.gates import codes as _codes

__all__ = ["Family", "Policy", "POLICIES", "DEFAULT", "INFRASTRUCTURE", "ForbiddenRoute", "computing_modules",
           "policy_for", "rules", "watch", "grading", "describe", "forbidden_message", "explain_refusal",
           "display", "MARK"]

PACKAGE = "cnncourse"

#: Package modules that compute nothing a student could hand in (array plumbing, input checks,
#: thread settings, the check machinery and the grader).  Everything else is a computing module.
INFRASTRUCTURE = ("cnncourse", "cnncourse.backend", "cnncourse.threads", "cnncourse._validate", "cnncourse.cli",
                  "cnncourse.checks.core", "cnncourse.checks.policy", "cnncourse.checks.policies", "cnncourse.grading")

#: How the markdown paragraph stating an exercise's policy starts.
MARK = "**Grading:**"


def _is_infrastructure(name: str) -> bool:
    return any(name == m or (m != PACKAGE and name.startswith(m + ".")) for m in INFRASTRUCTURE)


def computing_modules() -> list[str]:
    """Names of the package's computing modules, found on disk (nothing is imported)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found, todo = [], [(root, PACKAGE)]
    while todo:
        folder, prefix = todo.pop()
        for info in pkgutil.iter_modules([folder]):
            name = f"{prefix}.{info.name}"
            if _is_infrastructure(name):
                continue
            found.append(name)
            if info.ispkg:
                todo.append((os.path.join(folder, info.name), name))
    return sorted(found)


# ---- policies -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Family:
    """A group of third-party functions refused together, and how the notebook names it."""

    label: str  # "SciPy's correlation, convolution and filter functions"
    targets: tuple[str, ...]  # "scipy.signal:correlate2d", ...


@dataclasses.dataclass(frozen=True)
class Policy:
    """What one exercise may use: see the module docstring."""

    allow: tuple[str, ...] = ()
    deny: tuple[Family, ...] = ()
    note: str = ""  # one more clause for the sentence, e.g. "calling the `f` you are given is fine"
    check_functions: bool = False  # the check hands functions of its own module to the student's function

    @property
    def deny_targets(self) -> tuple[str, ...]:
        return tuple(t for family in self.deny for t in family.targets)

    def allows(self, names: Iterable[str]) -> bool:
        """Is a package function reachable under any of ``names`` allowed here?"""
        return any(n == a or n.startswith(a + ".") for n in names for a in self.allow)

    def sentence(self) -> str:
        """The markdown paragraph stating this policy (starts with :data:`MARK`)."""
        allowed = ["NumPy"] + [f"any function of `{display(a)}`" if _is_module(a) else f"`{display(a)}`"
                               for a in self.allow] + ["functions you wrote yourself"]
        refused = ["any other `cnncourse` function" if self.allow else "any `cnncourse` function"]
        refused += [family.label for family in self.deny]
        text = (f"{MARK} your function may use {_join(allowed)}; "
                f"{_join(refused)} {'is' if len(refused) == 1 else 'are'} refused while it is checked, "
                "and a function that calls one earns no points")
        if self.note:
            text += f" ({self.note})"
        return text + "."

    def rule(self) -> dict:
        """Plain data for the grader's child: allowed package names, refused third-party targets."""
        return {"allow": list(self.allow), "deny": list(self.deny_targets)}


def _is_module(name: str) -> bool:
    return name in computing_modules() or name == PACKAGE


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def display(name: str) -> str:
    """How a function is named to a student: ``cc.signal.correlate1d``, ``np.correlate``, ``scipy.signal.correlate2d``."""
    name = name.replace(":", ".")
    for long, short in (("cnncourse.", "cc."), ("numpy.", "np.")):
        if name.startswith(long):
            return short + name[len(long):]
    return name


#: What an exercise without a policy gets: no package function, no third-party denylist.
DEFAULT = Policy()


def policy_for(number: str) -> Policy:
    """The exercise's policy, or :data:`DEFAULT` (strict for the package) when it has none.

    A policy given next to the check (``@exercise(..., policy=Policy(...))``) wins
    over the table in :mod:`cnncourse.checks.policies`.
    """
    return registered_policies().get(number, DEFAULT)


def registered_policies() -> dict[str, Policy]:
    """Exercise number -> policy: the table, overridden by policies registered with their check."""
    from .core import EXERCISES

    out = dict(POLICIES)
    out.update({n: e.policy for n, e in EXERCISES.items() if getattr(e, "policy", None) is not None})
    return out


def rules(entries, exercises=None) -> dict:
    """``{function name: rule}`` for the grader's child, from manifest entries (``exercise``, ``function``).

    ``exercises``: a registry other than ``EXERCISES`` whose entries may carry their own policy.
    """
    def of(number):
        own = getattr((exercises or {}).get(number), "policy", None)
        return own if own is not None else policy_for(number)

    return {e["function"]: of(e["exercise"]).rule() for e in entries}


def child_setup(entries, exercises=None) -> dict:
    """What the grader's child needs to enforce the policies of these exercises.

    ``gated_modules`` are imported and gated in the child; the check modules are
    among them only when an exercise's check hands its own functions to the
    student's function (``Policy.check_functions``); ``guarded_modules`` are every
    computing module, whose files become unreadable.
    """
    modules = computing_modules()
    checks = [m for m in modules if m == "cnncourse.checks" or m.startswith("cnncourse.checks.")]
    need_checks = any(policy_for(e["exercise"]).check_functions for e in entries)
    gated = [m for m in modules if need_checks or m not in checks]
    return {"rules": rules(entries, exercises), "gated_modules": gated, "guarded_modules": modules}


# ---- wording ------------------------------------------------------------------------------------

def describe(label: str) -> str:
    """One forbidden event in the student's words: ``called cnncourse.conv.correlate2d`` -> ``uses `cc.conv.correlate2d```."""
    if label.startswith("called "):
        return f"uses `{display(label[len('called '):])}`"
    if label.startswith("read the source of "):
        return f"reads the source of {label[len('read the '):].split(' of ', 1)[1]} (the package's reference code)"
    if label.startswith("read the notebook "):
        return f"reads the notebook {label[len('read the notebook '):]}"
    return label


def forbidden_message(labels: Iterable[str]) -> str:
    """The grader's (and the notebook's) sentence for a forbidden route."""
    parts = sorted({describe(str(x)[:200]) for x in labels if x})
    if not parts:
        return "uses a route this exercise does not allow, so it earns no points"
    calls = [p for p in parts if p.startswith("uses ")]
    text = _join(parts)
    if calls and len(calls) == len(parts):
        return (f"{text}, which this exercise asks you to write yourself, so it earns no points "
                "(its grading note says what you may use)")
    return f"{text}: that is not allowed while grading, so it earns no points"


# What the sandbox refuses, said in terms of what a student did.  Keys are the audit hook's words.
_REFUSALS = (
    ("the grader does not allow ctypes",
     "a library that loads compiled code (PyTorch, for example) is not available inside your function during "
     "grading: once student code runs, the sandbox refuses to load compiled libraries, because their code would "
     "run outside its checks. Import such libraries at the top of the notebook, in its import cell, which runs "
     "before the sandbox closes; or use NumPy"),
    ("the grader does not allow importing _ctypes", None),
    ("the grader does not allow importing ctypes", None),
    ("the grader does not allow starting processes",
     "starting another program or process is not available during grading: the function runs alone in a "
     "sandbox, without subprocesses, shells or multiprocessing"),
    ("the grader does not allow network access",
     "the network is not available during grading: the sandbox has no connections"),
    ("the grader only allows writing inside the scratch folder",
     "writing files outside the current (scratch) folder is not available during grading: the sandbox may "
     "only write there"),
    ("the grader does not allow reading /",
     "that file is not available during grading: the sandbox reads only Python, its libraries and the current "
     "folder"),
)


def explain_refusal(message: str) -> str:
    """A sandbox refusal (``PermissionError`` text) turned into what is unavailable during grading, and why."""
    text = str(message)
    for key, explanation in _REFUSALS:
        if text.startswith(key):
            if explanation is None:
                return explain_refusal("the grader does not allow ctypes")
            return explanation
    return text


# ---- the in-notebook watch ----------------------------------------------------------------------

class ForbiddenRoute(Exception):
    """The student's function called something its exercise's policy refuses."""

    def __init__(self, labels):
        self.labels = sorted(set(labels))
        super().__init__(forbidden_message(self.labels))


_local = threading.local()


class grading:
    """Context manager: the grader's own process does not watch (the sandboxed child enforces the policy)."""

    def __enter__(self):
        _local.off = getattr(_local, "off", 0) + 1
        return self

    def __exit__(self, *exc):
        _local.off -= 1
        return False


def _index():
    """What the watch needs, built once per process and extended when new libraries are loaded."""
    index = getattr(_index, "cached", None)
    if index is None:
        names = computing_modules()
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # a module that cannot load (an optional dependency) offers no route
                pass
        functions = package_functions(names)
        trusted: dict[int, types.CodeType] = {}
        for fn, _ in functions.values():
            _codes(fn.__code__, trusted)
        entries = {id(fn.__code__): (fn, names) for fn, names in functions.values()}
        index = _index.cached = types.SimpleNamespace(entries=entries, trusted=trusted, functions=functions,
                                                      deny_code={}, deny_c={}, resolved=set())
    return index


def _mentioned_names(fn, depth: int = 3) -> set[str]:
    """Names the function's code (and the notebook functions it calls, and a check's wrapper) mentions."""
    names: set[str] = set()
    seen: set[int] = set()
    todo = [(fn, 0)]
    while todo:
        obj, level = todo.pop()
        if id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            continue
        found: dict = {}
        _codes(code, found)
        for c in found.values():
            names.update(c.co_names)
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                todo.append((cell.cell_contents, level + 1))
            except ValueError:
                continue
        scope = getattr(obj, "__globals__", {})
        for name in list(names):
            value = scope.get(name)
            if isinstance(value, types.FunctionType) and not (value.__module__ or "").startswith(PACKAGE):
                todo.append((value, level + 1))
    return names


def _resolve_targets(index, targets, mentioned=frozenset()) -> None:
    """Add deny targets to the index: those whose module is loaded, and those the student's code names.

    (Importing a library only to watch for it would make a notebook's first
    check slow; a library the code does not mention cannot be called by it.)
    """
    for target in targets:
        if target in index.resolved:
            continue
        module, _, path = target.partition(":")
        if module not in sys.modules and not (set(path.split(".")) & mentioned and module.split(".")[0] in sys.modules):
            continue
        index.resolved.add(target)
        try:
            _, _, obj = resolve(target)
        except Exception:
            continue
        impl = getattr(obj, "_implementation", None)  # NumPy's array-function dispatchers
        fn = impl if isinstance(impl, types.FunctionType) else obj
        if isinstance(fn, types.FunctionType):
            index.deny_code[id(fn.__code__)] = target
            index.trusted.pop(id(fn.__code__), None)
        else:
            index.deny_c[id(fn)] = (fn, target)


def _passed_codes(args, kwargs) -> set:
    out = set()
    for value in (*args, *kwargs.values()):
        code = getattr(value, "__code__", None)
        if isinstance(code, types.CodeType):
            out.add(id(code))
    return out


def _is_exercise_function(number: str, fn) -> bool:
    """Is ``fn`` the notebook's exercise function (bound in ``__main__`` under the exercise's name)?

    Checks that adapt the student's function first (a wrapper closing over it)
    count too.  A demo such as ``check_correlate_same(lambda x, w, b: ...)`` is
    not the exercise function: the grader never sees it, so it is not watched.
    """
    from .core import EXERCISES

    entry = EXERCISES.get(number)
    main = sys.modules.get("__main__")
    target = getattr(main, entry.function, None) if entry is not None and main is not None else None
    if target is None:
        return False
    if fn is target:
        return True
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            if cell.cell_contents is target:
                return True
        except ValueError:  # an empty cell
            continue
    return False


def watch(number: str, fn: Callable) -> Callable:
    """``fn`` wrapped so that a call breaking exercise ``number``'s policy raises :class:`ForbiddenRoute`.

    Only the exercise's own function is watched (:func:`_is_exercise_function`):
    the function the grader will grade.  It still runs to the end (its result is
    discarded); the error lists every refused call it made.  Inside the grader
    (:class:`grading`) and for anything else, ``fn`` is returned unchanged.
    """
    if not callable(fn) or getattr(_local, "off", 0) or not _is_exercise_function(number, fn):
        return fn
    policy = policy_for(number)

    def watched(*args, **kwargs):
        index = _index()
        try:
            mentioned = _mentioned_names(fn)
        except Exception:  # never let the watch fail a student's check
            mentioned = set()
        _resolve_targets(index, policy.deny_targets, mentioned)
        deny = set(policy.deny_targets)
        entries, trusted, deny_code, deny_c = index.entries, index.trusted, index.deny_code, index.deny_c
        passed = _passed_codes(args, kwargs)
        found: list[str] = []
        generator = types.GeneratorType

        def profile(frame, event, arg):
            if event == "call":
                key = id(frame.f_code)
                entry = entries.get(key)
                target = deny_code.get(key) if entry is None else None
                if entry is None and target is None:
                    return
                caller = frame.f_back
                if caller is not None and id(caller.f_code) in trusted:
                    return  # the package calling itself
                if entry is not None:
                    if key not in passed and not policy.allows(entry[1]):
                        found.append("called " + canonical(*entry))
                elif target in deny:
                    found.append("called " + target.replace(":", "."))
            elif event == "return" and type(arg) is generator and id(arg.gi_code) in entries:
                # a package generator function runs no code until iterated: its creation is the call
                entry = entries[id(arg.gi_code)]
                if id(frame.f_code) not in trusted and not policy.allows(entry[1]):
                    found.append("called " + canonical(*entry))
            elif event == "c_call":
                hit = deny_c.get(id(arg))
                if hit is not None and hit[1] in deny and id(frame.f_code) not in trusted:
                    found.append("called " + hit[1].replace(":", "."))

        previous = sys.getprofile()
        sys.setprofile(profile)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            sys.setprofile(previous)
            if found:
                raise ForbiddenRoute(found) from None
            raise
        finally:
            sys.setprofile(previous)
        code = getattr(result, "gi_code", None)  # a package generator handed back unstarted ran no code yet
        if id(code) in entries and not policy.allows(entries[id(code)][1]):
            found.append("called " + canonical(*entries[id(code)]))
        if found:
            raise ForbiddenRoute(found)
        return result

    watched.__name__ = getattr(fn, "__name__", "watched")
    watched.__wrapped_student__ = fn
    return watched


from .policies import POLICIES  # noqa: E402  (the table needs Policy and Family, defined above)


# ---- the notebooks' "Grading:" paragraphs --------------------------------------------------------

def exercise_heading(number: str):
    """Regex of the markdown heading that opens exercise ``number`` ("## Exercise 1.1 · ...")."""
    import re

    return re.compile(rf"^#+\s+Exercise\s+{re.escape(number)}(?![\d.])", re.MULTILINE)


def stated_policy(markdown: str) -> str | None:
    """The "Grading:" paragraph of a markdown cell, or None."""
    for paragraph in markdown.split("\n\n"):
        if paragraph.strip().startswith(MARK):
            return " ".join(paragraph.split())
    return None


def write_statements(path) -> list[str]:
    """Put each exercise's :meth:`Policy.sentence` at the end of its markdown cell; return the exercises changed.

    Only markdown cells change (an old "Grading:" paragraph is replaced); code
    cells and outputs are left exactly as stored.  Run it after editing a
    policy: ``python -m cnncourse.checks.policy notebooks/*.ipynb``.
    """
    import nbformat

    from . import EXERCISES

    nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    changed = []
    for ex in (e for e in EXERCISES.values() if e.notebook == stem):
        heading = exercise_heading(ex.number)
        cells = [c for c in nb.cells if c.cell_type == "markdown" and heading.search(c.source)]
        if not cells:
            continue
        cell = cells[0]
        kept = [p for p in cell.source.rstrip("\n").split("\n\n") if not p.strip().startswith(MARK)]
        source = "\n\n".join(kept + [policy_for(ex.number).sentence()])
        if source != cell.source:
            cell.source = source
            changed.append(ex.number)
    if changed:
        nbformat.write(nb, str(path))
    return changed


if __name__ == "__main__":  # python -m cnncourse.checks.policy notebooks/*.ipynb
    for notebook in sys.argv[1:]:
        done = write_statements(notebook)
        print(f"{notebook}: {', '.join(done) if done else 'up to date'}")
