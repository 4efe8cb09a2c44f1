"""tcmalloc's slow paths: thread-cache budget, batches to and from the middle end, scavenge, large objects.

The hot path (`allocators.tcmalloc`: a thread-cache pop or push) calls these when a list is empty,
too long, or its thread over budget, and for requests above 256 KiB; the design is described in
that module's docstring.  Each function here takes the lab's state tuple (`allocators.tcmalloc_layout`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY
from allocators.shared.central import central_add_span, central_return_object, central_take_object
from allocators.shared.pageheap import pageheap_alloc, pageheap_free
from allocators.shared.spans import NO_SPAN, SP_NPAGES, SP_START, SPAN_SHIFT
from allocators.shared.tcmalloc_sizeclasses import PAGE_SHIFT
from allocators.shared.threadcache import (
    END,
    LINK_SHIFT,
    LIST_STRIDE,
    TL_LENGTH,
    TL_MAX_LENGTH,
    TT_ACTIVE,
    TT_MAX_SIZE,
    TT_SIZE,
    fetch_grow_max_length,
    list_pop_chain,
    list_push_chain,
    scavenge_amount,
    thread_record,
    too_long_adjust,
)
from allocators.shared.transfercache import (
    transfer_insert,
    transfer_remove,
)
from allocators.tcmalloc_layout import (
    C_ALLOCS,
    C_CENTRAL_FETCHES,
    C_CENTRAL_RELEASES,
    C_FREES,
    C_LARGE_ALLOCS,
    C_LARGE_FREES,
    C_LIST_OVERFLOWS,
    C_SCAVENGES,
    C_SPANS_ALLOCATED,
    C_SPANS_RELEASED,
    C_TC_MISSES,
    C_TRANSFER_HITS,
    C_TRANSFER_INSERTS,
    CB,
    I_BITS,
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
    MIN_THREAD_CACHE_SIZE,
    PAGE_SIZE,
    PH,
    S_METADATA,
    S_N_CLASSES,
    S_N_THREADS,
    S_NEXT_STEAL,
    S_THREAD_BYTES,
    S_THREADS_ACTIVE,
    S_UNCLAIMED,
    S_XB,
    STEAL_AMOUNT,
    STEAL_TRIES,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


# --------------------------------------------------------------- slow paths
@njit(cache=True)
def _activate_thread(state, thread):
    """Create the thread's cache: a 64 KiB budget from the unclaimed space, or the 512 KiB minimum."""
    words, lists = state[I_WORDS], state[I_LISTS]
    trec = thread_record(thread, words[S_N_CLASSES])
    lists[trec + TT_ACTIVE] = 1
    _increase_cache_limit(state, thread)
    if lists[trec + TT_MAX_SIZE] == 0:
        lists[trec + TT_MAX_SIZE] = MIN_THREAD_CACHE_SIZE
        words[S_UNCLAIMED] -= MIN_THREAD_CACHE_SIZE
    words[S_THREADS_ACTIVE] += 1
    words[S_METADATA] += words[S_THREAD_BYTES]


@njit(cache=True)
def _increase_cache_limit(state, thread):
    """gperftools IncreaseCacheLimitLocked: claim 64 KiB, or steal it from another thread."""
    words, lists = state[I_WORDS], state[I_LISTS]
    n_classes = words[S_N_CLASSES]
    n_threads = words[S_N_THREADS]
    mine = thread_record(thread, n_classes)
    if words[S_UNCLAIMED] > 0:
        words[S_UNCLAIMED] -= STEAL_AMOUNT
        lists[mine + TT_MAX_SIZE] += STEAL_AMOUNT
        return
    for _ in range(STEAL_TRIES):
        victim = words[S_NEXT_STEAL]
        words[S_NEXT_STEAL] = victim + 1 if victim + 1 < n_threads else 0
        other = thread_record(victim, n_classes)
        if victim == thread or lists[other + TT_ACTIVE] == 0 or lists[other + TT_MAX_SIZE] <= MIN_THREAD_CACHE_SIZE:
            continue
        lists[other + TT_MAX_SIZE] -= STEAL_AMOUNT
        lists[mine + TT_MAX_SIZE] += STEAL_AMOUNT
        return


@njit(cache=True)
def _release_to_spans(state, first, n):
    """Give a chain of n objects back to their spans; wholly free spans go back to the page heap."""
    words, links, spans, pagemap = state[I_WORDS], state[I_LINKS], state[I_SPANS], state[I_PAGEMAP]
    run_heads, run_bits, run_tree, bits = state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE], state[I_BITS]
    addr = first
    for _ in range(n):
        after = links[addr >> LINK_SHIFT]
        s = pagemap[addr >> PAGE_SHIFT]
        if central_return_object(words, CB, spans, bits, s, addr, PAGE_SHIFT):
            pageheap_free(words, PH, spans, pagemap, run_heads, run_bits, run_tree, s)
            words[C_SPANS_RELEASED] += 1
        addr = after


@njit(cache=True)
def _insert_range(state, cls, first, last, n):
    """CentralFreeList::InsertRange: park a full batch in the transfer cache, else back to the spans."""
    words, classes, slots = state[I_WORDS], state[I_CLASSES], state[I_SLOTS]
    words[C_CENTRAL_RELEASES] += 1
    xb = words[S_XB]
    if n == classes[cls * K_STRIDE + K_BATCH] and transfer_insert(words, xb, slots, cls, first, last):
        words[C_TRANSFER_INSERTS] += 1
        return
    _release_to_spans(state, first, n)


@njit(cache=True)
def _release_from_list(state, rec, cls, n):
    """ThreadCache::ReleaseToCentralCache: move n objects of a list to the middle end, a batch at a time."""
    classes, lists, links = state[I_CLASSES], state[I_LISTS], state[I_LINKS]
    length = lists[rec + TL_LENGTH]
    if n > length:
        n = length
    if n <= 0:
        return 0
    batch = classes[cls * K_STRIDE + K_BATCH]
    left = n
    while left > batch:
        first, last = list_pop_chain(lists, links, rec, batch)
        _insert_range(state, cls, first, last, batch)
        left -= batch
    first, last = list_pop_chain(lists, links, rec, left)
    _insert_range(state, cls, first, last, left)
    return n


@njit(cache=True)
def _fetch(state, cls, want):
    """CentralFreeList::RemoveRange: up to `want` objects as a chain (first, last, count); count 0 = no memory."""
    words, classes, links, slots = state[I_WORDS], state[I_CLASSES], state[I_LINKS], state[I_SLOTS]
    spans, pagemap, run_heads, run_bits, run_tree, bits = (
        state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE], state[I_BITS]
    )
    words[C_CENTRAL_FETCHES] += 1
    base = cls * K_STRIDE
    batch = classes[base + K_BATCH]
    if want == batch:
        first, last = transfer_remove(words, words[S_XB], slots, cls)
        if first >= 0:
            words[C_TRANSFER_HITS] += 1
            return first, last, batch
    first = -1
    last = -1
    count = 0
    while count < want:  # one call site of the inlined take: it is big
        addr = central_take_object(words, CB, cls, spans, bits, PAGE_SHIFT)
        if addr < 0:
            if count > 0:  # the rest of a batch only comes from spans that already exist
                break
            # Populate: a new span for the class
            s = pageheap_alloc(words, PH, spans, pagemap, run_heads, run_bits, run_tree, classes[base + K_PAGES])
            if s == NO_SPAN:
                break
            central_add_span(words, CB, cls, spans, bits, pagemap, s, classes[base + K_SIZE], classes[base + K_NOBJ])
            words[C_SPANS_ALLOCATED] += 1
            continue
        if count == 0:
            links[addr >> LINK_SHIFT] = END
            last = addr
        else:
            links[addr >> LINK_SHIFT] = first  # pushed in front, as SLL_Push
        first = addr
        count += 1
    return first, last, count


@njit(cache=True)
def alloc_miss(state, cls, thread):
    """ThreadCache::FetchFromCentralCache for an empty list: one object out, the rest of the batch kept."""
    words, classes, lists, links = state[I_WORDS], state[I_CLASSES], state[I_LISTS], state[I_LINKS]
    n_classes = words[S_N_CLASSES]
    trec = thread_record(thread, n_classes)
    if lists[trec + TT_ACTIVE] == 0:
        _activate_thread(state, thread)
    rec = (thread * n_classes + cls) * LIST_STRIDE
    batch = classes[cls * K_STRIDE + K_BATCH]
    want = lists[rec + TL_MAX_LENGTH]
    if want > batch:
        want = batch
    first, last, count = _fetch(state, cls, want)
    fetch_grow_max_length(lists, rec, batch)
    if count == 0:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    size = classes[cls * K_STRIDE + K_SIZE]
    if count > 1:
        list_push_chain(lists, links, rec, links[first >> LINK_SHIFT], last, count - 1)
        lists[trec + TT_SIZE] += size * (count - 1)
    words[C_TC_MISSES] += 1
    words[C_ALLOCS] += 1
    return first, size


@njit(cache=True)
def _scavenge(state, thread):
    """ThreadCache::Scavenge: each list gives back half its low-water mark; then the budget grows."""
    words, classes, lists = state[I_WORDS], state[I_CLASSES], state[I_LISTS]
    n_classes = words[S_N_CLASSES]
    trec = thread_record(thread, n_classes)
    for cls in range(1, n_classes):
        rec = (thread * n_classes + cls) * LIST_STRIDE
        drop = scavenge_amount(lists, rec, classes[cls * K_STRIDE + K_BATCH])
        if drop > 0:
            released = _release_from_list(state, rec, cls, drop)
            lists[trec + TT_SIZE] -= released * classes[cls * K_STRIDE + K_SIZE]
    words[C_SCAVENGES] += 1
    _increase_cache_limit(state, thread)


@njit(cache=True)
def free_overflow(state, cls, thread):
    """The slow half of ThreadCache::Deallocate: list too long and/or thread cache over budget."""
    words, classes, lists = state[I_WORDS], state[I_CLASSES], state[I_LISTS]
    n_classes = words[S_N_CLASSES]
    trec = thread_record(thread, n_classes)
    if lists[trec + TT_ACTIVE] == 0:
        _activate_thread(state, thread)
    rec = (thread * n_classes + cls) * LIST_STRIDE
    if lists[rec + TL_LENGTH] > lists[rec + TL_MAX_LENGTH]:
        batch = classes[cls * K_STRIDE + K_BATCH]
        released = _release_from_list(state, rec, cls, batch)
        lists[trec + TT_SIZE] -= released * classes[cls * K_STRIDE + K_SIZE]
        too_long_adjust(lists, rec, batch)
        words[C_LIST_OVERFLOWS] += 1
    if lists[trec + TT_SIZE] >= lists[trec + TT_MAX_SIZE]:
        _scavenge(state, thread)


@njit(cache=True)
def alloc_large(state, size):
    """A request above kMaxSize: whole pages straight from the page heap."""
    words, spans, pagemap, run_heads, run_bits, run_tree = (
        state[I_WORDS], state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    )
    npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
    s = pageheap_alloc(words, PH, spans, pagemap, run_heads, run_bits, run_tree, npages)
    if s == NO_SPAN:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    words[C_LARGE_ALLOCS] += 1
    words[C_ALLOCS] += 1
    return spans[(s << SPAN_SHIFT) + SP_START] << PAGE_SHIFT, npages << PAGE_SHIFT


@njit(cache=True)
def free_large(state, s):
    words, spans, pagemap, run_heads, run_bits, run_tree = (
        state[I_WORDS], state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    )
    granted = spans[(s << SPAN_SHIFT) + SP_NPAGES] << PAGE_SHIFT
    pageheap_free(words, PH, spans, pagemap, run_heads, run_bits, run_tree, s)
    words[C_LARGE_FREES] += 1
    words[C_FREES] += 1
    return np.int64(ST_OK), granted
