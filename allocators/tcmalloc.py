"""tcmalloc: the classic thread-caching malloc (per-thread caches, transfer cache, central lists, page heap).

Design (gperftools tcmalloc / google/tcmalloc in per-thread mode; facts in
shared/reference/production-allocators.md section 1).  Three tiers:

1. Front end: a *thread cache* per trace thread, one LIFO free list per size
   class, linked through the free objects (allocators.shared.threadcache).
   allocate(size <= 256 KiB): the size class is one table lookup
   (allocators.shared.tcmalloc_sizeclasses: the current google/tcmalloc
   default table, 49 classes for 8 KiB pages and 8-byte alignment,
   `table=legacy`, 85 classes, or `table=gperftools`, gperftools 2.10's 85
   classes); a non-empty list pops its newest object (a
   *hit*, no lock).  An empty list is a *miss*: fetch min(max_length,
   num_to_move) objects from the middle end in one lock-taking call
   (central_fetches), hand out one, keep the rest, and grow the list's
   max_length by *slow start* (+1 per miss up to num_to_move, then
   +num_to_move, at most 8192).  deallocate pushes the object on the freeing
   thread's list for its class, whoever allocated it (remote frees land in
   the freeing thread's cache).  If the list is then longer than max_length,
   min(length, num_to_move) objects go back to the middle end
   (central_releases) and max_length is adjusted (slow start below
   num_to_move; above it, more than 3 overages shrink it by num_to_move).
   If the thread's cached bytes reach its budget `max_size`, the thread
   *scavenges*: every list gives back half of its low-water mark since the
   last scavenge, and the budget grows by 64 KiB (kStealAmount) from the
   unclaimed part of `thread_cache_bytes` (32 MiB overall by default) or, once
   that is gone, from another thread above 512 KiB (round robin, at most 10
   tries).  A thread's cache is created on its first operation with a budget
   of 64 KiB (or 512 KiB when nothing is left to claim).
2. Middle end, per size class: a *transfer cache* of whole batches in front
   (allocators.shared.transfercache: at most min(64, 1 MiB / batch bytes)
   batches; a fetch or release of exactly num_to_move objects is served there
   when it can: transfer_hits / transfer_inserts), then the *central free
   list* (allocators.shared.central): the class's spans with free objects.  A
   fetch takes objects one by one from the first partial span, lowest free
   index first (per-span bitmap, allocators.shared.spanbitmap), building the
   batch as gperftools does (each object pushed in front of the chain, so the
   thread gets them in descending address order); when no span has a free
   object a new span of the class's page count is carved from the page heap
   (spans_allocated) and the batch may come back short (the remaining objects
   are only taken from spans that already exist, as RemoveRange does).  A
   released object is found in its span through the page map and its bit
   cleared; a span whose objects are all free goes straight back to the page
   heap (spans_released).
3. Back end: the *page heap* (allocators.shared.pageheap, best fit, 8 KiB
   pages): exact-length free lists with a bitset over lengths, split and
   coalesce, growth by what is needed rounded up to `grow_bytes` (1 MiB), or
   with `grow_at_least` by max(needed, grow_bytes) (gperftools' GrowHeap,
   kMinSystemAlloc = 1 MiB), address space reserved in 1 GiB units.
   Requests above 256 KiB (kMaxSize) are *large*: ceil(size / 8 KiB) pages
   straight from the page heap, given back on free (large_allocs,
   large_frees).  Nothing is returned to the OS: the footprint (mapped heap)
   only grows.

Parameters: `table` ("default" | "legacy" | "gperftools"; preset `legacy`),
`thread_cache_bytes` (the overall thread-cache budget, 32 MiB;
kDefaultOverallThreadCacheSize), `transfer_cache` (true; false models
gperftools' small-but-slow build without one), `grow_bytes` (1 MiB, a
multiple of the 8 KiB page), `grow_at_least` (false).  Preset `gperftools`
(`tcmalloc:gperftools`, the model of the real libtcmalloc_minimal 2.10 on
Debian): table=gperftools, grow_at_least=true; the thread-cache constants
above are gperftools 2.10's (allocators.shared.gperftools_sizeclasses lists
what was checked, and what of gperftools is not modelled).

Granted size: the class size for small objects, whole pages for large ones.
Alignment: 8 B (the align8 tables: every class size is a multiple of 8 and
spans start on page boundaries); large objects are page aligned.
realloc: in place while the new size is between half the granted size and
the granted size (tcmalloc's do_realloc shrink rule), otherwise allocate,
copy, free.  (tcmalloc grows a moved block to at least 1.25x its old size;
the replay driver allocates the requested size, so that rule is not modelled.)

Costs.  Hit: one lookup, one pop or push, O(1).  Miss / overflow: O(batch)
plus, when spans are touched, O(1) per object (bitmap, one division for the
object index) and a page-heap operation, O(log pages), per span carved or
freed.  Scavenge: O(classes + objects released).

Metadata model (metadata_bytes): span records (48 B each, gperftools' Span)
for every live span, free runs included, + 8 B of page map per mapped page
(the radix tree's leaves) + per thread cache created 64 B + 24 B per class
(a FreeList: head pointer and four 32-bit counts) + the static middle end, per
class 64 B of central list plus 64 slots x 16 B of transfer cache, + the size
class lookup (1 B per slot).  Free-list links live inside free objects and
cost nothing; the span bitmaps stand in for the span's in-object free list and
are not counted.

State (a tuple of arrays, at the I_* indices): `words` (counters; the
page-heap region whose counters follow ours; scalars; central list heads per
class; transfer-cache counts per class), `class_index` (int16 size -> class),
`classes` (per class: size, pages, num_to_move, objects, 4 int64 each),
`lists` (thread caches: per (thread, class) list records; each thread's
class-0 record holds its totals), `links` (one int64 per 8 B of capacity,
np.empty), `slots` (transfer-cache batches), then the page heap's `spans`,
`pagemap`, `run_heads`, `run_bits`, `run_tree` and the span bitmaps `bits`.
The per-page and per-granule arrays are sized from the capacity and only
touched where the heap is used.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, BadParameter
from allocators.hardening import HARDENING_OFF, HARDENING_PRESETS, harden, with_hardening
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels, within_half_of_block
from allocators.shared.central import (
    init_central,
    reset_central,
)
from allocators.shared.pageheap import (
    PH_COUNTER_NAMES,
    PH_HEAP_PAGES,
    PH_METADATA,
    POLICY_BEST_FIT,
    init_pageheap,
    new_pageheap_arrays,
    pageheap_reset,
)
from allocators.shared.spanbitmap import bitmap_words_for
from allocators.shared.spans import SP_CLASS, SPAN_SHIFT, new_span_bits
from allocators.shared.tcmalloc_sizeclasses import ALIGNMENT, MAX_SIZE, PAGE_SHIFT, TABLES, tcmalloc_size_to_class
from allocators.shared.threadcache import (
    LIST_SHIFT,
    TL_LENGTH,
    TL_MAX_LENGTH,
    TT_MAX_SIZE,
    TT_SIZE,
    list_pop,
    list_push,
    new_links,
    new_lists,
    reset_lists,
    thread_record,
)
from allocators.shared.transfercache import (
    init_transfer,
    new_transfer_slots,
    reset_transfer,
)
from allocators.tcmalloc_layout import (
    C_ALLOCS,
    C_FREES,
    C_REALLOCS_IN_PLACE,
    C_TC_HITS,
    CB,
    CENTRAL_LIST_BYTES,
    DEFAULT_GROW_BYTES,
    DEFAULT_OVERALL_THREAD_CACHE,
    FREE_LIST_BYTES,
    I_BITS,
    I_CLASS_INDEX,
    I_CLASSES,
    I_LINKS,
    I_LISTS,
    I_PAGEMAP,
    I_RUN_BITS,
    I_RUN_HEADS,
    I_RUN_TREE,
    I_SLOTS,
    I_SPANS,
    I_WORDS,
    K_BATCH,
    K_NOBJ,
    K_PAGES,
    K_SIZE,
    K_STRIDE,
    OWN_COUNTERS,
    PAGE_SIZE,
    PAGEMAP_ENTRY_BYTES,
    PH,
    RESERVE_BYTES,
    S_METADATA,
    S_N_CLASSES,
    S_N_THREADS,
    S_NEXT_STEAL,
    S_OVERALL,
    S_STATIC_METADATA,
    S_THREAD_BYTES,
    S_THREADS_ACTIVE,
    S_UNCLAIMED,
    S_XB,
    SPAN_BYTES,
    THREAD_CACHE_HEADER_BYTES,
    TRANSFER_ENTRIES,
    TRANSFER_ENTRY_BYTES,
    n_words,
    transfer_base,
)
from allocators.tcmalloc_slow import alloc_large, alloc_miss, free_large, free_overflow
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

# ------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, class_index, classes, lists, links = (
        state[I_WORDS], state[I_CLASS_INDEX], state[I_CLASSES], state[I_LISTS], state[I_LINKS]
    )
    if size > MAX_SIZE:
        return alloc_large(state, size)
    cls = tcmalloc_size_to_class(size, class_index)
    trec = thread_record(thread, words[S_N_CLASSES])
    rec = trec + (cls << LIST_SHIFT)
    if lists[rec + TL_LENGTH] == 0:
        return alloc_miss(state, cls, thread)
    granted = classes[cls * K_STRIDE + K_SIZE]
    addr = list_pop(lists, links, rec)
    lists[trec + TT_SIZE] -= granted
    words[C_TC_HITS] += 1
    words[C_ALLOCS] += 1
    return addr, granted


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, classes, lists, links, spans, pagemap = (
        state[I_WORDS], state[I_CLASSES], state[I_LISTS], state[I_LINKS], state[I_SPANS], state[I_PAGEMAP]
    )
    s = pagemap[addr >> PAGE_SHIFT]
    cls = spans[(s << SPAN_SHIFT) + SP_CLASS]
    if cls == 0:
        return free_large(state, s)
    granted = classes[cls * K_STRIDE + K_SIZE]
    trec = thread_record(thread, words[S_N_CLASSES])
    rec = trec + (cls << LIST_SHIFT)
    length = list_push(lists, links, rec, addr)
    cached = lists[trec + TT_SIZE] + granted
    lists[trec + TT_SIZE] = cached
    words[C_FREES] += 1
    if length > lists[rec + TL_MAX_LENGTH] or cached >= lists[trec + TT_MAX_SIZE]:
        free_overflow(state, cls, thread)
    return np.int64(ST_OK), granted


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[I_WORDS]
    return words[PH + PH_HEAP_PAGES] << PAGE_SHIFT, words[PH + PH_METADATA] + words[S_METADATA]


@njit(cache=True, inline="always")
def realloc_in_place(state, addr, granted, new_size, thread):
    """do_realloc: keep the block while granted / 2 <= new_size <= granted."""
    if within_half_of_block(granted, new_size):
        state[I_WORDS][C_REALLOCS_IN_PLACE] += 1
        return addr, granted
    return np.int64(-1), np.int64(0)


@njit(cache=True)
def reset_state(state):
    """Every block free: thread caches gone, middle end empty, the heap one free run (footprint kept)."""
    words, lists = state[I_WORDS], state[I_LISTS]
    spans, pagemap, run_heads, run_bits, run_tree = (
        state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    )
    n_classes = words[S_N_CLASSES]
    reset_lists(lists, words[S_N_THREADS], n_classes)
    reset_transfer(words, words[S_XB], n_classes)
    reset_central(words, CB, n_classes)
    pageheap_reset(words, PH, spans, pagemap, run_heads, run_bits, run_tree)
    words[S_UNCLAIMED] = words[S_OVERALL]
    words[S_NEXT_STEAL] = 0
    words[S_THREADS_ACTIVE] = 0
    words[S_METADATA] = words[S_STATIC_METADATA]


# ---------------------------------------------------------------- the shell
@register
class TCMalloc(Allocator):
    name = "tcmalloc"
    summary = (
        "thread-caching malloc: per-thread size-class free lists with slow start, transfer cache + central "
        "lists of spans, best-fit page heap; > 256 KiB straight from the page heap"
    )
    alignment = ALIGNMENT
    defaults = with_hardening({
        "table": "default",
        "thread_cache_bytes": DEFAULT_OVERALL_THREAD_CACHE,
        "transfer_cache": True,
        "grow_bytes": DEFAULT_GROW_BYTES,
        "grow_at_least": False,
    })
    presets = {"legacy": {"table": "legacy"}, "gperftools": {"table": "gperftools", "grow_at_least": True},
               **HARDENING_PRESETS}
    configure_instance = harden
    hardening_params = HARDENING_OFF
    variants = ("transfer_cache=false", "thread_cache_bytes=0", "grow_bytes=8KiB")
    counter_names = OWN_COUNTERS + PH_COUNTER_NAMES
    #: Lock-taking operations: each fetch from / release to the middle end takes the class's central-list
    #: lock (the transfer cache sits behind it), each page-heap allocation or free the page-heap lock.
    #: Thread-cache hits and frees that fit in the thread cache take none.
    shared_counters = ("central_fetches", "central_releases", "page_heap_allocs", "page_heap_frees")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    def check_params(self) -> None:
        p = self.params
        if p["table"] not in TABLES:
            raise BadParameter(f"tcmalloc: table must be one of {', '.join(TABLES)}, got {p['table']!r}")
        overall = p["thread_cache_bytes"]
        if isinstance(overall, bool) or not isinstance(overall, (int, np.integer)) or overall < 0:
            raise BadParameter(f"tcmalloc: thread_cache_bytes must be an integer >= 0, got {overall!r}")
        for flag in ("transfer_cache", "grow_at_least"):
            if not isinstance(p[flag], (bool, np.bool_)):
                raise BadParameter(f"tcmalloc: {flag} must be true or false, got {p[flag]!r}")
        grow = p["grow_bytes"]
        if isinstance(grow, bool) or not isinstance(grow, (int, np.integer)) or grow < PAGE_SIZE or grow % PAGE_SIZE:
            raise BadParameter(f"tcmalloc: grow_bytes must be a positive multiple of {PAGE_SIZE}, got {grow!r}")
        if self.capacity < PAGE_SIZE:
            raise BadParameter(f"tcmalloc: capacity_bytes {self.capacity} is smaller than one {PAGE_SIZE} B page")
        p["thread_cache_bytes"] = int(overall)
        p["grow_bytes"] = int(grow)
        p["transfer_cache"] = bool(p["transfer_cache"])
        p["grow_at_least"] = bool(p["grow_at_least"])

    def make_state(self) -> tuple:
        p = self.params
        table = TABLES[p["table"]]
        n_classes = len(table.size)  # class 0 (the sentinel) included: indices are class numbers
        capacity_pages = self.capacity >> PAGE_SHIFT
        bitmap_words = bitmap_words_for(int(table.objects.max()))
        words = np.zeros(n_words(n_classes), np.int64)
        init_pageheap(
            words, PH, page_shift=PAGE_SHIFT, capacity_pages=capacity_pages, grow_pages=p["grow_bytes"] >> PAGE_SHIFT,
            arena_pages=RESERVE_BYTES >> PAGE_SHIFT, policy=POLICY_BEST_FIT, span_bytes=SPAN_BYTES,
            pagemap_entry_bytes=PAGEMAP_ENTRY_BYTES, bitmap_words=bitmap_words, grow_at_least=p["grow_at_least"],
        )
        init_central(words, CB, n_classes)
        moves = table.num_to_move if p["transfer_cache"] else np.zeros_like(table.num_to_move)
        init_transfer(words, transfer_base(n_classes), table.size, moves)
        real_classes = n_classes - 1
        static = (
            real_classes * (CENTRAL_LIST_BYTES + TRANSFER_ENTRIES * TRANSFER_ENTRY_BYTES) + len(table.class_index)
        )
        words[S_N_CLASSES] = n_classes
        words[S_XB] = transfer_base(n_classes)
        words[S_N_THREADS] = self.max_threads
        words[S_STATIC_METADATA] = static
        words[S_METADATA] = static
        words[S_OVERALL] = p["thread_cache_bytes"]
        words[S_UNCLAIMED] = p["thread_cache_bytes"]
        words[S_THREAD_BYTES] = THREAD_CACHE_HEADER_BYTES + real_classes * FREE_LIST_BYTES
        classes = np.zeros(n_classes * K_STRIDE, np.int64)
        classes[K_SIZE::K_STRIDE] = table.size
        classes[K_PAGES::K_STRIDE] = table.pages
        classes[K_BATCH::K_STRIDE] = table.num_to_move
        classes[K_NOBJ::K_STRIDE] = table.objects
        try:
            links = new_links(self.capacity)
            spans, pagemap, run_heads, run_bits, run_tree = new_pageheap_arrays(
                capacity_pages, POLICY_BEST_FIT, bitmap_words
            )
            bits = new_span_bits(capacity_pages + 1, bitmap_words)
        except (MemoryError, ValueError):
            raise BadParameter(
                f"tcmalloc: capacity_bytes {self.capacity} too large for this model's address-indexed tables"
            ) from None
        lists = new_lists(self.max_threads, n_classes)
        slots = new_transfer_slots(n_classes)
        arrays = {
            I_WORDS: words, I_CLASS_INDEX: table.class_index, I_CLASSES: classes, I_LISTS: lists, I_LINKS: links,
            I_SLOTS: slots, I_SPANS: spans, I_PAGEMAP: pagemap, I_RUN_HEADS: run_heads, I_RUN_BITS: run_bits,
            I_RUN_TREE: run_tree, I_BITS: bits,
        }
        return tuple(arrays[i] for i in range(len(arrays)))
