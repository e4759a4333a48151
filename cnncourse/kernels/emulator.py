"""A CPU emulator of the CUDA execution model: run a ``.cu`` kernel without a GPU.

The kernel's source is compiled *unmodified* by the host C++ compiler
(``$CXX``, else ``c++``, ``g++`` or ``clang++``) as C++17, after the header
``cuda_emu.h`` that ships with the package.  The header turns the CUDA
keywords into C++ and supplies the built-in variables, shared memory,
``__syncthreads()``, atomics and math functions.  A generated wrapper
exports one C entry point for one template instantiation, so each
``(source, instantiation, flags)`` becomes one shared library, cached on disk
under a hash of source, header, wrapper, compiler and flags (folder:
``$CNNCOURSE_EMULATOR_CACHE``, else ``$XDG_CACHE_HOME/cnncourse/emulator``,
else ``~/.cache/cnncourse/emulator``; never inside the installed package),
and loaded with :mod:`ctypes`.

What is modelled
    * the grid: ``gridDim``, ``blockIdx``, ``blockDim``, ``threadIdx`` in
      three dimensions, block size 1..1024;
    * the blocks run one after another, in index order, or in a seeded random
      order in *shuffle* mode (a GPU promises no order between blocks);
    * the threads of a block run in an order fixed by the seed: index order
      by default, a random permutation in shuffle mode (re-drawn at every
      barrier), so a kernel that relies on an order a GPU does not promise
      gives different results;
    * ``__syncthreads()`` is a real barrier: every thread is a fiber with its
      own stack (128 KiB: no large local arrays), and no thread passes a barrier before all threads of its
      block have reached the *same* ``__syncthreads()`` call.  A block in
      which some threads wait while others returned, or wait at another call,
      is an :class:`EmulatorError`;
    * ``__shared__`` memory is one copy per block; ``extern __shared__``
      dynamic shared memory has the launch's size (its bytes are filled
      with ``0xFF``, a NaN, before each block, so a read before any write
      shows; with AddressSanitizer, bytes past the launch's size are poisoned);
    * the argument list is checked against the kernel's C signature: pointer
      arguments take NumPy arrays of exactly the pointee type, scalars are
      passed with the parameter's exact C type.

What is NOT modelled
    warps and warp intrinsics (``__shfl_*_sync``, ``__ballot_sync``,
    ``__syncwarp`` ... fail to compile with a message naming them), memory
    coalescing, caches and the memory hierarchy beyond shared vs global,
    real concurrency between threads (threads switch only at barriers, so a
    data race shows only as a wrong *order*, not as torn values), streams,
    and speed: the emulator runs on one CPU core and says nothing about how
    fast a kernel is on a GPU.

Out-of-bounds reads and writes are not caught by default (they corrupt
memory or crash Python, as on a GPU they corrupt memory or fault); compile
with ``sanitize=True`` (AddressSanitizer and UBSan) in a process started with
:func:`asan_preload` in ``LD_PRELOAD`` to catch them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "EmulatorUnavailable",
    "EmulatorCompileError",
    "EmulatorError",
    "Param",
    "Kernel",
    "MAX_DYNAMIC_SHARED",
    "find_compiler",
    "cache_dir",
    "header_path",
    "parse_signature",
    "compile_kernel",
    "asan_preload",
    "asan_loaded",
    "CTYPES",
]

#: Largest ``extern __shared__`` size a launch may ask for (bytes; an H100 allows 227 KiB).
MAX_DYNAMIC_SHARED = 227 * 1024

_BASE_FLAGS = ("-std=c++17", "-fPIC", "-shared", "-fno-strict-aliasing", "-Wno-unknown-pragmas", "-U_FORTIFY_SOURCE")
_OPT_FLAGS = ("-O2",)
_SANITIZE_FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=undefined")


class EmulatorUnavailable(RuntimeError):
    """No usable C++ compiler: the emulator cannot run here."""


class EmulatorCompileError(RuntimeError):
    """The kernel source did not compile; the message holds the compiler's output."""


class EmulatorError(RuntimeError):
    """A launch failed inside the emulator (bad launch configuration, barrier misuse, bad arguments)."""


#: C type -> NumPy dtype (LP64: ``long`` is 64-bit).
CTYPES: dict[str, np.dtype] = {
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "bool": np.dtype(np.bool_),
    "char": np.dtype(np.int8),
    "signed char": np.dtype(np.int8),
    "unsigned char": np.dtype(np.uint8),
    "short": np.dtype(np.int16),
    "unsigned short": np.dtype(np.uint16),
    "int": np.dtype(np.int32),
    "unsigned int": np.dtype(np.uint32),
    "unsigned": np.dtype(np.uint32),
    "long": np.dtype(np.int64),
    "unsigned long": np.dtype(np.uint64),
    "long long": np.dtype(np.int64),
    "unsigned long long": np.dtype(np.uint64),
    "size_t": np.dtype(np.uint64),
    "int8_t": np.dtype(np.int8),
    "uint8_t": np.dtype(np.uint8),
    "int32_t": np.dtype(np.int32),
    "uint32_t": np.dtype(np.uint32),
    "int64_t": np.dtype(np.int64),
    "uint64_t": np.dtype(np.uint64),
}


# ----------------------------------------------------------------------------- compiler and cache


def find_compiler() -> str | None:
    """Path of the host C++ compiler: ``$CXX``, else ``c++``, ``g++``, ``clang++``; None if there is none.

    Always None on Windows: the emulator's threads are POSIX ``ucontext`` fibers
    (Linux and macOS; on Windows use WSL).
    """
    if sys.platform == "win32":
        return None
    cxx = os.environ.get("CXX")
    candidates = [cxx] if cxx else []
    candidates += ["c++", "g++", "clang++"]
    for name in candidates:
        path = shutil.which(name.split()[0]) if name else None
        if path:
            return path
    return None


@functools.cache
def _compiler_id(cxx: str) -> str:
    import subprocess  # lazily: the grading sandbox refuses to import it, and the package must import there

    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
        return out.stdout.splitlines()[0] if out.stdout else cxx
    except (OSError, subprocess.SubprocessError):
        return cxx


def cache_dir() -> Path:
    """Folder of the compiled kernels (created on demand).

    ``$CNNCOURSE_EMULATOR_CACHE`` if set, else ``$XDG_CACHE_HOME/cnncourse/emulator``,
    else ``~/.cache/cnncourse/emulator``.
    """
    env = os.environ.get("CNNCOURSE_EMULATOR_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnncourse" / "emulator"


def header_path() -> Path:
    """The emulator header ``cuda_emu.h`` shipped with the package."""
    return Path(str(importlib.resources.files("cnncourse.kernels").joinpath("cuda_emu.h")))


def asan_preload() -> str | None:
    """Path of the compiler's AddressSanitizer runtime, for ``LD_PRELOAD`` (None if not found).

    A sanitized kernel library can only be loaded into a Python process that
    was started with this library preloaded.
    """
    cxx = find_compiler()
    if cxx is None:
        return None
    import subprocess

    try:
        out = subprocess.run([cxx, "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    path = out.stdout.strip()
    return path if path and os.path.isabs(path) and os.path.exists(path) else None


def asan_loaded() -> bool:
    """Whether AddressSanitizer's runtime is loaded in this process (Linux only)."""
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


# ----------------------------------------------------------------------------- the kernel's C signature


@dataclasses.dataclass(frozen=True)
class Param:
    """One kernel parameter: ``ctype`` normalised (``"const float*"``, ``"int"``) and its name."""

    ctype: str
    name: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def pointee(self) -> str:
        """The pointed-to type without ``const`` (``"float"`` for ``"const float*"``)."""
        return _strip_const(self.ctype[:-1])

    @property
    def is_const_pointer(self) -> bool:
        return self.is_pointer and self.ctype.startswith("const ")


_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside (), <>, [] and {}."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts]


def _strip_const(t: str) -> str:
    return " ".join(w for w in t.split() if w != "const")


def _normalise(ctype: str) -> str:
    """``"const T * __restrict__"`` -> ``"const T*"``; top-level const of a value dropped."""
    t = re.sub(r"\b(__restrict__|__restrict|restrict|volatile)\b", " ", ctype)
    t = re.sub(r"\s*\*\s*", "*", t)
    t = " ".join(t.split())
    if "*" in t:
        head, _, tail = t.rpartition("*")  # const after the last '*' qualifies the pointer itself
        head = head.strip()
        const = head.startswith("const ") or head.endswith(" const")
        base = _strip_const(head)
        return ("const " if const else "") + base + "*"
    return _strip_const(t)


def _find_kernel(source: str, name: str) -> tuple[str, str]:
    """``(template parameter list or '', parameter list)`` of ``__global__ void name(...)``."""
    code = _COMMENTS.sub(" ", source)
    m = re.search(r"(template\s*<(?P<tpl>[^{};]*?)>\s*)?__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+"
                  + re.escape(name) + r"\s*\(", code)
    if not m:
        found = re.findall(r"__global__\s+void\s+(\w+)", code)
        raise ValueError(f"no `__global__ void {name}(...)` in the source (kernels found: {', '.join(found) or 'none'})")
    depth, i = 1, m.end()
    while depth and i < len(code):
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        i += 1
    return (m.group("tpl") or ""), code[m.end(): i - 1]


def parse_signature(source: str, name_expression: str) -> list[Param]:
    """The C parameters of one kernel instantiation, read from its source.

    ``name_expression`` is ``"name"`` or ``"name<args>"`` (as for NVRTC);
    template parameters are replaced by the given arguments, so
    ``parse_signature(src, "im2col<float>")`` lists ``const float*`` for
    ``const T* __restrict__ x``.
    """
    m = re.fullmatch(r"\s*(\w+)\s*(?:<(.*)>)?\s*", name_expression)
    if not m:
        raise ValueError(f"bad kernel name expression {name_expression!r}; expected name or name<args>")
    name, targs = m.group(1), _split_top(m.group(2) or "")
    tpl, params = _find_kernel(source, name)
    tnames = [re.split(r"\s+", p.split("=")[0].strip())[-1] for p in _split_top(tpl)] if tpl.strip() else []
    if len(targs) != len(tnames):
        raise ValueError(f"{name_expression}: the kernel {name} has template parameters {tnames}, got {targs}")
    subst = dict(zip(tnames, targs))
    out = []
    for raw in _split_top(params):
        if not raw or raw == "void":
            continue
        raw = raw.split("=")[0].strip()
        pm = re.fullmatch(r"(.*?)(\w+)\s*(\[\s*\])?", raw, flags=re.S)
        if not pm:
            raise ValueError(f"cannot read the parameter {raw!r} of {name}")
        ctype = pm.group(1) + ("*" if pm.group(3) else "")
        ctype = re.sub(r"\b\w+\b", lambda w: subst.get(w.group(0), w.group(0)), ctype)
        out.append(Param(_normalise(ctype), pm.group(2)))
    return out


# ----------------------------------------------------------------------------- compile


@functools.cache
def _launch_struct():
    """The ctypes mirror of ``cnncourse_emu::Launch`` (ctypes is imported only when a kernel runs:
    the grading sandbox refuses to import it, and importing the package must still work there)."""
    import ctypes

    class Launch(ctypes.Structure):
        _fields_ = [
            ("grid", ctypes.c_uint * 3),
            ("block", ctypes.c_uint * 3),
            ("dynamic_shared", ctypes.c_longlong),
            ("seed", ctypes.c_ulonglong),
            ("shuffle", ctypes.c_int),
            ("fill_shared", ctypes.c_int),
        ]

    return Launch


_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?P<decl>[^;]*?)(?P<name>\w+)\s*\[\s*\]\s*;")


def _wrapper(source_file: Path, source: str, name_expression: str) -> str:
    """The C++ translation unit that includes the header and the source and exports the launcher."""
    code = _COMMENTS.sub(" ", source)
    defs = []
    seen = set()
    for m in _EXTERN_SHARED.finditer(code):
        name = m.group("name")
        ctype = " ".join(re.sub(r"(__align__|alignas)\s*\((?:[^()]|\([^()]*\))*\)|__attribute__\s*\(\(.*?\)\)", " ", m.group("decl")).split())
        if name in seen:
            continue
        seen.add(name)
        if ctype not in CTYPES:
            raise EmulatorError(
                f"`extern __shared__ {ctype} {name}[]` is not supported by the emulator: declare dynamic shared "
                "memory as a plain type (e.g. `extern __shared__ unsigned char smem[]`) and reinterpret_cast it "
                "(a template type T would also clash between instantiations under nvcc)")
        defs.append((ctype, name))
    barrier = "__syncthreads" in code
    lines = [
        f'#include "{header_path()}"',
        f"#define CNNCOURSE_EMU_MAX_SHARED {MAX_DYNAMIC_SHARED}",
    ]
    for ctype, name in defs:
        lines.append(f"alignas(64) thread_local {ctype} {name}[CNNCOURSE_EMU_MAX_SHARED / sizeof({ctype})];")
    lines.append("namespace cnncourse_emu {")
    lines.append("void block_start(const Launch& L) {")
    lines.append("    const size_t n = (size_t)(L.dynamic_shared < 0 ? 0 : L.dynamic_shared);")
    for ctype, name in defs:
        lines += [
            f"    unsigned char* p_{name} = reinterpret_cast<unsigned char*>({name});",
            "#if CNNCOURSE_EMU_ASAN",
            f"    ASAN_UNPOISON_MEMORY_REGION(p_{name}, sizeof({name}));",
            f"    ASAN_POISON_MEMORY_REGION(p_{name} + n, sizeof({name}) - n);",
            "#endif",
            f"    if (L.fill_shared) std::memset(p_{name}, 0xFF, n);",
        ]
    lines += ["    (void)n;", "}", "}  // namespace cnncourse_emu"]
    lines.append(f'#include "{source_file}"')
    lines += [
        f"static auto const cnncourse_emu_kernel = &{name_expression};",
        'extern "C" int cnncourse_emu_launch(const cnncourse_emu::Launch* L, void** args, char* err, int errlen) {',
        f"    const int rc = cnncourse_emu::launch(cnncourse_emu_kernel, *L, args, {'true' if barrier else 'false'});",
        '    if (rc) std::snprintf(err, (size_t)errlen, "%s", cnncourse_emu::state().error);',
        "    return rc;",
        "}",
        'extern "C" int cnncourse_emu_param_count() { return cnncourse_emu::param_count(cnncourse_emu_kernel); }',
        'extern "C" void cnncourse_emu_param_sizes(int* out) { cnncourse_emu::param_sizes(cnncourse_emu_kernel, out); }',
        "",
    ]
    return "\n".join(lines)


@functools.cache
def _load(path: str):
    import ctypes

    lib = ctypes.CDLL(path)
    lib.cnncourse_emu_launch.argtypes = [ctypes.POINTER(_launch_struct()), ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int]
    lib.cnncourse_emu_launch.restype = ctypes.c_int
    lib.cnncourse_emu_param_count.restype = ctypes.c_int
    lib.cnncourse_emu_param_sizes.argtypes = [ctypes.POINTER(ctypes.c_int)]
    return lib


def compile_kernel(source: str | Path, name_expression: str, *, sanitize: bool = False,
                   filename: str = "kernel.cu") -> "Kernel":
    """Compile (or fetch from the cache) one kernel instantiation and return it, ready to launch.

    Args:
        source: a path to a ``.cu`` file (compiled in place, so compiler messages
            name it), or the CUDA C source text itself.
        name_expression: the kernel and its template arguments, e.g. ``"im2col<float>"``.
        sanitize: build with AddressSanitizer and UBSan (the process must have
            been started with :func:`asan_preload` in ``LD_PRELOAD``).
        filename: the name compiler messages give a source passed as text.

    Raises:
        EmulatorUnavailable: no C++ compiler.
        EmulatorCompileError: the compiler's message, with the failing source line.
        ValueError: the kernel is not in the source, or the template arguments do not fit.
    """
    cxx = find_compiler()
    if cxx is None:
        raise EmulatorUnavailable(
            "the CUDA emulator needs a C++ compiler (set $CXX, or install g++ or clang++) on Linux or macOS; "
            "none was found")
    if sanitize and not asan_loaded():
        raise EmulatorError(
            "a sanitized kernel can only be loaded into a process started with AddressSanitizer preloaded: "
            f"LD_PRELOAD={asan_preload() or '<path of libasan.so>'} ASAN_OPTIONS=detect_leaks=0 python ...")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path):
        source_file = source.resolve()
        text = source_file.read_text(encoding="utf-8")
    else:
        text = str(source)
        digest = hashlib.sha256(text.encode()).hexdigest()[:20]
        src_dir = root / f"src-{digest}"
        src_dir.mkdir(exist_ok=True)
        source_file = src_dir / Path(filename).name
        if not source_file.exists() or source_file.read_text(encoding="utf-8") != text:
            tmp = source_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, source_file)
    params = parse_signature(text, name_expression)
    wrapper = _wrapper(source_file, text, name_expression)
    flags = (*_BASE_FLAGS, *(_SANITIZE_FLAGS if sanitize else _OPT_FLAGS))
    if "clang" not in _compiler_id(cxx).lower():
        # `extern __shared__` arrays are extern thread_local: tell GCC they need no dynamic initialisation
        # (otherwise it calls a weak, undefined TLS init function).
        flags += ("-fno-extern-tls-init",)
    key = hashlib.sha256("\0".join([
        text, header_path().read_text(encoding="utf-8"), wrapper, _compiler_id(cxx), cxx, *flags,
    ]).encode()).hexdigest()[:32]
    lib_path = root / f"{Path(filename if not isinstance(source, Path) else source_file.name).stem}-{key}.so"
    if not lib_path.exists():
        _build(cxx, wrapper, lib_path, flags, source_file, name_expression)
    return Kernel(str(lib_path), name_expression, params, compiled=True)


#: number of compiler runs in this process (tests use it to show that the cache works).
compile_count = 0


#: CUDA headers a kernel file may include; the emulator's header already provides what they would.
_STUB_HEADERS = ("cuda_runtime.h", "cuda.h", "device_launch_parameters.h", "cuda_runtime_api.h")


def _stub_include_dir(root: Path) -> Path:
    stubs = root / "include"
    stubs.mkdir(exist_ok=True)
    for name in _STUB_HEADERS:
        path = stubs / name
        if not path.exists():
            path.write_text("// cnncourse emulator: provided by cuda_emu.h\n#pragma once\n", encoding="utf-8")
    return stubs


def _build(cxx: str, wrapper: str, lib_path: Path, flags, source_file: Path, name_expression: str) -> None:
    global compile_count
    import subprocess
    import tempfile

    stubs = _stub_include_dir(lib_path.parent)
    with tempfile.TemporaryDirectory(dir=lib_path.parent, prefix="build-") as tmp:
        cpp = Path(tmp) / "wrapper.cpp"
        cpp.write_text(wrapper, encoding="utf-8")
        out = Path(tmp) / lib_path.name
        cmd = [cxx, *flags, f"-I{stubs}", str(cpp), "-o", str(out)]
        compile_count += 1
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise EmulatorCompileError(
                f"{source_file.name} ({name_expression}) did not compile for the CPU emulator:\n"
                + _trim(result.stderr.replace(str(source_file.parent) + os.sep, "")))
        os.replace(out, lib_path)


def _trim(stderr: str, limit: int = 60) -> str:
    """The compiler's messages, the lines about the kernel first (wrapper lines dropped)."""
    lines = [ln for ln in stderr.splitlines() if "wrapper.cpp" not in ln or "error" in ln]
    return "\n".join(lines[:limit]) + ("\n..." if len(lines) > limit else "")


# ----------------------------------------------------------------------------- launch


def _scalar(param: Param, value, kernel: str):
    want = CTYPES.get(param.ctype)
    if want is None:
        raise EmulatorError(f"{kernel}: parameter {param.name} has the unsupported C type {param.ctype!r}")
    if isinstance(value, np.generic):
        if value.dtype != want:
            raise EmulatorError(
                f"{kernel}: parameter {param.name} is `{param.ctype}` ({want}), got a {value.dtype} scalar; "
                f"pass np.{want.name}(...)")
        return np.array(value, dtype=want)
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.ndarray):
        if want.kind in "iub" and isinstance(value, float):
            raise EmulatorError(f"{kernel}: parameter {param.name} is `{param.ctype}`, got the float {value!r}")
        if want.kind in "iu" and not (np.iinfo(want).min <= value <= np.iinfo(want).max):
            raise EmulatorError(f"{kernel}: parameter {param.name} is `{param.ctype}`, {value} does not fit")
        return np.array(value, dtype=want)
    raise EmulatorError(f"{kernel}: parameter {param.name} is `{param.ctype}`, got {type(value).__name__}")


class Kernel:
    """One compiled kernel instantiation; call it like ``kernel(grid, block, args, shared_mem=...)``."""

    def __init__(self, path: str, name_expression: str, params: list[Param], *, compiled: bool = True):
        self.path = path
        self.name = name_expression
        self.params = params
        import ctypes

        self._lib = _load(path)
        count = self._lib.cnncourse_emu_param_count()
        if count != len(params):
            raise EmulatorError(f"{name_expression}: the source lists {len(params)} parameters, the compiler {count}")
        sizes = (ctypes.c_int * max(count, 1))()
        self._lib.cnncourse_emu_param_sizes(sizes)
        for p, size in zip(params, sizes):
            expect = 8 if p.is_pointer else (CTYPES[p.ctype].itemsize if p.ctype in CTYPES else size)
            if expect != size:
                raise EmulatorError(f"{name_expression}: parameter {p.name} `{p.ctype}` has {size} bytes in C")

    def __repr__(self) -> str:
        return f"<emulated kernel {self.name} ({', '.join(p.ctype + ' ' + p.name for p in self.params)})>"

    def __call__(self, grid: Sequence[int], block: Sequence[int], args: Sequence, *, shared_mem: int = 0,
                 shuffle: bool = False, seed: int = 0, fill_shared: bool = True) -> None:
        """Launch ``kernel<<<grid, block, shared_mem>>>(args...)`` on the CPU; returns when every block ran.

        Pointer parameters take C-contiguous NumPy arrays of exactly the pointee
        type (``const`` ones may be read-only); scalar parameters take a NumPy
        scalar of the exact type, or a Python number that fits.
        """
        import ctypes

        grid3 = _dims(grid, "grid", self.name)
        block3 = _dims(block, "block", self.name)
        if np.prod(block3) > 1024:
            raise EmulatorError(f"{self.name}: a block has at most 1024 threads, got {block3}")
        if grid3[1] > 65535 or grid3[2] > 65535 or grid3[0] > 2**31 - 1:
            raise EmulatorError(f"{self.name}: grid {grid3} exceeds CUDA's limits (2^31-1, 65535, 65535)")
        if not 0 <= shared_mem <= MAX_DYNAMIC_SHARED:
            raise EmulatorError(f"{self.name}: dynamic shared memory must be 0..{MAX_DYNAMIC_SHARED} bytes, got {shared_mem}")
        if len(args) != len(self.params):
            raise EmulatorError(
                f"{self.name} takes {len(self.params)} arguments "
                f"({', '.join(p.ctype + ' ' + p.name for p in self.params)}), got {len(args)}")
        keep, slots = [], (ctypes.c_void_p * max(len(args), 1))()
        for i, (p, a) in enumerate(zip(self.params, args)):
            if p.is_pointer:
                if not isinstance(a, np.ndarray):
                    raise EmulatorError(f"{self.name}: parameter {p.name} is `{p.ctype}`, needs a NumPy array, "
                                        f"got {type(a).__module__}.{type(a).__name__}")
                want = CTYPES.get(p.pointee)
                if want is not None and a.dtype != want:
                    raise EmulatorError(f"{self.name}: parameter {p.name} is `{p.ctype}` ({want}), got a {a.dtype} array")
                if not a.flags.c_contiguous:
                    raise EmulatorError(f"{self.name}: parameter {p.name} must be C-contiguous (np.ascontiguousarray)")
                if not p.is_const_pointer and not a.flags.writeable:
                    raise EmulatorError(f"{self.name}: parameter {p.name} is written by the kernel, got a read-only array")
                ptr = ctypes.c_void_p(a.ctypes.data)
                keep += [a, ptr]
                slots[i] = ctypes.addressof(ptr)
            else:
                v = _scalar(p, a, self.name)
                keep.append(v)
                slots[i] = v.ctypes.data
        launch = _launch_struct()((ctypes.c_uint * 3)(*grid3), (ctypes.c_uint * 3)(*block3), int(shared_mem),
                         int(seed) & (2**64 - 1), int(bool(shuffle)), int(bool(fill_shared)))
        err = ctypes.create_string_buffer(1024)
        rc = self._lib.cnncourse_emu_launch(ctypes.byref(launch), slots, err, len(err))
        del keep
        if rc:
            raise EmulatorError(f"{self.name}: {err.value.decode(errors='replace')}")


def _dims(value, what: str, name: str) -> tuple[int, int, int]:
    dims = tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
    if not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise EmulatorError(f"{name}: {what} must be 1 to 3 positive sizes, got {value!r}")
    return (*dims, *(1,) * (3 - len(dims)))
