"""The sandboxed child: runs a submission's code and calls its functions on request.

Started by :class:`cnncourse.grading.sandbox.Sandbox` as::

    python -I -c "...; from cnncourse.grading.child import main; main()" RESULT_FD RECORD_FD MEM CPU FSIZE

It applies its resource limits first, reads a setup frame (the notebook's
import statements and the guard policy) from stdin, runs the imports,
installs the guards (tripwires and the audit hook of
:mod:`cnncourse.grading.guard`, Landlock, the seccomp filter of
:mod:`cnncourse.grading.seccomp`, the open-file and process limits), forgets
the setup data (nothing student code can find on the stack or in a module
names another submission), then serves commands from stdin until told to
stop or stdin closes:

* ``exec``: run one block of student code (a cell) in the submission's namespace;
* ``lookup``: is ``name`` defined and callable?
* ``call``: call ``name(*args, **kwargs)`` and report the outcome: the
  returned value (:func:`cnncourse.grading.wire.encode`), the exception it
  raised, a forbidden call, or an output overflow.

Replies go to RESULT_FD.  Everything here is *untrusted once student code has
run*: the grader treats replies as claims about what the student's function
returned, never as a verdict.  A call's reply carries every array argument as
it is after the call; the grader compares them with what it sent (the
in-place check is the grader's).  Forbidden calls and reads are written by
the audit hook to RECORD_FD, a pipe only the hook writes to by design (see
:func:`cnncourse.grading.guard.install_hook`).
"""
from __future__ import annotations

import builtins
import errno
import os
import pickle
import resource
import sys

import numpy as _np

from . import guard as _guard
from . import wire as _wire


def _limit(kind, value: int) -> None:
    if value > 0:
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):  # a hard limit already lower than ours: keep it
            pass


def _error(err: BaseException) -> dict:
    from . import guard

    try:
        message = str(err)[:2000]
    except BaseException:  # a student exception whose __str__ fails
        message = "<unprintable message>"
    info = {"type": type(err).__name__[:80], "message": message,
            "not_implemented": isinstance(err, NotImplementedError),
            "memory": isinstance(err, MemoryError),
            "forbidden": isinstance(err, guard.ForbiddenCall),
            "output": isinstance(err, OSError) and err.errno == errno.EFBIG}
    if isinstance(err, SystemExit):
        info["exit"] = str(err.code)[:200]
    return info


def _die_with_parent() -> None:
    """Linux: be killed if the grader dies (a sleeping child would otherwise outlive it)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:  # not Linux, no libc: the CPU limit and stdin's end still stop the child
        pass


def _confine(setup: dict, guarded: dict) -> int:
    """Kernel limits (Landlock) where available: read Python, libraries and system files, write scratch."""
    from . import landlock

    pid = os.getpid()
    system = ["/usr", "/lib", "/lib64", "/lib32", "/etc", "/sys", "/dev/urandom", "/dev/random", "/dev/zero",
              "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"]
    system += [f"/proc/{pid}/{name}" for name in ("stat", "statm", "status", "cgroup", "mountinfo", "limits")]
    # every import location (a Nix or .pth layout may keep libraries outside the prefix),
    # except the repository itself when the package is not installed
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    imports = [p for p in sys.path if p and os.path.realpath(p) != repo]
    try:
        return landlock.restrict(read=[*setup.get("allow_roots", ()), *imports, *system],
                                 write=list(setup.get("write_roots", ())), read_write_files=["/dev/null"],
                                 hidden=list(guarded))
    except Exception:  # never let the optional kernel layer stop grading
        return 0


class _Child:
    def __init__(self, cmd_fd: int, result_fd: int, output_limit: int):
        self.cmd_fd, self.result_fd, self.output_limit = cmd_fd, result_fd, output_limit
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}
        self.builtins = dict(vars(builtins))

    def restore_builtins(self) -> None:
        """Undo a submission's changes to builtins before the child's own code runs again.

        (``builtins.isinstance = lambda *a: True`` would otherwise break the
        JSON encoder of the reply; the submission would still earn nothing.)
        """
        current = vars(builtins)
        for name, value in self.builtins.items():
            if current.get(name) is not value:
                current[name] = value

    # The harness's own tools are default arguments, bound when this module loads: rebinding
    # ``wire.encode``, ``pickle.loads`` or a method of this class from student code changes nothing for
    # the running loop (the audit hook refuses rewriting the defaults or code of the grader's functions).
    def reply(self, message: dict, _write=_wire.write_frame, _dumps=_wire.dumps, _int=int) -> None:
        _write(self.result_fd, _dumps(message), seq=_int(message.get("seq") or 0))

    def output_overflow(self) -> bool:
        try:
            return os.fstat(1).st_size >= self.output_limit
        except OSError:
            return False

    def run_exec(self, cmd: dict) -> dict:
        from . import guard

        try:
            code = compile(cmd["code"], cmd.get("filename", "<cell>"), "exec")
            exec(code, self.namespace)
            error = None
        except BaseException as err:  # the cell's own failure, reported
            self.restore_builtins()
            error = _error(err)
        self.restore_builtins()
        guard.calls()  # calls at the top level of a cell are blocked but not penalised
        return {"ok": error is None, "error": error, "output_limit": self.output_overflow()}

    def run_lookup(self, cmd: dict) -> dict:
        value = self.namespace.get(cmd["name"], None)
        defined = cmd["name"] in self.namespace
        return {"defined": defined, "callable": callable(value), "type": type(value).__name__[:80]}

    def run_call(self, cmd: dict, _loads=pickle.loads, _encode=_wire.encode, _ndarray=_np.ndarray,
                 _isinstance=isinstance, _enumerate=enumerate, _str=str, _calls=_guard.calls) -> dict:
        _calls()
        reply: dict = {}
        try:
            args, kwargs = _loads(cmd["payload"])  # may import the check's module (its helper functions)
            value = self.namespace[cmd["name"]](*args, **kwargs)
            self.restore_builtins()
            reply["outcome"] = "returned"
            reply["value"] = _encode(value)
            # every array argument as it is now: the grader compares it with what it sent
            reply["args_after"] = {_str(i): _encode(a) for i, a in _enumerate(args) if _isinstance(a, _ndarray)}
        except BaseException as err:  # whatever the student's code raised, reported
            self.restore_builtins()
            reply = {"outcome": "raised", "error": _error(err)}
        reply["forbidden"] = _calls()
        reply["output_limit"] = self.output_overflow()
        return reply

    def serve(self, _read=_wire.read_frame, _loads=pickle.loads, _error_type=_wire.FrameError, _dict=dict) -> None:
        # bound once, before any student code runs: later changes to the class do not reach this loop
        handlers = {"exec": self.run_exec, "lookup": self.run_lookup, "call": self.run_call}
        reply = self.reply
        while True:
            try:
                _seq, payload = _read(self.cmd_fd, None)
                cmd = _loads(payload)
            except _error_type:  # the grader closed the pipe: we are done
                return
            op = cmd.get("op")
            if op == "exit":
                return
            reply(_dict(handlers[op](cmd), seq=cmd.get("seq")))


def _harden(setup: dict) -> dict:
    """Limits that hold whatever student code does: seccomp, open files, processes."""
    from . import seccomp

    done = {"seccomp": False}
    try:
        done["seccomp"] = seccomp.install()
    except Exception:  # never let an optional kernel layer stop grading
        pass
    _limit(resource.RLIMIT_NOFILE, int(setup.get("open_files", 0)))
    _limit(resource.RLIMIT_NPROC, 1)  # counted per user: ignored for root, where seccomp stops fork instead
    return done


def main() -> None:
    result_fd, record_fd, memory, cpu, fsize = (int(a) for a in sys.argv[1:6])
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CPU, cpu)
    _limit(resource.RLIMIT_FSIZE, fsize)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _die_with_parent()

    # Commands arrive on stdin; move them to a private descriptor so input()
    # in student code reads an empty stream instead of the grader's commands.
    cmd_fd = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    # Trusted imports, before the guards: modules the guards refuse to load
    # later (``_posixsubprocess``, ``ctypes``) must already be in sys.modules
    # for libraries that import them (matplotlib, scipy ...) to import at all.
    import ctypes  # noqa: F401
    import subprocess  # noqa: F401

    import numpy  # noqa: F401

    import cnncourse  # noqa: F401

    from . import guard, seccomp, wire  # noqa: F401

    child = _Child(cmd_fd, result_fd, fsize)
    ready = _setup(child, record_fd)
    child.reply(ready)
    del ready
    child.serve()
    os._exit(0)  # skip interpreter teardown: student objects' __del__ may hang or crash


def _setup(child: _Child, record_fd: int) -> dict:
    """Read the setup frame, run the notebook's imports, install every guard; return the ready reply.

    A function of its own so that the setup data (the policy, folder names)
    is gone from every frame once it returns: student code that walks up the
    stack from its function finds ``main`` and ``serve``, and nothing in them.
    """
    from . import guard, wire

    _seq, payload = wire.read_frame(child.cmd_fd, None)
    setup = pickle.loads(payload)
    # The notebook's import statements (nothing but imports of allowed
    # modules, checked by the grader; ``-I`` keeps the scratch folder off
    # sys.path) run before the guards, so that libraries that load C code at
    # import time still work.
    imports = child.run_exec({"code": setup.get("imports", ""), "filename": "<imports>"})
    sys.path[:] = [p for p in sys.path if p]  # never import from the scratch folder
    guarded = guard.arm(setup)
    kernel = _confine(setup, guarded)
    hardened = _harden(setup)  # before the hook, which refuses ctypes from then on
    guard.install_hook(dict(setup, record_fd=record_fd), guarded)
    setup.clear()
    guarded.clear()
    return {"ready": True, "imports": imports, "landlock": kernel, **hardened, "seq": 0}
