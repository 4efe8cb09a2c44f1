"""alloc-test: OLogN's allocator tester (mimalloc-bench `alloc-test 1` and `alloc-test P`), as a trace.

What the original is.  The random-position, random-size test of OLogN
Technologies' allocator tester (2018).  Each of P independent threads owns
2^18 / P slots, fills about half of them at set-up (one random bit per
slot), then runs 100 M iterations: pick a slot with a Pareto 80/20
distribution applied 6 times (`Pareto_80_20_6`: 26 % of the picks go to the
smallest group of slots, 0.0064 % of them, and so on down the binomial
levels), and if it holds a block read all of it and free it, else allocate
one and write all of it (`memset`).  Sizes (`calcSizeWithStatsAdjustment`,
maxItemSizeExp 10): a size class k = 2 + j with probability 2^-(j+1) (the
trailing zeros of a uniform number), then a size uniform in (2^k, 2^(k+1)]:
5-8 B half the time, 9-16 B a quarter, ... up to 1 KiB.  The threads share
nothing, so no block is freed by another thread.

What it stresses.  A hot, skewed working set (a few slots turn over all the
time, most rarely), small size classes weighted to the smallest, the cost of
touching every byte; thread scaling without any sharing.

How the trace reproduces it.  Each thread's slot table (16 B per slot, the
original's `TestBin`) is an ALLOC row first; the set-up fills every slot
with probability 1/2 (ALLOC + ACCESS of the whole block, `touch=true`),
then the main loop picks slots as above: an occupied slot gives ACCESS +
FREE, an empty one ALLOC + ACCESS.  The threads are interleaved at random,
one operation at a time, set-up included.  The level boundaries are the
original's (`items_per_thread x` the level's share, cut to an integer), but
every level keeps at least one slot, so small tables (the default) still
have the hot slot.  The loop runs until the trace's row budget; the drain
frees what every thread's slots hold.

What it leaves out.  The default table is 2^15 slots in all (the original:
2^18, half of them filled at set-up, which alone would take 260k rows); the
100 M iterations become the trace's length.  The original seeds every thread
with the same seed (all threads make the same draws); here each thread draws
its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import flag, key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_THREADS

holds_kernels(__file__)

#: Bytes of a slot of the original's table (`TestBin`: a pointer and two 32-bit counts).
SLOT_BYTES = 16
#: The Pareto 80/20 rule, applied this many times (6 levels plus the rest).
LEVELS = 6
#: Per-thread counters: set-up cursor (== items when the main loop runs).
C_SETUP = 0
#: Constant parameters (`par`).
P_THREADS, P_ITEMS, P_CLASSES, P_TOUCH = range(4)


@dataclass(frozen=True)
class AllocTestKeys:
    threads: int = key(4, 1, MAX_THREADS, "independent threads (P)")
    items: int = key(1 << 15, 1, 1 << 24, "slots in all, items / threads per thread (the original: 2^18)")
    max_exp: int = key(10, 3, 20, "sizes up to 2^max_exp bytes (the original's maxItemSizeExp)")
    touch: bool = flag(True, "blocks are written whole when allocated and read whole before they are freed")

    def check(self) -> None:
        if self.items // self.threads < LEVELS + 1:
            raise ValueError(f"key 'items': at least {LEVELS + 1} slots per thread (items / threads), got "
                             f"{self.items // self.threads}")


def pareto_levels(items: int) -> tuple[np.ndarray, np.ndarray]:
    """The 80/20-six-times slot choice over `items` slots: (cumulative pick probability of levels 0..6, first slot
    of levels 0..7).  Level L holds the share C(6,L) 0.8^L 0.2^(6-L) of the slots and gets C(6,L) 0.2^L 0.8^(6-L)
    of the picks (level 0: the fewest slots, the most picks); every level keeps at least one slot."""
    picks = np.array([comb(LEVELS, level) * 0.2 ** level * 0.8 ** (LEVELS - level) for level in range(LEVELS + 1)])
    shares = picks[::-1]
    sizes = [max(1, int(items * share)) for share in shares[:LEVELS]]
    starts = np.zeros(LEVELS + 2, np.int64)
    starts[1:LEVELS + 1] = np.cumsum(sizes)
    starts[LEVELS + 1] = items
    if starts[LEVELS] >= items:  # tiny tables: the last level keeps one slot too
        starts[1:LEVELS + 1] = np.arange(1, LEVELS + 1)
    return np.cumsum(picks), starts


@njit(cache=True)
def _pick(reg, u, cumulative, starts):
    """A slot index by the 80/20 levels (two uniforms: the level, the slot within it)."""
    draw = steps.uniform(reg, u)
    level = 0
    while level < cumulative.shape[0] - 1 and draw >= cumulative[level]:
        level += 1
    return starts[level] + steps.below(reg, u, starts[level + 1] - starts[level])


@njit(cache=True)
def _size(reg, u, par):
    """The original's size rule: class k = 2 + trailing zeros of a uniform 1..2^(max_exp-3), then (2^k, 2^(k+1)]."""
    base = 1 + steps.below(reg, u, par[P_CLASSES])
    zeros = 0
    while base % 2 == 0:
        base //= 2
        zeros += 1
    k = zeros + 2
    return (1 << k) + 1 + steps.below(reg, u, 1 << k)


@njit(cache=True)
def _fill(reg, u, out, par, hold_obj, hold_thread, cell, t):
    """A new block into `cell`, written whole (touch): False if that does not fit."""
    write = 0 if par[P_TOUCH] != 0 else -1
    return steps.put(reg, out, hold_obj, hold_thread, cell, _size(reg, u, par), t, t, write) != steps.EMPTY


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, setup, cumulative, starts, hold_obj, hold_thread):
    threads, items = par[P_THREADS], par[P_ITEMS]
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        t = steps.below(reg, u, threads)
        first = t * (items + 1)
        at = setup[t]
        if at < 0:  # the thread's slot table
            if steps.put(reg, out, hold_obj, hold_thread, first + items, SLOT_BYTES * items, t, t,
                         -1) == steps.EMPTY:
                return steps.DRAIN
            setup[t] = 0
        elif at < items:  # set-up: each slot filled with probability 1/2
            if steps.uniform(reg, u) < 0.5 and not _fill(reg, u, out, par, hold_obj, hold_thread, first + at, t):
                return steps.DRAIN
            setup[t] = at + 1
        else:  # the main loop: an occupied slot is read and freed, an empty one filled
            cell = first + _pick(reg, u, cumulative, starts)
            if hold_obj[cell] == steps.EMPTY:
                done = _fill(reg, u, out, par, hold_obj, hold_thread, cell, t)
            else:
                done = steps.drop(reg, out, hold_obj, cell, t, par[P_TOUCH] != 0)
            if not done:
                return steps.DRAIN


def build(keys: AllocTestKeys, n_ops: int) -> Machine:
    items = keys.items // keys.threads
    cumulative, starts = pareto_levels(items)
    par = np.array([keys.threads, items, 1 << (keys.max_exp - 3), int(keys.touch)], np.int64)
    setup = np.full(keys.threads, -1, np.int64)
    return machine(_kernel, n_ops, 0, keys.threads * (items + 1), par, setup, cumulative, starts)


ALLOC_TEST = Classic("alloc-test", AllocTestKeys, build)
