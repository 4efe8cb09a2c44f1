"""Clean-heap footprint of a real allocator: the trace replayed by a small C program (bench/real/replayer.c).

`bench.real` replays inside a Python child whose own allocations (Python, numba, LLVM) leave tens of
MiB of free memory in the allocator's heap before the timed loop; the replay reuses it, so the heap
growth it measures understates what the trace needs.  Here the replay runs in a C process that has
allocated almost nothing before the loop (its columns and pointer table are mmap'ed), so

    peak_heap_bytes = heap taken from the OS, by the allocator's own statistic, at the row where live
                      requested bytes peak (or at the end, whichever is larger) - the same at start.

Peak footprint (`peak_footprint`, what `bench fidelity` puts beside a model's peak footprint: the bytes
of address space the allocator holds from the OS at its peak, for this trace alone).  The growth above
is not that for every allocator: each statistic moves in its own steps, and what the allocator took at
start-up may or may not serve the trace.  Measured on this machine (Debian 12: glibc 2.36, gperftools
2.10, jemalloc 5.3, mimalloc 2.0.9), one rule per allocator (`FOOTPRINT_RULES`):

- glibc, tcmalloc: "statistic": the statistic at the peak minus the bytes the program had allocated at
  the baseline (in_use_start: glibc uordblks + hblkhd, tcmalloc generic.current_allocated_bytes).  The
  start-up reservation is the trace's: glibc's first 132 KiB arena and tcmalloc's first page-heap grow of
  1 MiB (kMinSystemAlloc) are nearly empty when the replay starts, the replay fills them, and a model
  starting from an empty heap counts its own first grow too; the growth alone read 0 for a trace that fit
  in tcmalloc's first MiB.
- jemalloc: "growth" of its active and dirty pages (stats.active + (stats.arenas.<all>.pdirty + pmuzzy) x
  page: what stats.mapped counts but the base allocator's metadata blocks; retained virtual space is not
  counted either).  stats.mapped itself moved by exactly 6 MiB between identical replays (cc1 trace: 5.0
  MiB growth in 7 of 8 runs, 11.0 in one, the anonymous RSS growth 4.9 MiB in all): jemalloc's base
  allocator maps its metadata in blocks, and whether the replay's extents need one more radix-tree leaf,
  hence one more 6 MiB base block, mostly untouched, depends on where the kernel placed them.  The
  models count no allocator metadata in their footprint (tcmalloc's generic.heap_size does not either).
- mimalloc: "rss": anonymous resident growth (rss_anon_peak_growth, sampled every 1024 rows).  Its
  committed statistic moves in whole 32 MiB segments: a single-threaded process commits each segment
  eagerly (segment.c: eager_delay needs more than one thread), so it read 32 MiB at start and 32 MiB of
  growth for 1 to 40 MiB of live data; on Linux those pages are overcommitted, and only touched ones
  are memory.  The replayer touches every page of every block it gets, so resident growth is what the
  trace made mimalloc use.
- scudo: "growth" (its StatMapped counter: primary regions and secondary blocks, mapped as needed).

Every result also carries rss_anon_peak_growth, a cross-check of the statistic that is one measure for
all allocators.

The replayer is compiled with gcc once per source version into
~/.cache/allocator-lab/replayer/<sha256 of the source>/replayer.  jemalloc, tcmalloc, mimalloc and Scudo are
LD_PRELOADed (library found by `bench.real.library_path`); glibc runs without preload.  The replayer
refuses to measure (exit status 2, RealReplayFailed here) when the preloaded allocator's signature symbol
is missing or malloc is not defined beside it (bench/real/replayer.c, "Preload check"): Scudo's statistic,
mallinfo2, is also glibc's, so a preload that did not take would otherwise pass for Scudo.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.real import RealOutOfMemory, RealReplayFailed, allocator_environment, library_path

SOURCE = Path(__file__).with_name("replayer.c")
CACHE_ROOT = Path.home() / ".cache" / "allocator-lab" / "replayer"


#: How each allocator's peak footprint is read from the replayer's figures (module docstring).
FOOTPRINT_RULES = {"glibc": "statistic", "tcmalloc": "statistic", "jemalloc": "growth", "mimalloc": "rss",
                   "scudo": "growth"}


def peak_footprint(figures: dict[str, Any], allocator: str) -> tuple[int, str]:
    """(peak footprint in bytes, what it is) from the replayer's JSON figures, by FOOTPRINT_RULES[allocator].

    A statistic that was not found (the replayer fell back to VmRSS) or a missing in-use count falls back to
    the growth, then to the anonymous RSS growth."""
    rule = FOOTPRINT_RULES.get(allocator, "growth")
    found = "VmRSS" not in figures["measure"]
    in_use = figures.get("in_use_start", -1)
    if rule == "statistic" and found and in_use >= 0:
        value = figures["heap_start"] + figures["peak_heap_bytes"] - in_use
        return max(0, value), f"{figures['measure'].split(' (')[0]} at the peak - in use at start"
    if rule in ("statistic", "growth") and found:
        return figures["peak_heap_bytes"], f"growth of {figures['measure'].split(' (')[0]}"
    return figures["rss_anon_peak_growth"], "anonymous RSS growth (/proc/self/statm)"


class CompilerMissing(RuntimeError):
    """gcc is not installed (the message names the Debian package)."""


def replayer_binary(source_path: Path = SOURCE, flags: tuple[str, ...] = (), shared: bool = False) -> Path:
    """Path of a compiled C helper (default bench/real/replayer.c), compiling it with gcc on first use of this source.

    The binary, named after the source file's stem, lives in CACHE_ROOT/<sha256 of the source, the headers beside
    it, the extra gcc `flags` and `shared`>/; bench.real.safety compiles bench/real/faultreplayer.c through here
    too, and bench.real.threaded bench/real/threadreplayer.c with flags ("-pthread",).  shared=True builds a
    shared library, lib<stem>.so (`-shared -fPIC`): bench.real.probe's preload probe.
    """
    gcc_flags = [*(("-shared", "-fPIC") if shared else ()), *flags]
    digest = hashlib.sha256(source_path.read_bytes())
    for header in sorted(source_path.parent.glob("*.h")):  # the headers it may include (bench/real/preload.h)
        digest.update(header.read_bytes())
    for flag in gcc_flags:
        digest.update(b"\0" + flag.encode())
    directory = CACHE_ROOT / digest.hexdigest()[:16]
    binary = directory / (f"lib{source_path.stem}.so" if shared else source_path.stem)
    if binary.exists():
        return binary
    compiler = shutil.which("gcc")
    if compiler is None:
        raise CompilerMissing(f"C helper {source_path.name}: gcc not found; install the Debian package: "
                              "apt-get install -y gcc")
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{binary.name}.{os.getpid()}.tmp"
    command = [compiler, "-O2", "-std=gnu11", *gcc_flags, "-o", str(partial), str(source_path), "-ldl"]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RealReplayFailed(f"C helper: gcc failed on {source_path}:\n{completed.stderr}")
    os.replace(partial, binary)  # atomic: concurrent compilers leave one complete binary
    return binary


def run_replayer(command: list[str], library: str | None, timeout: float | None, label: str,
                 extra_environment: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, Any]:
    """Run a C replayer with `library` preloaded (None: glibc) and the allocators' tuning variables removed
    (`bench.real.allocator_environment`); return the process and its last stdout line read as JSON (None if
    it is not).  RealReplayFailed when it runs past `timeout` seconds; RealOutOfMemory when it exits with
    status 1 and {"error": ..., "row": N} (malloc/realloc returned NULL)."""
    environment = allocator_environment()
    if library is not None:
        environment["LD_PRELOAD"] = library
    environment.update(extra_environment or {})
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RealReplayFailed(f"{label} did not finish within {timeout} s") from None
    output = completed.stdout.strip().splitlines()
    try:
        figures = json.loads(output[-1]) if output else None
    except json.JSONDecodeError:
        figures = None
    if completed.returncode == 1 and isinstance(figures, dict) and "error" in figures and "row" in figures:
        raise RealOutOfMemory(f"{label}: {figures['error']} at row {figures['row']}", int(figures["row"]))
    return completed, figures


def clean_heap_footprint(trace: Any, allocator: str = "glibc", timeout: float | None = 1800.0,
                         environment: dict[str, str] | None = None, addresses: bool = False) -> dict[str, Any]:
    """Replay `trace` through the real `allocator` in the C replayer; return its JSON figures.

    environment: variables set for the replayer after the inherited allocator variables are dropped (an
    option of the allocator's, e.g. {"MALLOC_CONF": "dirty_decay_ms:0"}; `bench.pairs.SETTING_PAIRS`).
    addresses: also return, as "addresses", the address each ALLOC / REALLOC row got (int64 per row, 0 for
    the other rows; `bench.real.placement`), with "warm_address", where the warm-up malloc(16) was.

    Keys: peak_heap_bytes (heap growth from the pre-replay baseline, module docstring), measure,
    heap_growth_at_peak_row, heap_growth_at_end, heap_start, in_use_start, rss_growth_bytes (VmRSS growth at
    the peak-live row), rss_start, rss_anon_start, rss_anon_peak_growth, peak_live_requested, peak_row, rows;
    plus allocator, library, peak_footprint and footprint_measure (`peak_footprint`).
    Raises RealAllocatorMissing (library not installed), CompilerMissing (no gcc), RealOutOfMemory
    (malloc/realloc returned NULL; `.row` is the row), RealReplayFailed (crash, timeout, bad output).
    """
    library = library_path(allocator)
    binary = replayer_binary()
    with tempfile.TemporaryDirectory(prefix="cleanheap-") as scratch:
        paths = [Path(scratch) / name for name in ("op.bin", "obj.bin", "size.bin")]
        np.ascontiguousarray(trace.op, dtype=np.int8).tofile(paths[0])
        np.ascontiguousarray(trace.slots, dtype=np.int64).tofile(paths[1])
        np.ascontiguousarray(trace.size, dtype=np.int64).tofile(paths[2])
        command = [str(binary), allocator, *map(str, paths), str(max(trace.n_slots, 1))]
        extra = dict(environment or {})
        if addresses:
            extra["ALLOCLAB_ADDRESSES"] = str(Path(scratch) / "addresses.bin")
        completed, figures = run_replayer(command, library, timeout, f"clean-heap replay through {allocator}",
                                          extra)
        if addresses and isinstance(figures, dict):
            figures["addresses"] = np.fromfile(Path(scratch) / "addresses.bin", dtype=np.int64)[:len(trace)]
    if completed.returncode != 0 or not isinstance(figures, dict) or "peak_heap_bytes" not in figures:
        raise RealReplayFailed(f"clean-heap replay through {allocator} failed (exit status {completed.returncode}): "
                               f"{completed.stderr.strip()[-2000:]}")
    footprint, how = peak_footprint(figures, allocator)
    figures.update(allocator=allocator, library=library, peak_footprint=footprint, footprint_measure=how)
    return figures
