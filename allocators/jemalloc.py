"""jemalloc: the jemalloc 5.3 model (size classes, slabs with bitmaps, extents, per-thread tcache, arenas).

Design (jemalloc/jemalloc 5.3: src/sc.c, src/tcache.c, src/arena.c, src/bin_info.c,
src/eset.c; facts in shared/reference/production-allocators.md section 2).  Three tiers:

1. Size classes (allocators.shared.jemalloc_sizeclasses): 8 B; 16 .. 64 in 16 B steps; then
   four classes per doubling.  The 36 classes up to 14 KiB are *small*: their objects
   (regions) live in slabs of the class's slab pages (the smallest page count that is an
   exact multiple of the region size, src/sc.c slab_size; at most 7 pages, no tail waste),
   one bit per region in the slab's bitmap.  Larger classes are *large*: page multiples,
   each object its own extent.  Granted size = the class (what nallocx reports), also for
   large objects.
2. tcache, one per trace thread (allocators.jemalloc_tcache): a cache bin per small class
   and per large class up to opt_tcache_max = 32 KiB (41 bins), a stack of at most
   ncached_max objects (2 x regions per slab, even, in 20..200; 20 for the large bins).
   allocate(size <= 32 KiB): the class is one table lookup; a non-empty bin pops its
   newest object (tcache_hits).  An empty small bin is *filled* from the thread's arena
   with ncached_max >> lg_fill_div objects (half the slots at first; the GC adapts it),
   an empty large bin hands the request to the extents (tcache_misses).  deallocate pushes
   the object onto the freeing thread's bin, whoever allocated it; a full bin first
   flushes its oldest half back (tcache_flushes): small objects to the bins of the arenas
   that own their slabs, large ones to the extents.  Every 64 KiB allocated, and every
   64 KiB freed, by a thread, one of its bins in turn is garbage collected: 3/4 of its
   low-water mark is flushed (gc_events, gc_flushes).
3. Arenas (allocators.jemalloc_arena): `narenas` of them; a thread is given one on its first
   operation, round robin.  An arena has a bin per small class: the current slab
   (slabcur), filled from in bitmap order (lowest free region first), and the nonfull
   slabs, of which the lowest-address one becomes the next slabcur (jemalloc's heap of
   nonfull slabs is ordered oldest / lowest first; full slabs are not tracked).  A slab
   whose regions are all free leaves its bin and its extent goes back at once.  Each arena
   has its own extents (allocators.jemalloc_extents): page runs of 4 KiB pages, free ones in
   a dirty and a retained set, each first fit by address over the page-size-class bins that
   serve the request (jemalloc's eset_first_fit takes the oldest / lowest extent of those
   bins; in the dirty set only bins up to 64 x the request, opt_lg_extent_max_active_fit),
   split, and merged with free neighbours of the same arena and set (the dirty set merges
   extents under 16 KiB only when decay evicts them, so never in the model, larger ones
   eagerly; no merge crosses the boundary of a chunk, opt_retain's head extents); an arena
   with no free run that fits takes a new
   chunk from the address space, shared by all arenas as the OS's is, sized as jemalloc's
   exp_grow sizes it: `grow_bytes` (2 MiB, HUGEPAGE) first, then one page-size class more
   each time (2.5, 3, 3.5, 4, 5 MiB, ...; a larger request skips to the class that holds it).
   A large object's extent is its class plus one pad page (sz_large_pad, the cache-oblivious
   default of the Debian build).  Arena 0's first chunk starts with the *startup extents*
   (jemalloc_arena.STARTUP_EXTENT_PAGES: the first thread's tcache bin stacks, 28 KiB + pad, and
   libstdc++'s emergency exception pool, 80 KiB + pad, both live before a program's first malloc
   returns under LD_PRELOAD), then the 16 B slab of the replayer's warm-up malloc(16) / free as
   arena 0's current 16 B slab: 117 KiB outside the footprint and the counters, as they are in
   the real replayer's baseline (jemalloc_arena.startup).

Decay (`decay`): jemalloc purges dirty pages (those of free extents) after a delay; the
model has the two ends.  "never" (dirty_decay_ms = -1): freed extents stay dirty, mapped,
and are reused first.  "immediate" (dirty_decay_ms = muzzy_decay_ms = 0, preset
`immediate`): a freed extent is purged at once, retained.  The footprint is what
stats.mapped reports with opt_retain (the Linux default): active + dirty pages; retained
pages (of chunks no extent has used yet, or purged) are reserved address space, not mapped.
free() keeps the footprint: every active extent becomes dirty in its arena.

Known simplifications: ordering by address stands for jemalloc's (serial number, address)
order; the dedicated arena above opt_oversize_threshold (8 MiB) and the eager purge of dirty
extents of that size, the 10 s decay curve (and the coalescing of small dirty extents it does
on eviction), muzzy pages, binshards and the cache bins' flush delay
(opt_tcache_gc_delay_bytes, 0 by default) are not modelled.  The model's chunks follow one another
upwards (so address order is the chunks' serial-number order); real ones are mmaps the kernel
places (downwards, among the process's other mappings), so past the first chunk a block's real
address differs from the model's by that chunk's own shift (measured 2026-12-02, decay off: with
one shift per model chunk every allocation of cc1, cc1-x6, sqlite3, python3 and xz agrees, large
ones to the page: real large extents start at a random cache line of their pad page).  Other
threads' tcache bin stacks (carved from arena 0 in real jemalloc) are not modelled.

Hardening: the lab's generic layer (allocators.hardening: slot state, checksums, canaries,
quarantine, shuffling, guard pages, encoded links) as parameters, presets `hardened`, `scudo`.

Parameters: `narenas` (8: jemalloc's default is 4 x the CPUs it sees; fixed here as
4 x 2 CPUs of the lab's machine so that no figure depends on the machine running it),
`decay` ("never" | "immediate"), `grow_bytes` (an arena's first growth, 2 MiB, a multiple of the
4 KiB page).

realloc: in place when the new size has the same class (arena_ralloc_no_move for small
objects; a large object's expansion or shrinking in place is not modelled), otherwise
allocate, copy, free.  Alignment: 8 B, as jemalloc's tiny class (8 B objects, 8 B apart);
every class from 16 B on is a multiple of the 16 B quantum and slabs and extents start on
pages, so those objects are 16 B aligned.

Costs.  Hit / push: one lookup, one stack operation, O(1).  Fill: O(objects) plus a slab
carved (an extent found, split: O(log pages); its pages mapped and bitmap cleared:
O(pages + bitmap words)) or a nonfull slab found (O(log pages) in the bin's bitset).
Flush: O(objects) plus an extent freed and merged per slab emptied (O(log pages)).  A GC
step: one bin's flush.

Metadata model (metadata_bytes): 128 B per live extent record (edata_t, whose slab data
holds the bitmap), free extents included, + 8 B per page of address space taken (the
rtree's leaves), + per arena in use 36 x 192 B of bins and 4 KiB of the rest of arena_t,
+ per thread tcache 128 B + 27 B per bin (cache_bin_t and tcache_slow_t's per-bin bytes)
+ 8 B per stack slot (sum of ncached_max), + the size -> class lookup (2 B per slot).  The
nonfull sets stand in for the pairing-heap links inside edata_t and are not counted.

State: see allocators.jemalloc_layout (the named slots and strides of every array).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, BadParameter
from allocators.hardening import HARDENING_OFF, HARDENING_PRESETS, harden, with_hardening
from allocators.jemalloc_arena import large_dalloc, startup
from allocators.jemalloc_extents import X_ACTIVE_PAGES, extents_reset, init_extents, new_trees
from allocators.jemalloc_layout import (
    B_LOW_WATER,
    B_NCACHED,
    B_SHIFT,
    C_ALLOCS,
    C_ARENAS_USED,
    C_FREES,
    C_REALLOCS_IN_PLACE,
    C_TC_HITS,
    COUNTER_NAMES,
    I_BINS,
    I_BITS,
    I_CLASS_INDEX,
    I_CLASSES,
    I_NONFULL,
    I_PAGEMAP,
    I_SPANS,
    I_STACKS,
    I_TC,
    I_TREES,
    I_WORDS,
    K_NCACHED_MAX,
    K_NREGS,
    K_PAGES,
    K_SHIFT,
    K_SIZE,
    K_STACK,
    N_WORDS,
    S_ARENA_BYTES,
    S_BITSET_WORDS,
    S_EXT_METADATA,
    S_GC_INCR,
    S_LARGE_PAD,
    S_MAPPED_PAGES,
    S_METADATA,
    S_N_CACHED,
    S_N_SMALL,
    S_N_THREADS,
    S_NARENAS,
    S_NEXT_ARENA,
    S_STACK_STRIDE,
    S_STATIC_METADATA,
    S_TC_STRIDE,
    S_TCACHE_BYTES,
    STACK_STRIDE,
    T_UNTIL_DGC,
    T_UNTIL_GC,
    TC_STRIDE,
    XB,
)
from allocators.jemalloc_tcache import alloc_event, alloc_huge, alloc_miss, dalloc_event, flush_full, reset_threads
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.bitset import bitset_clear_all, new_bitset
from allocators.shared.jemalloc_sizeclasses import (
    ALIGNMENT,
    JEMALLOC_TABLE,
    LG_PAGE,
    N_CACHED,
    N_SMALL,
    NCACHED_MAX,
    NREGS,
    PAGE_SIZE,
    TCACHE_MAX,
    je_large_usize,
    je_size_to_class,
)
from allocators.shared.spanbitmap import bitmap_words_for
from allocators.shared.spans import NO_SPAN, SP_CLASS, SPAN_SHIFT, new_pagemap, new_span_bits, new_span_table
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

DEFAULT_NARENAS = 8  # 4 x 2 CPUs (opt_narenas' default on the lab's 2-core machine)
MAX_NARENAS = 64  # each arena's tables are sized by the capacity
DECAYS = ("never", "immediate")
DEFAULT_GROW_BYTES = 2 << 20  # HUGEPAGE: the first step of jemalloc's extent growth (exp_grow)
GC_INCR_BYTES = 65536  # opt_tcache_gc_incr_bytes
LARGE_PAD_PAGES = 1  # sz_large_pad with cache-oblivious large allocations

#: Metadata model (bytes).
EDATA_BYTES = 128
RTREE_ENTRY_BYTES = 8
BIN_BYTES = 192
ARENA_REST_BYTES = 4096
TCACHE_HEADER_BYTES = 128
TCACHE_PER_BIN_BYTES = 27
STACK_SLOT_BYTES = 8


# ------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, tc = state[I_WORDS], state[I_TC]
    if size > TCACHE_MAX:
        return alloc_huge(state, je_large_usize(size), thread)
    cls = je_size_to_class(size, state[I_CLASS_INDEX])
    trec = thread * TC_STRIDE
    rec = trec + (cls << B_SHIFT)
    n = tc[rec + B_NCACHED] - 1
    if n < 0:
        return alloc_miss(state, cls, thread)
    classes = state[I_CLASSES]
    k = cls << K_SHIFT
    tc[rec + B_NCACHED] = n
    if n < tc[rec + B_LOW_WATER]:
        tc[rec + B_LOW_WATER] = n
    addr = state[I_STACKS][thread * STACK_STRIDE + classes[k + K_STACK] + n]
    usize = classes[k + K_SIZE]
    words[C_TC_HITS] += 1
    words[C_ALLOCS] += 1
    left = tc[trec + T_UNTIL_GC] - usize
    tc[trec + T_UNTIL_GC] = left
    if left <= 0:
        alloc_event(state, thread)
    return addr, usize


@njit(cache=True)
def free_huge(state, s, thread):
    """A large extent the tcache does not cache (> 32 KiB) goes straight back."""
    usize = large_dalloc(state, s)
    words, tc = state[I_WORDS], state[I_TC]
    words[C_FREES] += 1
    at = thread * TC_STRIDE + T_UNTIL_DGC
    tc[at] -= usize
    if tc[at] <= 0:
        dalloc_event(state, thread)
    return np.int64(ST_OK), usize


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, classes, tc = state[I_WORDS], state[I_CLASSES], state[I_TC]
    s = state[I_PAGEMAP][addr >> LG_PAGE]
    cls = state[I_SPANS][(s << SPAN_SHIFT) + SP_CLASS]
    if cls == 0:
        return free_huge(state, s, thread)
    k = cls << K_SHIFT
    trec = thread * TC_STRIDE
    rec = trec + (cls << B_SHIFT)
    n = tc[rec + B_NCACHED]
    if n == classes[k + K_NCACHED_MAX]:
        n = flush_full(state, cls, thread)
    state[I_STACKS][thread * STACK_STRIDE + classes[k + K_STACK] + n] = addr
    tc[rec + B_NCACHED] = n + 1
    usize = classes[k + K_SIZE]
    words[C_FREES] += 1
    left = tc[trec + T_UNTIL_DGC] - usize
    tc[trec + T_UNTIL_DGC] = left
    if left <= 0:
        dalloc_event(state, thread)
    return np.int64(ST_OK), usize


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[I_WORDS]
    return words[S_MAPPED_PAGES] << LG_PAGE, words[S_EXT_METADATA] + words[S_METADATA]


@njit(cache=True, inline="always")
def realloc_in_place(state, addr, granted, new_size, thread):
    """arena_ralloc_no_move: keep the block when the new size has the same class."""
    if new_size <= TCACHE_MAX:
        usize = state[I_CLASSES][je_size_to_class(new_size, state[I_CLASS_INDEX]) << K_SHIFT]
    else:
        usize = je_large_usize(new_size)
    if usize == granted:
        state[I_WORDS][C_REALLOCS_IN_PLACE] += 1
        return addr, granted
    return np.int64(-1), np.int64(0)


@njit(cache=True)
def reset_state(state):
    """Every block free: tcaches and bins empty, threads without arenas, the heap one free run.

    The footprint is kept as it was (free() gives nothing back); with decay immediate the next extent
    operation returns the free pages.
    """
    words, bins, nonfull = state[I_WORDS], state[I_BINS], state[I_NONFULL]
    reset_threads(words, state[I_TC], words[S_N_THREADS], words[S_N_CACHED])
    for b in range(bins.shape[0]):
        bins[b] = NO_SPAN
    width = words[S_BITSET_WORDS]
    for i in range(words[S_NARENAS] * words[S_N_SMALL]):
        bitset_clear_all(nonfull[i * width:(i + 1) * width])
    extents_reset(words, XB, state[I_SPANS], state[I_PAGEMAP], state[I_TREES], words[S_NARENAS])
    mapped = words[S_MAPPED_PAGES]
    startup(state)
    words[XB + X_ACTIVE_PAGES] += mapped - words[S_MAPPED_PAGES]  # (a startup extent taken from retained pages)
    words[S_MAPPED_PAGES] = mapped
    words[S_NEXT_ARENA] = 0
    words[S_METADATA] = words[S_STATIC_METADATA]
    words[C_ARENAS_USED] = 0  # none in use until a thread starts again


# ---------------------------------------------------------------- the shell
def _stack_offsets() -> tuple[np.ndarray, int]:
    offsets = np.zeros(N_CACHED + 1, np.int64)
    offsets[1:] = np.cumsum(NCACHED_MAX[1:]) - NCACHED_MAX[1:]
    return offsets, int(NCACHED_MAX[1:].sum())


@register
class JEMalloc(Allocator):
    name = "jemalloc"
    summary = (
        "jemalloc 5.3: four size classes per doubling, slabs with bitmaps (lowest free region, lowest nonfull "
        "slab), per-thread tcache with fill / flush-half / incremental GC, round-robin arenas, first-fit extents"
    )
    alignment = ALIGNMENT
    defaults = with_hardening({"narenas": DEFAULT_NARENAS, "decay": "never", "grow_bytes": DEFAULT_GROW_BYTES})
    presets = {"immediate": {"decay": "immediate"}, **HARDENING_PRESETS}
    hardening_params = HARDENING_OFF
    variants = ("narenas=1", "grow_bytes=64KiB")
    counter_names = COUNTER_NAMES
    #: Lock-taking operations: each fill and each per-arena pass of a flush takes a bin lock, each extent
    #: allocation or free the arena's extent lock.  tcache hits and pushes take none.
    shared_counters = ("bin_locks", "extent_allocs", "extent_frees")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    @staticmethod
    def configure_instance(allocator: Allocator) -> None:
        """The hardening hook (allocators.hardening.harden), then the reuse declaration.

        An object freed by a thread of another arena goes back to its owner's extents (a small one to the
        freeing thread's tcache), so with several arenas the freeing thread may not get that memory back at
        once: `delays_reuse`.  With narenas=1 (a variant) the conformance suite checks that freed memory is
        reused.
        """
        harden(allocator)
        allocator.delays_reuse = allocator.delays_reuse or allocator.params["narenas"] > 1

    def check_params(self) -> None:
        p = self.params
        narenas = p["narenas"]
        if isinstance(narenas, bool) or not isinstance(narenas, (int, np.integer)) or not 1 <= narenas <= MAX_NARENAS:
            raise BadParameter(f"jemalloc: narenas must be an integer in 1..{MAX_NARENAS}, got {narenas!r}")
        if p["decay"] not in DECAYS:
            raise BadParameter(f"jemalloc: decay must be one of {', '.join(DECAYS)}, got {p['decay']!r}")
        grow = p["grow_bytes"]
        if isinstance(grow, bool) or not isinstance(grow, (int, np.integer)) or grow < PAGE_SIZE or grow % PAGE_SIZE:
            raise BadParameter(f"jemalloc: grow_bytes must be a positive multiple of {PAGE_SIZE}, got {grow!r}")
        if self.capacity < PAGE_SIZE:
            raise BadParameter(f"jemalloc: capacity_bytes {self.capacity} is smaller than one {PAGE_SIZE} B page")
        p["narenas"] = int(narenas)
        p["grow_bytes"] = int(grow)


    def make_state(self) -> tuple:
        p = self.params
        table = JEMALLOC_TABLE
        narenas = p["narenas"]
        capacity_pages = self.capacity >> LG_PAGE
        bitmap_words = bitmap_words_for(int(NREGS[1:N_SMALL + 1].max()))
        words = np.zeros(N_WORDS + narenas, np.int64)  # + each arena's next extent growth (jemalloc_extents)
        grow_pages = p["grow_bytes"] >> LG_PAGE
        init_extents(
            words, XB, capacity_pages=capacity_pages, grow_pages=grow_pages, purge=p["decay"] == "immediate",
            record_bytes=EDATA_BYTES, rtree_entry_bytes=RTREE_ENTRY_BYTES, bitmap_words=bitmap_words,
            narenas=narenas, grow_next_at=N_WORDS, large_pad=LARGE_PAD_PAGES,
        )
        offsets, stack_stride = _stack_offsets()
        classes = np.zeros((N_CACHED + 1) << K_SHIFT, np.int64)
        classes[K_SIZE::1 << K_SHIFT] = table.size
        classes[K_PAGES::1 << K_SHIFT] = table.pages
        classes[K_NREGS::1 << K_SHIFT] = NREGS
        classes[K_NCACHED_MAX::1 << K_SHIFT] = NCACHED_MAX
        classes[K_STACK::1 << K_SHIFT] = offsets
        tc_stride = TC_STRIDE
        template = new_bitset(capacity_pages)
        width = len(template)
        header = 1 + 2 * int(template[0])
        words[S_N_THREADS] = self.max_threads
        words[S_NARENAS] = narenas
        words[S_TC_STRIDE] = tc_stride
        words[S_STACK_STRIDE] = stack_stride
        words[S_BITSET_WORDS] = width
        words[S_GC_INCR] = GC_INCR_BYTES
        words[S_ARENA_BYTES] = N_SMALL * BIN_BYTES + ARENA_REST_BYTES
        words[S_TCACHE_BYTES] = TCACHE_HEADER_BYTES + N_CACHED * TCACHE_PER_BIN_BYTES + STACK_SLOT_BYTES * stack_stride
        words[S_LARGE_PAD] = LARGE_PAD_PAGES
        words[S_N_SMALL] = N_SMALL
        words[S_N_CACHED] = N_CACHED
        words[S_STATIC_METADATA] = table.class_index.nbytes  # the size -> class lookup (sz_size2index_tab)
        words[S_METADATA] = words[S_STATIC_METADATA]
        try:
            spans = new_span_table(capacity_pages + 1)
            pagemap = new_pagemap(capacity_pages)
            trees = new_trees(narenas, capacity_pages)
            bits = new_span_bits(capacity_pages + 1, bitmap_words)
            nonfull = np.zeros(narenas * N_SMALL * width, np.int64)
        except (MemoryError, ValueError):
            raise BadParameter(
                f"jemalloc: capacity_bytes {self.capacity} too large for this model's address-indexed tables"
            ) from None
        nonfull.reshape(-1, width)[:, :header] = template[:header]
        tc = np.zeros(self.max_threads * tc_stride, np.int64)
        reset_threads(words, tc, self.max_threads, N_CACHED)
        stacks = np.zeros(self.max_threads * stack_stride, np.int64)
        bins = np.full(narenas * (N_SMALL + 1), NO_SPAN, np.int64)
        arrays = {
            I_WORDS: words, I_CLASS_INDEX: table.class_index, I_CLASSES: classes, I_TC: tc, I_STACKS: stacks,
            I_BINS: bins, I_NONFULL: nonfull, I_SPANS: spans, I_PAGEMAP: pagemap, I_TREES: trees,
            I_BITS: bits,
        }
        state = tuple(arrays[i] for i in range(len(arrays)))
        startup(state)
        return state


__all__ = ["DECAYS", "DEFAULT_NARENAS", "JEMalloc", "S_ARENA_BYTES", "S_MAPPED_PAGES", "S_NEXT_ARENA"]
