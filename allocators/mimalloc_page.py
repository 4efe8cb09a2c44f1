"""mimalloc model, middle: pages and the heap's page queues (collect, extend, full queue, retire, delayed frees).

Design (mimalloc 2.0 src/page.c, src/page-queue.c).  Each thread's heap has a
queue of pages per bin (first, last; doubly linked through the page records)
and a queue of full pages (MI_BIN_FULL).  A page holds blocks of one size on
three lists: `free` (allocation pops it), `local_free` (blocks freed by the
owning thread) and `thread_free` (blocks freed by other threads); `used`
counts the blocks not on free / local_free, so it includes thread_free.

Slow allocation (`_mi_malloc_generic`), when the bin's first page has nothing
on `free`: the heap's delayed frees first (pages that got a remote free while
full), then `mi_find_free_page`: collect the first page
(`_mi_page_free_collect`: thread_free appended to local_free, `used` minus
their count; then local_free becomes free if free is empty) and take it if it
has a free block; otherwise walk the queue (`mi_page_queue_find_free_ex`):
collect each page, take the first with a free block, or extend one that has
capacity left; a page with neither moves to the full queue.  No page: the
retired pages are collected (`_mi_heap_collect_retired`), then a fresh page
(one 64 KiB slice for blocks up to 16 KiB, 8 slices for up to 128 KiB) goes to
the front of the queue.

Extension (`mi_page_extend_free`): a page's blocks are threaded onto `free`
lazily, at most max(4, 4 KiB / block size) at a time, in address order, up to
the page's reserved count.

Footprint (resident 4 KiB pages, mimalloc_segments `touch`).  An extension
writes each new block's free-list link (its first word): for blocks of up to
4 KiB that writes every OS page the new blocks start in, so the pages they
cover are counted resident then; a block above 4 KiB has only its first page
written then.  A program writes the blocks it gets: the first time a block
above 4 KiB is handed out (at or above the page's PG_TOUCHED mark: a page's
fresh blocks go out in address order) the pages of its requested bytes become
resident (`first_touch`, from the allocation paths), and the mark moves past
the block.  So a page with a few small blocks in use counts its first 4 KiB
pages, not its 64 KiB slice.  (A block above 4 KiB reused later for a larger
request than its first is not touched again.)

Frees by the owner that empty a page retire it (`_mi_page_retire`): the only
page of its queue is kept (retire_expire = 1 + 8, or 1 + 2 for blocks above
16 KiB) and counted down each time the heap needs a fresh page
(`_mi_heap_collect_retired`), so it is freed by the 9th (3rd) such page unless
it is used again (measured on libmimalloc 2.0.9: the 9th fresh page of a heap
reuses the slice of a lone emptied 16 B page); any other emptied page is freed
to its segment (mimalloc_segments).  A free
into a full page by its owner moves it back to its bin queue (`_mi_page_unfull`,
at the end); a remote free into a full page puts the page on the owner's
delayed list (`thread_delayed_free`, modelled per page, not per block), so the
owner's next generic allocation collects it.

Slices for a new page (`page_span`): the thread's free spans; else, when
other heaps exist, a reclaim pass (every page of another heap whose blocks
have all been freed is freed, and its segment if that empties it: the model's
stand-in for reclaiming the abandoned segments of threads that are done),
then a new segment, then another thread's free spans.

Large pages (one block, > 128 KiB) are in no queue (mimalloc's huge queue is
never searched): they are full from the start, so their remote frees are
delayed too; freed to the segment as soon as their block is.
"""

from __future__ import annotations

from numba import njit

from allocators.mimalloc_layout import (
    C_COLLECTS,
    C_DELAYED_FREES,
    C_EXTENDS,
    C_FULL_MOVES,
    C_PAGES_ALLOCATED,
    C_PAGES_FREED,
    C_PAGES_RETIRED,
    C_RECLAIM_PASSES,
    C_RECLAIMED_PAGES,
    END,
    F_NORMAL,
    FRAME_SHIFT,
    H_DELAYED,
    H_RETIRED_MAX,
    H_RETIRED_MIN,
    H_STRIDE,
    I_HEAPS,
    I_LINKS,
    I_PAGES,
    I_QUEUES,
    I_SEGS,
    I_WORDS,
    INFO_SLICES,
    K_LARGE,
    K_PAGE,
    LINK_SHIFT,
    MAX_EXTEND_SIZE,
    MEDIUM_PAGE_SLICES,
    MIN_EXTEND,
    NO_QUEUE,
    PG_BIN,
    PG_BSIZE,
    PG_CAPACITY,
    PG_DELAYED,
    PG_DNEXT,
    PG_FREE,
    PG_HEAP,
    PG_KIND,
    PG_LOCAL,
    PG_NEXT,
    PG_PREV,
    PG_QUEUE,
    PG_RESERVED,
    PG_RETIRE,
    PG_SHIFT,
    PG_SLICES,
    PG_START,
    PG_THREAD,
    PG_THREAD_N,
    PG_TOUCHED,
    PG_USED,
    RETIRE_CYCLES,
    S_HEAPS,
    S_N_FRAMES,
    SG_END,
    SG_KIND,
    SG_OWNER,
    SG_STRIDE,
    SLICE_SHIFT,
    SMALL_BLOCK_OFFSET,
    SMALL_BLOCK_OFFSET_MAX,
    SMALL_PAGE_SLICES,
)
from allocators.mimalloc_segments import span_alloc, span_borrow, span_find, span_free, span_take, touch
from allocators.shared.mimalloc_bins import BIN_FULL, N_QUEUES, SMALL_OBJ_SIZE_MAX
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


# ------------------------------------------------------------------ queues
@njit(cache=True)
def _queue_push_front(state, thread, q, page):
    pages, queues = state[I_PAGES], state[I_QUEUES]
    qi = (thread * N_QUEUES + q) << 1
    rec = page << PG_SHIFT
    first = queues[qi]
    pages[rec + PG_QUEUE] = q
    pages[rec + PG_PREV] = -1
    pages[rec + PG_NEXT] = first
    if first >= 0:
        pages[(first << PG_SHIFT) + PG_PREV] = page
    else:
        queues[qi + 1] = page
    queues[qi] = page


@njit(cache=True)
def _queue_append(state, thread, q, page):
    pages, queues = state[I_PAGES], state[I_QUEUES]
    qi = (thread * N_QUEUES + q) << 1
    rec = page << PG_SHIFT
    last = queues[qi + 1]
    pages[rec + PG_QUEUE] = q
    pages[rec + PG_NEXT] = -1
    pages[rec + PG_PREV] = last
    if last >= 0:
        pages[(last << PG_SHIFT) + PG_NEXT] = page
    else:
        queues[qi] = page
    queues[qi + 1] = page


@njit(cache=True)
def _queue_remove(state, page):
    pages, queues = state[I_PAGES], state[I_QUEUES]
    rec = page << PG_SHIFT
    q = pages[rec + PG_QUEUE]
    if q == NO_QUEUE:
        return
    qi = (pages[rec + PG_HEAP] * N_QUEUES + q) << 1
    prev = pages[rec + PG_PREV]
    after = pages[rec + PG_NEXT]
    if prev >= 0:
        pages[(prev << PG_SHIFT) + PG_NEXT] = after
    else:
        queues[qi] = after
    if after >= 0:
        pages[(after << PG_SHIFT) + PG_PREV] = prev
    else:
        queues[qi + 1] = prev
    pages[rec + PG_QUEUE] = NO_QUEUE


# ------------------------------------------------------------------ page lists
@njit(cache=True)
def page_collect(state, page):
    """`_mi_page_free_collect`: thread_free onto local_free (used -= its count), local_free to free if empty."""
    pages, links = state[I_PAGES], state[I_LINKS]
    rec = page << PG_SHIFT
    head = pages[rec + PG_THREAD]
    if head != END:
        tail = head
        after = links[tail >> LINK_SHIFT]
        while after != END:  # mimalloc walks the list to count it
            tail = after
            after = links[tail >> LINK_SHIFT]
        links[tail >> LINK_SHIFT] = pages[rec + PG_LOCAL]
        pages[rec + PG_LOCAL] = head
        pages[rec + PG_USED] -= pages[rec + PG_THREAD_N]
        pages[rec + PG_THREAD] = END
        pages[rec + PG_THREAD_N] = 0
        state[I_WORDS][C_COLLECTS] += 1
    if pages[rec + PG_FREE] == END and pages[rec + PG_LOCAL] != END:
        pages[rec + PG_FREE] = pages[rec + PG_LOCAL]
        pages[rec + PG_LOCAL] = END
        state[I_WORDS][C_COLLECTS] += 1


@njit(cache=True)
def _page_extend(state, page):
    """`mi_page_extend_free`: thread the next max(4, 4 KiB / bsize) blocks onto free, in address order."""
    pages, links = state[I_PAGES], state[I_LINKS]
    rec = page << PG_SHIFT
    capacity = pages[rec + PG_CAPACITY]
    bsize = pages[rec + PG_BSIZE]
    extend = pages[rec + PG_RESERVED] - capacity
    most = MIN_EXTEND if bsize >= MAX_EXTEND_SIZE else max(MIN_EXTEND, MAX_EXTEND_SIZE // bsize)
    if extend > most:
        extend = most
    start = pages[rec + PG_START] + capacity * bsize
    if bsize <= MAX_EXTEND_SIZE:  # the links write every page the new blocks start in
        touch(state, start, extend * bsize)
        pages[rec + PG_TOUCHED] = start + extend * bsize
    addr = start
    for _ in range(extend - 1):
        links[addr >> LINK_SHIFT] = addr + bsize
        if bsize > MAX_EXTEND_SIZE:
            touch(state, addr, 8)
        addr += bsize
    if bsize > MAX_EXTEND_SIZE:
        touch(state, addr, 8)
    links[addr >> LINK_SHIFT] = pages[rec + PG_FREE]
    pages[rec + PG_FREE] = start
    pages[rec + PG_CAPACITY] = capacity + extend
    state[I_WORDS][C_EXTENDS] += 1


@njit(cache=True)
def _reclaim_pass(state, thread):
    """Free every page of another heap whose blocks have all been freed (thread_free included).

    The model's stand-in for mimalloc's reclaim of abandoned segments (`mi_segment_try_reclaim`), run when a
    thread needs a new segment: the traces have no thread exits, so a heap that is done is found by its
    pages, not by its thread; its emptied segments are freed.
    """
    words, pages, segs = state[I_WORDS], state[I_PAGES], state[I_SEGS]
    words[C_RECLAIM_PASSES] += 1
    for f in range(words[S_N_FRAMES]):
        g = f * SG_STRIDE
        if segs[g + SG_KIND] != F_NORMAL or segs[g + SG_OWNER] == thread:
            continue
        s = (f << FRAME_SHIFT) + INFO_SLICES
        end = segs[g + SG_END]
        while s < end:
            rec = s << PG_SHIFT
            n = pages[rec + PG_SLICES]
            if n <= 0:  # cannot happen: every head in a segment has its slice count
                break
            kind = pages[rec + PG_KIND]
            if (kind == K_PAGE or kind == K_LARGE) and pages[rec + PG_HEAP] != thread:
                if pages[rec + PG_USED] == pages[rec + PG_THREAD_N]:
                    _page_free(state, s)
                    words[C_RECLAIMED_PAGES] += 1
                    if segs[g + SG_KIND] != F_NORMAL:
                        break
            s += n


@njit(cache=True)
def page_span(state, thread, need):
    """Slices for a new page: the thread's free spans; else, after a reclaim pass, a new segment; else borrowed."""
    h = span_find(state, thread, need)
    if h >= 0:
        return span_take(state, thread, h, need)
    if state[I_WORDS][S_HEAPS] > 1:
        _reclaim_pass(state, thread)
    h = span_alloc(state, thread, need)
    if h < 0:
        h = span_borrow(state, thread, need)
    return h


@njit(cache=True)
def _page_init(pages, rec, kind, thread, bsize, start, reserved, used):
    """`mi_page_init`: a page of `reserved` blocks of bsize from start, `used` of them handed out, lists empty."""
    pages[rec + PG_KIND] = kind
    pages[rec + PG_BSIZE] = bsize
    pages[rec + PG_START] = start
    pages[rec + PG_RESERVED] = reserved
    pages[rec + PG_CAPACITY] = used
    pages[rec + PG_USED] = used
    pages[rec + PG_FREE] = END
    pages[rec + PG_LOCAL] = END
    pages[rec + PG_THREAD] = END
    pages[rec + PG_THREAD_N] = 0
    pages[rec + PG_HEAP] = thread
    pages[rec + PG_RETIRE] = 0
    pages[rec + PG_DELAYED] = 0
    pages[rec + PG_TOUCHED] = start


@njit(cache=True)
def first_touch(state, rec, block, size):
    """A block at or above its page's PG_TOUCHED mark handed out: the pages of its `size` bytes written."""
    pages = state[I_PAGES]
    touch(state, block, size)
    pages[rec + PG_TOUCHED] = block + pages[rec + PG_BSIZE]


@njit(cache=True)
def _page_fresh(state, thread, b, bsize):
    """`mi_page_fresh`: a new page for bin b from the thread's segments, extended once, first in its queue."""
    pages = state[I_PAGES]
    need = SMALL_PAGE_SLICES if bsize <= SMALL_OBJ_SIZE_MAX else MEDIUM_PAGE_SLICES
    page = page_span(state, thread, need)
    if page < 0:
        return page
    rec = page << PG_SHIFT
    offset = SMALL_BLOCK_OFFSET if bsize <= SMALL_BLOCK_OFFSET_MAX else 0
    _page_init(pages, rec, K_PAGE, thread, bsize, (page << SLICE_SHIFT) + offset,
               ((need << SLICE_SHIFT) - offset) // bsize, 0)
    pages[rec + PG_BIN] = b
    _page_extend(state, page)
    _queue_push_front(state, thread, b, page)
    state[I_WORDS][C_PAGES_ALLOCATED] += 1
    return page


@njit(cache=True)
def large_page(state, thread, granted):
    """A page of one block of `granted` bytes (whole slices), in no queue; -1 if no memory."""
    pages = state[I_PAGES]
    page = page_span(state, thread, granted >> SLICE_SHIFT)
    if page < 0:
        return page
    rec = page << PG_SHIFT
    _page_init(pages, rec, K_LARGE, thread, granted, page << SLICE_SHIFT, 1, 1)
    pages[rec + PG_QUEUE] = NO_QUEUE
    state[I_WORDS][C_PAGES_ALLOCATED] += 1
    return page


@njit(cache=True)
def _page_free(state, page):
    """`_mi_page_free`: out of its queue (and the delayed list), its slices back to the segment."""
    pages, heaps = state[I_PAGES], state[I_HEAPS]
    rec = page << PG_SHIFT
    _queue_remove(state, page)
    if pages[rec + PG_DELAYED] != 0:  # unlink from the owner's delayed list
        hrec = pages[rec + PG_HEAP] * H_STRIDE + H_DELAYED
        p = heaps[hrec]
        if p == page:
            heaps[hrec] = pages[rec + PG_DNEXT]
        else:
            while pages[(p << PG_SHIFT) + PG_DNEXT] != page:
                p = pages[(p << PG_SHIFT) + PG_DNEXT]
            pages[(p << PG_SHIFT) + PG_DNEXT] = pages[rec + PG_DNEXT]
        pages[rec + PG_DELAYED] = 0
    pages[rec + PG_HEAP] = -1
    span_free(state, page)
    state[I_WORDS][C_PAGES_FREED] += 1


@njit(cache=True)
def page_retire(state, page):
    """`_mi_page_retire` for a page whose last block came back: keep it if it is its queue's only page."""
    pages, queues, heaps = state[I_PAGES], state[I_QUEUES], state[I_HEAPS]
    rec = page << PG_SHIFT
    q = pages[rec + PG_QUEUE]
    if pages[rec + PG_KIND] == K_PAGE and q != BIN_FULL and q != NO_QUEUE:
        thread = pages[rec + PG_HEAP]
        qi = (thread * N_QUEUES + q) << 1
        if queues[qi] == page and queues[qi + 1] == page:
            small = pages[rec + PG_BSIZE] <= SMALL_OBJ_SIZE_MAX
            pages[rec + PG_RETIRE] = 1 + (RETIRE_CYCLES if small else RETIRE_CYCLES // 4)
            h = thread * H_STRIDE
            if q < heaps[h + H_RETIRED_MIN]:
                heaps[h + H_RETIRED_MIN] = q
            if q > heaps[h + H_RETIRED_MAX]:
                heaps[h + H_RETIRED_MAX] = q
            state[I_WORDS][C_PAGES_RETIRED] += 1
            return
    _page_free(state, page)


@njit(cache=True)
def page_unfull(state, page):
    """`_mi_page_unfull`: from the full queue to the end of its bin's queue."""
    pages = state[I_PAGES]
    rec = page << PG_SHIFT
    thread = pages[rec + PG_HEAP]
    _queue_remove(state, page)
    _queue_append(state, thread, pages[rec + PG_BIN], page)


@njit(cache=True)
def delay_page(state, page):
    """A remote free into a full page: the page goes on its owner's delayed list (once)."""
    pages, heaps = state[I_PAGES], state[I_HEAPS]
    rec = page << PG_SHIFT
    if pages[rec + PG_DELAYED] == 0:
        hrec = pages[rec + PG_HEAP] * H_STRIDE + H_DELAYED
        pages[rec + PG_DELAYED] = 1
        pages[rec + PG_DNEXT] = heaps[hrec]
        heaps[hrec] = page
        state[I_WORDS][C_DELAYED_FREES] += 1


@njit(cache=True)
def heap_delayed_free(state, thread):
    """`_mi_heap_delayed_free`: collect each delayed page; retire the empty ones, unfull the others."""
    pages, heaps = state[I_PAGES], state[I_HEAPS]
    hrec = thread * H_STRIDE + H_DELAYED
    page = heaps[hrec]
    heaps[hrec] = -1
    while page >= 0:
        rec = page << PG_SHIFT
        after = pages[rec + PG_DNEXT]
        pages[rec + PG_DELAYED] = 0
        page_collect(state, page)
        if pages[rec + PG_USED] == 0:
            page_retire(state, page)
        elif pages[rec + PG_QUEUE] == BIN_FULL:
            page_unfull(state, page)
        page = after


@njit(cache=True)
def _collect_retired(state, thread):
    """`_mi_heap_collect_retired`: count down the retired first pages of the heap's queues, free expired ones."""
    pages, queues, heaps = state[I_PAGES], state[I_QUEUES], state[I_HEAPS]
    h = thread * H_STRIDE
    lo = BIN_FULL
    hi = 0
    for q in range(heaps[h + H_RETIRED_MIN], heaps[h + H_RETIRED_MAX] + 1):
        page = queues[(thread * N_QUEUES + q) << 1]
        if page < 0:
            continue
        rec = page << PG_SHIFT
        if pages[rec + PG_RETIRE] != 0:
            if pages[rec + PG_USED] == 0:
                pages[rec + PG_RETIRE] -= 1
                if pages[rec + PG_RETIRE] == 0:
                    _page_free(state, page)
                else:
                    lo = min(lo, q)
                    hi = max(hi, q)
            else:
                pages[rec + PG_RETIRE] = 0
    heaps[h + H_RETIRED_MIN] = lo
    heaps[h + H_RETIRED_MAX] = hi


@njit(cache=True)
def find_free_page(state, thread, b, bsize):
    """`mi_find_free_page`: a page of bin b with a block on free, or -1 if no memory."""
    pages, queues = state[I_PAGES], state[I_QUEUES]
    qi = (thread * N_QUEUES + b) << 1
    page = queues[qi]
    if page >= 0:
        page_collect(state, page)
        if pages[(page << PG_SHIFT) + PG_FREE] != END:
            pages[(page << PG_SHIFT) + PG_RETIRE] = 0
            return page
    # mi_page_queue_find_free_ex
    while page >= 0:
        rec = page << PG_SHIFT
        after = pages[rec + PG_NEXT]
        page_collect(state, page)
        if pages[rec + PG_FREE] != END:
            break
        if pages[rec + PG_CAPACITY] < pages[rec + PG_RESERVED]:
            _page_extend(state, page)
            break
        _queue_remove(state, page)
        _queue_append(state, thread, BIN_FULL, page)
        state[I_WORDS][C_FULL_MOVES] += 1
        page = after
    if page >= 0:
        pages[(page << PG_SHIFT) + PG_RETIRE] = 0
        return page
    _collect_retired(state, thread)
    return _page_fresh(state, thread, b, bsize)
