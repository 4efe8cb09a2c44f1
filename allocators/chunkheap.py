"""The chunk heap's kernels: malloc's front end, free, realloc, reset, and the safety kernels.

The design (boundary-tag chunks in a simulated memory, the fit policies, the
tcache and fastbins, glibc's bins and checks) is in `allocators.freelist`,
whose class is the thin shell around these kernels; the chunk words and the
state layout are in `shared.chunks`.  Hot path: `alloc_block` and
`free_block` serve a tcache hit inline (a few loads and stores); everything
else goes through the slow paths `_malloc_slow` / `_malloc_core` (fastbins,
then `plainfit.malloc_plain` or `glibc.malloc_glibc`, then top) and
`_free_slow` (munmap, or `shared.chunkfree.int_free`).  With glibc's checks
on (words[S_CHECKS]), `free_block` first runs `shared.chunkchecks.check_free`
and the tcache and fastbin links are safe-linked.
"""


from __future__ import annotations

import numpy as np
from numba import njit

from allocators.detections import (
    D_FASTBIN_STASH_UNALIGNED,
    D_REALLOC_NEXT_SIZE,
    D_REALLOC_OLD_SIZE,
    D_REALLOC_POINTER,
    D_SEGV,
    FOREIGN_BYTES,
    FOREIGN_GAP,
    SafetyKernels,
    detected,
)
from allocators.errors import ST_OK
from allocators.glibc import malloc_glibc
from allocators.plainfit import malloc_plain
from allocators.shared.bitset import bitset_clear_all
from allocators.shared.chunkchecks import CHUNK_HDR_SZ, UNMAPPED, check_fastbin_victim, check_free, check_unlink
from allocators.shared.chunkfree import index_remove, int_free, malloc_consolidate
from allocators.shared.chunks import (
    C_ALLOCS,
    C_COALESCES,
    C_FREES,
    C_REALLOCS_IN_PLACE,
    C_RESETS,
    C_SEARCH_STEPS,
    C_SPLITS,
    C_TCACHE_HITS,
    C_TCACHE_PUTS,
    I_MAPTREE,
    I_MEMORY,
    I_SIZEBITS,
    I_SIZEHEADS,
    I_TCACHE,
    I_TREE,
    I_WORDS,
    IS_MMAPPED,
    MODE_GLIBC,
    MODE_LIST,
    MODE_SIZES,
    MODE_TREE,
    NFASTBINS,
    NIL,
    PREV_INUSE,
    S_ARENA,
    S_BRK,
    S_CHECKS,
    S_FASTBINS,
    S_FIXED_METADATA,
    S_FOOTPRINT,
    S_GRAN,
    S_GRAN_SHIFT,
    S_HAVE_FAST,
    S_HEADER,
    S_HEAP_LIMIT,
    S_MAP_TOP,
    S_MAPPED,
    S_MAX_FAST,
    S_METADATA,
    S_MIN_CHUNK,
    S_MMAP_DYNAMIC,
    S_MMAP_THRESHOLD,
    S_MMAP_THRESHOLD_MAX,
    S_MODE,
    S_PAGE,
    S_PAGE_SHIFT,
    S_RETAINED,
    S_ROVER,
    S_TC_BINS,
    S_TC_COUNT,
    S_TC_STRIDE,
    S_TC_STRUCT_BYTES,
    S_TOP,
    S_TRIM_THRESHOLD,
    S_USER_OFFSET,
    SIZE_MASK,
    W_BK,
    W_FD,
    W_SIZE,
    protect,
    readable,
    set_inuse_after,
    set_top,
    size_of,
    tcache_get,
    tcache_put,
)
from allocators.shared.glibc_bins import MIN_LARGE_SIZE, init_bins
from allocators.shared.maxtree import tree_clear_range, tree_get, tree_last_at_least
from allocators.shared.sysmem import mremap_chunk, munmap_chunk
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

# ------------------------------------------------------------ malloc / free
@njit(cache=True)
def _malloc_core(state, nb, tbase):
    """glibc _int_malloc: the fastbins (and their tcache stashing), then the policy's search, then top.
    A chunk address, or a negative status (out of memory, a check that fired)."""
    words, memory, tcache = state[I_WORDS], state[I_MEMORY], state[I_TCACHE]
    checks = words[S_CHECKS] != 0
    if nb <= words[S_MAX_FAST]:
        index = (nb - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
        victim = words[S_FASTBINS + index]
        if victim != NIL:
            if checks:
                status = check_fastbin_victim(words, memory, victim, index)
                if status < 0:
                    return status
                words[S_FASTBINS + index] = protect(victim + 8 * W_FD, memory[(victim >> 3) + W_FD])
            else:
                words[S_FASTBINS + index] = memory[(victim >> 3) + W_FD]
            words[C_SEARCH_STEPS] += 1
            if tbase >= 0 and index < words[S_TC_BINS]:
                slot = tbase + 2 + 2 * index
                while tcache[slot + 1] < words[S_TC_COUNT]:
                    cached = words[S_FASTBINS + index]
                    if cached == NIL:
                        break
                    if checks:
                        if cached & 15 != 0:
                            return detected(D_FASTBIN_STASH_UNALIGNED)
                        if not readable(words, memory, cached, 8 * (W_BK + 1)):
                            return detected(D_SEGV)
                        words[S_FASTBINS + index] = protect(cached + 8 * W_FD, memory[(cached >> 3) + W_FD])
                    else:
                        words[S_FASTBINS + index] = memory[(cached >> 3) + W_FD]
                    tcache_put(words, memory, tcache, slot, cached)
                    words[C_TCACHE_PUTS] += 1
            return victim
    if nb >= MIN_LARGE_SIZE and words[S_HAVE_FAST] != 0:
        status = malloc_consolidate(state)
        if status < 0:
            return status
    if words[S_MODE] == MODE_GLIBC:
        return malloc_glibc(state, nb, tbase)
    return malloc_plain(state, nb)


@njit(cache=True)
def _tcache_init(state, thread):
    """A thread's first call: allocate its tcache_perthread_struct from the heap (without a tcache)."""
    words = state[I_WORDS]
    tcache = state[I_TCACHE]
    struct_bytes = words[S_TC_STRUCT_BYTES]
    mask = words[S_GRAN] - 1
    nb = (struct_bytes + words[S_HEADER] + mask) & ~mask
    if nb < words[S_MIN_CHUNK]:
        nb = words[S_MIN_CHUNK]
    chunk = _malloc_core(state, nb, -1)
    if chunk < 0:
        return False
    base = thread * words[S_TC_STRIDE]
    tcache[base] = 1
    for index in range(words[S_TC_BINS]):  # every bin empty: head NULL (NIL), count 0
        tcache[base + 2 + 2 * index] = NIL
        tcache[base + 3 + 2 * index] = 0
    words[S_METADATA] += struct_bytes
    return True


@njit(cache=True)
def _malloc_slow(state, nb, thread):
    words = state[I_WORDS]
    tbase = -1
    if words[S_TC_BINS] > 0:
        tbase = thread * words[S_TC_STRIDE]
        if state[I_TCACHE][tbase] == 0 and not _tcache_init(state, thread):
            tbase = -1
    return _malloc_core(state, nb, tbase)


@njit(cache=True)
def _free_slow(state, chunk, thread):
    """free() beyond the inlined tcache path: mapped chunks are unmapped, the rest go to _int_free."""
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    head = memory[(chunk >> 3) + W_SIZE]
    size = head & SIZE_MASK
    if head & IS_MMAPPED:
        if (words[S_MMAP_DYNAMIC] != 0 and size > words[S_MMAP_THRESHOLD]
                and size <= words[S_MMAP_THRESHOLD_MAX]):
            words[S_MMAP_THRESHOLD] = size
            words[S_TRIM_THRESHOLD] = 2 * size
        munmap_chunk(words, state[I_MAPTREE], chunk, size)
        if words[S_CHECKS] != 0:
            memory[(chunk >> 3) + W_SIZE] = UNMAPPED  # a later read of this header faults
        return ST_OK, size - words[S_USER_OFFSET]
    tbase = -1
    if words[S_TC_BINS] > 0:
        tbase = thread * words[S_TC_STRIDE]
        if state[I_TCACHE][tbase] == 0 and not _tcache_init(state, thread):
            tbase = -1
    status = int_free(state, chunk, tbase)
    if status < 0:
        return status, 0
    return ST_OK, size - words[S_HEADER]


# -------------------------------------------------------------------- kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    tcache = state[I_TCACHE]
    header = words[S_HEADER]
    mask = words[S_GRAN] - 1
    nb = (size + header + mask) & ~mask
    min_chunk = words[S_MIN_CHUNK]
    if nb < min_chunk:
        nb = min_chunk
    tidx = (nb - min_chunk) >> words[S_GRAN_SHIFT]
    if tidx < words[S_TC_BINS]:
        slot = thread * words[S_TC_STRIDE] + 2 + 2 * tidx
        if tcache[slot + 1] > 0:
            if words[S_CHECKS] != 0:
                chunk = tcache_get(words, memory, tcache, slot)
                if chunk < 0:
                    return chunk, 0
            else:
                chunk = tcache[slot]
                tcache[slot] = memory[(chunk >> 3) + W_FD]
                tcache[slot + 1] -= 1
            words[C_TCACHE_HITS] += 1
            words[C_ALLOCS] += 1
            return chunk + words[S_USER_OFFSET], nb - header
    chunk = _malloc_slow(state, nb, thread)
    if chunk < 0:
        return chunk, 0
    words[C_ALLOCS] += 1
    head = memory[(chunk >> 3) + W_SIZE]
    if head & IS_MMAPPED:
        return chunk + words[S_USER_OFFSET], (head & SIZE_MASK) - words[S_USER_OFFSET]
    return chunk + words[S_USER_OFFSET], (head & SIZE_MASK) - header


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    tcache = state[I_TCACHE]
    chunk = addr - words[S_USER_OFFSET]
    if words[S_CHECKS] != 0:
        status = _check_free_of(state, chunk, thread)
        if status < 0:
            return status, 0
    head = memory[(chunk >> 3) + W_SIZE]
    words[C_FREES] += 1
    if head & IS_MMAPPED == 0:
        size = head & SIZE_MASK
        tidx = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
        if tidx < words[S_TC_BINS]:
            tbase = thread * words[S_TC_STRIDE]
            slot = tbase + 2 + 2 * tidx
            if tcache[slot + 1] < words[S_TC_COUNT] and tcache[tbase] != 0:
                tcache_put(words, memory, tcache, slot, chunk)
                words[C_TCACHE_PUTS] += 1
                return ST_OK, size - words[S_HEADER]
    return _free_slow(state, chunk, thread)


@njit(cache=True)
def _check_free_of(state, chunk, thread):
    """glibc's checks of a free() (`shared.chunkchecks.check_free`), with the thread's tcache if it has one."""
    words = state[I_WORDS]
    tbase = -1
    if words[S_TC_BINS] > 0 and state[I_TCACHE][thread * words[S_TC_STRIDE]] != 0:
        tbase = thread * words[S_TC_STRIDE]
    return check_free(words, state[I_MEMORY], state[I_TCACHE], chunk, tbase)


# ------------------------------------------------------------ safety kernels
@njit(cache=True)
def free_checked(state, addr, thread):
    """free() of any address (with checks on, free_block's checks see every pointer before it is trusted)."""
    return free_block(state, addr, thread)


@njit(cache=True)
def write_bytes(state, addr, nbytes, byte):
    """The program writes `nbytes` x `byte` from `addr` into the simulated memory: the brk heap, or a mapped
    chunk's pages.  The foreign buffer past the heap absorbs writes; anything else is a SIGSEGV (the write
    stops at the first such byte, as a memset would)."""
    words, memory, maptree = state[I_WORDS], state[I_MEMORY], state[I_MAPTREE]
    raw = memory.view(np.uint8)
    shift = words[S_PAGE_SHIFT]
    foreign = words[S_MAP_TOP] + FOREIGN_GAP - 2 * words[S_PAGE]
    mapped_page = -1  # the last page of the mmap region found mapped (one hole lookup per page, not per byte)
    for at in range(addr, addr + nbytes):
        if 0 <= at < words[S_BRK]:
            raw[at] = byte
        elif words[S_HEAP_LIMIT] <= at < words[S_MAP_TOP]:
            page = at >> shift
            if page != mapped_page:
                hole = tree_last_at_least(maptree, page, 1)
                if hole >= 0 and hole + tree_get(maptree, hole) > page:
                    return detected(D_SEGV)  # a page munmap released
                mapped_page = page
            raw[at] = byte
        elif not foreign <= at < foreign + FOREIGN_BYTES + 4 * words[S_PAGE]:
            return detected(D_SEGV)
    return ST_OK


SAFETY_KERNELS = SafetyKernels(free_checked, write_bytes)


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[I_WORDS]
    return words[S_FOOTPRINT], words[S_METADATA]


@njit(cache=True)
def realloc_in_place(state, addr, granted, new_size, thread):
    """The whole of glibc's realloc (__libc_realloc / _int_realloc), so the driver's malloc-copy-free
    fallback is never needed except when memory runs out:

    - a mapped chunk is remapped (mremap_chunk): same pages, fewer pages (tail unmapped), more pages in
      place when the pages above are free, else moved to a new mapping; it stays mapped;
    - a heap chunk that is large enough stays; one that is too small grows into top (if top keeps
      min_chunk) or into a free next chunk; otherwise _int_malloc (no tcache lookup) gives a new chunk,
      which is used in place when it is the very next chunk, and the old chunk is freed (tcache first);
    - the tail beyond the new size is split off and freed when it is at least min_chunk (tcache first).

    Returns (address, granted) — a different address when the block moved — or (-1, 0) when no memory."""
    words, memory, tcache, maptree = state[I_WORDS], state[I_MEMORY], state[I_TCACHE], state[I_MAPTREE]
    tree, sizebits, sizeheads = state[I_TREE], state[I_SIZEBITS], state[I_SIZEHEADS]
    header = words[S_HEADER]
    user_offset = words[S_USER_OFFSET]
    mask = words[S_GRAN] - 1
    min_chunk = words[S_MIN_CHUNK]
    nb = (new_size + header + mask) & ~mask
    if nb < min_chunk:
        nb = min_chunk
    chunk = addr - user_offset
    cw = chunk >> 3
    if words[S_CHECKS] != 0:
        status = _check_realloc(words, memory, tcache, chunk)
        if status < 0:
            return status, 0
    head = memory[cw + W_SIZE]
    size = head & SIZE_MASK
    if head & IS_MMAPPED:
        moved = mremap_chunk(words, memory, maptree, chunk, size, nb)
        if moved < 0:
            return -1, 0
        if moved == chunk:
            words[C_REALLOCS_IN_PLACE] += 1
        else:
            words[C_ALLOCS] += 1
            words[C_FREES] += 1
        return moved + user_offset, size_of(memory, moved) - user_offset
    tbase = -1
    if words[S_TC_BINS] > 0 and tcache[thread * words[S_TC_STRIDE]] != 0:
        tbase = thread * words[S_TC_STRIDE]
    if nb > size:
        nxt = chunk + size
        top = words[S_TOP]
        if nxt == top and size + words[S_BRK] - top >= nb + min_chunk:
            memory[cw + W_SIZE] = nb | (head & PREV_INUSE)
            set_top(words, memory, chunk + nb)
            words[C_REALLOCS_IN_PLACE] += 1
            return addr, nb - header
        next_size = memory[(nxt >> 3) + W_SIZE] & SIZE_MASK
        if nxt != top and memory[((nxt + next_size) >> 3) + W_SIZE] & PREV_INUSE == 0 and size + next_size >= nb:
            index_remove(words, memory, tree, sizebits, sizeheads, nxt, next_size)
            size += next_size
            memory[cw + W_SIZE] = size | (head & PREV_INUSE)
            set_inuse_after(memory, chunk, size)
            words[C_COALESCES] += 1
        else:
            fresh = _malloc_core(state, nb, tbase)
            if fresh < 0:
                return -1, 0
            if fresh != nxt:
                if words[S_CHECKS] != 0:
                    status = check_free(words, memory, tcache, chunk, tbase)
                    if status == ST_OK:
                        status = int_free(state, chunk, tbase)
                    if status < 0:
                        return status, 0
                else:
                    int_free(state, chunk, tbase)
                words[C_ALLOCS] += 1
                words[C_FREES] += 1
                fresh_head = memory[(fresh >> 3) + W_SIZE]
                if fresh_head & IS_MMAPPED:
                    return fresh + user_offset, (fresh_head & SIZE_MASK) - user_offset
                return fresh + user_offset, (fresh_head & SIZE_MASK) - header
            # the new chunk is the next one (top grew): take both, no copy.  The flag is read again, as glibc's
            # set_head_size does: _int_malloc may have consolidated a fastbin chunk before this one into a free one
            size += size_of(memory, fresh)
            memory[cw + W_SIZE] = size | (memory[cw + W_SIZE] & PREV_INUSE)
            words[S_METADATA] -= header
    rest = size - nb
    granted = size - header
    if rest >= min_chunk:
        remainder = chunk + nb
        memory[cw + W_SIZE] = nb | (memory[cw + W_SIZE] & PREV_INUSE)
        memory[(remainder >> 3) + W_SIZE] = rest | PREV_INUSE
        set_inuse_after(memory, remainder, rest)
        words[S_METADATA] += header  # the remainder is an in-use chunk until it is freed
        words[C_SPLITS] += 1
        status = int_free(state, remainder, tbase)
        if status < 0:
            return status, 0
        granted = nb - header
    words[C_REALLOCS_IN_PLACE] += 1
    return addr, granted


@njit(cache=True)
def _check_realloc(words, memory, tcache, chunk):
    """glibc __libc_realloc's and _int_realloc's checks of the old chunk and the one after it."""
    if not readable(words, memory, chunk, 8 * (W_BK + 1)) or memory[(chunk >> 3) + W_SIZE] == UNMAPPED:
        return detected(D_SEGV)
    head = memory[(chunk >> 3) + W_SIZE]
    size = head & SIZE_MASK
    if size < 0 or chunk + size < chunk or chunk & 15:
        return detected(D_REALLOC_POINTER)
    if head & IS_MMAPPED:
        return check_free(words, memory, tcache, chunk, -1)  # munmap_chunk's page checks (as mremap_chunk's)
    if head <= CHUNK_HDR_SZ or size >= words[S_BRK]:
        return detected(D_REALLOC_OLD_SIZE)
    following = chunk + size
    if not readable(words, memory, following, 8 * (W_SIZE + 1)):
        return detected(D_SEGV)
    next_head = memory[(following >> 3) + W_SIZE]
    if next_head <= CHUNK_HDR_SZ or next_head & SIZE_MASK >= words[S_BRK]:
        return detected(D_REALLOC_NEXT_SIZE)
    if following != words[S_TOP]:
        after = following + (next_head & SIZE_MASK)
        if not readable(words, memory, after, 8 * (W_SIZE + 1)):
            return detected(D_SEGV)
        if memory[(after >> 3) + W_SIZE] & PREV_INUSE == 0:
            return check_unlink(words, memory, following)
    return ST_OK


@njit(cache=True)
def init_arena(words, memory):
    init_bins(words, memory)
    words[S_ROVER] = words[S_ARENA] if words[S_MODE] == MODE_LIST else 0


@njit(cache=True)
def reset_state(state):
    """free(): every chunk back, the whole heap one top chunk; the break and the footprint stay.

    Mapped chunks are released too, but their bytes stay in the footprint as `retained` memory, which
    later mappings use first (a reset keeps the memory taken so far)."""
    words, memory, tcache, maptree = state[I_WORDS], state[I_MEMORY], state[I_TCACHE], state[I_MAPTREE]
    tree, sizebits = state[I_TREE], state[I_SIZEBITS]
    shift = words[S_PAGE_SHIFT]
    if words[S_HEAP_LIMIT] < words[S_MAP_TOP]:
        tree_clear_range(maptree, words[S_HEAP_LIMIT] >> shift, (words[S_MAP_TOP] >> shift) + 1)
    words[S_RETAINED] += words[S_MAPPED]
    words[S_MAPPED] = 0
    words[S_HEAP_LIMIT] = words[S_MAP_TOP]
    if words[S_MODE] == MODE_TREE:
        tree_clear_range(tree, 0, (words[S_BRK] >> words[S_GRAN_SHIFT]) + 1)
    elif words[S_MODE] == MODE_SIZES:
        bitset_clear_all(sizebits)
    init_arena(words, memory)
    for index in range(NFASTBINS):
        words[S_FASTBINS + index] = NIL
    words[S_HAVE_FAST] = 0
    tcache[:] = 0
    set_top(words, memory, 0)
    words[S_METADATA] = words[S_FIXED_METADATA]
    words[C_RESETS] += 1


@njit(cache=True)
def walk_heap(state, out):
    """Fill out[k] = (address, size, state) for every chunk from 0 to top: 0 in use, 1 free, 2 top."""
    words = state[I_WORDS]
    memory = state[I_MEMORY]
    top = words[S_TOP]
    chunk = 0
    count = 0
    while chunk < top and count < out.shape[0]:
        size = size_of(memory, chunk)
        out[count, 0] = chunk
        out[count, 1] = size
        out[count, 2] = 0 if memory[((chunk + size) >> 3) + W_SIZE] & PREV_INUSE else 1
        chunk += size
        count += 1
    if count < out.shape[0]:
        out[count, 0] = top
        out[count, 1] = words[S_BRK] - top
        out[count, 2] = 2
        count += 1
    return count
