"""Kernel-enforced limits for the sandboxed child, with Linux Landlock (kernel 5.13+).

Landlock lets an unprivileged process restrict itself, irrevocably, for the rest
of its life (and that of any child): here, to *read* only Python, the installed
libraries, the system folders and the package's files other than the ones that
hold forbidden reference code; to *write* only its scratch folder; to execute no
program (the execute right is granted nowhere, not even in the scratch folder); to open no TCP connection (ABI 4+); to signal no process outside
itself (ABI 6+).  Rules only ever grant, so a tree that contains a hidden file
is granted piece by piece around it.

Where the kernel lacks Landlock (older kernels, macOS, a container that
blocks it) :func:`restrict` returns 0 and the audit hook of
:mod:`cnncourse.grading.guard` is the only file-system guard.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["abi", "restrict"]

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
TRUNCATE, IOCTL_DEV = 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is unavailable."""
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _fs_rights(version: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: execute ... make_sym
    if version >= 2:
        rights |= 1 << 13  # refer
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def _grants(root: str, hidden: frozenset) -> list[tuple[str, bool]]:
    """``(path, whole_tree)`` pairs that cover ``root`` except the ``hidden`` files."""
    if not any(h == root or h.startswith(root + os.sep) for h in hidden):
        return [(root, True)]
    if os.path.isfile(root):
        return []
    out = [(root, False)]  # the folder itself: listing only
    try:
        children = sorted(os.listdir(root))
    except OSError:
        return out
    for name in children:
        out += _grants(os.path.join(root, name), hidden)
    return out


def restrict(*, read: list[str], write: list[str], read_write_files: list[str] = (), hidden=()) -> int:
    """Confine this process; return the Landlock ABI used (0: not available, nothing done).

    ``read``: folders or files readable (recursively), minus the ``hidden`` files;
    ``write``: folders with every right; ``read_write_files``: single files to
    read and write (``/dev/null``).  Paths that do not exist are skipped.
    """
    version = abi()
    if version < 1:
        return 0
    libc = _libc()
    fs = _fs_rights(version)
    file_rights = EXECUTE | WRITE_FILE | READ_FILE | (TRUNCATE if version >= 3 else 0)
    file_rights |= IOCTL_DEV if version >= 5 else 0
    attr = _RulesetAttr(fs, _NET_BIND_TCP | _NET_CONNECT_TCP if version >= 4 else 0,
                        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return 0
    ruleset = int(ruleset)

    def add(path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            rule = _PathBeneathAttr(rights, fd)
            libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                         ctypes.c_uint32(0))
        finally:
            os.close(fd)

    try:
        hidden = frozenset(os.path.realpath(h) for h in hidden)
        for root in {os.path.realpath(p) for p in read if p and os.path.exists(p)}:
            for path, whole in _grants(root, hidden):
                add(path, READ_FILE | READ_DIR if whole else READ_DIR)
        for path in read_write_files:
            add(path, READ_FILE | WRITE_FILE)
        for path in write:  # everything but execute: a program copied into scratch (ld.so ...) cannot run
            add(path, fs & ~EXECUTE)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return 0
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return 0
    finally:
        os.close(ruleset)
    return version
