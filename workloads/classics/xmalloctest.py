"""xmalloc-test: Lever and Boreham's producer-consumer test (mimalloc-bench `xmalloc-test -w P -t 5 -s 64`), as a trace.

What the original is.  The multi-threaded malloc test of Lever and Boreham
("malloc() Performance in a Multithreaded Linux Environment", USENIX 2000),
in the SuperMalloc version mimalloc-bench runs.  P producer threads each
allocate a batch record (a next pointer and 4096 object pointers, 32776 B),
fill it with 4096 objects of 64 B (`-s 64`; `-s -1` picks each size from a
list of 17, 8..2048 B), writing the first min(size, 128) bytes of each, and
push the batch on a locked LIFO stack that holds at most 100 batches (a
producer waits while it is full).  P consumer threads pop batches and free
their objects and the record.  So every object is freed by a thread other
than the one that allocated it.  At the end the main thread frees whatever
is still on the stack.  The metric is frees per second over 5 seconds.

What it stresses.  Remote frees only: allocation and free never meet on one
thread, so every object crosses threads (thread caches fill on one side and
drain on the other), in batches of thousands.

How the trace reproduces it.  Producers are threads 0..P-1, consumers
P..2P-1, the main thread 2P.  Each runs as a step machine (a producer step:
the batch record, or one object and its write; a consumer step: one FREE),
interleaved at random among the threads that can run (a producer with a full
batch waits while the stack holds `queue` batches, a consumer without a
batch while it is empty).  The length is the trace's row budget; the drain
then frees, as the original's end does, the stack and the producers' batches
on the main thread and each consumer's batch on that consumer.

What it leaves out.  Time (5 seconds, the threads' speeds: here a random
interleaving at the same rate); the per-thread counters of the original
(`counters`, cache-line aligned) are not heap objects in the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import flag, key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_THREADS

holds_kernels(__file__)

#: The sizes of `-s -1` (`size=0`).
SIZE_LIST = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
#: A batch record: the next pointer and the object pointers.
WORD = 8
#: The original writes at most this many bytes of each object.
WRITTEN = 128
#: Own register: batches on the stack.
STACKED = steps.OWN
#: Per-thread state (`state[thread, k]`): the batch held (EMPTY: none), objects allocated (producer) or freed
#: (consumer) of it.
S_BATCH, S_DONE = range(2)
#: Constant parameters (`par`).
P_WORKERS, P_SIZE, P_BATCH, P_QUEUE, P_TOUCH = range(5)


@dataclass(frozen=True)
class XmallocKeys:
    threads: int = key(4, 1, (MAX_THREADS - 1) // 2, "producer threads, and as many consumer threads (P)")
    size: int = key(64, 0, 1 << 20, "object size (0: each drawn from the 17 sizes 8..2048 B of -s -1)")
    batch: int = key(4096, 1, 1 << 16, "objects per batch")
    queue: int = key(100, 1, 1 << 16, "batches the stack holds at most")
    touch: bool = flag(True, "each object's first min(size, 128) bytes are written (an ACCESS row)")

    def check(self) -> None:
        if (self.queue + 2 * self.threads) * (self.batch + 1) > 1 << 24:
            raise ValueError("key 'batch': batch x (queue + 2 x threads) must be at most 2^24 objects")


@njit(cache=True)
def _cells(par, record):
    """The first holding cell of batch record `record` (the record itself; its objects follow)."""
    return record * (par[P_BATCH] + 1)


@njit(cache=True)
def _producer(reg, u, out, par, t, state, stack, spare, sizes, hold_obj, hold_thread):
    """A producer's step: a new batch record, an object (and its write) or the push; False if it does not fit."""
    main = 2 * par[P_WORKERS]  # holds what producers make: the main thread frees what is left at the end
    record = state[t, S_BATCH]
    if record == steps.EMPTY:  # a new batch record: malloc(sizeof(struct batch))
        record = spare[spare[-1] - 1]
        if steps.put(reg, out, hold_obj, hold_thread, _cells(par, record), WORD * (par[P_BATCH] + 1), t, main,
                     -1) == steps.EMPTY:
            return False
        spare[-1] -= 1
        state[t, S_BATCH], state[t, S_DONE] = record, 0
        return True
    done = state[t, S_DONE]
    if done == par[P_BATCH]:  # full: push it (the caller only runs a producer while the stack has room)
        stack[reg[STACKED]] = record
        reg[STACKED] += 1
        state[t, S_BATCH] = steps.EMPTY
        return True
    size = par[P_SIZE] if par[P_SIZE] > 0 else sizes[steps.below(reg, u, sizes.shape[0])]
    write = min(size, WRITTEN) if par[P_TOUCH] != 0 else -1
    if steps.put(reg, out, hold_obj, hold_thread, _cells(par, record) + 1 + done, size, t, main,
                 write) == steps.EMPTY:
        return False
    state[t, S_DONE] = done + 1
    return True


@njit(cache=True)
def _consumer(reg, out, par, t, state, stack, spare, hold_obj, hold_thread):
    """A consumer's step: a pop, or one FREE (the objects, then the record); False if it does not fit."""
    record = state[t, S_BATCH]
    if record == steps.EMPTY:  # pop the newest batch (the caller only runs a consumer while the stack has one)
        reg[STACKED] -= 1
        record = stack[reg[STACKED]]
        steps.hand_over(hold_thread, _cells(par, record), par[P_BATCH] + 1, t)
        state[t, S_BATCH], state[t, S_DONE] = record, 0
        return True
    done = state[t, S_DONE]
    first = _cells(par, record)
    cell = first + 1 + done if done < par[P_BATCH] else first
    if not steps.drop(reg, out, hold_obj, cell, t, False):
        return False
    if cell == first:
        spare[spare[-1]] = record
        spare[-1] += 1
        state[t, S_BATCH] = steps.EMPTY
    else:
        state[t, S_DONE] = done + 1
    return True


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, state, stack, spare, sizes, runnable, hold_obj, hold_thread):
    workers = par[P_WORKERS]
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        count = 0
        for t in range(2 * workers):
            if t < workers:
                waiting = state[t, S_BATCH] != steps.EMPTY and state[t, S_DONE] == par[P_BATCH] and (
                    reg[STACKED] == par[P_QUEUE])
            else:
                waiting = state[t, S_BATCH] == steps.EMPTY and reg[STACKED] == 0
            if not waiting:
                runnable[count] = t
                count += 1
        t = runnable[steps.below(reg, u, count)]
        if t < workers:
            done = _producer(reg, u, out, par, t, state, stack, spare, sizes, hold_obj, hold_thread)
        else:
            done = _consumer(reg, out, par, t, state, stack, spare, hold_obj, hold_thread)
        if not done:
            return steps.DRAIN


def build(keys: XmallocKeys, n_ops: int) -> Machine:
    workers = keys.threads
    records = keys.queue + 2 * workers  # on the stack, filling (one per producer), emptying (one per consumer)
    par = np.array([workers, keys.size, keys.batch, keys.queue, int(keys.touch)], np.int64)
    state = np.full((2 * workers, 2), steps.EMPTY, np.int64)
    stack = np.zeros(keys.queue, np.int64)
    spare = np.zeros(records + 1, np.int64)  # unused records, their count last
    spare[:records] = np.arange(records)[::-1]
    spare[-1] = records
    sizes = np.array(SIZE_LIST, np.int64)
    runnable = np.zeros(2 * workers, np.int64)
    return machine(_kernel, n_ops, 1, records * (keys.batch + 1), par, state, stack, spare, sizes, runnable)


XMALLOC_TEST = Classic("xmalloc-test", XmallocKeys, build)
