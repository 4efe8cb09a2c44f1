"""A LIFO stack of int64 items whose count lives in the allocator's `words` array.

Used wherever an allocator keeps a LIFO free list of block addresses (pool
blocks, a stack allocator's back links, tcache-like bins).  Push and pop are
O(1): one load and one store of the count, one access to the items.

The count is kept in a slot of `words` (state[0], the allocator's hot scalars)
rather than in the items array itself: a pop whose item address depends on a
count just stored in the *same* items array measured 2-3x slower per replayed
operation (the CPU cannot tell early that the load does not alias the store).
Callers size `items` so it cannot overflow (e.g. one slot per block the region
can hold); `np.empty` keeps untouched slots from costing memory.
"""

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


def new_items(capacity: int) -> np.ndarray:
    """Items array for a stack of at most `capacity` items (slot 0 unused: items are 1-based)."""
    return np.empty(capacity + 1, np.int64)


@njit(cache=True, inline="always")
def push(words, count_slot, items, value):
    count = words[count_slot] + 1
    items[count] = value
    words[count_slot] = count


@njit(cache=True, inline="always")
def pop(words, count_slot, items):
    """Remove and return the newest item; the caller checks words[count_slot] > 0 first."""
    count = words[count_slot]
    value = items[count]
    words[count_slot] = count - 1
    return value
