"""stack: a bump allocator with a header before each block and LIFO deallocation.

Design.  Like `linear`, the allocator bumps one offset, `top`, through one
region; unlike it, each block is preceded by a 16 B header recording where
`top` stood before the block (16 B keeps user addresses 16-aligned).  Freeing
the most recent block moves `top` back to the header: blocks die in LIFO
order, and memory is reused at once.  Freeing any other block is an error
(UnsupportedOperation: out-of-order deallocation), as in a real stack
allocator.  A REALLOC of the top block grows or shrinks it in place.

- allocate: O(1): header, bump, push the previous newest block on the stack
  of back links.
- deallocate: O(1): compare with the newest block, pop its back link, move
  `top` back.
- free(): `top` back to 0, back links dropped.

State: `words` (counters, then top, high_water, capacity, `newest`, the address
of the newest live block or -1, and the number of back links) and
`older_blocks`, the back links: for each live block, the block that was newest
before it (what the header's link would hold).  Keeping `newest` in `words`
makes the LIFO check one load from a fixed slot.  Metadata bytes = 16 per live
block.  The footprint is the high-water mark of `top`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, ST_OUT_OF_ORDER
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import align_up
from allocators.shared.freestack import new_items, pop, push
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16
HEADER_BYTES = 16

C_ALLOCS, C_FREES, C_OUT_OF_ORDER = 0, 1, 2
S_TOP, S_HIGH_WATER, S_CAPACITY, S_NEWEST, S_OLDER_COUNT = 3, 4, 5, 6, 7


@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, older_blocks = state
    addr = words[S_TOP] + HEADER_BYTES
    granted = align_up(size, ALIGNMENT)
    end = addr + granted
    if end > words[S_CAPACITY]:
        return ST_OUT_OF_MEMORY, 0
    words[S_TOP] = end
    if end > words[S_HIGH_WATER]:
        words[S_HIGH_WATER] = end
    push(words, S_OLDER_COUNT, older_blocks, words[S_NEWEST])
    words[S_NEWEST] = addr
    words[C_ALLOCS] += 1
    return addr, granted


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, older_blocks = state
    if words[S_NEWEST] != addr:
        words[C_OUT_OF_ORDER] += 1
        return ST_OUT_OF_ORDER, 0
    words[S_NEWEST] = pop(words, S_OLDER_COUNT, older_blocks)
    words[S_TOP] = addr - HEADER_BYTES
    words[C_FREES] += 1
    return ST_OK, 0


@njit(cache=True, inline="always")
def realloc_in_place(state, addr, granted, new_size, thread):
    """The top block can change size where it stands; any other block only shrink."""
    words, older_blocks = state
    new_granted = align_up(new_size, ALIGNMENT)
    if words[S_NEWEST] == addr:
        end = addr + new_granted
        if end > words[S_CAPACITY]:
            return -1, 0
        words[S_TOP] = end
        if end > words[S_HIGH_WATER]:
            words[S_HIGH_WATER] = end
        return addr, new_granted
    if new_size <= granted:
        return addr, granted
    return -1, 0


@njit(cache=True, inline="always")
def heap_stats(state):
    words, older_blocks = state
    return words[S_HIGH_WATER], HEADER_BYTES * words[S_OLDER_COUNT]  # one back link per live block


@njit(cache=True)
def reset_state(state):
    words = state[0]
    words[S_OLDER_COUNT] = 0
    words[S_TOP] = 0
    words[S_NEWEST] = -1


@register
class Stack(Allocator):
    name = "stack"
    summary = "bump pointer with a 16 B header per block; LIFO deallocate, out-of-order is an error"
    alignment = ALIGNMENT
    lifo_only = True
    general_purpose = False
    counter_names = ("allocs", "frees", "out_of_order_frees")
    shared_counters = ("allocs", "frees")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    def make_state(self) -> tuple:
        words = np.zeros(8, np.int64)
        words[S_CAPACITY] = self.capacity
        words[S_NEWEST] = -1
        return (words, new_items(self.capacity // (HEADER_BYTES + ALIGNMENT)))
