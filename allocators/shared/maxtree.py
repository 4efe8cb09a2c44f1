"""A max segment tree over n slots in one int64 array: "first slot at or after i holding at least x".

Used where an allocator needs address-ordered first fit without walking a
list: slot = a chunk's start (in granules or pages), value = the free chunk's
size there (0 = no free chunk starts at that slot).  Then

- `tree_first_at_least(tree, lo, need)`: the lowest slot >= lo whose value
  is >= need (address-ordered first fit; next fit starts at lo = the rover);
- `tree_last_at_least(tree, hi, need)`: the highest slot <= hi whose value is
  >= need (top-down placement, or the free neighbour just below an address);
- `tree_set(tree, slot, value)`: point update.

Layout: `tree[0]` = P, the number of leaves (a power of two >= n); node k for
1 <= k < P holds the max of nodes 2k and 2k+1; slot s is leaf P + s.  Values
must be >= 0.  Memory: 2P words from `np.zeros`, so pages of untouched slots
(address space never used) cost nothing.

Cost: an update climbs at most log2(P) levels and stops as soon as a parent's
max does not change; a query climbs and descends at most log2(P) levels each,
reading one or two words per level.
"""

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


def new_tree(n_slots: int) -> np.ndarray:
    leaves = 1 << max(0, int(n_slots) - 1).bit_length()
    tree = np.zeros(2 * leaves, np.int64)
    tree[0] = leaves
    return tree


@njit(cache=True, inline="always")
def tree_slots(tree):
    return tree[0]


@njit(cache=True, inline="always")
def tree_get(tree, slot):
    return tree[tree[0] + slot]


@njit(cache=True)
def tree_set(tree, slot, value):
    pos = tree[0] + slot
    tree[pos] = value
    pos >>= 1
    while pos >= 1:
        left = tree[2 * pos]
        right = tree[2 * pos + 1]
        largest = left if left > right else right
        if tree[pos] == largest:
            break
        tree[pos] = largest
        pos >>= 1


@njit(cache=True)
def tree_first_at_least(tree, lo, need):
    """Lowest slot >= lo with value >= need, or -1.  `need` must be >= 1."""
    leaves = tree[0]
    if lo >= leaves or tree[1] < need:
        return -1
    if lo < 0:
        lo = 0
    pos = leaves + lo
    if tree[pos] >= need:
        return lo
    while pos > 1:
        if pos & 1 == 0 and tree[pos + 1] >= need:
            pos += 1
            while pos < leaves:
                pos <<= 1
                if tree[pos] < need:
                    pos += 1
            return pos - leaves
        pos >>= 1
    return -1


@njit(cache=True)
def tree_last_at_least(tree, hi, need):
    """Highest slot <= hi with value >= need, or -1.  `need` must be >= 1."""
    leaves = tree[0]
    if hi < 0 or tree[1] < need:
        return -1
    if hi >= leaves:
        hi = leaves - 1
    pos = leaves + hi
    if tree[pos] >= need:
        return hi
    while pos > 1:
        if pos & 1 == 1 and tree[pos - 1] >= need:
            pos -= 1
            while pos < leaves:
                pos = 2 * pos + 1
                if tree[pos] < need:
                    pos -= 1
            return pos - leaves
        pos >>= 1
    return -1


@njit(cache=True)
def tree_clear_range(tree, lo, hi):
    """Set slots [lo, hi) to 0 and repair their ancestors: O(hi - lo)."""
    leaves = tree[0]
    if hi > leaves:
        hi = leaves
    if lo < 0:
        lo = 0
    if hi <= lo:
        return
    first = leaves + lo
    last = leaves + hi - 1
    for pos in range(first, last + 1):
        tree[pos] = 0
    while first > 1:
        first >>= 1
        last >>= 1
        for pos in range(first, last + 1):
            left = tree[2 * pos]
            right = tree[2 * pos + 1]
            tree[pos] = left if left > right else right
