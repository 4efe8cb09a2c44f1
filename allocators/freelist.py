"""freelist: a malloc-style allocator with boundary tags (K&R / dlmalloc / glibc ptmalloc2 family).

Design.  The heap is a run of *chunks* laid back to back from address 0 up to
the break (`brk`), followed by nothing: the last chunk is always the *top*
chunk (the "wilderness"), which is never on a free list.  Chunks are modelled
exactly where glibc keeps them, in a simulated memory of 8-byte words
(`memory[addr >> 3]`, one word per 8 bytes of capacity):

    chunk + 0   prev_size   size of the previous chunk, valid only while that one is free (its footer)
    chunk + 8   size        chunk size | PREV_INUSE (1) | IS_MMAPPED (2)
    chunk + 16  fd          free-list links, only while the chunk is free
    chunk + 24  bk          (a tcache'd chunk keeps its tcache "next" in fd)
    chunk + 32  fd_nextsize glibc large bins only: skip list over distinct sizes
    chunk + 40  bk_nextsize

A chunk is in use iff the PREV_INUSE bit of the *next* chunk is set, so
freeing is O(1) boundary-tag coalescing: merge backward if our PREV_INUSE is
clear (the previous chunk starts `prev_size` bytes before us), forward if the
next chunk is free, and into top if the next chunk is top.  Free chunks are
therefore never adjacent.  Allocation rounds the request to a chunk size
`nb = max(min_chunk, round_up(request + header, granularity))`, picks a free
chunk by the policy below, splits off the tail as a new free chunk when it is
at least `min_chunk`, and otherwise hands out the whole chunk.  The user block
starts `user_offset = round_up(header, 16)` bytes into the chunk (16-aligned)
and its usable ("granted") size is `chunk size - header`: with glibc's
header = 8 the last 8 usable bytes are the next chunk's prev_size word, which
is only needed while this chunk is free.  When nothing fits, the chunk is cut
from the front of top; when top is too small the break grows ("sbrk") by
`round_up(nb + min_chunk + top_pad - top size, page)` bytes (os_grows),
up to the lowest mapped address, after which requests fail with
ST_OUT_OF_MEMORY.  Freeing into a top of at least `trim_threshold` bytes
gives pages back (os_trims) when the merged chunk is >= 64 KiB (glibc's rule;
0 = never trim).

Fit policies (parameters `policy`, `order`; defaults first / address):
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
  lowest address (address: insertion walks the equal-size list, O(k)).
- bins="glibc" (preset `glibc`): ptmalloc2's bins instead; see below.
Every fit policy allocates from the low end of the chosen chunk.

Thread cache (`tcache_bins` > 0): per-thread LIFO singly linked lists, one per
chunk size `min_chunk + i * granularity`, each holding at most
`tcache_count` chunks.  Cached chunks stay "in use" for the heap (no
coalescing) and are reused by the same thread in O(1): the common path of
allocate and free is a few loads and stores.  As in glibc, a thread's
`tcache_perthread_struct` (10 B per bin: a uint16 count and a pointer, 640 B
for 64 bins) is itself allocated from the heap on the thread's first call.

Fastbins (`max_fast` > 0, a chunk size): chunks of at most max_fast bytes
that a free does not put in a tcache go on per-size LIFO singly linked lists
and stay "in use" (no coalescing).  malloc takes from them first;
malloc_consolidate (before serving a request >= 1024 B, before growing
top, and on a free that merges into >= 64 KiB) coalesces them all.

glibc preset (`freelist:glibc`): ptmalloc2 of glibc 2.30 .. 2.41 on x86-64,
one arena: 16 B granularity, 32 B minimum chunk, 8 B effective header
(request2size); tcache 64 bins x 7 (chunk sizes 32..1040) in front; fastbins
for chunks up to 128 B (DEFAULT_MXFAST); the unsorted bin (freed and
remainder chunks get one chance to be used before being binned, exact fits
are stashed in the tcache); 62 small bins of one size each (insert at the
front, take from the back, same-size chunks stashed in the tcache); 63 large
bins sorted by size with the fd_nextsize/bk_nextsize skip list (best fit,
ties to the second chunk of a size); the binmap scan for the next non-empty
bin; the last-remainder rule for small requests; top with M_TOP_PAD =
128 KiB (DEFAULT_TOP_PAD of sysdeps/generic/malloc-machine.h, which
overrides malloc.c's 0: the first sbrk is 132 KiB) and trim_threshold
128 KiB; chunks >= the mmap threshold (128 KiB) that neither the bins nor
top can serve are mmapped (`round_up(nb + 8, 4096)` bytes, usable size
- 16) and unmapped on free, and freeing a mapped chunk larger than the
threshold (up to 32 MiB) raises the threshold to its size and trim_threshold
to twice that (glibc's dynamic threshold); realloc as __libc_realloc.
Checked against the real thing: replaying single-threaded traces (random
sizes and lifetimes with realloc and mmap-sized requests, 300k rows; the 1M
row benchmark trace) through glibc 2.36 with a small C replayer gives the
same address for every allocation, relative to the heap start, and the same
final brk.  Not modelled: several arenas (all threads share the main arena,
as with arena_max=1, each with its own tcache), M_MMAP_MAX, the integrity
checks.  glibc 2.26 .. 2.29 differ only in a 576 B tcache struct; glibc
master after 2.42 has no fastbins and 16-entry tcache bins
(`freelist:glibc,max_fast=0,tcache_count=16`).

mmapped region.  Mapped chunks live at the top of the address space, below
`capacity` rounded down to a page, and grow downwards towards the heap
(Linux's top-down mmap layout): a new mapping takes the highest hole that
fits, else extends the mapped region down (it may not cross `brk`, nor the
heap grow into it).  Holes are page runs kept in a second max tree (one slot
per page).  footprint = brk + bytes currently mapped (+ bytes of mappings
released by free(), which keeps the memory taken: later mappings use those
bytes first without growing the footprint).

realloc (replay REALLOC rows) is glibc's (`realloc_in_place` does all of
it): a smaller size keeps the chunk and frees the tail if it is at least
min_chunk; a larger one takes the free chunk after it or extends into top,
else _int_malloc (without a tcache lookup) gives a new chunk and the old one
is freed; a mapped chunk is remapped (mremap: in place when the pages above
are free, else moved) and stays mapped.  free() (reset) makes the whole
heap one top chunk again, clears the free index, fastbins and tcaches (the tcache
structs are allocated again on next use) and keeps the break.

metadata_bytes = header bytes of every chunk in use or held in a tcache or fastbin
+ user_offset bytes per mapped chunk + the per-thread tcache structs + the
arena (2200 B, sizeof(struct malloc_state) on x86-64, with bins=glibc;
16 B, a list head and top pointer, otherwise).  The max tree and bitset
that stand in for list walks are modelling aids and are not counted.

State: `words` (counters, then the hot scalars: footprint, metadata, top,
brk, mapped region, parameters, the glibc binmap, last remainder, rover),
`memory` (the words of the simulated address space, plus the bin headers of
the arena just past `capacity`), `tcache` (per thread: initialised flag, then
(head, count) per bin), `tree` (address-ordered policies), `sizebits` and
`sizeheads` (best fit), `maptree` (mmap holes).  Arrays proportional to the
capacity are np.zeros: only pages the heap touches cost memory (about 1 byte
of virtual memory per byte of capacity, 2 with the address tree, 1.5 with
best fit); capacities beyond the machine's memory are refused (BadParameter).

Cost per operation: tcache or fastbin hit O(1); free O(1) plus the index
insert/remove of the policy (O(1) lists and glibc bins, O(log) tree and size
bitset), plus the occasional malloc_consolidate (O(fastbin chunks)); glibc
malloc on a tcache miss O(1) for an exact small bin, else O(chunks waiting
in the unsorted bin) (each freed chunk is sorted once) plus the large-bin
skip list walk (O(distinct sizes in one bin)) and a binmap scan (<= 2 words).
Counters: search_steps counts chunks examined plus one per index query.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, BadParameter
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import is_power_of_two
from allocators.shared.bits import lowest_set_bit
from allocators.shared.bitset import bitset_clear, bitset_clear_all, bitset_next, bitset_set, bitset_test, new_bitset
from allocators.shared.glibc_bins import MIN_LARGE_SIZE, NBINS, UNSORTED_BIN, largebin_index
from allocators.shared.maxtree import (
    new_tree,
    tree_clear_range,
    tree_first_at_least,
    tree_get,
    tree_last_at_least,
    tree_set,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16

# Chunk header: flag bits in the size word and word offsets from a chunk's start.
PREV_INUSE = 1
IS_MMAPPED = 2
SIZE_MASK = ~7
W_PREV_SIZE, W_SIZE, W_FD, W_BK, W_FD_NEXTSIZE, W_BK_NEXTSIZE = 0, 1, 2, 3, 4, 5
#: "NULL" in links (0 is a valid chunk address here).
NIL = -1
#: Bytes per bin header in the arena (six words, like a chunk: fd, bk and a non-NULL fd_nextsize).
BIN_STRIDE = 48

MODE_LIST, MODE_TREE, MODE_SIZES, MODE_GLIBC = 0, 1, 2, 3
ORDERS = ("lifo", "fifo", "address")
ORDER_LIFO, ORDER_FIFO, ORDER_ADDRESS = 0, 1, 2
POLICIES = ("first", "next", "best")
BINS = ("none", "glibc")

#: glibc constants (malloc.c).
MAX_ITERS = 10000
FASTBIN_CONSOLIDATION_THRESHOLD = 65536
MALLOC_STATE_BYTES = 2200
PLAIN_ARENA_BYTES = 16
#: glibc NFASTBINS on 64-bit (chunk sizes 32..176; the default max_fast is 128).
NFASTBINS = 10
#: Per tcache bin in tcache_perthread_struct (glibc >= 2.30): uint16 count + entry pointer.
TCACHE_BYTES_PER_BIN = 10

# words[]: counters first (the base class reads them there), then the hot scalars.
COUNTER_NAMES = (
    "allocs", "frees", "splits", "coalesces", "tcache_hits", "tcache_puts", "fastbin_puts", "consolidations",
    "search_steps", "os_grows", "os_trims", "mmaps", "munmaps", "reallocs_in_place", "resets",
)
(C_ALLOCS, C_FREES, C_SPLITS, C_COALESCES, C_TCACHE_HITS, C_TCACHE_PUTS, C_FASTBIN_PUTS, C_CONSOLIDATIONS,
 C_SEARCH_STEPS, C_OS_GROWS, C_OS_TRIMS, C_MMAPS, C_MUNMAPS, C_REALLOCS_IN_PLACE, C_RESETS) = range(15)
S_FOOTPRINT = 15        # brk + mapped bytes + retained bytes
S_METADATA = 16
S_TOP = 17              # address of the top chunk
S_BRK = 18              # end of the heap
S_HEAP_LIMIT = 19       # lowest mapped address: the heap may grow up to here
S_MAPPED = 20           # bytes currently mapped
S_MAP_TOP = 21          # end of the mmap region (capacity rounded down to a page)
S_MODE = 22
S_ORDER = 23
S_NEXT_FIT = 24
S_GRAN = 25
S_GRAN_SHIFT = 26
S_MIN_CHUNK = 27
S_HEADER = 28
S_USER_OFFSET = 29
S_TC_BINS = 30
S_TC_COUNT = 31
S_TC_STRIDE = 32
S_TOP_PAD = 33
S_TRIM_THRESHOLD = 34
S_MMAP_THRESHOLD = 35
S_MMAP_DYNAMIC = 36
S_MMAP_THRESHOLD_MAX = 37
S_PAGE = 38
S_PAGE_SHIFT = 39
S_ARENA = 40            # address of bin 0's header (past capacity); bin 0 is the lifo/fifo list
S_BINMAP = 41           # two words: bins 0..63, 64..127
S_LAST_REMAINDER = 43
S_ROVER = 44            # next fit: list node (lists) or granule (tree)
S_FIXED_METADATA = 45
S_TC_STRUCT_BYTES = 46
S_RETAINED = 47         # bytes of mappings released by free() but kept in the footprint
S_MAX_FAST = 48         # largest chunk size that goes to a fastbin (0: no fastbins)
S_HAVE_FAST = 49        # some fastbin is non-empty (glibc have_fastchunks)
S_FASTBINS = 50         # NFASTBINS heads of singly linked LIFO lists
N_WORDS = S_FASTBINS + NFASTBINS


# ----------------------------------------------------------------- chunk words
@njit(cache=True, inline="always")
def _size_of(memory, chunk):
    return memory[(chunk >> 3) + W_SIZE] & SIZE_MASK


@njit(cache=True, inline="always")
def _set_inuse_after(memory, chunk, size):
    """Mark `chunk` in use: set PREV_INUSE in the chunk that follows it."""
    memory[((chunk + size) >> 3) + W_SIZE] |= PREV_INUSE


@njit(cache=True, inline="always")
def _set_free_chunk(memory, chunk, size):
    """Header and footer of a free chunk (its previous chunk is in use: free chunks are never adjacent)."""
    memory[(chunk >> 3) + W_SIZE] = size | PREV_INUSE
    memory[(chunk + size) >> 3] = size


@njit(cache=True, inline="always")
def _set_top(words, memory, top):
    words[S_TOP] = top
    memory[(top >> 3) + W_SIZE] = (words[S_BRK] - top) | PREV_INUSE


@njit(cache=True, inline="always")
def _link_after(memory, prev, chunk):
    """Insert `chunk` between `prev` and its successor in a circular doubly linked list."""
    nxt = memory[(prev >> 3) + W_FD]
    memory[(chunk >> 3) + W_FD] = nxt
    memory[(chunk >> 3) + W_BK] = prev
    memory[(nxt >> 3) + W_BK] = chunk
    memory[(prev >> 3) + W_FD] = chunk


@njit(cache=True, inline="always")
def _unlink(memory, chunk):
    fd = memory[(chunk >> 3) + W_FD]
    bk = memory[(chunk >> 3) + W_BK]
    memory[(fd >> 3) + W_BK] = bk
    memory[(bk >> 3) + W_FD] = fd


@njit(cache=True, inline="always")
def _tcache_put(memory, tcache, slot, chunk):
    memory[(chunk >> 3) + W_FD] = tcache[slot]
    tcache[slot] = chunk
    tcache[slot + 1] += 1


@njit(cache=True, inline="always")
def _tcache_get(memory, tcache, slot):
    chunk = tcache[slot]
    tcache[slot] = memory[(chunk >> 3) + W_FD]
    tcache[slot + 1] -= 1
    return chunk


# ------------------------------------------------------------ glibc bin lists
@njit(cache=True)
def _unlink_glibc(memory, chunk, size):
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
def _place_in_bin(words, memory, victim, size):
    """Move a chunk from the unsorted bin into its small bin (front) or large bin (sorted)."""
    arena = words[S_ARENA]
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
            if size < _size_of(memory, last):
                # smaller than the smallest: goes last, and heads a new size
                fwd = bck
                bck = last
                first = memory[(fwd >> 3) + W_FD]
                memory[vw + W_FD_NEXTSIZE] = first
                smallest_head = memory[(first >> 3) + W_BK_NEXTSIZE]
                memory[vw + W_BK_NEXTSIZE] = smallest_head
                memory[(first >> 3) + W_BK_NEXTSIZE] = victim
                memory[(smallest_head >> 3) + W_FD_NEXTSIZE] = victim
            else:
                steps = 0
                while size < _size_of(memory, fwd):
                    fwd = memory[(fwd >> 3) + W_FD_NEXTSIZE]
                    steps += 1
                words[C_SEARCH_STEPS] += steps
                if size == _size_of(memory, fwd):
                    fwd = memory[(fwd >> 3) + W_FD]  # always insert in the second position
                else:
                    before = memory[(fwd >> 3) + W_BK_NEXTSIZE]
                    memory[vw + W_FD_NEXTSIZE] = fwd
                    memory[vw + W_BK_NEXTSIZE] = before
                    memory[(fwd >> 3) + W_BK_NEXTSIZE] = victim
                    memory[(before >> 3) + W_FD_NEXTSIZE] = victim
                bck = memory[(fwd >> 3) + W_BK]
        else:
            memory[vw + W_FD_NEXTSIZE] = victim
            memory[vw + W_BK_NEXTSIZE] = victim
    words[S_BINMAP + (index >> 6)] |= np.int64(1) << (index & 63)
    memory[vw + W_BK] = bck
    memory[vw + W_FD] = fwd
    memory[(fwd >> 3) + W_BK] = victim
    memory[(bck >> 3) + W_FD] = victim


# ------------------------------------------------------- best fit: size lists
@njit(cache=True)
def _sizes_insert(words, memory, sizebits, sizeheads, chunk, size):
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
        _link_after(memory, memory[(before >> 3) + W_BK], chunk)
        return
    _link_after(memory, memory[(head >> 3) + W_BK], chunk)  # at the back of the ring
    if order != ORDER_FIFO:
        sizeheads[slot] = chunk  # lifo, or a new lowest address: the front


@njit(cache=True)
def _sizes_remove(words, memory, sizebits, sizeheads, chunk, size):
    slot = size >> words[S_GRAN_SHIFT]
    fd = memory[(chunk >> 3) + W_FD]
    if fd == chunk:
        bitset_clear(sizebits, slot)
        return
    _unlink(memory, chunk)
    if sizeheads[slot] == chunk:
        sizeheads[slot] = fd


# ------------------------------------------------- the free-chunk index (all modes)
@njit(cache=True)
def _index_insert(words, memory, tree, sizebits, sizeheads, chunk, size):
    """A chunk just became free (after coalescing): file it where the policy looks for it."""
    mode = words[S_MODE]
    if mode == MODE_GLIBC:
        _link_after(memory, words[S_ARENA] + UNSORTED_BIN * BIN_STRIDE, chunk)
        if size >= MIN_LARGE_SIZE:
            memory[(chunk >> 3) + W_FD_NEXTSIZE] = NIL
            memory[(chunk >> 3) + W_BK_NEXTSIZE] = NIL
    elif mode == MODE_TREE:
        shift = words[S_GRAN_SHIFT]
        tree_set(tree, chunk >> shift, size >> shift)
    elif mode == MODE_SIZES:
        _sizes_insert(words, memory, sizebits, sizeheads, chunk, size)
    else:
        sentinel = words[S_ARENA]
        if words[S_ORDER] == ORDER_LIFO:
            _link_after(memory, sentinel, chunk)
        else:
            _link_after(memory, memory[(sentinel >> 3) + W_BK], chunk)


@njit(cache=True)
def _index_remove(words, memory, tree, sizebits, sizeheads, chunk, size):
    mode = words[S_MODE]
    if mode == MODE_GLIBC:
        _unlink_glibc(memory, chunk, size)
    elif mode == MODE_TREE:
        tree_set(tree, chunk >> words[S_GRAN_SHIFT], 0)
    elif mode == MODE_SIZES:
        _sizes_remove(words, memory, sizebits, sizeheads, chunk, size)
    else:
        if words[S_ROVER] == chunk:
            words[S_ROVER] = memory[(chunk >> 3) + W_FD]
        _unlink(memory, chunk)


# --------------------------------------------------------- top, sbrk, mmap
@njit(cache=True)
def _systrim(words, memory):
    """glibc systrim(top_pad): give whole pages at the end of top back to the OS."""
    top = words[S_TOP]
    area = words[S_BRK] - top - words[S_MIN_CHUNK] - 1
    pad = words[S_TOP_PAD]
    if area <= pad:
        return
    extra = (area - pad) & ~(words[S_PAGE] - 1)
    if extra <= 0:
        return
    words[S_BRK] -= extra
    words[S_FOOTPRINT] -= extra
    words[C_OS_TRIMS] += 1
    _set_top(words, memory, top)


@njit(cache=True)
def _release_pages(words, maptree, addr, size):
    """Turn [addr, addr + size) of the mmap region into a hole, merging with neighbouring holes."""
    shift = words[S_PAGE_SHIFT]
    first = addr >> shift
    count = size >> shift
    above = first + count
    above_hole = tree_get(maptree, above)
    if above_hole > 0:
        tree_set(maptree, above, 0)
        count += above_hole
    below = tree_last_at_least(maptree, first - 1, 1)
    if below >= 0:
        below_hole = tree_get(maptree, below)
        if below + below_hole == first:
            first = below
            count += below_hole
    if first << shift == words[S_HEAP_LIMIT]:
        tree_set(maptree, first, 0)
        words[S_HEAP_LIMIT] = (first + count) << shift
    else:
        tree_set(maptree, first, count)


@njit(cache=True)
def _map_pages(words, maptree, size):
    """Place a mapping of `size` bytes (a page multiple) like Linux's top-down mmap: the highest hole that
    fits, else just below the mapped region (never into the heap).  Accounts it; returns its address."""
    shift = words[S_PAGE_SHIFT]
    pages = size >> shift
    words[C_SEARCH_STEPS] += 1
    hole = tree_last_at_least(maptree, words[S_MAP_TOP] >> shift, pages)
    if hole >= 0:
        hole_pages = tree_get(maptree, hole)
        tree_set(maptree, hole, hole_pages - pages)
        addr = (hole + hole_pages - pages) << shift
    else:
        addr = words[S_HEAP_LIMIT] - size
        if addr < words[S_BRK]:
            return ST_OUT_OF_MEMORY
        words[S_HEAP_LIMIT] = addr
    kept = words[S_RETAINED] if words[S_RETAINED] < size else size
    words[S_RETAINED] -= kept
    words[S_MAPPED] += size
    words[S_FOOTPRINT] += size - kept
    return addr


@njit(cache=True)
def _mmap_chunk(words, memory, maptree, nb):
    """sysmalloc's mmap path: a chunk of round_up(nb + SIZE_SZ, page) bytes in its own mapping."""
    page = words[S_PAGE]
    size = (nb + words[S_USER_OFFSET] - words[S_HEADER] + page - 1) & ~(page - 1)
    addr = _map_pages(words, maptree, size)
    if addr < 0:
        return addr
    memory[addr >> 3] = 0
    memory[(addr >> 3) + W_SIZE] = size | IS_MMAPPED
    words[S_METADATA] += words[S_USER_OFFSET]
    words[C_MMAPS] += 1
    return addr


@njit(cache=True)
def _munmap_chunk(words, maptree, chunk, size):
    _release_pages(words, maptree, chunk, size)
    words[S_MAPPED] -= size
    words[S_FOOTPRINT] -= size
    words[S_METADATA] -= words[S_USER_OFFSET]
    words[C_MUNMAPS] += 1


@njit(cache=True)
def _malloc_from_top(words, memory, maptree, nb):
    """Cut nb bytes from the front of top; if top is too small, mmap (large nb) or grow the break."""
    min_chunk = words[S_MIN_CHUNK]
    top = words[S_TOP]
    top_size = words[S_BRK] - top
    if top_size < nb + min_chunk:
        threshold = words[S_MMAP_THRESHOLD]
        if threshold > 0 and nb >= threshold:
            chunk = _mmap_chunk(words, memory, maptree, nb)
            if chunk >= 0:
                return chunk
        page_mask = words[S_PAGE] - 1
        need = nb + min_chunk - top_size
        grow = (need + words[S_TOP_PAD] + page_mask) & ~page_mask
        if words[S_BRK] + grow > words[S_HEAP_LIMIT]:
            grow = (need + page_mask) & ~page_mask
            if words[S_BRK] + grow > words[S_HEAP_LIMIT]:
                return ST_OUT_OF_MEMORY
        words[S_BRK] += grow
        words[S_FOOTPRINT] += grow
        words[C_OS_GROWS] += 1
    memory[(top >> 3) + W_SIZE] = nb | PREV_INUSE
    _set_top(words, memory, top + nb)
    words[S_METADATA] += words[S_HEADER]
    return top


# ------------------------------------------------------------ plain policies
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
        if _size_of(memory, chunk) >= nb:
            found = chunk
            break
        chunk = memory[(chunk >> 3) + W_FD]
    if found == NIL and start != head:
        chunk = head
        while chunk != start:
            steps += 1
            if _size_of(memory, chunk) >= nb:
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
def _malloc_plain(state, nb):
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
    mode = words[S_MODE]
    shift = words[S_GRAN_SHIFT]
    victim = _find_plain(words, memory, tree, sizebits, sizeheads, nb)
    if victim < 0 and words[S_HAVE_FAST] != 0:
        _malloc_consolidate(state)
        victim = _find_plain(words, memory, tree, sizebits, sizeheads, nb)
    if victim < 0:
        chunk = _malloc_from_top(words, memory, maptree, nb)
        if mode == MODE_TREE:
            words[S_ROVER] = words[S_TOP] >> shift
        return chunk
    size = _size_of(memory, victim)
    rest = size - nb
    if rest >= words[S_MIN_CHUNK]:
        remainder = victim + nb
        memory[(victim >> 3) + W_SIZE] = nb | PREV_INUSE
        _set_free_chunk(memory, remainder, rest)
        if mode == MODE_LIST:
            # the remainder takes the victim's place in the list
            memory[(remainder >> 3) + W_FD] = memory[(victim >> 3) + W_FD]
            memory[(remainder >> 3) + W_BK] = memory[(victim >> 3) + W_BK]
            memory[(memory[(victim >> 3) + W_FD] >> 3) + W_BK] = remainder
            memory[(memory[(victim >> 3) + W_BK] >> 3) + W_FD] = remainder
            words[S_ROVER] = remainder
        else:
            _index_remove(words, memory, tree, sizebits, sizeheads, victim, size)
            _index_insert(words, memory, tree, sizebits, sizeheads, remainder, rest)
            words[S_ROVER] = remainder >> shift
        words[C_SPLITS] += 1
    else:
        _index_remove(words, memory, tree, sizebits, sizeheads, victim, size)
        _set_inuse_after(memory, victim, size)
        if mode == MODE_LIST:
            words[S_ROVER] = memory[(victim >> 3) + W_FD]  # unlinking leaves the victim's own links
        else:
            words[S_ROVER] = (victim + size) >> shift
    words[S_METADATA] += words[S_HEADER]
    return victim


# --------------------------------------------------------------- glibc malloc
@njit(cache=True)
def _take_glibc(words, memory, victim, size, nb, remember):
    """Unlink a binned chunk, split off the remainder into the unsorted bin (or hand out all of it)."""
    rest = size - nb
    _unlink_glibc(memory, victim, size)
    if rest < words[S_MIN_CHUNK]:
        _set_inuse_after(memory, victim, size)
    else:
        remainder = victim + nb
        _link_after(memory, words[S_ARENA] + UNSORTED_BIN * BIN_STRIDE, remainder)
        if rest >= MIN_LARGE_SIZE:
            memory[(remainder >> 3) + W_FD_NEXTSIZE] = NIL
            memory[(remainder >> 3) + W_BK_NEXTSIZE] = NIL
        memory[(victim >> 3) + W_SIZE] = nb | PREV_INUSE
        _set_free_chunk(memory, remainder, rest)
        words[C_SPLITS] += 1
        if remember:
            words[S_LAST_REMAINDER] = remainder
    words[S_METADATA] += words[S_HEADER]
    return victim


@njit(cache=True)
def _malloc_glibc(state, nb, tbase):
    """glibc _int_malloc after the fastbins (tcache stashing included when tbase >= 0)."""
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
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
    small = nb < MIN_LARGE_SIZE
    if small:
        index = nb >> 4
        bin_ = arena + index * BIN_STRIDE
        bw = bin_ >> 3
        victim = memory[bw + W_BK]
        if victim != bin_:
            words[C_SEARCH_STEPS] += 1
            bck = memory[(victim >> 3) + W_BK]
            memory[bw + W_BK] = bck
            memory[(bck >> 3) + W_FD] = bin_
            _set_inuse_after(memory, victim, nb)
            words[S_METADATA] += header
            if tc_slot >= 0:
                # stash other chunks of this size in the tcache while it has room
                while tcache[tc_slot + 1] < tc_limit:
                    cached = memory[bw + W_BK]
                    if cached == bin_:
                        break
                    bck = memory[(cached >> 3) + W_BK]
                    _set_inuse_after(memory, cached, nb)
                    memory[bw + W_BK] = bck
                    memory[(bck >> 3) + W_FD] = bin_
                    words[S_METADATA] += header
                    _tcache_put(memory, tcache, tc_slot, cached)
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
                _set_free_chunk(memory, remainder, rest)
                words[C_SPLITS] += 1
                words[S_METADATA] += header
                return victim
            memory[uw + W_BK] = bck
            memory[(bck >> 3) + W_FD] = unsorted
            if size == nb:
                _set_inuse_after(memory, victim, size)
                words[S_METADATA] += header
                if tc_slot >= 0 and tcache[tc_slot + 1] < tc_limit:
                    _tcache_put(memory, tcache, tc_slot, victim)
                    words[C_TCACHE_PUTS] += 1
                    return_cached = True
                    continue
                return victim
            _place_in_bin(words, memory, victim, size)
            iterations += 1
            if iterations >= MAX_ITERS:
                break
        if return_cached:
            return _tcache_get(memory, tcache, tc_slot)

        if not small:
            bin_ = arena + index * BIN_STRIDE
            bw = bin_ >> 3
            first = memory[bw + W_FD]
            if first != bin_ and _size_of(memory, first) >= nb:
                victim = memory[(first >> 3) + W_BK_NEXTSIZE]
                size = _size_of(memory, victim)
                steps = 1
                while size < nb:
                    victim = memory[(victim >> 3) + W_BK_NEXTSIZE]
                    size = _size_of(memory, victim)
                    steps += 1
                words[C_SEARCH_STEPS] += steps
                if victim != memory[bw + W_BK] and _size_of(memory, memory[(victim >> 3) + W_FD]) == size:
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
            if victim == bin_:
                words[S_BINMAP + half] &= ~(np.int64(1) << (index & 63))  # a false alarm: clear the bit
                index += 1
                continue
            return _take_glibc(words, memory, victim, _size_of(memory, victim), nb, small)
        # use_top
        if words[S_BRK] - words[S_TOP] >= nb + min_chunk or words[S_HAVE_FAST] == 0:
            return _malloc_from_top(words, memory, maptree, nb)
        _malloc_consolidate(state)  # then try the unsorted bin and the bins again


# ------------------------------------------------------------ malloc / free
@njit(cache=True)
def _malloc_core(state, nb, tbase):
    """glibc _int_malloc: the fastbins (and their tcache stashing), then the policy's search, then top."""
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
    if nb <= words[S_MAX_FAST]:
        index = (nb - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
        victim = words[S_FASTBINS + index]
        if victim != NIL:
            words[S_FASTBINS + index] = memory[(victim >> 3) + W_FD]
            words[C_SEARCH_STEPS] += 1
            if tbase >= 0 and index < words[S_TC_BINS]:
                slot = tbase + 2 + 2 * index
                while tcache[slot + 1] < words[S_TC_COUNT]:
                    cached = words[S_FASTBINS + index]
                    if cached == NIL:
                        break
                    words[S_FASTBINS + index] = memory[(cached >> 3) + W_FD]
                    _tcache_put(memory, tcache, slot, cached)
                    words[C_TCACHE_PUTS] += 1
            return victim
    if nb >= MIN_LARGE_SIZE and words[S_HAVE_FAST] != 0:
        _malloc_consolidate(state)
    if words[S_MODE] == MODE_GLIBC:
        return _malloc_glibc(state, nb, tbase)
    return _malloc_plain(state, nb)


@njit(cache=True)
def _tcache_init(state, thread):
    """A thread's first call: allocate its tcache_perthread_struct from the heap (without a tcache)."""
    words = state[0]
    tcache = state[2]
    struct_bytes = words[S_TC_STRUCT_BYTES]
    mask = words[S_GRAN] - 1
    nb = (struct_bytes + words[S_HEADER] + mask) & ~mask
    if nb < words[S_MIN_CHUNK]:
        nb = words[S_MIN_CHUNK]
    chunk = _malloc_core(state, nb, -1)
    if chunk < 0:
        return False
    tcache[thread * words[S_TC_STRIDE]] = 1
    words[S_METADATA] += struct_bytes
    return True


@njit(cache=True)
def _malloc_slow(state, nb, thread):
    words = state[0]
    tbase = -1
    if words[S_TC_BINS] > 0:
        tbase = thread * words[S_TC_STRIDE]
        if state[2][tbase] == 0 and not _tcache_init(state, thread):
            tbase = -1
    return _malloc_core(state, nb, tbase)


@njit(cache=True)
def _merge_chunk(state, chunk):
    """Coalesce a chunk that stops being in use with its free neighbours (or top) and file the result
    where the policy finds it (glibc: the front of the unsorted bin).  Returns the merged size."""
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
    cw = chunk >> 3
    head = memory[cw + W_SIZE]
    size = head & SIZE_MASK
    words[S_METADATA] -= words[S_HEADER]
    nxt = chunk + size
    if head & PREV_INUSE == 0:
        before = memory[cw + W_PREV_SIZE]
        chunk -= before
        size += before
        _index_remove(words, memory, tree, sizebits, sizeheads, chunk, before)
        words[C_COALESCES] += 1
    top = words[S_TOP]
    if nxt != top:
        nw = nxt >> 3
        next_size = memory[nw + W_SIZE] & SIZE_MASK
        if memory[((nxt + next_size) >> 3) + W_SIZE] & PREV_INUSE == 0:
            _index_remove(words, memory, tree, sizebits, sizeheads, nxt, next_size)
            size += next_size
            words[C_COALESCES] += 1
        else:
            memory[nw + W_SIZE] &= ~PREV_INUSE
        _set_free_chunk(memory, chunk, size)
        _index_insert(words, memory, tree, sizebits, sizeheads, chunk, size)
    else:
        size += words[S_BRK] - top
        _set_top(words, memory, chunk)
        words[C_COALESCES] += 1
    return size


@njit(cache=True)
def _malloc_consolidate(state):
    """glibc malloc_consolidate: empty every fastbin, coalescing each chunk as a free would."""
    words = state[0]
    memory = state[1]
    words[S_HAVE_FAST] = 0
    words[C_CONSOLIDATIONS] += 1
    for index in range(NFASTBINS):
        chunk = words[S_FASTBINS + index]
        words[S_FASTBINS + index] = NIL
        while chunk != NIL:
            following = memory[(chunk >> 3) + W_FD]
            _merge_chunk(state, chunk)
            chunk = following


@njit(cache=True)
def _free_chunk(state, chunk):
    """The coalescing part of glibc _int_free, with its consolidation and trim rule for big frees."""
    words = state[0]
    size = _merge_chunk(state, chunk)
    if size >= FASTBIN_CONSOLIDATION_THRESHOLD:
        if words[S_HAVE_FAST] != 0:
            _malloc_consolidate(state)
        if words[S_TRIM_THRESHOLD] > 0 and words[S_BRK] - words[S_TOP] >= words[S_TRIM_THRESHOLD]:
            _systrim(words, state[1])


@njit(cache=True)
def _int_free(state, chunk, tbase):
    """glibc _int_free (2.26 .. 2.41): the calling thread's tcache if it has room, else a fastbin for
    small chunks (they stay in use: no coalescing until malloc_consolidate), else coalesce."""
    words = state[0]
    memory = state[1]
    size = _size_of(memory, chunk)
    index = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
    if tbase >= 0 and index < words[S_TC_BINS]:
        tcache = state[2]
        slot = tbase + 2 + 2 * index
        if tcache[slot + 1] < words[S_TC_COUNT]:
            _tcache_put(memory, tcache, slot, chunk)
            words[C_TCACHE_PUTS] += 1
            return
    if size <= words[S_MAX_FAST]:
        memory[(chunk >> 3) + W_FD] = words[S_FASTBINS + index]
        words[S_FASTBINS + index] = chunk
        words[S_HAVE_FAST] = 1
        words[C_FASTBIN_PUTS] += 1
        return
    _free_chunk(state, chunk)


@njit(cache=True)
def _free_slow(state, chunk, thread):
    """free() beyond the inlined tcache path: mapped chunks are unmapped, the rest go to _int_free."""
    words = state[0]
    memory = state[1]
    head = memory[(chunk >> 3) + W_SIZE]
    size = head & SIZE_MASK
    if head & IS_MMAPPED:
        if (words[S_MMAP_DYNAMIC] != 0 and size > words[S_MMAP_THRESHOLD]
                and size <= words[S_MMAP_THRESHOLD_MAX]):
            words[S_MMAP_THRESHOLD] = size
            words[S_TRIM_THRESHOLD] = 2 * size
        _munmap_chunk(words, state[6], chunk, size)
        return ST_OK, size - words[S_USER_OFFSET]
    tbase = -1
    if words[S_TC_BINS] > 0:
        tbase = thread * words[S_TC_STRIDE]
        if state[2][tbase] == 0 and not _tcache_init(state, thread):
            tbase = -1
    _int_free(state, chunk, tbase)
    return ST_OK, size - words[S_HEADER]


# -------------------------------------------------------------------- kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words = state[0]
    memory = state[1]
    tcache = state[2]
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
    words = state[0]
    memory = state[1]
    tcache = state[2]
    chunk = addr - words[S_USER_OFFSET]
    head = memory[(chunk >> 3) + W_SIZE]
    words[C_FREES] += 1
    if head & IS_MMAPPED == 0:
        size = head & SIZE_MASK
        tidx = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
        if tidx < words[S_TC_BINS]:
            tbase = thread * words[S_TC_STRIDE]
            slot = tbase + 2 + 2 * tidx
            if tcache[slot + 1] < words[S_TC_COUNT] and tcache[tbase] != 0:
                memory[(chunk >> 3) + W_FD] = tcache[slot]
                tcache[slot] = chunk
                tcache[slot + 1] += 1
                words[C_TCACHE_PUTS] += 1
                return ST_OK, size - words[S_HEADER]
    return _free_slow(state, chunk, thread)


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[0]
    return words[S_FOOTPRINT], words[S_METADATA]


@njit(cache=True)
def _mremap_chunk(words, memory, maptree, chunk, size, nb):
    """glibc mremap_chunk: resize a mapped chunk's mapping (MREMAP_MAYMOVE); returns its (new) address."""
    page_mask = words[S_PAGE] - 1
    mapped = (nb + words[S_USER_OFFSET] - words[S_HEADER] + page_mask) & ~page_mask
    if mapped == size:
        return chunk
    if mapped < size:
        _release_pages(words, maptree, chunk + mapped, size - mapped)
        words[S_MAPPED] -= size - mapped
        words[S_FOOTPRINT] -= size - mapped
        memory[(chunk >> 3) + W_SIZE] = mapped | IS_MMAPPED
        return chunk
    shift = words[S_PAGE_SHIFT]
    above = (chunk + size) >> shift
    hole = tree_get(maptree, above)
    extra = (mapped - size) >> shift
    if hole >= extra:
        # the pages just above are unmapped: grow in place
        tree_set(maptree, above, 0)
        if hole > extra:
            tree_set(maptree, above + extra, hole - extra)
        kept = words[S_RETAINED] if words[S_RETAINED] < mapped - size else mapped - size
        words[S_RETAINED] -= kept
        words[S_MAPPED] += mapped - size
        words[S_FOOTPRINT] += mapped - size - kept
        memory[(chunk >> 3) + W_SIZE] = mapped | IS_MMAPPED
        return chunk
    moved = _map_pages(words, maptree, mapped)
    if moved < 0:
        return moved
    _release_pages(words, maptree, chunk, size)
    words[S_MAPPED] -= size
    words[S_FOOTPRINT] -= size
    memory[moved >> 3] = 0
    memory[(moved >> 3) + W_SIZE] = mapped | IS_MMAPPED
    return moved


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
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
    header = words[S_HEADER]
    user_offset = words[S_USER_OFFSET]
    mask = words[S_GRAN] - 1
    min_chunk = words[S_MIN_CHUNK]
    nb = (new_size + header + mask) & ~mask
    if nb < min_chunk:
        nb = min_chunk
    chunk = addr - user_offset
    cw = chunk >> 3
    head = memory[cw + W_SIZE]
    size = head & SIZE_MASK
    if head & IS_MMAPPED:
        moved = _mremap_chunk(words, memory, maptree, chunk, size, nb)
        if moved < 0:
            return -1, 0
        if moved == chunk:
            words[C_REALLOCS_IN_PLACE] += 1
        else:
            words[C_ALLOCS] += 1
            words[C_FREES] += 1
        return moved + user_offset, _size_of(memory, moved) - user_offset
    tbase = -1
    if words[S_TC_BINS] > 0 and tcache[thread * words[S_TC_STRIDE]] != 0:
        tbase = thread * words[S_TC_STRIDE]
    if nb > size:
        nxt = chunk + size
        top = words[S_TOP]
        if nxt == top and size + words[S_BRK] - top >= nb + min_chunk:
            memory[cw + W_SIZE] = nb | (head & PREV_INUSE)
            _set_top(words, memory, chunk + nb)
            words[C_REALLOCS_IN_PLACE] += 1
            return addr, nb - header
        next_size = memory[(nxt >> 3) + W_SIZE] & SIZE_MASK
        if nxt != top and memory[((nxt + next_size) >> 3) + W_SIZE] & PREV_INUSE == 0 and size + next_size >= nb:
            _index_remove(words, memory, tree, sizebits, sizeheads, nxt, next_size)
            size += next_size
            memory[cw + W_SIZE] = size | (head & PREV_INUSE)
            _set_inuse_after(memory, chunk, size)
            words[C_COALESCES] += 1
        else:
            fresh = _malloc_core(state, nb, tbase)
            if fresh < 0:
                return -1, 0
            if fresh != nxt:
                _int_free(state, chunk, tbase)
                words[C_ALLOCS] += 1
                words[C_FREES] += 1
                fresh_head = memory[(fresh >> 3) + W_SIZE]
                if fresh_head & IS_MMAPPED:
                    return fresh + user_offset, (fresh_head & SIZE_MASK) - user_offset
                return fresh + user_offset, (fresh_head & SIZE_MASK) - header
            # the new chunk is the next one (top grew): take both, no copy
            size += _size_of(memory, fresh)
            memory[cw + W_SIZE] = size | (head & PREV_INUSE)
            words[S_METADATA] -= header
    rest = size - nb
    granted = size - header
    if rest >= min_chunk:
        remainder = chunk + nb
        memory[cw + W_SIZE] = nb | (head & PREV_INUSE)
        memory[(remainder >> 3) + W_SIZE] = rest | PREV_INUSE
        _set_inuse_after(memory, remainder, rest)
        words[S_METADATA] += header  # the remainder is an in-use chunk until it is freed
        words[C_SPLITS] += 1
        _int_free(state, remainder, tbase)
        granted = nb - header
    words[C_REALLOCS_IN_PLACE] += 1
    return addr, granted


@njit(cache=True)
def _init_arena(words, memory):
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
    words[S_ROVER] = arena if words[S_MODE] == MODE_LIST else 0


@njit(cache=True)
def reset_state(state):
    """free(): every chunk back, the whole heap one top chunk; the break and the footprint stay.

    Mapped chunks are released too, but their bytes stay in the footprint as `retained` memory, which
    later mappings use first (a reset keeps the memory taken so far)."""
    words, memory, tcache, tree, sizebits, sizeheads, maptree = state
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
    _init_arena(words, memory)
    for index in range(NFASTBINS):
        words[S_FASTBINS + index] = NIL
    words[S_HAVE_FAST] = 0
    tcache[:] = 0
    _set_top(words, memory, 0)
    words[S_METADATA] = words[S_FIXED_METADATA]
    words[C_RESETS] += 1


@njit(cache=True)
def _walk_heap(state, out):
    """Fill out[k] = (address, size, state) for every chunk from 0 to top: 0 in use, 1 free, 2 top."""
    words = state[0]
    memory = state[1]
    top = words[S_TOP]
    chunk = 0
    count = 0
    while chunk < top and count < out.shape[0]:
        size = _size_of(memory, chunk)
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


@register
class Freelist(Allocator):
    """See the module docstring."""

    name = "freelist"
    summary = "malloc-style boundary-tag chunks: first/next/best fit, split, coalesce, top chunk; glibc preset"
    alignment = ALIGNMENT
    counter_names = COUNTER_NAMES
    #: One arena: every malloc/free that the per-thread tcache does not absorb takes the arena lock.
    shared_counters = ("arena_lock_ops",)

    def counters(self) -> dict[str, int]:
        found = super().counters()
        found["arena_lock_ops"] = (
            found["allocs"] + found["frees"] - found["tcache_hits"] - found["tcache_puts"]
        )
        return found
    defaults = {
        "policy": "first", "order": "address", "bins": "none",
        "granularity": 16, "min_chunk": 32, "header": 8,
        "tcache_bins": 0, "tcache_count": 7, "max_fast": 0,
        "top_pad": 0, "trim_threshold": 0,
        "mmap_threshold": 0, "mmap_dynamic": False, "mmap_threshold_max": 32 << 20,
        "page": 4096,
    }
    presets = {
        "glibc": {
            "policy": "best", "order": "fifo", "bins": "glibc",
            "granularity": 16, "min_chunk": 32, "header": 8,
            "tcache_bins": 64, "tcache_count": 7, "max_fast": 128,
            "top_pad": 128 << 10, "trim_threshold": 128 << 10,
            "mmap_threshold": 128 << 10, "mmap_dynamic": True, "mmap_threshold_max": 32 << 20,
            "page": 4096,
        },
    }
    variants = ("policy=best", "policy=next,order=lifo", "order=fifo,tcache_bins=64,max_fast=128",
                "policy=best,order=address,mmap_threshold=131072,trim_threshold=131072")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    # ---------------------------------------------------------------- params
    def check_params(self) -> None:
        p = self.params
        for key, allowed in (("policy", POLICIES), ("order", ORDERS), ("bins", BINS)):
            if p[key] not in allowed:
                raise BadParameter(f"freelist: {key} must be one of {', '.join(allowed)}, got {p[key]!r}")
        for key in ("granularity", "min_chunk", "header", "tcache_bins", "tcache_count", "max_fast", "top_pad",
                    "trim_threshold", "mmap_threshold", "mmap_threshold_max", "page"):
            value = p[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise BadParameter(f"freelist: {key} must be a non-negative integer, got {value!r}")
            p[key] = int(value)
        if not isinstance(p["mmap_dynamic"], (bool, np.bool_)) and p["mmap_dynamic"] not in (0, 1):
            raise BadParameter(f"freelist: mmap_dynamic must be true or false, got {p['mmap_dynamic']!r}")
        p["mmap_dynamic"] = bool(p["mmap_dynamic"])
        granularity = p["granularity"]
        if not is_power_of_two(granularity) or not 16 <= granularity <= 4096:
            raise BadParameter(f"freelist: granularity must be a power of two in 16..4096, got {granularity}")
        min_chunk = p["min_chunk"]
        if min_chunk < 32 or min_chunk % granularity or min_chunk > 1 << 20:
            raise BadParameter(
                f"freelist: min_chunk must be a multiple of granularity ({granularity}) in 32..1 MiB "
                f"(a free chunk holds a header and two links), got {min_chunk}"
            )
        if p["header"] > 64 or p["header"] >= min_chunk:
            raise BadParameter(f"freelist: header must be in 0..64 and below min_chunk, got {p['header']}")
        if p["tcache_bins"] > 1024:
            raise BadParameter(f"freelist: tcache_bins must be in 0..1024, got {p['tcache_bins']}")
        if not 1 <= p["tcache_count"] <= 65535:
            raise BadParameter(f"freelist: tcache_count must be in 1..65535, got {p['tcache_count']}")
        largest_fast = min_chunk + (NFASTBINS - 1) * granularity
        if p["max_fast"] and not min_chunk <= p["max_fast"] <= largest_fast:
            raise BadParameter(
                f"freelist: max_fast must be 0 (no fastbins) or a chunk size in {min_chunk}..{largest_fast}, "
                f"got {p['max_fast']}"
            )
        page = p["page"]
        if not is_power_of_two(page) or not max(1024, granularity) <= page <= 1 << 30:
            raise BadParameter(f"freelist: page must be a power of two in max(1024, granularity)..1 GiB, got {page}")
        if p["bins"] == "glibc":
            if p["policy"] != "best" or p["order"] != "fifo":
                raise BadParameter(
                    "freelist: bins=glibc fixes the fit (best fit, fifo within a size): "
                    f"policy must be best and order fifo, got policy={p['policy']}, order={p['order']}"
                )
            if granularity != 16 or min_chunk >= MIN_LARGE_SIZE:
                raise BadParameter(
                    f"freelist: bins=glibc needs granularity 16 and min_chunk below {MIN_LARGE_SIZE}, "
                    f"got {granularity} and {min_chunk}"
                )
        if self.capacity < page:
            raise BadParameter(f"freelist: capacity_bytes {self.capacity} is smaller than one page ({page} B)")

    def make_state(self) -> tuple:
        p = self.params
        granularity = p["granularity"]
        page = p["page"]
        map_top = self.capacity // page * page
        if p["bins"] == "glibc":
            mode = MODE_GLIBC
        elif p["policy"] == "best":
            mode = MODE_SIZES
        elif p["order"] == "address":
            mode = MODE_TREE
        else:
            mode = MODE_LIST
        arena = (self.capacity + 63) // 64 * 64 + 64
        tc_bins = p["tcache_bins"]
        stride = 2 + 2 * tc_bins
        heap_slots = map_top // granularity
        try:
            memory = np.zeros((arena + NBINS * BIN_STRIDE) // 8 + 8, np.int64)
            tree = new_tree(heap_slots if mode == MODE_TREE else 1)
            sizebits = new_bitset(heap_slots + 1 if mode == MODE_SIZES else 1)
            sizeheads = np.zeros(heap_slots + 1 if mode == MODE_SIZES else 1, np.int64)
            maptree = new_tree(map_top // page + 1 if p["mmap_threshold"] > 0 else 1)
        except MemoryError:
            raise BadParameter(
                f"freelist: capacity_bytes {self.capacity} too large for this model's address-indexed tables"
            ) from None
        tcache = np.zeros(self.max_threads * stride if tc_bins else 1, np.int64)
        words = np.zeros(N_WORDS, np.int64)
        words[S_MAP_TOP] = map_top
        words[S_HEAP_LIMIT] = map_top
        words[S_MODE] = mode
        words[S_ORDER] = ORDERS.index(p["order"])
        words[S_NEXT_FIT] = p["policy"] == "next"
        words[S_GRAN] = granularity
        words[S_GRAN_SHIFT] = granularity.bit_length() - 1
        words[S_MIN_CHUNK] = p["min_chunk"]
        words[S_HEADER] = p["header"]
        words[S_USER_OFFSET] = (p["header"] + 15) // 16 * 16
        words[S_TC_BINS] = tc_bins
        words[S_TC_COUNT] = p["tcache_count"]
        words[S_TC_STRIDE] = stride
        words[S_TC_STRUCT_BYTES] = TCACHE_BYTES_PER_BIN * tc_bins
        words[S_TOP_PAD] = p["top_pad"]
        words[S_TRIM_THRESHOLD] = p["trim_threshold"]
        words[S_MMAP_THRESHOLD] = p["mmap_threshold"]
        words[S_MMAP_DYNAMIC] = p["mmap_dynamic"]
        words[S_MMAP_THRESHOLD_MAX] = p["mmap_threshold_max"]
        words[S_PAGE] = page
        words[S_PAGE_SHIFT] = page.bit_length() - 1
        words[S_ARENA] = arena
        words[S_MAX_FAST] = p["max_fast"]
        words[S_FASTBINS: S_FASTBINS + NFASTBINS] = NIL
        words[S_FIXED_METADATA] = MALLOC_STATE_BYTES if mode == MODE_GLIBC else PLAIN_ARENA_BYTES
        words[S_METADATA] = words[S_FIXED_METADATA]
        _init_arena(words, memory)
        memory[W_SIZE] = PREV_INUSE  # top: empty, at address 0
        return (words, memory, tcache, tree, sizebits, sizeheads, maptree)

    # ------------------------------------------------------------ inspection
    def chunk_size(self, addr: int) -> int:
        """Size of the chunk behind the user address `addr` (header and flags removed)."""
        chunk = int(addr) - int(self.state[0][S_USER_OFFSET])
        return int(self.state[1][(chunk >> 3) + W_SIZE] & SIZE_MASK)

    def is_mapped(self, addr: int) -> bool:
        chunk = int(addr) - int(self.state[0][S_USER_OFFSET])
        return bool(self.state[1][(chunk >> 3) + W_SIZE] & IS_MMAPPED)

    def heap_chunks(self) -> list[tuple[int, int, str]]:
        """Every chunk of the brk heap in address order: (chunk address, size, 'used' | 'free' | 'top').

        Chunks cached in a tcache count as 'used' (for the heap they are in use)."""
        limit = int(self.state[0][S_TOP]) // int(self.params["min_chunk"]) + 2
        out = np.zeros((limit, 3), np.int64)
        count = _walk_heap(self.state, out)
        names = ("used", "free", "top")
        return [(int(a), int(s), names[int(k)]) for a, s, k in out[:count]]

    @property
    def top_chunk(self) -> tuple[int, int]:
        """(address, size) of the top chunk."""
        words = self.state[0]
        return int(words[S_TOP]), int(words[S_BRK] - words[S_TOP])

    @property
    def mmap_threshold(self) -> int:
        return int(self.state[0][S_MMAP_THRESHOLD])

    def arena_info(self) -> dict[str, Any]:
        """brk, top, mapped bytes and the current mmap / trim thresholds."""
        words = self.state[0]
        return {"brk": int(words[S_BRK]), "top": int(words[S_TOP]), "mapped": int(words[S_MAPPED]),
                "mmap_threshold": int(words[S_MMAP_THRESHOLD]), "trim_threshold": int(words[S_TRIM_THRESHOLD])}
