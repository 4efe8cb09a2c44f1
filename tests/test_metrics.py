"""Tests of the metric passes (bench.metrics) on tiny hand-checked traces, with exact expected values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocators
from allocators.log import AllocLog
from bench.harness import build_for_trace
from bench.metrics import METRICS, MetricInfo, compute_metrics, describe_metrics, locality, scalability, waste
from workloads import catalog
from workloads.stream import TraceChunk
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace, from_rows

A, F, R, X = OP_ALLOC, OP_FREE, OP_REALLOC, OP_ACCESS
MiB = 1 << 20


def hand_log(
    trace: Trace, addr: list[int], granted: list[int], timeline: list[tuple[int, ...]] | None = None,
    counters: dict[str, int] | None = None, peak_footprint: int = 0, peak_metadata: int = 0,
) -> AllocLog:
    """An AllocLog written by hand (addresses chosen by the test); live-byte peaks recomputed from the trace."""
    live_req = live_gr = peak_req = peak_gr = 0
    requested: dict[int, int] = {}
    given: dict[int, int] = {}
    for row in range(len(trace)):
        op, ident, size = int(trace.op[row]), int(trace.obj[row]), int(trace.size[row])
        if op == X:
            continue
        live_req -= requested.pop(ident, 0)
        live_gr -= given.pop(ident, 0)
        if op != F:
            requested[ident], given[ident] = size, granted[row]
            live_req, live_gr = live_req + size, live_gr + granted[row]
        peak_req, peak_gr = max(peak_req, live_req), max(peak_gr, live_gr)
    return AllocLog(
        allocator="hand", params={}, capacity=1 << 30,
        addr=np.asarray(addr, np.int64), granted=np.asarray(granted, np.int64),
        timeline=np.asarray(timeline or np.zeros((0, 5)), np.int64).reshape(-1, 5), sample_every=1,
        peak_footprint=peak_footprint, peak_live_requested=peak_req, peak_live_granted=peak_gr,
        peak_metadata_bytes=peak_metadata, final_footprint=peak_footprint, final_metadata_bytes=0,
        counters=dict(counters or {}),
    )


# A pool of 64 B blocks: carved at 0, 64, 128, ...; a LIFO free list hands the last freed block out first.
POOL_ROWS = [
    (A, 0, 40, 0),  # 0: addr 0
    (A, 1, 64, 0),  # 1: addr 64
    (A, 2, 10, 0),  # 2: addr 128
    (F, 1, 0, 0),   # 3: frees 64
    (A, 3, 20, 0),  # 4: addr 64 (hot)
    (F, 0, 0, 0),   # 5: frees 0
    (F, 2, 0, 0),   # 6: frees 128
    (A, 4, 64, 0),  # 7: addr 128 (hot)
    (A, 5, 32, 0),  # 8: addr 0 (hot)
    (A, 6, 16, 0),  # 9: addr 192, carved
]


@pytest.fixture(scope="module")
def pool_case():
    trace = from_rows(POOL_ROWS)
    log = allocators.create("pool", 1 << 20, block_size=64).replay(trace, sample_every=1)
    assert log.addr.tolist() == [0, 64, 128, 64, 64, 0, 128, 128, 0, 192]
    return trace, log


# ---------------------------------------------------------------------- waste
def test_waste_on_pool(pool_case):
    trace, log = pool_case
    found = waste.compute(trace, log)
    # live granted 64 128 192 128 192 128 64 128 192 256: peaks at row 9 with 20 + 64 + 32 + 16 = 132 requested
    assert found["internal_fragmentation"] == 1 - 132 / 256
    # live requested per row 40 104 114 50 70 30 20 84 116 132 (sum 760); granted sum 1472
    assert found["internal_fragmentation_mean"] == 1 - 760 / 1472
    assert found["overhead_factor"] == 256 / 132  # footprint: 4 blocks carved; live requested peaks at 132
    assert found["external_fragmentation"] == 0.0  # the footprint peaks at row 9, when all 4 blocks are live
    # footprint per row 64 128 192 192 192 192 192 192 192 256 (sum 1792) vs live granted (sum 1472)
    assert found["external_fragmentation_mean"] == 1 - 1472 / 1792
    assert found["peak_metadata_bytes"] == 16 and found["metadata_ratio"] == 16 / 132


def test_external_fragmentation_at_the_peak_footprint():
    trace = from_rows([(A, 0, 8, 0), (A, 1, 8, 0), (F, 0, 0, 0), (F, 1, 0, 0)])
    timeline = [(0, 100, 0, 90, 0), (1, 300, 0, 200, 0), (2, 300, 0, 250, 0), (3, 200, 0, 150, 0)]
    log = hand_log(trace, [0, 16, 0, 16], [16, 16, 0, 0], timeline, peak_footprint=300)
    found = waste.compute(trace, log)
    assert found["external_fragmentation"] == 1 - 250 / 300  # the fullest sample at the peak footprint
    assert found["external_fragmentation_mean"] == 1 - 690 / 900
    assert found["overhead_factor"] == 300 / 16


def test_internal_fragmentation_with_realloc_and_access():
    trace = from_rows([(A, 0, 100, 0), (X, 0, 0, 0), (R, 0, 200, 0), (R, 0, 150, 0), (F, 0, 0, 0)])
    log = hand_log(trace, [0, 0, 4096, 4096, 4096], [112, 0, 208, 208, 0])
    found = waste.compute(trace, log)
    assert found["internal_fragmentation"] == 1 - 200 / 208  # first row where 208 B are granted
    assert found["internal_fragmentation_mean"] == 1 - (100 + 100 + 200 + 150) / (112 + 112 + 208 + 208)


def test_live_bytes_agree_with_the_replay_driver():
    trace = catalog.make("realloc", n_ops=20_000, seed=1)
    log = build_for_trace("buddy", trace).replay(trace)  # buddy: cheap to compile, moves on growing REALLOC
    sums, at_peak = waste.live_bytes(trace, log)
    assert int(at_peak[2]) == log.peak_live_granted
    assert sums[0] <= sums[1]


# ------------------------------------------------------------------- locality
def test_locality_on_pool(pool_case):
    trace, log = pool_case
    found = locality.compute(trace, log)
    assert found["hot_reuse_rate"] == 3 / 7  # rows 4, 7, 8 of 7 allocations
    assert found["hot_reuse_rate_thread"] == 3 / 7
    # addresses 0 64 128 64 128 0 192: strides 64 64 64 64 128 192, all in page 0, never the same line
    assert found["alloc_same_line_rate"] == 0.0
    assert found["alloc_same_page_rate"] == 1.0
    assert found["alloc_mean_log2_stride"] == (7 + 7 + 7 + 7 + 8 + 8) / 6
    # 7 allocations of one line each + 3 frees (first line) = 10 line accesses over lines 0..3 of page 0
    assert found["line_accesses"] == 10
    assert found["l1_miss_rate"] == 4 / 10 and found["l2_miss_rate"] == 1.0
    assert found["l2_misses_per_kop"] == 1000 * 4 / 10
    assert found["tlb_miss_rate"] == 1 / 10 and found["distinct_pages"] == 1


def test_access_stream_of_realloc_access_free():
    trace = from_rows([
        (A, 0, 100, 0),  # [0, 100): lines 0, 1
        (X, 0, 0, 0),    # whole object: lines 0, 1
        (X, 0, 10, 0),   # line 0
        (R, 0, 200, 0),  # moves to 4096: copy reads [0, 100) (lines 0, 1), then [4096, 4296): lines 64..67
        (R, 0, 150, 0),  # in place: [4096, 4246): lines 64..66
        (F, 0, 0, 0),    # line 64
    ])
    log = hand_log(trace, [0, 0, 0, 4096, 4096, 4096], [112, 0, 0, 208, 208, 0])
    found = locality.compute(trace, log)
    assert found["line_accesses"] == 2 + 2 + 1 + 2 + 4 + 3 + 1
    assert found["l1_miss_rate"] == 6 / 15 and found["l2_miss_rate"] == 1.0  # lines 0, 1, 64..67
    assert found["tlb_miss_rate"] == 2 / 15 and found["distinct_pages"] == 2
    # allocations: row 0 and the moving REALLOC (row 3); the in-place one is not
    assert found["hot_reuse_rate"] == 0.0
    assert found["alloc_same_page_rate"] == 0.0 and found["alloc_mean_log2_stride"] == 13  # stride 4096


def test_same_line_and_zero_stride():
    trace = from_rows([(A, 0, 16, 0), (A, 1, 16, 0), (F, 1, 0, 0), (A, 2, 16, 0), (A, 3, 16, 0)])
    log = hand_log(trace, [0, 16, 16, 16, 4096 + 32], [16, 16, 0, 16, 16])
    found = locality.compute(trace, log)
    # pairs: 0 -> 16 (same line, stride 16: 5 bits), 16 -> 16 (same line, 0), 16 -> 4128 (other page, 13 bits)
    assert found["alloc_same_line_rate"] == 2 / 3 and found["alloc_same_page_rate"] == 2 / 3
    assert found["alloc_mean_log2_stride"] == (5 + 0 + 13) / 3
    assert found["hot_reuse_rate"] == 1 / 4


def test_hot_reuse_per_thread_and_pairs_per_thread():
    trace = from_rows([
        (A, 1, 64, 0), (A, 2, 64, 1),  # t0 -> 0, t1 -> 64
        (F, 1, 0, 0), (F, 2, 0, 1),    # t0 frees 0, t1 frees 64
        (A, 3, 64, 1),                 # t1 gets 0: freed recently, but by t0
        (A, 4, 64, 1),                 # t1 gets 64: freed by t1 itself
        (A, 5, 64, 0),                 # t0 gets 128: new
    ])
    log = hand_log(trace, [0, 64, 0, 64, 0, 64, 128], [64, 64, 0, 0, 64, 64, 64])
    found = locality.compute(trace, log)
    assert found["hot_reuse_rate"] == 2 / 5 and found["hot_reuse_rate_thread"] == 1 / 5
    # pairs per thread: t0 0 -> 128 (8 bits); t1 64 -> 0 (7), 0 -> 64 (7)
    assert found["alloc_mean_log2_stride"] == (8 + 7 + 7) / 3
    assert found["alloc_same_page_rate"] == 1.0


def test_hot_reuse_ring_holds_the_last_64_frees():
    n = 65
    rows = [(A, i, 64, 0) for i in range(n)] + [(F, i, 0, 0) for i in range(n)] + [(A, 100, 64, 0), (A, 101, 64, 0)]
    trace = from_rows(rows)
    addr = [64 * i for i in range(n)] * 2 + [0, 64]  # block 0 was freed 65 frees ago, block 1 64 frees ago
    log = hand_log(trace, addr, [64] * n + [0] * n + [64, 64])
    found = locality.compute(trace, log)
    assert found["hot_reuse_rate"] == 1 / (n + 2)


def test_distinct_pages_grow_past_the_first_table():
    n = 10_000
    trace = from_rows([(A, i, 8000, 0) for i in range(n)])  # each block spans 2 or 3 pages, blocks 8 KiB apart
    log = hand_log(trace, [8192 * i + 100 for i in range(n)], [8000] * n)
    found = locality.compute(trace, log)
    assert found["distinct_pages"] == 2 * n  # [8192 i + 100, 8192 i + 8100) lies in pages 2i and 2i + 1
    assert found["line_accesses"] == n * 126  # lines 128 i + 1 .. 128 i + 126


def test_distinct_pages_of_huge_blocks_cost_one_interval_each():
    tib = 1 << 40
    trace = from_rows([(A, 1, tib, 0), (A, 2, 100, 0), (F, 2, 0, 0), (A, 3, tib, 0), (F, 1, 0, 0)])
    log = hand_log(trace, [0, tib + 50, tib + 50, tib // 2, 0], [tib, 112, 0, tib, 0])
    accumulator = locality.LocalityAccumulator(trace.facts())
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    # pages [0, 2^28) and [2^27, 2^27 + 2^28) overlap; the 100 B block sits in page 2^28, inside the second
    assert accumulator.result()["distinct_pages"] == (tib + tib // 2) // 4096
    assert accumulator.long_first.tolist() == [0] and accumulator.pages.size == 1 << 12  # no per-page table


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60)), max_size=40),
       st.lists(st.integers(0, 400), max_size=40))
def test_interval_merge_counts_pages_exactly(ranges, points):
    first = np.array([a for a, _ in ranges], np.int64)
    last = np.array([a + n for a, n in ranges], np.int64)
    merged_first, merged_last = locality.merge_intervals(first, last)
    covered = {page for a, n in ranges for page in range(a, a + n + 1)}
    assert int((merged_last - merged_first + 1).sum()) == len(covered)
    assert np.all(merged_first[1:] > merged_last[:-1] + 1)  # disjoint, sorted, not adjacent
    pages = np.array(sorted(set(points)), np.int64)
    assert locality.pages_in_intervals(pages, merged_first, merged_last) == len(covered & set(points))


# ---------------------------------------------------------------- scalability
def threaded_case() -> tuple[Trace, AllocLog]:
    trace = from_rows([
        (A, 1, 16, 0),   # 0: [0, 16) line 0, owner 0
        (A, 2, 16, 1),   # 1: [16, 32) line 0, owner 1: line 0 shared (1)
        (A, 3, 100, 1),  # 2: [48, 160) lines 0..2, owner 1: line 0 already shared, line 2 owner 1
        (A, 4, 16, 2),   # 3: [160, 176) line 2, owner 2: line 2 shared (2); live requested 148
        (A, 5, 32, 0),   # 4: [176, 208) line 2, owner 0: a third owner, still 2 lines
        (F, 2, 0, 0),    # 5: remote; line 0 still holds owners 0 (obj 1) and 1 (obj 3)
        (F, 3, 0, 1),    # 6: local; line 0 has owner 0 only (1 shared line left: line 2)
        (F, 1, 0, 2),    # 7: remote
        (F, 4, 0, 2),    # 8: local; line 2 has owner 0 only (0)
        (F, 5, 0, 1),    # 9: remote
    ])
    log = hand_log(trace, [0, 16, 48, 160, 176, 16, 48, 0, 160, 176], [16, 16, 112, 16, 32, 0, 0, 0, 0, 0])
    return trace, log


def test_remote_frees_and_false_sharing():
    trace, log = threaded_case()
    found = scalability.compute(trace, log, {"shared_counters": ()})
    assert found["remote_free_rate"] == 3 / 5
    assert found["false_sharing_lines_peak"] == 2
    assert found["false_sharing_lines_per_mib"] == 2 / (148 / MiB)
    assert found["shared_ops_per_kop"] == 0.0


def test_false_sharing_blocks_of_one_owner_do_not_count():
    trace = from_rows([(A, 1, 16, 0), (A, 2, 16, 0), (A, 3, 16, 1), (F, 3, 0, 0)])
    log = hand_log(trace, [0, 16, 64, 64], [16, 16, 16, 0])  # line 0: owner 0 twice; line 1: owner 1
    found = scalability.compute(trace, log, ())
    assert found["false_sharing_lines_peak"] == 0 and found["remote_free_rate"] == 1.0


def test_false_sharing_follows_realloc():
    trace = from_rows([(A, 1, 16, 0), (A, 2, 16, 1), (R, 2, 100, 1), (A, 3, 16, 0)])
    # obj 2 moves from line 0 (shared with obj 1) to [128, 240) lines 2..3; obj 3 lands at 240: line 3 shared
    log = hand_log(trace, [0, 16, 128, 240], [16, 16, 112, 16])
    found = scalability.compute(trace, log, ())
    assert found["false_sharing_lines_peak"] == 1
    assert found["false_sharing_lines_per_mib"] == 1 / (32 / MiB)  # first reached at row 1: 16 + 16 B live


def test_shared_counters_convention(pool_case):
    trace, log = pool_case  # pool counters: allocs, frees, blocks_carved
    assert log.counters == {"allocs": 7, "frees": 3, "blocks_carved": 4}
    by_mapping = scalability.compute(trace, log, {"shared_counters": ("blocks_carved",)})
    assert by_mapping["shared_ops_per_kop"] == 1000 * 4 / 10

    class Declares:
        shared_counters = ("allocs", "frees")

    assert scalability.compute(trace, log, Declares)["shared_ops_per_kop"] == 1000 * 10 / 10
    assert scalability.compute(trace, log, ["frees"])["shared_ops_per_kop"] == 1000 * 3 / 10
    declared = getattr(allocators.get("pool"), "shared_counters", None)
    default = scalability.compute(trace, log)["shared_ops_per_kop"]
    if declared is None:
        assert math.isnan(default)  # the registry's class declares nothing
    with pytest.raises(ValueError, match="nonexistent"):
        scalability.compute(trace, log, {"shared_counters": ("nonexistent",)})


def test_single_threaded_trace_has_no_false_sharing(pool_case):
    trace, log = pool_case
    found = scalability.compute(trace, log, ())
    assert found["false_sharing_lines_peak"] == 0 and found["remote_free_rate"] == 0.0


# -------------------------------------------------------------- whole registry
def test_registry_and_compute_metrics_agree(pool_case):
    trace, log = pool_case
    found = compute_metrics(trace, log, {"shared_counters": ()})
    assert list(found) == list(METRICS)
    for name, info in METRICS.items():
        assert isinstance(info, MetricInfo) and info.name == name and info.deterministic
        assert info.group in ("waste", "locality", "scalability") and info.unit and "\n" not in info.one_line_doc
        assert isinstance(found[name], (int, float)) and not isinstance(found[name], bool)
    assert len(describe_metrics()) == len(METRICS)


def test_compute_metrics_rejects_a_log_of_another_trace(pool_case):
    trace, log = pool_case
    with pytest.raises(ValueError, match="not a log of this trace"):
        compute_metrics(from_rows(POOL_ROWS[:4]), log)


def test_empty_trace():
    trace = from_rows([])
    log = hand_log(trace, [], [])
    found = compute_metrics(trace, log, ())
    assert all(value == 0 for value in found.values())


def test_deterministic():
    trace = catalog.make("threads4:realloc=0.1,touch=true", n_ops=30_000, seed=3)
    log = build_for_trace("buddy", trace).replay(trace)
    info = {"shared_counters": ("os_grows",)}
    first = compute_metrics(trace, log, info)
    second = compute_metrics(trace, log, info)
    assert json.dumps(first) == json.dumps(second)  # bit for bit (json keeps the full float repr)
    assert first == second
    assert first["false_sharing_lines_peak"] > 0 and first["line_accesses"] > 0


# ------------------------------------------------- against a plain Python model
class PlainLRU:
    """A set-associative LRU cache as a list per set (most recent last): the reference for cachesim."""

    def __init__(self, sets: int, ways: int) -> None:
        self.sets, self.ways, self.table = sets, ways, [[] for _ in range(sets)]
        self.accesses = self.misses = 0

    def access(self, key: int) -> bool:
        self.accesses += 1
        entries = self.table[key % self.sets]
        if key in entries:
            entries.remove(key)
            entries.append(key)
            return True
        self.misses += 1
        entries.append(key)
        if len(entries) > self.ways:
            entries.pop(0)
        return False


def plain_metrics(trace: Trace, log: AllocLog) -> dict[str, float | int]:
    """Locality and scalability metrics of the module docstrings, recomputed naively (false sharing from scratch)."""
    l1, l2, tlb = PlainLRU(64, 8), PlainLRU(1024, 16), PlainLRU(16, 4)
    pages: set[int] = set()
    place: dict[int, tuple[int, int, int]] = {}  # obj -> (addr, requested, granted)
    owner: dict[int, int] = {}
    frees: list[tuple[int, int]] = []  # (address, thread)
    previous: dict[int, int] = {}
    allocations = hot = hot_thread = pairs = same_line = same_page = log2_sum = 0
    n_frees = remote = peak_shared = 0
    live_at_peak = 0

    def touch(start: int, nbytes: int) -> None:
        first, end = start >> 6, ((start + nbytes - 1) >> 6) + 1
        touched = list(range(first, end))
        if end - first > 2 * 512 + 2 * 64:  # cachesim's bounded ranges: the first and last 512 lines, whole pages
            head_end, tail_start = (first + 512 + 63) // 64 * 64, (end - 512) // 64 * 64
            touched = list(range(first, head_end)) + list(range(tail_start, end))
            skipped = tail_start - head_end
            for cache in (l1, l2, tlb):
                cache.accesses += skipped
            l1.misses += skipped
            l2.misses += skipped
            tlb.misses += skipped // 64
        for line in touched:
            tlb.access(line >> 6)
            if not l1.access(line):
                l2.access(line)
        pages.update(range(start >> 12, ((start + nbytes - 1) >> 12) + 1))

    def allocated(address: int, thread: int) -> None:
        nonlocal allocations, hot, hot_thread, pairs, same_line, same_page, log2_sum
        allocations += 1
        hot += address in [a for a, _ in frees[-64:]]
        hot_thread += address in [a for a, t in frees if t == thread][-64:]
        if thread in previous:
            pairs += 1
            same_line += address >> 6 == previous[thread] >> 6
            same_page += address >> 12 == previous[thread] >> 12
            log2_sum += abs(address - previous[thread]).bit_length()
        previous[thread] = address

    for row in range(len(trace)):
        op, ident, size, thread = (int(column[row]) for column in (trace.op, trace.obj, trace.size, trace.thread))
        address = int(log.addr[row])
        if op == A:
            owner[ident] = thread
            allocated(address, thread)
            touch(address, size)
            place[ident] = (address, size, int(log.granted[row]))
        elif op == F:
            n_frees += 1
            remote += thread != owner[ident]
            touch(address, 1)
            frees.append((address, thread))
            del place[ident]
        elif op == X:
            touch(address, size or place[ident][1])
        else:
            old, old_size, _ = place[ident]
            if address != old:
                allocated(address, thread)
                touch(old, min(old_size, size))
            touch(address, size)
            if address != old:
                frees.append((old, thread))
            place[ident] = (address, size, int(log.granted[row]))
        owners_of_line: dict[int, set[int]] = {}  # from scratch after every row
        for obj_id, (start, _, granted) in place.items():
            for line in {start >> 6, (start + granted - 1) >> 6}:  # blocks do not overlap: inner lines are theirs
                owners_of_line.setdefault(line, set()).add(owner[obj_id])
        shared = sum(len(found) >= 2 for found in owners_of_line.values())
        if shared > peak_shared:
            peak_shared, live_at_peak = shared, sum(requested for _, requested, _ in place.values())
    return {
        "hot_reuse_rate": hot / allocations, "hot_reuse_rate_thread": hot_thread / allocations,
        "alloc_same_line_rate": same_line / pairs, "alloc_same_page_rate": same_page / pairs,
        "alloc_mean_log2_stride": log2_sum / pairs,
        "l1_miss_rate": l1.misses / l1.accesses, "l2_miss_rate": l2.misses / l2.accesses,
        "tlb_miss_rate": tlb.misses / tlb.accesses, "line_accesses": l1.accesses, "distinct_pages": len(pages),
        "remote_free_rate": remote / n_frees, "false_sharing_lines_peak": peak_shared,
        "false_sharing_lines_per_mib": peak_shared / (live_at_peak / MiB) if peak_shared else 0.0,
    }


@pytest.mark.parametrize("workload, spec, n_ops", [
    ("threads4:live=40,realloc=0.1,touch=true,scan_every=100,scan_count=20", "buddy", 1500),
    ("producer-consumer:live=40,realloc=0.1", "pool", 1500),
    ("larson:slots=15,rounds=2,warmup=1", "buddy", 1500),  # remote frees of the main thread's and predecessors' blocks
    ("uniform:lo=2000,hi=60000,live=40,touch=true,realloc=0.1,threads=2", "buddy", 600),  # 1.2 MiB live
    ("uniform:lo=2000,hi=400000,live=20,touch=true,realloc=0.1", "freelist", 400),  # ranges past 16 pages
])
def test_against_a_plain_python_model(workload, spec, n_ops):
    trace = catalog.make(workload, n_ops=n_ops, seed=5)
    log = build_for_trace(spec, trace).replay(trace)
    found = compute_metrics(trace, log, ())
    expected = plain_metrics(trace, log)
    assert {name: found[name] for name in expected} == expected  # exactly: same integer counts, same divisions
