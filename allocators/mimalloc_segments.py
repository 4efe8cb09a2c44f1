"""mimalloc model, back end: 32 MiB segments of 64 KiB slices, free spans, commit and purge, huge segments.

Design (mimalloc 2.0 src/segment.c).  The address space [0, capacity) is cut
into 32 MiB *frames*; a segment occupies one (a huge segment several in a row),
taken lowest address first.  A normal segment belongs to the thread that
allocated it; its first slice holds the segment info (mi_segment_t with its
513 slice records), the other 511 slices are pages or free *spans*.  A
capacity that is not a multiple of 32 MiB leaves a last, short frame: its
segment has fewer slices.

Free spans: each thread keeps its free spans in queues by mi_slice_bin8 of
their slice count (exact up to 8 slices, then four bins per doubling).  A page
of n slices (1 for a small page, 8 for a medium one, the rounded size for a
large one) takes the first span of at least n slices found from bin(n) up
(`mi_segments_page_find_and_allocate`) and gives the rest back as a span; when
there is none the thread allocates a new segment (one free span of 511
slices).  A freed page's slices become a span again, coalesced with a free
span right after and right before it (`mi_segment_span_free_coalesce`); a
segment whose last page is freed is freed (its frame free again).

A thread that needs a new segment first lets allocators.mimalloc_page run its
reclaim pass (other heaps' emptied pages freed, emptied segments with them:
the model's stand-in for reclaiming abandoned segments).  When no frame is
left (the model's address space is finite, a real process's virtual space is
not), a thread takes its page from another thread's free spans
(`span_borrow`, borrowed_spans): the slices stay in that thread's segment,
the page belongs to the borrower.

Commit (footprint).  A slice is committed when a page or the segment info
first uses it (commit on demand; libmimalloc 2.0.9 commits the first segment
of a thread on demand, mi_option_eager_commit_delay = 1, and later ones
eagerly; its default purge, allow_decommit = 1 with a 25 ms decommit delay,
had taken nothing back by the peak of any recorded program the lab replays).
`purge`: "never" (the default) keeps every slice committed once touched,
also after its segment is freed (the frame keeps its commit); "immediate"
decommits a span's slices when it becomes free and the info slice when its
segment is freed (mi_option_decommit_delay = 0).

Footprint: resident OS pages (S_RESIDENT, the `resident` page map).  The
commit statistic above moves in 64 KiB slices, but Linux makes memory
resident one 4 KiB page at a time, when it is first written, and a page of
mimalloc that holds a few small blocks has written only its first 4 KiB
pages (mimalloc_page: lazy extension).  So the footprint is the bytes of the
OS pages written since they were last purged: in a segment's info slice the
header and the slice records mimalloc writes (a span's first and last
record, every record of a page's slices: `mi_segment_span_free`,
`mi_segment_span_allocate`); in a page the free-list links an extension
writes and the blocks the program writes (allocators.mimalloc_page).  A purge
(decommit) makes the purged slices' pages non-resident again; with purge
"never" they stay resident, as their commit does.

Huge segments: a request whose rounded size is above 16 MiB gets a segment of
its own, as many frames as its info slice + block need; the block starts
after the info slice, and the info and ceil(block / 64 KiB) slices are
committed; resident: the info's header and two records, and the block's pages
the program writes.  Freed at once by whichever thread frees it (2.0 abandons huge
pages at allocation, so any thread may free them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.mimalloc_layout import (
    C_BORROWED_SPANS,
    C_COMMITS,
    C_HUGE_ALLOCS,
    C_PURGES,
    C_SEGMENTS_ALLOCATED,
    C_SEGMENTS_FREED,
    F_FREE,
    F_HUGE,
    F_HUGE_TAIL,
    F_NORMAL,
    FRAME_SHIFT,
    I_COMMITTED,
    I_PAGES,
    I_RESIDENT,
    I_SEGS,
    I_SLICE_PAGE,
    I_SPANQ,
    I_WORDS,
    INFO_SLICES,
    K_FREE_SPAN,
    K_HUGE,
    N_SPAN_BINS,
    NO_PAGE,
    NO_QUEUE,
    OS_PAGE_SHIFT,
    OS_PAGE_SIZE,
    OS_PAGES_PER_SLICE,
    PG_BSIZE,
    PG_CAPACITY,
    PG_HEAP,
    PG_KIND,
    PG_NEXT,
    PG_PREV,
    PG_QUEUE,
    PG_RESERVED,
    PG_SHIFT,
    PG_SLICES,
    PG_START,
    PG_USED,
    PURGE_IMMEDIATE,
    S_COMMITTED,
    S_METADATA,
    S_N_FRAMES,
    S_N_SLICES,
    S_N_THREADS,
    S_PURGE,
    S_RESIDENT,
    S_SEGMENTS,
    SEGMENT_HEADER_BYTES,
    SEGMENT_INFO_BYTES,
    SG_END,
    SG_FRAMES,
    SG_KIND,
    SG_OWNER,
    SG_STRIDE,
    SG_USED,
    SLICE_RECORD_BYTES,
    SLICE_SHIFT,
    SLICE_SIZE,
    SLICES_PER_SEGMENT,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True)
def slice_bin(n):
    """mi_slice_bin8: exact up to 8 slices, then four bins per doubling."""
    if n <= 1:
        return n
    n -= 1
    s = 0
    x = n
    while x > 1:
        x >>= 1
        s += 1
    if s <= 2:
        return n + 1
    return ((s << 2) | ((n >> (s - 2)) & 0x03)) - 4


# ------------------------------------------------------------------ resident pages
@njit(cache=True)
def touch(state, addr, n):
    """The OS pages of bytes [addr, addr + n) written: resident from now on (nothing for n <= 0)."""
    if n <= 0:
        return
    words, resident = state[I_WORDS], state[I_RESIDENT]
    for p in range(addr >> OS_PAGE_SHIFT, ((addr + n - 1) >> OS_PAGE_SHIFT) + 1):
        if resident[p] == 0:
            resident[p] = 1
            words[S_RESIDENT] += OS_PAGE_SIZE


@njit(cache=True)
def touch_records(state, first, n):
    """The segment info's records of slices [first, first + n) written (`mi_slice_t`, in the info slice)."""
    base = (first >> FRAME_SHIFT) << FRAME_SHIFT
    addr = (base << SLICE_SHIFT) + SEGMENT_HEADER_BYTES + (first - base) * SLICE_RECORD_BYTES
    touch(state, addr, n * SLICE_RECORD_BYTES)


# ------------------------------------------------------------------ commit
@njit(cache=True)
def commit_slices(state, first, n):
    words, committed = state[I_WORDS], state[I_COMMITTED]
    for i in range(first, first + n):
        if committed[i] == 0:
            committed[i] = 1
            words[S_COMMITTED] += SLICE_SIZE
            words[C_COMMITS] += 1


@njit(cache=True)
def purge_slices(state, first, n):
    """Decommit free slices when purge is immediate; keep them committed otherwise."""
    words, committed = state[I_WORDS], state[I_COMMITTED]
    if words[S_PURGE] != PURGE_IMMEDIATE:
        return
    resident = state[I_RESIDENT]
    for i in range(first, first + n):
        if committed[i] != 0:
            committed[i] = 0
            words[S_COMMITTED] -= SLICE_SIZE
            words[C_PURGES] += 1
        for p in range(i * OS_PAGES_PER_SLICE, (i + 1) * OS_PAGES_PER_SLICE):
            if resident[p] != 0:
                resident[p] = 0
                words[S_RESIDENT] -= OS_PAGE_SIZE


# --------------------------------------------------------------- span queues
@njit(cache=True)
def _span_push(state, owner, h, n):
    """Make [h, h + n) a free span of `owner`'s segment, first in its queue."""
    pages, slice_page, spanq = state[I_PAGES], state[I_SLICE_PAGE], state[I_SPANQ]
    rec = h << PG_SHIFT
    b = slice_bin(n)
    q = owner * N_SPAN_BINS + b
    head = spanq[q]
    pages[rec + PG_KIND] = K_FREE_SPAN
    pages[rec + PG_SLICES] = n
    pages[rec + PG_HEAP] = -1
    pages[rec + PG_QUEUE] = b
    pages[rec + PG_PREV] = -1
    pages[rec + PG_NEXT] = head
    if head >= 0:
        pages[(head << PG_SHIFT) + PG_PREV] = h
    spanq[q] = h
    slice_page[h] = h
    slice_page[h + n - 1] = h
    touch_records(state, h, 1)
    touch_records(state, h + n - 1, 1)


@njit(cache=True)
def _span_remove(state, owner, h):
    pages, spanq = state[I_PAGES], state[I_SPANQ]
    rec = h << PG_SHIFT
    prev = pages[rec + PG_PREV]
    after = pages[rec + PG_NEXT]
    if prev >= 0:
        pages[(prev << PG_SHIFT) + PG_NEXT] = after
    else:
        spanq[owner * N_SPAN_BINS + pages[rec + PG_QUEUE]] = after
    if after >= 0:
        pages[(after << PG_SHIFT) + PG_PREV] = prev
    pages[rec + PG_QUEUE] = NO_QUEUE


@njit(cache=True)
def span_find(state, owner, need):
    pages, spanq = state[I_PAGES], state[I_SPANQ]
    for b in range(slice_bin(need), N_SPAN_BINS):
        h = spanq[owner * N_SPAN_BINS + b]
        while h >= 0:
            if pages[(h << PG_SHIFT) + PG_SLICES] >= need:
                return h
            h = pages[(h << PG_SHIFT) + PG_NEXT]
    return np.int64(-1)


# ------------------------------------------------------------------ segments
@njit(cache=True)
def _segment_alloc(state, thread):
    """A new segment for `thread` in the lowest free frame with room for a page; False if there is none."""
    words, segs, slice_page = state[I_WORDS], state[I_SEGS], state[I_SLICE_PAGE]
    n_slices = words[S_N_SLICES]
    for f in range(words[S_N_FRAMES]):
        g = f * SG_STRIDE
        if segs[g + SG_KIND] != F_FREE:
            continue
        first = f << FRAME_SHIFT
        end = min(first + SLICES_PER_SEGMENT, n_slices)
        if end - first <= INFO_SLICES:
            return False
        segs[g + SG_KIND] = F_NORMAL
        segs[g + SG_OWNER] = thread
        segs[g + SG_USED] = 0
        segs[g + SG_END] = end
        segs[g + SG_FRAMES] = 1
        for i in range(first, first + INFO_SLICES):
            slice_page[i] = NO_PAGE
        commit_slices(state, first, INFO_SLICES)
        touch(state, first << SLICE_SHIFT, SEGMENT_HEADER_BYTES)
        touch_records(state, first, INFO_SLICES)
        _span_push(state, thread, first + INFO_SLICES, end - first - INFO_SLICES)
        words[S_SEGMENTS] += 1
        words[S_METADATA] += SEGMENT_INFO_BYTES
        words[C_SEGMENTS_ALLOCATED] += 1
        return True
    return False


@njit(cache=True)
def _segment_free(state, f):
    words, segs = state[I_WORDS], state[I_SEGS]
    g = f * SG_STRIDE
    first = f << FRAME_SHIFT
    _span_remove(state, segs[g + SG_OWNER], first + INFO_SLICES)
    purge_slices(state, first, INFO_SLICES)
    segs[g + SG_KIND] = F_FREE
    words[S_SEGMENTS] -= 1
    words[S_METADATA] -= SEGMENT_INFO_BYTES
    words[C_SEGMENTS_FREED] += 1


@njit(cache=True)
def span_take(state, owner, h, need):
    """Take the first `need` slices of `owner`'s free span h for a page (the rest stays a span), committed."""
    pages, slice_page, segs = state[I_PAGES], state[I_SLICE_PAGE], state[I_SEGS]
    _span_remove(state, owner, h)
    n = pages[(h << PG_SHIFT) + PG_SLICES]
    if n > need:
        _span_push(state, owner, h + need, n - need)
    for i in range(h, h + need):
        slice_page[i] = h
    pages[(h << PG_SHIFT) + PG_SLICES] = need
    commit_slices(state, h, need)
    touch_records(state, h, need)
    segs[(h >> FRAME_SHIFT) * SG_STRIDE + SG_USED] += 1
    return h


@njit(cache=True)
def span_alloc(state, thread, need):
    """`_mi_segment_page_alloc`'s slices for `thread`: its own free spans, else a new segment (-1: none)."""
    h = span_find(state, thread, need)
    if h < 0 and _segment_alloc(state, thread):
        h = span_find(state, thread, need)
    if h < 0:
        return h
    return span_take(state, thread, h, need)


@njit(cache=True)
def span_borrow(state, thread, need):
    """No frame left: the first free span of another thread that holds `need` slices (-1: none)."""
    words = state[I_WORDS]
    for other in range(words[S_N_THREADS]):
        if other != thread:
            h = span_find(state, other, need)
            if h >= 0:
                words[C_BORROWED_SPANS] += 1
                return span_take(state, other, h, need)
    return np.int64(-1)


@njit(cache=True)
def span_free(state, h):
    """A page's slices back to its segment as a free span, coalesced; the segment freed when it is empty."""
    pages, slice_page, segs = state[I_PAGES], state[I_SLICE_PAGE], state[I_SEGS]
    f = h >> FRAME_SHIFT
    g = f * SG_STRIDE
    owner = segs[g + SG_OWNER]
    n = pages[(h << PG_SHIFT) + PG_SLICES]
    purge_slices(state, h, n)
    after = h + n
    if after < segs[g + SG_END] and slice_page[after] == after and pages[(after << PG_SHIFT) + PG_KIND] == K_FREE_SPAN:
        _span_remove(state, owner, after)
        n += pages[(after << PG_SHIFT) + PG_SLICES]
    if h - 1 >= (f << FRAME_SHIFT) + INFO_SLICES:
        p = slice_page[h - 1]
        if p >= 0 and pages[(p << PG_SHIFT) + PG_KIND] == K_FREE_SPAN and p + pages[(p << PG_SHIFT) + PG_SLICES] == h:
            _span_remove(state, owner, p)
            n += h - p
            h = p
    _span_push(state, owner, h, n)
    segs[g + SG_USED] -= 1
    if segs[g + SG_USED] == 0:
        _segment_free(state, f)


# ------------------------------------------------------------------ huge
@njit(cache=True)
def huge_alloc(state, thread, granted):
    """A huge segment for one block of `granted` bytes: the page's first slice, or -1."""
    words, pages, slice_page, segs = state[I_WORDS], state[I_PAGES], state[I_SLICE_PAGE], state[I_SEGS]
    n_frames = words[S_N_FRAMES]
    n_slices = words[S_N_SLICES]
    block_slices = (granted + SLICE_SIZE - 1) >> SLICE_SHIFT
    k = (INFO_SLICES + block_slices + SLICES_PER_SEGMENT - 1) // SLICES_PER_SEGMENT
    f = 0
    while f + k <= n_frames:
        run = 0
        while run < k and segs[(f + run) * SG_STRIDE + SG_KIND] == F_FREE:
            run += 1
        if run < k:
            f += run + 1
            continue
        first = f << FRAME_SHIFT
        if first + INFO_SLICES + block_slices > n_slices:
            return np.int64(-1)
        segs[f * SG_STRIDE + SG_KIND] = F_HUGE
        segs[f * SG_STRIDE + SG_OWNER] = thread
        segs[f * SG_STRIDE + SG_USED] = 1
        segs[f * SG_STRIDE + SG_FRAMES] = k
        for t in range(1, k):
            segs[(f + t) * SG_STRIDE + SG_KIND] = F_HUGE_TAIL
        h = first + INFO_SLICES
        for i in range(first, h):
            slice_page[i] = NO_PAGE
        for i in range(h, h + block_slices):
            slice_page[i] = h
        rec = h << PG_SHIFT
        pages[rec + PG_KIND] = K_HUGE
        pages[rec + PG_SLICES] = block_slices
        pages[rec + PG_BSIZE] = granted
        pages[rec + PG_START] = h << SLICE_SHIFT
        pages[rec + PG_HEAP] = thread
        pages[rec + PG_USED] = 1
        pages[rec + PG_CAPACITY] = 1
        pages[rec + PG_RESERVED] = 1
        pages[rec + PG_QUEUE] = NO_QUEUE
        commit_slices(state, first, INFO_SLICES + block_slices)
        touch(state, first << SLICE_SHIFT, SEGMENT_HEADER_BYTES)
        touch_records(state, first, INFO_SLICES + 1)
        words[S_SEGMENTS] += 1
        words[S_METADATA] += SEGMENT_INFO_BYTES
        words[C_SEGMENTS_ALLOCATED] += 1
        words[C_HUGE_ALLOCS] += 1
        return h
    return np.int64(-1)


@njit(cache=True)
def huge_free(state, h):
    words, pages, segs = state[I_WORDS], state[I_PAGES], state[I_SEGS]
    f = h >> FRAME_SHIFT
    first = f << FRAME_SHIFT
    rec = h << PG_SHIFT
    purge_slices(state, first, INFO_SLICES + pages[rec + PG_SLICES])
    pages[rec + PG_KIND] = K_FREE_SPAN
    pages[rec + PG_USED] = 0
    for t in range(segs[f * SG_STRIDE + SG_FRAMES]):
        segs[(f + t) * SG_STRIDE + SG_KIND] = F_FREE
    words[S_SEGMENTS] -= 1
    words[S_METADATA] -= SEGMENT_INFO_BYTES
    words[C_SEGMENTS_FREED] += 1
