"""The child's guards, installed before any student code runs (child side only).

Two pieces:

* **Tripwires.**  Every package function an exercise lists as ``forbidden``
  (``"cnncourse.signal.correlate1d"``) has its code object swapped, in place,
  for one that records the call and raises :class:`ForbiddenCall`.  Swapping
  ``__code__`` (rather than rebinding a name) reaches every reference to the
  function at once, including other package functions that call it, and the
  original code object is dropped: nothing in the child's memory can compute
  the reference answer any more.

* **An audit hook** (PEP 578; once added it cannot be removed).  It refuses
  reading the files that hold forbidden code (the module's source and every
  cached bytecode file, recognised by device and inode, so ``reload``,
  ``inspect.getsource`` and ``exec(open(...).read())`` fail whatever path is
  used) and the notebooks the grader names (source notebooks, other
  submissions) or any ``.ipynb`` outside the scratch folder; reading the
  grader's home, repository and grading folders, writing outside the scratch
  folder, changing directory and making links; starting processes (a new
  process would not carry the hook); ``ctypes`` (C functions run without audit
  events: the notebook's import statements run *before* the guards, so
  libraries such as torch that load theirs at import still import); ``gc``
  object walks, trace and profile functions and replacing a function's
  ``__code__`` (the routes to the guards' own objects); network connections;
  signalling other processes.  Its settings are default arguments bound when
  it is made, immutable, out of student code's reach (module globals such as
  ``_PROCESS_EVENTS`` are read once, when the hook is made, and it refuses
  rewriting ``__defaults__``/``__kwdefaults__`` of the grader's functions).
  It also records every forbidden call (the tripwires raise a
  ``cnncourse.forbidden`` audit event) and every refused read of guarded
  code on a pipe to the grader, where student code cannot take it back.

Where the kernel offers Landlock, :mod:`cnncourse.grading.landlock` enforces
the file-system, exec, network and signal limits in the kernel as well, so the
path checks above are a second layer there.

These guards protect the *reference code* and the machine.  They are not what
makes a grade trustworthy: the verdict is computed in the grader process from
the values this child returns (see :mod:`cnncourse.grading.sandbox`).
"""
from __future__ import annotations

import importlib
import importlib.util
import linecache
import os
import sys
import types

__all__ = ["ForbiddenCall", "calls", "arm", "install_hook", "NOTEBOOK_LABEL"]


class ForbiddenCall(BaseException):
    """Raised by a tripwire.  A BaseException, so ``except Exception`` does not swallow it."""


_CALLS: list[str] = []


def calls() -> list[str]:
    """The forbidden calls recorded since the last time this was called (and forget them)."""
    out = list(_CALLS)
    _CALLS.clear()
    return out


def _trip(label: str, _audit=sys.audit) -> ForbiddenCall:
    _CALLS.append(label)
    _audit("cnncourse.forbidden", label)  # the audit hook records it where student code cannot unwrite it
    return ForbiddenCall(label)


def _tripwire_code(name: str, label: str, n_free: int) -> types.CodeType:
    """Code for ``def name(*args, **kwargs): raise <ForbiddenCall>`` with ``n_free`` free variables.

    A function's ``__code__`` can only be replaced by code with as many free
    variables as the function has closure cells, hence the unused ones.
    """
    free = [f"_free{i}" for i in range(n_free)]
    src = "def _outer():\n" + "".join(f"    {v} = None\n" for v in free)
    src += f"    def {name}(*args, **kwargs):\n        raise __cnncourse_forbidden__({label!r})\n"
    if free:
        src += f"        ({', '.join(free)},)\n"
    src += f"    return {name}\n"
    namespace: dict = {}
    exec(compile(src, f"<forbidden {label}>", "exec"), namespace)
    return namespace["_outer"]().__code__


def _patch_function(fn: types.FunctionType, label: str) -> None:
    fn.__code__ = _tripwire_code(fn.__code__.co_name, label, len(fn.__code__.co_freevars))
    fn.__globals__["__cnncourse_forbidden__"] = _trip


def _stub(label: str):
    def forbidden(*args, **kwargs):
        raise _trip(label)

    return forbidden


def _resolve(target: str):
    """``"pkg.mod.fn"`` or ``"pkg.mod.Class.method"`` -> (owner, attribute name, object, module)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        owner = module
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1], getattr(owner, parts[-1]), module
    raise ImportError(f"cannot import {target}")


def _arm(target: str) -> dict[str, str]:
    """Install the tripwire for one forbidden target; return {file holding its code: module name}."""
    owner, attr, obj, module = _resolve(target)
    modules = {module.__name__}
    seen: set[int] = set()
    todo = [obj]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (staticmethod, classmethod)):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo.extend(f for f in (item.fget, item.fset, item.fdel) if f is not None)
        elif isinstance(item, type):
            todo.extend(vars(item).values())
            modules.add(item.__module__)
        elif isinstance(item, types.FunctionType):
            modules.add(item.__module__)
            if hasattr(item, "__wrapped__"):
                todo.append(item.__wrapped__)
            _patch_function(item, f"called {target}")
        elif item is obj and callable(item):  # a C function or other callable: rebind the name everywhere
            stub = _stub(f"called {target}")
            setattr(owner, attr, stub)
            for name, mod in list(sys.modules.items()):
                if name.split(".")[0] == target.split(".")[0]:
                    for key, value in list(vars(mod).items()):
                        if value is item:
                            setattr(mod, key, stub)
    files = {getattr(sys.modules.get(m), "__file__", None): m for m in modules}
    return {f: m for f, m in files.items() if f}


def _guarded_files(files: dict[str, str]) -> dict[str, str]:
    """{path: label} of every file holding forbidden code: sources and all their cached bytecode."""
    out = {}
    for f, module in files.items():
        real = os.path.realpath(f)
        source = real[:-1] if real.endswith(".pyc") else real
        label = f"read the source of {module}"
        out[real] = out[source] = label
        folder, base = os.path.split(source)
        cache = os.path.join(folder, "__pycache__")
        stem = base.rsplit(".", 1)[0] + "."
        try:
            out.update({os.path.join(cache, n): label for n in os.listdir(cache) if n.startswith(stem)})
        except OSError:
            pass
    return out


def arm(policy: dict) -> dict[str, str]:
    """Install the tripwires; return {path: label} of the files the child must not read.

    Those are the files holding forbidden code, and the notebooks the grader
    names in ``policy["guard_files"]`` (source notebooks, other submissions).
    With ``policy["rules"]`` (one rule per exercise function, see
    :mod:`cnncourse.checks.policy`), every function of ``policy["gated_modules"]``
    and every denied third-party function is gated (:mod:`cnncourse.grading.gates`)
    and all those modules' files are guarded.
    """
    files: dict[str, str] = {}
    for target in policy.get("forbidden", ()):
        files.update(_arm(target))
    if policy.get("rules") is not None:  # per-exercise policies: every package function gated (gates.py)
        from .gates import arm_policy

        files.update(arm_policy(policy, _trip))
    guarded = _guarded_files(files)
    for path in policy.get("guard_files", ()):
        guarded[os.path.realpath(path)] = f"read the notebook {os.path.basename(path)}"
    _close_process_backdoor()
    linecache.clearcache()
    return guarded


_PROCESS_EVENTS = frozenset({"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                             "subprocess.Popen", "pty.spawn", "os.startfile"})
_NETWORK_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.__new__",
                             "socket.socketpair"})
# Introspection that could reach the guards' own objects, or rewrite code, is refused outright.
_INTROSPECTION_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents",
                                   "sys.settrace", "sys.setprofile", "sys._current_frames"})
# A function's code and default arguments are where the hook and the tripwires keep their settings.
_FROZEN_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
# chdir: relative paths must resolve against the scratch folder, as the guard resolves them;
# links: a link would give a guarded file a second name.
_FS_REFUSED = frozenset({"os.chdir", "os.symlink", "os.link"})
_FS_EVENTS = frozenset({"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.truncate", "os.chmod", "os.chown",
                        "os.utime", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr", "shutil.rmtree",
                        "shutil.move", "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree",
                        "shutil.chown"})
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "_ctypes", "ctypes", "_posixshmem"})
_PROC_OK = frozenset({"stat", "statm", "status", "cgroup", "mountinfo", "limits"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
NOTEBOOK_LABEL = "read a notebook it may not read (a source notebook or another submission)"


def _scratch_usage(roots: tuple, scandir=os.scandir, limit: int = 20_000) -> tuple[int, int]:
    """``(bytes, entries)`` below the scratch folders, without recursion (stops counting at ``limit``)."""
    total, entries, todo = 0, 0, list(roots)
    while todo and entries < limit:
        try:
            with scandir(todo.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass
        except OSError:
            pass
    return total, entries


def _make_hook(write_roots: tuple, deny_roots: tuple, allow_roots: tuple, guarded: dict, pid: int, *,
               guard_keys=(), record_fd: int = -1, scratch_bytes: int = 0, scratch_entries: int = 0):
    """The audit hook.

    Everything it relies on is bound as a default argument when it is made:
    immutable values (frozensets, tuples, numbers) and the original C
    functions (``os.stat``), so rebinding ``os.stat``, a module global such as
    ``guard._PROCESS_EVENTS`` or a builtin later changes nothing for it; it
    has no closure cells; and it refuses the one way to change default
    arguments (assigning ``__defaults__``/``__kwdefaults__``) on the grader's
    own functions (``cnncourse/grading/*``, the tripwires), and assigning
    ``__code__`` on any function.  Guarded files are recognised by identity
    (device, inode), whatever name, relative path or ``/proc`` route is used.

    Forbidden calls (the tripwires' ``cnncourse.forbidden`` event) and reads
    of guarded files are written to ``record_fd``, a pipe to the grader.
    Student code cannot take a record back; if that descriptor no longer is
    the pipe the hook was given (closed, or another file moved onto its
    number) the hook kills its own process rather than record nowhere.
    """
    keys = {}
    for path, label in guarded.items():
        try:
            st = os.stat(path)
        except OSError:
            continue
        keys[(st.st_dev, st.st_ino)] = label
    for dev, ino in guard_keys:
        keys[(int(dev), int(ino))] = NOTEBOOK_LABEL
    labels = tuple(keys.items())
    try:
        st = os.fstat(record_fd) if record_fd >= 0 else None
        record_key = (st.st_dev, st.st_ino) if st else None
    except OSError:
        record_key = None

    def hook(event, args, _labels=labels, _keys=frozenset(keys), _stat=os.stat, _fstat=os.fstat,
             _realpath=os.path.realpath, _join=os.path.join, _getcwd=os.getcwd, _isdir=os.path.isdir,
             _write=tuple(write_roots), _deny=tuple(deny_roots), _allow=tuple(allow_roots), _pid=pid,
             _sep=os.sep, _trip=ForbiddenCall, _getframe=sys._getframe, _quiet=os.path.realpath(linecache.__file__),
             _str=str, _bytes=bytes, _int=int, _type=type, _perm=PermissionError, _len=len,
             _process=_PROCESS_EVENTS, _network=_NETWORK_EVENTS, _introspection=_INTROSPECTION_EVENTS,
             _frozen=_FROZEN_ATTRIBUTES, _fs_refused=_FS_REFUSED, _fs_events=_FS_EVENTS,
             _blocked_imports=_BLOCKED_IMPORTS, _proc_ok=_PROC_OK, _write_flags=_WRITE_FLAGS,
             _rfd=record_fd, _rkey=record_key, _oswrite=os.write, _kill=os.kill,
             _usage=_scratch_usage, _cap=scratch_bytes, _max_entries=scratch_entries,
             _function=types.FunctionType, _own_code=os.path.dirname(os.path.abspath(__file__)) + os.sep):
        def record(label):
            if _rkey is None:
                return
            try:
                st = _fstat(_rfd)
                same = (st.st_dev, st.st_ino) == _rkey
            except OSError:
                same = False
            if not same:  # the record channel was tampered with: end the process, never record nowhere
                _kill(_pid, 9)
            text = _str(label)[:300].replace("\n", " ") + "\n"
            try:
                _oswrite(_rfd, text.encode("utf-8", "replace"))
            except OSError:  # full (the grader reads it after each reply): earlier records are there
                pass

        if event == "open":
            path, mode, flags = args
            if _type(path) is _int or path is None:
                return
            if _type(path) is not _str and _type(path) is not _bytes:
                raise _perm("the grader needs a file name as str or bytes")
            try:
                st = _stat(path)
                key = (st.st_dev, st.st_ino)
            except (OSError, ValueError):
                key = None
            if key in _keys:
                label = [lab for k, lab in _labels if k == key][0]
                # Tracebacks and warnings look source lines up through linecache, which takes a
                # refusal as "no source": refuse quietly there, so a warning raised inside package
                # code does not count against the student.
                frame = _getframe(1)
                for _ in range(8):
                    if frame is None:
                        break
                    if frame.f_code.co_filename == _quiet:
                        raise _perm("the grader does not allow reading this file")
                    frame = frame.f_back
                record(label)
                raise _trip(label)
            text = path if _type(path) is _str else path.decode("utf-8", "surrogateescape")
            p = _realpath(text if text.startswith(_sep) else _join(_getcwd(), text))

            def under(q, roots):
                return [r for r in roots if q == r or q.startswith(r + _sep)] != []

            writing = (_type(mode) is _str and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) \
                or (_type(flags) is _int and flags & _write_flags)
            if writing and not under(p, _write):
                raise _perm(f"the grader only allows writing inside the scratch folder, not {p}")
            if writing and (_cap or _max_entries):
                used, entries = _usage(_write)
                if (_cap and used >= _cap) or (_max_entries and entries >= _max_entries):
                    raise _perm(f"the scratch folder is full ({used // 2**20} MB in {entries} files and folders)")
            if p.endswith(".ipynb") and not under(p, _write):
                label = "read a notebook it may not read (a source notebook or another submission)"
                record(label)
                raise _trip(label)
            if p.startswith("/proc/") and not (p in ("/proc/meminfo", "/proc/cpuinfo", "/proc/stat")
                                                or (p.startswith(f"/proc/{_pid}/") and p.split("/")[3] in _proc_ok)):
                raise _perm(f"the grader does not allow reading {p}")
            if under(p, _deny) and not under(p, _allow):
                raise _perm(f"the grader does not allow reading {p}")
            if mode is None and not under(p, _write) and _isdir(p):
                raise _perm(f"the grader does not allow opening the folder {p}")
        elif event == "cnncourse.forbidden":
            record(args[0] if _len(args) else "called a forbidden function")
        elif event in _process:
            raise _perm("the grader does not allow starting processes")
        elif event.startswith("ctypes."):  # a loaded C library's functions run without audit events
            raise _perm("the grader does not allow ctypes")
        elif event in _introspection:
            raise _perm(f"the grader does not allow {event}")
        elif event == "object.__setattr__" and _len(args) > 1 and args[1] in _frozen:
            # __code__ of any function; defaults of the grader's own functions and the tripwires
            # (the standard library sets __defaults__ itself: collections.namedtuple ...)
            if args[1] == "__code__":
                raise _perm("the grader does not allow replacing a function's __code__")
            if _type(args[0]) is _function:
                where = args[0].__code__.co_filename
                if where.startswith(_own_code) or where.startswith("<forbidden"):
                    raise _perm(f"the grader does not allow replacing {args[1]} of its own functions")
        elif event in _network:
            raise _perm("the grader does not allow network access")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event == "os.kill" and args[0] not in (_pid, 0):
                raise _perm("the grader does not allow signalling other processes")
            if event == "os.killpg" and args[0] != _pid:
                raise _perm("the grader does not allow signalling other processes")
        elif event == "import" and args:
            if args[0] in _blocked_imports:
                raise _perm(f"the grader does not allow importing {args[0]}")
            # an extension module's C code runs without audit events: none may come from the scratch folder
            if _len(args) > 1 and (_type(args[1]) is _str or _type(args[1]) is _bytes) and args[1]:
                text = args[1] if _type(args[1]) is _str else args[1].decode("utf-8", "surrogateescape")
                p = _realpath(text if text.startswith(_sep) else _join(_getcwd(), text))
                if [r for r in _write if p == r or p.startswith(r + _sep)]:
                    raise _perm("the grader does not allow loading compiled code from the scratch folder")
        elif event in _fs_refused:
            raise _perm(f"the grader does not allow {event}")
        elif event in _fs_events:
            for arg in args:
                if _type(arg) is _str or _type(arg) is _bytes:
                    text = arg if _type(arg) is _str else arg.decode("utf-8", "surrogateescape")
                    p = _realpath(text if text.startswith(_sep) else _join(_getcwd(), text))
                    if not [r for r in _write if p == r or p.startswith(r + _sep)]:
                        raise _perm(f"the grader only allows changing files inside the scratch folder ({event})")

    return hook


def _close_process_backdoor() -> None:
    """``_posixsubprocess.fork_exec`` starts processes without an audit event in Python 3.11."""
    def refuse(*args, **kwargs):
        raise PermissionError("the grader does not allow starting processes")

    for name in ("_posixsubprocess", "subprocess", "multiprocessing.util"):
        module = sys.modules.get(name)
        if module is not None:
            for attr in ("fork_exec", "_fork_exec"):
                if hasattr(module, attr):
                    setattr(module, attr, refuse)


def install_hook(policy: dict, guarded: dict[str, str]) -> None:
    """Add the audit hook (after :func:`arm`).  Call once, before any student code.

    ``policy`` keys used: ``write_roots``, ``deny_roots``, ``allow_roots``
    (folders), ``guard_keys`` (``[device, inode]`` of notebooks the child must
    not read: the grader sends identities, never other students' paths),
    ``record_fd`` (the pipe for forbidden-call records), ``scratch_bytes`` and
    ``scratch_entries`` (the scratch folder's quota, checked on every open for
    writing).
    """
    def roots(key):
        return tuple(sorted({os.path.realpath(p) for p in policy.get(key, ()) if p}))

    record_fd = int(policy.get("record_fd", -1))
    if record_fd >= 0:
        try:
            os.set_blocking(record_fd, False)  # a full record pipe must not hang the child
        except OSError:
            record_fd = -1
    sys.addaudithook(_make_hook(roots("write_roots"), roots("deny_roots"), roots("allow_roots"), guarded, os.getpid(),
                                guard_keys=tuple(tuple(k) for k in policy.get("guard_keys", ())), record_fd=record_fd,
                                scratch_bytes=int(policy.get("scratch_bytes", 0)),
                                scratch_entries=int(policy.get("scratch_entries", 0))))
