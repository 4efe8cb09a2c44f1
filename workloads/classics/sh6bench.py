"""sh6bench: MicroQuill's SmartHeap benchmark (mimalloc-bench `sh6bench 2P`, `ulCallCount` 10000), as a trace.

What the original is.  SmartHeap's portable benchmark (MicroQuill, 2000; the
source is not redistributable, mimalloc-bench builds a patched copy).  Each
of its threads (2P in mimalloc-bench) owns a ring of `ulCallCount / threads`
pointers and allocates, over and over, the sizes of a fixed sweep: for
size_base = 1, 2, 4, 7, 11, 17, ... (x 3/2 + 1) below 1000, the sizes
size_base, size_base / 2, ... down to 1, each 50 times (250 times below
100 B).  Each pointer goes into the next slot of the ring; when the ring is
full, a window of a fifth of it is kept alive and the rest is freed: the
part below the window in allocation order (FIFO), the part above it in
reverse order (LIFO).  The next pass allocates around the window, and the
window moves on by a fifth each pass.  Threads share nothing.

What it stresses.  Many small sizes in a deterministic sweep, long runs of
same-size allocations, bulk frees half in allocation order and half in
reverse, with a fifth of the blocks outliving each pass (fragmentation
between passes).

How the trace reproduces it.  Each thread is a step machine (one ALLOC or
one FREE per step), the threads interleaved at random; the ring and the
window are as above.  Each thread's pointer array (8 B per ring slot) is an
ALLOC row at its start.  The sweep repeats
until the trace's row budget; the drain frees the rings.

What it leaves out.  The original also calls SmartHeap-only APIs (off in
its malloc-only build); it writes nothing into its blocks, and neither does
the trace.  One quirk is not reproduced: when the window wraps to the start
of the ring, the original's skip test (made after each store) misses it and
overwrites, i.e. leaks, the window's first pass of pointers; here the window
is skipped wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_THREADS

holds_kernels(__file__)

#: Per-thread counters (`count[thread, k]`): the sweep (size_base, size, allocations left of this size), the ring
#: (next slot, the kept window), the phase and the free cursor.
C_BASE, C_SIZE, C_LEFT, C_AT, C_KEEP_FROM, C_KEEP_TO, C_PHASE, C_CURSOR = range(8)
#: Phases: starting (the pointer array), allocating, freeing below the window (FIFO), above it (LIFO).
STARTING, ALLOCATING, FREEING_BELOW, FREEING_ABOVE = range(4)
#: Constant parameters (`par`).
P_THREADS, P_RING, P_MAX_BLOCK = range(3)


@dataclass(frozen=True)
class Sh6benchKeys:
    threads: int = key(8, 1, MAX_THREADS, "threads (mimalloc-bench runs 2P)")
    calls: int = key(10_000, 5, 1 << 24, "ulCallCount: each thread's ring holds calls / threads pointers")
    max_block: int = key(1000, 2, 1 << 20, "the sweep's size_base stays below this (uMaxBlockSize)")

    def check(self) -> None:
        if self.calls // self.threads < 5:
            raise ValueError(f"key 'calls': at least 5 ring slots per thread (calls / threads), got "
                             f"{self.calls // self.threads}")


@njit(cache=True)
def _repeats(size):
    """Allocations of one size in the sweep: 10, x5 below 1000 B, x5 again below 100 B (1 from 10000 B)."""
    count = 1
    if size < 10_000:
        count = 10
    if size < 1000:
        count *= 5
    if size < 100:
        count *= 5
    return count


@njit(cache=True)
def _next_size(c, par):
    """Move the sweep on once the current size is done: halve, else the next size_base (wrapping to 1)."""
    size = c[C_SIZE] // 2
    if size == 0:
        base = c[C_BASE] * 3 // 2 + 1
        if base >= par[P_MAX_BLOCK]:
            base = 1
        c[C_BASE] = base
        size = base
    c[C_SIZE] = size
    c[C_LEFT] = _repeats(size)


@njit(cache=True)
def _step(reg, out, par, t, c, hold_obj, hold_thread):
    """One ALLOC or FREE of thread `t` (its counters `c`): False if it does not fit the budget."""
    ring = par[P_RING]
    first = t * (ring + 1)
    phase = c[C_PHASE]
    if phase == STARTING:
        if steps.put(reg, out, hold_obj, hold_thread, first + ring, 8 * ring, t, t, -1) == steps.EMPTY:
            return False
        c[C_BASE] = c[C_SIZE] = 1
        c[C_LEFT] = _repeats(1)
        c[C_KEEP_FROM] = c[C_KEEP_TO] = ring  # no window before the first pass
        c[C_PHASE] = ALLOCATING
    elif phase == ALLOCATING:
        at = c[C_AT]
        if at == c[C_KEEP_FROM]:
            at = c[C_KEEP_TO]
        if at >= ring:  # the ring is full: the window moves on a fifth, the rest is freed
            keep_from = c[C_KEEP_TO] if c[C_KEEP_TO] < ring else 0
            c[C_KEEP_FROM], c[C_KEEP_TO] = keep_from, min(keep_from + ring // 5, ring)
            c[C_AT], c[C_CURSOR], c[C_PHASE] = 0, 0, FREEING_BELOW
            return True
        if steps.put(reg, out, hold_obj, hold_thread, first + at, c[C_SIZE], t, t, -1) == steps.EMPTY:
            return False
        c[C_AT] = at + 1
        c[C_LEFT] -= 1
        if c[C_LEFT] == 0:
            _next_size(c, par)
    else:
        below_window = phase == FREEING_BELOW
        slot = c[C_CURSOR] if below_window else ring - 1 - c[C_CURSOR]
        if (below_window and slot >= c[C_KEEP_FROM]) or (not below_window and slot < c[C_KEEP_TO]):
            c[C_CURSOR] = 0
            c[C_PHASE] = FREEING_ABOVE if below_window else ALLOCATING
            return True
        if not steps.drop(reg, out, hold_obj, first + slot, t, False):
            return False
        c[C_CURSOR] += 1
    return True


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, count, hold_obj, hold_thread):
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        t = steps.below(reg, u, par[P_THREADS])
        if not _step(reg, out, par, t, count[t], hold_obj, hold_thread):
            return steps.DRAIN


def build(keys: Sh6benchKeys, n_ops: int) -> Machine:
    ring = keys.calls // keys.threads
    par = np.array([keys.threads, ring, keys.max_block], np.int64)
    count = np.zeros((keys.threads, 8), np.int64)
    return machine(_kernel, n_ops, 0, keys.threads * (ring + 1), par, count)


SH6BENCH = Classic("sh6bench", Sh6benchKeys, build)
