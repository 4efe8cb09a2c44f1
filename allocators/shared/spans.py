"""Spans: a table of page runs in one flat int64 array, span lists, and the page -> span map.

A *span* is a run of whole pages `[start, start + npages)` of the simulated
address space, in one of three states: a free run owned by the page heap
(`SPAN_FREE_RUN`), a run carved into objects of one size class
(`SPAN_SMALL`), or one large object (`SPAN_LARGE`).  Spans tile the part of the
address space taken from the "OS" so far: every mapped page belongs to exactly
one span.  TCMalloc (`Span`) and Go (`mspan`) both keep such a descriptor per
run; here every descriptor is one record of `SPAN_STRIDE` = 16 int64 words
(128 B, two cache lines) in the flat array `spans`, at `spans[s << 4 ...]`
for span id `s` (a shift, no 2-D index):

    SP_START      first page             SP_OBJ_SIZE    bytes per object (small spans)
    SP_NPAGES     length in pages        SP_NOBJ        objects the span holds
    SP_STATE      SPAN_* below           SP_NFREE       objects currently free in the span
    SP_CLASS      size class (0: none)   SP_ALLOC_BITS  offset of its allocation bitmap in `bits`
    SP_NEXT       list links (page heap  SP_MARK_BITS   offset of its mark bitmap in `bits`
    SP_PREV         free lists, central  SP_SCAN        lowest bitmap word that may hold a free bit
                    lists, free records) SP_LIST        which list the span is on (owner's code)
    SP_USER0..2   free for the model (Go: allocCache, sweepgen, ...)

Records are recycled: `span_record_new` pops the list of dead records (linked
through SP_NEXT) or bumps the high-water id; `span_record_free` pushes one
back.  Because spans tile the heap, at most one record per page is live, so a
table of `n_pages + 1` records never overflows (`new_span_table`).  The
record allocator's three scalars (dead-list head, high-water id, live count)
live in the caller's `words` array at a base `rb` (offsets SR_*, see
`RECORD_SLOTS`): hot scalars in `words`, as the lab's performance notes ask.

Span lists: doubly linked through SP_NEXT / SP_PREV, with the head at
`heads[hi]` and the tail at `heads[hi + 1]` (`heads` is `words` for a few
dozen lists, or a dedicated array for thousands, like the page heap's
per-length lists).  Push at either end, pop the front, unlink anywhere: O(1).
An empty list has head = tail = NO_SPAN.  LIFO use pushes and pops the front
(TCMalloc's span lists); FIFO pushes the back (Go's spanSet).

Page map (`pagemap`, one int64 per page of the capacity, np.empty): the span
id of a page, valid where the owner wrote it.  The page heap keeps the first
and last page of every span current (what coalescing needs: the span that
ends just below a run and the one that starts just above it); a size-class
model also writes every page of its small spans (object -> span lookup on
free, `pagemap_set_range`).  Entries of pages not covered by these rules may
be stale and must not be read.

Bitmaps: each record owns two regions of `bitmap_words` int64 words in the
`bits` array (allocation bits and mark bits, see spanbitmap.py); their
offsets are set when the record is created and may be swapped later (Go's
sweep turns mark bits into allocation bits), so they always stay the record's
own two regions.

Costs: every operation here is O(1) except `pagemap_set_range`, O(pages).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

SPAN_SHIFT = 4
SPAN_STRIDE = 1 << SPAN_SHIFT

SP_START = 0
SP_NPAGES = 1
SP_STATE = 2
SP_CLASS = 3
SP_NEXT = 4
SP_PREV = 5
SP_OBJ_SIZE = 6
SP_NOBJ = 7
SP_NFREE = 8
SP_ALLOC_BITS = 9
SP_MARK_BITS = 10
SP_SCAN = 11
SP_LIST = 12
SP_USER0 = 13
SP_USER1 = 14
SP_USER2 = 15

#: Span states (SP_STATE).
SPAN_FREE_RUN = 0
SPAN_SMALL = 1
SPAN_LARGE = 2
SPAN_DEAD = 3

#: End of a list, empty list, "no span".
NO_SPAN = -1

#: Record-allocator scalars, relative to the caller's base `rb` in `words`.
SR_DEAD_HEAD = 0  # first dead (reusable) record, NO_SPAN if none
SR_TOP = 1  # records ever used (the next fresh id)
SR_LIVE = 2  # records currently live
SR_BITMAP_WORDS = 3  # words per bitmap region (0: the model keeps no bitmaps)
RECORD_SLOTS = 4


def new_span_table(n_records: int) -> np.ndarray:
    """Span records for at most `n_records` live spans (np.empty: untouched records cost nothing)."""
    return np.empty(max(1, int(n_records)) * SPAN_STRIDE, np.int64)


def new_pagemap(n_pages: int) -> np.ndarray:
    """Page -> span id, one int64 per page (np.empty; only entries the owner wrote are valid)."""
    return np.empty(max(1, int(n_pages)), np.int64)


def new_span_bits(n_records: int, bitmap_words: int) -> np.ndarray:
    """Two bitmap regions (allocation, mark) of `bitmap_words` words per span record."""
    return np.zeros(max(1, int(n_records) * 2 * int(bitmap_words)), np.int64)


def init_records(words: np.ndarray, rb: int, bitmap_words: int) -> None:
    """Empty record allocator (Python side, at state construction or reset)."""
    words[rb + SR_DEAD_HEAD] = NO_SPAN
    words[rb + SR_TOP] = 0
    words[rb + SR_LIVE] = 0
    words[rb + SR_BITMAP_WORDS] = bitmap_words


@njit(cache=True, inline="always")
def span_field(spans, s, field):
    return spans[(s << SPAN_SHIFT) + field]


@njit(cache=True, inline="always")
def span_record_new(words, rb, spans):
    """A fresh record id (its fields are garbage except the bitmap offsets); the caller never runs out."""
    s = words[rb + SR_DEAD_HEAD]
    if s != NO_SPAN:
        words[rb + SR_DEAD_HEAD] = spans[(s << SPAN_SHIFT) + SP_NEXT]
    else:
        s = words[rb + SR_TOP]
        words[rb + SR_TOP] = s + 1
    words[rb + SR_LIVE] += 1
    base = s << SPAN_SHIFT
    region = words[rb + SR_BITMAP_WORDS]
    spans[base + SP_ALLOC_BITS] = s * 2 * region
    spans[base + SP_MARK_BITS] = s * 2 * region + region
    spans[base + SP_LIST] = NO_SPAN
    return s


@njit(cache=True, inline="always")
def span_record_free(words, rb, spans, s):
    base = s << SPAN_SHIFT
    spans[base + SP_STATE] = SPAN_DEAD
    spans[base + SP_NEXT] = words[rb + SR_DEAD_HEAD]
    words[rb + SR_DEAD_HEAD] = s
    words[rb + SR_LIVE] -= 1


# ------------------------------------------------------------------ span lists
@njit(cache=True, inline="always")
def list_init(heads, hi):
    heads[hi] = NO_SPAN
    heads[hi + 1] = NO_SPAN


@njit(cache=True, inline="always")
def list_push_front(heads, hi, spans, s):
    head = heads[hi]
    base = s << SPAN_SHIFT
    spans[base + SP_NEXT] = head
    spans[base + SP_PREV] = NO_SPAN
    if head != NO_SPAN:
        spans[(head << SPAN_SHIFT) + SP_PREV] = s
    else:
        heads[hi + 1] = s
    heads[hi] = s


@njit(cache=True, inline="always")
def list_push_back(heads, hi, spans, s):
    tail = heads[hi + 1]
    base = s << SPAN_SHIFT
    spans[base + SP_NEXT] = NO_SPAN
    spans[base + SP_PREV] = tail
    if tail != NO_SPAN:
        spans[(tail << SPAN_SHIFT) + SP_NEXT] = s
    else:
        heads[hi] = s
    heads[hi + 1] = s


@njit(cache=True, inline="always")
def list_remove(heads, hi, spans, s):
    """Unlink `s` from the list at heads[hi], wherever it is in it."""
    base = s << SPAN_SHIFT
    after = spans[base + SP_NEXT]
    before = spans[base + SP_PREV]
    if before != NO_SPAN:
        spans[(before << SPAN_SHIFT) + SP_NEXT] = after
    else:
        heads[hi] = after
    if after != NO_SPAN:
        spans[(after << SPAN_SHIFT) + SP_PREV] = before
    else:
        heads[hi + 1] = before


@njit(cache=True, inline="always")
def list_pop_front(heads, hi, spans):
    """Remove and return the first span, or NO_SPAN if the list is empty."""
    s = heads[hi]
    if s != NO_SPAN:
        after = spans[(s << SPAN_SHIFT) + SP_NEXT]
        heads[hi] = after
        if after != NO_SPAN:
            spans[(after << SPAN_SHIFT) + SP_PREV] = NO_SPAN
        else:
            heads[hi + 1] = NO_SPAN
    return s


# -------------------------------------------------------------------- page map
@njit(cache=True, inline="always")
def pagemap_set_bounds(pagemap, s, start, npages):
    """Map the first and last page of a run to span `s` (what coalescing reads)."""
    pagemap[start] = s
    pagemap[start + npages - 1] = s


@njit(cache=True)
def pagemap_set_range(pagemap, s, start, npages):
    """Map every page of a run to span `s`: O(npages)."""
    for page in range(start, start + npages):
        pagemap[page] = s
