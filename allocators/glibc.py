"""glibc: the model of glibc's malloc (ptmalloc2) behind `freelist:glibc` (`bins="glibc"`).

What it builds on.  `allocators.freelist` is the allocator: its class
`Freelist` (with the `glibc` preset), the replay kernels, the inlined tcache
paths of malloc and free, the fastbin lookup, realloc and reset.  Its heap of
boundary-tag chunks, top chunk and mmapped chunks is shared with the generic
fit policies: `shared.chunks` (chunk words, state layout), `shared.sysmem`
(top, sbrk, trim, mmap), `shared.chunkfree` (glibc's _int_free: tcache,
fastbins, coalescing, malloc_consolidate; a freed chunk goes to the front of
the unsorted bin).  This module is what the preset adds: glibc's _int_malloc
after the fastbins (`malloc_glibc`), over the bins of `shared.glibc_bins`
(size arithmetic, unlink_chunk, sorting into a bin).  freelist's malloc calls
it for every request that neither a tcache nor a fastbin serves when
words[S_MODE] == MODE_GLIBC.

The preset: ptmalloc2 of glibc 2.30 .. 2.41 on x86-64, one arena: 16 B
granularity, 32 B minimum chunk, 8 B effective header (request2size); tcache
64 bins x 7 (chunk sizes 32..1040) in front; fastbins for chunks up to 128 B
(DEFAULT_MXFAST); the unsorted bin (freed and remainder chunks get one chance
to be used before being binned, exact fits are stashed in the tcache); 62
small bins of one size each (insert at the front, take from the back,
same-size chunks stashed in the tcache); 63 large bins sorted by size with
the fd_nextsize/bk_nextsize skip list (best fit, ties to the second chunk of a
size); the binmap scan for the next non-empty bin; the last-remainder rule for
small requests; top with M_TOP_PAD = 128 KiB (DEFAULT_TOP_PAD of
sysdeps/generic/malloc-machine.h, which overrides malloc.c's 0: the first sbrk
is 132 KiB) and trim_threshold 128 KiB; chunks >= the mmap threshold (128 KiB)
that neither the bins nor top can serve are mmapped (`round_up(nb + 8, 4096)`
bytes, usable size - 16) and unmapped on free, and freeing a mapped chunk
larger than the threshold (up to 32 MiB) raises the threshold to its size and
trim_threshold to twice that (glibc's dynamic threshold); realloc as
__libc_realloc.

malloc_glibc (nb = the chunk size; tcache stashing only when the calling
thread has a tcache):
1. a small request (nb < 1024) whose small bin is non-empty takes the bin's
   last chunk, and moves the bin's other chunks into the tcache while it has
   room;
2. the unsorted bin is emptied from its back: a small request takes the last
   remainder when it is the only unsorted chunk and is larger than nb +
   min_chunk (split; the rest stays the last remainder); an exact fit goes to
   the tcache while it has room (and the request is served from there
   afterwards) or is taken; anything else is sorted into its bin
   (`place_in_bin`), at most MAX_ITERS chunks per pass;
3. a large request looks in its own bin: the smallest chunk >= nb, walking
   the skip list from the smallest size up, and of a size with several
   chunks the second (so the skip list's head stays);
4. the binmap gives the next non-empty bin above (a clear bit is a false
   alarm cleared on the way); its last chunk is the smallest there, and a
   rest of at least min_chunk is split off into the unsorted bin (for a
   small request it becomes the last remainder);
5. else top (`shared.sysmem.malloc_from_top`: cut, grow the break, or mmap);
   if top is too small and some fastbin is non-empty, malloc_consolidate and
   go back to 2.

Checked against the real thing: replaying single-threaded traces (random
sizes and lifetimes with realloc and mmap-sized requests, 300k rows; the 1M
row benchmark trace) through glibc 2.36 with a small C replayer gives the
same address for every allocation, relative to the heap start, and the same
final brk.  glibc's integrity checks (2.36's, on in the preset: `checks`)
run on the same words in the same order, with glibc's messages
(`shared.chunkchecks`); on fault traces the model gives real glibc's verdict
for every fault class (README "Safety").  Not modelled: several arenas (all
threads share the main arena, as with arena_max=1, each with its own
tcache), M_MMAP_MAX.  glibc 2.26 .. 2.29 differ only in a 576 B tcache struct; glibc
master after 2.42 has no fastbins and 16-entry tcache bins
(`freelist:glibc,max_fast=0,tcache_count=16`).

metadata_bytes counts the arena as MALLOC_STATE_BYTES (2200 B,
sizeof(struct malloc_state) on x86-64), on top of freelist's per-chunk
headers and tcache structs.

Cost: on a tcache miss O(1) for an exact small bin, else O(chunks waiting in
the unsorted bin) (each freed chunk is sorted once) plus the large-bin skip
list walk (O(distinct sizes in one bin)) and a binmap scan (<= 2 words);
search_steps counts chunks examined plus one per bin looked at.
"""

import numpy as np
from numba import njit

from allocators.detections import D_SEGV, D_SMALLBIN_LIST, ST_CORRUPTED, detected
from allocators.shared.bits import lowest_set_bit
from allocators.shared.chunkchecks import check_top, check_unlink, check_unsorted_victim
from allocators.shared.chunkfree import malloc_consolidate
from allocators.shared.chunks import (
    BIN_STRIDE,
    C_SEARCH_STEPS,
    C_SPLITS,
    C_TCACHE_PUTS,
    I_MAPTREE,
    I_MEMORY,
    I_TCACHE,
    I_WORDS,
    NIL,
    PREV_INUSE,
    S_ARENA,
    S_BINMAP,
    S_BRK,
    S_CHECKS,
    S_GRAN_SHIFT,
    S_HAVE_FAST,
    S_HEADER,
    S_LAST_REMAINDER,
    S_METADATA,
    S_MIN_CHUNK,
    S_TC_BINS,
    S_TC_COUNT,
    S_TOP,
    SIZE_MASK,
    W_BK,
    W_BK_NEXTSIZE,
    W_FD,
    W_FD_NEXTSIZE,
    W_SIZE,
    link_after,
    readable,
    set_free_chunk,
    set_inuse_after,
    size_of,
    tcache_get,
    tcache_put,
)
from allocators.shared.glibc_bins import (
    MIN_LARGE_SIZE,
    NBINS,
    UNSORTED_BIN,
    largebin_index,
    place_in_bin,
    unlink_chunk,
)
from allocators.shared.sysmem import malloc_from_top
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: glibc constants (malloc.c).
MAX_ITERS = 10000
MALLOC_STATE_BYTES = 2200


@njit(cache=True)
def _take_glibc(words, memory, victim, size, nb, remember):
    """Unlink a binned chunk, split off the remainder into the unsorted bin (or hand out all of it).
    With checks, unlink_chunk's first (a negative status when one fires)."""
    if words[S_CHECKS] != 0:
        status = check_unlink(words, memory, victim)
        if status < 0:
            return status
    rest = size - nb
    unlink_chunk(memory, victim, size)
    if rest < words[S_MIN_CHUNK]:
        set_inuse_after(memory, victim, size)
    else:
        remainder = victim + nb
        link_after(memory, words[S_ARENA] + UNSORTED_BIN * BIN_STRIDE, remainder)
        if rest >= MIN_LARGE_SIZE:
            memory[(remainder >> 3) + W_FD_NEXTSIZE] = NIL
            memory[(remainder >> 3) + W_BK_NEXTSIZE] = NIL
        memory[(victim >> 3) + W_SIZE] = nb | PREV_INUSE
        set_free_chunk(memory, remainder, rest)
        words[C_SPLITS] += 1
        if remember:
            words[S_LAST_REMAINDER] = remainder
    words[S_METADATA] += words[S_HEADER]
    return victim


@njit(cache=True)
def malloc_glibc(state, nb, tbase):
    """glibc _int_malloc after the fastbins (tcache stashing included when tbase >= 0)."""
    words, memory, tcache, maptree = state[I_WORDS], state[I_MEMORY], state[I_TCACHE], state[I_MAPTREE]
    arena = words[S_ARENA]
    min_chunk = words[S_MIN_CHUNK]
    header = words[S_HEADER]
    unsorted = arena + UNSORTED_BIN * BIN_STRIDE
    uw = unsorted >> 3
    tc_slot = -1
    tidx = (nb - min_chunk) >> words[S_GRAN_SHIFT]
    if tbase >= 0 and tidx < words[S_TC_BINS]:
        tc_slot = tbase + 2 + 2 * tidx
    tc_limit = words[S_TC_COUNT]
    checks = words[S_CHECKS] != 0
    small = nb < MIN_LARGE_SIZE
    if small:
        index = nb >> 4
        bin_ = arena + index * BIN_STRIDE
        bw = bin_ >> 3
        victim = memory[bw + W_BK]
        if victim != bin_:
            words[C_SEARCH_STEPS] += 1
            if checks:
                if not readable(words, memory, victim, 8 * (W_BK + 1)):
                    return detected(D_SEGV)
                bck = memory[(victim >> 3) + W_BK]
                if not readable(words, memory, bck, 8 * (W_BK + 1)):
                    return detected(D_SEGV)
                if memory[(bck >> 3) + W_FD] != victim:
                    return detected(D_SMALLBIN_LIST)
            bck = memory[(victim >> 3) + W_BK]
            memory[bw + W_BK] = bck
            memory[(bck >> 3) + W_FD] = bin_
            set_inuse_after(memory, victim, nb)
            words[S_METADATA] += header
            if tc_slot >= 0:
                # stash other chunks of this size in the tcache while it has room
                while tcache[tc_slot + 1] < tc_limit:
                    cached = memory[bw + W_BK]
                    if cached == bin_:
                        break
                    if checks and (not readable(words, memory, cached, 8 * (W_BK + 1))
                                   or not readable(words, memory, memory[(cached >> 3) + W_BK], 8 * (W_BK + 1))):
                        return detected(D_SEGV)
                    bck = memory[(cached >> 3) + W_BK]
                    set_inuse_after(memory, cached, nb)
                    memory[bw + W_BK] = bck
                    memory[(bck >> 3) + W_FD] = bin_
                    words[S_METADATA] += header
                    tcache_put(words, memory, tcache, tc_slot, cached)
                    words[C_TCACHE_PUTS] += 1
            return victim
    return_cached = False
    while True:
        index = (nb >> 4) if small else largebin_index(nb)
        iterations = 0
        while True:
            victim = memory[uw + W_BK]
            if victim == unsorted:
                break
            words[C_SEARCH_STEPS] += 1
            if checks:
                status = check_unsorted_victim(words, memory, victim, unsorted)
                if status < 0:
                    return status
            vw = victim >> 3
            bck = memory[vw + W_BK]
            size = memory[vw + W_SIZE] & SIZE_MASK
            if small and bck == unsorted and victim == words[S_LAST_REMAINDER] and size > nb + min_chunk:
                rest = size - nb
                remainder = victim + nb
                memory[uw + W_FD] = remainder
                memory[uw + W_BK] = remainder
                words[S_LAST_REMAINDER] = remainder
                memory[(remainder >> 3) + W_FD] = unsorted
                memory[(remainder >> 3) + W_BK] = unsorted
                if rest >= MIN_LARGE_SIZE:
                    memory[(remainder >> 3) + W_FD_NEXTSIZE] = NIL
                    memory[(remainder >> 3) + W_BK_NEXTSIZE] = NIL
                memory[vw + W_SIZE] = nb | PREV_INUSE
                set_free_chunk(memory, remainder, rest)
                words[C_SPLITS] += 1
                words[S_METADATA] += header
                return victim
            memory[uw + W_BK] = bck
            memory[(bck >> 3) + W_FD] = unsorted
            if size == nb:
                set_inuse_after(memory, victim, size)
                words[S_METADATA] += header
                if tc_slot >= 0 and tcache[tc_slot + 1] < tc_limit:
                    tcache_put(words, memory, tcache, tc_slot, victim)
                    words[C_TCACHE_PUTS] += 1
                    return_cached = True
                    continue
                return victim
            status = place_in_bin(words, memory, victim, size)
            if status < 0:
                return status
            iterations += 1
            if iterations >= MAX_ITERS:
                break
        if return_cached:
            return tcache_get(words, memory, tcache, tc_slot)

        if not small:
            bin_ = arena + index * BIN_STRIDE
            bw = bin_ >> 3
            first = memory[bw + W_FD]
            if checks and not readable(words, memory, first, BIN_STRIDE):
                return detected(D_SEGV)
            if first != bin_ and size_of(memory, first) >= nb:
                victim = memory[(first >> 3) + W_BK_NEXTSIZE]
                if checks and not readable(words, memory, victim, BIN_STRIDE):
                    return detected(D_SEGV)
                size = size_of(memory, victim)
                steps = 1
                while size < nb:
                    victim = memory[(victim >> 3) + W_BK_NEXTSIZE]
                    if checks and (not readable(words, memory, victim, BIN_STRIDE) or steps > words[S_BRK] >> 4):
                        return detected(D_SEGV) if steps <= words[S_BRK] >> 4 else ST_CORRUPTED
                    size = size_of(memory, victim)
                    steps += 1
                words[C_SEARCH_STEPS] += steps
                if checks and not readable(words, memory, memory[(victim >> 3) + W_FD], BIN_STRIDE):
                    return detected(D_SEGV)
                if victim != memory[bw + W_BK] and size_of(memory, memory[(victim >> 3) + W_FD]) == size:
                    victim = memory[(victim >> 3) + W_FD]
                return _take_glibc(words, memory, victim, size, nb, False)

        # binmap: the next non-empty bin above; its last chunk is the smallest there
        index += 1
        while index < NBINS:
            half = index >> 6
            marks = words[S_BINMAP + half] & (np.int64(-1) << (index & 63))
            if marks == 0:
                index = (half + 1) << 6
                continue
            index = (half << 6) + lowest_set_bit(marks)
            bin_ = arena + index * BIN_STRIDE
            victim = memory[(bin_ >> 3) + W_BK]
            words[C_SEARCH_STEPS] += 1
            if checks and not readable(words, memory, victim, BIN_STRIDE):
                return detected(D_SEGV)
            if victim == bin_:
                words[S_BINMAP + half] &= ~(np.int64(1) << (index & 63))  # a false alarm: clear the bit
                index += 1
                continue
            return _take_glibc(words, memory, victim, size_of(memory, victim), nb, small)
        # use_top
        if words[S_BRK] - words[S_TOP] >= nb + min_chunk or words[S_HAVE_FAST] == 0:
            if checks:
                status = check_top(words, memory)
                if status < 0:
                    return status
            return malloc_from_top(words, memory, maptree, nb)
        status = malloc_consolidate(state)  # then try the unsorted bin and the bins again
        if status < 0:
            return status
