"""Replay a trace through the machine's real malloc: glibc, jemalloc, tcmalloc, mimalloc or Scudo.

The models in `allocators/` simulate an allocator over an address space; this
module runs the same trace through a real C allocator, to put the models'
figures next to real ones.

Isolation.  `replay_real(trace, allocator)` never calls a real allocator in the
calling process.  It writes the trace's columns to a temporary `.npz` and runs
`python -m bench.real --child IN OUT` in a child process, with `LD_PRELOAD`
naming the allocator's shared library (glibc: no preload, the default malloc)
and without the environment variables that tune an allocator
(`ALLOCATOR_VARIABLES`: MALLOC_*, GLIBC_TUNABLES, TCMALLOC_*, MIMALLOC_*,
SCUDO_OPTIONS), so every real allocator runs with its defaults.
The child writes a JSON result; a malloc that returns NULL is reported as
out of memory at row N (`RealReplayFailed`), and a child that dies (signal,
kernel OOM killer) is reported with its exit status and the tail of its stderr.
The parent is never affected.

Libraries.  jemalloc, tcmalloc and mimalloc are found by file name in the
usual library directories (`LIBRARY_DIRS`).  Scudo (LLVM's hardened allocator,
the standalone build `libclang_rt.scudo_standalone-x86_64.so` from Debian's
`libclang-rt-14-dev`) lives in a versioned clang directory
(/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux on Debian 12), so its directory is
a glob over `/usr/lib/llvm-*/lib/clang/*/lib/linux` (`LIBRARY_GLOBS`), newest
version first.  (The same package also ships `libclang_rt.scudo-x86_64.so`, the
older sanitizer-based Scudo; the lab uses the standalone one, the Scudo of
Android and Fuchsia.)  Scudo runs with its defaults: quarantine off
(quarantine_size_kb=0), no zero or pattern fill, the embedded GWP-ASan sampling
about 1 allocation in 5000 (its default SampleRate), no memory tagging (x86).

Start-up.  A child that dies by a signal or with ld.so's exit status 127 before
it is set up (imports, preload check, kernel warm-up; it then creates a marker
file) is started again, up to `START_ATTEMPTS` times in all; the crashes are
listed in the result's `start_failures`.  A death after the marker is the
replay's and is reported at once.  This is for Scudo: preloaded into a process
that dlopens libraries, it now and then takes the loader down with it (glibc
2.36, Scudo of LLVM 14): SIGSEGV in `_dl_find_object_update` sorting an array
it had just filled, read back as zeros (the array was a page-aligned block, as
the slots of Scudo's embedded GWP-ASan are), or "Inconsistency detected by
ld.so: dl-sort-maps.c ... rpo_head == rpo" (exit status 127).  Measured on
this machine: 6 crashes in 5 758 starts of a `python3` importing ctypes under
Scudo's defaults (batches of 200 to 3 000: 0 to 2 per batch), none in 800 with
GWP_ASAN_Enabled=false (too few to call GWP-ASan the cause), and one of 15 Scudo
children of `bench real` before its first row.  The replays keep Scudo's
defaults, GWP-ASan included.

Simulated threads are ignored here: every row runs on the child's one OS
thread.  `bench.real.threaded.replay_threads` (`bench real --threads`) replays
a multi-thread trace with one OS thread per trace thread instead (pthreads in
the C program bench/real/threadreplayer.c, each object's rows kept in trace
order across threads), for throughput at 1, 2 ... N threads.

The child side (the preload check, the calls through raw function addresses,
what each row does, the timing and the footprint measures) is
`bench.real.child`.
"""


from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from allocators.errors import OutOfMemory
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALLOCATORS = ("glibc", "jemalloc", "tcmalloc", "mimalloc", "scudo")
#: Shared library file names per allocator (first found wins) and the Debian package shipping them.
LIBRARIES: dict[str, tuple[tuple[str, ...], str]] = {
    "jemalloc": (("libjemalloc.so.2", "libjemalloc.so"), "libjemalloc2"),
    "tcmalloc": (("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so"), "libtcmalloc-minimal4"),
    "mimalloc": (("libmimalloc.so.2", "libmimalloc.so.2.0", "libmimalloc.so"), "libmimalloc2.0"),
    "scudo": (("libclang_rt.scudo_standalone-x86_64.so",), "libclang-rt-14-dev"),
}
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
#: Directory globs searched after LIBRARY_DIRS, newest version first (the clang runtime's directory is versioned).
LIBRARY_GLOBS: dict[str, tuple[str, ...]] = {
    "scudo": ("/usr/lib/llvm-*/lib/clang/*/lib/linux", "/usr/lib/clang/*/lib/linux",
              "/usr/lib/clang/*/lib/x86_64-unknown-linux-gnu"),
}
#: A symbol only this allocator's library exports: the preload check wants it defined by the library asked for.
SIGNATURE_SYMBOLS = {"glibc": "gnu_get_libc_version", "jemalloc": "mallctl",
                     "tcmalloc": "MallocExtension_GetNumericProperty", "mimalloc": "mi_version",
                     "scudo": "__scudo_print_stats"}
TOUCH_MODES = {"none": 0, "first": 1, "page": 2}

_OP_ALLOC, _OP_FREE, _OP_REALLOC = 0, 1, 2
_EXIT_OOM = 3
_EXIT_LOADER = 127  # what ld.so exits with on "Inconsistency detected by ld.so" (and the shell on a missing program)
#: How often replay_real starts a child that crashed before its first replay row (module docstring, "Start-up").
START_ATTEMPTS = 3
#: The child creates RESULT_JSON + READY_SUFFIX when it is set up (imports done, preload checked, kernel warm).
READY_SUFFIX = ".ready"


class RealAllocatorMissing(ValueError):
    """The shared library of a real allocator is not installed (the message names the Debian package)."""


class RealReplayFailed(RuntimeError):
    """The child process failed for another reason than out of memory (crash, signal, timeout)."""


class RealOutOfMemory(OutOfMemory):
    """malloc/realloc returned NULL in the child; `row` is the trace row."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row


# ---------------------------------------------------------------- kernels
@njit(cache=True)
def peak_live_requested(op, obj, size, n_ids):
    """(peak live requested bytes, first row after which it is reached; -1 for an empty trace)."""
    current = np.zeros(n_ids, np.int64)
    live = 0
    peak = 0
    peak_row = -1
    for row in range(op.shape[0]):
        code = op[row]
        ident = obj[row]
        if code == _OP_ALLOC or code == _OP_REALLOC:
            live += size[row] - current[ident]
            current[ident] = size[row]
        elif code == _OP_FREE:
            live -= current[ident]
            current[ident] = 0
        if live > peak:
            peak = live
            peak_row = row
    return peak, peak_row


# ---------------------------------------------------------------- library lookup (parent)
#: Environment variables that tune a real allocator (glibc's MALLOC_*_ and GLIBC_TUNABLES, jemalloc's MALLOC_CONF,
#: gperftools' TCMALLOC_*, mimalloc's MIMALLOC_*, Scudo's SCUDO_OPTIONS, which also carries its embedded GWP-ASan's
#: GWP_ASAN_* options) or preload one: removed for the replays, which measure defaults.
ALLOCATOR_VARIABLES = ("MALLOC_", "GLIBC_TUNABLES", "TCMALLOC_", "MIMALLOC_", "JE_MALLOC_CONF", "SCUDO_OPTIONS",
                       "LD_PRELOAD")


def allocator_environment() -> dict[str, str]:
    """This process's environment without the variables that tune or preload an allocator (`ALLOCATOR_VARIABLES`).

    A real allocator's figures are its defaults': a Dask nanny, for one, sets MALLOC_TRIM_THRESHOLD_=65536 in the
    environment of the process that starts it, which changes glibc's mmap and trim decisions.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith(ALLOCATOR_VARIABLES)}


def library_path(allocator: str) -> str | None:
    """The shared library to preload for `allocator` (None for glibc); RealAllocatorMissing if not installed."""
    if allocator == "glibc":
        return None
    if allocator not in LIBRARIES:
        raise ValueError(f"unknown real allocator '{allocator}' (known: {', '.join(ALLOCATORS)})")
    names, package = LIBRARIES[allocator]
    patterns = LIBRARY_GLOBS.get(allocator, ())
    for directory in (*LIBRARY_DIRS, *(found for pattern in patterns for found in _newest_first(pattern))):
        for name in names:
            candidate = Path(directory) / name
            if candidate.exists():
                return str(candidate)
    raise RealAllocatorMissing(
        f"real allocator '{allocator}': shared library not found ({' or '.join(names)} in "
        f"{', '.join((*LIBRARY_DIRS, *patterns))}); install the Debian package: apt-get install -y {package}"
    )


def _newest_first(pattern: str) -> list[str]:
    """Directories matching `pattern`, the highest version numbers in their path first (llvm-15 before llvm-14)."""
    def version(path: str) -> list[int]:
        return [int(number) for number in re.findall(r"\d+", path)]

    return sorted(glob.glob(pattern), key=version, reverse=True)


def available() -> dict[str, str | None]:
    """Allocators whose library is installed: name -> library path (None for glibc)."""
    found: dict[str, str | None] = {}
    for name in ALLOCATORS:
        try:
            found[name] = library_path(name)
        except RealAllocatorMissing:
            pass
    return found


# ---------------------------------------------------------------- parent API
def _mem_total() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def replay_real(
    trace: Any,
    allocator: str = "glibc",
    repeats: int = 3,
    touch: str = "page",
    memory_limit_bytes: int | str | None = "auto",
    timeout: float | None = 1800.0,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Replay `trace` through a real allocator in a child process; return its figures (module docstring).

    memory_limit_bytes: the child caps its address space (RLIMIT_AS) at what it has mapped when the
    loop starts plus this many bytes, so an oversized trace fails with malloc returning NULL
    (RealOutOfMemory at row N) rather than swapping or waking the kernel's OOM killer (jemalloc, for
    one, grants a 1 TiB malloc under Linux overcommit and the page touches then get the child
    killed).  "auto" (default): the machine's MemTotal.  None: no cap.
    timeout: seconds before the child is killed (RealReplayFailed).
    environment: variables set for the child after the inherited allocator variables are dropped (an option of
    the allocator's: `bench.pairs.SETTING_PAIRS`).
    """
    if not hasattr(trace, "slots") or not hasattr(trace, "op"):
        raise TypeError(f"replay_real() needs a Trace, got {type(trace).__name__}")
    if not len(trace):
        raise ValueError(f"{trace.meta.get('source') or trace.meta.get('spec') or 'trace'}: trace has no rows")
    if memory_limit_bytes == "auto":
        memory_limit_bytes = _mem_total()
    if memory_limit_bytes is not None and (not isinstance(memory_limit_bytes, int) or memory_limit_bytes <= 0):
        raise ValueError(f"memory_limit_bytes must be a positive integer, 'auto' or None, got {memory_limit_bytes!r}")
    if touch not in TOUCH_MODES:
        raise ValueError(f"touch must be one of {', '.join(TOUCH_MODES)}, got {touch!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    library = library_path(allocator)
    env = allocator_environment()
    env.update(environment or {})
    if library:
        env["LD_PRELOAD"] = library
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the bench package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="alloclab-real-") as scratch:
        source = Path(scratch) / "trace.npz"
        target = Path(scratch) / "result.json"
        np.savez(
            source, op=trace.op, obj=trace.slots, size=trace.size,
            n_ids=np.array(max(trace.n_slots, 1)), n_threads=np.array(trace.n_threads),
        )
        command = [
            sys.executable, "-m", "bench.real", "--child", str(source), str(target),
            "--allocator", allocator, "--repeats", str(repeats), "--touch", touch,
        ]
        if memory_limit_bytes is not None:
            command += ["--memory-limit", str(int(memory_limit_bytes))]
        start_failures: list[str] = []
        while True:
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=root)
            except subprocess.TimeoutExpired:
                raise RealReplayFailed(f"real {allocator}: child replay did not finish within {timeout} s") from None
            result = json.loads(target.read_text()) if target.exists() else None
            ready = target.with_name(target.name + READY_SUFFIX).exists()
            crashed = done.returncode < 0 or done.returncode == _EXIT_LOADER
            if result is not None or ready or not crashed or len(start_failures) + 1 >= START_ATTEMPTS:
                break
            # died while starting up (imports, the loader), before any replay row: start it again
            status = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
            start_failures.append(f"{status}: {_tail(done.stderr, 2)}")
    if result is not None and result.get("error") == "out_of_memory":
        row = int(result["row"])
        raise RealOutOfMemory(
            f"real {allocator}: out of memory at row {row} "
            f"({result['op']} of {result['size']} bytes: {result['function']} returned NULL)", row
        )
    if done.returncode != 0 or result is None:
        status = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        started = "" if not start_failures else f" (after {len(start_failures)} start-up crash(es))"
        raise RealReplayFailed(f"real {allocator}: child replay failed ({status}){started}: {_tail(done.stderr, 6)}")
    result["library"] = library
    result["start_failures"] = start_failures
    return result


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The figures of one real replay as aligned text lines (for the CLI)."""
    def size(value: int | None) -> str:
        return "n/a" if value is None else f"{value / (1 << 20):.2f} MiB ({value:,} B)"

    factor = result["overhead_factor"]
    rss_factor = result["rss_overhead_factor"]
    return [
        f"{'allocator':<24}{result['allocator']} ({result['version'] or 'version unknown'})",
        f"{'library':<24}{result['library'] or 'libc (no preload)'}",
        f"{'rows':<24}{result['rows']:,} ({result['threads_in_trace']} simulated thread(s), replayed on one)",
        f"{'throughput':<24}{result['throughput_mops']:.1f} Mops/s  ({result['ns_per_op']:.1f} ns/op, "
        f"median of {result['repeats']}; min {result['seconds_min'] * 1e3:.2f} ms, "
        f"max {result['seconds_max'] * 1e3:.2f} ms)",
        f"{'compile/load':<24}{result['compile_s']:.2f} s (not included above)",
        f"{'peak live requested':<24}{size(result['peak_live_requested'])}",
        f"{'peak live granted':<24}{size(result['peak_live_granted'])}  "
        f"(internal fragmentation {result['internal_fragmentation'] * 100:.1f} % at that peak)",
        f"{'peak heap growth':<24}{size(result['peak_heap_bytes'])}  [{result['peak_heap_measure']}]",
        f"{'overhead factor':<24}{'n/a' if factor is None else f'{factor:.3f}'}"
        "  (peak heap growth / peak live requested)",
        f"{'RSS growth':<24}{size(result['rss_growth_bytes'])}  (touch={result['touch']}; overhead "
        f"{'n/a' if rss_factor is None else f'{rss_factor:.3f}'}; whole-process peak RSS "
        f"{size(result['peak_rss_bytes'])})",
    ]


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.real --trace FILE --allocator NAME [--json]`; `--child` is the child side of replay_real()."""
    parser = argparse.ArgumentParser(prog="python -m bench.real", description="replay a trace through a real malloc")
    parser.add_argument("--child", nargs=2, metavar=("TRACE_NPZ", "RESULT_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", help="trace file (.npz or .csv)")
    parser.add_argument("--allocator", "-a", choices=ALLOCATORS, default="glibc")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--touch", choices=tuple(TOUCH_MODES), default="page",
                        help="what ALLOC/REALLOC write into the block: a byte per 4 KiB page (default), "
                        "the first byte, or nothing")
    parser.add_argument("--memory-limit", type=int, default=None, help="address-space cap for the replay, bytes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        from bench.real.child import run_child

        return run_child(args.child[0], args.child[1], args.allocator, args.repeats, args.touch, args.memory_limit)
    if not args.trace:
        parser.error("--trace is required")
    from workloads.trace import Trace, TraceError

    try:
        trace = Trace.load(args.trace)
        result = replay_real(trace, args.allocator, repeats=args.repeats, touch=args.touch,
                             memory_limit_bytes=args.memory_limit if args.memory_limit is not None else "auto")
    except (TraceError, RealAllocatorMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (RealOutOfMemory, RealReplayFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else "\n".join(summary_lines(result)))
    return 0

