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
written to a file, so a huge print hits this limit) and no core dumps.
Before student code runs it also gets: a low ``RLIMIT_NOFILE``;
``RLIMIT_NPROC`` (ignored for root); a seccomp filter
(:mod:`cnncourse.grading.seccomp`: no fork, exec, socket or memfd); where the
kernel has Landlock, kernel limits on its file-system, exec, network and
signal rights (:mod:`cnncourse.grading.landlock`).

Every wait on the child has a deadline, writes included (the grader's ends of
the pipes are non-blocking and polled with ``select``).  A watchdog thread per
child kills its process group at the submission's deadline, and kills it as
soon as its scratch folder grows past the quota (``Limits.scratch_mb``, also
checked by the child's audit hook on every open for writing).  Every child
carries a random marker in its environment; killing a child also sweeps
``/proc`` for any process with that marker (one that left the process group
or session, where the kernel let it start one at all).  The scratch folder is
removed without recursion (a 1,200-deep tree is no problem), on a background
thread that :func:`wait_for_cleanup` (and interpreter exit) waits for.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import pickle
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import wire
from .guard import _scratch_usage

__all__ = ["Limits", "SandboxError", "Sandbox", "default_policy", "remove_tree", "kill_all", "wait_for_cleanup",
           "STRAY_BYTES",
           "STOPPED_READING"]

STRAY_BYTES = 8 * 2**20  # bytes of frames that are not the awaited reply a child may send before it is ended
_RECORD_BYTES = 2**20  # forbidden-call records kept per child (the first ones decide)
_WATCH_S = 0.2  # how often the watchdog measures the scratch folder
# The child's harness reads each command as soon as it has answered the previous one: a command
# whose bytes it takes none of for this long will never be read (it is not the exercise's time).
# Honest commands (cells, arguments: at most a few KB) fit in the pipe and never wait at all.
WRITE_STALL_S = 2.0
STOPPED_READING = "the sandbox stopped reading the grader's commands (code run earlier took its command pipe away)"

# The package's parent goes first on sys.path: the child runs the very code the grader runs (an
# editable install elsewhere, or another checkout of the course, must not supply the child's side).
_BOOT = ("import sys; sys.path.insert(0, {root!r}); "
         "from cnncourse.grading.child import main; main()")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../cnncourse


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one submission."""

    exercise_timeout: float = 30.0  # seconds of wall-clock time per exercise (its cell and its check)
    notebook_timeout: float = 300.0  # seconds for the whole submission
    memory_mb: int = 2048  # address-space limit of the child
    output_mb: float = 8.0  # printed output (and any file the child writes)
    startup_timeout: float = 60.0  # starting Python and running the notebook's imports
    scratch_mb: float = 64.0  # everything in the scratch folder together (printed output included)
    scratch_entries: int = 2000  # files and folders in the scratch folder
    open_files: int = 64  # RLIMIT_NOFILE once student code runs


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
    release folder and the folders holding the submissions); ``guard_keys``:
    ``[device, inode]`` of the notebooks whose reading counts as cheating (the
    repository's source notebooks and ``guard_files``).  The child gets
    identities, not paths: nothing in its policy names a student.
    """
    import sysconfig

    from .release import default_notebooks

    allow = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(_PACKAGE_DIR)}
    allow |= {p for p in sysconfig.get_paths().values() if p}
    deny = {os.path.expanduser("~"), str(_PACKAGE_DIR.parent), *map(str, extra_deny)}
    deny.discard("/")
    keys = set()
    for path in [*default_notebooks(_PACKAGE_DIR.parent), *guard_files]:
        try:
            st = os.stat(path)
        except OSError:
            continue
        keys.add((st.st_dev, st.st_ino))
    return {"allow_roots": sorted(allow), "deny_roots": sorted(deny), "guard_keys": sorted(keys)}


_LIVE: set = set()
_LIVE_LOCK = threading.Lock()


def kill_all() -> None:
    """Kill every running child (the instructor pressed Ctrl-C): their waits end at once."""
    with _LIVE_LOCK:
        boxes = list(_LIVE)
    for box in boxes:
        box.kill("interrupted")


def remove_tree(root: str) -> None:
    """Delete a folder tree without recursion and without following links (any depth, any path length).

    Works with directory descriptors (``dir_fd``), one level at a time, so
    neither Python's recursion limit nor ``PATH_MAX`` is reached.
    """
    try:
        cur = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        try:
            os.unlink(root)
        except OSError:
            pass
        return
    names: list[str] = []  # the path from root to cur, as names
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        while True:
            sub = None
            try:
                with os.scandir(cur) as it:
                    entries = list(it)
            except OSError:
                entries = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    sub = entry.name
                    break
                try:
                    os.unlink(entry.name, dir_fd=cur)
                except OSError:
                    pass
            if sub is not None:
                try:
                    os.chmod(sub, 0o700, dir_fd=cur, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    pass
                try:
                    child = os.open(sub, flags, dir_fd=cur)
                except OSError:  # cannot enter it: try removing it as it is, then go on
                    try:
                        os.rmdir(sub, dir_fd=cur)
                    except OSError:
                        return
                    continue
                os.close(cur)
                cur = child
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=cur)
            os.close(cur)
            cur = parent
            try:
                os.rmdir(names.pop(), dir_fd=cur)
            except OSError:
                return
    finally:
        os.close(cur)
    try:
        os.rmdir(root)
    except OSError:
        pass


class _Remover:
    """Deletes dead children's scratch folders on a background thread (a deep tree can take seconds of
    file-system latency, which need not hold up the next submission); :meth:`wait` before exiting."""

    def __init__(self):
        self._lock = threading.Lock()
        self._todo: list[str] = []
        self._thread: threading.Thread | None = None
        atexit.register(self.wait)

    def remove(self, folder: str) -> None:
        with self._lock:
            self._todo.append(folder)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cnncourse-remover", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._todo:
                    return
                folder = self._todo.pop(0)
            remove_tree(folder)

    def wait(self, timeout: float | None = None) -> None:
        """Return once every folder handed over so far is deleted."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


_REMOVER = _Remover()
wait_for_cleanup = _REMOVER.wait


def _sweep(marker: bytes) -> int:
    """Kill every process whose environment carries ``marker`` (escaped its group or session); return how many."""
    killed = 0
    try:
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read(1 << 16)
        except OSError:
            continue
        if marker in env:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


class Sandbox:
    """One child process.  Use as a context manager; :meth:`request` raises :class:`SandboxError`.

    ``hard_deadline`` (``time.monotonic()`` seconds): the watchdog kills the
    child then, whatever the grader's thread is doing.
    """

    def __init__(self, limits: Limits, policy: dict, *, env: dict | None = None, hard_deadline: float | None = None):
        self.limits, self.policy, self.extra_env = limits, policy, env
        self.hard_deadline = hard_deadline
        self.proc: subprocess.Popen | None = None
        self.scratch: str | None = None
        self._cmd_fd = self._result_fd = self._record_fd = -1
        self._seq = 0
        self._stray = 0
        self._marker = "cnncourse-" + secrets.token_hex(12)
        self._killed: str | None = None  # why the grader killed the child ("timeout", "output limit" ...)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.records: list[str] = []
        self._record_buf, self._record_bytes, self.records_broken = b"", 0, False
        self.hardening: dict = {}

    # ---- life cycle -----------------------------------------------------------------------
    def start(self, deadline: float, imports: str = "") -> dict:
        """Start the child, run ``imports`` (import statements only) and install its guards."""
        self.scratch = tempfile.mkdtemp(prefix="cnncourse-sandbox-")
        result_r, result_w = os.pipe()
        record_r, record_w = os.pipe()
        out = open(os.path.join(self.scratch, "output.txt"), "wb")
        lim = self.limits
        argv = [sys.executable, "-I", "-c", _BOOT.format(root=str(_PACKAGE_DIR.parent)), str(result_w), str(record_w),
                str(int(lim.memory_mb * 2**20)), str(int(lim.notebook_timeout + lim.startup_timeout + 5)),
                str(int(lim.output_mb * 2**20))]
        env = _minimal_env(self.scratch, self.extra_env)
        env["CNNCOURSE_SANDBOX"] = self._marker
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, pass_fds=(result_w, record_w),
                cwd=self.scratch, env=env, start_new_session=True)
        except BaseException:
            for fd in (result_r, record_r):
                os.close(fd)
            raise
        finally:
            os.close(result_w)
            os.close(record_w)
            out.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._cmd_fd, self._result_fd, self._record_fd = self.proc.stdin.fileno(), result_r, record_r
        for fd in (self._cmd_fd, self._result_fd, self._record_fd):
            os.set_blocking(fd, False)
        self._watchdog = threading.Thread(target=self._watch, name="cnncourse-watchdog", daemon=True)
        self._watchdog.start()
        setup = dict(self.policy, write_roots=[self.scratch], imports=imports,
                     scratch_bytes=int(lim.scratch_mb * 2**20), scratch_entries=int(lim.scratch_entries),
                     open_files=int(lim.open_files))
        setup["allow_roots"] = [*setup.get("allow_roots", ()), self.scratch]
        self._send(pickle.dumps(setup), deadline, seq=0)
        reply = self._receive(deadline)
        self.hardening = {k: reply.get(k) for k in ("landlock", "seccomp")}
        self.take_records()  # trips while the trusted imports ran are not the student's
        return reply

    def _watch(self) -> None:
        """Kill the child at the hard deadline, or as soon as its scratch folder is over quota."""
        cap = self.limits.scratch_mb * 2**20
        pause = _WATCH_S
        while not self._stop.wait(pause):
            if self.hard_deadline is not None and time.monotonic() >= self.hard_deadline:
                self.kill("timeout")
                return
            start = time.monotonic()
            used, entries = _scratch_usage((self.scratch,))
            if used > cap or entries > self.limits.scratch_entries:
                self.kill("output limit")
                return
            # a deep tree makes each measurement slow: measure less often rather than spend the grader's CPU
            pause = max(_WATCH_S, 20 * (time.monotonic() - start))
            if self.hard_deadline is not None:
                pause = min(pause, max(0.0, self.hard_deadline - time.monotonic()))

    def kill(self, reason: str) -> None:
        """Kill the child's process group (and any process that escaped it); remember why."""
        if self._killed is None:
            self._killed = reason
        proc = self.proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _sweep(self._marker.encode())

    def close(self) -> None:
        self._stop.set()
        if self.proc is not None:
            try:
                self._send(pickle.dumps({"op": "exit"}), time.monotonic() + 1)
                self.proc.wait(timeout=2)
            except (SandboxError, subprocess.TimeoutExpired):
                pass
            self._kill()
            for close in (self.proc.stdin.close, lambda: os.close(self._result_fd),
                          lambda: os.close(self._record_fd)):
                try:
                    close()
                except OSError:
                    pass
            self.proc = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5)
        if self.scratch is not None:
            _REMOVER.remove(self.scratch)
            self.scratch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _sweep(self._marker.encode())
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    # ---- messages -------------------------------------------------------------------------
    def request(self, command: dict, deadline: float) -> dict:
        """Send one command and return the child's (untrusted) reply to it.

        Commands carry a sequence number that the reply's frame header must
        echo; frames that do not (written into the channel by student code) are
        skipped unparsed, so a forged frame can neither shift the replies of
        later commands nor make the grader parse it; more than
        :data:`STRAY_BYTES` of them end the child.
        """
        self._seq += 1
        self._send(pickle.dumps(dict(command, seq=self._seq)), deadline, seq=self._seq)
        return self._receive(deadline)

    def _timeout(self, detail: str = "time limit") -> SandboxError:
        self._kill()
        if self._killed not in (None, "timeout"):
            return self._death()
        return SandboxError("timeout", detail)

    def _send(self, payload: bytes, deadline: float, seq: int | None = None) -> None:
        try:
            wire.write_frame(self._cmd_fd, payload, deadline, seq=self._seq if seq is None else seq,
                             stall=WRITE_STALL_S)
        except wire.FrameTimeout:
            # the harness reads a command as soon as it has replied to the previous one: a command
            # that cannot be delivered means code run earlier took its command pipe away
            raise self._timeout(STOPPED_READING) from None
        except OSError:
            raise self._death() from None

    def _receive(self, deadline: float) -> dict:
        try:
            while True:
                seq, size = wire.read_header(self._result_fd, deadline)
                if seq == self._seq:
                    break
                self._stray += size + 16
                if self._stray > STRAY_BYTES:
                    self._kill()
                    raise SandboxError("error", f"the child sent more than {STRAY_BYTES // 2**20} MB that was not a "
                                                "reply (the submission interfered with the grader)")
                wire.skip_bytes(self._result_fd, size, deadline)
            reply = wire.loads(wire.read_payload(self._result_fd, size, deadline))
            if reply.get("seq") != self._seq:
                raise wire.FrameError("the reply does not echo its command")
        except wire.FrameTimeout:
            raise self._timeout() from None
        except wire.FrameError as err:
            if self._killed is not None:
                raise self._death() from None
            if not str(err).startswith(("end of stream", "stream ended")):  # garbage from a live child: end it now
                self._kill()
                if self.proc.returncode is not None and self.proc.returncode >= 0:  # it had exited on its own
                    raise self._death() from None
                raise SandboxError("error", f"the grader could not read the reply ({err})") from None
            try:  # end of stream: the child is ending
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill()
                raise SandboxError("error", f"the grader could not read the reply ({err})") from None
            raise self._death() from None
        self._drain_records()
        if self.records_broken:
            self._kill()
            raise SandboxError("error", "the submission closed or replaced the grader's record channel")
        return reply

    def _drain_records(self) -> None:
        """Read what the child's audit hook recorded (non-blocking; keeps the first MB)."""
        while True:
            try:
                chunk = os.read(self._record_fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                self.records_broken = True
                return
            if not chunk:
                self.records_broken = True
                return
            if self._record_bytes >= _RECORD_BYTES:
                continue
            self._record_bytes += len(chunk)
            *lines, self._record_buf = (self._record_buf + chunk).split(b"\n")
            self.records += [line.decode("utf-8", "replace")[:300] for line in lines if line]

    def take_records(self) -> list[str]:
        """The forbidden calls and reads recorded since the last call (and forget them)."""
        out, self.records = self.records, []
        return out

    def output_tail(self, n: int = 600) -> str:
        """The end of what the child printed (for diagnosing a child that fails to start)."""
        try:
            fd = os.open(os.path.join(self.scratch, "output.txt"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (OSError, TypeError):
            return ""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # the child may have put a FIFO in its place
                return ""
            os.lseek(fd, max(0, st.st_size - n), os.SEEK_SET)
            return os.read(fd, n).decode("utf-8", "replace")
        except OSError:
            return ""
        finally:
            os.close(fd)

    def _death(self) -> SandboxError:
        """Describe how the child ended (it must have ended, or be about to)."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            return SandboxError("error", "the child stopped answering")
        if self._killed == "timeout":
            return SandboxError("timeout", "time limit")
        if self._killed == "output limit":
            return SandboxError("output limit", f"scratch folder over its {self.limits.scratch_mb:g} MB quota")
        if self._killed == "interrupted":
            return SandboxError("error", "the grading run was interrupted")
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
