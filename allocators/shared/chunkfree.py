"""Freeing a chunk: tcache, fastbins, boundary-tag coalescing, the free-chunk index, malloc_consolidate, trim.

Shared by `allocators.freelist` (every fit policy) and `allocators.glibc`
(whose malloc consolidates the fastbins); chunk words, state slots and
counters as in `shared.chunks`.  This is glibc's _int_free (2.26 .. 2.41)
with the free-chunk index of each mode (words[S_MODE]) behind it:

- `int_free`: the calling thread's tcache if its bin has room (the chunk
  stays "in use" for the heap); else, for a chunk of at most max_fast bytes,
  the front of its fastbin (in use too: no coalescing until
  malloc_consolidate); else `free_chunk`.
- `merge_chunk`: boundary-tag coalescing in O(1): merge backward if our
  PREV_INUSE is clear (the previous chunk starts prev_size bytes before us),
  forward if the next chunk is free, into top if the next chunk is top (free
  chunks are therefore never adjacent); the result is filed by `index_insert`.
- `free_chunk`: merge, then glibc's rule for big frees: a merged chunk of at
  least FASTBIN_CONSOLIDATION_THRESHOLD (64 KiB) consolidates the fastbins
  and, when top is at least trim_threshold (0 = never), trims it
  (`shared.sysmem.systrim`).
- `malloc_consolidate`: empty every fastbin, merging each chunk as a free would.
- `index_insert` / `index_remove`: where a free chunk is filed and found:
  the front or back of one list (MODE_LIST, bin 0), the address tree
  (MODE_TREE, `shared.maxtree`: slot = chunk start in granules, value = its
  size in granules), the exact-size lists (MODE_SIZES, `shared.sizelists`),
  or glibc's unsorted bin, from which malloc sorts it into its bin
  (MODE_GLIBC, `shared.glibc_bins`).
"""

from numba import njit

from allocators.detections import (
    D_CONSOLIDATE_SIZE,
    D_CONSOLIDATE_UNALIGNED,
    D_FASTBINS_PREV_SIZE,
    ST_CORRUPTED,
)
from allocators.errors import ST_OK
from allocators.shared.chunkchecks import check_fastbin_chunk, check_merge
from allocators.shared.chunks import (
    BIN_STRIDE,
    C_COALESCES,
    C_CONSOLIDATIONS,
    C_FASTBIN_PUTS,
    C_TCACHE_PUTS,
    I_MEMORY,
    I_SIZEBITS,
    I_SIZEHEADS,
    I_TCACHE,
    I_TREE,
    I_WORDS,
    MODE_GLIBC,
    MODE_SIZES,
    MODE_TREE,
    NFASTBINS,
    NIL,
    ORDER_LIFO,
    PREV_INUSE,
    S_ARENA,
    S_BRK,
    S_CHECKS,
    S_FASTBINS,
    S_GRAN_SHIFT,
    S_HAVE_FAST,
    S_HEADER,
    S_MAX_FAST,
    S_METADATA,
    S_MIN_CHUNK,
    S_MODE,
    S_ORDER,
    S_ROVER,
    S_TC_BINS,
    S_TC_COUNT,
    S_TOP,
    S_TRIM_THRESHOLD,
    SIZE_MASK,
    W_BK,
    W_BK_NEXTSIZE,
    W_FD,
    W_FD_NEXTSIZE,
    W_PREV_SIZE,
    W_SIZE,
    link_after,
    protect,
    set_free_chunk,
    set_top,
    size_of,
    tcache_put,
    unlink,
)
from allocators.shared.glibc_bins import MIN_LARGE_SIZE, UNSORTED_BIN, unlink_chunk
from allocators.shared.maxtree import tree_set
from allocators.shared.sizelists import sizes_insert, sizes_remove
from allocators.shared.sysmem import systrim
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: glibc FASTBIN_CONSOLIDATION_THRESHOLD: a free that merges into a chunk this large consolidates (and trims).
FASTBIN_CONSOLIDATION_THRESHOLD = 65536


# ------------------------------------------------- the free-chunk index (all modes)
@njit(cache=True)
def index_insert(words, memory, tree, sizebits, sizeheads, chunk, size):
    """A chunk just became free (after coalescing): file it where the policy looks for it."""
    mode = words[S_MODE]
    if mode == MODE_GLIBC:
        link_after(memory, words[S_ARENA] + UNSORTED_BIN * BIN_STRIDE, chunk)
        if size >= MIN_LARGE_SIZE:
            memory[(chunk >> 3) + W_FD_NEXTSIZE] = NIL
            memory[(chunk >> 3) + W_BK_NEXTSIZE] = NIL
    elif mode == MODE_TREE:
        shift = words[S_GRAN_SHIFT]
        tree_set(tree, chunk >> shift, size >> shift)
    elif mode == MODE_SIZES:
        sizes_insert(words, memory, sizebits, sizeheads, chunk, size)
    else:
        sentinel = words[S_ARENA]
        if words[S_ORDER] == ORDER_LIFO:
            link_after(memory, sentinel, chunk)
        else:
            link_after(memory, memory[(sentinel >> 3) + W_BK], chunk)


@njit(cache=True)
def index_remove(words, memory, tree, sizebits, sizeheads, chunk, size):
    mode = words[S_MODE]
    if mode == MODE_GLIBC:
        unlink_chunk(memory, chunk, size)
    elif mode == MODE_TREE:
        tree_set(tree, chunk >> words[S_GRAN_SHIFT], 0)
    elif mode == MODE_SIZES:
        sizes_remove(words, memory, sizebits, sizeheads, chunk, size)
    else:
        if words[S_ROVER] == chunk:
            words[S_ROVER] = memory[(chunk >> 3) + W_FD]
        unlink(memory, chunk)


# ------------------------------------------------------------------ coalescing
@njit(cache=True)
def merge_chunk(state, chunk):
    """Coalesce a chunk that stops being in use with its free neighbours (or top) and file the result
    where the policy finds it (glibc: the front of the unsorted bin).  Returns the merged size."""
    words, memory = state[I_WORDS], state[I_MEMORY]
    tree, sizebits, sizeheads = state[I_TREE], state[I_SIZEBITS], state[I_SIZEHEADS]
    cw = chunk >> 3
    head = memory[cw + W_SIZE]
    size = head & SIZE_MASK
    words[S_METADATA] -= words[S_HEADER]
    nxt = chunk + size
    if head & PREV_INUSE == 0:
        before = memory[cw + W_PREV_SIZE]
        chunk -= before
        size += before
        index_remove(words, memory, tree, sizebits, sizeheads, chunk, before)
        words[C_COALESCES] += 1
    top = words[S_TOP]
    if nxt != top:
        nw = nxt >> 3
        next_size = memory[nw + W_SIZE] & SIZE_MASK
        if memory[((nxt + next_size) >> 3) + W_SIZE] & PREV_INUSE == 0:
            index_remove(words, memory, tree, sizebits, sizeheads, nxt, next_size)
            size += next_size
            words[C_COALESCES] += 1
        else:
            memory[nw + W_SIZE] &= ~PREV_INUSE
        set_free_chunk(memory, chunk, size)
        index_insert(words, memory, tree, sizebits, sizeheads, chunk, size)
    else:
        size += words[S_BRK] - top
        set_top(words, memory, chunk)
        words[C_COALESCES] += 1
    return size


@njit(cache=True)
def malloc_consolidate(state):
    """glibc malloc_consolidate: empty every fastbin, coalescing each chunk as a free would.  With checks
    (words[S_CHECKS]) each chunk's alignment, size and neighbours are checked first, as glibc does; ST_OK or the
    status of the first check that fires (the fastbins are then left as they were from that chunk on)."""
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    checks = words[S_CHECKS] != 0
    words[S_HAVE_FAST] = 0
    words[C_CONSOLIDATIONS] += 1
    steps_left = (words[S_BRK] >> 4) + 1  # more chunks than the heap can hold: a cycle
    for index in range(NFASTBINS):
        chunk = words[S_FASTBINS + index]
        words[S_FASTBINS + index] = NIL
        while chunk != NIL:
            if checks:
                status = _check_consolidate(words, memory, chunk, index)
                steps_left -= 1
                if status == ST_OK and steps_left < 0:
                    status = ST_CORRUPTED
                if status < 0:
                    words[S_FASTBINS + index] = chunk
                    words[S_HAVE_FAST] = 1
                    return status
                following = protect(chunk + 8 * W_FD, memory[(chunk >> 3) + W_FD])
            else:
                following = memory[(chunk >> 3) + W_FD]
            merge_chunk(state, chunk)
            chunk = following
    return ST_OK


@njit(cache=True)
def _check_consolidate(words, memory, chunk, index):
    """malloc_consolidate's checks on one fastbin chunk, then those of merging it."""
    status = check_fastbin_chunk(words, memory, chunk, index, 8 * (W_BK_NEXTSIZE + 1), D_CONSOLIDATE_UNALIGNED,
                                 D_CONSOLIDATE_SIZE)
    if status < 0:
        return status
    return check_merge(words, memory, chunk, D_FASTBINS_PREV_SIZE)


# ------------------------------------------------------------------------ free
@njit(cache=True)
def free_chunk(state, chunk):
    """The coalescing part of glibc _int_free, with its consolidation and trim rule for big frees.
    ST_OK, or the status of a check that fired in malloc_consolidate."""
    words = state[I_WORDS]
    size = merge_chunk(state, chunk)
    if size >= FASTBIN_CONSOLIDATION_THRESHOLD:
        if words[S_HAVE_FAST] != 0:
            status = malloc_consolidate(state)
            if status < 0:
                return status
        if words[S_TRIM_THRESHOLD] > 0 and words[S_BRK] - words[S_TOP] >= words[S_TRIM_THRESHOLD]:
            systrim(words, state[I_MEMORY])
    return ST_OK


@njit(cache=True)
def int_free(state, chunk, tbase):
    """glibc _int_free (2.26 .. 2.41): the calling thread's tcache if it has room, else a fastbin for
    small chunks (they stay in use: no coalescing until malloc_consolidate), else coalesce.  glibc's checks
    of the chunk are the caller's (`shared.chunkchecks.check_free`); ST_OK or a status from consolidation."""
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    size = size_of(memory, chunk)
    index = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
    if tbase >= 0 and index < words[S_TC_BINS]:
        tcache = state[I_TCACHE]
        slot = tbase + 2 + 2 * index
        if tcache[slot + 1] < words[S_TC_COUNT]:
            tcache_put(words, memory, tcache, slot, chunk)
            words[C_TCACHE_PUTS] += 1
            return ST_OK
    if size <= words[S_MAX_FAST]:
        if words[S_CHECKS] != 0:
            memory[(chunk >> 3) + W_FD] = protect(chunk + 8 * W_FD, words[S_FASTBINS + index])
        else:
            memory[(chunk >> 3) + W_FD] = words[S_FASTBINS + index]
        words[S_FASTBINS + index] = chunk
        words[S_HAVE_FAST] = 1
        words[C_FASTBIN_PUTS] += 1
        return ST_OK
    return free_chunk(state, chunk)
