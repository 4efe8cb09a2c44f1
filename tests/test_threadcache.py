"""Thread-cache free lists (LIFO, batch chains, slow start, overages, scavenge) and the transfer cache."""

from __future__ import annotations

import numpy as np

from allocators.shared.threadcache import (
    END,
    TL_LENGTH,
    TL_LOWWATER,
    TL_MAX_LENGTH,
    fetch_grow_max_length,
    list_pop,
    list_pop_chain,
    list_push,
    list_push_chain,
    list_record,
    new_links,
    new_lists,
    scavenge_amount,
    thread_record,
    too_long_adjust,
)
from allocators.shared.transfercache import (
    MAX_SLOTS,
    init_transfer,
    new_transfer_slots,
    transfer_capacity,
    transfer_insert,
    transfer_remove,
    transfer_slots,
)


def chain(links, addrs):
    for a, b in zip(addrs, addrs[1:], strict=False):
        links[a >> 3] = b
    links[addrs[-1] >> 3] = END


def walk(lists, links, rec):
    out, a = [], int(lists[rec])
    while a != END:
        out.append(a)
        a = int(links[a >> 3])
    return out


def test_records_do_not_overlap():
    n_threads, n_classes = 3, 5
    recs = {list_record(t, c, n_classes) for t in range(n_threads) for c in range(1, n_classes)}
    totals = {thread_record(t, n_classes) for t in range(n_threads)}
    assert len(recs) == 12 and len(totals) == 3 and not recs & totals
    assert totals == {list_record(t, 0, n_classes) for t in range(n_threads)}  # the unused class-0 lists
    lists = new_lists(n_threads, n_classes)
    assert len(lists) == n_threads * n_classes * 8
    assert lists[list_record(2, 4, n_classes) + TL_MAX_LENGTH] == 1
    assert list(lists[thread_record(1, n_classes):][:8]) == [0] * 8


def test_lifo_push_pop_and_chains():
    lists, links = new_lists(1, 2), new_links(1 << 12)
    rec = list_record(0, 1, 2)
    for a in (16, 32, 48):
        list_push(lists, links, rec, a)
    assert walk(lists, links, rec) == [48, 32, 16] and lists[rec + TL_LENGTH] == 3
    assert list_pop(lists, links, rec) == 48
    assert lists[rec + TL_LOWWATER] == 0  # never above the length
    chain(links, [400, 408, 416])
    list_push_chain(lists, links, rec, 400, 416, 3)
    assert walk(lists, links, rec) == [400, 408, 416, 32, 16] and lists[rec + TL_LENGTH] == 5
    first, last = list_pop_chain(lists, links, rec, 4)
    assert (first, last) == (400, 32) and links[32 >> 3] == END
    assert walk(lists, links, rec) == [16] and lists[rec + TL_LENGTH] == 1


def test_slow_start_then_batches():
    lists = new_lists(1, 2)
    rec, batch = list_record(0, 1, 2), 4
    seen = []
    for _ in range(8):
        fetch_grow_max_length(lists, rec, batch)
        seen.append(int(lists[rec + TL_MAX_LENGTH]))
    assert seen == [2, 3, 4, 8, 12, 16, 20, 24]
    lists[rec + TL_MAX_LENGTH] = 8190
    fetch_grow_max_length(lists, rec, 32)
    assert lists[rec + TL_MAX_LENGTH] == 8192  # capped at kMaxDynamicFreeListLength, a multiple of 32


def test_overages_shrink_max_length():
    lists = new_lists(1, 2)
    rec, batch = list_record(0, 1, 2), 4
    too_long_adjust(lists, rec, batch)
    assert lists[rec + TL_MAX_LENGTH] == 2  # slow start also on overflow
    lists[rec + TL_MAX_LENGTH] = 12
    for _ in range(3):
        too_long_adjust(lists, rec, batch)
    assert lists[rec + TL_MAX_LENGTH] == 12
    too_long_adjust(lists, rec, batch)  # the 4th overage (> kMaxOverages = 3)
    assert lists[rec + TL_MAX_LENGTH] == 8
    lists[rec + TL_MAX_LENGTH] = 4
    too_long_adjust(lists, rec, batch)
    assert lists[rec + TL_MAX_LENGTH] == 4  # == batch: unchanged


def test_scavenge_amount_uses_the_low_water_mark():
    lists, links = new_lists(1, 2), new_links(1 << 12)
    rec = list_record(0, 1, 2)
    for a in range(8, 8 * 11, 8):
        list_push(lists, links, rec, a)
    lists[rec + TL_LOWWATER] = 10
    lists[rec + TL_MAX_LENGTH] = 64
    assert scavenge_amount(lists, rec, 32) == 5
    assert lists[rec + TL_MAX_LENGTH] == 32 and lists[rec + TL_LOWWATER] == 5
    lists[rec + TL_LOWWATER] = 1
    assert scavenge_amount(lists, rec, 32) == 1
    lists[rec + TL_LOWWATER] = 0
    assert scavenge_amount(lists, rec, 32) == 0


def test_transfer_cache_capacity_and_batches():
    assert transfer_capacity(8, 32) == 64  # 1 MiB / 256 B = 4096 -> capped at 64 slots
    assert transfer_capacity(8192, 8) == 16
    assert transfer_capacity(262144, 2) == 2
    assert transfer_capacity(200_000, 2) == 2
    assert transfer_capacity(0, 0) == 0
    sizes, moves = np.array([0, 8, 262144]), np.array([0, 32, 2])
    words = np.zeros(1 + transfer_slots(3), np.int64)
    init_transfer(words, 1, sizes, moves)
    slots = new_transfer_slots(3)
    assert len(slots) == 3 * MAX_SLOTS * 2
    assert transfer_remove(words, 1, slots, 2) == (-1, -1)
    assert transfer_insert(words, 1, slots, 2, 10, 11)
    assert transfer_insert(words, 1, slots, 2, 20, 21)
    assert not transfer_insert(words, 1, slots, 2, 30, 31)  # full
    assert not transfer_insert(words, 1, slots, 0, 1, 2)  # class 0 has no cache
    assert transfer_remove(words, 1, slots, 2) == (20, 21)
    assert transfer_remove(words, 1, slots, 2) == (10, 11)
