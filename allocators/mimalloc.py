"""mimalloc: Microsoft's free-list-sharding allocator, version 2.0 (segments of slices, thread-local heaps).

Design (mimalloc 2.0.x, the Debian libmimalloc2.0 2.0.9 build; facts in
shared/reference/production-allocators.md section 3, sources src/alloc.c,
src/page.c, src/page-queue.c, src/segment.c).  Three levels, in three modules:

1. Bins (allocators.shared.mimalloc_bins): a request up to 128 KiB is
   rounded up to its bin's block size (8, 16, 32, 48, 64 B, then four bins
   per doubling up to 128 KiB: `_mi_bin`); that is the granted size, equal
   to mi_good_size and mi_usable_size for every such size.
2. Heaps and pages (allocators.mimalloc_page): every trace thread has its
   own heap, with a queue of pages per bin.  A page (64 KiB for blocks up to
   16 KiB, 512 KiB up to 128 KiB) shards its free blocks over three lists:
   `free`, `local_free` (frees by the owning thread) and `thread_free` (frees
   by other threads: remote_frees).  The hot path (`alloc_block`) pops
   `free` of the bin queue's first page, as mi_malloc does through
   `pages_free_direct`; when it is empty the generic path collects
   (local_free and thread_free back to free), walks the queue, extends a page
   lazily (4 KiB of blocks at a time, at least 4) or takes a fresh page.  A
   freed block goes on local_free or thread_free (`free_block`), so it is
   not reused before the next collect: the model `delays_reuse`.  (The hot
   path counts frees, not local ones: local = frees - remote_frees -
   huge_frees.)
3. Segments (allocators.mimalloc_segments): 32 MiB segments of 64 KiB
   slices, one slice of segment info each, owned by a thread; pages are
   runs of slices taken from the thread's free spans, returned and coalesced
   when the page empties, the segment freed when its last page is.  Requests
   above 128 KiB get a large page of their own (the size rounded as
   `_mi_os_good_alloc_size` does, then to whole slices, or to 512 KiB above
   512 KiB); above 16 MiB, a huge segment of their own.

Footprint (heap_stats): the bytes of resident 4 KiB OS pages, what the
process's resident memory grows by (allocators.mimalloc_segments,
"Footprint"): the pages of the segment info mimalloc writes (header, slice
records), of each page the free-list links its lazy extensions write (so a
64 KiB page with a few small blocks counts only its first 4 KiB pages), and
the pages of the blocks the program writes (a block is assumed written over
its requested bytes when first handed out; a large or huge block likewise).
Slices are committed when the segment info or a page first uses them (the
slice_commits counter; mimalloc's `committed` statistic, at its 64 KiB
commit granularity).  `purge` says what happens to free slices: "never"
(the default) keeps every page resident once written, as libmimalloc 2.0.9
does in a replay: its decommit of free spans waits 25 ms (decommit_delay),
and on every recorded program of `bench fidelity` its peak equals the peak
with mi_option_allow_decommit = 0 (measured: sqlite3, python3, cc1, xz); "immediate"
(preset `immediate`, as mi_option_decommit_delay = 0) decommits free slices
as soon as they are free, which makes their pages non-resident again (the
eager commit of a thread's second and later segments is undone by the same
purge, and commits alone are not resident).

Metadata model (metadata_bytes): per live segment its info, a 160 B header
and one 80 B slice record for each of its 513 slices (the part of the
footprint's info slice mimalloc writes); per heap created, 3 KiB (mi_heap_t:
the direct page pointers, 75 page queues, the rest; and its thread data).
Free-list links live in the free blocks and cost nothing.

Threads.  A heap is created on a thread's first allocation.  The traces have
no thread-exit events, so no heap is ever abandoned as such; mimalloc's
reclaim of abandoned segments (`mi_segment_try_reclaim`, run when a thread
needs a segment) is modelled by a *reclaim pass* at that moment: every page
of another heap whose blocks have all been freed (thread_free included) is
freed to its segment, and a segment left empty is freed (reclaim_passes,
reclaimed_pages).  So the memory of a thread that is done comes back once
its blocks are freed, by whichever threads free them (mstress, larson,
xmalloc-test); a page of a finished thread that still holds live blocks stays
with that heap (mimalloc would adopt it into the reclaiming heap and reuse its
free blocks).  A later thread reusing a thread number continues its heap.
Each thread gets its own segments, so `capacity_for_trace` adds a segment's
worth of address space per trace thread; when the address space has no free
32 MiB frame left, a thread takes its page from another thread's free spans
(borrowed_spans) rather than fail.

realloc: in place while granted / 2 <= new size <= granted
(`_mi_heap_realloc_zero`), otherwise allocate, copy, free.

Costs.  Hot alloc and free: O(1), no lookup beyond the size's bin byte and
the address's slice record.  Collect: O(blocks on thread_free).  Fresh page:
O(span queue scan + slices).  Segment allocation: O(frames) scan.

Missing from the model: secure mode, aligned allocation, heap abandonment
at thread exit (no exit events: the reclaim pass above stands in), the
segment cache and arenas (a freed segment's frame is free at once), the
per-block delayed-free list (modelled per page), and hardening options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, BadParameter
from allocators.mimalloc_layout import (
    C_ALLOCS,
    C_FREES,
    C_GENERIC_ALLOCS,
    C_HUGE_FREES,
    C_LARGE_ALLOCS,
    C_REALLOCS_IN_PLACE,
    C_REMOTE_FREES,
    COUNTER_NAMES,
    END,
    H_ACTIVE,
    H_DELAYED,
    H_RETIRED_MAX,
    H_RETIRED_MIN,
    H_STRIDE,
    HEAP_BYTES,
    I_BIN_INDEX,
    I_BIN_SIZE,
    I_COMMITTED,
    I_HEAPS,
    I_LINKS,
    I_PAGES,
    I_QUEUES,
    I_RESIDENT,
    I_SEGS,
    I_SLICE_PAGE,
    I_SPANQ,
    I_WORDS,
    K_HUGE,
    K_LARGE,
    LINK_SHIFT,
    N_SPAN_BINS,
    N_STATE,
    N_WORDS,
    OS_PAGE_SHIFT,
    PG_BSIZE,
    PG_FREE,
    PG_HEAP,
    PG_KIND,
    PG_LOCAL,
    PG_QUEUE,
    PG_SHIFT,
    PG_STRIDE,
    PG_THREAD,
    PG_THREAD_N,
    PG_TOUCHED,
    PG_USED,
    PURGE_MODES,
    S_HEAPS,
    S_METADATA,
    S_N_FRAMES,
    S_N_SLICES,
    S_N_THREADS,
    S_PURGE,
    S_RESIDENT,
    S_SEGMENTS,
    SEGMENT_SHIFT,
    SEGMENT_SIZE,
    SG_KIND,
    SG_STRIDE,
    SLICE_SHIFT,
)
from allocators.mimalloc_page import (
    delay_page,
    find_free_page,
    first_touch,
    heap_delayed_free,
    large_page,
    page_retire,
    page_unfull,
)
from allocators.mimalloc_segments import huge_alloc, huge_free, touch
from allocators.protocol import Allocator, default_capacity
from allocators.registry import register
from allocators.replay import Kernels, within_half_of_block
from allocators.shared.mimalloc_bins import (
    BIN_FULL,
    BIN_INDEX,
    BIN_SIZE,
    LARGE_OBJ_SIZE_MAX,
    MEDIUM_OBJ_SIZE_MAX,
    N_QUEUES,
    large_granted,
)
from labcore.jitcache import holds_kernels
from workloads.facts import TraceFacts, as_facts
from workloads.trace import Trace

holds_kernels(__file__)

#: The largest capacity the model takes (its link array is one word per 8 B of it).
MAX_MODEL_CAPACITY = 1 << 40


# --------------------------------------------------------------- slow paths
@njit(cache=True)
def _activate_heap(state, thread):
    words, heaps = state[I_WORDS], state[I_HEAPS]
    h = thread * H_STRIDE
    heaps[h + H_ACTIVE] = 1
    heaps[h + H_RETIRED_MIN] = BIN_FULL
    heaps[h + H_RETIRED_MAX] = 0
    heaps[h + H_DELAYED] = -1
    words[S_HEAPS] += 1
    words[S_METADATA] += HEAP_BYTES


@njit(cache=True)
def alloc_generic(state, b, size, thread):
    """`_mi_malloc_generic`: delayed frees, then a page of bin b with a free block (collect, walk, fresh)."""
    words, bin_size, pages, links, heaps = (
        state[I_WORDS], state[I_BIN_SIZE], state[I_PAGES], state[I_LINKS], state[I_HEAPS]
    )
    words[C_GENERIC_ALLOCS] += 1
    h = thread * H_STRIDE
    if heaps[h + H_ACTIVE] == 0:
        _activate_heap(state, thread)
    if heaps[h + H_DELAYED] >= 0:
        heap_delayed_free(state, thread)
    bsize = bin_size[b]
    page = find_free_page(state, thread, b, bsize)
    if page < 0:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    rec = page << PG_SHIFT
    block = pages[rec + PG_FREE]
    pages[rec + PG_FREE] = links[block >> LINK_SHIFT]
    pages[rec + PG_USED] += 1
    if block >= pages[rec + PG_TOUCHED]:
        first_touch(state, rec, block, size)
    words[C_ALLOCS] += 1
    return block, bsize


@njit(cache=True)
def alloc_large(state, size, thread):
    """`mi_large_huge_page_alloc`: a page of one block (<= 16 MiB) or a huge segment."""
    words, heaps = state[I_WORDS], state[I_HEAPS]
    if heaps[thread * H_STRIDE + H_ACTIVE] == 0:
        _activate_heap(state, thread)
    if heaps[thread * H_STRIDE + H_DELAYED] >= 0:
        heap_delayed_free(state, thread)
    granted = large_granted(size)
    if granted > LARGE_OBJ_SIZE_MAX:
        page = huge_alloc(state, thread, granted)
    else:
        page = large_page(state, thread, granted)
        words[C_LARGE_ALLOCS] += 1
    if page < 0:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    touch(state, page << SLICE_SHIFT, size)
    words[C_ALLOCS] += 1
    return page << SLICE_SHIFT, granted


@njit(cache=True)
def free_other(state, page, addr):
    """A huge block (freed at once, by any thread) or a remote free: onto the page's thread_free."""
    words, pages, links = state[I_WORDS], state[I_PAGES], state[I_LINKS]
    rec = page << PG_SHIFT
    if pages[rec + PG_KIND] == K_HUGE:
        huge_free(state, page)
        words[C_HUGE_FREES] += 1
        return
    links[addr >> LINK_SHIFT] = pages[rec + PG_THREAD]
    pages[rec + PG_THREAD] = addr
    pages[rec + PG_THREAD_N] += 1
    words[C_REMOTE_FREES] += 1
    if pages[rec + PG_QUEUE] == BIN_FULL or pages[rec + PG_KIND] == K_LARGE:
        delay_page(state, page)


@njit(cache=True)
def free_local_slow(state, page, used):
    """A local free that emptied the page (retire) or freed into a full page (unfull)."""
    if used == 0:
        page_retire(state, page)
    else:
        page_unfull(state, page)


# ------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, bin_index, bin_size, pages, links, queues = (
        state[I_WORDS], state[I_BIN_INDEX], state[I_BIN_SIZE], state[I_PAGES], state[I_LINKS], state[I_QUEUES]
    )
    if size > MEDIUM_OBJ_SIZE_MAX:
        return alloc_large(state, size, thread)
    b = np.int64(bin_index[(size + 7) >> 3])
    page = queues[(thread * N_QUEUES + b) << 1]
    if page >= 0:
        rec = page << PG_SHIFT
        block = pages[rec + PG_FREE]
        if block != END:
            pages[rec + PG_FREE] = links[block >> LINK_SHIFT]
            pages[rec + PG_USED] += 1
            if block >= pages[rec + PG_TOUCHED]:
                first_touch(state, rec, block, size)
            words[C_ALLOCS] += 1
            return block, bin_size[b]
    return alloc_generic(state, b, size, thread)


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, pages, slice_page, links = state[I_WORDS], state[I_PAGES], state[I_SLICE_PAGE], state[I_LINKS]
    page = np.int64(slice_page[addr >> SLICE_SHIFT])
    rec = page << PG_SHIFT
    granted = pages[rec + PG_BSIZE]
    words[C_FREES] += 1
    if pages[rec + PG_HEAP] == thread and pages[rec + PG_KIND] != K_HUGE:
        links[addr >> LINK_SHIFT] = pages[rec + PG_LOCAL]
        pages[rec + PG_LOCAL] = addr
        used = pages[rec + PG_USED] - 1
        pages[rec + PG_USED] = used
        if used == 0 or pages[rec + PG_QUEUE] == BIN_FULL:
            free_local_slow(state, page, used)
    else:
        free_other(state, page, addr)
    return np.int64(ST_OK), granted


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[I_WORDS]
    return words[S_RESIDENT], words[S_METADATA]


@njit(cache=True, inline="always")
def realloc_in_place(state, addr, granted, new_size, thread):
    """`_mi_heap_realloc_zero`: keep the block while granted / 2 <= new_size <= granted (its new bytes written)."""
    if within_half_of_block(granted, new_size):
        state[I_WORDS][C_REALLOCS_IN_PLACE] += 1
        touch(state, addr, new_size)
        return addr, granted
    return np.int64(-1), np.int64(0)


@njit(cache=True)
def reset_state(state):
    """Every block free: heaps, queues and segments gone, the committed slices and resident pages kept."""
    words, queues, spanq, segs, heaps = (
        state[I_WORDS], state[I_QUEUES], state[I_SPANQ], state[I_SEGS], state[I_HEAPS]
    )
    queues[:] = -1
    spanq[:] = -1
    heaps[:] = 0
    for f in range(words[S_N_FRAMES]):
        segs[f * SG_STRIDE + SG_KIND] = 0
    words[S_SEGMENTS] = 0
    words[S_HEAPS] = 0
    words[S_METADATA] = 0


# ---------------------------------------------------------------- the shell
@register
class MiMalloc(Allocator):
    name = "mimalloc"
    summary = (
        "mimalloc 2.0: thread-local heaps of pages per bin with free / local_free / thread_free lists, "
        "lazy 4 KiB extension, 32 MiB segments of 64 KiB slices, large pages and huge segments"
    )
    alignment = 8
    defaults = {"purge": "never"}
    presets = {"immediate": {"purge": "immediate"}}
    variants = ()
    delays_reuse = True
    counter_names = COUNTER_NAMES
    #: Operations on structures other threads touch: a remote free (an atomic push on the page's
    #: thread_free), the collect that takes those lists, and segment allocation / free (the OS or arena).
    shared_counters = ("remote_frees", "segments_allocated", "segments_freed")
    state_hint = ", or fewer threads"

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """The default capacity plus a 32 MiB segment per trace thread (mimalloc's segments are per thread)."""
        facts = as_facts(trace)
        base = default_capacity(facts) + (facts.n_threads + 1) * SEGMENT_SIZE
        return 1 << max(20, (base - 1).bit_length())

    def check_params(self) -> None:
        p = self.params
        if p["purge"] not in PURGE_MODES:
            raise BadParameter(f"mimalloc: purge must be one of {', '.join(PURGE_MODES)}, got {p['purge']!r}")
        if self.capacity > MAX_MODEL_CAPACITY:
            raise BadParameter(f"mimalloc: capacity_bytes {self.capacity} above the model's {MAX_MODEL_CAPACITY}")

    def make_state(self) -> tuple:
        n_slices = self.capacity >> SLICE_SHIFT
        n_frames = max(1, (self.capacity + SEGMENT_SIZE - 1) >> SEGMENT_SHIFT)
        n_threads = self.max_threads
        words = np.zeros(N_WORDS, np.int64)
        words[S_N_THREADS] = n_threads
        words[S_N_FRAMES] = n_frames
        words[S_N_SLICES] = n_slices
        words[S_PURGE] = PURGE_MODES[self.params["purge"]]
        try:
            pages = np.zeros(max(1, n_slices) * PG_STRIDE, np.int64)
            slice_page = np.zeros(max(1, n_slices), np.int32)
            committed = np.zeros(max(1, n_slices), np.uint8)
            resident = np.zeros(max(1, self.capacity >> OS_PAGE_SHIFT), np.uint8)
            links = np.empty(max(1, self.capacity >> LINK_SHIFT), np.int64)
        except (MemoryError, ValueError):
            raise BadParameter(
                f"mimalloc: capacity_bytes {self.capacity} too large for this model's address-indexed tables"
            ) from None
        queues = np.full(n_threads * N_QUEUES * 2, -1, np.int64)
        spanq = np.full(n_threads * N_SPAN_BINS, -1, np.int64)
        segs = np.zeros(n_frames * SG_STRIDE, np.int64)
        heaps = np.zeros(n_threads * H_STRIDE, np.int64)
        arrays = {
            I_WORDS: words, I_BIN_INDEX: BIN_INDEX, I_BIN_SIZE: BIN_SIZE, I_PAGES: pages, I_SLICE_PAGE: slice_page,
            I_COMMITTED: committed, I_LINKS: links, I_QUEUES: queues, I_SPANQ: spanq, I_SEGS: segs, I_HEAPS: heaps,
            I_RESIDENT: resident,
        }
        assert len(arrays) == N_STATE
        return tuple(arrays[i] for i in range(N_STATE))

