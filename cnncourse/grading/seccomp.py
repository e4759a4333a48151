"""A seccomp filter for the sandboxed child: no new processes, no programs, no sockets, no memfd.

Installed by the child after its trusted imports and before any student code
(:mod:`cnncourse.grading.child`).  Like Landlock it is irrevocable and holds
whatever the Python level does (rewritten modules, ``ctypes`` obtained some
other way, a raw ``fork_exec`` imported before the guards).  It answers, with
an error and without killing the child:

=======================================  =====================================================
``fork``, ``vfork``, ``clone``           ``EPERM`` unless ``clone`` makes a thread
(``clone3``: ``ENOSYS``, so the C        (``CLONE_THREAD``): the child cannot start a process,
library falls back to ``clone``)         so none can escape its process group or session
``execve``, ``execveat``                 ``EPERM``: no program runs, not even a copied ``ld.so``
``socket``, ``socketpair``               ``EPERM``: no TCP, UDP, Unix (file or abstract) or
                                         netlink socket
``memfd_create``                         ``EPERM``: memory held in a memfd is not counted by
                                         ``RLIMIT_AS``
``setsid``, ``setpgid``, ``unshare``,    ``EPERM``: no leaving the process group, no namespaces,
``ptrace``, ``io_uring_setup``,          no tracing, no asynchronous I/O rings or BPF
``bpf``, ``userfaultfd``, ``mount``
=======================================  =====================================================

System calls of another architecture (32-bit ``int 0x80`` on x86-64, x32) are
refused as a whole.  Supported on x86-64 and AArch64 Linux (seccomp needs
kernel 3.5+); elsewhere :func:`install` returns False and the audit hook of
:mod:`cnncourse.grading.guard` is the only process and network guard.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

__all__ = ["available", "install", "DENIED"]

# AUDIT_ARCH_* and the system call numbers of each supported architecture.
_ARCHES = {
    "x86_64": (0xC000003E, {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322,
                            "socket": 41, "socketpair": 53, "memfd_create": 319, "setsid": 112, "setpgid": 109,
                            "unshare": 272, "ptrace": 101, "io_uring_setup": 425, "bpf": 321, "userfaultfd": 323,
                            "mount": 165}),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "socket": 198,
                             "socketpair": 199, "memfd_create": 279, "setsid": 157, "setpgid": 154, "unshare": 97,
                             "ptrace": 117, "io_uring_setup": 425, "bpf": 280, "userfaultfd": 282, "mount": 40}),
}
_ARCHES["arm64"] = _ARCHES["aarch64"]
DENIED = ("fork", "vfork", "clone (except threads)", "clone3", "execve", "execveat", "socket", "socketpair",
          "memfd_create", "setsid", "setpgid", "unshare", "ptrace", "io_uring_setup", "bpf", "userfaultfd", "mount")

_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _PR_GET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 21, 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
# classic BPF opcodes
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data (little-endian low word of args[0])


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _arch():
    return _ARCHES.get(platform.machine())


def available() -> bool:
    """Can this process install a seccomp filter (Linux with seccomp, a supported architecture)?"""
    if _arch() is None:
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _program(arch: int, numbers: dict[str, int]) -> bytes:
    """The BPF program, as bytes of ``struct sock_filter`` (u16 code, u8 jt, u8 jf, u32 k)."""
    ins: list[tuple[int, int, int, int]] = []
    deny = [n for name, n in numbers.items() if name not in ("clone", "clone3")]
    # Layout (classic BPF only jumps forward): [0] load arch, [1] our arch?, [2] load nr, [3] x32?,
    # [4] clone3?, [5 .. 4+n] denied?, [5+n] clone?, [6+n] load flags, [7+n] thread?,
    # [8+n] ALLOW, [9+n] EPERM, [10+n] ENOSYS.
    n = len(deny)
    allow, eperm, enosys = 8 + n, 9 + n, 10 + n

    def jump(at: int, target: int) -> int:
        return target - at - 1

    ins.append((_LD_W_ABS, 0, 0, _OFF_ARCH))
    ins.append((_JEQ_K, 0, jump(1, eperm), arch))
    ins.append((_LD_W_ABS, 0, 0, _OFF_NR))
    ins.append((_JGE_K, jump(3, eperm), 0, _X32_BIT))
    ins.append((_JEQ_K, jump(4, enosys), 0, numbers["clone3"]))
    for i, nr in enumerate(deny):
        ins.append((_JEQ_K, jump(5 + i, eperm), 0, nr))
    ins.append((_JEQ_K, 0, jump(5 + n, allow), numbers["clone"]))
    ins.append((_LD_W_ABS, 0, 0, _OFF_ARG0))
    ins.append((_JSET_K, jump(7 + n, allow), jump(7 + n, eperm), _CLONE_THREAD))
    ins.append((_RET_K, 0, 0, _RET_ALLOW))
    ins.append((_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    ins.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))
    assert all(0 <= jt < 256 and 0 <= jf < 256 for _, jt, jf, _ in ins)
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


def install() -> bool:
    """Install the filter on this process (and any thread it starts later); True when it is in force."""
    spec = _arch()
    if spec is None or not available():
        return False
    code = _program(*spec)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return False
    return libc.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) == _SECCOMP_MODE_FILTER


if __name__ == "__main__":  # a quick self-test: python -m cnncourse.grading.seccomp
    import socket
    import threading

    print("installed:", install())
    for what, action in [("fork", os.fork), ("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)),
                         ("memfd", lambda: os.memfd_create("x")), ("exec", lambda: os.execv("/bin/true", ["true"]))]:
        try:
            action()
            print(what, "allowed")
        except OSError as err:
            print(what, "refused:", err)
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    print("threads still work")
