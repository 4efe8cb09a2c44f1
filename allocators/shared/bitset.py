"""A hierarchical bitset in one int64 array: set, clear, test, next / previous set bit in O(levels).

Level 0 has one bit per position; each word of level k+1 has one bit per word
of level k, set while that word is non-zero.  With 64-bit words, 2^24
positions take 4 levels (262144 + 4096 + 64 + 1 words), so "the smallest set
position >= i" (e.g. the smallest free-chunk size that fits a request, or the
next non-empty bin) reads at most about 2 words per level, whatever the number
of positions.  Used by allocators that index free chunks by exact size.

Layout: `bits[0]` = number of levels L; `bits[1 + k]` = offset of level k's
words; `bits[1 + L + k]` = number of words in level k; then the words
(np.zeros, so untouched parts cost no memory).
"""

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


def new_bitset(n_bits: int) -> np.ndarray:
    level_words = []
    count = max(1, int(n_bits))
    while True:
        words = (count + 63) // 64
        level_words.append(words)
        if words == 1:
            break
        count = words
    levels = len(level_words)
    header = 1 + 2 * levels
    bits = np.zeros(header + sum(level_words), np.int64)
    bits[0] = levels
    offset = header
    for level, words in enumerate(level_words):
        bits[1 + level] = offset
        bits[1 + levels + level] = words
        offset += words
    return bits


@njit(cache=True, inline="always")
def bitset_test(bits, position):
    return (bits[bits[1] + (position >> 6)] >> (position & 63)) & 1


@njit(cache=True)
def bitset_set(bits, position):
    levels = bits[0]
    for level in range(levels):
        word = position >> 6
        index = bits[1 + level] + word
        old = bits[index]
        bits[index] = old | (np.int64(1) << (position & 63))
        if old != 0:
            return
        position = word


@njit(cache=True)
def bitset_clear(bits, position):
    levels = bits[0]
    for level in range(levels):
        word = position >> 6
        index = bits[1 + level] + word
        new = bits[index] & ~(np.int64(1) << (position & 63))
        bits[index] = new
        if new != 0:
            return
        position = word


@njit(cache=True)
def bitset_next(bits, position):
    """Smallest set position >= `position`, or -1."""
    levels = bits[0]
    level = 0
    if position < 0:
        position = 0
    while level < levels:
        word = position >> 6
        if word >= bits[1 + levels + level]:
            return -1
        found = bits[bits[1 + level] + word] & (np.int64(-1) << (position & 63))
        if found != 0:
            position = (word << 6) + trailing_zeros(found)
            while level > 0:
                level -= 1
                position = (position << 6) + trailing_zeros(bits[bits[1 + level] + position])
            return position
        position = word + 1
        level += 1
    return -1


@njit(cache=True)
def bitset_prev(bits, position):
    """Largest set position <= `position`, or -1."""
    levels = bits[0]
    level = 0
    while level < levels:
        if position < 0:
            return -1
        word = position >> 6
        bit = position & 63
        n_words = bits[1 + levels + level]
        if word >= n_words:
            word = n_words - 1
            bit = 63
        mask = np.int64(-1) if bit == 63 else (np.int64(1) << (bit + 1)) - 1
        found = bits[bits[1 + level] + word] & mask
        if found != 0:
            position = (word << 6) + 63 - leading_zeros(found)
            while level > 0:
                level -= 1
                position = (position << 6) + 63 - leading_zeros(bits[bits[1 + level] + position])
            return position
        position = word - 1
        level += 1
    return -1


@njit(cache=True)
def bitset_clear_all(bits):
    """Clear every set bit, touching only non-zero words: O(set words x levels)."""
    levels = bits[0]
    position = bitset_next(bits, 0)
    while position >= 0:
        word = position >> 6
        bits[bits[1] + word] = 0
        child = word
        for level in range(1, levels):
            up = child >> 6
            index = bits[1 + level] + up
            new = bits[index] & ~(np.int64(1) << (child & 63))
            bits[index] = new
            if new != 0:
                break
            child = up
        position = bitset_next(bits, (word + 1) << 6)
