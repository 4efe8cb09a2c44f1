"""Bit tricks on int64 words as single machine instructions (LLVM ctlz / cttz).

Used wherever an allocator turns a size into a power-of-two order or finds the
first non-empty bin in a bitmap word (buddy orders, bitmap free lists, size
classes).  Each helper is one instruction plus a subtraction, instead of a loop
over the bits; they work from Python too (numba compiles them on first call).

All helpers take non-negative values.  `lowest_set_bit(0)` is 64 and
`bit_length(0)` is 0, the LLVM intrinsics being called in their defined-at-zero form.
"""

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True, inline="always")
def bit_length(value):
    """Number of bits needed to write `value` (Python's int.bit_length): 0 -> 0, 1 -> 1, 8 -> 4."""
    return 64 - leading_zeros(np.int64(value))


@njit(cache=True, inline="always")
def ceil_log2(value):
    """Smallest k with 2**k >= value, for value >= 1: 1 -> 0, 2 -> 1, 3 -> 2, 1024 -> 10, 1025 -> 11."""
    return 64 - leading_zeros(np.int64(value) - 1)


@njit(cache=True, inline="always")
def floor_log2(value):
    """Largest k with 2**k <= value, for value >= 1: 1 -> 0, 3 -> 1, 1024 -> 10."""
    return 63 - leading_zeros(np.int64(value))


@njit(cache=True, inline="always")
def lowest_set_bit(value):
    """Index of the lowest set bit (find-first-set minus one): 1 -> 0, 12 -> 2; 0 -> 64."""
    return trailing_zeros(np.int64(value))
