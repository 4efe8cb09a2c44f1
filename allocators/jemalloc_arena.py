"""jemalloc model, arena side: bins of slabs (slabcur + nonfull, lowest address first) and extents.

The slow paths behind the tcache (see allocators.jemalloc for the whole design):

- A *bin* (one per arena and small class, src/bin.c / src/arena.c) has a current slab
  `slabcur` and a set of nonfull slabs; full slabs are not tracked (an automatic arena
  keeps no full list).  `bin_fill` is arena_cache_bin_fill_small: regions are taken from
  slabcur in bitmap order (lowest free region first, arena_slab_reg_alloc_batch); when
  slabcur has none left the bin takes its lowest-address nonfull slab
  (arena_bin_refill_slabcur_no_fresh_slab: jemalloc's heap of nonfull slabs is ordered by
  serial number then address, and in this model an arena's extents are handed out in address
  order, so the oldest is the lowest), and only when there is none a fresh slab
  (arena_slab_alloc) of the class's slab pages.
- `bin_dalloc` is arena_dalloc_bin_locked_step: the region's bit cleared; a slab that is
  wholly free leaves the bin (slabcur := none, or out of the nonfull set) and its extent
  goes back (arena_slab_dalloc); a slab that was full and is not slabcur becomes slabcur
  if it lies below the current one (arena_bin_lower_slab: slabcur then goes to the nonfull
  set, or nowhere when full), else joins the nonfull set.
- Extents (allocators.jemalloc_extents: per arena, dirty and retained, first fit by address):
  a large request takes an extent of its large size class plus the cache-oblivious pad page
  (sz_large_pad) from the thread's arena, a slab one of its slab pages from the bin's arena.
  Every extent operation updates the footprint (S_MAPPED_PAGES).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.jemalloc_extents import X_ACTIVE_PAGES, X_COUNTER_NAMES, extents_mapped_pages, extents_metadata
from allocators.jemalloc_extents import extent_alloc as x_alloc
from allocators.jemalloc_extents import extent_dalloc as x_dalloc
from allocators.jemalloc_layout import (
    C_BIN_LOCKS,
    C_LARGE_ALLOCS,
    C_LARGE_FREES,
    C_SLABS_ALLOCATED,
    C_SLABS_FREED,
    I_BINS,
    I_BITS,
    I_CLASSES,
    I_NONFULL,
    I_PAGEMAP,
    I_SPANS,
    I_TREES,
    I_WORDS,
    K_NREGS,
    K_PAGES,
    K_SHIFT,
    K_SIZE,
    S_BITSET_WORDS,
    S_EXT_METADATA,
    S_LARGE_PAD,
    S_MAPPED_PAGES,
    S_N_SMALL,
    SP_ARENA,
    XB,
)
from allocators.shared.bitset import bitset_clear, bitset_next, bitset_set
from allocators.shared.central import init_small_span
from allocators.shared.jemalloc_sizeclasses import LG_PAGE
from allocators.shared.spanbitmap import bitmap_release, bitmap_take_lowest
from allocators.shared.spans import (
    NO_SPAN,
    SP_CLASS,
    SP_NFREE,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SPAN_SHIFT,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


# ------------------------------------------------------------------ extents
@njit(cache=True)
def extent_alloc(state, arena, npages):
    """An extent of `npages` pages from `arena` (the span id), or NO_SPAN when the address space is exhausted."""
    words = state[I_WORDS]
    s = x_alloc(words, XB, state[I_SPANS], state[I_PAGEMAP], state[I_TREES], arena, npages)
    words[S_MAPPED_PAGES] = extents_mapped_pages(words, XB)
    words[S_EXT_METADATA] = extents_metadata(words, XB)
    return s


@njit(cache=True)
def extent_dalloc(state, s):
    words = state[I_WORDS]
    x_dalloc(words, XB, state[I_SPANS], state[I_PAGEMAP], state[I_TREES], s)
    words[S_MAPPED_PAGES] = extents_mapped_pages(words, XB)
    words[S_EXT_METADATA] = extents_metadata(words, XB)


@njit(cache=True)
def large_alloc(state, usize, cls, arena):
    """large_malloc: an extent of the large class + the pad page; (address, usize) or (-1, 0)."""
    words, spans = state[I_WORDS], state[I_SPANS]
    s = extent_alloc(state, arena, (usize >> LG_PAGE) + words[S_LARGE_PAD])
    if s == NO_SPAN:
        return np.int64(-1), np.int64(0)
    spans[(s << SPAN_SHIFT) + SP_CLASS] = cls  # a class the tcache caches (37..41), else 0
    words[C_LARGE_ALLOCS] += 1
    return spans[(s << SPAN_SHIFT) + SP_START] << LG_PAGE, usize


@njit(cache=True)
def large_dalloc(state, s):
    """large_dalloc: the extent goes back to its arena; returns its usable size."""
    words, spans = state[I_WORDS], state[I_SPANS]
    usize = (spans[(s << SPAN_SHIFT) + SP_NPAGES] - words[S_LARGE_PAD]) << LG_PAGE
    extent_dalloc(state, s)
    words[C_LARGE_FREES] += 1
    return usize


#: The class of the replayer's warm-up malloc(16) (model class 2): its slab is in the real baseline.
WARM_UP_CLASS = 2

#: The extents real jemalloc 5.3 (Debian libjemalloc2, LD_PRELOADed) has active in arena 0 before a program's
#: first malloc returns, in pages, in the order they are carved from the first chunk: the thread's tcache bin
#: stacks (tsd_tcache_data_init: 8 x (2 + sum of ncached_max) = 24784 B, PAGE aligned, class 28 KiB + the pad
#: page) and libstdc++'s emergency exception pool (libjemalloc2 links libstdc++; eh_alloc.cc mallocs
#: 64 x 1024 + 64 x 112 = 72704 B at load: class 80 KiB + the pad page).  Measured: the warm-up malloc(16)
#: lands 116 KiB into the first 2 MiB chunk.  They live as long as the process and are in the replayer's
#: baseline, so they take address space but are not counted in the footprint or the counters.
STARTUP_EXTENT_PAGES = np.array([8, 21], np.int64)
N_X_COUNTERS = len(X_COUNTER_NAMES)


@njit(cache=True)
def startup(state):
    """The heap as the real replayer's baseline finds it, outside the footprint and the counters: the startup
    extents, then the slab of the warm-up malloc(16) (freed since, its region back in the tcache) as arena 0's
    current 16 B slab.  The model's own trace may replay that warm-up (bench.real.placement): it then fills from
    this slab, as real jemalloc did."""
    words, spans = state[I_WORDS], state[I_SPANS]
    saved = words[XB:XB + N_X_COUNTERS].copy()
    slabs = words[C_SLABS_ALLOCATED]
    for n in STARTUP_EXTENT_PAGES:
        s = x_alloc(words, XB, spans, state[I_PAGEMAP], state[I_TREES], 0, n)
        if s == NO_SPAN:
            break
        words[XB + X_ACTIVE_PAGES] -= n
    s = _slab_alloc(state, 0, WARM_UP_CLASS)
    if s != NO_SPAN:
        state[I_BINS][WARM_UP_CLASS] = s  # arena 0's bin
        words[XB + X_ACTIVE_PAGES] -= spans[(s << SPAN_SHIFT) + SP_NPAGES]
    words[XB:XB + N_X_COUNTERS] = saved
    words[C_SLABS_ALLOCATED] = slabs
    words[S_MAPPED_PAGES] = extents_mapped_pages(words, XB)
    words[S_EXT_METADATA] = extents_metadata(words, XB)


# --------------------------------------------------------------------- bins
@njit(cache=True, inline="always")
def _nonfull(state, arena, cls):
    """The nonfull-slab bitset of bin (arena, cls): a view into the flat array."""
    words = state[I_WORDS]
    width = words[S_BITSET_WORDS]
    offset = (arena * words[S_N_SMALL] + cls - 1) * width
    return state[I_NONFULL][offset:offset + width]


@njit(cache=True)
def _slab_alloc(state, arena, cls):
    """arena_slab_alloc: a fresh slab of class `cls` for `arena` (every region free), or NO_SPAN."""
    words, classes, spans = state[I_WORDS], state[I_CLASSES], state[I_SPANS]
    k = cls << K_SHIFT
    s = extent_alloc(state, arena, classes[k + K_PAGES])
    if s == NO_SPAN:
        return s
    init_small_span(spans, state[I_BITS], state[I_PAGEMAP], s, cls, classes[k + K_SIZE], classes[k + K_NREGS])
    spans[(s << SPAN_SHIFT) + SP_ARENA] = arena  # (init_small_span maps every page and clears the bitmap)
    words[C_SLABS_ALLOCATED] += 1
    return s


@njit(cache=True)
def _take_nonfull(state, arena, cls):
    """Remove and return the bin's lowest-address nonfull slab, or NO_SPAN."""
    nonfull = _nonfull(state, arena, cls)
    page = bitset_next(nonfull, 0)
    if page < 0:
        return NO_SPAN
    bitset_clear(nonfull, page)
    return state[I_PAGEMAP][page]


@njit(cache=True)
def bin_fill(state, arena, cls, stacks, base, nfill):
    """arena_cache_bin_fill_small: up to `nfill` regions into stacks[base ...], the first taken on top.

    Returns how many were filled (0: out of memory).  One bin lock.
    """
    words, spans, bits, bins = state[I_WORDS], state[I_SPANS], state[I_BITS], state[I_BINS]
    words[C_BIN_LOCKS] += 1
    b = arena * (words[S_N_SMALL] + 1) + cls
    filled = 0
    while filled < nfill:
        cur = bins[b]
        if cur != NO_SPAN:
            sb = cur << SPAN_SHIFT
            nfree = spans[sb + SP_NFREE]
            if nfree > 0:
                take = nfill - filled
                if take > nfree:
                    take = nfree
                start = spans[sb + SP_START] << LG_PAGE
                size = spans[sb + SP_OBJ_SIZE]
                for _ in range(take):
                    index = bitmap_take_lowest(spans, bits, cur)
                    stacks[base + nfill - 1 - filled] = start + index * size
                    filled += 1
                spans[sb + SP_NFREE] = nfree - take
                continue
        s = _take_nonfull(state, arena, cls)  # slabcur (full) is then tracked nowhere
        if s == NO_SPAN:
            s = _slab_alloc(state, arena, cls)
            if s == NO_SPAN:
                break
        bins[b] = s
    if filled < nfill and filled > 0:  # short fill: move the objects down to the bottom of the stack
        gap = nfill - filled
        for i in range(filled):
            stacks[base + i] = stacks[base + gap + i]
    return filled


@njit(cache=True)
def bin_dalloc(state, cls, s, addr):
    """arena_dalloc_bin_locked_step for the region at `addr` of slab `s` (class `cls`)."""
    words, spans, bins = state[I_WORDS], state[I_SPANS], state[I_BINS]
    base = s << SPAN_SHIFT
    start = spans[base + SP_START]
    bitmap_release(spans, state[I_BITS], s, (addr - (start << LG_PAGE)) // spans[base + SP_OBJ_SIZE])
    nfree = spans[base + SP_NFREE] + 1
    spans[base + SP_NFREE] = nfree
    arena = spans[base + SP_ARENA]
    b = arena * (words[S_N_SMALL] + 1) + cls
    cur = bins[b]
    nregs = spans[base + SP_NOBJ]
    if nfree == nregs:  # wholly free: dissociate, then the extent goes back
        if cur == s:
            bins[b] = NO_SPAN
        elif nregs > 1:
            bitset_clear(_nonfull(state, arena, cls), start)
        extent_dalloc(state, s)
        words[C_SLABS_FREED] += 1
    elif nfree == 1 and cur != s:  # was full: arena_bin_lower_slab
        if cur != NO_SPAN and spans[(cur << SPAN_SHIFT) + SP_START] > start:
            if spans[(cur << SPAN_SHIFT) + SP_NFREE] > 0:
                bitset_set(_nonfull(state, arena, cls), spans[(cur << SPAN_SHIFT) + SP_START])
            bins[b] = s
        else:
            bitset_set(_nonfull(state, arena, cls), start)
