"""Open-addressing hash tables over non-negative int64 keys, as jitted helpers over plain arrays.

Used wherever a kernel keeps a set or a map whose keys are too sparse for an
array index: the slot map's live objects (`workloads.slots`), the
false-sharing counts per (line, owner) and per line (`bench.metrics.scalability`),
the distinct pages of the access stream (`bench.metrics.locality`).

A table is a `keys` array of a power-of-two length (EMPTY = -1 marks a free
entry) and, for a map, a `values` array beside it.  Keys hash with Fibonacci
hashing (the multiplier 2^64 / golden ratio, as a signed int64, then bits 20
and up), collisions probe linearly, and `delete` shifts the rest of the probe
run back into the hole (backward-shift deletion), so no tombstones pile up
and every probe run stays unbroken.  Callers keep the load at most one half
and grow (rehash into a table twice the size) when it would pass that.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

EMPTY = -1
#: Fibonacci hashing multiplier (2^64 / golden ratio, as a signed int64).
MULTIPLIER = -7046029254386353131
SHIFT = 20


@njit(cache=True, inline="always")
def home(key, mask):
    """The entry where `key`'s probe run starts."""
    return ((key * MULTIPLIER) >> SHIFT) & mask


@njit(cache=True, inline="always")
def find(keys, key, mask):
    """The entry holding `key`, or the empty entry where it would go."""
    index = home(key, mask)
    while keys[index] != EMPTY and keys[index] != key:
        index = (index + 1) & mask
    return index


@njit(cache=True, inline="always")
def delete(keys, values, index, mask):
    """Remove the entry at `index` of a map (backward-shift deletion)."""
    hole = index
    probe = (index + 1) & mask
    while keys[probe] != EMPTY:
        start = home(keys[probe], mask)
        if ((probe - start) & mask) >= ((probe - hole) & mask):
            keys[hole] = keys[probe]
            values[hole] = values[probe]
            hole = probe
        probe = (probe + 1) & mask
    keys[hole] = EMPTY


@njit(cache=True)
def rehash(keys, values, size):
    """The entries of a map in new arrays of `size` entries (a power of two, more than the entries)."""
    new_keys = np.full(size, EMPTY, np.int64)
    new_values = np.zeros(size, np.int64)
    mask = size - 1
    for index in range(keys.shape[0]):
        if keys[index] != EMPTY:
            slot = find(new_keys, keys[index], mask)
            new_keys[slot] = keys[index]
            new_values[slot] = values[index]
    return new_keys, new_values


@njit(cache=True)
def rehash_set(keys, size):
    """The keys of a set in a new array of `size` entries (a power of two, more than the keys)."""
    new_keys = np.full(size, EMPTY, np.int64)
    mask = size - 1
    for index in range(keys.shape[0]):
        if keys[index] != EMPTY:
            new_keys[find(new_keys, keys[index], mask)] = keys[index]
    return new_keys
