"""The fused CPU kernels' library: `cpu.cpp` compiled once per machine, loaded, and its
functions' signatures declared (`Problem` and `LongProduct` mirror its structs field by field).
`rnnkit.kernels.cpu` calls them.

`cpu.cpp` is compiled with the C++ compiler (`$CXX`, else `c++`) and `-march=native` on first
use, into `~/.rnnkit/kernels/` (`$RNNKIT_HOME` moves it), keyed by a hash of the source, the
compiler and this CPU's features; later uses load the cached library. Each load marks its
build as used; a new build removes the others not used for `STALE_BUILD_DAYS` (every change of
the source, the compiler or the CPU leaves one behind). `blocker()` says why the kernels
cannot run (no compiler, a failed build), and the fused path then falls back.

`$RNNKIT_CPU_ISA` picks the vector instructions of the build: `native` (the default: all this
CPU has), `avx2` (`-march=native -mno-avx512f`: AVX2 and FMA without AVX-512, to run and time
the AVX2 code path on an AVX-512 machine) or `baseline` (no target flags: the compiler's
default, SSE2 on x86-64, the portable build the fallbacks below also make). Each has its own
cached build;
`kernel_isa()` says which instructions the loaded build was compiled for.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rnnkit.activations import ActivationCode
from rnnkit.cache import cache_root
from rnnkit.kernels.spec import CellKind

_SOURCE = Path(__file__).with_name("cpu.cpp")
# No -ffast-math: linked into a shared library it would flush denormals for the whole process.
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno",
          "-fno-trapping-math", "-ffp-contract=fast"]  # fmt: skip
# `$RNNKIT_CPU_ISA` → the target flags tried first (see the module docstring).
ISA_ENV_VAR = "RNNKIT_CPU_ISA"
_ISA_TARGETS = {
    "native": ["-march=native"],
    "avx2": ["-march=native", "-mno-avx512f"],
    "baseline": [],
}
# The C++ enums' values, from the one Python definition of each.
_CODES = [
    f"-D{macro}={','.join(f'{code.name}={code.value}' for code in codes)}"
    for macro, codes in (
        ("RNNKIT_CELL_CODES", CellKind),
        ("RNNKIT_ACTIVATION_CODES", ActivationCode),
    )
]
OPTIONS = (
    "cell", "batch", "timesteps", "features", "units", "gates", "go_backwards",
    "zero_output_for_mask", "unroll", "activation", "recurrent_activation", "input_dropout",
    "recurrent_dropout", "save", "save_preactivations", "input_gradient", "return_sequences",
    "threads", "weight_gradients", "write_dxproj", "table_rows",
)  # fmt: skip
ARRAYS = (
    "inputs", "kernel", "input_bias", "input_dropout_mask", "recurrent_kernel",
    "recurrent_bias", "h0", "c0", "recurrent_dropout_mask", "mask", "out",
    "h_last", "c_last", "hs", "cs", "gate_values", "pre", "inner_h", "dout", "dh_last",
    "dc_last", "dxproj", "dinner", "dinputs", "dh0", "dc0", "dkernel", "drecurrent", "dbias",
    "ids", "table", "dtable", "table_sums",
)  # fmt: skip


class Problem(ctypes.Structure):
    """`struct Problem` of cpu.cpp: the options, then a pointer per array."""

    _fields_ = [(name, ctypes.c_int64) for name in OPTIONS] + [
        (name, ctypes.c_void_p) for name in ARRAYS
    ]


_PRODUCT_ARRAYS = ("states", "mask", "gradients", "states2", "mask2", "gradients2", "out", "sums",
                   "out2", "sums2")  # fmt: skip
_PRODUCT_SIZES = ("gate", "gates", "batch", "size", "stride_t", "stride_b", "ldb", "ldc",
                  "depth", "width", "size2", "ldc2", "gate2", "ldb2", "threads")  # fmt: skip


class LongProduct(ctypes.Structure):
    """`struct LongProduct` of cpu.cpp: one weight gradient's long product."""

    _fields_ = [(name, ctypes.c_void_p) for name in _PRODUCT_ARRAYS] + [
        (name, ctypes.c_int64) for name in _PRODUCT_SIZES
    ]


# Builds of the kernels not loaded for this many days are removed when a new one is made.
STALE_BUILD_DAYS = 30


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded on this machine."""


def _cpu_features() -> str:
    """What identifies this CPU's instruction set (the flags line of /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _isa_target() -> list[str]:
    """The target flags `$RNNKIT_CPU_ISA` asks for.

    Raises:
        KernelBuildError: when it names no known instruction set.
    """
    isa = os.environ.get(ISA_ENV_VAR, "native")
    if isa not in _ISA_TARGETS:
        raise KernelBuildError(
            f"${ISA_ENV_VAR} must be one of {sorted(_ISA_TARGETS)} (or unset), got {isa!r}"
        )
    return _ISA_TARGETS[isa]


def _compile(compiler: str, library: Path, target: list[str]) -> None:
    """Builds cpu.cpp into `library` (atomically: a temporary file, then a rename); tries
    `target` (e.g. -march=native) with OpenMP first, then `target` alone (a compiler without
    OpenMP, as Apple's clang: the kernels then run on one thread, with this CPU's vectors), then
    OpenMP on the compiler's default target, then neither."""
    library.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    tries = [[*target, "-fopenmp"], target, ["-fopenmp"], []]
    # Each set once: `baseline`'s target is the compiler's default one.
    for flags in [flags for i, flags in enumerate(tries) if flags not in tries[:i]]:
        with tempfile.NamedTemporaryFile(dir=library.parent, suffix=".so", delete=False) as file:
            partial = Path(file.name)
        command = [compiler, *_FLAGS, *_CODES, *flags, str(_SOURCE), "-o", str(partial)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode == 0:
            os.replace(partial, library)
            return
        partial.unlink(missing_ok=True)
        errors.append(f"$ {' '.join(command)}\n{completed.stderr.strip()}")
    raise KernelBuildError(
        f"compiling the fused CPU kernels failed ({compiler} rejected all {len(errors)} flag sets "
        "tried); the compiler said:\n" + "\n".join(errors)
    )


def remove_stale_builds(folder: Path, keep: Path, now: float) -> None:
    """Deletes the kernel builds in `folder`, other than `keep`, last used (their modification
    time) more than `STALE_BUILD_DAYS` before `now` (seconds since the epoch)."""
    for build in folder.glob("rnnkit_cpu_*.so"):
        with contextlib.suppress(OSError):  # removed meanwhile by another process; read-only
            if build != keep and now - build.stat().st_mtime > STALE_BUILD_DAYS * 86400:
                build.unlink()


@functools.cache
def library() -> ctypes.CDLL:
    """The compiled kernels, built on first use and cached on disk.

    Raises:
        KernelBuildError: when no C++ compiler is found or the build fails.
    """
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise KernelBuildError(
            f"no C++ compiler found (looked for {os.environ.get('CXX', 'c++')!r}; set CXX)"
        )
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError as error:
        raise KernelBuildError(f"the C++ compiler {compiler} cannot be run: {error}") from None
    target = _isa_target()
    key = hashlib.sha256(
        "\0".join([_SOURCE.read_text(), compiler, version, " ".join(_FLAGS + _CODES + target),
                   _cpu_features()])
        .encode()
    ).hexdigest()[:16]  # fmt: skip
    path = cache_root() / "kernels" / f"rnnkit_cpu_{key}.so"
    if not path.exists():
        # The one slow first call a user would otherwise wait through without a word.
        print("compiling rnnkit's CPU kernels (once, about 15 s)...", file=sys.stderr, flush=True)
        try:
            _compile(compiler, path, target)
        except OSError as error:  # an unwritable cache, a compiler that cannot be run
            raise KernelBuildError(f"building the fused CPU kernels failed: {error}") from None
        remove_stale_builds(path.parent, path, time.time())
    else:
        with contextlib.suppress(OSError):  # a read-only cache keeps its builds
            os.utime(path)  # marks the build as used
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelBuildError(
            f"loading the fused CPU kernels from {path} failed: {error}"
        ) from None
    for name in ("rnnkit_forward", "rnnkit_backward"):
        getattr(lib, name).argtypes = [ctypes.POINTER(Problem), ctypes.c_int64]
    lib.rnnkit_forward.restype = None
    lib.rnnkit_backward.restype = ctypes.c_int64
    lib.rnnkit_table_sums_size.argtypes = [ctypes.POINTER(Problem), ctypes.c_int64]
    lib.rnnkit_table_sums_size.restype = ctypes.c_int64
    lib.rnnkit_pack_forward.argtypes = [ctypes.POINTER(Problem), ctypes.c_int64]
    lib.rnnkit_pack_forward.restype = ctypes.c_void_p
    lib.rnnkit_forward_packed.argtypes = [ctypes.POINTER(Problem), ctypes.c_int64, ctypes.c_void_p]
    lib.rnnkit_forward_packed.restype = None
    lib.rnnkit_free_forward_weights.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.rnnkit_free_forward_weights.restype = None
    lib.rnnkit_long_product.argtypes = [ctypes.POINTER(LongProduct), ctypes.c_int64]
    lib.rnnkit_long_product.restype = None
    lib.rnnkit_isa.argtypes = []
    lib.rnnkit_isa.restype = ctypes.c_char_p
    lib.rnnkit_scatter_rows.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 3 + [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]  # fmt: skip
    lib.rnnkit_scatter_rows.restype = None
    lib.rnnkit_table_product.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [
        ctypes.c_void_p] + [ctypes.c_int64] * 2  # fmt: skip
    lib.rnnkit_table_product.restype = None
    lib.rnnkit_table_gradients.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [
        ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2  # fmt: skip
    lib.rnnkit_table_gradients.restype = None
    lib.rnnkit_rmsprop_update.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [
        ctypes.c_double] * 3 + [ctypes.c_int64] * 2  # fmt: skip
    lib.rnnkit_rmsprop_update.restype = None
    return lib


def loaded() -> bool:
    """Whether this process has built or loaded the kernels already (`library()` ran and
    succeeded). Callers that only gain speed from them, such as a fused optimizer step, use
    them then and never start the build themselves: a model with no recurrent layer would
    otherwise wait for a compile it does not need."""
    return library.cache_info().currsize > 0


def kernel_isa() -> str:
    """The widest vector instructions the loaded build was compiled for: "avx512", "avx2",
    "avx", "sse2", "neon" or "generic".

    Raises:
        KernelBuildError: as `library()`.
    """
    return library().rnnkit_isa().decode()


@functools.cache
def blocker() -> str | None:
    """None when the kernels are ready, else why they cannot run: the whole error, with the
    compiler's output (`use_fused=True` raises it). The first failure in a process also warns,
    since `use_fused="auto"` then runs the plain loop (same results, slower) without a word."""
    try:
        library()
    except KernelBuildError as error:
        warnings.warn(
            f"rnnkit's fused CPU kernels are unavailable, so recurrent layers run the plain loop "
            f"(same results, slower): {error}",
            RuntimeWarning,
            stacklevel=2,
        )
        return str(error)
    return None
