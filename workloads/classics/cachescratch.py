"""cache-scratch and cache-thrash: Hoard's false-sharing tests (mimalloc-bench `cache-scratch {1,P} 1000 1 2000000 P`,
`cache-thrash {1,P} 1000 1 2000000 P`), as traces.

What the originals are.  Two benchmarks of the Hoard allocator (Berger et
al., ASPLOS 2000).  In cache-thrash each of P threads repeats 1000 times:
allocate a 1-byte object, write it `repetitions / P` times (2000000 / P),
free it.  cache-scratch does the same after a hand-over: the main thread
first allocates one object per thread (so the P objects sit next to each
other, on one or two cache lines) and gives each thread one, which the
thread frees before its loop.  The metric is the run time; the ideal is a
P-fold speed-up from 1 to P threads.

What they stress.  False sharing.  Active (cache-thrash): an allocator that
hands threads' fresh objects out of one cache line makes the threads' writes
fight over the line.  Passive (cache-scratch): an allocator that reuses a
freed block for the thread that freed it puts each thread's new object on
the main thread's line, next to the other threads' objects.

How the traces reproduce them.  The workers are threads 1..P
(cache-scratch; thread 0 is the main thread, which ALLOCs the P objects
first) or 0..P-1 (cache-thrash), interleaved at random one row at a time:
in cache-scratch a worker first FREEs the object it was handed (a remote
free), then loops: ALLOC of `size` bytes, `max(1, repetitions / P)` ACCESS
rows of `size` bytes (the writes), FREE.  The loops run until the trace's
row budget.

What they leave out.  The writes' count (2000000 / P per object in the
original) is scaled down (`repetitions=64`: 16 ACCESS rows per object at P =
4) so a 200k-row trace holds thousands of objects; the originals' 1000
iterations per thread become the trace's length.  The trace has no time:
the false sharing itself is for a metric over the trace (the lab's cache
lines holding live blocks of two or more threads), not a slowdown.
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

MAIN = 0
#: Own register: objects the main thread has handed out (cache-scratch; == threads when the workers run).
HANDED = steps.OWN
#: Constant parameters (`par`).
P_THREADS, P_SIZE, P_WRITES, P_SCRATCH = range(4)


@dataclass(frozen=True)
class CacheKeys:
    threads: int = key(4, 1, MAX_THREADS - 1, "worker threads (P)")
    size: int = key(1, 1, 1 << 20, "object size (the original's objSize)")
    repetitions: int = key(64, 1, 1 << 30, "writes per object, divided among the threads: max(1, repetitions / P)")


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, writes_left, hold_obj, hold_thread):
    threads, size = par[P_THREADS], par[P_SIZE]
    scratch = par[P_SCRATCH] != 0
    first_worker = 1 if scratch else 0
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        if scratch and reg[HANDED] < threads:  # the main thread allocates one object per worker
            worker = reg[HANDED]
            if steps.put(reg, out, hold_obj, hold_thread, threads + worker, size, MAIN, first_worker + worker,
                         -1) == steps.EMPTY:
                return steps.DRAIN
            reg[HANDED] += 1
            continue
        worker = steps.below(reg, u, threads)
        thread = first_worker + worker
        if hold_obj[threads + worker] != steps.EMPTY:  # cache-scratch: first free the object it was given
            done = steps.drop(reg, out, hold_obj, threads + worker, thread, False)
        elif hold_obj[worker] == steps.EMPTY:
            done = steps.put(reg, out, hold_obj, hold_thread, worker, size, thread, thread, -1) != steps.EMPTY
            writes_left[worker] = par[P_WRITES]
        elif writes_left[worker] > 0:
            done = steps.fits(reg, 1, 0)
            if done:
                steps.access(reg, out, hold_obj[worker], size, thread)
                writes_left[worker] -= 1
        else:
            done = steps.drop(reg, out, hold_obj, worker, thread, False)
        if not done:
            return steps.DRAIN


def _builder(scratch: bool):
    def build(keys: CacheKeys, n_ops: int) -> Machine:
        par = np.array([keys.threads, keys.size, max(1, keys.repetitions // keys.threads), int(scratch)], np.int64)
        writes_left = np.zeros(keys.threads, np.int64)
        return machine(_kernel, n_ops, 1, 2 * keys.threads, par, writes_left)
    return build


CACHE_SCRATCH = Classic("cache-scratch", CacheKeys, _builder(True))
CACHE_THRASH = Classic("cache-thrash", CacheKeys, _builder(False))
