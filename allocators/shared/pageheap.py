"""Page heap: page-granular runs over the simulated address space, with growth, best/first fit and coalescing.

The back-end of TCMalloc (`PageHeap`) and Go (`mheap` + its page allocator).
Memory is handed out in runs of whole pages (`page_shift`: 13, 8 KiB, for both
models).  Each run is a span record (allocators.shared.spans); the runs tile
the *heap* `[0, heap_pages)`, the part of the address space taken from the
"OS" so far, and the first and last page of every run are mapped to its record
in `pagemap`.

- allocate(n): find a free run of at least n pages, cut the first n pages off
  it (the rest, if any, becomes a new free run: a *split*) and return its
  span, state SPAN_LARGE and class 0 (a size-class model then turns it into a
  SPAN_SMALL span).  When no free run is large enough the heap *grows*.
- free(span): *coalesce* with the free run ending just below (pagemap[start-1])
  and the one starting just above (pagemap[end]), then index the merged run.
  Free runs are therefore never adjacent.
- grow(n): take `round_up(n, grow_pages)` pages (clamped to the capacity) at
  the heap's end from the "OS" (os_grows), as one free run that coalesces with
  a free run at the old end.  `grow_pages` is a parameter: TCMalloc grows by
  what is needed rounded to 1 MiB (128 pages), Go by 4 MiB multiples (512
  pages, `mheap.grow`).  With `grow_at_least` the ask is max(n, grow_pages)
  instead, not rounded: gperftools' GrowHeap (ask = max(n, kMinSystemAlloc)).  The address space behind
  the heap is *reserved* in `arena_pages` units (Go: 64 MiB arenas, 8192 pages;
  TCMalloc: 1 GiB kMinMmapAlloc), tracked as `reserved_pages` for reporting
  only.  Pages are never returned to the OS (no scavenger/release): the
  footprint `heap_pages << page_shift` only grows.

Free-run index, two policies (`policy`):
- POLICY_BEST_FIT (TCMalloc): one doubly linked LIFO list per run length
  (1 .. capacity pages; heads and tails in `run_heads`, two slots per length)
  and a hierarchical bitset of non-empty lengths (allocators.shared.bitset):
  the smallest length >= n with a free run is one `bitset_next`, O(log64 P)
  words read for P pages, then O(1) list work.  This is gperftools' page heap
  (exact lists up to 128 pages + a best-fit set above) with one mechanism for
  all lengths; ties are broken newest first (gperftools: LIFO below 128 pages,
  lowest address above).
- POLICY_FIRST_FIT (Go): address-ordered first fit, the lowest free run that is
  long enough, found in a max segment tree over start pages
  (allocators.shared.maxtree; slot = first page of a free run, value = its
  length), O(log2 P).  Go's page allocator (a bitmap with a radix tree of
  free-run summaries) finds the same run.
Both: allocate O(log P) + O(1) split; free O(1) coalescing + O(log P) index
updates; grow O(1) + a free.

State.  Scalars in the caller's `words` at a base `ph` (offsets PH_*), the
page heap's counters first (PH_COUNTER_NAMES: place the region right after
your own counters and they extend your counter list), then its parameters and
totals and the span-record allocator (spans.SR_* at ph + PH_RECORDS).  Arrays:
`spans` (span table), `pagemap`, `run_heads` (best fit; 2 int64 per page +2),
`run_bits` (best fit; bitset over lengths), `run_tree` (first fit; maxtree over
pages).  `new_pageheap_arrays` makes them, with tiny dummies for the index the
policy does not use.

Metadata accounting (`PH_METADATA`, bytes): live span records x `span_bytes`
(a model parameter: gperftools' Span is 48 B, Go's mspan about 160 B) + mapped
pages x `pagemap_entry_bytes` (8: one pointer per page in the radix tree's
leaves).  Recomputed after every page-heap operation, so reading it is O(1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.bitset import bitset_clear, bitset_next, bitset_set, new_bitset
from allocators.shared.maxtree import new_tree, tree_clear_range, tree_first_at_least, tree_set
from allocators.shared.spans import (
    NO_SPAN,
    RECORD_SLOTS,
    SP_CLASS,
    SP_NPAGES,
    SP_START,
    SP_STATE,
    SPAN_FREE_RUN,
    SPAN_LARGE,
    SPAN_SHIFT,
    SR_DEAD_HEAD,
    SR_LIVE,
    SR_TOP,
    init_records,
    list_init,
    list_push_front,
    list_remove,
    new_pagemap,
    new_span_table,
    pagemap_set_bounds,
    span_record_free,
    span_record_new,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

POLICY_BEST_FIT = 0
POLICY_FIRST_FIT = 1
POLICIES = ("best", "first")

# Counters (relative to the region base `ph`), then scalars.
PH_C_ALLOCS = 0
PH_C_FREES = 1
PH_C_SPLITS = 2
PH_C_COALESCES = 3
PH_C_GROWS = 4
PH_N_COUNTERS = 5
PH_COUNTER_NAMES = ("page_heap_allocs", "page_heap_frees", "page_heap_splits", "page_heap_coalesces", "os_grows")

PH_PAGE_SHIFT = 5
PH_HEAP_PAGES = 6
PH_CAPACITY_PAGES = 7
PH_GROW_PAGES = 8
PH_ARENA_PAGES = 9
PH_RESERVED_PAGES = 10
PH_FREE_PAGES = 11
PH_FREE_RUNS = 12
PH_POLICY = 13
PH_SPAN_BYTES = 14
PH_PAGEMAP_ENTRY_BYTES = 15
PH_METADATA = 16
PH_GROW_AT_LEAST = 17  # 1: grow by max(n, grow_pages); 0: by round_up(n, grow_pages)
PH_RECORDS = 18
PH_SLOTS = PH_RECORDS + RECORD_SLOTS


def new_pageheap_arrays(capacity_pages: int, policy: int, bitmap_words: int) -> tuple:
    """(spans, pagemap, run_heads, run_bits, run_tree) for a heap of at most `capacity_pages` pages.

    Raises MemoryError when the tables cannot be reserved (the caller turns it into BadParameter).
    """
    n_records = capacity_pages + 1
    spans = new_span_table(n_records)
    pagemap = new_pagemap(capacity_pages)
    if policy == POLICY_BEST_FIT:
        run_heads = np.full(2 * (capacity_pages + 1), NO_SPAN, np.int64)
        run_bits = new_bitset(capacity_pages + 1)
        run_tree = new_tree(1)
    else:
        run_heads = np.full(2, NO_SPAN, np.int64)
        run_bits = new_bitset(1)
        run_tree = new_tree(max(1, capacity_pages))
    return spans, pagemap, run_heads, run_bits, run_tree


def init_pageheap(
    words: np.ndarray,
    ph: int,
    *,
    page_shift: int,
    capacity_pages: int,
    grow_pages: int,
    arena_pages: int,
    policy: int,
    span_bytes: int,
    pagemap_entry_bytes: int,
    bitmap_words: int,
    grow_at_least: bool = False,
) -> None:
    """Write an empty page heap's scalars into words[ph : ph + PH_SLOTS] (Python side)."""
    words[ph : ph + PH_SLOTS] = 0
    words[ph + PH_PAGE_SHIFT] = page_shift
    words[ph + PH_CAPACITY_PAGES] = capacity_pages
    words[ph + PH_GROW_PAGES] = max(1, grow_pages)
    words[ph + PH_GROW_AT_LEAST] = 1 if grow_at_least else 0
    words[ph + PH_ARENA_PAGES] = max(1, arena_pages)
    words[ph + PH_POLICY] = policy
    words[ph + PH_SPAN_BYTES] = span_bytes
    words[ph + PH_PAGEMAP_ENTRY_BYTES] = pagemap_entry_bytes
    init_records(words, ph + PH_RECORDS, bitmap_words)


# ------------------------------------------------------------ free-run index
@njit(cache=True)
def _index_insert(words, ph, spans, run_heads, run_bits, run_tree, s, start, npages):
    if words[ph + PH_POLICY] == POLICY_BEST_FIT:
        if run_heads[2 * npages] == NO_SPAN:
            bitset_set(run_bits, npages)
        list_push_front(run_heads, 2 * npages, spans, s)
    else:
        tree_set(run_tree, start, npages)
    words[ph + PH_FREE_PAGES] += npages
    words[ph + PH_FREE_RUNS] += 1


@njit(cache=True)
def _index_remove(words, ph, spans, run_heads, run_bits, run_tree, s, start, npages):
    if words[ph + PH_POLICY] == POLICY_BEST_FIT:
        list_remove(run_heads, 2 * npages, spans, s)
        if run_heads[2 * npages] == NO_SPAN:
            bitset_clear(run_bits, npages)
    else:
        tree_set(run_tree, start, 0)
    words[ph + PH_FREE_PAGES] -= npages
    words[ph + PH_FREE_RUNS] -= 1


@njit(cache=True)
def _index_find(words, ph, pagemap, run_heads, run_bits, run_tree, npages):
    """A free run of at least `npages` pages by the heap's policy, or NO_SPAN."""
    if words[ph + PH_POLICY] == POLICY_BEST_FIT:
        length = bitset_next(run_bits, npages)
        if length < 0:
            return NO_SPAN
        return run_heads[2 * length]
    start = tree_first_at_least(run_tree, 0, npages)
    if start < 0:
        return NO_SPAN
    return pagemap[start]


@njit(cache=True, inline="always")
def _update_metadata(words, ph):
    words[ph + PH_METADATA] = (
        words[ph + PH_RECORDS + SR_LIVE] * words[ph + PH_SPAN_BYTES]
        + words[ph + PH_HEAP_PAGES] * words[ph + PH_PAGEMAP_ENTRY_BYTES]
    )


@njit(cache=True)
def _release_run(words, ph, spans, pagemap, run_heads, run_bits, run_tree, s):
    """Make span `s` a free run, merged with free neighbours, and index it."""
    base = s << SPAN_SHIFT
    start = spans[base + SP_START]
    npages = spans[base + SP_NPAGES]
    end = start + npages
    if start > 0:
        left = pagemap[start - 1]
        left_base = left << SPAN_SHIFT
        if spans[left_base + SP_STATE] == SPAN_FREE_RUN:
            left_start = spans[left_base + SP_START]
            left_pages = spans[left_base + SP_NPAGES]
            _index_remove(words, ph, spans, run_heads, run_bits, run_tree, left, left_start, left_pages)
            span_record_free(words, ph + PH_RECORDS, spans, left)
            start = left_start
            npages += left_pages
            words[ph + PH_C_COALESCES] += 1
    if end < words[ph + PH_HEAP_PAGES]:
        right = pagemap[end]
        right_base = right << SPAN_SHIFT
        if spans[right_base + SP_STATE] == SPAN_FREE_RUN:
            right_pages = spans[right_base + SP_NPAGES]
            _index_remove(words, ph, spans, run_heads, run_bits, run_tree, right, end, right_pages)
            span_record_free(words, ph + PH_RECORDS, spans, right)
            npages += right_pages
            words[ph + PH_C_COALESCES] += 1
    spans[base + SP_START] = start
    spans[base + SP_NPAGES] = npages
    spans[base + SP_STATE] = SPAN_FREE_RUN
    spans[base + SP_CLASS] = 0
    pagemap_set_bounds(pagemap, s, start, npages)
    _index_insert(words, ph, spans, run_heads, run_bits, run_tree, s, start, npages)


@njit(cache=True)
def _grow(words, ph, spans, pagemap, run_heads, run_bits, run_tree, npages):
    """Take pages from the "OS" so that a run of `npages` can exist; False if the capacity forbids it."""
    heap_pages = words[ph + PH_HEAP_PAGES]
    quantum = words[ph + PH_GROW_PAGES]
    if words[ph + PH_GROW_AT_LEAST]:
        ask = npages if npages > quantum else quantum
    else:
        ask = (npages + quantum - 1) // quantum * quantum
    room = words[ph + PH_CAPACITY_PAGES] - heap_pages
    if ask > room:
        ask = room
    trailing = 0
    if heap_pages > 0:
        last = pagemap[heap_pages - 1]
        if spans[(last << SPAN_SHIFT) + SP_STATE] == SPAN_FREE_RUN:
            trailing = spans[(last << SPAN_SHIFT) + SP_NPAGES]
    if ask <= 0 or ask + trailing < npages:
        return False
    s = span_record_new(words, ph + PH_RECORDS, spans)
    base = s << SPAN_SHIFT
    spans[base + SP_START] = heap_pages
    spans[base + SP_NPAGES] = ask
    spans[base + SP_STATE] = SPAN_LARGE
    heap_pages += ask
    words[ph + PH_HEAP_PAGES] = heap_pages
    arena = words[ph + PH_ARENA_PAGES]
    words[ph + PH_RESERVED_PAGES] = (heap_pages + arena - 1) // arena * arena
    words[ph + PH_C_GROWS] += 1
    _release_run(words, ph, spans, pagemap, run_heads, run_bits, run_tree, s)
    return True


# ------------------------------------------------------------------ the API
@njit(cache=True)
def pageheap_alloc(words, ph, spans, pagemap, run_heads, run_bits, run_tree, npages):
    """A span of exactly `npages` pages (state SPAN_LARGE, class 0), or NO_SPAN when the capacity is exhausted."""
    s = _index_find(words, ph, pagemap, run_heads, run_bits, run_tree, npages)
    if s == NO_SPAN:
        if _grow(words, ph, spans, pagemap, run_heads, run_bits, run_tree, npages):
            s = _index_find(words, ph, pagemap, run_heads, run_bits, run_tree, npages)
    if s != NO_SPAN:
        base = s << SPAN_SHIFT
        start = spans[base + SP_START]
        have = spans[base + SP_NPAGES]
        _index_remove(words, ph, spans, run_heads, run_bits, run_tree, s, start, have)
        if have > npages:
            rest = span_record_new(words, ph + PH_RECORDS, spans)
            rest_base = rest << SPAN_SHIFT
            spans[rest_base + SP_START] = start + npages
            spans[rest_base + SP_NPAGES] = have - npages
            spans[rest_base + SP_STATE] = SPAN_FREE_RUN
            spans[rest_base + SP_CLASS] = 0
            pagemap_set_bounds(pagemap, rest, start + npages, have - npages)
            _index_insert(words, ph, spans, run_heads, run_bits, run_tree, rest, start + npages, have - npages)
            words[ph + PH_C_SPLITS] += 1
        spans[base + SP_NPAGES] = npages
        spans[base + SP_STATE] = SPAN_LARGE
        spans[base + SP_CLASS] = 0
        pagemap_set_bounds(pagemap, s, start, npages)
        words[ph + PH_C_ALLOCS] += 1
    _update_metadata(words, ph)
    return s


@njit(cache=True)
def pageheap_free(words, ph, spans, pagemap, run_heads, run_bits, run_tree, s):
    """Give span `s` (any state but free) back to the page heap, coalescing with free neighbours."""
    _release_run(words, ph, spans, pagemap, run_heads, run_bits, run_tree, s)
    words[ph + PH_C_FREES] += 1
    _update_metadata(words, ph)


@njit(cache=True)
def pageheap_reset(words, ph, spans, pagemap, run_heads, run_bits, run_tree):
    """Forget every span: the whole heap taken so far becomes one free run (footprint kept)."""
    heap_pages = words[ph + PH_HEAP_PAGES]
    if words[ph + PH_POLICY] == POLICY_BEST_FIT:
        length = bitset_next(run_bits, 0)
        while length >= 0:
            list_init(run_heads, 2 * length)
            bitset_clear(run_bits, length)
            length = bitset_next(run_bits, length + 1)
    else:
        tree_clear_range(run_tree, 0, heap_pages)
    rb = ph + PH_RECORDS
    words[rb + SR_DEAD_HEAD] = NO_SPAN
    words[rb + SR_TOP] = 0
    words[rb + SR_LIVE] = 0
    words[ph + PH_FREE_PAGES] = 0
    words[ph + PH_FREE_RUNS] = 0
    if heap_pages > 0:
        s = span_record_new(words, rb, spans)
        base = s << SPAN_SHIFT
        spans[base + SP_START] = 0
        spans[base + SP_NPAGES] = heap_pages
        spans[base + SP_STATE] = SPAN_FREE_RUN
        spans[base + SP_CLASS] = 0
        pagemap_set_bounds(pagemap, s, 0, heap_pages)
        _index_insert(words, ph, spans, run_heads, run_bits, run_tree, s, 0, heap_pages)
    _update_metadata(words, ph)


@njit(cache=True, inline="always")
def pageheap_footprint(words, ph):
    """Bytes taken from the "OS": the mapped heap."""
    return words[ph + PH_HEAP_PAGES] << words[ph + PH_PAGE_SHIFT]
