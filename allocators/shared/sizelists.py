"""Best fit's free-chunk index: one circular list per exact chunk size, and a bitset over the sizes.

Used by `allocators.freelist`'s `policy=best` (words[S_MODE] == MODE_SIZES)
through the free-chunk index of `shared.chunkfree`.  Slot = chunk size in
granules: `sizeheads[slot]` is the front chunk of that size's ring (linked
through the chunks' fd/bk words, `shared.chunks`), and bit `slot` of
`sizebits` (`shared.bitset`) is set while the ring is non-empty, so
`bitset_next(sizebits, nb >> shift)` gives the smallest non-empty size >= nb
in O(log64(heap granules)).  Ties, by words[S_ORDER]: newest first (lifo),
oldest first (fifo), or lowest address (address: insertion walks the
equal-size ring, O(k), counted in search_steps).  Insert and remove are
otherwise O(1).
"""

from numba import njit

from allocators.shared.bitset import bitset_clear, bitset_set, bitset_test
from allocators.shared.chunks import (
    C_SEARCH_STEPS,
    ORDER_ADDRESS,
    ORDER_FIFO,
    S_GRAN_SHIFT,
    S_ORDER,
    W_BK,
    W_FD,
    link_after,
    unlink,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True)
def sizes_insert(words, memory, sizebits, sizeheads, chunk, size):
    slot = size >> words[S_GRAN_SHIFT]
    cw = chunk >> 3
    if bitset_test(sizebits, slot) == 0:
        memory[cw + W_FD] = chunk
        memory[cw + W_BK] = chunk
        sizeheads[slot] = chunk
        bitset_set(sizebits, slot)
        return
    head = sizeheads[slot]
    order = words[S_ORDER]
    if order == ORDER_ADDRESS and chunk > head:
        before = memory[(head >> 3) + W_FD]
        steps = 1
        while before != head and before < chunk:
            before = memory[(before >> 3) + W_FD]
            steps += 1
        words[C_SEARCH_STEPS] += steps
        link_after(memory, memory[(before >> 3) + W_BK], chunk)
        return
    link_after(memory, memory[(head >> 3) + W_BK], chunk)  # at the back of the ring
    if order != ORDER_FIFO:
        sizeheads[slot] = chunk  # lifo, or a new lowest address: the front


@njit(cache=True)
def sizes_remove(words, memory, sizebits, sizeheads, chunk, size):
    slot = size >> words[S_GRAN_SHIFT]
    fd = memory[(chunk >> 3) + W_FD]
    if fd == chunk:
        bitset_clear(sizebits, slot)
        return
    unlink(memory, chunk)
    if sizeheads[slot] == chunk:
        sizeheads[slot] = fd
