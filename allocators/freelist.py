"""freelist: a malloc-style allocator with boundary tags (K&R / dlmalloc / glibc ptmalloc2 family).

Design.  The heap is a run of *chunks* laid back to back from address 0 up to
the break (`brk`), followed by nothing: the last chunk is always the *top*
chunk (the "wilderness"), which is never on a free list.  Chunks are modelled
exactly where glibc keeps them, in a simulated memory of 8-byte words
(`memory[addr >> 3]`): a chunk starts with its prev_size word (the previous
chunk's footer, valid while that one is free) and its size word (size |
PREV_INUSE | IS_MMAPPED), then, while it is free, its fd/bk links (and glibc's
fd_nextsize/bk_nextsize in large bins); the words and the state layout are
in `shared.chunks`.

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

Fit policies (parameters `policy`, `order`; defaults first / address): first
or next fit over an address-ordered free list (a max segment tree), a LIFO
or FIFO list; best fit over per-size lists; their searches and costs are in
`allocators.plainfit`.  bins="glibc" (preset `glibc`): ptmalloc2's bins
instead, `allocators.glibc`.  Where a freed chunk is filed for each policy
(`index_insert`/`index_remove`), the coalescing and the rest of the free
path are in `shared.chunkfree`; top, sbrk and mmap in `shared.sysmem`.  This
module holds malloc's front end (tcache, fastbins, then the policy's search,
`plainfit.malloc_plain`, or `glibc.malloc_glibc`), the replay kernels,
realloc and reset.

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
one arena, with its tcache, fastbins, bins, top pad, trim and mmap
thresholds; its design, and how it was checked against the real glibc
(the same address for every allocation), are in `allocators.glibc`.

mmapped region (`mmap_threshold` > 0): a request of at least the threshold
that top cannot serve gets a mapping of its own, placed top-down below
`capacity` (Linux's layout, never into the heap) in the holes of a second
max tree; footprint = brk + bytes currently mapped (+ bytes of mappings
released by free(), which later mappings use first); `shared.sysmem`.

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

State (slots I_* of `shared.chunks`): `words` (counters, then the hot
scalars: footprint, metadata, top, brk, mapped region, parameters, the glibc
binmap, last remainder, rover), `memory` (the words of the simulated address
space, plus the bin headers of the arena just past `capacity`), `tcache` (per
thread: initialised flag, then (head, count) per bin), `tree`
(address-ordered policies), `sizebits` and `sizeheads` (best fit), `maptree`
(mmap holes).  Arrays proportional to the capacity are np.zeros: only pages
the heap touches cost memory (about 1 byte of virtual memory per byte of
capacity, 2 with the address tree, 1.5 with best fit); capacities beyond the
machine's memory are refused (BadParameter).

Cost per operation: tcache or fastbin hit O(1); free O(1) plus the index
insert/remove of the policy (O(1) lists and glibc bins, O(log) tree and size
bitset), plus the occasional malloc_consolidate (O(fastbin chunks)); malloc
on a tcache miss: the policy's search above, or glibc's (`allocators.glibc`).
Counters: search_steps counts chunks examined plus one per index query.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import ST_OK, BadParameter
from allocators.glibc import MALLOC_STATE_BYTES, malloc_glibc
from allocators.hardening import HARDENING_PRESETS, harden, with_hardening
from allocators.plainfit import malloc_plain
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import is_power_of_two
from allocators.shared.bitset import bitset_clear_all, new_bitset
from allocators.shared.chunkfree import index_remove, int_free, malloc_consolidate
from allocators.shared.chunks import (
    BIN_STRIDE,
    C_ALLOCS,
    C_COALESCES,
    C_FREES,
    C_REALLOCS_IN_PLACE,
    C_RESETS,
    C_SEARCH_STEPS,
    C_SPLITS,
    C_TCACHE_HITS,
    C_TCACHE_PUTS,
    COUNTER_NAMES,
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
    N_STATE,
    N_WORDS,
    NFASTBINS,
    NIL,
    ORDER_ADDRESS,
    ORDER_FIFO,
    ORDER_LIFO,
    PREV_INUSE,
    S_ARENA,
    S_BRK,
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
    S_NEXT_FIT,
    S_ORDER,
    S_PAGE,
    S_PAGE_SHIFT,
    S_RETAINED,
    S_ROVER,
    S_TC_BINS,
    S_TC_COUNT,
    S_TC_STRIDE,
    S_TC_STRUCT_BYTES,
    S_TOP,
    S_TOP_PAD,
    S_TRIM_THRESHOLD,
    S_USER_OFFSET,
    SIZE_MASK,
    W_FD,
    W_SIZE,
    set_inuse_after,
    set_top,
    size_of,
    tcache_put,
)
from allocators.shared.glibc_bins import MIN_LARGE_SIZE, NBINS, init_bins
from allocators.shared.maxtree import new_tree, tree_clear_range
from allocators.shared.sysmem import mremap_chunk, munmap_chunk
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16

#: The `order` parameter's values and their codes in words[S_ORDER].
ORDER_CODES = {"lifo": ORDER_LIFO, "fifo": ORDER_FIFO, "address": ORDER_ADDRESS}
ORDERS = tuple(ORDER_CODES)
POLICIES = ("first", "next", "best")
BINS = ("none", "glibc")

#: The arena without bins=glibc: a list head and a top pointer.
PLAIN_ARENA_BYTES = 16
#: Per tcache bin in tcache_perthread_struct (glibc >= 2.30): uint16 count + entry pointer.
TCACHE_BYTES_PER_BIN = 10


# ------------------------------------------------------------ malloc / free
@njit(cache=True)
def _malloc_core(state, nb, tbase):
    """glibc _int_malloc: the fastbins (and their tcache stashing), then the policy's search, then top."""
    words, memory, tcache = state[I_WORDS], state[I_MEMORY], state[I_TCACHE]
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
                    tcache_put(memory, tcache, slot, cached)
                    words[C_TCACHE_PUTS] += 1
            return victim
    if nb >= MIN_LARGE_SIZE and words[S_HAVE_FAST] != 0:
        malloc_consolidate(state)
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
    tcache[thread * words[S_TC_STRIDE]] = 1
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
        return ST_OK, size - words[S_USER_OFFSET]
    tbase = -1
    if words[S_TC_BINS] > 0:
        tbase = thread * words[S_TC_STRIDE]
        if state[I_TCACHE][tbase] == 0 and not _tcache_init(state, thread):
            tbase = -1
    int_free(state, chunk, tbase)
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
                int_free(state, chunk, tbase)
                words[C_ALLOCS] += 1
                words[C_FREES] += 1
                fresh_head = memory[(fresh >> 3) + W_SIZE]
                if fresh_head & IS_MMAPPED:
                    return fresh + user_offset, (fresh_head & SIZE_MASK) - user_offset
                return fresh + user_offset, (fresh_head & SIZE_MASK) - header
            # the new chunk is the next one (top grew): take both, no copy
            size += size_of(memory, fresh)
            memory[cw + W_SIZE] = size | (head & PREV_INUSE)
            words[S_METADATA] -= header
    rest = size - nb
    granted = size - header
    if rest >= min_chunk:
        remainder = chunk + nb
        memory[cw + W_SIZE] = nb | (head & PREV_INUSE)
        memory[(remainder >> 3) + W_SIZE] = rest | PREV_INUSE
        set_inuse_after(memory, remainder, rest)
        words[S_METADATA] += header  # the remainder is an in-use chunk until it is freed
        words[C_SPLITS] += 1
        int_free(state, remainder, tbase)
        granted = nb - header
    words[C_REALLOCS_IN_PLACE] += 1
    return addr, granted


@njit(cache=True)
def _init_arena(words, memory):
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
    _init_arena(words, memory)
    for index in range(NFASTBINS):
        words[S_FASTBINS + index] = NIL
    words[S_HAVE_FAST] = 0
    tcache[:] = 0
    set_top(words, memory, 0)
    words[S_METADATA] = words[S_FIXED_METADATA]
    words[C_RESETS] += 1


@njit(cache=True)
def _walk_heap(state, out):
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
    defaults = with_hardening({
        "policy": "first", "order": "address", "bins": "none",
        "granularity": 16, "min_chunk": 32, "header": 8,
        "tcache_bins": 0, "tcache_count": 7, "max_fast": 0,
        "top_pad": 0, "trim_threshold": 0,
        "mmap_threshold": 0, "mmap_dynamic": False, "mmap_threshold_max": 32 << 20,
        "page": 4096,
    })
    presets = {
        "glibc": {
            "policy": "best", "order": "fifo", "bins": "glibc",
            "granularity": 16, "min_chunk": 32, "header": 8,
            "tcache_bins": 64, "tcache_count": 7, "max_fast": 128,
            "top_pad": 128 << 10, "trim_threshold": 128 << 10,
            "mmap_threshold": 128 << 10, "mmap_dynamic": True, "mmap_threshold_max": 32 << 20,
            "page": 4096,
        },
        **HARDENING_PRESETS,  # on the default policy (first fit, address order)
    }
    configure_instance = harden
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
        words[S_ORDER] = ORDER_CODES[p["order"]]
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
        state: list[np.ndarray] = [words] * N_STATE
        state[I_WORDS], state[I_MEMORY], state[I_TCACHE], state[I_MAPTREE] = words, memory, tcache, maptree
        state[I_TREE], state[I_SIZEBITS], state[I_SIZEHEADS] = tree, sizebits, sizeheads
        return tuple(state)

    # ------------------------------------------------------------ inspection
    def chunk_size(self, addr: int) -> int:
        """Size of the chunk behind the user address `addr` (header and flags removed)."""
        chunk = int(addr) - int(self.state[I_WORDS][S_USER_OFFSET])
        return int(self.state[I_MEMORY][(chunk >> 3) + W_SIZE] & SIZE_MASK)

    def is_mapped(self, addr: int) -> bool:
        chunk = int(addr) - int(self.state[I_WORDS][S_USER_OFFSET])
        return bool(self.state[I_MEMORY][(chunk >> 3) + W_SIZE] & IS_MMAPPED)

    def heap_chunks(self) -> list[tuple[int, int, str]]:
        """Every chunk of the brk heap in address order: (chunk address, size, 'used' | 'free' | 'top').

        Chunks cached in a tcache count as 'used' (for the heap they are in use)."""
        limit = int(self.state[I_WORDS][S_TOP]) // int(self.params["min_chunk"]) + 2
        out = np.zeros((limit, 3), np.int64)
        count = _walk_heap(self.state, out)
        names = ("used", "free", "top")
        return [(int(a), int(s), names[int(k)]) for a, s, k in out[:count]]

    @property
    def top_chunk(self) -> tuple[int, int]:
        """(address, size) of the top chunk."""
        words = self.state[I_WORDS]
        return int(words[S_TOP]), int(words[S_BRK] - words[S_TOP])

    @property
    def mmap_threshold(self) -> int:
        return int(self.state[I_WORDS][S_MMAP_THRESHOLD])

    def arena_info(self) -> dict[str, Any]:
        """brk, top, mapped bytes and the current mmap / trim thresholds."""
        words = self.state[I_WORDS]
        return {"brk": int(words[S_BRK]), "top": int(words[S_TOP]), "mapped": int(words[S_MAPPED]),
                "mmap_threshold": int(words[S_MMAP_THRESHOLD]), "trim_threshold": int(words[S_TRIM_THRESHOLD])}
