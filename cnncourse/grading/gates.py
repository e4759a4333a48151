"""The child's policy tripwires: every package function becomes a gate (child side; issue 16).

Each exercise has a policy (:mod:`cnncourse.checks.policy`): the package
functions it may use, and the third-party functions that would solve it.  The
grader sends the child ``rules`` (``{exercise function: {"allow": [...],
"deny": [...]}}``) and the names of the package's computing modules; then

* every function of those modules (module functions, methods, wrapped
  functions) has its ``__code__`` replaced by a *trampoline* that asks the
  gate which code to run.  The original code survives only in a private
  clone held by the gate, out of reach of student code (the gate's defaults
  cannot be read: an audit hook refuses it);
* every denied third-party function is gated the same way (a C function, which
  has no ``__code__``, is replaced by a gated stub wherever its library binds it);
* modules not loaded yet are gated as they load: package modules from code
  read now (their files are then unreadable), third-party modules after they
  execute.  Removing the import hook that does this makes every later import fail.

The gate lets a call through when it comes from package code (a package
function may call any other), when no graded call is running (a cell's top
level, an import), when the exercise's rule allows it, or when the function was
handed to the student's function as an argument (exercise 7.4's ``f``).
Otherwise the call records ``called <name>`` and raises
:class:`~cnncourse.grading.guard.ForbiddenCall`.  Which exercise is running is
read from the child's ``run_call`` frame: the function it was asked to call.
"""
from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types

__all__ = ["codes", "package_functions", "canonical", "resolve", "arm_policy"]


# ---- shared with cnncourse.checks.policy (the in-notebook watch) ----------------------------------

def codes(code: types.CodeType, out: dict) -> None:
    """``out[id(c)] = c`` for ``code`` and every code object nested in it (lambdas, comprehensions ...)."""
    if id(code) in out:
        return
    out[id(code)] = code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            codes(const, out)


def package_functions(module_names) -> dict[int, tuple]:
    """``{id(function): (function, names)}`` of the functions defined in the given modules (those loaded).

    ``names`` are the dotted names it is reachable under (``cnncourse.signal.pad1d``;
    a method: ``cnncourse.nn.Conv2d.forward``).  Wrapped functions
    (``functools.wraps``, ``lru_cache``) come in through ``__wrapped__``.
    """
    module_names = set(module_names)
    found: dict[int, tuple] = {}

    def add(fn, name):
        for _ in range(8):
            if isinstance(fn, (staticmethod, classmethod)):
                fn = fn.__func__
            if isinstance(fn, types.FunctionType):
                found.setdefault(id(fn), (fn, set()))[1].add(name)
            inner = None if isinstance(fn, type) else getattr(fn, "__wrapped__", None)
            if inner is None or inner is fn:
                return
            fn = inner

    for module_name in sorted(module_names):
        module = sys.modules.get(module_name)
        if not isinstance(module, types.ModuleType):
            continue
        for attr, value in list(vars(module).items()):
            home = getattr(value, "__module__", None) if isinstance(value, (type, types.FunctionType)) or \
                hasattr(value, "__wrapped__") else None
            if home not in module_names:
                continue
            if isinstance(value, type):
                for key, member in list(vars(value).items()):
                    if isinstance(member, property):
                        for f in (member.fget, member.fset, member.fdel):
                            if f is not None:
                                add(f, f"{module_name}.{attr}.{key}")
                    elif isinstance(member, (types.FunctionType, staticmethod, classmethod)):
                        add(member, f"{module_name}.{attr}.{key}")
            else:
                add(value, f"{module_name}.{attr}")
    return {k: (fn, frozenset(names)) for k, (fn, names) in found.items()}


def canonical(fn, names) -> str:
    """The name a function is reported under: where it is defined, else its shortest alias."""
    home = f"{fn.__module__}.{fn.__qualname__}"
    return home if home in names else min(names, key=lambda n: (len(n), n))


def resolve(target: str):
    """``"module:attr.path"`` -> (owner, attribute, object); imports the module."""
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    parts = path.split(".")
    for attr in parts[:-1]:
        owner = getattr(owner, attr)
    return owner, parts[-1], getattr(owner, parts[-1])


def allowed(names, allow) -> bool:
    return any(n == a or n.startswith(a + ".") for n in names for a in allow)


# ---- the gate -------------------------------------------------------------------------------------

_KEY = 1_234_567_891  # placeholder for the table key in the trampoline templates
_TEMPLATES: dict[int, types.CodeType] = {}


def _trampoline_code(name: str, key: int, n_free: int) -> types.CodeType:
    """``def name(*args, **kwargs): return __cnncourse_gate__(key, args, kwargs)(*args, **kwargs)``.

    With ``n_free`` unused free variables: a function's ``__code__`` can only be
    replaced by code with as many free variables as it has closure cells.
    The gate returns the code to run and is gone from the stack before it runs,
    so no frame of student code ever sees the gate's own variables.
    """
    template = _TEMPLATES.get(n_free)
    if template is None:
        free = [f"_free{i}" for i in range(n_free)]
        src = "def _outer():\n" + "".join(f"    {v} = None\n" for v in free)
        src += "    def gated(*args, **kwargs):\n"
        if free:
            src += f"        ({', '.join(free)},)\n"
        src += f"        return __cnncourse_gate__({_KEY}, args, kwargs)(*args, **kwargs)\n    return gated\n"
        namespace: dict = {}
        exec(compile(src, "<gated>", "exec"), namespace)
        template = _TEMPLATES[n_free] = namespace["_outer"]().__code__
    name = name if name.isidentifier() else "gated"  # a lambda's code is named <lambda>
    consts = tuple(key if type(c) is int and c == _KEY else c for c in template.co_consts)
    return template.replace(co_name=name, co_qualname=name, co_consts=consts, co_filename=f"<gated {name}>")


def _new_state(rules: dict, trip) -> dict:
    """Everything the gate knows.  Only functions holding it in their (unreadable) defaults can reach it."""
    try:
        from .child import _Child
        run_call = _Child.run_call.__code__
    except Exception:  # no child (a plain process): every call counts as graded, with no rule
        run_call = None
    return {"rules": {fn: (tuple(r.get("allow", ())), frozenset(r.get("deny", ()))) for fn, r in rules.items()},
            "table": [],  # key -> (function, clone, tripper, names, kind)
            "trusted": {},  # id(code) -> code: package code, which may call anything
            "trampolines": {},  # id(code) -> trampoline code
            "done": set(),  # ids of gated functions
            "watch": {},  # third-party module -> deny targets it holds
            "protected": set(),  # ids of the functions whose defaults hold this state
            "trip": trip, "run_call": run_call, "gate": None}


def _make_gate(state: dict):
    import _thread

    def gate(key, args, kwargs, _table=state["table"], _trusted=state["trusted"], _tramps=state["trampolines"],
             _rules=state["rules"], _run=state["run_call"], _direct=_tripper(state["trip"], "called the grader's gate"),
             _getframe=sys._getframe, _id=id, _type=type, _dict=dict, _tuple=tuple, _allowed=allowed,
             _thread_id=_thread.get_ident, _main=_thread.get_ident()):
        fn, clone, tripper, names, kind = _table[key]
        frame = _getframe(1)
        if _id(frame.f_code) not in _tramps:  # called by hand, not through a tripwire
            return _direct
        caller = frame.f_back
        if caller is not None and _id(caller.f_code) in _trusted:
            return clone  # the package calling itself
        while caller is not None and caller.f_code is not _run:
            caller = caller.f_back
        if caller is None and _run is not None and _thread_id() == _main:
            return clone  # no graded call running: a cell's top level, an import
        # (a thread the student started has no grader frame below it: it gets no rule, so no package call)
        local = caller.f_locals if caller is not None else {}
        cmd = local.get("cmd")
        rule = _rules.get(cmd.get("name")) if _type(cmd) is _dict else None
        if kind == "deny":
            return tripper if rule is not None and names & rule[1] else clone
        if rule is not None and _allowed(names, rule[0]):
            return clone
        passed, kw = local.get("args"), local.get("kwargs")
        for value in (*(passed if _type(passed) is _tuple else ()), *(kw.values() if _type(kw) is _dict else ())):
            if value is fn:
                return clone  # handed to the student's function by the check (exercise 7.4's f)
        return tripper

    state["protected"].add(id(gate))
    return gate


def _tripper(trip, label: str):
    def forbidden(*args, **kwargs):
        raise trip(label)

    return forbidden


def _gate_function(state: dict, fn: types.FunctionType, names, label: str, kind: str) -> None:
    """Swap ``fn.__code__`` for a trampoline; keep the original code in a private clone."""
    if id(fn) in state["done"]:
        return
    state["done"].add(id(fn))
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__kwdefaults__ = fn.__kwdefaults__
    clone.__dict__.update(fn.__dict__)
    if kind == "package":
        codes(clone.__code__, state["trusted"])
    key = len(state["table"])
    state["table"].append((fn, clone, _tripper(state["trip"], label), frozenset(names), kind))
    code = _trampoline_code(fn.__code__.co_name, key, len(fn.__code__.co_freevars))
    state["trampolines"][id(code)] = code
    fn.__globals__["__cnncourse_gate__"] = state["gate"]
    fn.__code__ = code


def _gate_callable(state: dict, owner, attr: str, obj, target: str, label: str) -> None:
    """A C function: a gated stub takes its place wherever its library (or the package) binds it."""
    key = len(state["table"])
    name = getattr(obj, "__name__", attr)
    code = _trampoline_code(name, key, 0)
    stub = types.FunctionType(code, {"__cnncourse_gate__": state["gate"], "__builtins__": builtins}, name)
    state["trampolines"][id(code)] = code
    state["table"].append((stub, obj, _tripper(state["trip"], label), frozenset({target}), "deny"))
    state["done"].add(id(stub))
    try:
        setattr(owner, attr, stub)
    except (AttributeError, TypeError):
        pass
    top = target.split(".")[0].split(":")[0]
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] in (top, "cnncourse") and isinstance(module, types.ModuleType):
            for key_, value in list(vars(module).items()):
                if value is obj:
                    try:
                        setattr(module, key_, stub)
                    except (AttributeError, TypeError):
                        pass


def _gate_package_module(state: dict, name: str) -> None:
    for fn, names in package_functions([name]).values():
        _gate_function(state, fn, names, f"called {canonical(fn, names)}", "package")


def _gate_targets(state: dict, targets, *, swap: bool = True) -> None:
    """Gate denied third-party functions: by swapping code (before the audit hook) or by stubs (after)."""
    for target in targets:
        try:
            owner, attr, obj = resolve(target)
        except Exception:  # an optional library without this function: nothing to refuse
            continue
        label = f"called {target.replace(':', '.')}"
        impl = getattr(obj, "_implementation", None)  # NumPy's array-function dispatchers
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(impl, types.FunctionType):
            if swap:  # the implementation, for references bound before arming ...
                _gate_function(state, impl, {target}, label, "deny")
            # ... and a stub for the dispatcher, which checks arguments before the implementation runs
            _gate_callable(state, owner, attr, obj, target, label)
        elif swap and isinstance(obj, types.FunctionType):
            _gate_function(state, obj, {target}, label, "deny")
        elif callable(obj) and id(obj) not in state["done"]:
            _gate_callable(state, owner, attr, obj, target, label)


class _Loader(importlib.abc.Loader):
    """Runs a watched third-party module as usual, then puts gated stubs in place of its denied functions.

    (The module loads after the sandbox's audit hook, which refuses replacing a
    function's code, so stubs are bound under every name the library uses instead.)
    """

    def __init__(self, inner, after):
        self._inner, self._after = inner, after

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._after()


class _Finder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: libraries holding denied functions are gated as they load."""

    def __init__(self, find):
        self._find = find

    def find_spec(self, name, path=None, target=None):
        return self._find(name, path, target)


def _make_finder(state: dict) -> _Finder:
    def find(name, path, target, _state=state):
        targets = _state["watch"].pop(name, None)
        if not targets:
            return None
        for other in sys.meta_path:
            if isinstance(other, _Finder) or not hasattr(other, "find_spec"):
                continue
            spec = other.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                def after(_state=_state, _targets=tuple(targets)):
                    _gate_targets(_state, _targets, swap=False)

                _state["protected"].add(id(after))
                spec.loader = _Loader(spec.loader, after)
                return spec
        return None

    state["protected"].add(id(find))
    return _Finder(find)


def arm_policy(setup: dict, trip) -> dict[str, str]:
    """Gate the package and the denied functions; return {file: module} of the files to guard.

    ``setup["gated_modules"]`` are imported and gated now; ``setup["guarded_modules"]``
    (the rest of the computing modules) only become unreadable, so importing one
    later fails.  Also adds an audit hook: later imports need the gating finder in
    place, and the defaults of the gate and its helpers (which hold the original
    code) cannot be read.
    """
    rules = setup.get("rules") or {}
    state = _new_state(rules, trip)
    state["gate"] = _make_gate(state)
    files: dict[str, str] = {}
    for name in setup.get("gated_modules") or ():
        try:
            module = importlib.import_module(name)
        except Exception:  # a module that cannot load (an optional dependency) offers no route
            continue
        _gate_package_module(state, name)
        if getattr(module, "__file__", None):
            files[module.__file__] = name
    for name in setup.get("guarded_modules") or ():
        if name not in sys.modules:
            spec = _module_spec(name)
            if spec is not None and spec.origin:
                files[spec.origin] = name
    for target in sorted({t for r in rules.values() for t in r.get("deny", ())}):
        module = target.split(":")[0]
        if module in sys.modules:
            _gate_targets(state, [target])
        else:
            state["watch"].setdefault(module, []).append(target)
    finder = _make_finder(state)
    sys.meta_path.insert(0, finder)
    sys.addaudithook(_make_import_hook(finder, state["protected"]))
    return files


def _module_spec(name: str):
    """Where a package module lives, found without importing its parent package."""
    import cnncourse

    root = os.path.dirname(os.path.realpath(cnncourse.__file__))
    parent = name.rpartition(".")[0]
    folder = os.path.join(root, *parent.split(".")[1:])
    try:
        return importlib.machinery.PathFinder.find_spec(name, [folder])
    except Exception:
        return None


def _make_import_hook(finder, protected):
    """Audit hook: imports need the gating finder in place; the gate's state cannot be read."""
    def hook(event, args, _finder=finder, _protected=protected, _sys=sys, _id=id, _perm=PermissionError):
        if event == "import":
            if _finder not in _sys.meta_path:
                raise _perm("the grader does not allow importing after its import hook was removed")
        elif event == "object.__getattr__" and len(args) > 1 and _id(args[0]) in _protected \
                and args[1] in ("__defaults__", "__kwdefaults__"):
            raise _perm("the grader does not allow reading its tripwires")

    return hook
