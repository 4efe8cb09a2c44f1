"""glibc-simple: glibc's bench-malloc-simple (mimalloc-bench `glibc-simple`, with its FIFO/LIFO change), as a trace.

What the original is.  glibc's benchtest for the tcache and fastbins
(benchtests/bench-malloc-simple.c), as mimalloc-bench modified it (Daan
Leijen: "add lifo/fifo free order").  For each size of 16, 32 and 64 B
(`bench(size)`, `bench(2 x size)`, `bench(4 x size)`) it allocates an array
of 1600 pointers and runs 16 tests: batches of n = 25, 100, 400 and 1600
mallocs, each block written byte by byte, then the first half of the batch
freed in allocation order (FIFO) and the second half in reverse (LIFO),
2000000 / n times per test; once as a warm-up and once timed on the main
thread (main arena), once in a second thread (a thread arena), once more on
the main thread (main arena with SINGLE_THREAD_P false).  One thread runs at
a time.

What it stresses.  The allocator's fastest path: same-size malloc/free
pairs in batches that fit a thread cache (25), overflow it (100, 400) or go
far past it (1600), with a free order half FIFO, half LIFO; the same on a
second thread's heap.

How the trace reproduces it.  The program's order exactly, one row at a
time: for each size and each of the four scenarios (warm-up, main, second
thread, main again), for n in 25, 100, 400, 1600: `max(1, allocs / n)`
batches of n ALLOC rows (each followed by an ACCESS of the whole block,
`touch=true`), then the FIFO half and the LIFO half as FREE rows.  The main
thread is thread 0, the second thread thread 1; the pointer array is an
ALLOC row of 12800 B at the start of each size.  With the default
`allocs=1200` one pass over the program takes 187206 rows; the program
repeats until the trace's row budget.

What it leaves out.  `allocs` stands for the original's 2000000 allocations
per test (so batches of 1600 run once, the others 1200 / n times); arenas and
SINGLE_THREAD_P are the allocator's business: the trace only says which
thread runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import flag, key
from workloads.classics.machine import Classic, Machine, machine

holds_kernels(__file__)

#: The batch sizes of the four tests of each scenario.
BATCHES = (25, 100, 400, 1600)
#: Scenarios per size: warm-up (main), main arena (main), a thread arena (the second thread), main again.
SCENARIO_THREADS = (0, 0, 1, 0)
#: Sizes per pass: size, 2 x size, 4 x size.
SIZE_STEPS = 3
POINTER = 8
#: Own registers: where the program is (size step, scenario, test, batch, the block within the batch, the part).
SIZE_AT, SCENARIO_AT, TEST_AT, BATCH_AT, BLOCK_AT, PART = range(steps.OWN, steps.OWN + 6)
#: Parts of a size and of a batch: the pointer array, the allocations, the FIFO half, the LIFO half, the array's
#: free.
ARRAY, ALLOCATING, FIFO, LIFO, ARRAY_FREE = range(5)
#: Constant parameters (`par`).
P_SIZE, P_ALLOCS, P_TOUCH = range(3)


@dataclass(frozen=True)
class GlibcSimpleKeys:
    size: int = key(16, 1, 1 << 18, "the first block size; then 2 x size and 4 x size")
    allocs: int = key(1200, 1, 1 << 30, "allocations per test: batches of n run max(1, allocs / n) times "
                      "(the original: 2000000)")
    touch: bool = flag(True, "every block is written whole after its malloc (an ACCESS row)")


@njit(cache=True)
def _next_batch(reg, par, batches):
    """After a batch: the next batch of the test, else the next test, scenario, size (the array's free first)."""
    reg[BLOCK_AT] = 0
    reg[PART] = ALLOCATING
    n = batches[reg[TEST_AT]]
    reg[BATCH_AT] += 1
    if reg[BATCH_AT] < max(1, par[P_ALLOCS] // n):
        return
    reg[BATCH_AT] = 0
    reg[TEST_AT] += 1
    if reg[TEST_AT] < batches.shape[0]:
        return
    reg[TEST_AT] = 0
    reg[SCENARIO_AT] += 1
    if reg[SCENARIO_AT] == len(SCENARIO_THREADS):  # every scenario of this size done
        reg[SCENARIO_AT] = 0
        reg[PART] = ARRAY_FREE


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, batches, threads, hold_obj, hold_thread):
    array_cell = hold_obj.shape[0] - 1
    write = 0 if par[P_TOUCH] != 0 else -1
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        part = reg[PART]
        thread = threads[reg[SCENARIO_AT]]
        n = batches[reg[TEST_AT]]
        block = reg[BLOCK_AT]
        if part == ARRAY:
            if steps.put(reg, out, hold_obj, hold_thread, array_cell, POINTER * batches[-1], 0, 0,
                         -1) == steps.EMPTY:
                return steps.DRAIN
            reg[PART] = ALLOCATING
        elif part == ARRAY_FREE:
            if not steps.drop(reg, out, hold_obj, array_cell, 0, False):
                return steps.DRAIN
            reg[SIZE_AT] = (reg[SIZE_AT] + 1) % SIZE_STEPS
            reg[PART] = ARRAY
        elif part == ALLOCATING:
            size = par[P_SIZE] << reg[SIZE_AT]
            if steps.put(reg, out, hold_obj, hold_thread, block, size, thread, thread, write) == steps.EMPTY:
                return steps.DRAIN
            reg[BLOCK_AT] = block + 1
            if block + 1 == n:
                reg[PART], reg[BLOCK_AT] = FIFO, 0
        else:  # the first half in allocation order, the second in reverse
            half = n // 2
            if not steps.drop(reg, out, hold_obj, block if part == FIFO else n - 1 - block, thread, False):
                return steps.DRAIN
            reg[BLOCK_AT] = block + 1
            if part == FIFO and block + 1 == half:
                reg[PART], reg[BLOCK_AT] = LIFO, 0
            elif part == LIFO and block + 1 == n - half:
                _next_batch(reg, par, batches)


def build(keys: GlibcSimpleKeys, n_ops: int) -> Machine:
    par = np.array([keys.size, keys.allocs, int(keys.touch)], np.int64)
    batches = np.array(BATCHES, np.int64)
    threads = np.array(SCENARIO_THREADS, np.int64)
    built = machine(_kernel, n_ops, 6, BATCHES[-1] + 1, par, batches, threads)
    built.reg[PART] = ARRAY
    return built


GLIBC_SIMPLE = Classic("glibc-simple", GlibcSimpleKeys, build)
