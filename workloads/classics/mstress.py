"""mstress: Daan Leijen's multi-threaded stress test (mimalloc-bench `mstress P 50 25`), as a trace.

What the original is.  A stress test from the mimalloc repository: rounds of
P threads, each thread t doing `allocs = 100 x scale x (t % 8 + 1)` steps
(some threads do up to 8 times more) and retaining `allocs / 2` objects.  A
step allocates an object (or, when it draws so or has nothing left to
allocate, a retained one) and writes all of it; with probability 67 % it
frees a random earlier object of its array (reading all of it first); with
probability 26 % it swaps a random pointer of its array with a random slot
of a global 1000-slot `transfer` array (an atomic exchange), so an object
allocated by one thread is freed by another, maybe of a later round.  A
thread ends by freeing its retained objects and what is left of its array.
After a round the main thread frees each transfer slot with probability
51 % (half the transfers survive into the next round), and the next round
starts P new threads.  Sizes: 1 << (0..4) words (8-128 B), retained 1 << (0..6)
words (8-512 B); with probability 2 % an object is large: x10000 (2 % of
those), x1000 (11 %) or x100.  (`chance(p)` in the source is true with
probability (p + 1) / 100, hence 2 %, 11 %, 26 %, 51 %, 67 %.)

What it stresses.  Remote frees through a shared exchange (any thread may
free any thread's object, in any later round), threads that come and go
with objects outliving them, a skewed mix of tiny and occasional huge
objects.

How the trace reproduces it.  Each thread is a step machine; the threads of
a round run interleaved at random, one sub-step at a time (allocate and
write: ALLOC + ACCESS of the whole object; maybe free: ACCESS + FREE; maybe
swap: no row).  A thread's pointer array (the original's `data`, first
`realloc(NULL, 800000)`) and its retained array are ALLOC rows too, at its
start (the original makes the pointer array at its first allocation), freed
at its end.  Round r's thread t is thread 1 + t + P x (r mod G), G =
(MAX_THREADS - 1) // P; thread 0 is the main thread, which frees the
surviving transfers.
Rounds repeat until the trace's row budget; the drain then frees what every
thread and the transfer array hold.

What it leaves out.  The original's SCALE 50 and 25 rounds become `scale=2`
and as many rounds as the trace's length holds (16 rounds at P = 4 in 200k
rows).  Objects above `max_size` (1 MiB, the catalog's cap; the original's
giant retained objects reach 5 MiB) are cut to it.  `scale` stops at 125,
where the pointer array never outgrows its first 100000 slots (so there is
no REALLOC row).  The test's corruption checks are reads (ACCESS rows).
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

MAIN = 0
WORD = 8
#: The original's pointer array grows 100000 pointers at a time.
DATA_CHUNK = 100_000
#: Own registers: the round, threads of the round still running, the main thread's transfer cursor.
ROUND, RUNNING, TRANSFER_AT = steps.OWN, steps.OWN + 1, steps.OWN + 2
#: A thread's states (`state`), in order.
START, START_DATA, ALLOCATE, MAYBE_FREE, MAYBE_SWAP, FREE_RETAINED, FREE_DATA, FREE_ARRAYS, FINISHED = range(9)
#: Per-thread counters (`count[thread, k]`).
C_ALLOCS, C_RETAIN, C_TOP, C_RETAINED_TOP, C_CURSOR = range(5)
#: Constant parameters (`par`).
P_THREADS, P_TRANSFERS, P_LARGE, P_MAX_SIZE, P_TOUCH, P_GENERATIONS = range(6)


@dataclass(frozen=True)
class MstressKeys:
    threads: int = key(4, 1, (MAX_THREADS - 1) // 2, "threads per round (P)")
    scale: int = key(2, 1, 125, "load per thread: thread t does 100 x scale x (t % 8 + 1) steps (the original: 50)")
    transfers: int = key(1000, 1, 1 << 20, "slots of the global transfer array")
    large: bool = flag(True, "2 % of the objects are large (x100, x1000, x10000)")
    max_size: int = key(1 << 20, 8, 1 << 40, "larger objects are cut to this size")
    touch: bool = flag(True, "every object is written whole when allocated and read whole before it is freed")


def _allocs(thread_index: int, scale: int) -> int:
    return 100 * scale * (thread_index % 8 + 1)


@njit(cache=True)
def _object_size(reg, u, par, words):
    if par[P_LARGE] != 0 and steps.chance(reg, u, 0.02):
        if steps.chance(reg, u, 0.02):
            words *= 10_000
        elif steps.chance(reg, u, 0.11):
            words *= 1000
        else:
            words *= 100
    if words == 40:  # the original steps over the size pthreads grows stacks by
        words = 41
    return min(words * WORD, par[P_MAX_SIZE])


@njit(cache=True)
def _new_object(reg, u, out, par, hold_obj, hold_thread, cell, words, thread):
    """ALLOC (+ the write) into `cell`: False if that does not fit."""
    size = _object_size(reg, u, par, words)
    write = 0 if par[P_TOUCH] != 0 else -1
    return steps.put(reg, out, hold_obj, hold_thread, cell, size, thread, thread, write) != steps.EMPTY


@njit(cache=True)
def _thread_step(reg, u, out, par, t, layout, limits, state, count, hold_obj, hold_thread):
    """One step of round thread `t`: False if it does not fit the budget."""
    thread = 1 + t + par[P_THREADS] * (reg[ROUND] % par[P_GENERATIONS])
    data, retained, arrays = layout[t, 0], layout[t, 1], layout[t, 2]
    top, retained_top = count[t, C_TOP], count[t, C_RETAINED_TOP]
    read = par[P_TOUCH] != 0
    phase = state[t]
    if phase == START or phase == START_DATA:  # malloc(retain x 8) for the retained objects; the pointer array,
        nbytes = max(limits[t, 1], 1) * WORD if phase == START else DATA_CHUNK * WORD  # realloc(NULL, 100000
        cell = arrays + 1 if phase == START else arrays  # pointers) at the first allocation (here: at the start)
        if steps.put(reg, out, hold_obj, hold_thread, cell, nbytes, thread, thread, -1) == steps.EMPTY:
            return False
        count[t, C_ALLOCS], count[t, C_RETAIN] = limits[t, 0], limits[t, 1]
        count[t, C_TOP] = count[t, C_RETAINED_TOP] = 0
        state[t] = phase + 1
    elif phase == ALLOCATE:
        if count[t, C_RETAIN] == 0 and count[t, C_ALLOCS] == 0:
            state[t], count[t, C_CURSOR] = FREE_RETAINED, 0
            return True
        if count[t, C_RETAIN] == 0 or (steps.chance(reg, u, 0.51) and count[t, C_ALLOCS] > 0):
            if not _new_object(reg, u, out, par, hold_obj, hold_thread, data + top, 1 << steps.below(reg, u, 5),
                               thread):
                return False
            count[t, C_TOP] += 1
            count[t, C_ALLOCS] -= 1
        else:
            if not _new_object(reg, u, out, par, hold_obj, hold_thread, retained + retained_top,
                               1 << steps.below(reg, u, 7), thread):
                return False
            count[t, C_RETAINED_TOP] += 1
            count[t, C_RETAIN] -= 1
        state[t] = MAYBE_FREE
    elif phase == MAYBE_FREE:
        if steps.chance(reg, u, 0.67) and top > 0:
            if not steps.drop(reg, out, hold_obj, data + steps.below(reg, u, top), thread, read):
                return False
        state[t] = MAYBE_SWAP
    elif phase == MAYBE_SWAP:
        if steps.chance(reg, u, 0.26) and top > 0:  # exchange a pointer with the transfer array (no row)
            mine = data + steps.below(reg, u, top)
            theirs = layout[par[P_THREADS], 0] + steps.below(reg, u, par[P_TRANSFERS])
            hold_obj[mine], hold_obj[theirs] = hold_obj[theirs], hold_obj[mine]
            hold_thread[mine], hold_thread[theirs] = thread, MAIN
        state[t] = ALLOCATE
    elif phase == FREE_RETAINED or phase == FREE_DATA:
        first, end = (retained, retained + retained_top) if phase == FREE_RETAINED else (data, data + top)
        cell = first + count[t, C_CURSOR]
        if cell == end:
            state[t], count[t, C_CURSOR] = phase + 1, 0
            return True
        if not steps.drop(reg, out, hold_obj, cell, thread, read):
            return False
        count[t, C_CURSOR] += 1
    elif phase == FREE_ARRAYS:  # free(retained), free(data)
        cell = arrays + 1 - count[t, C_CURSOR]
        if cell < arrays:
            state[t] = FINISHED
            reg[RUNNING] -= 1
            return True
        if not steps.drop(reg, out, hold_obj, cell, thread, False):
            return False
        count[t, C_CURSOR] += 1
    return True


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, layout, limits, state, count, hold_obj, hold_thread):
    threads = par[P_THREADS]
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        if reg[RUNNING] > 0:
            t = steps.below(reg, u, threads)
            if state[t] != FINISHED and not _thread_step(reg, u, out, par, t, layout, limits, state, count,
                                                         hold_obj, hold_thread):
                return steps.DRAIN
            continue
        # between rounds: the main thread frees about half the transfers, then a new round starts
        if reg[TRANSFER_AT] == par[P_TRANSFERS]:
            reg[ROUND] += 1
            reg[RUNNING] = threads
            reg[TRANSFER_AT] = 0
            for t in range(threads):
                state[t] = START
            continue
        cell = layout[threads, 0] + reg[TRANSFER_AT]
        if steps.chance(reg, u, 0.51) and not steps.drop(reg, out, hold_obj, cell, MAIN, par[P_TOUCH] != 0):
            return steps.DRAIN
        reg[TRANSFER_AT] += 1


def build(keys: MstressKeys, n_ops: int) -> Machine:
    threads = keys.threads
    allocs = np.array([_allocs(t, keys.scale) for t in range(threads)], np.int64)
    limits = np.stack([allocs, allocs // 2], axis=1)
    sizes = allocs + allocs // 2 + 2  # data, retained, the two arrays
    layout = np.zeros((threads + 1, 3), np.int64)  # per thread: data, retained, arrays; the last row: transfers
    starts = np.concatenate(([0], np.cumsum(sizes)))
    layout[:threads, 0] = starts[:-1]
    layout[:threads, 1] = starts[:-1] + allocs
    layout[:threads, 2] = starts[:-1] + allocs + allocs // 2
    layout[threads, 0] = starts[-1]
    cells = int(starts[-1]) + keys.transfers
    par = np.array([threads, keys.transfers, int(keys.large), keys.max_size, int(keys.touch),
                    (MAX_THREADS - 1) // threads], np.int64)
    state = np.full(threads, FINISHED, np.int64)
    count = np.zeros((threads, 5), np.int64)
    built = machine(_kernel, n_ops, 3, cells, par, layout, limits, state, count)
    built.reg[ROUND] = -1  # the first round starts at once
    built.reg[TRANSFER_AT] = keys.transfers
    return built


MSTRESS = Classic("mstress", MstressKeys, build)
