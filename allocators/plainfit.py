"""plainfit: the textbook fit policies of the `freelist` allocator (first, next and best fit).

`freelist` without glibc's bins (`bins="none"`, its default) files free
chunks in one index chosen by `policy` and `order`, and allocation searches
it here (`malloc_plain`); the chunks, their boundary tags and the free path
are `freelist`'s (`allocators.freelist`, `shared.chunks`, `shared.chunkfree`).

Policies (parameters `policy`, `order`; defaults first / address):
- first + address: the lowest-addressed free chunk that fits (classic
  address-ordered first fit).  The address-ordered free list is represented by
  a max segment tree over the heap's granules (`shared.maxtree`: slot = chunk
  start, value = free size), which finds the same chunk a list walk would in
  O(log(heap granules)) instead of O(free chunks); insert/remove O(log).
- next + address: the same tree searched from a rover (the address after the
  last chunk handed out), wrapping around once.
- first / next + lifo or fifo: one circular doubly linked list, new free chunks
  pushed at the front (lifo) or the back (fifo); the search walks it from the
  front (first) or from the rover node (next).  O(free chunks examined): this
  is the textbook cost, kept on purpose (see `search_steps`).  A split leaves
  the remainder in its victim's place in the list (as K&R does).
- best (any order): the smallest free chunk that fits, exactly.  Free chunks
  sit in one circular list per exact size (in granules); a hierarchical bitset
  over sizes (`shared.bitset`) gives the smallest non-empty size >= nb in
  O(log64(heap granules)).  Ties: newest first (lifo), oldest first (fifo), or
  lowest address (address: insertion walks the equal-size list, O(k));
  `shared.sizelists`.
Every fit policy allocates from the low end of the chosen chunk: a remainder of
at least `min_chunk` is split off as a free chunk (in a list, it takes the
victim's place, as K&R does), a smaller one is handed out with the chunk.
When nothing fits, fastbins are consolidated and the search repeated, then
the chunk is cut from top (`shared.sysmem.malloc_from_top`).
"""

from __future__ import annotations

from numba import njit

from allocators.shared.bitset import bitset_next
from allocators.shared.chunkfree import index_insert, index_remove, malloc_consolidate
from allocators.shared.chunks import (
    C_SEARCH_STEPS,
    C_SPLITS,
    I_MAPTREE,
    I_MEMORY,
    I_SIZEBITS,
    I_SIZEHEADS,
    I_TREE,
    I_WORDS,
    MODE_LIST,
    MODE_TREE,
    NIL,
    PREV_INUSE,
    S_ARENA,
    S_GRAN_SHIFT,
    S_HAVE_FAST,
    S_HEADER,
    S_METADATA,
    S_MIN_CHUNK,
    S_MODE,
    S_NEXT_FIT,
    S_ROVER,
    S_TOP,
    W_BK,
    W_FD,
    W_SIZE,
    set_free_chunk,
    set_inuse_after,
    size_of,
)
from allocators.shared.maxtree import tree_first_at_least
from allocators.shared.sysmem import malloc_from_top
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True)
def _list_find(words, memory, nb):
    """First or next fit over the lifo/fifo list: walk until a chunk is large enough."""
    sentinel = words[S_ARENA]
    head = memory[(sentinel >> 3) + W_FD]
    start = head
    if words[S_NEXT_FIT] != 0:
        start = words[S_ROVER]
        if start == sentinel:
            start = head
    steps = 0
    found = NIL
    chunk = start
    while chunk != sentinel:
        steps += 1
        if size_of(memory, chunk) >= nb:
            found = chunk
            break
        chunk = memory[(chunk >> 3) + W_FD]
    if found == NIL and start != head:
        chunk = head
        while chunk != start:
            steps += 1
            if size_of(memory, chunk) >= nb:
                found = chunk
                break
            chunk = memory[(chunk >> 3) + W_FD]
    words[C_SEARCH_STEPS] += steps
    return found


@njit(cache=True)
def _find_plain(words, memory, tree, sizebits, sizeheads, nb):
    """The free chunk the policy picks for nb, or NIL (not removed)."""
    mode = words[S_MODE]
    shift = words[S_GRAN_SHIFT]
    if mode == MODE_LIST:
        return _list_find(words, memory, nb)
    if mode == MODE_TREE:
        start = words[S_ROVER] if words[S_NEXT_FIT] != 0 else 0
        words[C_SEARCH_STEPS] += 1
        slot = tree_first_at_least(tree, start, nb >> shift)
        if slot < 0 and start > 0:
            words[C_SEARCH_STEPS] += 1
            slot = tree_first_at_least(tree, 0, nb >> shift)
        return slot << shift if slot >= 0 else NIL
    words[C_SEARCH_STEPS] += 1
    slot = bitset_next(sizebits, nb >> shift)
    return sizeheads[slot] if slot >= 0 else NIL


@njit(cache=True)
def malloc_plain(state, nb):
    """The chunk the policy picks for nb (split when the rest is at least min_chunk), else one cut from top;
    NIL when there is no memory."""
    words, memory, maptree = state[I_WORDS], state[I_MEMORY], state[I_MAPTREE]
    tree, sizebits, sizeheads = state[I_TREE], state[I_SIZEBITS], state[I_SIZEHEADS]
    mode = words[S_MODE]
    shift = words[S_GRAN_SHIFT]
    victim = _find_plain(words, memory, tree, sizebits, sizeheads, nb)
    if victim < 0 and words[S_HAVE_FAST] != 0:
        malloc_consolidate(state)
        victim = _find_plain(words, memory, tree, sizebits, sizeheads, nb)
    if victim < 0:
        chunk = malloc_from_top(words, memory, maptree, nb)
        if mode == MODE_TREE:
            words[S_ROVER] = words[S_TOP] >> shift
        return chunk
    size = size_of(memory, victim)
    rest = size - nb
    if rest >= words[S_MIN_CHUNK]:
        remainder = victim + nb
        memory[(victim >> 3) + W_SIZE] = nb | PREV_INUSE
        set_free_chunk(memory, remainder, rest)
        if mode == MODE_LIST:
            # the remainder takes the victim's place in the list
            memory[(remainder >> 3) + W_FD] = memory[(victim >> 3) + W_FD]
            memory[(remainder >> 3) + W_BK] = memory[(victim >> 3) + W_BK]
            memory[(memory[(victim >> 3) + W_FD] >> 3) + W_BK] = remainder
            memory[(memory[(victim >> 3) + W_BK] >> 3) + W_FD] = remainder
            words[S_ROVER] = remainder
        else:
            index_remove(words, memory, tree, sizebits, sizeheads, victim, size)
            index_insert(words, memory, tree, sizebits, sizeheads, remainder, rest)
            words[S_ROVER] = remainder >> shift
        words[C_SPLITS] += 1
    else:
        index_remove(words, memory, tree, sizebits, sizeheads, victim, size)
        set_inuse_after(memory, victim, size)
        if mode == MODE_LIST:
            words[S_ROVER] = memory[(victim >> 3) + W_FD]  # unlinking leaves the victim's own links
        else:
            words[S_ROVER] = (victim + size) >> shift
    words[S_METADATA] += words[S_HEADER]
    return victim
