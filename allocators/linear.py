"""linear: the bump allocator.

Design.  The allocator owns one region `[0, capacity)` and one offset, `top`.
An allocation rounds `top` up to the alignment, hands out `[top, top + size)`
and moves `top` past it: one add and one compare, O(1), no per-block
metadata at all.  Blocks are never freed one by one; `free()` moves `top` back
to 0 and the whole region is reused.  The "OS" footprint is the high-water
mark of `top`: a bump allocator keeps what it has touched.

State: one int64 array `words`: the event counters (allocations, frees
ignored during replay, resets) followed by `top`, `high_water` and the capacity.

Replaying a trace with FREE rows treats them as no-ops (counted as
`frees_ignored`): that is how a bump allocator is used (objects die at the
reset) and it shows on any workload how much memory that costs.  The
`deallocate()` method itself raises `UnsupportedOperation`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import align_up
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16

C_ALLOCS, C_FREES_IGNORED, C_RESETS = 0, 1, 2
S_TOP, S_HIGH_WATER, S_CAPACITY = 3, 4, 5


@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    scalars = state[0]
    addr = align_up(scalars[S_TOP], ALIGNMENT)
    granted = align_up(size, ALIGNMENT)
    end = addr + granted
    if end > scalars[S_CAPACITY]:
        return ST_OUT_OF_MEMORY, 0
    scalars[S_TOP] = end
    if end > scalars[S_HIGH_WATER]:
        scalars[S_HIGH_WATER] = end
    scalars[C_ALLOCS] += 1
    return addr, granted


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    state[0][C_FREES_IGNORED] += 1
    return ST_OK, 0


@njit(cache=True, inline="always")
def heap_stats(state):
    return state[0][S_HIGH_WATER], 0


@njit(cache=True)
def reset_state(state):
    words = state[0]
    words[S_TOP] = 0
    words[C_RESETS] += 1


@register
class Linear(Allocator):
    name = "linear"
    summary = "bump pointer over one region; no single frees (replay ignores FREE), free() resets"
    supports_deallocate = False
    reuses_freed_memory = False
    general_purpose = False
    alignment = ALIGNMENT
    counter_names = ("allocs", "frees_ignored", "resets")
    shared_counters = ("allocs",)  # every bump moves the one shared pointer

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state)

    def make_state(self) -> tuple:
        words = np.zeros(6, np.int64)
        words[S_CAPACITY] = self.capacity
        return (words,)
