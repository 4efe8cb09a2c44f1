"""Tests of the region (arena) allocator: bump in per-thread chunks, whole-chunk release and reuse, large runs."""

from __future__ import annotations

import numpy as np
import pytest

from allocators import BadParameter, OutOfMemory, UnsupportedOperation, region
from allocators.conformance import check_replay
from bench.harness import build_for_trace
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, Trace, from_rows

KiB, MiB = 1 << 10, 1 << 20
CHUNK = 4 * KiB


def make(capacity: int = 1 * MiB, chunk_size: int = CHUNK, max_threads: int = 4) -> region.Region:
    return region.Region(capacity, max_threads=max_threads, chunk_size=chunk_size)


def alloc(ident: int, size: int, thread: int = 0) -> tuple[int, int, int, int]:
    return (OP_ALLOC, ident, size, thread)


def free(ident: int, thread: int = 0) -> tuple[int, int, int, int]:
    return (OP_FREE, ident, 0, thread)


def final_live(trace: Trace, log) -> dict[int, int]:
    """Address -> granted of every object live at the end of a replay."""
    live: dict[int, tuple[int, int]] = {}
    for row in range(len(trace)):
        op, ident = int(trace.op[row]), int(trace.obj[row])
        if op == OP_FREE:
            del live[ident]
        elif op in (OP_ALLOC, OP_REALLOC):
            live[ident] = (int(log.addr[row]), int(log.granted[row]))
    return dict(live.values())


def region_invariants(allocator: region.Region, live: dict[int, int]) -> None:
    """The chunk records agree with the live blocks: counts (+1 pin per current chunk), runs, free list."""
    words, records = allocator.state
    shift = int(words[region.S_SHIFT])
    high_water = int(words[region.S_HIGH_WATER])
    assert allocator.footprint == high_water << shift <= allocator.capacity
    expected = np.zeros(high_water, np.int64)
    run_of: dict[int, int] = {}
    for addr, granted in live.items():
        chunk = addr >> shift
        expected[chunk] += 1
        if granted > 1 << shift:
            assert addr == chunk << shift and granted % (1 << shift) == 0
            run_of[chunk] = granted >> shift
        else:
            assert (addr + granted - 1) >> shift == chunk, f"block {addr}+{granted} crosses a chunk boundary"
    for thread in range(allocator.max_threads):
        top, end = int(words[region.S_THREADS + 2 * thread]), int(words[region.S_THREADS + 2 * thread + 1])
        if end:
            current = (end - 1) >> shift
            assert end == (current + 1) << shift and current << shift <= top <= end
            expected[current] += 1  # the pin
    free_list = []
    chunk = int(words[region.S_FREE_HEAD])
    previous = region.NO_CHUNK
    while chunk != region.NO_CHUNK:
        assert int(records[4 * chunk + region.R_PREV]) == previous
        free_list.append(chunk)
        previous, chunk = chunk, int(records[4 * chunk + region.R_NEXT])
    assert len(free_list) == len(set(free_list))
    tails = set()
    for head, run in run_of.items():
        assert int(records[4 * head + region.R_RUN]) == run
        tails.update(range(head + 1, head + run))
    in_use = 0
    for chunk in range(high_water):
        live_count = int(records[4 * chunk + region.R_LIVE])
        if chunk in tails:
            assert live_count == region.RUN_TAIL
            in_use += 1
        elif expected[chunk] == 0:
            assert live_count == region.FREE_CHUNK and chunk in free_list, f"empty chunk {chunk} not released"
        else:
            assert live_count == expected[chunk], f"chunk {chunk}: count {live_count}, expected {expected[chunk]}"
            assert chunk not in free_list
            in_use += 1
    assert int(words[region.S_IN_USE]) == in_use
    assert allocator.metadata_bytes == in_use * region.CHUNK_RECORD_BYTES


# ----------------------------------------------------------------- basics
def test_bump_inside_a_chunk_then_the_next_chunk():
    allocator = make()
    addrs = [allocator.allocate(1000) for _ in range(5)]
    assert addrs == [0, 1008, 2016, 3024, CHUNK]  # the 5th does not fit in the 1072 B left of chunk 0
    assert allocator.live_blocks()[0] == 1008
    assert allocator.footprint == 2 * CHUNK
    assert allocator.metadata_bytes == 2 * region.CHUNK_RECORD_BYTES
    assert allocator.counters()["chunks_taken"] == 2


def test_each_thread_bumps_in_its_own_chunk():
    allocator = make()
    a0 = allocator.allocate(100, thread=0)
    a1 = allocator.allocate(100, thread=1)
    b0 = allocator.allocate(100, thread=0)
    b1 = allocator.allocate(100, thread=1)
    assert (a0, b0) == (0, 112)
    assert (a1, b1) == (CHUNK, CHUNK + 112)
    assert allocator.allocate(16, thread=3) == 2 * CHUNK


def test_deallocate_is_unsupported_in_the_per_call_api():
    allocator = make()
    with pytest.raises(UnsupportedOperation, match="free"):
        allocator.deallocate(allocator.allocate(64))


# ------------------------------------------------------------ chunk reuse
def test_a_retired_chunk_is_reused_once_all_its_objects_died():
    rows = [alloc(i, 1000) for i in range(4)]  # chunk 0
    rows += [alloc(10 + i, 1000) for i in range(4)]  # chunk 1 (current)
    rows += [free(i) for i in range(4)]  # chunk 0 empties: released
    rows += [alloc(20 + i, 1000) for i in range(4)]  # chunk 1 is full: the next chunk is chunk 0 again
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert list(log.addr[12:16]) == [0, 1008, 2016, 3024]
    counters = allocator.counters()
    assert counters["chunks_taken"] == 2 and counters["chunks_released"] == 1 and counters["chunk_reuses"] == 1
    assert log.peak_footprint == 2 * CHUNK
    region_invariants(allocator, final_live(trace, log))


def test_a_chunk_with_one_survivor_is_not_released():
    rows = [alloc(i, 1000) for i in range(4)] + [alloc(10 + i, 1000) for i in range(4)]
    rows += [free(i) for i in range(3)]  # object 3 keeps chunk 0 alive
    rows += [alloc(20 + i, 1000) for i in range(4)]
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert list(log.addr[11:15]) == [2 * CHUNK, 2 * CHUNK + 1008, 2 * CHUNK + 2016, 2 * CHUNK + 3024]
    assert allocator.counters()["chunks_released"] == 0
    region_invariants(allocator, final_live(trace, log))


def test_the_current_chunk_is_pinned_and_rewound_when_all_its_objects_died():
    rows = [alloc(i, 1000) for i in range(4)] + [free(i) for i in range(4)]  # chunk 0 stays current
    rows += [alloc(10 + i, 1000) for i in range(4)]  # chunk 0 is full but empty: rewound, not a new chunk
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert list(log.addr[8:]) == [0, 1008, 2016, 3024]
    counters = allocator.counters()
    assert counters["chunks_taken"] == 1 and counters["chunk_reuses"] == 1 and counters["chunks_released"] == 1
    assert log.peak_footprint == CHUNK
    region_invariants(allocator, final_live(trace, log))


def test_a_chunk_freed_by_another_thread_goes_to_the_free_list_for_anybody():
    rows = [alloc(i, 2000, thread=0) for i in range(3)]  # chunk 0 (2 objects), chunk 1 (current of thread 0)
    rows += [free(0, thread=2), free(1, thread=3)]  # remote frees empty chunk 0
    rows += [alloc(10, 100, thread=1)]  # thread 1's first chunk: chunk 0 from the free list
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert int(log.addr[-1]) == 0
    region_invariants(allocator, final_live(trace, log))


# ------------------------------------------------------------ large runs
def test_large_requests_get_a_run_of_whole_chunks_reused_after_it_dies():
    allocator = make()
    small = allocator.allocate(100)
    big = allocator.allocate(3 * CHUNK + 1)
    assert big == CHUNK and allocator.live_blocks()[big] == 4 * CHUNK
    assert allocator.counters()["large_allocs"] == 1
    assert allocator.footprint == 5 * CHUNK
    rows = [alloc(0, 100), alloc(1, 3 * CHUNK + 1), free(1), alloc(2, 2 * CHUNK + 5), alloc(3, 3 * CHUNK)]
    trace = from_rows(rows)
    log = allocator.replay(trace)
    # the 4-chunk run is released; a 3-chunk run fits at its start, the next one takes the free chunk 4
    # and two fresh ones
    assert list(log.addr[:5]) == [0, CHUNK, CHUNK, CHUNK, 4 * CHUNK]
    assert list(log.granted[:5]) == [112, 4 * CHUNK, 0, 3 * CHUNK, 3 * CHUNK]
    assert small == 0 and log.peak_footprint == 7 * CHUNK
    region_invariants(allocator, final_live(trace, log))


def test_a_large_run_extends_free_chunks_at_the_top_with_fresh_ones():
    rows = [alloc(0, 100), alloc(1, 2 * CHUNK), free(1), alloc(2, 3 * CHUNK)]
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert int(log.addr[3]) == CHUNK  # chunks 1-2 free at the top, one fresh chunk added
    assert log.peak_footprint == 4 * CHUNK
    region_invariants(allocator, final_live(trace, log))


def test_released_run_chunks_serve_ordinary_chunks():
    rows = [alloc(0, 100), alloc(1, 2 * CHUNK), free(1), alloc(2, 100, thread=1), alloc(3, 100, thread=2)]
    trace = from_rows(rows)
    allocator = make()
    log = allocator.replay(trace)
    assert sorted(int(a) for a in log.addr[3:]) == [CHUNK, 2 * CHUNK]
    assert log.peak_footprint == 3 * CHUNK
    region_invariants(allocator, final_live(trace, log))


# ------------------------------------------------------------- free, realloc
def test_free_releases_every_chunk_and_keeps_the_footprint():
    allocator = make()
    for thread in range(3):
        for _ in range(10):
            allocator.allocate(700, thread)
    allocator.allocate(2 * CHUNK)
    footprint = allocator.footprint
    allocator.free()
    assert allocator.footprint == footprint and allocator.metadata_bytes == 0
    assert allocator.live_blocks() == {}
    region_invariants(allocator, {})
    assert allocator.allocate(64, thread=2) == 0  # lowest chunk first
    assert allocator.allocate(64, thread=1) == CHUNK
    assert allocator.footprint == footprint


def test_realloc_grows_the_newest_block_in_place():
    rows = [alloc(0, 100), alloc(1, 100), (OP_REALLOC, 1, 900, 0), (OP_REALLOC, 0, 200, 0), alloc(2, 16)]
    log = make().replay(from_rows(rows))
    assert list(log.addr) == [0, 112, 112, 1024, 1232]
    assert list(log.granted) == [112, 112, 912, 208, 16]


def test_exhaustion_is_out_of_memory_and_leaves_the_heap_usable():
    allocator = make(capacity=8 * CHUNK)
    with pytest.raises(OutOfMemory):
        for _ in range(100):
            allocator.allocate(2000)
    with pytest.raises(OutOfMemory):
        allocator.allocate(9 * CHUNK)
    allocator.free()
    assert allocator.allocate(8 * CHUNK) == 0


@pytest.mark.parametrize(
    "params, named",
    [({"chunk_size": 3000}, "chunk_size"), ({"chunk_size": 1024}, "chunk_size"), ({"chunk_size": "big"}, "chunk_size"),
     ({"chunk_size": True}, "chunk_size"), ({"chunks": 4}, "unknown")],
)
def test_bad_parameters(params, named):
    with pytest.raises(BadParameter, match=named):
        region.Region(1 * MiB, **params)


def test_chunk_size_is_capped_at_the_capacity():
    allocator = region.Region(1 * MiB)
    assert allocator.params["chunk_size"] == 1 * MiB
    assert region.Region(64 * MiB).params["chunk_size"] == region.DEFAULT_CHUNK_SIZE


def test_capacity_for_trace_fits_a_multithreaded_workload_with_default_chunks():
    trace = catalog.make("lognormal:threads=4", n_ops=20_000, seed=1)
    allocator = build_for_trace("region", trace)
    log = allocator.replay(trace)
    assert log.peak_footprint <= allocator.capacity
    assert log.counters["frees"] == trace.counts()["free"] > 0


# -------------------------------------------------------------- brute force
def random_trace(seed: int, n_rows: int = 3000, threads: int = 4) -> Trace:
    rng = np.random.default_rng(seed)
    rows = []
    live: list[int] = []
    next_id = 0
    for _ in range(n_rows):
        choice = rng.random()
        thread = int(rng.integers(threads))
        if choice < 0.5 or not live:
            kind = rng.random()
            size = int(rng.integers(1, 600)) if kind < 0.85 else int(rng.integers(600, 4096)) if kind < 0.97 \
                else int(rng.integers(4097, 20_000))
            rows.append(alloc(next_id, size, thread))
            live.append(next_id)
            next_id += 1
        elif choice < 0.93:
            rows.append(free(live.pop(int(rng.integers(len(live)))), thread))
        else:
            rows.append((OP_REALLOC, live[int(rng.integers(len(live)))], int(rng.integers(1, 3000)), thread))
    return from_rows(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_replay_no_overlap_and_consistent_records(seed):
    trace = random_trace(seed)
    allocator = make(capacity=16 * MiB)
    log = allocator.replay(trace)
    check_replay(allocator, trace, log)  # no overlap, inside the space, aligned, granted >= requested
    region_invariants(allocator, final_live(trace, log))
    counters = allocator.counters()
    assert counters["chunk_reuses"] > 0 and counters["large_allocs"] > 0
    # every prefix too: replay the first rows and check the records there
    for cut in (500, 1500):
        prefix = Trace(trace.op[:cut], trace.obj[:cut], trace.size[:cut], trace.thread[:cut])
        log = allocator.replay(prefix)
        region_invariants(allocator, final_live(prefix, log))


def test_reserve_shortens_every_chunk_and_sends_larger_requests_to_a_run():
    """chunk 4 KiB, reserve 1 KiB: 3 KiB usable; a 4th 1 KiB block starts the next chunk, 3088 B takes a run."""
    allocator = region.Region(1 * MiB, max_threads=1, chunk_size=CHUNK, reserve=1024)
    trace = from_rows([alloc(i, 1024) for i in range(4)] + [alloc(9, 3072), alloc(10, 3088)])
    log = allocator.replay(trace)
    assert list(log.addr) == [0, 1024, 2048, 4096, 8192, 12288]
    assert list(log.granted) == [1024, 1024, 1024, 1024, 3072, 4096]
    assert log.counters["chunks_taken"] == 4 and log.counters["large_allocs"] == 1
    assert region.Region(1 * MiB, chunk_size=CHUNK).params["reserve"] == 0
    # a region smaller than its chunk keeps the reserve's share of the chunk
    assert region.Region(1 * MiB, chunk_size=8 * MiB, reserve=131120).params["reserve"] == 131120 // 8


@pytest.mark.parametrize("reserve", [-1, CHUNK // 2 + 1, "x", True])
def test_bad_reserve(reserve):
    with pytest.raises(BadParameter, match="reserve"):
        region.Region(1 * MiB, chunk_size=CHUNK, reserve=reserve)
