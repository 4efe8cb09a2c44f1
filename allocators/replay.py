"""The replay driver: one jitted loop that runs a trace, or any run of its rows, through one allocator.

Every allocator module provides four small kernels over its state (a tuple of
numpy arrays), named once in its class as `kernels = Kernels(...)`:

    alloc_block(state, size, thread) -> (addr, granted)      addr < 0 is a status
    free_block(state, addr, thread)  -> (status, granted)    status < 0 is an error
    heap_stats(state)                -> (footprint_bytes, metadata_bytes)
    reset_state(state)                                       free(): release every block
    realloc_in_place(state, addr, granted, new_size, thread) -> (addr, granted)
                                        addr < 0: cannot resize in place (optional);
                                        addr <= ST_CORRUPTED: a check fired (allocators.detections)

The driver does everything else once for all allocators: the object-id to
address map (`objects`, one 32 B record per dense object id: address, granted,
requested), ACCESS and REALLOC rows, live-byte accounting, exact peaks, and the
timeline sampled every `sample_every` rows.  The caller allocates (and
touches) every array before the clock starts.

Resumable.  Everything the loop carries from one row to the next lives in the
`totals` array (slots `T_*` below): the next row's number, live bytes, peaks,
the timeline's sample count and countdown, the first failure.  A call replays
the rows of the arrays it is given (a whole trace, or a chunk of it: views of
the trace's columns, or the chunks of a trace streamed from a generator or a
file) and stores them back, so the next call continues where this one
stopped.  Replaying a trace in any chunking gives the same log, peaks,
counters and timeline as one call, bit for bit (tests/test_replay_chunks.py).
Output rows (`addr_out`, `granted_out`) are indexed like the input chunk;
timeline and failure rows carry the trace's row numbers.

Failures.  By default the first failing row (a kernel status < 0: out of
memory, an unsupported order) stops the replay: `T_FAILED_ROW` and `T_STATUS`
say where and why, and `T_ROW` stays at that row.  With `T_KEEP_GOING` set the
driver records the row instead, (row, status) in `failures` (the first
`failures.shape[0] // 2` of them; `T_FAILURES` counts all), and goes on with
the next row: an allocation that failed leaves the object as it was (after a
failed ALLOC it is not live: address -1, and a later REALLOC of it allocates
afresh, a FREE of it does nothing); a free_block that failed (a FREE, or the
release of a moved REALLOC's old block) ends the object's life in the driver's
accounting all the same, and the block stays allocated in the allocator.
Fault injection builds on this.

Prefetch.  The loop knows the rows ahead.  At row r it prefetches the object
record that row r + PREFETCH_ROWS will read (allocators.shared.prefetch: a
hint to the CPU, which changes no value and no figure): with 100 000 objects
live the records take 3.2 MB, each lookup of a random one missed the caches,
and the replay of such a trace took up to twice as long without it (measured on
`lognormal:live=100000`, 2M rows: go 170 -> 89 ms, tcmalloc 172 -> 116 ms, in
one process under load; with little load the gain is smaller).  A table of
at most 1 MiB (PREFETCH_MIN_WORDS: 32 768 objects) stays in the caches, and
there the prefetch only cost time (pool and linear on the 1M-row benchmark
trace, 10 000 live: about 8 % slower), so the loop does not prefetch then.  Prefetching
the allocators' own lookups of a FREE ahead (page map, span record, bitmap
word) was tried and measured slower (the extra reads of rows ahead cost more
than the misses they hid), so the loop prefetches the records only.

`build_replay_kernel` makes one copy of the driver per allocator whose globals
point at that allocator's kernels (`labcore.kernels.rebind`), so numba inlines
them into the loop (no call through a function pointer) and caches the
compiled loop on disk beside the allocator's module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import NamedTuple

from numba import njit

from allocators.detections import ST_CORRUPTED
from allocators.shared.prefetch import prefetch
from labcore.jitcache import holds_kernels
from labcore.kernels import njit_without_refcounts, rebind
from workloads.trace import OP_ACCESS, OP_FREE, OP_REALLOC

holds_kernels(__file__)

#: Columns of AllocLog.timeline.
TIMELINE_COLUMNS = ("row", "footprint", "live_requested", "live_granted", "metadata_bytes")

#: Per-object record the driver keeps in one flat array: address, granted, requested and padding, so one
#: object's record is 32 B in one cache line, and the index is a shift.
OBJECT_COLUMNS = 4
O_ADDR, O_GRANTED, O_REQUESTED = 0, 1, 2

#: Slots of the `totals` array: the replay's running state between calls, and its results.
T_ROW = 0  # number of the next trace row (rows replayed so far)
T_LIVE_REQUESTED = 1
T_LIVE_GRANTED = 2
T_PEAK_FOOTPRINT = 3
T_PEAK_LIVE_REQUESTED = 4
T_PEAK_LIVE_GRANTED = 5
T_PEAK_METADATA = 6
T_SAMPLES = 7  # timeline rows written
T_UNTIL_SAMPLE = 8  # rows until the next timeline sample (0: sample the next row)
T_FAILED_ROW = 9  # first failing row, -1 if none
T_STATUS = 10  # its kernel status
T_FAILURES = 11  # failing rows (keep-going mode)
T_KEEP_GOING = 12  # 1: record a failing row and go on
T_FINAL_FOOTPRINT = 13  # after the last row replayed
T_FINAL_METADATA = 14
N_TOTALS = 15

#: How many rows ahead the loop prefetches a row's object record (allocators.shared.prefetch).
PREFETCH_ROWS = 16
#: ... when the records take more than this many words (1 MiB: 32 768 objects); a smaller table stays cached.
PREFETCH_MIN_WORDS = 1 << 17


class Kernels(NamedTuple):
    """An allocator's kernels (see the module docstring); the class names them once: `kernels = Kernels(...)`."""

    alloc_block: Callable
    free_block: Callable
    heap_stats: Callable
    reset_state: Callable
    realloc_in_place: Callable | None = None


@njit(cache=True, inline="always")
def resize_within_block(state, addr, granted, new_size, thread):
    """Default realloc_in_place: keep the block when it is already large enough."""
    if new_size <= granted:
        return addr, granted
    return -1, 0


@njit(cache=True, inline="always")
def within_half_of_block(granted, new_size):
    """In place while granted / 2 <= new <= granted: tcmalloc's do_realloc, mimalloc's `_mi_heap_realloc_zero`."""
    return new_size <= granted and new_size >= granted >> 1


def _replay_template(
    state, op, obj, size, thread, objects, sample_every, addr_out, granted_out, timeline, totals, failures,
):
    first_row = totals[T_ROW]
    live_requested = totals[T_LIVE_REQUESTED]
    live_granted = totals[T_LIVE_GRANTED]
    peak_footprint = totals[T_PEAK_FOOTPRINT]
    peak_requested = totals[T_PEAK_LIVE_REQUESTED]
    peak_granted = totals[T_PEAK_LIVE_GRANTED]
    peak_metadata = totals[T_PEAK_METADATA]
    samples = totals[T_SAMPLES]
    until_sample = totals[T_UNTIL_SAMPLE]
    keep_going = totals[T_KEEP_GOING] != 0
    n_failures = totals[T_FAILURES]
    failure_slots = failures.shape[0] >> 1
    n_rows = op.shape[0]
    done = n_rows
    ahead = n_rows - PREFETCH_ROWS if objects.shape[0] > PREFETCH_MIN_WORDS else 0
    for row in range(n_rows):
        if row < ahead:  # the record a later row reads: in the cache by then (a hint only)
            prefetch(objects, obj[row + PREFETCH_ROWS] << 2)
        code = op[row]
        slot = obj[row] << 2  # OBJECT_COLUMNS int64 words per object
        if code == OP_ACCESS:
            addr_out[row] = objects[slot]
            granted_out[row] = 0
        else:
            # alloc_block and free_block appear once each in the loop: every
            # extra inlined copy costs registers in the hot path.
            addr = -1
            granted = 0
            release = -1
            status = 0
            if code == OP_FREE:
                release = objects[slot]
            elif code == OP_REALLOC:
                old = objects[slot]
                if old >= 0:  # (not live only after a failed ALLOC in keep-going mode: then a plain ALLOC)
                    addr, granted = realloc_in_place(  # noqa: F821
                        state, old, objects[slot + 1], size[row], thread[row]
                    )
                    if addr <= ST_CORRUPTED:  # realloc_in_place found misuse (a detection), not just no room
                        status = addr
                    elif addr < 0:
                        release = old
            if code != OP_FREE and addr < 0 and status == 0:
                addr, granted = alloc_block(state, size[row], thread[row])  # noqa: F821
                if addr < 0:
                    status = addr
            if release >= 0 and status == 0:
                status, _ = free_block(state, release, thread[row])  # noqa: F821
            if status < 0:  # one exit for every failure keeps the loop's registers free
                if totals[T_FAILED_ROW] < 0:
                    totals[T_FAILED_ROW] = first_row + row
                    totals[T_STATUS] = status
                if not keep_going:
                    done = row
                    break
                if n_failures < failure_slots:
                    failures[2 * n_failures] = first_row + row
                    failures[2 * n_failures + 1] = status
                n_failures += 1
            if status < 0 and code != OP_FREE and addr < 0:  # the allocation failed: the object stays as it was
                granted_out[row] = 0
                if code == OP_REALLOC:
                    addr_out[row] = objects[slot]
                else:
                    addr_out[row] = -1
                    objects[slot] = -1
                    objects[slot + 1] = 0
                    objects[slot + 2] = 0
            else:  # (a failed free_block ends the object's life all the same: its block stays allocated)
                live_requested -= objects[slot + 2]
                live_granted -= objects[slot + 1]
                if code == OP_FREE:
                    objects[slot] = -1
                    objects[slot + 1] = 0
                    objects[slot + 2] = 0
                    addr_out[row] = release
                    granted_out[row] = 0
                else:
                    live_requested += size[row]
                    live_granted += granted
                    objects[slot] = addr
                    objects[slot + 1] = granted
                    objects[slot + 2] = size[row]
                    addr_out[row] = addr
                    granted_out[row] = granted
        footprint, metadata = heap_stats(state)  # noqa: F821
        if footprint > peak_footprint:
            peak_footprint = footprint
        if metadata > peak_metadata:
            peak_metadata = metadata
        if live_requested > peak_requested:
            peak_requested = live_requested
        if live_granted > peak_granted:
            peak_granted = live_granted
        if until_sample == 0:
            until_sample = sample_every
            timeline[samples, 0] = first_row + row
            timeline[samples, 1] = footprint
            timeline[samples, 2] = live_requested
            timeline[samples, 3] = live_granted
            timeline[samples, 4] = metadata
            samples += 1
        until_sample -= 1
    footprint, metadata = heap_stats(state)  # noqa: F821
    totals[T_ROW] = first_row + done
    totals[T_LIVE_REQUESTED] = live_requested
    totals[T_LIVE_GRANTED] = live_granted
    totals[T_PEAK_FOOTPRINT] = peak_footprint
    totals[T_PEAK_LIVE_REQUESTED] = peak_requested
    totals[T_PEAK_LIVE_GRANTED] = peak_granted
    totals[T_PEAK_METADATA] = peak_metadata
    totals[T_SAMPLES] = samples
    totals[T_UNTIL_SAMPLE] = until_sample
    totals[T_FAILURES] = n_failures
    totals[T_FINAL_FOOTPRINT] = footprint
    totals[T_FINAL_METADATA] = metadata
    return done


def _kernel_identity(kernels: Kernels) -> str:
    """A short digest of where the kernels come from: two classes with the same kernels share a replay loop."""
    names = []
    for kernel in kernels:
        function = getattr(getattr(kernel, "__func__", kernel), "py_func", kernel)
        names.append(f"{function.__module__}.{function.__qualname__}")
    return hashlib.sha1("|".join(names).encode()).hexdigest()[:10]


def build_replay_kernel(name: str, module_file: str, kernels: Kernels) -> Callable:
    """Return a jitted copy of the replay driver bound to one allocator's kernels.

    The copy is attributed to the allocator's own source file (numba caches it there) and named after the
    allocator and its kernels, so that copies bound to different kernels never share a cache entry.
    """
    realloc = kernels.realloc_in_place if kernels.realloc_in_place is not None else resize_within_block
    bound = kernels._replace(realloc_in_place=realloc)
    kernel_name = f"replay_{re.sub(r'[^0-9A-Za-z_]', '_', name)}_{_kernel_identity(bound)}"
    function = rebind(
        _replay_template, kernel_name,
        {"alloc_block": bound.alloc_block, "free_block": bound.free_block, "heap_stats": bound.heap_stats,
         "realloc_in_place": bound.realloc_in_place},
        module_file,
    )
    return njit_without_refcounts(function)
