"""buddy: the binary buddy system (power-of-two blocks, split on allocate, merge on free).

Design.  Every block is a power of two between `min_block` and `max_block`
bytes and starts at an address that is a multiple of its own size.  A block of
size s at address a therefore has exactly one *buddy*, the other half of the
aligned 2s block that contains it: `a XOR s`.  Sizes are handled as *orders*,
order k meaning `min_block << k`; order 0 is the smallest block, `max_order` =
log2(max_block / min_block) the largest.

- allocate(size): the order is ceil(log2(max(size, min_block))) - log2(min_block),
  one count-leading-zeros.  The smallest non-empty free list of that order or
  above is found with one count-trailing-zeros on a bitmask of non-empty orders.
  Its first block is taken, and while it is larger than needed it is split in
  halves: the upper half goes on the free list one order down, the lower half is
  split further.  The granted size is the block size, the address the block's.
- deallocate(addr): look up the block's order, then while its buddy is a free
  block of the same order, unlink the buddy from its free list and merge (the
  merged block starts at the lower of the two addresses, one order up).  The
  final block goes on the front of its free list (LIFO: hot reuse).
- Cost per operation: O(1) list work plus at most max_order splits or merges,
  i.e. O(log(max_block / min_block)) and each step touches two or three words.
- A request above `max_block` can never be served: ST_TOO_LARGE (the shell turns
  it into UnsupportedOperation, "request larger than the largest block").  A
  request that fits a block but finds no free memory: ST_OUT_OF_MEMORY.

Metadata.  No header in the block: the order of every block is kept in a side
table, one byte per `min_block` unit (`tags`, indexed by address >> log2(min_block),
valid at the block's first unit: the order, plus FREE_TAG while the block is
free).  The free lists are doubly linked (O(1) removal of an arbitrary block,
which merging needs for the buddy); a real buddy allocator threads those two
links through the free blocks themselves, which is why blocks must be at least
16 B.  Here they are the `links` array (next, prev unit index per unit,
adjacent so one cache line).  Modelled metadata bytes = the tag table over the
heap taken so far (heap bytes / min_block) + one 8 B list head per order; the
links live inside free blocks and cost nothing extra.  A tag is only written
when a block is created (split, merge, grow) and goes stale when its block is
merged away; that is safe because blocks tile the heap, so the buddy of a
block (inside the heap) always starts a block, whose tag is current.

Why `min_block` = 32 B by default: 16 B is the least that keeps the 16 B
alignment (every block is aligned to its size) and holds the two free-list
links, but 32 B halves the tag table (3.1 % of the heap instead of 6.3 %) and
matches glibc's 32 B minimum chunk, so small requests waste the same as in the
malloc-style models.  `min_block=16` is accepted.

Growth ("OS" footprint).  The heap is `[0, heap_end)` and only ever grows:
- growth="double" (default): the heap starts as one page-sized block (4 KiB,
  clamped to [min_block, max_block]) and doubles: the new upper half
  `[H, 2H)` is added as a free block whose buddy is the whole old heap
  `[0, H)` (merged with it if that is entirely free).  Once the heap reaches
  `max_block` it grows by one `max_block` top block at a time.  So the
  footprint stays within 2x of the peak need instead of jumping to max_block.
- growth="top": the heap is a sequence of `max_block` top blocks taken one at a
  time when no free block is large enough (the textbook arena).  With the
  default max_block (the whole capacity) the first allocation takes it all.
Growth happens only when no free block of the wanted order or larger exists;
each grow counts one `os_grows`.  Capacity beyond the last whole `max_block`
is never used.  footprint = heap_end.

`max_block` defaults to the largest power of two <= capacity, capped at 1 GiB.
Top blocks never merge with each other.  Merging is also capped at the heap's
own order while the doubling heap is smaller than max_block
(`S_MERGE_LIMIT`), so a buddy is never looked up outside the heap.

realloc: the replay driver's default, kept in place while the new size fits
the granted power of two, else allocate + free.

State: `words` (counters allocs, frees, splits, merges, os_grows; then heap
end, metadata bytes, capacity, log2(min_block), max_order, merge limit, the
bitmask of non-empty orders, growth rule, first order, and one list head per
order), `tags` (int8, one per unit) and `links` (int64, two per unit).  The
per-unit arrays are np.empty over the whole capacity (17 B of virtual memory
per min_block, about half the capacity at 32 B): only the pages of the heap
actually used are touched.  A capacity whose tables cannot be reserved is a
BadParameter asking for a larger min_block.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, ST_TOO_LARGE, BadParameter
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import is_power_of_two
from allocators.shared.bits import ceil_log2, floor_log2, lowest_set_bit
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16
DEFAULT_MIN_BLOCK = 32
MAX_BLOCK_CAP = 1 << 30
FIRST_HEAP_BYTES = 4096
GROWTH_RULES = ("double", "top")
GROWTH_DOUBLE, GROWTH_TOP = 0, 1

#: Added to a block's order in `tags` while the block is free.
FREE_TAG = 64
#: Modelled bytes of one free-list head.
HEAD_BYTES = 8
#: Marks the end of a free list (and an empty list head).
NO_BLOCK = -1

C_ALLOCS, C_FREES, C_SPLITS, C_MERGES, C_OS_GROWS = 0, 1, 2, 3, 4
S_HEAP_END, S_METADATA, S_CAPACITY, S_MIN_SHIFT, S_MAX_ORDER = 5, 6, 7, 8, 9
S_MERGE_LIMIT, S_NONEMPTY, S_GROWTH, S_FIRST_ORDER = 10, 11, 12, 13
S_HEADS = 16
MAX_ORDERS = 64
N_WORDS = S_HEADS + MAX_ORDERS


# ------------------------------------------------------------------ free lists
# Every kernel and helper below ends with `_ = words.size + ...`, a use of each
# array at its single exit.  Numba drops an array reference right after the
# array's last use; when that last use sits inside a branch the reference is
# dropped on several paths (or an early return adds an exit), and LLVM's
# reference-count pruning can then no longer remove the incref/decref pair that
# every inlined call makes for each array: two atomic operations per array per
# call (measured: 18 Mops/s with them, 70+ without, on the 1M-op benchmark
# trace).  For the same reason the grow path is inlined: a call to a compiled
# function adds an exception exit, which also defeats the pruning.
@njit(cache=True, inline="always")
def push_free(words, tags, links, unit, order):
    """Put the block starting at `unit` on the front of the order-`order` list: O(1)."""
    head = words[S_HEADS + order]
    links[2 * unit] = head
    links[2 * unit + 1] = NO_BLOCK
    if head != NO_BLOCK:
        links[2 * head + 1] = unit
    words[S_HEADS + order] = unit
    words[S_NONEMPTY] |= 1 << order
    tags[unit] = order + FREE_TAG
    _ = words.size + tags.size + links.size


@njit(cache=True, inline="always")
def unlink_free(words, links, unit, order):
    """Remove the block starting at `unit` from the order-`order` list, wherever it is: O(1)."""
    after = links[2 * unit]
    before = links[2 * unit + 1]
    if before != NO_BLOCK:
        links[2 * before] = after
    else:
        words[S_HEADS + order] = after
        if after == NO_BLOCK:
            words[S_NONEMPTY] &= ~(1 << order)
    if after != NO_BLOCK:
        links[2 * after + 1] = before
    _ = words.size + links.size


@njit(cache=True, inline="always")
def grow_heap(words, tags, links, want):
    """Take memory from the "OS" until a free block of order >= `want` exists or the capacity is exhausted."""
    min_shift = words[S_MIN_SHIFT]
    max_order = words[S_MAX_ORDER]
    while (words[S_NONEMPTY] >> want) == 0:
        heap_end = words[S_HEAP_END]
        doubling = words[S_GROWTH] == GROWTH_DOUBLE and heap_end < (1 << (max_order + min_shift))
        if not doubling:
            order = max_order
        elif heap_end == 0:
            order = words[S_FIRST_ORDER]
        else:
            order = floor_log2(heap_end) - min_shift  # the new upper half is as large as the heap so far
        block_bytes = 1 << (order + min_shift)
        if heap_end + block_bytes > words[S_CAPACITY]:
            break
        words[S_HEAP_END] = heap_end + block_bytes
        words[S_METADATA] += block_bytes >> min_shift
        words[C_OS_GROWS] += 1
        unit = heap_end >> min_shift
        if doubling:
            # The heap is now [0, heap_end + block_bytes), a power of two: merging may reach its order.
            words[S_MERGE_LIMIT] = floor_log2(heap_end + block_bytes) - min_shift
            if heap_end > 0 and tags[0] == order + FREE_TAG:  # the whole old heap is one free block: merge
                unlink_free(words, links, 0, order)
                words[C_MERGES] += 1
                unit = 0
                order += 1
        else:
            words[S_MERGE_LIMIT] = max_order
        push_free(words, tags, links, unit, order)
    _ = words.size + tags.size + links.size


# --------------------------------------------------------------------- kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, tags, links = state
    min_shift = words[S_MIN_SHIFT]
    want = ceil_log2(size) - min_shift
    if want < 0:
        want = 0
    addr = ST_TOO_LARGE
    granted = 0
    if want <= words[S_MAX_ORDER]:
        if (words[S_NONEMPTY] >> want) == 0:
            grow_heap(words, tags, links, want)
        available = words[S_NONEMPTY] >> want
        if available == 0:
            addr = ST_OUT_OF_MEMORY
        else:
            order = want + lowest_set_bit(available)  # smallest non-empty order >= want
            unit = words[S_HEADS + order]
            after = links[2 * unit]
            words[S_HEADS + order] = after
            if after != NO_BLOCK:
                links[2 * after + 1] = NO_BLOCK
            else:
                words[S_NONEMPTY] &= ~(1 << order)
            if order > want:
                # Every list between want and order is empty (order is the smallest non-empty
                # one), so each upper half becomes the only block of its list.
                words[S_NONEMPTY] |= (1 << order) - (1 << want)
                words[C_SPLITS] += order - want
                while order > want:
                    order -= 1
                    half = unit + (1 << order)
                    links[2 * half] = NO_BLOCK
                    links[2 * half + 1] = NO_BLOCK
                    words[S_HEADS + order] = half
                    tags[half] = order + FREE_TAG
            tags[unit] = want
            words[C_ALLOCS] += 1
            addr = unit << min_shift
            granted = 1 << (want + min_shift)
    _ = words.size + tags.size + links.size
    return addr, granted


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, tags, links = state
    min_shift = words[S_MIN_SHIFT]
    unit = addr >> min_shift
    order = np.int64(tags[unit])
    granted = 1 << (order + min_shift)
    limit = words[S_MERGE_LIMIT]
    while order < limit:
        buddy = unit ^ (1 << order)
        if tags[buddy] != order + FREE_TAG:
            break
        unlink_free(words, links, buddy, order)
        unit &= buddy  # the merged block starts at the lower of the two
        order += 1
        words[C_MERGES] += 1
    push_free(words, tags, links, unit, order)
    words[C_FREES] += 1
    _ = words.size + tags.size + links.size
    return ST_OK, granted


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[0]
    return words[S_HEAP_END], words[S_METADATA]


@njit(cache=True)
def reset_state(state):
    """Every block free again: the heap taken so far becomes its top blocks (one block while doubling)."""
    words, tags, links = state
    min_shift = words[S_MIN_SHIFT]
    max_order = words[S_MAX_ORDER]
    for order in range(max_order + 1):
        words[S_HEADS + order] = NO_BLOCK
    words[S_NONEMPTY] = 0
    heap_end = words[S_HEAP_END]
    max_bytes = 1 << (max_order + min_shift)
    if 0 < heap_end < max_bytes:
        push_free(words, tags, links, 0, floor_log2(heap_end) - min_shift)
    else:
        for start in range(0, heap_end, max_bytes):
            push_free(words, tags, links, start >> min_shift, max_order)


# ----------------------------------------------------------------- the shell
@register
class Buddy(Allocator):
    name = "buddy"
    state_hint = ", or a larger min_block (17 B of tables per min_block of capacity)"
    summary = "binary buddy system: power-of-two blocks, split on allocate, merge with the buddy on free"
    alignment = ALIGNMENT
    defaults = {"min_block": DEFAULT_MIN_BLOCK, "max_block": None, "growth": "double"}
    variants = ("growth=top", "min_block=16")
    counter_names = ("allocs", "frees", "splits", "merges", "os_grows")
    shared_counters = ("allocs", "frees")  # one set of free lists for all threads

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state)

    def check_params(self) -> None:
        min_block = self._power_of_two_param("min_block", self.params["min_block"])
        if min_block < ALIGNMENT:
            raise BadParameter(f"buddy: min_block {min_block} is below the {ALIGNMENT} B alignment")
        if min_block > self.capacity:
            raise BadParameter(f"buddy: min_block {min_block} is larger than the capacity {self.capacity}")
        max_block = self.params["max_block"]
        if max_block is None:
            max_block = max(min(1 << (self.capacity.bit_length() - 1), MAX_BLOCK_CAP), min_block)
        max_block = self._power_of_two_param("max_block", max_block)
        if max_block < min_block:
            raise BadParameter(f"buddy: max_block {max_block} is smaller than min_block {min_block}")
        if max_block > self.capacity:
            raise BadParameter(f"buddy: max_block {max_block} is larger than the capacity {self.capacity}")
        growth = self.params["growth"]
        if growth not in GROWTH_RULES:
            raise BadParameter(f"buddy: growth must be one of {', '.join(GROWTH_RULES)}, got {growth!r}")
        self.params.update(min_block=min_block, max_block=max_block)

    def _power_of_two_param(self, what: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not is_power_of_two(int(value)):
            raise BadParameter(f"buddy: {what} must be a power of two, got {value!r}")
        return int(value)

    def make_state(self) -> tuple:
        min_block, max_block = self.params["min_block"], self.params["max_block"]
        min_shift = min_block.bit_length() - 1
        max_order = (max_block // min_block).bit_length() - 1
        n_units = self.capacity // min_block
        words = np.zeros(N_WORDS, np.int64)
        words[S_CAPACITY] = self.capacity
        words[S_MIN_SHIFT] = min_shift
        words[S_MAX_ORDER] = max_order
        words[S_GROWTH] = GROWTH_RULES.index(self.params["growth"])
        words[S_FIRST_ORDER] = (min(max(FIRST_HEAP_BYTES, min_block), max_block) // min_block).bit_length() - 1
        words[S_METADATA] = HEAD_BYTES * (max_order + 1)
        words[S_HEADS : S_HEADS + MAX_ORDERS] = NO_BLOCK
        try:
            tags = np.empty(n_units, np.int8)
            links = np.empty(2 * n_units, np.int64)
        except MemoryError:
            raise BadParameter(
                f"buddy: capacity_bytes {self.capacity} with min_block {min_block} needs {n_units * 17} B of "
                "side tables; use a larger min_block or a smaller capacity"
            ) from None
        return words, tags, links
