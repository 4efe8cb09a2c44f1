"""The mimalloc model: 2.0's bins, sharded page free lists, lazy extension, pages, segments, huge segments, purge."""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from allocators import mimalloc
from allocators.mimalloc_layout import (
    INFO_SLICES,
    OS_PAGE_SIZE,
    SEGMENT_INFO_BYTES,
    SEGMENT_SIZE,
    SLICE_SIZE,
    SMALL_BLOCK_OFFSET,
)
from allocators.shared import mimalloc_bins as bins
from bench.sizeclasses import render_csv
from workloads.trace import OP_ALLOC, OP_FREE, from_rows

CAPACITY = 256 << 20
KiB = 1024
MiB = 1024 * KiB
#: The resident pages of a normal segment's info: the header with the first slice records, and the page of
#: the last slice's record (a free span writes its first and last record).
SEGMENT_INFO_RESIDENT = 2 * OS_PAGE_SIZE
#: A huge segment's: the header and its two records.
HUGE_INFO_RESIDENT = OS_PAGE_SIZE


def make(threads=4, capacity=CAPACITY, **params):
    return mimalloc.MiMalloc(capacity, max_threads=threads, **params)


def source_bin_sizes() -> list[int]:
    """The bin sizes the 2.0 source gives (init.c's QNULL table under MI_ALIGN2W): even words up to 8 words,
    then 4 bins per doubling: 2^k * 5/4, 6/4, 7/4, 8/4 words up to MI_MEDIUM_OBJ_SIZE_MAX."""
    sizes = [8, 16, 32, 48, 64]
    k = 3  # 8 words = 2^3
    while sizes[-1] < 128 * KiB:
        words = 1 << k
        sizes += [8 * (words * q // 4) for q in (5, 6, 7, 8)]
        k += 1
    return sizes


# -------------------------------------------------------------------------------- bins
def test_bins_are_the_source_bins():
    expected = source_bin_sizes()
    assert expected[-1] == 128 * KiB and expected[5:9] == [80, 96, 112, 128]
    assert [int(bins.BIN_SIZE[b]) for b in bins.USED_BINS] == expected
    # _mi_bin's numbering: 8 B is bin 1, the exact word bins up to 8 words, then 4 per doubling
    assert bins.bin_of_wsize(1) == 1 and bins.bin_of_wsize(8) == 8 and bins.bin_of_wsize(9) == 9
    assert bins.bin_of_wsize(16 * KiB) == 52 and bins.bin_of_wsize(16 * KiB + 1) == bins.BIN_HUGE == 73


def test_granted_is_the_smallest_bin_that_fits_for_every_small_and_medium_size():
    expected = np.array(source_bin_sizes())
    sizes = np.arange(1, bins.MEDIUM_OBJ_SIZE_MAX + 1)
    smallest = expected[np.searchsorted(expected, sizes)]
    ours = bins.BIN_SIZE[bins.BIN_INDEX[(sizes + 7) >> 3]]
    assert np.array_equal(ours, smallest)


def test_the_kernel_lookup_matches_the_python_rule():
    heap = make()
    for size in (1, 7, 8, 9, 17, 24, 65, 1000, 1025, 16 * KiB, 16 * KiB + 1, 100_000, 128 * KiB):
        addr = heap.allocate(size)
        assert heap.live_blocks()[addr] == bins.granted_size(size) == bins.good_size(size)


@pytest.mark.parametrize("size, granted", [
    (128 * KiB + 1, 3 * SLICE_SIZE),  # 132 KiB rounded to 4 KiB, then to whole slices
    (512 * KiB, 512 * KiB),
    (512 * KiB + 1, 1 * MiB),  # above a medium page: whole 512 KiB units
    (8 * MiB + 1, 9 * MiB),  # _mi_os_good_alloc_size: 1 MiB steps from 8 MiB
    (16 * MiB, 16 * MiB),  # MI_LARGE_OBJ_SIZE_MAX: still a large page
    (16 * MiB + 1, 17 * MiB),  # huge segment
    (32 * MiB + 5, 36 * MiB),  # 4 MiB steps from 32 MiB
])
def test_large_and_huge_granted_sizes(size, granted):
    assert bins.granted_size(size) == granted


def test_sizeclasses_csv():
    lines = render_csv("mimalloc").splitlines()
    assert lines[0] == "bin,size,page_kind,page_bytes,blocks,tail_waste,max_waste_pct"
    assert len(lines) == 1 + len(source_bin_sizes())
    assert lines[1].startswith(f"1,8,small,65536,{(65536 - SMALL_BLOCK_OFFSET) // 8},")
    assert lines[-1].startswith("52,131072,medium,524288,4,0,")


# -------------------------------------------------------------------------------- pages
def test_lazy_extension_threads_4_kib_of_blocks_at_a_time():
    heap = make()
    first = heap.allocate(16)
    assert first % SLICE_SIZE == SMALL_BLOCK_OFFSET  # a small block's page starts 384 B in
    addrs = [first] + [heap.allocate(16) for _ in range(300)]
    assert addrs == [first + 16 * i for i in range(301)]  # address order, one page
    assert heap.counters()["extends"] == 2  # 256 blocks (4 KiB), then 256 more
    big = make()
    big.allocate(8 * KiB)
    assert big.counters()["extends"] == 1
    big_addrs = [big.allocate(8 * KiB) for _ in range(4)]
    assert big.counters()["extends"] == 2  # at least 4 blocks per extension (MI_MIN_EXTEND)
    assert len(set(a // SLICE_SIZE for a in big_addrs)) == 1


def test_local_frees_wait_on_local_free_until_collect():
    heap = make()
    a = heap.allocate(48)
    b = heap.allocate(48)
    heap.deallocate(a)
    c = heap.allocate(48)
    assert c not in (a, b)  # free still has blocks: a waits on local_free
    assert make().delays_reuse
    page_blocks = [heap.allocate(48) for _ in range(4096 // 48 - 3)]  # use up the first extension
    assert a not in page_blocks
    again = heap.allocate(48)  # free empty: collect moves local_free to free
    assert again == a
    counters = heap.counters()
    assert counters["frees"] == 1 and counters["remote_frees"] == 0 and counters["collects"] >= 1


def test_remote_frees_go_to_thread_free_and_are_collected_by_the_owner():
    heap = make()
    blocks = [heap.allocate(64, thread=0) for _ in range(4096 // 64)]  # exactly one extension
    for addr in blocks[:10]:
        heap.deallocate(addr, thread=1)
    counters = heap.counters()
    assert counters["remote_frees"] == 10 == counters["frees"]
    again = heap.allocate(64, thread=0)  # free empty: collect takes thread_free
    assert again in blocks[:10]
    other = heap.allocate(64, thread=1)  # thread 1 has its own heap and segment
    assert other // SEGMENT_SIZE != blocks[0] // SEGMENT_SIZE


def test_a_full_page_moves_to_the_full_queue_and_back_on_a_delayed_remote_free():
    heap = make()
    size = 16 * KiB  # 4 blocks per 64 KiB page, all threaded by the first extension
    first_page = [heap.allocate(size) for _ in range(4)]
    fifth = heap.allocate(size)  # the first page is full: to the full queue, a fresh page
    assert fifth // SLICE_SIZE != first_page[0] // SLICE_SIZE
    rest = [heap.allocate(size) for _ in range(3)]
    assert heap.counters()["full_moves"] >= 1
    heap.deallocate(first_page[2], thread=3)  # remote free into a full page: delayed
    assert heap.counters()["delayed_frees"] == 1
    assert heap.allocate(size) == first_page[2]  # the owner's generic path collects it
    assert len(set(rest)) == 3


def test_an_emptied_page_is_retired_if_alone_else_freed_and_segments_go_back():
    heap = make(purge="immediate")
    lone = heap.allocate(100)
    footprint = heap.footprint
    heap.deallocate(lone)
    assert heap.footprint == footprint and heap.counters()["pages_retired"] == 1  # kept for reuse
    large = heap.allocate(200 * KiB)
    heap.deallocate(large)  # large pages are freed at once, and purged at once with purge=immediate
    assert heap.counters()["pages_freed"] == 1
    assert heap.footprint == footprint


@pytest.mark.parametrize("retired_size, fresh_sizes", [
    # measured on libmimalloc 2.0.9 (clean-heap replayer, each size kept live): the lone 16 B page of the
    # replayer's warm-up malloc(16) / free is freed by the 9th fresh page, whose slice it becomes
    (16, (48, 208, 312, 1040, 136, 8, 472, 1600, 1024)),
    # a page of blocks above 16 KiB (a 512 KiB medium page), emptied, is freed by the 3rd
    (20000, (48, 208, 312)),
])
def test_a_retired_page_is_freed_by_the_heaps_9th_fresh_page_or_3rd_above_16_kib(retired_size, fresh_sizes):
    heap = make(purge="never")
    lone = heap.allocate(retired_size)
    retired_slice = lone // SLICE_SIZE
    heap.deallocate(lone)
    assert heap.counters()["pages_retired"] == 1
    addrs = [heap.allocate(size) for size in fresh_sizes]
    assert heap.counters()["pages_allocated"] == 1 + len(fresh_sizes)  # every size a bin of its own
    assert [a // SLICE_SIZE == retired_slice for a in addrs] == [False] * (len(fresh_sizes) - 1) + [True]
    assert heap.counters()["pages_freed"] == 1


def test_footprint_counts_the_os_pages_written_not_whole_slices():
    heap = make()
    heap.allocate(64)  # one extension: 64 blocks of 64 B from 384 B into the slice, so its first two OS pages
    assert heap.footprint == SEGMENT_INFO_RESIDENT + 2 * OS_PAGE_SIZE
    assert heap.counters()["slice_commits"] == INFO_SLICES + 1
    heap = make()
    # 16 KiB blocks: an extension of 4 writes each block's first OS page; the program writes the block it got
    # over its requested bytes (four OS pages, the first already resident)
    heap.allocate(16 * KiB - 100)
    links = 4 * OS_PAGE_SIZE
    assert heap.footprint == SEGMENT_INFO_RESIDENT + links + 3 * OS_PAGE_SIZE
    heap.allocate(16 * KiB - 100)
    assert heap.footprint == SEGMENT_INFO_RESIDENT + links + 2 * 3 * OS_PAGE_SIZE
    heap.allocate(100)  # a block of up to 4 KiB: its pages were resident from its extension
    assert heap.footprint == SEGMENT_INFO_RESIDENT + links + 2 * 3 * OS_PAGE_SIZE + 2 * OS_PAGE_SIZE


def test_purge_never_keeps_freed_slices_committed():
    for purge, kept in (("immediate", False), ("never", True)):
        heap = make(purge=purge)
        addr = heap.allocate(1 * MiB)
        peak = heap.footprint
        assert peak == SEGMENT_INFO_RESIDENT + 1 * MiB
        heap.deallocate(addr)
        assert heap.counters()["segments_freed"] == 1  # its only page gone: the segment is freed
        assert (heap.footprint == peak) is kept
        if not kept:
            assert heap.footprint == 0 and heap.metadata_bytes == HEAP_ONLY
    assert allocators.create("mimalloc", CAPACITY).params["purge"] == "never"
    assert allocators.create("mimalloc", CAPACITY, preset="immediate").params["purge"] == "immediate"


HEAP_ONLY = mimalloc.HEAP_BYTES


def test_freed_spans_coalesce():
    heap = make()
    a, b, c = (heap.allocate(192 * KiB) for _ in range(3))  # three 3-slice pages side by side
    assert b == a + 3 * SLICE_SIZE and c == b + 3 * SLICE_SIZE
    keep = heap.allocate(192 * KiB)
    heap.deallocate(b)
    heap.deallocate(a)
    heap.deallocate(c)
    assert heap.allocate(448 * KiB) == a  # 7 slices: only the three freed pages joined into one span hold it
    assert keep == c + 3 * SLICE_SIZE


def test_huge_requests_get_their_own_segment():
    heap = make(purge="immediate")
    small = heap.allocate(64)
    huge = heap.allocate(20 * MiB)
    assert heap.live_blocks()[huge] == 20 * MiB
    assert huge % SEGMENT_SIZE == INFO_SLICES * SLICE_SIZE and huge // SEGMENT_SIZE != small // SEGMENT_SIZE
    before = heap.footprint
    heap.deallocate(huge, thread=2)  # any thread frees a huge block at once
    assert heap.counters()["huge_frees"] == 1 and heap.counters()["remote_frees"] == 0
    assert before - heap.footprint == HUGE_INFO_RESIDENT + 20 * MiB
    assert heap.metadata_bytes == SEGMENT_INFO_BYTES + HEAP_ONLY


def test_a_huge_block_spanning_frames():
    heap = make()
    addr = heap.allocate(40 * MiB)
    assert heap.live_blocks()[addr] == 40 * MiB
    heap.deallocate(addr)
    assert heap.allocate(40 * MiB) == addr


def test_metadata_counts_segments_and_heaps():
    heap = make()
    heap.allocate(64, thread=0)
    heap.allocate(64, thread=1)
    assert heap.metadata_bytes == 2 * (SEGMENT_INFO_BYTES + HEAP_ONLY)


def test_short_address_space_borrows_other_threads_spans():
    heap = make(capacity=8 * MiB)  # one short segment for every thread
    a = heap.allocate(64, thread=0)
    b = heap.allocate(64, thread=1)
    assert a // SLICE_SIZE != b // SLICE_SIZE and heap.counters()["borrowed_spans"] == 1


def test_replay_reuses_remotely_freed_memory_in_producer_consumer():
    rows = []
    for round_ in range(200):
        base = round_ * 100
        rows += [(OP_ALLOC, base + i, 256, 0) for i in range(100)]
        rows += [(OP_FREE, base + i, 0, 1) for i in range(100)]
    trace = from_rows(rows)
    heap = allocators.create("mimalloc", mimalloc.MiMalloc.capacity_for_trace(trace, {}), max_threads=2)
    log = heap.replay(trace)
    assert log.peak_footprint <= 2 * INFO_SLICES * SLICE_SIZE + 4 * SLICE_SIZE


def test_bad_purge_is_refused():
    with pytest.raises(allocators.BadParameter, match="purge"):
        make(purge="sometimes")


def test_a_new_segment_first_reclaims_the_emptied_pages_of_other_heaps():
    heap = make()
    blocks = [heap.allocate(64, thread=1) for _ in range(10)]
    for addr in blocks:
        heap.deallocate(addr, thread=2)  # every block of thread 1's page now on its thread_free
    assert heap.counters()["segments_freed"] == 0
    live = heap.allocate(64, thread=3)  # thread 3 needs a segment: the reclaim pass frees thread 1's page and segment
    counters = heap.counters()
    assert counters["reclaim_passes"] == 1 and counters["reclaimed_pages"] == 1 and counters["segments_freed"] == 1
    # thread 3's segment info and its page's first extension (64 blocks of 64 B from 384 B in: two OS pages)
    assert heap.footprint == SEGMENT_INFO_RESIDENT + 2 * OS_PAGE_SIZE
    heap.allocate(64, thread=0)  # another pass: thread 3's page holds a live block, so it stays
    assert heap.counters()["reclaim_passes"] == 2 and heap.counters()["reclaimed_pages"] == 1
    assert live in heap.live_blocks()


def audit(heap):
    """Walk every segment: each page's used - |thread_free| is its live blocks; free spans and pages tile it."""
    from allocators import mimalloc_layout as L

    words, pages, segs = heap.state[L.I_WORDS], heap.state[L.I_PAGES], heap.state[L.I_SEGS]
    live_per_page: dict[int, int] = {}
    slice_page = heap.state[L.I_SLICE_PAGE]
    for addr in heap.live_blocks():
        page = int(slice_page[addr >> L.SLICE_SHIFT])
        live_per_page[page] = live_per_page.get(page, 0) + 1
    seen = set()
    for f in range(int(words[L.S_N_FRAMES])):
        if segs[f * L.SG_STRIDE + L.SG_KIND] != L.F_NORMAL:
            continue
        s = (f << L.FRAME_SHIFT) + L.INFO_SLICES
        end = int(segs[f * L.SG_STRIDE + L.SG_END])
        pages_in_use = 0
        while s < end:
            rec = s << L.PG_SHIFT
            n = int(pages[rec + L.PG_SLICES])
            assert n > 0
            if pages[rec + L.PG_KIND] != L.K_FREE_SPAN:
                pages_in_use += 1
                seen.add(s)
                assert pages[rec + L.PG_USED] - pages[rec + L.PG_THREAD_N] == live_per_page.get(s, 0), s
            s += n
        assert s == end and pages_in_use == segs[f * L.SG_STRIDE + L.SG_USED]
    assert set(live_per_page) - seen <= {p for p in live_per_page if pages[(p << L.PG_SHIFT) + L.PG_KIND] == L.K_HUGE}


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_the_pages_consistent(seed):
    rng = np.random.default_rng(seed)
    heap = make(capacity=128 * MiB)
    live: list[int] = []
    for step in range(3000):
        if live and rng.random() < 0.45:
            addr = live.pop(int(rng.integers(len(live))))
            heap.deallocate(addr, thread=int(rng.integers(4)))
        else:
            size = int(rng.choice([rng.integers(1, 256), rng.integers(1, 20_000), rng.integers(100_000, 600_000)],
                                  p=[0.7, 0.28, 0.02]))
            try:
                live.append(heap.allocate(size, thread=int(rng.integers(4))))
            except allocators.OutOfMemory:
                pass
        if step % 500 == 499:
            audit(heap)
    audit(heap)
