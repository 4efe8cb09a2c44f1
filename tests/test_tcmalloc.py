"""The tcmalloc model: thread caches, slow start, batches, transfer cache, spans, large objects."""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from allocators import tcmalloc
from allocators.conformance import HeapChecker
from allocators.shared.pageheap import PH_FREE_PAGES, PH_HEAP_PAGES
from allocators.shared.spans import SP_CLASS, SP_OBJ_SIZE
from allocators.shared.tcmalloc_sizeclasses import TABLES
from allocators.shared.threadcache import END, LIST_STRIDE, TL_LENGTH, TL_MAX_LENGTH, TT_SIZE
from allocators.shared.transfercache import MAX_SLOTS, XC_STRIDE, XC_USED
from tests.spanwalk import small_spans
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

CAPACITY = 32 << 20
PAGE = 8192


def make(threads=4, capacity=CAPACITY, **params):
    return tcmalloc.TCMalloc(capacity, max_threads=threads, **params)


def list_rec(heap, thread, cls):
    n_classes = int(heap.state[0][tcmalloc.S_N_CLASSES])
    return (thread * n_classes + cls) * LIST_STRIDE


def thread_rec(heap, thread):
    return int(heap.state[0][tcmalloc.S_N_CLASSES]) * LIST_STRIDE * thread


def cls_of(heap, size):
    return TABLES[heap.params["table"]].lookup(size)


def audit(heap):
    """Every small object is exactly one of: live, in a thread cache, in the transfer cache, free in its span."""
    words, _, classes, lists, links, slots, spans, pagemap, *_, bits = heap.state
    allocated = set()
    for base, addresses in small_spans(spans, pagemap, bits, int(words[tcmalloc.PH + PH_HEAP_PAGES]), PAGE):
        cls = int(spans[base + SP_CLASS])
        assert spans[base + SP_OBJ_SIZE] == classes[cls * 4]
        allocated.update((addr, cls) for addr in addresses)
    cached = []
    n_classes, n_threads = int(words[tcmalloc.S_N_CLASSES]), int(words[tcmalloc.S_N_THREADS])
    for t in range(n_threads):
        cached_bytes = 0
        for cls in range(1, n_classes):
            rec = (t * n_classes + cls) * LIST_STRIDE
            addr, count = int(lists[rec]), 0
            while addr != END:
                cached.append((addr, cls))
                addr, count = int(links[addr >> 3]), count + 1
            assert count == lists[rec + TL_LENGTH]
            cached_bytes += count * int(classes[cls * 4])
        assert cached_bytes == lists[thread_rec(heap, t) + TT_SIZE]
    xb = int(words[tcmalloc.S_XB])
    for cls in range(n_classes):
        for slot in range(int(words[xb + cls * XC_STRIDE + XC_USED])):
            first, last = slots[(cls * MAX_SLOTS + slot) * 2], slots[(cls * MAX_SLOTS + slot) * 2 + 1]
            addr, count = int(first), 1
            cached.append((addr, cls))
            while addr != last:
                addr, count = int(links[addr >> 3]), count + 1
                cached.append((addr, cls))
            assert count == classes[cls * 4 + 2]  # whole batches only
    live = {(a, cls_of(heap, g)) for a, g in heap.live_blocks().items() if g <= tcmalloc.MAX_SIZE}
    assert len(cached) == len(set(cached)), "an object is cached twice"
    assert not live & set(cached), "a live object is also cached"
    assert allocated == live | set(cached), "span bitmaps disagree with live + cached objects"
    return len(cached)


@pytest.mark.parametrize("table", ["default", "legacy", "gperftools"])
def test_granted_is_the_class_size(table):
    heap = make(table=table)
    sizes = TABLES[table]
    for request in (1, 8, 9, 24, 25, 100, 1000, 1024, 1025, 5000, 100_000, 262_144):
        addr = heap.allocate(request)
        granted = heap.live_blocks()[addr]
        assert granted == sizes.size[sizes.lookup(request)] >= request
        assert addr % 8 == 0
    assert heap.counters()["large_allocs"] == 0


def test_freed_object_is_reused_by_the_same_thread_lifo():
    heap = make()
    blocks = [heap.allocate(40) for _ in range(5)]
    heap.deallocate(blocks[1])
    heap.deallocate(blocks[3])
    hits = heap.counters()["thread_cache_hits"]
    assert heap.allocate(40) == blocks[3]
    assert heap.allocate(33) == blocks[1]  # same class (48 B)
    assert heap.counters()["thread_cache_hits"] == hits + 2


def test_remote_frees_land_in_the_freeing_threads_cache():
    heap = make()
    x = heap.allocate(64, thread=0)
    heap.deallocate(x, thread=1)
    cls = cls_of(heap, 64)
    assert heap.state[3][list_rec(heap, 1, cls)] == x  # head of thread 1's list
    assert heap.allocate(64, thread=0) != x
    assert heap.allocate(64, thread=1) == x
    audit(heap)


def test_slow_start():
    heap = make()
    cls = cls_of(heap, 16)
    rec = list_rec(heap, 0, cls)
    lists = heap.state[3]
    misses, max_lengths = [], []
    for i in range(1, 40):
        before = heap.counters()["thread_cache_misses"]
        heap.allocate(16)
        if heap.counters()["thread_cache_misses"] > before:
            misses.append(i)
            max_lengths.append(int(lists[rec + TL_MAX_LENGTH]))
    # a miss fetches min(max_length, 32) objects, max_length grows by one per miss: misses at 1, 2, 4, 7, 11, ...
    assert misses == [1, 2, 4, 7, 11, 16, 22, 29, 37]
    assert max_lengths == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    lists[rec + TL_MAX_LENGTH] = 32
    while lists[rec + TL_LENGTH]:
        heap.allocate(16)
    heap.allocate(16)
    assert lists[rec + TL_MAX_LENGTH] == 64 and lists[rec + TL_LENGTH] == 31  # a whole batch of 32 was fetched
    audit(heap)


def test_batches_go_through_the_transfer_cache():
    heap = make()
    lists = heap.state[3]
    cls = cls_of(heap, 96)
    batch = int(TABLES["default"].num_to_move[cls])
    blocks = [heap.allocate(96, thread=0) for _ in range(batch + 1)]
    lists[list_rec(heap, 1, cls) + TL_MAX_LENGTH] = batch
    for addr in blocks:
        heap.deallocate(addr, thread=1)
    c = heap.counters()
    assert c["list_overflows"] == 1 and c["transfer_inserts"] == 1  # exactly one batch released, parked whole
    assert lists[list_rec(heap, 1, cls) + TL_LENGTH] == 1
    audit(heap)
    lists[list_rec(heap, 2, cls) + TL_MAX_LENGTH] = batch
    got = heap.allocate(96, thread=2)
    assert heap.counters()["transfer_hits"] == 1
    assert lists[list_rec(heap, 2, cls) + TL_LENGTH] == batch - 1
    # the batch is the newest batch objects thread 1 freed (its list keeps the oldest one)
    parked = set(blocks[1:])
    cached = {got}
    addr = int(lists[list_rec(heap, 2, cls)])
    while addr != END:
        cached.add(addr)
        addr = int(heap.state[4][addr >> 3])
    assert cached == parked
    audit(heap)


def test_without_transfer_cache_batches_go_back_to_spans():
    heap = make(transfer_cache=False)
    blocks = [heap.allocate(512) for _ in range(300)]
    pages_free = heap.state[0][tcmalloc.PH + PH_FREE_PAGES]
    for addr in blocks:
        heap.deallocate(addr)
    c = heap.counters()
    assert c["transfer_inserts"] == 0 and c["central_releases"] > 0
    assert c["spans_released"] > 0
    assert heap.state[0][tcmalloc.PH + PH_FREE_PAGES] == pages_free + c["spans_released"]  # 1-page spans
    audit(heap)


def test_overflowing_lists_shrink_after_overages():
    heap = make()
    cls = cls_of(heap, 8)
    rec = list_rec(heap, 1, cls)
    lists = heap.state[3]
    blocks = [heap.allocate(8, thread=0) for _ in range(400)]
    lists[rec + TL_MAX_LENGTH] = 96
    for addr in blocks[:97]:
        heap.deallocate(addr, thread=1)
    assert heap.counters()["list_overflows"] == 1 and lists[rec + TL_LENGTH] == 65
    for addr in blocks[97:]:  # three more overflows keep 96; the fourth overage shrinks it to 64
        heap.deallocate(addr, thread=1)
    assert lists[rec + TL_MAX_LENGTH] < 96
    audit(heap)


def test_scavenge_keeps_a_thread_cache_near_its_budget():
    heap = make(thread_cache_bytes=64 << 10)  # one 64 KiB budget, nothing more to claim
    blocks = [heap.allocate(2048) for _ in range(200)]
    lists = heap.state[3]
    assert lists[thread_rec(heap, 0) + 1] == 64 << 10  # TT_MAX_SIZE
    for addr in blocks:
        heap.deallocate(addr)
    c = heap.counters()
    assert c["scavenges"] > 0
    assert lists[thread_rec(heap, 0) + TT_SIZE] <= 64 << 10
    heap.allocate(16, thread=1)  # nothing left to claim or steal: the 512 KiB minimum
    assert lists[thread_rec(heap, 1) + 1] == 512 << 10
    audit(heap)


def test_large_objects_are_page_runs_and_give_pages_back():
    heap = make()
    words = heap.state[0]
    addr = heap.allocate(300_000)
    assert addr % PAGE == 0 and heap.live_blocks()[addr] == 37 * PAGE
    assert heap.counters()["large_allocs"] == 1
    free_before = int(words[tcmalloc.PH + PH_FREE_PAGES])
    footprint = heap.footprint
    heap.deallocate(addr)
    assert words[tcmalloc.PH + PH_FREE_PAGES] == free_before + 37
    assert heap.counters()["large_frees"] == 1
    assert heap.allocate(290_000) == addr and heap.footprint == footprint
    assert heap.allocate(262_145) != addr  # just above kMaxSize: large, 33 pages
    assert heap.counters()["large_allocs"] == 3


def test_footprint_grows_by_the_grow_quantum_and_metadata_counts_threads():
    heap = make(threads=8)
    meta = heap.metadata_bytes
    heap.allocate(8)
    assert heap.footprint == 1 << 20 and heap.counters()["os_grows"] == 1
    per_thread = tcmalloc.THREAD_CACHE_HEADER_BYTES + 49 * tcmalloc.FREE_LIST_BYTES
    spans_and_map = 2 * tcmalloc.SPAN_BYTES + 128 * tcmalloc.PAGEMAP_ENTRY_BYTES  # the span, the free run, the map
    assert heap.metadata_bytes - meta == per_thread + spans_and_map
    before = heap.metadata_bytes
    heap.allocate(8, thread=5)
    assert heap.metadata_bytes == before + per_thread
    small = make(grow_bytes=PAGE)
    small.allocate(8)
    assert small.footprint == PAGE


def test_out_of_memory_leaves_the_heap_usable():
    heap = make(capacity=1 << 17)  # 16 pages
    blocks = []
    with pytest.raises(allocators.OutOfMemory):
        for _ in range(1000):
            blocks.append(heap.allocate(4000))
    heap.deallocate(blocks.pop())
    blocks.append(heap.allocate(4000))
    audit(heap)


def test_realloc_keeps_the_block_while_it_is_at_least_half_used():
    rows = [(OP_ALLOC, 0, 100, 0), (OP_REALLOC, 0, 60, 0), (OP_REALLOC, 0, 50, 0), (OP_REALLOC, 0, 4000, 0),
            (OP_FREE, 0, 0, 0)]
    heap = make()
    log = heap.replay(from_rows(rows))
    assert log.addr[1] == log.addr[0] and log.granted[1] == 112  # 60 >= 112 / 2
    assert log.addr[2] != log.addr[0] and log.granted[2] == 64  # 50 < 112 / 2: moved to the 64 B class
    assert log.granted[3] == 4096
    assert heap.counters()["reallocs_in_place"] == 1


@pytest.mark.parametrize("spec", ["tcmalloc", "tcmalloc:legacy", "tcmalloc:gperftools",
                                  "tcmalloc:transfer_cache=false,thread_cache_bytes=0"])
def test_random_operations_brute_force(spec):
    rng = np.random.default_rng(11)
    name, params = allocators.parse_spec(spec)
    heap = make(threads=4, capacity=64 << 20, **params)
    checker = HeapChecker(heap.capacity, 8)
    live: list[int] = []
    for step in range(3000):
        thread = int(rng.integers(4))
        if live and rng.random() < 0.48:
            addr = live.pop(int(rng.integers(len(live))))
            heap.deallocate(addr, thread)
            checker.remove(addr, f"step {step}")
        else:
            kind = rng.random()
            size = int(rng.integers(1, 300)) if kind < 0.8 else int(rng.integers(300, 40_000))
            if kind > 0.99:
                size = int(rng.integers(200_000, 600_000))
            addr = heap.allocate(size, thread)
            granted = heap.live_blocks()[addr]
            checker.add(addr, granted, size, f"step {step}")
            if size <= tcmalloc.MAX_SIZE:
                assert granted == TABLES[heap.params["table"]].size[cls_of(heap, size)]
            else:
                assert addr % PAGE == 0 and granted == (size + PAGE - 1) // PAGE * PAGE
            live.append(addr)
        if step % 1000 == 999:
            audit(heap)
    audit(heap)
    c = heap.counters()
    assert c["allocs"] - c["frees"] == len(live)
    assert c["thread_cache_hits"] + c["thread_cache_misses"] + c["large_allocs"] == c["allocs"]


def test_bad_parameters():
    for bad in ({"table": "huge"}, {"thread_cache_bytes": -1}, {"grow_bytes": 1000}, {"transfer_cache": "maybe"}):
        with pytest.raises(allocators.BadParameter, match="tcmalloc"):
            make(**bad)
    with pytest.raises(allocators.BadParameter, match="page"):
        tcmalloc.TCMalloc(4096)
