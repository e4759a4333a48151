"""The grader's side of the sandbox: start a child, talk to it, kill it, say how it died.

Why a grade cannot be forged
----------------------------
The child runs student code, so anything inside it can be rewritten by that
code: ``cnncourse.checks``, NumPy, builtins, the child's own reply routine,
its file descriptors.  The design therefore never lets the child *decide*
anything.  The check (``check_<name>`` from :mod:`cnncourse.checks`, its cases,
its expected answers and its comparison) runs here, in the grader, which
imports nothing from the child.  The check is handed a proxy in place of the
student's function; each call of the proxy sends the case's arguments to the
child, which calls the student's function and replies with the value it
returned (or the exception it raised).  Replies are JSON decoded into plain
numbers and numeric arrays (:mod:`cnncourse.grading.wire`: no pickle, sizes
checked), so the most a tampering submission can do with its reply channel
is claim that its function returned some value.  To make that claim pass, it
must produce the correct answer for inputs it only sees at call time, which is
doing the exercise.  Expected answers never leave the grader.  Printed
"success" lines and files written by the child are never read.  A child that
sends garbage, too much, or nothing gets a zero for that exercise.

The one remaining shortcut, computing the answer with the package's own
reference code, is closed inside the child by :mod:`cnncourse.grading.guard`
(tripwires on the exercise's ``forbidden`` functions and an audit hook that
keeps their source unreadable).

Containment
-----------
Each child is a fresh ``python -I`` process in its own session (so the whole
process group can be killed), with a minimal environment (no inherited
variables: no tokens or credentials), a scratch working directory that is
deleted afterwards, ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (a backstop for the
wall-clock limits enforced here), ``RLIMIT_FSIZE`` (printed output is
written to a file, so a huge print hits this limit) and no core dumps; where
the kernel has Landlock it also confines the child's file-system, exec,
network and signal rights (:mod:`cnncourse.grading.landlock`).  Every wait on
the child has a deadline; on timeout the process group is killed.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import wire

__all__ = ["Limits", "SandboxError", "Sandbox", "default_policy"]

# The child imports the grader's own copy of the package: its parent goes first on sys.path unless the
# installed cnncourse is that copy (an editable install of another checkout would otherwise win).
_BOOT = ("import sys, os, importlib.util; s = importlib.util.find_spec('cnncourse'); "
         "s and os.path.dirname(os.path.realpath(s.origin)) == os.path.join({root!r}, 'cnncourse') "
         "or sys.path.insert(0, {root!r}); from cnncourse.grading.child import main; main()")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../cnncourse


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one submission."""

    exercise_timeout: float = 30.0  # seconds of wall-clock time per exercise (its cell and its check)
    notebook_timeout: float = 300.0  # seconds for the whole submission
    memory_mb: int = 2048  # address-space limit of the child
    output_mb: float = 8.0  # printed output (and any file the child writes)
    startup_timeout: float = 60.0  # starting Python and running the notebook's imports


class SandboxError(BaseException):
    """The child timed out, died or broke the protocol.

    A BaseException so that it passes through ``run_cases`` (which reports
    ordinary exceptions as the student's bug) up to the grader.
    ``status`` is a report status: "timeout", "memory limit", "crashed",
    "exited", "output limit" or "error".
    """

    def __init__(self, status: str, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def _minimal_env(scratch: str, extra: dict | None = None) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": scratch,
        "TMPDIR": scratch,
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(scratch, ".matplotlib"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # grading is CPU-only and deterministic
    }
    env.update(extra or {})
    return env


def default_policy(extra_deny=(), guard_files=()) -> dict:
    """What the child may read (Python, the libraries, the package) and may not.

    ``deny_roots``: the home folder, the repository and ``extra_deny`` (the
    release and submission folders); ``guard_files``: notebooks whose reading
    counts as cheating (the repository's source notebooks, ``guard_files``).
    """
    import sysconfig

    from .release import default_notebooks

    allow = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(_PACKAGE_DIR)}
    allow |= {p for p in sysconfig.get_paths().values() if p}
    deny = {os.path.expanduser("~"), str(_PACKAGE_DIR.parent), *map(str, extra_deny)}
    deny.discard("/")
    guard = {str(p) for p in default_notebooks(_PACKAGE_DIR.parent)} | set(map(str, guard_files))
    return {"allow_roots": sorted(allow), "deny_roots": sorted(deny), "guard_files": sorted(guard)}


class Sandbox:
    """One child process.  Use as a context manager; :meth:`request` raises :class:`SandboxError`."""

    def __init__(self, limits: Limits, policy: dict, *, env: dict | None = None):
        self.limits, self.policy, self.extra_env = limits, policy, env
        self.proc: subprocess.Popen | None = None
        self.scratch: str | None = None
        self._cmd_fd = self._result_fd = -1
        self._seq = 0

    # ---- life cycle -----------------------------------------------------------------------
    def start(self, deadline: float, imports: str = "") -> dict:
        """Start the child, run ``imports`` (import statements only) and install its guards."""
        self.scratch = tempfile.mkdtemp(prefix="cnncourse-sandbox-")
        result_r, result_w = os.pipe()
        out = open(os.path.join(self.scratch, "output.txt"), "wb")
        lim = self.limits
        argv = [sys.executable, "-I", "-c", _BOOT.format(root=os.path.realpath(_PACKAGE_DIR.parent)), str(result_w),
                str(int(lim.memory_mb * 2**20)), str(int(lim.notebook_timeout + lim.startup_timeout + 5)),
                str(int(lim.output_mb * 2**20))]
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, pass_fds=(result_w,),
                cwd=self.scratch, env=_minimal_env(self.scratch, self.extra_env), start_new_session=True)
        finally:
            os.close(result_w)
            out.close()
        self._cmd_fd, self._result_fd = self.proc.stdin.fileno(), result_r
        setup = dict(self.policy, write_roots=[self.scratch], imports=imports)
        setup["allow_roots"] = [*setup.get("allow_roots", ()), self.scratch]
        self._send(pickle.dumps(setup), deadline)
        return self._receive(deadline)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self._send(pickle.dumps({"op": "exit"}), time.monotonic() + 1)
                self.proc.wait(timeout=2)
            except (SandboxError, subprocess.TimeoutExpired):
                pass
            self._kill()
            for close in (self.proc.stdin.close, lambda: os.close(self._result_fd)):
                try:
                    close()
                except OSError:
                    pass
            self.proc = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    # ---- messages -------------------------------------------------------------------------
    def request(self, command: dict, deadline: float) -> dict:
        """Send one command and return the child's (untrusted) reply to it.

        Commands carry a sequence number that the reply must echo; frames that
        do not (written into the channel by student code) are skipped, so a
        forged frame cannot shift the replies of later commands.
        """
        self._seq += 1
        self._send(pickle.dumps(dict(command, seq=self._seq)), deadline)
        return self._receive(deadline)

    def _send(self, payload: bytes, deadline: float) -> None:
        try:
            wire.write_frame(self._cmd_fd, payload, deadline)
        except wire.FrameTimeout:
            self._kill()
            raise SandboxError("timeout", "time limit") from None
        except OSError:
            raise self._death() from None

    def _receive(self, deadline: float) -> dict:
        try:
            for _ in range(10_000):
                reply = wire.loads(wire.read_frame(self._result_fd, deadline))
                if reply.get("seq") == self._seq:
                    return reply
            raise wire.FrameError("too many stray frames")
        except wire.FrameTimeout:
            self._kill()
            raise SandboxError("timeout", "time limit") from None
        except wire.FrameError as err:
            try:  # end of stream: the child is ending; garbage: it may still run
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill()
                raise SandboxError("error", f"the grader could not read the reply ({err})") from None
            raise self._death() from None

    def output_tail(self, n: int = 600) -> str:
        """The end of what the child printed (for diagnosing a child that fails to start)."""
        try:
            with open(os.path.join(self.scratch, "output.txt"), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - n))
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def _death(self) -> SandboxError:
        """Describe how the child ended (it must have ended, or be about to)."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            return SandboxError("error", "the child stopped answering")
        if code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return SandboxError("timeout", "CPU time limit")
            if sig == signal.SIGXFSZ:
                return SandboxError("output limit", "output limit")
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            return SandboxError("crashed", f"{name}, {signal.strsignal(sig) or 'unknown signal'}")
        return SandboxError("exited", f"exit code {code}")
