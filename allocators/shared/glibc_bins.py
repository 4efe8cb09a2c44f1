"""glibc malloc (ptmalloc2) bins on 64-bit: size arithmetic (chunk sizes, bin and tcache indices), the bin lists.

Facts (bminor/glibc malloc/malloc.c, 2.26 .. 2.42, x86-64; see
shared/reference/production-allocators.md section 4):

- `request2size(req) = max(MINSIZE, (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK)` with
  SIZE_SZ = 8, alignment 16, MINSIZE = 32: malloc(24) -> 32 B chunk, malloc(25) -> 48 B.
- 128 bins: bin 1 is the unsorted bin; small bins 2..63 hold one chunk size each
  (`smallbin_index(sz) = sz >> 4`, sizes 32..1008); large bins 64..126 are
  roughly logarithmic (`largebin_index_64`); MIN_LARGE_SIZE = 1024.
- tcache: `csize2tidx(sz) = (sz - MINSIZE + 15) >> 4`, 64 bins for chunk sizes
  32..1040 (user sizes up to 1032).

Bin lists (`allocators.glibc`; chunk words and the arena's bin headers as in
`shared.chunks`): circular doubly linked lists through fd/bk whose sentinel is
the bin header.  A small bin is a queue (insert at the front, take from the
back).  A large bin is sorted by decreasing size, and the first chunk of each
distinct size is also on a second ring, fd_nextsize/bk_nextsize (NIL in the
other chunks), so an insertion skips over sizes, not chunks: `place_in_bin`
(glibc's unsorted-bin sorting step, which also marks the binmap), and
`unlink_chunk` (which hands a size's place in the skip list to the next chunk
of that size).
"""

import numpy as np
from numba import njit

from allocators.detections import D_LARGEBIN_BK, D_LARGEBIN_NEXTSIZE, D_SEGV, ST_CORRUPTED, detected
from allocators.errors import ST_OK
from allocators.shared.chunks import (
    BIN_STRIDE,
    C_SEARCH_STEPS,
    NIL,
    S_ARENA,
    S_BINMAP,
    S_BRK,
    S_CHECKS,
    S_LAST_REMAINDER,
    W_BK,
    W_BK_NEXTSIZE,
    W_FD,
    W_FD_NEXTSIZE,
    W_PREV_SIZE,
    W_SIZE,
    readable,
    size_of,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

NBINS = 128
UNSORTED_BIN = 1
MIN_LARGE_SIZE = 1024
SIZE_SZ = 8
MALLOC_ALIGNMENT = 16
MINSIZE = 32


@njit(cache=True, inline="always")
def request2size(request, header, granularity, min_chunk):
    """Chunk size for a request: header added, rounded up to the granularity, at least min_chunk."""
    size = (request + header + granularity - 1) & ~(granularity - 1)
    return size if size > min_chunk else min_chunk


@njit(cache=True, inline="always")
def smallbin_index(size):
    return size >> 4


@njit(cache=True)
def largebin_index(size):
    """glibc's largebin_index_64 (chunk size -> bin 64..126)."""
    if (size >> 6) <= 48:
        return 48 + (size >> 6)
    if (size >> 9) <= 20:
        return 91 + (size >> 9)
    if (size >> 12) <= 10:
        return 110 + (size >> 12)
    if (size >> 15) <= 4:
        return 119 + (size >> 15)
    if (size >> 18) <= 2:
        return 124 + (size >> 18)
    return 126


@njit(cache=True)
def bin_index(size):
    if size < MIN_LARGE_SIZE:
        return size >> 4
    return largebin_index(size)


# ------------------------------------------------------------------ bin lists
@njit(cache=True)
def init_bins(words, memory):
    """glibc malloc_init_state: every bin header an empty ring, the binmap clear, no last remainder."""
    arena = words[S_ARENA]
    for index in range(NBINS):
        bin_ = arena + index * BIN_STRIDE
        bw = bin_ >> 3
        memory[bw + W_PREV_SIZE] = 0
        memory[bw + W_SIZE] = 0
        memory[bw + W_FD] = bin_
        memory[bw + W_BK] = bin_
        memory[bw + W_FD_NEXTSIZE] = bin_  # never NULL: unlink_chunk tells bin headers from chunks by it
        memory[bw + W_BK_NEXTSIZE] = bin_
    words[S_BINMAP] = 0
    words[S_BINMAP + 1] = 0
    words[S_LAST_REMAINDER] = NIL


@njit(cache=True)
def unlink_chunk(memory, chunk, size):
    """glibc unlink_chunk: out of its bin, and out of the large-bin skip list if it heads a size."""
    cw = chunk >> 3
    fd = memory[cw + W_FD]
    bk = memory[cw + W_BK]
    memory[(fd >> 3) + W_BK] = bk
    memory[(bk >> 3) + W_FD] = fd
    if size >= MIN_LARGE_SIZE and memory[cw + W_FD_NEXTSIZE] != NIL:
        fw = fd >> 3
        next_size = memory[cw + W_FD_NEXTSIZE]
        prev_size = memory[cw + W_BK_NEXTSIZE]
        if memory[fw + W_FD_NEXTSIZE] == NIL:
            # fd has the same size: it takes over our place in the skip list
            if next_size == chunk:
                memory[fw + W_FD_NEXTSIZE] = fd
                memory[fw + W_BK_NEXTSIZE] = fd
            else:
                memory[fw + W_FD_NEXTSIZE] = next_size
                memory[fw + W_BK_NEXTSIZE] = prev_size
                memory[(next_size >> 3) + W_BK_NEXTSIZE] = fd
                memory[(prev_size >> 3) + W_FD_NEXTSIZE] = fd
        else:
            memory[(next_size >> 3) + W_BK_NEXTSIZE] = prev_size
            memory[(prev_size >> 3) + W_FD_NEXTSIZE] = next_size


@njit(cache=True)
def place_in_bin(words, memory, victim, size):
    """Move a chunk from the unsorted bin into its small bin (front) or large bin (sorted).  ST_OK; with checks
    (words[S_CHECKS]), glibc's two large-bin link checks, and a SIGSEGV for a link out of the heap."""
    arena = words[S_ARENA]
    checks = words[S_CHECKS] != 0
    vw = victim >> 3
    if size < MIN_LARGE_SIZE:
        index = size >> 4
        bck = arena + index * BIN_STRIDE
        fwd = memory[(bck >> 3) + W_FD]
    else:
        index = largebin_index(size)
        bck = arena + index * BIN_STRIDE
        fwd = memory[(bck >> 3) + W_FD]
        if fwd != bck:
            last = memory[(bck >> 3) + W_BK]
            if checks and not (readable(words, memory, fwd, BIN_STRIDE) and readable(words, memory, last, BIN_STRIDE)):
                return detected(D_SEGV)
            if size < size_of(memory, last):
                # smaller than the smallest: goes last, and heads a new size
                fwd = bck
                bck = last
                first = memory[(fwd >> 3) + W_FD]
                smallest_head = memory[(first >> 3) + W_BK_NEXTSIZE]
                if checks and not readable(words, memory, smallest_head, BIN_STRIDE):
                    return detected(D_SEGV)
                memory[vw + W_FD_NEXTSIZE] = first
                memory[vw + W_BK_NEXTSIZE] = smallest_head
                memory[(first >> 3) + W_BK_NEXTSIZE] = victim
                memory[(smallest_head >> 3) + W_FD_NEXTSIZE] = victim
            else:
                steps = 0
                while size < size_of(memory, fwd):
                    fwd = memory[(fwd >> 3) + W_FD_NEXTSIZE]
                    steps += 1
                    if checks and not readable(words, memory, fwd, BIN_STRIDE):
                        return detected(D_SEGV)
                    if checks and steps > words[S_BRK] >> 4:
                        return ST_CORRUPTED  # a cycle
                words[C_SEARCH_STEPS] += steps
                if size == size_of(memory, fwd):
                    fwd = memory[(fwd >> 3) + W_FD]  # always insert in the second position
                    if checks and not readable(words, memory, fwd, BIN_STRIDE):
                        return detected(D_SEGV)
                else:
                    before = memory[(fwd >> 3) + W_BK_NEXTSIZE]
                    if checks and (not readable(words, memory, before, BIN_STRIDE)
                                   or memory[(before >> 3) + W_FD_NEXTSIZE] != fwd):
                        return detected(D_LARGEBIN_NEXTSIZE)
                    memory[vw + W_FD_NEXTSIZE] = fwd
                    memory[vw + W_BK_NEXTSIZE] = before
                    memory[(fwd >> 3) + W_BK_NEXTSIZE] = victim
                    memory[(before >> 3) + W_FD_NEXTSIZE] = victim
                bck = memory[(fwd >> 3) + W_BK]
                if checks and (not readable(words, memory, bck, BIN_STRIDE) or memory[(bck >> 3) + W_FD] != fwd):
                    return detected(D_LARGEBIN_BK)
        else:
            memory[vw + W_FD_NEXTSIZE] = victim
            memory[vw + W_BK_NEXTSIZE] = victim
    if checks and not readable(words, memory, fwd, BIN_STRIDE):
        return detected(D_SEGV)
    words[S_BINMAP + (index >> 6)] |= np.int64(1) << (index & 63)
    memory[vw + W_BK] = bck
    memory[vw + W_FD] = fwd
    memory[(fwd >> 3) + W_BK] = victim
    memory[(bck >> 3) + W_FD] = victim
    return ST_OK
