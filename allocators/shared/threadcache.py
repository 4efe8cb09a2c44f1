"""Thread caches: per (thread, size class) LIFO free lists threaded through the free objects.

TCMalloc's front end in per-thread mode (gperftools `ThreadCache::FreeList`):
every thread keeps, for every size class, a singly linked list of free
objects, pushed and popped at the head without a lock.  As in the real
allocator the list links live *inside* the free objects: the model keeps
them in `links`, one int64 per 8-byte granule of the address space
(`links[addr >> LINK_SHIFT]` = the next free object's address, or END), which
is the memory a real allocator would write; objects are at least 8 B and
8-aligned, so a granule holds at most one link.

Lists move objects to and from the shared middle end in *batches* of
`num_to_move` (the class's batch size).  A batch travels as a *chain*: first
and last object plus a count, linked through `links`, so handing one over is
O(1) (`list_push_chain`); cutting n objects off a list walks n - 1 links
(`list_pop_chain`), as gperftools' `SLL_PopRange` does.

Per (thread, class) list record, LIST_STRIDE = 8 int64 in the array `lists`
at `list_record(thread, cls, n_classes)`:
    TL_HEAD        first free object (END if empty)
    TL_LENGTH      objects on the list
    TL_MAX_LENGTH  the list's dynamic limit (slow start, below)
    TL_LOWWATER    lowest length since the last scavenge
    TL_OVERAGES    times the list overflowed max_length while max_length > batch
Per thread, the record of its class-0 list holds the thread's totals instead
(class 0 is the "no class" sentinel of every size-class table, so that list is
never used; `thread_record(thread, n_classes)`, one multiply shared with the
list records): TT_SIZE (bytes cached), TT_MAX_SIZE (its byte budget),
TT_ACTIVE (1 once the thread has a cache).

Sizing rules (gperftools thread_cache.cc; `docs/tcmalloc.adoc`):
- slow start on a miss (`fetch_grow_max_length`): max_length += 1 while below
  the batch size, then += batch size, rounded down to a multiple of it and
  capped at MAX_DYNAMIC_LENGTH = 8192 (kMaxDynamicFreeListLength).  The fetch
  asks for min(max_length, batch) objects.
- too long on a free (length > max_length, `too_long_adjust`): the caller
  releases min(length, batch) objects; then max_length += 1 while below the
  batch size, else if above it, one more overage, and after more than
  MAX_OVERAGES = 3 overages max_length shrinks by the batch size.
- scavenge (the thread's cached bytes reached its budget): each list with
  low-water mark L > 0 releases max(L // 2, 1) objects and, if max_length is
  above the batch size, shrinks it by one batch (not below the batch size);
  low-water marks are reset to the current lengths.

All calls are O(1) except `list_pop_chain`, O(n).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

LINK_SHIFT = 3
END = -1

TL_HEAD = 0
TL_LENGTH = 1
TL_MAX_LENGTH = 2
TL_LOWWATER = 3
TL_OVERAGES = 4
LIST_SHIFT = 3
LIST_STRIDE = 1 << LIST_SHIFT

TT_SIZE = 0
TT_MAX_SIZE = 1
TT_ACTIVE = 2

#: gperftools kMaxDynamicFreeListLength and kMaxOverages.
MAX_DYNAMIC_LENGTH = 8192
MAX_OVERAGES = 3


def new_links(capacity_bytes: int) -> np.ndarray:
    """One link word per 8-byte granule of the address space (np.empty: only free objects touch it)."""
    return np.empty(max(1, capacity_bytes >> LINK_SHIFT), np.int64)


def new_lists(n_threads: int, n_classes: int) -> np.ndarray:
    """Records for n_threads x n_classes lists (class 0: the thread's totals), all empty, max_length 1."""
    lists = np.zeros(n_threads * n_classes * LIST_STRIDE, np.int64)
    reset_lists(lists, n_threads, n_classes)
    return lists


@njit(cache=True)
def reset_lists(lists, n_threads, n_classes):
    """Every list empty with max_length 1, every thread without a cache."""
    for thread in range(n_threads):
        trec = thread * n_classes * LIST_STRIDE
        for k in range(LIST_STRIDE):
            lists[trec + k] = 0
        for rec in range(trec + LIST_STRIDE, trec + n_classes * LIST_STRIDE, LIST_STRIDE):
            lists[rec + TL_HEAD] = END
            lists[rec + TL_LENGTH] = 0
            lists[rec + TL_MAX_LENGTH] = 1
            lists[rec + TL_LOWWATER] = 0
            lists[rec + TL_OVERAGES] = 0


@njit(cache=True, inline="always")
def list_record(thread, cls, n_classes):
    return (thread * n_classes + cls) << LIST_SHIFT


@njit(cache=True, inline="always")
def thread_record(thread, n_classes):
    """The thread's totals (TT_*), in its class-0 list record."""
    return thread * n_classes << LIST_SHIFT


@njit(cache=True, inline="always")
def list_pop(lists, links, rec):
    """Pop the newest free object of a non-empty list."""
    head = lists[rec + TL_HEAD]
    lists[rec + TL_HEAD] = links[head >> LINK_SHIFT]
    length = lists[rec + TL_LENGTH] - 1
    lists[rec + TL_LENGTH] = length
    lowwater = lists[rec + TL_LOWWATER]
    lists[rec + TL_LOWWATER] = length if length < lowwater else lowwater  # a store either way: no branch
    return head


@njit(cache=True, inline="always")
def list_push(lists, links, rec, addr):
    """Push a freed object; returns the new length."""
    links[addr >> LINK_SHIFT] = lists[rec + TL_HEAD]
    lists[rec + TL_HEAD] = addr
    length = lists[rec + TL_LENGTH] + 1
    lists[rec + TL_LENGTH] = length
    return length


@njit(cache=True, inline="always")
def list_push_chain(lists, links, rec, first, last, n):
    """Put a chain of n >= 1 objects (first .. last, linked) in front of the list."""
    links[last >> LINK_SHIFT] = lists[rec + TL_HEAD]
    lists[rec + TL_HEAD] = first
    lists[rec + TL_LENGTH] += n


@njit(cache=True, inline="always")
def list_pop_chain(lists, links, rec, n):
    """Cut the n newest objects (1 <= n <= length) off the list as a chain; returns (first, last)."""
    first = lists[rec + TL_HEAD]
    last = first
    for _ in range(n - 1):
        last = links[last >> LINK_SHIFT]
    lists[rec + TL_HEAD] = links[last >> LINK_SHIFT]
    links[last >> LINK_SHIFT] = END
    length = lists[rec + TL_LENGTH] - n
    lists[rec + TL_LENGTH] = length
    if length < lists[rec + TL_LOWWATER]:
        lists[rec + TL_LOWWATER] = length
    return first, last


@njit(cache=True, inline="always")
def fetch_grow_max_length(lists, rec, batch):
    """Slow start after a miss: +1 up to the batch size, then +batch (multiple of batch, <= 8192)."""
    max_length = lists[rec + TL_MAX_LENGTH]
    if max_length < batch:
        lists[rec + TL_MAX_LENGTH] = max_length + 1
    else:
        grown = max_length + batch
        if grown > MAX_DYNAMIC_LENGTH:
            grown = MAX_DYNAMIC_LENGTH
        lists[rec + TL_MAX_LENGTH] = grown - grown % batch


@njit(cache=True, inline="always")
def too_long_adjust(lists, rec, batch):
    """max_length bookkeeping after a list overflowed (the caller released a batch)."""
    max_length = lists[rec + TL_MAX_LENGTH]
    if max_length < batch:
        lists[rec + TL_MAX_LENGTH] = max_length + 1
    elif max_length > batch:
        overages = lists[rec + TL_OVERAGES] + 1
        if overages > MAX_OVERAGES:
            lists[rec + TL_MAX_LENGTH] = max_length - batch
            overages = 0
        lists[rec + TL_OVERAGES] = overages


@njit(cache=True, inline="always")
def scavenge_amount(lists, rec, batch):
    """Objects a scavenge releases from this list (0: none), shrinking max_length; resets the low-water mark."""
    lowwater = lists[rec + TL_LOWWATER]
    drop = 0
    if lowwater > 0:
        drop = lowwater // 2 if lowwater > 1 else 1
        max_length = lists[rec + TL_MAX_LENGTH]
        if max_length > batch:
            shrunk = max_length - batch
            lists[rec + TL_MAX_LENGTH] = shrunk if shrunk > batch else batch
    lists[rec + TL_LOWWATER] = lists[rec + TL_LENGTH] - drop
    return drop
