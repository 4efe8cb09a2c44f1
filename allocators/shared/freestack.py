"""An index stack in one int64 array: slot 0 holds the count, slots 1.. the items.

Used wherever an allocator keeps a LIFO free list of block indices or
addresses (pool blocks, tcache bins, ...).  Push and pop are O(1) and touch
two words.  Capacity is `len(array) - 1`; callers size the array so it cannot
overflow (e.g. one slot per block the region can hold) and `np.empty` keeps
untouched slots from costing memory.
"""

import numpy as np
from numba import njit


def new_stack(capacity: int) -> np.ndarray:
    stack = np.empty(capacity + 1, np.int64)
    stack[0] = 0
    return stack


@njit(cache=True, inline="always")
def stack_count(stack):
    return stack[0]


@njit(cache=True, inline="always")
def stack_push(stack, value):
    count = stack[0] + 1
    stack[count] = value
    stack[0] = count


@njit(cache=True, inline="always")
def stack_pop(stack):
    """Remove and return the top item; the caller checks stack_count first."""
    count = stack[0]
    stack[0] = count - 1
    return stack[count]


@njit(cache=True, inline="always")
def stack_top(stack):
    return stack[stack[0]]


@njit(cache=True, inline="always")
def stack_clear(stack):
    stack[0] = 0
