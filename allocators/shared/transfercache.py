"""Transfer cache: per size class, a small stack of whole batches in front of the central list.

TCMalloc puts a *transfer cache* in front of every central free list: when a
thread cache releases exactly one batch (`num_to_move` objects) and there is a
free slot, the batch is parked as it is; when a thread cache asks for exactly
one batch and a slot is used, it gets a parked batch back.  Objects thus flow
from a freeing thread to an allocating one without being sorted back into
their spans.  Partial batches (the slow-start fetches, odd remainders) go
straight to the spans.

Model (gperftools `CentralFreeList::tc_slots_`): a batch is a chain of objects
linked through the thread caches' `links` (allocators.shared.threadcache),
stored as (first, last) in one slot; insert and remove are O(1).  Per class,
two words in the caller's `words` at `xb + 2 * cls`: slots used and slot
capacity; the slot pairs live in `slots` (MAX_SLOTS pairs per class).

Capacity per class (`transfer_capacity`): gperftools' max_cache_size_ =
min(kMaxNumTransferEntries = 64, max(1, 1 MiB / (size x num_to_move))), so a
class parks at most about 1 MiB.  gperftools starts each class at 16 slots and
lets a full class take a slot from another class (MakeCacheSpace /
EvictRandomSizeClass); the model gives every class its maximum from the start
(documented simplification: it never caps a class below its maximum).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

MAX_SLOTS = 64
TRANSFER_BYTES_LIMIT = 1 << 20

XC_USED = 0
XC_CAPACITY = 1
XC_STRIDE = 2


def transfer_capacity(size: int, num_to_move: int) -> int:
    """Slots (batches) the transfer cache of a class of `size`-byte objects may hold."""
    if size <= 0 or num_to_move <= 0:
        return 0
    return min(MAX_SLOTS, max(1, TRANSFER_BYTES_LIMIT // (size * num_to_move)))


def transfer_slots(n_classes: int) -> int:
    """Words of `words` the transfer caches of n_classes classes need."""
    return n_classes * XC_STRIDE


def new_transfer_slots(n_classes: int) -> np.ndarray:
    return np.empty(n_classes * MAX_SLOTS * 2, np.int64)


def init_transfer(words: np.ndarray, xb: int, sizes: np.ndarray, num_to_move: np.ndarray) -> None:
    """Empty caches with their capacities (Python side); class c uses sizes[c], num_to_move[c]."""
    for cls in range(len(sizes)):
        words[xb + cls * XC_STRIDE + XC_USED] = 0
        words[xb + cls * XC_STRIDE + XC_CAPACITY] = transfer_capacity(int(sizes[cls]), int(num_to_move[cls]))


@njit(cache=True)
def reset_transfer(words, xb, n_classes):
    for cls in range(n_classes):
        words[xb + cls * XC_STRIDE + XC_USED] = 0


@njit(cache=True, inline="always")
def transfer_insert(words, xb, slots, cls, first, last):
    """Park a full batch; False if the class's cache is full (the caller returns it to the spans)."""
    used = words[xb + cls * XC_STRIDE + XC_USED]
    if used >= words[xb + cls * XC_STRIDE + XC_CAPACITY]:
        return False
    position = (cls * MAX_SLOTS + used) * 2
    slots[position] = first
    slots[position + 1] = last
    words[xb + cls * XC_STRIDE + XC_USED] = used + 1
    return True


@njit(cache=True, inline="always")
def transfer_remove(words, xb, slots, cls):
    """Take the newest parked batch as (first, last), or (-1, -1) if none."""
    used = words[xb + cls * XC_STRIDE + XC_USED]
    if used == 0:
        return -1, -1
    used -= 1
    words[xb + cls * XC_STRIDE + XC_USED] = used
    position = (cls * MAX_SLOTS + used) * 2
    return slots[position], slots[position + 1]
