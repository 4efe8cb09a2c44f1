"""Real allocators on real threads: a multi-thread trace replayed with one OS thread per trace thread.

`bench.real.replay_real` runs every row on one OS thread, whatever the trace's `thread` column says.  Here
each trace thread gets an OS thread (pthreads, in the C program bench/real/threadreplayer.c, LD_PRELOADing
the allocator as bench/real/cleanheap.py does; glibc without), so the allocator's thread caches, arenas and
remote frees are exercised as a multi-threaded program would: glibc's per-thread arenas, jemalloc's and
tcmalloc's thread caches, mimalloc's thread-free lists, Scudo's TSD caches.

The schedule (`build_schedule`, here in the parent).  Every row goes to the OS thread of its trace thread
(trace threads numbered densely in order of their ids: `thread_ids`), each thread's rows in trace order.  Each
object lifetime (an ALLOC and the rows that name the object until its FREE) gets a table entry, its *slot*,
and each of its rows a sequence number `seq` (ALLOC 0, then 1, 2, ...).  The replayer runs a row with seq k
only once the lifetime's row k-1 has run (a per-slot atomic version, acquire/release; no lock in the measured
loop; see the C file).  So the trace's cross-thread order is kept where it matters (a FREE of a block
allocated by another thread runs after that ALLOC; a REALLOC or ACCESS after the row before it on the same
object), and nowhere else: rows on different objects never wait for each other.  Slots are numbered by
allocating thread, each thread's run padded to a 64-byte line of 16-byte entries, so threads that share no
object share no line of the replayer's table.  Lifetimes rather than the trace's reusable slots
(`Trace.slots`): a slot reused after a remote free would make the next ALLOC wait for that free, an order the
program never had.  Deadlock is impossible: each thread runs its rows in trace order and every row waits only
for an earlier trace row; the C side checks exactly that before the first malloc, and a watchdog ends any
wait longer than `wait_timeout` seconds with RealReplayFailed (a bug never hangs the caller).

What a row does: ALLOC malloc, REALLOC realloc, FREE free, ACCESS writes the block's first byte.  Touch
policy: each new block (ALLOC, REALLOC) gets its first byte written (`touch="first"`, the default here; "page"
writes one byte per 4 KiB page as the clean-heap replayer does, "none" nothing): one write puts the block's
first line in the allocating core's cache, as a program that uses its block would, without making the
replay a page-fault benchmark.

Timing: the OS threads are created once; a warm-up replay of the whole schedule (reported apart, never in
the figures), then `repeats` timed replays, each from a barrier to the last thread's end, every one starting
with no live block of the trace (what the trace leaves live is freed between replays, outside the clock).
Throughput = rows / median wall time (Mops/s); the spread is min..max over the repeats and
(max - min) / median.  Beside it: rows per thread, waits (rows that found their object not ready: the
hand-offs' cost in the schedule), and the machine: os.cpu_count(), the affinity mask, the load average when
the replay started (a shared machine shows there).

Inputs are checked here before the C side sees them: a Trace with rows, at most MAX_OS_THREADS distinct
trace threads (one OS thread each), repeats in 1..MAX_REPEATS, a known touch mode and allocator; the slots and
sequence numbers are computed here, so every index the C side reads is in range (it checks them again).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from bench.real import ALLOCATORS, TOUCH_MODES, RealReplayFailed, library_path
from bench.real.cleanheap import replayer_binary, run_replayer
from labcore.jitcache import holds_kernels
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace

holds_kernels(__file__)

SOURCE = Path(__file__).with_name("threadreplayer.c")
#: One OS thread per trace thread, at most this many (the C side's MAX_THREADS).
MAX_OS_THREADS = 256
MAX_REPEATS = 1000
#: Table entries per 64-byte line (16-byte entries): each allocating thread's slots start on a line of their own.
ENTRIES_PER_LINE = 4
_EXIT_BAD_INPUT, _EXIT_WATCHDOG = 2, 4  # 1: out of memory (cleanheap.run_replayer)
#: The C side's test hook: this trace row never publishes its version (tests/test_realthreads.py, the watchdog).
DROP_HOOK = "ALLOCLAB_THREADREPLAYER_DROP"


@dataclass(frozen=True)
class Schedule:
    """The rows grouped by OS thread (thread 0's first, each thread's in trace order), as the C side reads them."""

    op: np.ndarray  # int8
    slot: np.ndarray  # int64: the lifetime's table entry
    size: np.ndarray  # int64: ALLOC/REALLOC bytes; ACCESS 1 when the object's requested size is > 0
    seq: np.ndarray  # int64: the row's place in its lifetime (ALLOC 0)
    row: np.ndarray  # int64: the row's index in the trace
    thread_rows: np.ndarray  # int64 per OS thread
    thread_ids: tuple[int, ...]  # the trace thread of each OS thread
    n_slots: int

    @property
    def os_threads(self) -> int:
        return len(self.thread_ids)


@njit(cache=True)
def _lifetimes(op, dense, size, thread, n_ids, n_threads, n_allocs):
    """Per row: its lifetime's owner-local number and owner, its seq, and the size the C side uses."""
    current = np.full(n_ids, -1, np.int64)  # the live lifetime of each dense id
    owner = np.empty(n_allocs, np.int64)
    local = np.empty(n_allocs, np.int64)
    done = np.zeros(n_allocs, np.int64)
    requested = np.zeros(n_allocs, np.int64)
    per_owner = np.zeros(n_threads, np.int64)
    row_lifetime = np.empty(op.shape[0], np.int64)
    seq = np.empty(op.shape[0], np.int64)
    step_size = np.empty(op.shape[0], np.int64)
    started = 0
    for row in range(op.shape[0]):
        ident = dense[row]
        code = op[row]
        if code == OP_ALLOC:
            lifetime = started
            started += 1
            current[ident] = lifetime
            owner[lifetime] = thread[row]
            local[lifetime] = per_owner[thread[row]]
            per_owner[thread[row]] += 1
        else:
            lifetime = current[ident]
        row_lifetime[row] = lifetime
        seq[row] = done[lifetime]
        done[lifetime] += 1
        step_size[row] = size[row]
        if code == OP_ALLOC or code == OP_REALLOC:
            requested[lifetime] = size[row]
        elif code == OP_ACCESS:
            step_size[row] = 1 if requested[lifetime] > 0 else 0
        elif code == OP_FREE:
            step_size[row] = 0
            current[ident] = -1
    return row_lifetime, owner, local, per_owner, seq, step_size


def build_schedule(trace: Trace) -> Schedule:
    """The schedule of `trace` (module docstring); ValueError when it has no rows or too many threads."""
    if not isinstance(trace, Trace):
        raise TypeError(f"the threaded replay needs a workloads.trace.Trace, got {type(trace).__name__}")
    trace.require_valid()
    if not len(trace):
        raise ValueError(f"{trace.meta.get('spec') or trace.meta.get('source') or 'trace'}: trace has no rows")
    thread_ids, thread = np.unique(trace.thread, return_inverse=True)
    if thread_ids.size > MAX_OS_THREADS:
        raise ValueError(f"the trace has {thread_ids.size} threads; the threaded replay starts one OS thread per "
                         f"trace thread, at most {MAX_OS_THREADS}")
    n_allocs = int(np.count_nonzero(trace.op == OP_ALLOC))
    row_lifetime, owner, local, per_owner, seq, step_size = _lifetimes(
        trace.op, trace.dense_obj, trace.size, thread.astype(np.int64), trace.n_ids, thread_ids.size, n_allocs)
    padded = -(-per_owner // ENTRIES_PER_LINE) * ENTRIES_PER_LINE
    base = np.concatenate(([0], np.cumsum(padded)[:-1]))
    slot_of_lifetime = base[owner] + local
    order = np.argsort(thread, kind="stable")
    return Schedule(
        op=np.ascontiguousarray(trace.op[order], np.int8),
        slot=np.ascontiguousarray(slot_of_lifetime[row_lifetime[order]], np.int64),
        size=np.ascontiguousarray(step_size[order], np.int64), seq=np.ascontiguousarray(seq[order], np.int64),
        row=order.astype(np.int64), thread_rows=np.bincount(thread, minlength=thread_ids.size).astype(np.int64),
        thread_ids=tuple(int(ident) for ident in thread_ids), n_slots=max(int(padded.sum()), 1),
    )


def serialised(trace: Trace) -> Trace:
    """The same rows on one thread (thread column 0): the 1-thread side of a scaling point, same work exactly."""
    meta = {**trace.meta, "serialised_from_threads": trace.n_threads}
    return Trace(trace.op, trace.obj, trace.size, np.zeros_like(trace.thread), meta, faults=trace.faults)


def machine() -> dict[str, Any]:
    """The cores a figure was measured on: os.cpu_count(), the affinity mask, the load average now."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"cpu_count": os.cpu_count(), "affinity": affinity, "affinity_cores": len(affinity),
            "loadavg": [round(value, 2) for value in load]}


def _check_arguments(allocator: str, repeats: int, touch: str, wait_timeout: float, timeout: float | None) -> None:
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown real allocator '{allocator}' (known: {', '.join(ALLOCATORS)})")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats must be an integer in 1..{MAX_REPEATS}, got {repeats!r}")
    if touch not in TOUCH_MODES:
        raise ValueError(f"touch must be one of {', '.join(TOUCH_MODES)}, got {touch!r}")
    for name, value in (("wait_timeout", wait_timeout), ("timeout", timeout)):
        if value is None and name == "timeout":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0.001:
            raise ValueError(f"{name} must be a finite number of seconds >= 0.001, got {value!r}")


def replay_threads(trace: Trace, allocator: str = "glibc", repeats: int = 3, touch: str = "first",
                   wait_timeout: float = 60.0, timeout: float | None = 1800.0) -> dict[str, Any]:
    """Replay `trace` through the real `allocator` with one OS thread per trace thread (module docstring).

    Returns the figures: throughput_mops (rows / median wall time), throughput_min/max, seconds (per repeat),
    seconds_median/min/max, spread ((max - min) / median), os_threads, thread_ids, thread_rows, waits (median
    over repeats of the rows that found their object not ready), allocs/frees/null_frees/live_end (the last
    repeat's), warmup_seconds, machine, allocator, library, touch.  Raises ValueError (bad input),
    RealAllocatorMissing, CompilerMissing, RealOutOfMemory (malloc/realloc returned NULL; `.row`),
    RealReplayFailed (the replayer refused its input, its watchdog fired, it crashed or timed out).
    """
    _check_arguments(allocator, repeats, touch, wait_timeout, timeout)
    schedule = build_schedule(trace)
    library = library_path(allocator)
    binary = replayer_binary(SOURCE, ("-pthread",))
    raw = run_schedule(binary, schedule, allocator, library, repeats, TOUCH_MODES[touch], wait_timeout, timeout)
    return summarise(raw, schedule, allocator, library, touch, trace.n_threads, wait_timeout)


def run_schedule(binary: Path, schedule: Schedule, allocator: str, library: str | None, repeats: int,
                 touch_mode: int, wait_timeout: float, timeout: float | None,
                 extra_environment: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the C replayer over a schedule; its JSON output (RealOutOfMemory / RealReplayFailed otherwise)."""
    started = machine()
    with tempfile.TemporaryDirectory(prefix="threadreplay-") as scratch:
        for name in ("op", "slot", "size", "seq", "row", "thread_rows"):
            getattr(schedule, name).tofile(Path(scratch) / f"{name}.bin")
        command = [str(binary), allocator, scratch, str(schedule.n_slots), str(repeats), str(touch_mode),
                   str(max(1, round(wait_timeout * 1000)))]
        completed, figures = run_replayer(command, library, timeout, f"threaded replay through {allocator}",
                                          extra_environment)
    if completed.returncode == _EXIT_WATCHDOG and isinstance(figures, dict) and "error" in figures:
        raise RealReplayFailed(f"threaded replay through {allocator}: {figures['error']}")
    if completed.returncode != 0 or not isinstance(figures, dict) or "seconds" not in figures:
        status = (f"signal {-completed.returncode}" if completed.returncode < 0
                  else f"exit status {completed.returncode}")
        refused = " (it refused its input)" if completed.returncode == _EXIT_BAD_INPUT else ""
        raise RealReplayFailed(f"threaded replay through {allocator} failed, {status}{refused}: "
                               f"{completed.stderr.strip()[-2000:]}")
    figures["machine"] = started
    return figures


def summarise(raw: dict[str, Any], schedule: Schedule, allocator: str, library: str | None, touch: str,
              threads_in_trace: int, wait_timeout: float) -> dict[str, Any]:
    """The replayer's raw per-repeat figures as the result of `replay_threads`."""
    seconds = [float(value) for value in raw["seconds"]]
    rows = int(raw["rows"])
    median, low, high = statistics.median(seconds), min(seconds), max(seconds)
    waits = [sum(per_thread) for per_thread in raw["waits"]]
    last = {name: sum(raw[name][-1]) for name in ("allocs", "frees", "null_frees")}
    return {
        "allocator": allocator, "library": library, "rows": rows, "os_threads": int(raw["os_threads"]),
        "threads_in_trace": threads_in_trace, "thread_ids": list(schedule.thread_ids),
        "thread_rows": [int(count) for count in raw["thread_rows"]], "repeats": len(seconds), "touch": touch,
        "throughput_mops": rows / median / 1e6, "throughput_min": rows / high / 1e6,
        "throughput_max": rows / low / 1e6, "ns_per_op": median * 1e9 / rows, "seconds": seconds,
        "seconds_median": median, "seconds_min": low, "seconds_max": high, "spread": (high - low) / median,
        "warmup_seconds": float(raw["warmup_seconds"]), "thread_seconds": raw["thread_seconds"],
        "waits": statistics.median(waits), "waits_per_repeat": waits,
        "yields_per_repeat": [sum(per_thread) for per_thread in raw["yields"]],
        **last, "live_end": int(raw["live_end"][-1]), "live_end_per_repeat": raw["live_end"],
        "wait_timeout": wait_timeout,
        "machine": {**raw["machine"], "nprocs": raw["nprocs"], "replayer_affinity_cores": raw["affinity_cores"]},
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The figures of one threaded replay as aligned text lines (for the CLI)."""
    host = result["machine"]
    per_thread = ", ".join(f"{count:,}" for count in result["thread_rows"])
    return [
        f"{'allocator':<24}{result['allocator']}",
        f"{'library':<24}{result['library'] or 'libc (no preload)'}",
        f"{'rows':<24}{result['rows']:,} on {result['os_threads']} OS thread(s) ({per_thread} rows each)",
        f"{'throughput':<24}{result['throughput_mops']:.2f} Mops/s  (median of {result['repeats']}; "
        f"min..max {result['throughput_min']:.2f}..{result['throughput_max']:.2f}, spread "
        f"{100 * result['spread']:.1f} %; {result['ns_per_op']:.1f} ns/row)",
        f"{'wall time':<24}{result['seconds_median'] * 1e3:.2f} ms (warm-up {result['warmup_seconds'] * 1e3:.2f} ms, "
        "not included)",
        f"{'waits':<24}{result['waits']:,.0f} rows found their object not ready (median per repeat)",
        f"{'blocks':<24}{result['allocs']:,} allocated, {result['frees']:,} freed, {result['live_end']:,} live at "
        f"the end (last repeat)",
        f"{'machine':<24}{host['cpu_count']} cores, affinity {host['affinity_cores']} "
        f"({','.join(map(str, host['affinity']))}), load average {host['loadavg'][0]:.2f} at the start",
        f"{'touch':<24}{result['touch']} (bytes written into each new block)",
    ]
