"""rptest: Mattias Jansson's rpmalloc benchmark (mimalloc-bench `rptest P 0 1 2 500 1000 100 8 16000`), as a trace.

What the original is.  The multi-threaded benchmark of rpmalloc-benchmark,
changed for mimalloc-bench to touch the memory it gets.  Each of P threads
has an array of 1000 pointer slots and runs 500 loops per iteration; a loop
frees about 0.8 x (0.3..1.0) x 100 slots (stepping through the array by a
prime, `free_scatter`), frees the batches other threads handed it, then
allocates about (0.3..1.0) x 100 blocks into slots stepped by another prime
(`alloc_scatter`; a slot still in use is freed first), writing the first
bytes, one byte in every 4 KiB page and the last byte.  Every `cross_rate`-th
loop (2) it also allocates a batch of as many blocks (a 32 B header, an
array of pointers, the blocks) and hands it to the next thread round-robin
through a lock-free list; the receiver frees it at its next loop.  Once one
thread has finished its loops no more batches are sent; at the end of an
iteration the threads meet, free everything, and start the next (2
iterations).  Sizes are 8..16000 B with a linear drop-off (`size mode 1`).
The metric is memory operations per CPU second.

What it stresses.  Remote frees in batches (a whole batch allocated by one
thread and freed by another), a working set replaced in scattered order,
touched pages of mostly mid-size blocks.

How the trace reproduces it.  Each thread is a step machine running the
loop above one operation at a time, the threads interleaved at random; a
thread that ends its loops waits (no steps) until all have, then every
thread frees its batches and slots and starts the next iteration.  Sizes:
min + floor(round(range x U3) x |1 - U1 - U2|) for `size_mode=linear` (the
original's table formula with fresh uniforms), U3 x range for `even`,
x (1 - U1)(1 - U2) for `exp`.  A touch is one ACCESS row of the whole block
(a trace's ACCESS names a prefix, so the page-by-page writes become one).
Each thread's pointer array (8 x slots B) is an ALLOC row at its start.
Iterations repeat until the trace's row budget; the drain frees the slots
and undelivered batches (by their receivers).

What it leaves out.  The per-loop counts come from uniform draws, not from
the original's fixed tables (same ranges); the original's alignments (0, 8,
16 for blocks under 4 KiB) are not a trace field; the main thread's timing
and the two whole runs are not modelled.  A sender finding every batch
record in use (more than 4 per thread in flight) skips that hand-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import choice, flag, key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_THREADS

holds_kernels(__file__)

SIZE_MODES = ("even", "linear", "exp")
#: The batch header (`thread_pointers`: pointers, count, next, allocated).
HEADER_BYTES = 32
#: Own registers: threads waiting at the end of an iteration; whether one thread has finished its loops.
WAITING, SOMEONE_DONE = steps.OWN, steps.OWN + 1
#: A thread's states.
START, LOOP, FREE_SLOTS, FREE_BATCHES, ALLOC_SLOTS, SEND, WAIT, RELEASE = range(8)
#: Per-thread counters (`count[thread, k]`).
#: C_BATCH: the blocks of this loop's batch (its allocation count); C_TAKEN: the received batches being freed;
#: C_SENDING: the batch being filled; C_TARGET: the thread the last batch went to.
C_LOOP, C_LEFT, C_ALLOCS, C_FREE_AT, C_ALLOC_AT, C_CURSOR, C_BATCH, C_TAKEN, C_SENDING, C_TARGET = range(10)
#: A batch record's fields (`batch[b, k]`): next record in a list, blocks, the blocks allocated so far.
B_NEXT, B_COUNT, B_FILLED = range(3)
#: Constant parameters (`par`).
P_THREADS, P_SLOTS, P_OPS, P_LOOPS, P_CROSS, P_MIN, P_RANGE, P_MODE, P_TOUCH, P_ALLOC_STEP, P_FREE_STEP = range(11)
#: Batch records per thread.
BATCHES_PER_THREAD = 4


@dataclass(frozen=True)
class RptestKeys:
    threads: int = key(4, 1, MAX_THREADS, "threads (P)")
    cross_rate: int = key(2, 0, 1 << 20, "every cross_rate-th loop hands a batch to another thread (0: never)")
    loops: int = key(500, 1, 1 << 24, "loops per iteration")
    slots: int = key(1000, 2, 1 << 20, "pointer slots per thread (the original's allocs)")
    ops: int = key(100, 2, 1 << 16, "a loop allocates (0.3..1.0) x ops blocks and frees 0.8 x (0.3..1.0) x ops")
    min_size: int = key(8, 1, 1 << 30, "smallest block")
    max_size: int = key(16000, 1, 1 << 30, "largest block")
    size_mode: str = choice("linear", SIZE_MODES, "size distribution over min..max: even, linear or exp drop-off")
    touch: bool = flag(True, "every block is written when allocated (an ACCESS row)")

    def check(self) -> None:
        if self.max_size < self.min_size:
            raise ValueError(f"key 'max_size': must be >= min_size ({self.min_size}), got {self.max_size}")
        if self.threads * (self.slots + BATCHES_PER_THREAD * (self.ops + 2)) > 1 << 24:
            raise ValueError("key 'slots': threads x (slots + 4 x (ops + 2)) must be at most 2^24 cells")


def scatter_steps(slots: int) -> tuple[int, int]:
    """The original's two strides through the slot array: the first prime from 7 up that does not divide
    `slots`, and the next prime after it that does not either."""
    found: list[int] = []
    number = 7
    while len(found) < 2:
        if all(number % divisor for divisor in range(2, int(number ** 0.5) + 1)) and slots % number:
            found.append(number)
        number += 1
    return found[0], found[1]


@njit(cache=True)
def _size(reg, u, par):
    span = par[P_RANGE]
    even = float(round(span * steps.uniform(reg, u)))
    mode = par[P_MODE]
    if mode == 1:
        even *= abs(1.0 - steps.uniform(reg, u) - steps.uniform(reg, u))
    elif mode == 2:
        even *= (1.0 - steps.uniform(reg, u)) * (1.0 - steps.uniform(reg, u))
    return par[P_MIN] + int(even)


@njit(cache=True)
def _new_block(reg, u, out, par, hold_obj, hold_thread, cell, thread):
    """Free the block still in `cell`, if any, and allocate a new one into it (+ its touch): False if that does
    not fit."""
    if not steps.drop(reg, out, hold_obj, cell, thread, False):
        return False
    write = 0 if par[P_TOUCH] != 0 else -1
    return steps.put(reg, out, hold_obj, hold_thread, cell, _size(reg, u, par), thread, thread,
                     write) != steps.EMPTY


@njit(cache=True)
def _batch_cell(par, record):
    """The first holding cell of batch record `record` (its header; then its array, then its blocks)."""
    return par[P_THREADS] * (par[P_SLOTS] + 1) + record * (par[P_OPS] + 2)


@njit(cache=True)
def _start_loop(reg, u, par, t, count, inbox):
    """A loop's counts are drawn and the batches handed to `t` so far are taken."""
    ops = par[P_OPS]
    count[t, C_LEFT] = int(0.8 * ops * (30 + steps.below(reg, u, 70)) / 100.0)
    count[t, C_ALLOCS] = count[t, C_BATCH] = int(ops * (30 + steps.below(reg, u, 70)) / 100.0)
    count[t, C_TAKEN] = inbox[t]
    inbox[t] = steps.EMPTY


@njit(cache=True)
def _end_iteration(reg, par, state, count, inbox):
    """Every thread has done its loops: each frees the batches it got and its slots (RELEASE)."""
    for other in range(par[P_THREADS]):
        state[other] = RELEASE
        count[other, C_CURSOR] = 0
        count[other, C_TAKEN] = inbox[other]
        inbox[other] = steps.EMPTY
    reg[WAITING] = 0


@njit(cache=True)
def _free_received(reg, out, par, t, count, batch, spare, hold_obj):
    """One FREE of the batches `t` received: their blocks, then the array and the header; False if it does not
    fit."""
    record = count[t, C_TAKEN]
    first = _batch_cell(par, record)
    cell = first + 2 + count[t, C_CURSOR]
    if count[t, C_CURSOR] == batch[record, B_COUNT]:
        cell = first + 1 if hold_obj[first + 1] != steps.EMPTY else first
    if not steps.drop(reg, out, hold_obj, cell, t, False):
        return False
    if cell == first:  # the batch is gone: its record is free again
        count[t, C_TAKEN] = batch[record, B_NEXT]
        count[t, C_CURSOR] = 0
        batch[record, B_NEXT] = spare[0]
        spare[0] = record
    elif cell > first + 1:
        count[t, C_CURSOR] += 1
    return True


@njit(cache=True)
def _send(reg, u, out, par, t, state, count, batch, inbox, hold_obj, hold_thread):
    """One step of filling the batch `t` sends (the header, the array, a block), or its hand-over."""
    record = count[t, C_SENDING]
    first = _batch_cell(par, record)
    filled = batch[record, B_FILLED]
    if filled < 0:  # the header (32 B), then the pointer array
        cell = first if filled == -2 else first + 1
        nbytes = HEADER_BYTES if filled == -2 else 8 * max(batch[record, B_COUNT], 1)
        if steps.put(reg, out, hold_obj, hold_thread, cell, nbytes, t, t, -1) == steps.EMPTY:
            return False
    elif filled < batch[record, B_COUNT]:
        if not _new_block(reg, u, out, par, hold_obj, hold_thread, first + 2 + filled, t):
            return False
    else:  # hand it to the next thread, round-robin, never itself
        target = (count[t, C_TARGET] + 1) % par[P_THREADS]
        if target == t:
            target = (target + 1) % par[P_THREADS]
        count[t, C_TARGET] = target
        steps.hand_over(hold_thread, first, 2 + batch[record, B_COUNT], target)
        batch[record, B_NEXT] = inbox[target]
        inbox[target] = record
        state[t] = LOOP
        return True
    batch[record, B_FILLED] = filled + 1
    return True


@njit(cache=True)
def _end_loop(reg, par, t, state, count, batch, spare):
    """After a loop's allocations: every `cross_rate`-th loop starts a batch for another thread (SEND)."""
    state[t] = LOOP
    count[t, C_LOOP] += 1
    cross = par[P_CROSS]
    if (cross > 0 and par[P_THREADS] > 1 and (count[t, C_LOOP] - 1) % cross == 0 and reg[SOMEONE_DONE] == 0
            and spare[0] != steps.EMPTY):
        record = spare[0]
        spare[0] = batch[record, B_NEXT]
        batch[record, B_COUNT] = count[t, C_BATCH]
        batch[record, B_FILLED] = -2  # the header and the array come first
        count[t, C_SENDING] = record
        state[t] = SEND


@njit(cache=True)
def _step(reg, u, out, par, t, state, count, batch, inbox, spare, hold_obj, hold_thread):
    """One step of thread `t` (thread id t): False if it does not fit the budget."""
    slots = par[P_SLOTS]
    own = t * (slots + 1)
    phase = state[t]
    if phase == START:  # the pointer array
        if steps.put(reg, out, hold_obj, hold_thread, own + slots, 8 * slots, t, t, -1) == steps.EMPTY:
            return False
        state[t] = LOOP
    elif phase == LOOP:
        if count[t, C_LOOP] < par[P_LOOPS]:
            _start_loop(reg, u, par, t, count, inbox)
            state[t] = FREE_SLOTS
            return True
        state[t] = WAIT
        reg[WAITING] += 1
        reg[SOMEONE_DONE] = 1
        if reg[WAITING] == par[P_THREADS]:
            _end_iteration(reg, par, state, count, inbox)
    elif phase == FREE_SLOTS:
        if count[t, C_LEFT] == 0:
            state[t] = FREE_BATCHES
            return True
        if not steps.drop(reg, out, hold_obj, own + count[t, C_FREE_AT], t, False):
            return False
        count[t, C_FREE_AT] = (count[t, C_FREE_AT] + par[P_FREE_STEP]) % slots
        count[t, C_LEFT] -= 1
    elif phase == FREE_BATCHES or phase == RELEASE:
        if count[t, C_TAKEN] != steps.EMPTY:
            return _free_received(reg, out, par, t, count, batch, spare, hold_obj)
        if phase == FREE_BATCHES:
            state[t] = ALLOC_SLOTS
        elif count[t, C_CURSOR] < slots:  # the end of an iteration: every slot is freed
            if not steps.drop(reg, out, hold_obj, own + count[t, C_CURSOR], t, False):
                return False
            count[t, C_CURSOR] += 1
        else:
            count[t, C_LOOP] = count[t, C_CURSOR] = 0
            reg[SOMEONE_DONE] = 0
            state[t] = LOOP
    elif phase == ALLOC_SLOTS:
        if count[t, C_ALLOCS] == 0:
            _end_loop(reg, par, t, state, count, batch, spare)
            return True
        if not _new_block(reg, u, out, par, hold_obj, hold_thread, own + count[t, C_ALLOC_AT], t):
            return False
        count[t, C_ALLOC_AT] = (count[t, C_ALLOC_AT] + par[P_ALLOC_STEP]) % slots
        count[t, C_ALLOCS] -= 1
    elif phase == SEND:
        return _send(reg, u, out, par, t, state, count, batch, inbox, hold_obj, hold_thread)
    return True


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, state, count, batch, inbox, spare, hold_obj, hold_thread):
    threads = par[P_THREADS]
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        t = steps.below(reg, u, threads)
        if state[t] != WAIT and not _step(reg, u, out, par, t, state, count, batch, inbox, spare, hold_obj,
                                          hold_thread):
            return steps.DRAIN


def build(keys: RptestKeys, n_ops: int) -> Machine:
    threads = keys.threads
    alloc_step, free_step = scatter_steps(keys.slots)
    records = BATCHES_PER_THREAD * threads
    par = np.array([threads, keys.slots, keys.ops, keys.loops, keys.cross_rate, keys.min_size,
                    keys.max_size - keys.min_size, SIZE_MODES.index(keys.size_mode), int(keys.touch), alloc_step,
                    free_step], np.int64)
    state = np.full(threads, START, np.int64)
    count = np.zeros((threads, 10), np.int64)
    count[:, C_TAKEN] = steps.EMPTY
    batch = np.zeros((records, 3), np.int64)
    batch[:, B_NEXT] = np.arange(1, records + 1)
    batch[-1, B_NEXT] = steps.EMPTY
    inbox = np.full(threads, steps.EMPTY, np.int64)
    spare = np.zeros(1, np.int64)  # the first unused batch record (a list through B_NEXT)
    cells = threads * (keys.slots + 1) + records * (keys.ops + 2)
    return machine(_kernel, n_ops, 2, cells, par, state, count, batch, inbox, spare)


RPTEST = Classic("rptest", RptestKeys, build)
