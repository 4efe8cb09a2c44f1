"""Tests of objpool, the sync.Pool-like pool in front of another allocator: slots, lists, GC, composition."""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from allocators import BadParameter, objpool, region  # noqa: F401  (registers region)
from allocators.conformance import HeapChecker, check_replay
from bench.harness import build_for_trace
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, Trace, from_rows

KiB, MiB = 1 << 10, 1 << 20
THREADS = 4


def make(capacity: int = 4 * MiB, **params) -> objpool.ObjPool:
    """A pool over buddy unless `inner` is given: buddy's granted sizes are easy to predict."""
    params.setdefault("inner", "buddy")
    return objpool.ObjPool(capacity, max_threads=THREADS, **params)


def inner_live(pool: objpool.ObjPool) -> int:
    counters = pool.counters()
    return counters["inner_allocs"] - counters["inner_frees"]


# ------------------------------------------------------------ slots and lists
def test_a_freed_object_comes_back_to_the_same_thread_from_its_private_slot():
    pool = make()
    addr = pool.allocate(100, thread=2)
    assert pool.live_blocks()[addr] == 112  # granted = the bucket size
    pool.deallocate(addr, thread=2)
    assert pool.pooled_objects() == 1 and inner_live(pool) == 1
    assert pool.allocate(97, thread=2) == addr  # same 16 B bucket
    counters = pool.counters()
    assert counters["hits_private"] == 1 and counters["misses"] == 1 and counters["puts"] == 1
    assert pool.allocate(100, thread=1) != addr


def test_round_pow2_pools_by_power_of_two():
    pool = make(round="pow2", max_pooled=1000)
    addr = pool.allocate(70)
    assert pool.live_blocks()[addr] == 128  # 70 B -> the 128 B bucket
    pool.deallocate(addr)
    assert pool.allocate(128) == addr and pool.counters()["hits_private"] == 1  # any request up to 128 B hits
    pool.deallocate(addr)
    other = pool.allocate(129)  # the 256 B bucket: a miss
    assert other != addr and pool.live_blocks()[other] == 256 and pool.counters()["misses"] == 2
    small = pool.allocate(8)
    assert pool.live_blocks()[small] == 16  # the smallest bucket stays 16 B
    big = pool.allocate(900)  # its power of two, 1024 B, is above max_pooled: bypassed
    assert pool.counters()["bypasses"] == 1 and pool.live_blocks()[big] == 1024  # buddy's own block
    with pytest.raises(BadParameter, match="round must be one of"):
        make(round="pow3")


def test_another_bucket_does_not_hit():
    pool = make()
    addr = pool.allocate(100)
    pool.deallocate(addr)
    assert pool.allocate(113) != addr
    assert pool.counters()["misses"] == 2


def test_shared_list_serves_other_threads_lifo_but_not_private_slots():
    pool = make()
    first, second, third = (pool.allocate(48, thread=0) for _ in range(3))
    for addr in (first, second, third):
        pool.deallocate(addr, thread=0)  # first -> thread 0's slot, second and third -> shared list
    assert pool.allocate(48, thread=1) == third
    assert pool.allocate(48, thread=3) == second
    fresh = pool.allocate(48, thread=1)  # the shared list is empty, thread 0's slot is private
    assert fresh not in (first, second, third)
    assert pool.allocate(48, thread=0) == first
    counters = pool.counters()
    assert (counters["hits_shared"], counters["hits_private"], counters["misses"]) == (2, 1, 4)
    hits = counters["hits_private"] + counters["hits_shared"] + counters["hits_victim"]
    assert hits / (hits + counters["misses"]) == pytest.approx(3 / 7)


def test_objects_freed_by_another_thread_go_to_that_threads_slot():
    pool = make()
    addr = pool.allocate(64, thread=0)
    pool.deallocate(addr, thread=3)
    assert pool.allocate(64, thread=0) != addr
    assert pool.allocate(64, thread=3) == addr


def test_overflow_beyond_the_shared_limit_is_freed_to_the_inner_allocator():
    pool = make(shared_limit=2)
    addrs = [pool.allocate(200) for _ in range(5)]
    assert inner_live(pool) == 5
    for addr in addrs:
        pool.deallocate(addr)
    counters = pool.counters()
    assert counters["puts"] == 5 and counters["overflows"] == 2  # 1 slot + 2 shared, 2 to the inner allocator
    assert inner_live(pool) == 3 and pool.pooled_objects() == 3


def test_large_requests_bypass_the_pool():
    pool = make(max_pooled=1 * KiB)
    addr = pool.allocate(1025)
    assert pool.live_blocks()[addr] == 2048  # buddy's power of two
    pool.deallocate(addr)
    counters = pool.counters()
    assert counters["bypasses"] == 1 and counters["puts"] == 0 and inner_live(pool) == 0
    small = pool.allocate(1024)
    assert pool.live_blocks()[small] == 1024 and pool.counters()["misses"] == 1


# ------------------------------------------------------------------- GC
def test_gc_moves_the_pool_to_the_victim_cache_then_frees_it_to_the_inner_allocator():
    pool = make(max_pooled=1 * KiB, clear_every=8 * KiB)
    addrs = [pool.allocate(64, thread=t) for t in range(3)]
    for thread, addr in enumerate(addrs):
        pool.deallocate(addr, thread)
    assert inner_live(pool) == 3 and pool.pooled_objects() == 3
    pool.allocate(8000)  # 8 KiB from the inner allocator: a GC; pooled objects move to the victim lists
    assert pool.counters()["clears"] == 1 and inner_live(pool) == 4 and pool.pooled_objects() == 3
    assert pool.allocate(64, thread=3) in addrs  # a victim hit
    assert pool.counters()["hits_victim"] == 1
    pool.allocate(8000)  # the second GC frees the two victims nobody took
    assert pool.counters()["clears"] == 2 and pool.pooled_objects() == 0
    assert inner_live(pool) == 3  # the two 8000 B blocks and the 64 B object taken back


def test_gc_without_victim_cache_frees_everything_at_once():
    pool = make(max_pooled=1 * KiB, clear_every=8 * KiB, victim=False)
    addrs = [pool.allocate(64) for _ in range(4)]
    for addr in addrs:
        pool.deallocate(addr)
    pool.allocate(8000)
    assert pool.counters()["clears"] == 1 and pool.pooled_objects() == 0 and inner_live(pool) == 1
    assert pool.counters()["inner_frees"] == 4


def test_gc_counts_bytes_from_the_inner_allocator_only():
    pool = make(clear_every=4 * KiB)
    addr = pool.allocate(1000)  # buddy grants 1 KiB
    for _ in range(50):
        pool.deallocate(addr)
        addr = pool.allocate(1000)  # private slot hits allocate nothing from the inner allocator
    assert pool.counters()["clears"] == 0
    for _ in range(3):
        pool.allocate(1000)
    assert pool.counters()["clears"] == 1


def test_clear_every_zero_never_clears():
    pool = make(16 * MiB, clear_every=0)  # 200 misses of 32 KiB: past the default 4 MiB
    for _ in range(200):
        pool.deallocate(pool.allocate(20_000))
        pool.allocate(20_000)
    assert pool.counters()["clears"] == 0


# --------------------------------------------------------- free, stats, spec
def test_free_empties_the_pools_and_resets_the_inner_allocator():
    pool = make()
    addrs = [pool.allocate(300, thread=t % THREADS) for t in range(12)]
    for addr in addrs[:8]:
        pool.deallocate(addr)
    footprint = pool.footprint
    pool.free()
    assert pool.pooled_objects() == 0 and pool.live_blocks() == {}
    assert pool.footprint == footprint
    assert pool.allocate(300) == min(addrs)


def test_footprint_and_metadata_are_the_inner_allocators_plus_the_pools():
    pool = make(victim=False)
    inner = allocators.create("buddy", 4 * MiB, max_threads=THREADS)
    for allocator in (pool, inner):
        allocator.allocate(100)
        allocator.allocate(5000)
    per_bucket = THREADS * objpool.PRIVATE_SLOT_BYTES + objpool.LIST_HEADER_BYTES
    assert pool.footprint == inner.footprint
    assert pool.metadata_bytes == inner.metadata_bytes + 2 * per_bucket
    first, second = pool.allocate(100), pool.allocate(100)
    pool.deallocate(first)
    pool.deallocate(second)  # one private slot, one shared-list entry
    inner_metadata = pool.inner.metadata_bytes  # pool.inner shows the inner heap the pool works on
    assert pool.metadata_bytes == inner_metadata + 2 * per_bucket + objpool.LIST_ENTRY_BYTES
    assert pool.allocate(100) == first and pool.allocate(100) == second
    assert pool.metadata_bytes == inner_metadata + 2 * per_bucket


def test_spec_strings_and_validation():
    pool = allocators.create("objpool:inner=buddy:min_block=16+growth=top,shared_limit=8", 1 * MiB)
    assert pool.inner.params["min_block"] == 16 and pool.inner.params["growth"] == "top"
    assert pool.params["shared_limit"] == 8
    assert allocators.create("objpool:nogc", 1 * MiB).params["clear_every"] == 0
    for inner, match in [
        ("nosuch", "unknown allocator"), ("objpool", "itself"), ("stack", "LIFO"),
        ("buddy:min_block=3", "min_block"), ("buddy:colour=red", "colour"), (17, "spec string"),
    ]:
        with pytest.raises(BadParameter, match=match):
            make(inner=inner)
    for params, named in [
        ({"max_pooled": 8}, "max_pooled"), ({"max_pooled": 1 << 30}, "max_pooled"), ({"shared_limit": -1}, "shared"),
        ({"clear_every": "often"}, "clear_every"), ({"victim": "yes"}, "victim"), ({"depth": 2}, "unknown"),
    ]:
        with pytest.raises(BadParameter, match=named):
            make(**params)


def test_params_for_trace_fill_the_inner_allocators_parameters():
    trace = from_rows([(OP_ALLOC, 0, 700, 0), (OP_ALLOC, 1, 100, 0), (OP_FREE, 0, 0, 0)])
    filled = objpool.ObjPool.params_for_trace(trace, {"inner": "pool"})
    assert filled == {"inner": "pool:block_size=704"}
    assert objpool.ObjPool.params_for_trace(trace, {}) == {}
    pool = build_for_trace("objpool:inner=pool", trace)
    assert pool.inner.params["block_size"] == 704
    assert pool.capacity >= allocators.get("pool").capacity_for_trace(trace, {"block_size": 704})


def test_inner_allocators_without_deallocate_still_serve_the_pool():
    pool = make(inner="linear")
    addr = pool.allocate(50)
    pool.deallocate(addr)
    assert pool.allocate(50) == addr


# -------------------------------------------------------------- brute force
# The default inner allocator, freelist:glibc, is exercised by the conformance suite (and is the slowest to compile).
INNERS = ["buddy", "pool:block_size=8192", "region:chunk_size=64KiB"]


def random_trace(seed: int, n_rows: int = 3000) -> Trace:
    rng = np.random.default_rng(seed)
    rows, live, next_id = [], [], 0
    hot_sizes = rng.integers(1, 2000, size=12)  # a few "types", so the pool hits
    for _ in range(n_rows):
        choice, thread = rng.random(), int(rng.integers(THREADS))
        if choice < 0.5 or not live:
            size = int(hot_sizes[rng.integers(12)]) if rng.random() < 0.8 else int(rng.integers(1, 8000))
            rows.append((OP_ALLOC, next_id, size, thread))
            live.append(next_id)
            next_id += 1
        elif choice < 0.95:
            rows.append((OP_FREE, live.pop(int(rng.integers(len(live)))), 0, thread))
        else:
            rows.append((OP_REALLOC, live[int(rng.integers(len(live)))], int(rng.integers(1, 3000)), thread))
    return from_rows(rows)


@pytest.mark.parametrize("inner", INNERS)
def test_random_replay_no_overlap_over_several_inner_allocators(inner):
    trace = random_trace(INNERS.index(inner))
    pool = make(16 * MiB, inner=inner, max_pooled=4 * KiB, shared_limit=1, clear_every=64 * KiB)
    log = pool.replay(trace)
    check_replay(pool, trace, log)
    counters = pool.counters()
    assert counters["hits_private"] and counters["hits_shared"] and counters["misses"] and counters["overflows"]
    assert counters["clears"] and counters["bypasses"]
    # the inner allocator holds exactly the live objects and the pooled ones
    live_at_end = trace.counts()["alloc"] - trace.counts()["free"]
    assert inner_live(pool) == live_at_end + pool.pooled_objects()


def test_random_per_call_no_overlap_and_the_inner_sees_pool_plus_live():
    rng = np.random.default_rng(7)
    pool = make(8 * MiB, max_pooled=2 * KiB, shared_limit=3, clear_every=32 * KiB)
    checker = HeapChecker(pool.capacity, pool.alignment)
    live: list[tuple[int, int]] = []
    for step in range(3000):
        thread = int(rng.integers(THREADS))
        if rng.random() < 0.55 or not live:
            size = int(rng.choice([16, 24, 100, 700, 2000, 5000])) - int(rng.integers(0, 8))
            addr = pool.allocate(size, thread)
            checker.add(addr, pool.live_blocks()[addr], size, f"step {step}")
            live.append((addr, size))
        else:
            addr, _ = live.pop(int(rng.integers(len(live))))
            pool.deallocate(addr, thread)
            checker.remove(addr, f"step {step}")
        assert inner_live(pool) == len(live) + pool.pooled_objects()
    assert pool.counters()["clears"] > 0 and pool.counters()["hits_victim"] > 0


def test_throughput_workload_runs_and_mostly_hits():
    trace = catalog.make("lognormal", n_ops=100_000, seed=3)  # the first ~10 000 allocations miss
    pool = build_for_trace("objpool:inner=buddy", trace)
    log = pool.replay(trace)
    counters = log.counters
    hits = counters["hits_private"] + counters["hits_shared"] + counters["hits_victim"]
    assert hits > 0.75 * (hits + counters["misses"])
    assert log.peak_footprint <= pool.capacity
