"""pool: fixed-size blocks carved from one region, with a LIFO free list.

Design.  Every block has the same size, `block_size` (rounded up to 16 B), so
block i lives at `i * block_size` and needs no header.  Blocks are carved
lazily from the front of the region by a bump index; a freed block goes on a
LIFO free list and is the first one handed out again (hot reuse).

- allocate: pop the free list if it is not empty, else carve the next block;
  O(1).  A request larger than `block_size` cannot be served (ST_TOO_LARGE).
- deallocate: push the block's index; O(1).
- free(): empty the free list and the bump index; the region stays taken.

State: `words` (counters, then block_size, n_blocks, carved, high_water and
the free-list length) and `free_blocks`, a stack of free block addresses with
one slot per block (allocators.shared.freestack; addresses, not indices, to
spare a division).
A real pool threads its free list through the free blocks themselves, so the
modelled metadata is just the list head and the bump index (16 B).
The footprint is the high-water mark of carved blocks.

A pool is only useful when the block size fits the workload: when replaying a
trace without an explicit `block_size`, the block size is the trace's largest
request (`params_for_trace`), so internal fragmentation shows how far the
workload is from fixed-size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, ST_TOO_LARGE, BadParameter
from allocators.hardening import HARDENING_OFF, HARDENING_PRESETS, harden, with_hardening
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import align_up
from allocators.shared.freestack import new_items, pop, push
from labcore.jitcache import holds_kernels
from workloads.facts import TraceFacts, as_facts
from workloads.trace import Trace

holds_kernels(__file__)

ALIGNMENT = 16
POOL_METADATA_BYTES = 16

C_ALLOCS, C_FREES, C_CARVED_TOTAL = 0, 1, 2
S_BLOCK_SIZE, S_N_BLOCKS, S_CARVED, S_HIGH_WATER, S_FREE_COUNT = 3, 4, 5, 6, 7


@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, free_blocks = state
    block_size = words[S_BLOCK_SIZE]
    if size > block_size:
        return ST_TOO_LARGE, 0
    words[C_ALLOCS] += 1
    if words[S_FREE_COUNT] > 0:
        return pop(words, S_FREE_COUNT, free_blocks), block_size
    index = words[S_CARVED]
    if index >= words[S_N_BLOCKS]:
        words[C_ALLOCS] -= 1
        return ST_OUT_OF_MEMORY, 0
    words[S_CARVED] = index + 1
    words[C_CARVED_TOTAL] += 1
    if index + 1 > words[S_HIGH_WATER]:
        words[S_HIGH_WATER] = index + 1
    return index * block_size, block_size


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, free_blocks = state
    push(words, S_FREE_COUNT, free_blocks, addr)
    words[C_FREES] += 1
    return ST_OK, words[S_BLOCK_SIZE]


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[0]
    return words[S_HIGH_WATER] * words[S_BLOCK_SIZE], POOL_METADATA_BYTES


@njit(cache=True)
def reset_state(state):
    words = state[0]
    words[S_FREE_COUNT] = 0
    words[S_CARVED] = 0


@register
class Pool(Allocator):
    name = "pool"
    summary = "fixed-size blocks carved from one region, LIFO free list; O(1) both ways"
    general_purpose = False  # one block size: every request up to it takes a whole block
    alignment = ALIGNMENT
    defaults = with_hardening({"block_size": None})
    presets = dict(HARDENING_PRESETS)
    configure_instance = harden
    hardening_params = HARDENING_OFF
    counter_names = ("allocs", "frees", "blocks_carved")
    shared_counters = ("allocs", "frees")  # one free list for all threads

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state)

    #: Block size when neither the user nor a trace sets one.
    FALLBACK_BLOCK_SIZE = 64

    @classmethod
    def params_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("block_size") is None:
            return {"block_size": max(ALIGNMENT, align_up(as_facts(trace).max_request, ALIGNMENT))}
        return {}

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """Room for every object live at the peak in a block of the largest request, twice over."""
        block_size = params.get("block_size") or cls.FALLBACK_BLOCK_SIZE
        need = 2 * max(as_facts(trace).peak_live_objects, 1) * align_up(int(block_size), ALIGNMENT)
        return max(super().capacity_for_trace(trace, params), 1 << max(20, (need - 1).bit_length()))

    def check_params(self) -> None:
        block_size = self.params["block_size"]
        if block_size is None:
            block_size = self.FALLBACK_BLOCK_SIZE
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise BadParameter(f"pool: block_size must be a positive integer, got {block_size!r}")
        block_size = int(align_up(int(block_size), ALIGNMENT))
        if block_size > self.capacity:
            raise BadParameter(f"pool: block_size {block_size} is larger than the capacity {self.capacity}")
        self.params["block_size"] = block_size

    def make_state(self) -> tuple:
        block_size = self.params["block_size"]
        n_blocks = self.capacity // block_size
        words = np.zeros(8, np.int64)
        words[S_BLOCK_SIZE] = block_size
        words[S_N_BLOCKS] = n_blocks
        return (words, new_items(n_blocks))
