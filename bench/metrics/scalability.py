"""Scalability proxies: what would contend, and what would bounce between cores.

The models run one simulated thread at a time, so contention is not timed; it
is counted:

- shared-structure operations: the allocator's own event counters that stand
  for an operation under a lock (a central free list, the page heap, an arena
  shared by threads).  Each allocator class declares which of its
  `counter_names` those are in a class attribute
  `shared_counters: tuple[str, ...]` (e.g. tcmalloc: central free list and
  page heap operations; glibc: arena operations that miss the tcache).
  `()` declares "nothing shared"; an allocator that declares nothing gets NaN.
- remote frees (a pure trace metric): FREE rows done by a thread other than
  the object's owner, the thread of the ALLOC row that created the object (a
  REALLOC does not change the owner).  Per-thread caches must send such
  blocks back to their owner or to a shared list.
- false sharing: 64 B lines that hold live blocks (their granted extent
  [addr, addr + granted)) of two or more owners.  Only the first and last
  line of a block can hold another block, so a jitted pass keeps, in two
  open-addressing hash tables, the number of live blocks of each (line, owner)
  and the number of distinct owners per line, updates the count of lines with
  two or more owners on every ALLOC, FREE and REALLOC, and records its
  maximum over all rows (exact, not sampled).  `ScalabilityAccumulator` runs
  the pass chunk by chunk, carrying the tables and the running count.

Definitions (one line each in the METRICS registry):

- shared_ops_per_kop = 1000 * (sum of the declared shared counters) / trace rows.
- remote_free_rate = remote FREE rows / FREE rows (0 without FREE rows).
- false_sharing_lines_peak = max over rows of the number of lines shared by live
  blocks of >= 2 owners (single-threaded traces: 0).
- false_sharing_lines_per_mib = false_sharing_lines_peak / (live requested MiB at
  the first row where that peak is reached); 0 when the peak is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit

import allocators
from allocators.log import AllocLog
from labcore.hashtable import EMPTY, delete, find
from labcore.jitcache import holds_kernels
from labcore.kernels import njit_without_refcounts
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk
from workloads.trace import MAX_THREADS, OP_ACCESS, OP_ALLOC, OP_FREE, Trace

holds_kernels(__file__)

LINE_SHIFT = 6

#: (name, unit, one-line definition) of every metric this module computes.
DOCS = (
    ("shared_ops_per_kop", "per 1000 rows",
     "1000 x (sum of the counters the allocator declares in `shared_counters`) / trace rows (NaN: none declared)"),
    ("remote_free_rate", "ratio",
     "FREE rows by a thread other than the object's allocating (ALLOC) thread / FREE rows"),
    ("false_sharing_lines_peak", "lines",
     "max over rows of the 64 B lines holding live blocks ([addr, addr+granted)) of two or more owner threads"),
    ("false_sharing_lines_per_mib", "lines/MiB",
     "false_sharing_lines_peak / live requested MiB at the first row where that peak is reached"),
)

# Slots of the pass's `out` array (its running state between chunks, and its results).
O_FREES, O_REMOTE_FREES, O_SHARED_PEAK, O_LIVE_AT_PEAK, O_SHARED, O_LIVE_REQUESTED = range(6)
N_OUT = 6


@njit_without_refcounts
def _add(keys, values, key, delta):
    """values[key] += delta; an entry that drops to 0 is deleted. Returns the new value."""
    mask = keys.shape[0] - 1
    slot = find(keys, key, mask)
    if keys[slot] == EMPTY:
        keys[slot] = key
        values[slot] = 0
    value = values[slot] + delta
    values[slot] = value
    if value == 0:
        delete(keys, values, slot, mask)
    return value


@njit(cache=True, inline="always")
def _change_line(pair_keys, pair_counts, line_keys, line_owners, line, owner, delta):
    """A block of `owner` starts (+1) or stops (-1) covering `line`; returns the change in shared lines."""
    count = _add(pair_keys, pair_counts, line * MAX_THREADS + owner, delta)
    if delta > 0 and count == 1:
        if _add(line_keys, line_owners, line, 1) == 2:
            return 1
    elif delta < 0 and count == 0:
        if _add(line_keys, line_owners, line, -1) == 1:
            return -1
    return 0


@njit(cache=True, inline="always")
def _change_block(pair_keys, pair_counts, line_keys, line_owners, address, granted, owner, delta):
    """A block appears (+1) or disappears (-1): update its first and last line; returns the change in shared lines."""
    first = address >> LINE_SHIFT
    last = (address + granted - 1) >> LINE_SHIFT
    change = _change_line(pair_keys, pair_counts, line_keys, line_owners, first, owner, delta)
    if last != first:
        change += _change_line(pair_keys, pair_counts, line_keys, line_owners, last, owner, delta)
    return change


@njit_without_refcounts
def _scalability_pass(
    op, obj, size, thread, addr, granted, track_lines,
    owner, object_addr, object_granted, object_requested,
    pair_keys, pair_counts, line_keys, line_owners, out,
):
    """Remote frees; and, when `track_lines`, the peak of lines shared by two or more owners (state in `out`)."""
    shared = out[O_SHARED]
    peak = out[O_SHARED_PEAK]
    live_requested = out[O_LIVE_REQUESTED]
    for row in range(op.shape[0]):
        code = op[row]
        if code == OP_ACCESS:
            continue
        ident = obj[row]
        if code == OP_ALLOC:
            owner[ident] = thread[row]
        elif code == OP_FREE:
            out[O_FREES] += 1
            if thread[row] != owner[ident]:
                out[O_REMOTE_FREES] += 1
        if not track_lines:
            continue
        who = owner[ident]
        if code != OP_ALLOC:  # FREE or REALLOC: the object's current block goes away
            shared += _change_block(
                pair_keys, pair_counts, line_keys, line_owners, object_addr[ident], object_granted[ident], who, -1
            )
            live_requested -= object_requested[ident]
        if code != OP_FREE:  # ALLOC or REALLOC: its new block appears
            object_addr[ident] = addr[row]
            object_granted[ident] = granted[row]
            object_requested[ident] = size[row]
            live_requested += size[row]
            shared += _change_block(pair_keys, pair_counts, line_keys, line_owners, addr[row], granted[row], who, 1)
        if shared > peak:
            peak = shared
            out[O_LIVE_AT_PEAK] = live_requested
    out[O_SHARED_PEAK] = peak
    out[O_SHARED] = shared
    out[O_LIVE_REQUESTED] = live_requested


def shared_counter_names(log: AllocLog, counters_info: Any = None) -> tuple[str, ...] | None:
    """The counters an allocator declares as shared-structure operations, or None when it declares none.

    `counters_info` may be None (look the allocator up in the registry by `log.allocator` and read its
    class attribute `shared_counters`), a mapping with key "shared_counters", an object (class or instance)
    with that attribute, or the sequence of names itself.  Names missing from `log.counters` raise ValueError.
    """
    names: Any = None
    if counters_info is None:
        try:
            names = getattr(allocators.get(log.allocator), "shared_counters", None)
        except allocators.BadParameter:
            names = None
    elif isinstance(counters_info, Mapping):
        names = counters_info.get("shared_counters")
    elif isinstance(counters_info, Sequence) and not isinstance(counters_info, str):
        names = counters_info
    else:
        names = getattr(counters_info, "shared_counters", None)
    if names is None:
        return None
    names = tuple(names)
    unknown = [name for name in names if name not in log.counters]
    if unknown:
        raise ValueError(
            f"{log.allocator}: shared_counters {unknown} are not among its counters ({', '.join(log.counters)})"
        )
    return names


def _table_size(entries: int) -> int:
    """A power of two at least 4x the entries (load factor <= 1/4 keeps probe runs short)."""
    return 1 << max(6, (4 * entries).bit_length())


class ScalabilityAccumulator:
    """The scalability pass over a trace's chunks in order (`update`), then its figures (`result`)."""

    def __init__(self, facts: TraceFacts) -> None:
        n_slots = max(facts.peak_live_objects, 1)
        self.n_rows = facts.rows
        self.track_lines = facts.rows > 0 and facts.n_threads > 1
        size = _table_size(2 * facts.peak_live_objects) if self.track_lines else 1
        self.owner = np.zeros(n_slots, np.int32)
        self.object_addr = np.zeros(n_slots, np.int64)
        self.object_granted = np.zeros(n_slots, np.int64)
        self.object_requested = np.zeros(n_slots, np.int64)
        self.pair_keys = np.full(size, EMPTY, np.int64)
        self.pair_counts = np.zeros(size, np.int64)
        self.line_keys = np.full(size, EMPTY, np.int64)
        self.line_owners = np.zeros(size, np.int64)
        self.out = np.zeros(N_OUT, np.int64)

    def update(self, chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> None:
        if len(chunk):
            _scalability_pass(
                chunk.op, chunk.slots, chunk.size, chunk.thread, addr, granted, self.track_lines,
                self.owner, self.object_addr, self.object_granted, self.object_requested,
                self.pair_keys, self.pair_counts, self.line_keys, self.line_owners, self.out,
            )

    def result(self, log: AllocLog, counters_info: Any = None) -> dict[str, float | int]:
        n_rows, out = self.n_rows, self.out
        names = shared_counter_names(log, counters_info)
        if names is None:
            shared_ops = math.nan
        else:
            shared_ops = 1000.0 * sum(int(log.counters[name]) for name in names) / n_rows if n_rows else 0.0
        frees, peak = int(out[O_FREES]), int(out[O_SHARED_PEAK])
        live_mib = int(out[O_LIVE_AT_PEAK]) / float(1 << 20)
        return {
            "shared_ops_per_kop": shared_ops,
            "remote_free_rate": int(out[O_REMOTE_FREES]) / frees if frees else 0.0,
            "false_sharing_lines_peak": peak,
            "false_sharing_lines_per_mib": peak / live_mib if peak and live_mib > 0 else 0.0,
        }


def compute(trace: Trace, log: AllocLog, counters_info: Any = None) -> dict[str, float | int]:
    """Every scalability metric of one replay."""
    accumulator = ScalabilityAccumulator(trace.facts())
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    return accumulator.result(log, counters_info)
