"""Framed messages between the grader and its sandboxed child, and a pickle-free value codec.

Frames are a 16-byte header (big-endian sequence number, then payload length)
followed by the payload.  Commands from the grader to the child are pickled
(the child trusts the grader); replies from the child are JSON, and values in
them are encoded by :func:`encode` and rebuilt by :func:`decode`, which only
ever creates plain Python numbers, strings, lists, tuples, dicts and numeric
NumPy arrays whose size is checked against the bytes received.  Nothing a
child sends can make the grader run code, allocate more than the frame holds,
or see an object with behaviour of its own.

Bounded in memory and time, whatever the child sends:

* the header is read first: a frame whose sequence number is not the awaited
  reply is skipped in 1 MiB chunks, *never buffered or parsed*
  (:func:`skip_bytes`), and a frame longer than the limit is refused before
  any of it is read;
* before :func:`loads` hands an awaited reply to the JSON parser it counts
  the containers and separators in it (:data:`MAX_CONTAINERS`,
  :data:`MAX_SEPARATORS`): a reply that would parse into millions of Python
  objects is refused unparsed;
* every read and write has a deadline (``select`` on descriptors that may be
  non-blocking), and a write never blocks past it.
"""
from __future__ import annotations

import base64
import json
import os
import re
import select
import struct
import time

import numpy as np

__all__ = ["MAX_FRAME", "MAX_CONTAINERS", "MAX_SEPARATORS", "FrameError", "FrameTimeout", "write_frame",
           "read_header", "read_frame", "read_payload", "skip_bytes", "encode", "decode", "dumps", "loads"]

# bytes: a reply larger than this is refused unread.  The largest legitimate reply, over every
# check of every course notebook graded by `cnncourse validate`, is 15.2 KB (266 replies measured);
# 4 MiB leaves a margin of 250x for larger cases while bounding what one reply can cost the grader.
MAX_FRAME = 4 * 2**20
# A reply's JSON may hold at most this many objects/arrays and this many ',' and ':' (counted before
# parsing): returned arrays travel as one base64 string each, so legitimate replies hold a few hundred.
MAX_CONTAINERS = 100_000
MAX_SEPARATORS = 400_000
_MAX_DEPTH = 16
_MAX_ITEMS = 100_000
_BIG_LIST = 64  # lists of plain numbers longer than this travel as one array
_HEADER = struct.Struct(">QQ")  # sequence number, payload length
_CHUNK = 1 << 20
_DTYPE = re.compile(r"^[<>|=]?[biufc][1-9][0-9]?$")
_IDENT = re.compile(r"[^A-Za-z0-9_]")


class FrameError(Exception):
    """The other side sent something that is not a valid frame (or closed the pipe)."""


class FrameTimeout(FrameError):
    """No complete frame arrived before the deadline."""


def _wait(fd: int, deadline: float | None, *, write: bool, what: str) -> None:
    """Wait until ``fd`` is ready (readable or writable) or raise :class:`FrameTimeout` at the deadline."""
    if deadline is None:
        ready = select.select([] if write else [fd], [fd] if write else [], [])
    else:
        left = deadline - time.monotonic()
        ready = select.select([] if write else [fd], [fd] if write else [], [], max(left, 0)) if left > 0 else ([], [])
    if not (ready[1] if write else ready[0]):
        raise FrameTimeout(what)


def write_frame(fd: int, payload: bytes, deadline: float | None = None, *, seq: int = 0,
                stall: float | None = None) -> None:
    """Write one frame; raises OSError (EPIPE ...) when the reader is gone, FrameTimeout past the deadline.

    With a deadline the descriptor should be non-blocking: ``select`` only says
    that *some* bytes fit, and a blocking ``os.write`` of more than that would
    wait for the reader with no deadline at all.  ``stall`` (seconds): also
    give up when the reader takes nothing for that long, before the deadline.
    """
    view = memoryview(_HEADER.pack(seq, len(payload)) + payload)
    progress = time.monotonic()
    while view:
        if deadline is not None:
            limit = deadline if stall is None else min(deadline, progress + stall)
            _wait(fd, limit, write=True, what="the other side stopped reading")
        try:
            written = os.write(fd, view[: 1 << 16])
        except BlockingIOError:
            continue
        view = view[written:]
        progress = time.monotonic()


def _read_some(fd: int, n: int, deadline: float | None, got: int, total: int) -> bytes:
    while True:
        if deadline is not None:
            _wait(fd, deadline, write=False, what=f"no reply within the time limit ({got} of {total} bytes read)")
        try:
            chunk = os.read(fd, n)
        except BlockingIOError:
            continue
        if not chunk:
            raise FrameError("end of stream" if got == 0 else f"stream ended after {got} of {total} bytes")
        return chunk


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = _read_some(fd, min(n - got, _CHUNK), deadline, got, n)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_header(fd: int, deadline: float | None = None) -> tuple[int, int]:
    """``(sequence number, payload length)`` of the next frame."""
    return _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))


def read_payload(fd: int, size: int, deadline: float | None = None, *, limit: int = MAX_FRAME) -> bytes:
    """The payload of a frame whose header said ``size`` bytes (refused unread above ``limit``)."""
    if size > limit:
        raise FrameError(f"reply of {size} bytes exceeds the {limit / 2**20:g} MB limit")
    return _read_exact(fd, size, deadline)


def skip_bytes(fd: int, size: int, deadline: float | None = None) -> None:
    """Read and drop ``size`` bytes, 1 MiB at a time (a stray frame: never kept, never parsed)."""
    got = 0
    while got < size:
        got += len(_read_some(fd, min(size - got, _CHUNK), deadline, got, size))


def read_frame(fd: int, deadline: float | None = None, *, limit: int = MAX_FRAME) -> tuple[int, bytes]:
    """Read one frame, waiting until ``deadline`` (``time.monotonic()`` seconds; None: forever).

    Returns ``(sequence number, payload)``.
    """
    seq, size = read_header(fd, deadline)
    return seq, read_payload(fd, size, deadline, limit=limit)


def dumps(message: dict) -> bytes:
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode()


def loads(payload: bytes) -> dict:
    """Parse a reply, refusing one that would become too many Python objects before parsing it."""
    containers = payload.count(b"{") + payload.count(b"[")
    separators = payload.count(b",") + payload.count(b":")
    if containers > MAX_CONTAINERS or separators > MAX_SEPARATORS:
        raise FrameError(f"reply has too many values to parse ({containers} containers, {separators} separators)")
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError, MemoryError) as err:
        raise FrameError(f"reply is not valid JSON ({type(err).__name__})") from None
    if not isinstance(message, dict):
        raise FrameError("reply is not a JSON object")
    return message


# ---- values -------------------------------------------------------------------------------

def _encode_array(arr) -> dict:
    arr = np.asarray(arr, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    return {"t": "ndarray", "dtype": arr.dtype.str, "shape": list(arr.shape),
            "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def _opaque(value) -> dict:
    return {"t": "opaque", "type": str(type(value).__name__)[:80]}


def encode(value, _depth: int = 0, _self=None):
    """Turn a returned value into JSON-able data (run in the child, on student values)."""
    if _depth > _MAX_DEPTH:
        return _opaque(value)
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, int):
        return {"t": "int", "v": str(int(value))}
    if isinstance(value, float):
        return {"t": "float", "v": repr(float(value))}
    if isinstance(value, complex):
        return {"t": "complex", "re": repr(value.real), "im": repr(value.imag)}
    if isinstance(value, str):
        return {"t": "str", "v": str(value)[:10_000]}
    on_gpu = hasattr(value, "__cuda_array_interface__")
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__") or on_gpu:
        try:
            arr = np.asarray(value.get() if on_gpu else value)
        except Exception:
            return _opaque(value)
        if arr.dtype.kind not in "biufc":
            return _opaque(value)
        out = _encode_array(arr)
        if isinstance(value, np.generic):
            out["t"] = "npscalar"
        return out
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        items = list(value)[:_MAX_ITEMS]
        if len(items) > _BIG_LIST and all(type(v) in (int, float) for v in items):
            try:
                arr = np.asarray(items)
                if arr.dtype.kind in "if":
                    return {"t": kind + "-array", "a": _encode_array(arr)}
            except (OverflowError, ValueError):
                pass
        return {"t": kind, "items": [_self(v, _depth + 1) for v in items]}
    if isinstance(value, dict):
        items = list(value.items())[:_MAX_ITEMS]
        return {"t": "dict", "items": [[str(k)[:200], _self(v, _depth + 1)] for k, v in items]}
    return _opaque(value)


# Recursion through a default argument, not the module global: in the child, rebinding ``wire.encode``
# from student code does not change how the harness encodes nested values.
encode.__defaults__ = (0, encode)


def _decode_array(spec: dict):
    dtype_str, shape, data = spec.get("dtype"), spec.get("shape"), spec.get("data")
    if not (isinstance(dtype_str, str) and _DTYPE.match(dtype_str) and isinstance(shape, list)
            and isinstance(data, str)):
        raise FrameError("malformed array")
    if len(shape) > 32 or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s for s in shape):
        raise FrameError("malformed array shape")
    dtype = np.dtype(dtype_str)
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    count = int(np.prod(shape, dtype=object))
    if count * dtype.itemsize != len(raw):
        raise FrameError(f"array of shape {tuple(shape)} and dtype {dtype} does not match its {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _placeholder(type_name: str):
    """An inert stand-in for a value that cannot travel: only its type name survives.

    The checks report such a value as "expected a numeric array, got <type name>",
    exactly as they would for the real object.
    """
    name = _IDENT.sub("_", type_name)[:80] or "object"
    if name[0].isdigit():
        name = "_" + name
    cls = type(name, (), {"__repr__": lambda self: f"<{name} object>"})
    return cls()


def decode(spec, _depth: int = 0):
    """Rebuild a value encoded by :func:`encode` (run in the grader, on untrusted data)."""
    if _depth > _MAX_DEPTH + 1 or not isinstance(spec, dict):
        raise FrameError("malformed value")
    t = spec.get("t")
    try:
        if t == "none":
            return None
        if t == "bool":
            return bool(spec["v"])
        if t == "int":
            text = str(spec["v"])
            if len(text) > 5000:
                raise FrameError("integer too long")
            return int(text)
        if t == "float":
            return float(str(spec["v"]))
        if t == "complex":
            return complex(float(str(spec["re"])), float(str(spec["im"])))
        if t == "str":
            return str(spec["v"])[:10_000]
        if t == "ndarray":
            return _decode_array(spec)
        if t == "npscalar":
            return _decode_array(spec)[()]
        if t in ("list-array", "tuple-array"):
            items = _decode_array(spec["a"]).tolist()
            return tuple(items) if t == "tuple-array" else items
        if t in ("list", "tuple"):
            items = [decode(item, _depth + 1) for item in spec["items"][:_MAX_ITEMS]]
            return tuple(items) if t == "tuple" else items
        if t == "dict":
            return {str(k): decode(v, _depth + 1) for k, v in spec["items"][:_MAX_ITEMS]}
        if t == "opaque":
            return _placeholder(str(spec.get("type", "object")))
    except FrameError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise FrameError(f"malformed value ({type(err).__name__}: {err})") from None
    raise FrameError(f"unknown value type {t!r}")
