"""jemalloc model, extents: each arena's page runs, dirty and retained, first fit by address, grown in chunks.

jemalloc 5.3 (src/pac.c, src/extent.c, src/eset.c, src/exp_grow.c) hands out memory in
*extents*: page-aligned runs of 4 KiB pages, each owned by one arena.  A free extent sits
in one of the arena's extent caches: *dirty* (freed, still mapped) or *retained* (never
used, or purged: address space kept, pages given back; opt_retain, the Linux default).
This module models that per arena:

- `extent_alloc(arena, n)`: eset_fit on the dirty cache, else on the retained one, else the arena
  *grows*.  eset_fit reads the eset bins an extent of n pages can come from: a free extent of L
  pages is in the bin of sz_psz_quantize_floor(L) (page-size class + the large pad page), and the
  bins read start at sz_psz_quantize_ceil(n), so an extent serves n pages when L >= that; in
  the dirty cache the bins stop where the class passes 64 x n pages (opt_lg_extent_max_active_fit
  = 6: a large dirty extent is not split for a much smaller request).  Among the extents that
  qualify eset_first_fit takes the oldest / lowest (serial number, address); the model takes the
  lowest address (`_fit`).  Growing: a chunk is taken from the "OS" (one bump pointer over the
  address space shared by all arenas: os_grows) as a retained extent.  Its size follows jemalloc's exp_grow,
  per arena: the arena's next growth size (`grow_pages` at first: 2 MiB, HUGEPAGE), or the
  smallest page-size class above it that holds n pages, after which the next growth is one
  page-size class larger (page-size classes: four per doubling, 2, 2.5, 3, 3.5, 4, 5 MiB ...).
  The extent found is split: its first n pages are the allocation, the rest stays free where
  it was (not coalesced: extent_recycle_split).  A grown chunk's first page is a *head*
  (EXTENT_IS_HEAD, marked in the heads region of `trees`).
- `extent_dalloc(s)`: the extent becomes dirty (decay never) or retained (decay immediate: its
  pages are purged at once) and is coalesced as extent_record does (`_release`): the dirty cache
  delays coalescing, so an extent under 16 KiB (SC_LARGE_MINCLASS) goes in unmerged and a larger
  one merges eagerly, repeatedly, with its free dirty neighbours (the small unmerged ones too);
  the retained cache always merges.  Only neighbours of the same arena and cache merge, and with
  opt_retain never across a head: chunks taken by separate grows stay apart.
- footprint (stats.mapped): the pages of active and dirty extents; retained pages are not
  mapped.  Nothing is ever unmapped (retain), so the address space taken only grows.

Records: span records of allocators.shared.spans (one table, shared by all arenas; extents
tile the pages taken so far, so the page map's first and last page of every extent are always
valid and name its neighbours).  A free extent has state SPAN_FREE_RUN, its cache in SP_LIST
(DIRTY or RETAINED) and its arena in SP_ARENA; each (arena, cache) indexes its free extents in
a max segment tree over pages (allocators.shared.maxtree: slot = first page, value = length),
so first fit is O(log pages), and so are split and merge.

State: scalars in `words` (X_* below, relative to the region base `xb`, with the span-record
allocator at xb + X_RECORDS); arrays `spans`, `pagemap`, `trees` (2 x narenas trees of
`X_TREE_WORDS` words, viewed by slicing, then at X_HEADS_AT one word per page: 1 = a chunk's
first page).

Not modelled: the decay of dirty pages (10 s curve) and with it the delayed coalescing done on
eviction (ecache_evict) and the eager purge of dirty extents of 8 MiB and more
(oversize_threshold) that extent_record does when decay is on.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.bits import floor_log2
from allocators.shared.maxtree import new_tree, tree_clear_range, tree_first_at_least, tree_get, tree_set
from allocators.shared.spans import (
    NO_SPAN,
    RECORD_SLOTS,
    SP_CLASS,
    SP_LIST,
    SP_NPAGES,
    SP_START,
    SP_STATE,
    SP_USER0,
    SPAN_FREE_RUN,
    SPAN_LARGE,
    SPAN_SHIFT,
    SR_DEAD_HEAD,
    SR_LIVE,
    SR_TOP,
    init_records,
    pagemap_set_bounds,
    span_record_free,
    span_record_new,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

DIRTY = 0
RETAINED = 1

LARGE_MIN_PAGES = 4  # SC_LARGE_MINCLASS (16 KiB) in pages: smaller dirty extents are coalesced lazily
LG_MAX_ACTIVE_FIT = 6  # opt_lg_extent_max_active_fit: a dirty extent's class is at most 64 x the request

#: The owning arena of an extent, in its span record.
SP_ARENA = SP_USER0

# counters first (they extend the owner's counter list), then scalars
X_C_ALLOCS, X_C_FREES, X_C_SPLITS, X_C_MERGES, X_C_GROWS = 0, 1, 2, 3, 4
X_COUNTER_NAMES = ("extent_allocs", "extent_frees", "extent_splits", "extent_merges", "os_grows")
X_OS_PAGES = 5  # pages taken from the "OS" (reserved address space)
X_ACTIVE_PAGES = 6
X_DIRTY_PAGES = 7
X_CAPACITY_PAGES = 8
X_HEADS_AT = 9  # offset in `trees` of the chunk-head marks (one word per page: 1 = the first page of a chunk)
X_PURGE = 10  # 1: freed extents are purged at once (retained), 0: they stay dirty
X_TREE_WORDS = 11
X_RECORD_BYTES = 12
X_RTREE_ENTRY_BYTES = 13
X_GROW_NEXT_AT = 14  # index in `words` of the arenas' next growth sizes (pages), one word per arena
X_LARGE_PAD = 15  # sz_large_pad in pages: the page-size quantization of extent lengths counts it (sz_psz_quantize_*)
X_RECORDS = 16
X_SLOTS = X_RECORDS + RECORD_SLOTS


def init_extents(words: np.ndarray, xb: int, *, capacity_pages: int, grow_pages: int, purge: bool,
                 record_bytes: int, rtree_entry_bytes: int, bitmap_words: int, narenas: int, grow_next_at: int,
                 large_pad: int) -> None:
    """Write the scalars of an empty extent space into words[xb : xb + X_SLOTS] (Python side).

    words[grow_next_at : grow_next_at + narenas] get the arenas' first growth size (`grow_pages`).
    """
    words[xb:xb + X_SLOTS] = 0
    words[xb + X_GROW_NEXT_AT] = grow_next_at
    words[grow_next_at:grow_next_at + narenas] = max(1, grow_pages)
    words[xb + X_CAPACITY_PAGES] = capacity_pages
    words[xb + X_LARGE_PAD] = large_pad
    words[xb + X_PURGE] = 1 if purge else 0
    words[xb + X_TREE_WORDS] = len(new_tree(max(1, capacity_pages)))
    words[xb + X_HEADS_AT] = 2 * narenas * words[xb + X_TREE_WORDS]
    words[xb + X_RECORD_BYTES] = record_bytes
    words[xb + X_RTREE_ENTRY_BYTES] = rtree_entry_bytes
    init_records(words, xb + X_RECORDS, bitmap_words)


def new_trees(narenas: int, capacity_pages: int) -> np.ndarray:
    """The dirty and retained trees of every arena, then the chunk-head marks (one word per page), one flat
    array (np.zeros: untouched pages cost nothing)."""
    template = new_tree(max(1, capacity_pages))
    width = len(template)
    trees = np.zeros(2 * narenas * width + max(1, capacity_pages), np.int64)
    trees[:2 * narenas * width].reshape(2 * narenas, width)[:, 0] = template[0]
    return trees


@njit(cache=True, inline="always")
def _tree(words, xb, trees, arena, which):
    width = words[xb + X_TREE_WORDS]
    offset = (2 * arena + which) * width
    return trees[offset:offset + width]


@njit(cache=True, inline="always")
def extents_mapped_pages(words, xb):
    """stats.mapped in pages: active + dirty extents."""
    return words[xb + X_ACTIVE_PAGES] + words[xb + X_DIRTY_PAGES]


@njit(cache=True, inline="always")
def extents_metadata(words, xb):
    """Live extent records + the rtree's leaves over the pages taken."""
    return (words[xb + X_RECORDS + SR_LIVE] * words[xb + X_RECORD_BYTES]
            + words[xb + X_OS_PAGES] * words[xb + X_RTREE_ENTRY_BYTES])


@njit(cache=True)
def _index(words, xb, spans, pagemap, trees, s, arena, which, start, npages):
    base = s << SPAN_SHIFT
    spans[base + SP_START] = start
    spans[base + SP_NPAGES] = npages
    spans[base + SP_STATE] = SPAN_FREE_RUN
    spans[base + SP_CLASS] = 0
    spans[base + SP_LIST] = which
    spans[base + SP_ARENA] = arena
    pagemap_set_bounds(pagemap, s, start, npages)
    tree_set(_tree(words, xb, trees, arena, which), start, npages)
    if which == DIRTY:
        words[xb + X_DIRTY_PAGES] += npages


@njit(cache=True)
def _unindex(words, xb, spans, trees, s):
    base = s << SPAN_SHIFT
    which = spans[base + SP_LIST]
    tree_set(_tree(words, xb, trees, spans[base + SP_ARENA], which), spans[base + SP_START], 0)
    if which == DIRTY:
        words[xb + X_DIRTY_PAGES] -= spans[base + SP_NPAGES]


@njit(cache=True, inline="always")
def _mergeable(spans, n, arena, which):
    base = n << SPAN_SHIFT
    same_owner = spans[base + SP_ARENA] == arena and spans[base + SP_LIST] == which
    return spans[base + SP_STATE] == SPAN_FREE_RUN and same_owner


@njit(cache=True)
def _release(words, xb, spans, pagemap, trees, s, arena, which):
    """Make extent `s` a free extent of (arena, which), coalesced as extent_record does.

    The dirty cache delays coalescing (ecache_dirty's delay_coalesce): an extent below SC_LARGE_MINCLASS
    (16 KiB, LARGE_MIN_PAGES) goes in as it is; a larger one is coalesced eagerly, again and again, with every
    free dirty neighbour of its arena (extent_try_coalesce_large).  The retained cache always coalesces.  With
    opt_retain no merge crosses a chunk boundary: a neighbour above that starts a chunk (a head extent), or an
    extent that starts one itself, is not merged with the one below it (extent_neighbor_head_state_mergeable).
    """
    base = s << SPAN_SHIFT
    start = spans[base + SP_START]
    npages = spans[base + SP_NPAGES]
    if which != DIRTY or npages >= LARGE_MIN_PAGES:
        heads = words[xb + X_HEADS_AT]
        rb = xb + X_RECORDS
        os_pages = words[xb + X_OS_PAGES]
        while start > 0 and trees[heads + start] == 0:
            left = pagemap[start - 1]
            if not _mergeable(spans, left, arena, which):
                break
            _unindex(words, xb, spans, trees, left)
            start = spans[(left << SPAN_SHIFT) + SP_START]
            npages += spans[(left << SPAN_SHIFT) + SP_NPAGES]
            span_record_free(words, rb, spans, left)
            words[xb + X_C_MERGES] += 1
        while start + npages < os_pages and trees[heads + start + npages] == 0:
            right = pagemap[start + npages]
            if not _mergeable(spans, right, arena, which):
                break
            _unindex(words, xb, spans, trees, right)
            npages += spans[(right << SPAN_SHIFT) + SP_NPAGES]
            span_record_free(words, rb, spans, right)
            words[xb + X_C_MERGES] += 1
    _index(words, xb, spans, pagemap, trees, s, arena, which, start, npages)


@njit(cache=True, inline="always")
def next_psize_pages(pages):
    """The page-size class after `pages` (in pages): 1, 2, 3, 4, then four per doubling (5, 6, 7, 8, 10, ...)."""
    if pages < 4:
        return pages + 1
    return pages + (np.int64(1) << (floor_log2(pages) - 2))


@njit(cache=True, inline="always")
def psize_floor_pages(pages):
    """The largest page-size class <= `pages` (1, 2, 3, 4, then four per doubling)."""
    if pages <= 4:
        return pages
    grain = np.int64(1) << (floor_log2(pages) - 2)
    return pages // grain * grain


@njit(cache=True, inline="always")
def psize_ceil_pages(pages):
    """The smallest page-size class >= `pages`."""
    if pages <= 4:
        return pages
    grain = np.int64(1) << (floor_log2(pages) - 2)
    return (pages + grain - 1) // grain * grain


@njit(cache=True, inline="always")
def quantize_floor(pages, pad):
    """sz_psz_quantize_floor in pages: the largest (page-size class + pad) <= `pages` (`pages` itself up to pad)."""
    if pages <= pad:
        return pages
    return psize_floor_pages(pages - pad) + pad


@njit(cache=True, inline="always")
def quantize_ceil(pages, pad):
    """sz_psz_quantize_ceil in pages: the smallest (page-size class + pad) >= `pages`."""
    if quantize_floor(pages, pad) == pages:
        return pages
    return psize_ceil_pages(pages - pad) + pad


@njit(cache=True)
def _fit(words, xb, trees, arena, which, npages):
    """eset_fit: the lowest-address free extent of (arena, which) whose bin serves `npages`, or -1 (its first page).

    An extent of L pages sits in the eset bin of quantize_floor(L) (whose class is sz_psz2ind of it, rounded up
    to a page-size class); eset_first_fit reads the bins from that of quantize_ceil(npages) up, so an extent
    qualifies when L >= quantize_ceil(npages).  In the dirty cache (delay_coalesce) it stops at the first bin
    whose class exceeds 64 x npages pages (opt_lg_extent_max_active_fit): a larger extent is not split for it.
    """
    tree = _tree(words, xb, trees, arena, which)
    pad = words[xb + X_LARGE_PAD]
    need = quantize_ceil(npages, pad)
    start = tree_first_at_least(tree, 0, need)
    if which == DIRTY:
        limit = npages << LG_MAX_ACTIVE_FIT
        while start >= 0 and psize_ceil_pages(quantize_floor(tree_get(tree, start), pad)) > limit:
            start = tree_first_at_least(tree, start + 1, need)
    return start


@njit(cache=True)
def _grow(words, xb, spans, pagemap, trees, arena, npages):
    """A new chunk for `arena`, retained (a head extent); its first page, or -1 when the address space cannot
    hold `npages` more.  The request is then split from it (extent_grow_retained)."""
    at = words[xb + X_GROW_NEXT_AT] + arena
    size = words[at]
    while size < npages:
        size = next_psize_pages(size)
    os_pages = words[xb + X_OS_PAGES]
    room = words[xb + X_CAPACITY_PAGES] - os_pages
    ask = size if size <= room else room
    if ask < npages:
        return -1
    words[at] = next_psize_pages(size)
    s = span_record_new(words, xb + X_RECORDS, spans)
    base = s << SPAN_SHIFT
    spans[base + SP_START] = os_pages
    spans[base + SP_NPAGES] = ask
    spans[base + SP_STATE] = SPAN_LARGE
    words[xb + X_OS_PAGES] = os_pages + ask
    trees[words[xb + X_HEADS_AT] + os_pages] = 1  # a head extent (EXTENT_IS_HEAD): no merge with what lies below
    words[xb + X_C_GROWS] += 1
    _release(words, xb, spans, pagemap, trees, s, arena, RETAINED)
    return os_pages


@njit(cache=True)
def extent_alloc(words, xb, spans, pagemap, trees, arena, npages):
    """An active extent of `npages` pages for `arena` (state SPAN_LARGE, class 0), or NO_SPAN."""
    which = DIRTY
    start = _fit(words, xb, trees, arena, DIRTY, npages)
    if start < 0:
        which = RETAINED
        start = _fit(words, xb, trees, arena, RETAINED, npages)
        if start < 0:
            start = _grow(words, xb, spans, pagemap, trees, arena, npages)
            if start < 0:
                return NO_SPAN
    s = pagemap[start]
    base = s << SPAN_SHIFT
    have = spans[base + SP_NPAGES]
    _unindex(words, xb, spans, trees, s)
    if have > npages:  # split: the tail stays free where it was
        rest = span_record_new(words, xb + X_RECORDS, spans)
        _index(words, xb, spans, pagemap, trees, rest, arena, which, start + npages, have - npages)
        words[xb + X_C_SPLITS] += 1
    spans[base + SP_NPAGES] = npages
    spans[base + SP_STATE] = SPAN_LARGE
    spans[base + SP_CLASS] = 0
    spans[base + SP_LIST] = NO_SPAN
    pagemap_set_bounds(pagemap, s, start, npages)
    words[xb + X_ACTIVE_PAGES] += npages
    words[xb + X_C_ALLOCS] += 1
    return s


@njit(cache=True)
def extent_dalloc(words, xb, spans, pagemap, trees, s):
    """Give active extent `s` back to its arena: dirty, or retained (purged) when X_PURGE is set."""
    base = s << SPAN_SHIFT
    words[xb + X_ACTIVE_PAGES] -= spans[base + SP_NPAGES]
    which = RETAINED if words[xb + X_PURGE] != 0 else DIRTY
    _release(words, xb, spans, pagemap, trees, s, spans[base + SP_ARENA], which)
    words[xb + X_C_FREES] += 1


@njit(cache=True)
def extents_reset(words, xb, spans, pagemap, trees, narenas):
    """Every extent free: active ones become dirty in their arena (nothing is given back), neighbours merged."""
    os_pages = words[xb + X_OS_PAGES]
    for arena in range(narenas):
        for which in (DIRTY, RETAINED):
            tree_clear_range(_tree(words, xb, trees, arena, which), 0, os_pages)
    runs = np.empty(3 * (os_pages + 1), np.int64)  # (start, arena, kind) of each merged run, read first:
    n_runs = 0  # new records reuse the old ids
    page = 0
    while page < os_pages:
        base = pagemap[page] << SPAN_SHIFT
        arena = spans[base + SP_ARENA]
        which = spans[base + SP_LIST] if spans[base + SP_STATE] == SPAN_FREE_RUN else DIRTY
        head = trees[words[xb + X_HEADS_AT] + page] != 0
        if n_runs == 0 or head or runs[3 * n_runs - 2] != arena or runs[3 * n_runs - 1] != which:
            runs[3 * n_runs] = page
            runs[3 * n_runs + 1] = arena
            runs[3 * n_runs + 2] = which
            n_runs += 1
        page += spans[base + SP_NPAGES]
    rb = xb + X_RECORDS
    words[rb + SR_DEAD_HEAD] = NO_SPAN
    words[rb + SR_TOP] = 0
    words[rb + SR_LIVE] = 0
    words[xb + X_DIRTY_PAGES] = 0
    words[xb + X_ACTIVE_PAGES] = 0
    for i in range(n_runs):
        start = runs[3 * i]
        end = runs[3 * i + 3] if i + 1 < n_runs else os_pages
        r = span_record_new(words, rb, spans)
        _index(words, xb, spans, pagemap, trees, r, runs[3 * i + 1], runs[3 * i + 2], start, end - start)
