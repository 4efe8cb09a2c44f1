"""Tests of the set-associative LRU cache simulator on hand-computed access patterns."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import cachesim
from bench.metrics.cachesim import (
    access_lines,
    access_stream,
    cache_counts,
    hierarchy_counts,
    make_cache,
    make_hierarchy,
)
from labcore.kernels import njit_without_refcounts

L1 = (32 << 10, 8)  # 64 sets x 8 ways of 64 B lines = 512 lines
L1_SETS, L1_WAYS, L1_LINES = 64, 8, 512


def lines(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def run(cache, stream) -> tuple[int, int]:
    """Feed a stream; return (accesses, misses) of this stream only."""
    before = cache_counts(cache)
    missed = access_stream(cache, lines(stream))
    after = cache_counts(cache)
    assert after[1] - before[1] == missed
    return after[0] - before[0], missed


def set_contents(cache, set_index: int) -> list[int]:
    words, tags = cache
    ways = int(words[cachesim.C_WAYS])
    return tags[set_index * ways:(set_index + 1) * ways].tolist()


# ---------------------------------------------------------------- one cache
def test_geometry():
    words, tags = make_cache(*L1)
    assert int(words[cachesim.C_SET_MASK]) + 1 == L1_SETS
    assert int(words[cachesim.C_WAYS]) == L1_WAYS
    assert tags.shape == (L1_LINES,) and (tags == cachesim.EMPTY).all()
    assert cachesim.cache_lines(make_cache(1 << 20, 16)) == 16384


@pytest.mark.parametrize("size, ways, line", [(3000, 8, 64), (32 << 10, 8, 48), (96 << 10, 8, 64), (32 << 10, 0, 64)])
def test_bad_geometry(size, ways, line):
    with pytest.raises(ValueError):
        make_cache(size, ways, line)


def test_sequential_scan_larger_than_cache_misses_once_per_line():
    cache = make_cache(*L1)
    scan = range(4 * L1_LINES)  # 128 KiB, every access a new line
    assert run(cache, scan) == (4 * L1_LINES, 4 * L1_LINES)  # miss rate 1: compulsory misses only


def test_repeated_accesses_within_a_line_hit():
    cache = make_cache(*L1)
    stream = [line for line in range(4 * L1_LINES) for _ in range(4)]  # each line 4 times in a row
    accesses, missed = run(cache, stream)
    assert (accesses, missed) == (16 * L1_LINES, 4 * L1_LINES)  # one miss per line, 3 hits


def test_access_returns_hit_and_keeps_lru_order():
    cache = make_cache(4 * 64, 4)  # one set of 4 ways
    hits = [bool(cachesim.access_stream(cache, lines([line])) == 0) for line in (1, 2, 3, 1, 4, 5, 1, 2)]
    # 1 2 3 miss; 1 hit; 4 miss (set full: 4 1 3 2); 5 miss evicts 2 (LRU); 1 hit; 2 miss evicts 3
    assert hits == [False, False, False, True, False, False, True, False]
    assert set_contents(cache, 0) == [2, 1, 5, 4]  # most recently used first


@pytest.mark.parametrize("size, ways", [L1, (1 << 20, 16), (64 * 4096, 4)])
def test_conflict_ping_pong(size, ways):
    sets = size // (ways * 64)
    one_set = [k * sets + 5 for k in range(ways + 1)]  # ways + 1 lines mapping to set 5
    cache = make_cache(size, ways)
    assert run(cache, one_set * 20) == (20 * (ways + 1), 20 * (ways + 1))  # LRU: every access misses
    cache = make_cache(size, ways)
    assert run(cache, one_set[:ways] * 20) == (20 * ways, ways)  # `ways` lines: compulsory misses only


@pytest.mark.parametrize("size, ways", [L1, (1 << 20, 16), (64 * 64, 64)])
def test_working_set_at_and_just_below_capacity_hits_after_the_first_pass(size, ways):
    capacity = size // 64
    for working_set in (capacity, capacity - 1):
        cache = make_cache(size, ways)
        assert run(cache, range(working_set)) == (working_set, working_set)
        assert run(cache, list(range(working_set)) * 3) == (3 * working_set, 0)


@pytest.mark.parametrize("size, ways", [L1, (1 << 20, 16)])
def test_cyclic_working_set_just_above_capacity_always_misses(size, ways):
    capacity, sets = size // 64, size // (64 * ways)
    cache = make_cache(size, ways)
    cyclic = list(range(capacity + sets))  # every set sees ways + 1 lines in turn
    assert run(cache, cyclic * 3) == (3 * len(cyclic), 3 * len(cyclic))
    cache = make_cache(size, ways)  # one line too many: only the overfull set misses
    cyclic = list(range(capacity + 1))
    assert run(cache, cyclic * 3) == (3 * len(cyclic), len(cyclic) + 2 * (ways + 1))


def test_fully_associative_capacity_plus_one_always_misses():
    cache = make_cache(64 * 64, 64)  # one set of 64 ways
    assert run(cache, list(range(65)) * 4) == (260, 260)
    cache = make_cache(64 * 64, 64)
    assert run(cache, list(range(64)) * 4) == (256, 64)


def test_tlb_over_pages():
    tlb = make_cache(64 * 4096, 4, 4096)  # 64 entries, 16 sets x 4 ways, indexed by page number
    assert run(tlb, range(64)) == (64, 64)
    assert run(tlb, list(range(64)) * 2) == (128, 0)  # 64 pages fit
    tlb = make_cache(64 * 4096, 4, 4096)
    assert run(tlb, list(range(80)) * 3) == (240, 240)  # 80 pages: every set sees 5 > 4 pages cyclically
    tlb = make_cache(64 * 4096, 4, 4096)
    assert run(tlb, [3, 19, 35, 51, 67] * 5) == (25, 25)  # 5 pages of one set: ping-pong


# ----------------------------------------------------------------- hierarchy
def test_hierarchy_scan_l1_sized_twice():
    hierarchy = make_hierarchy()
    stream = lines(list(range(L1_LINES)) * 2)  # 32 KiB, 8 pages: fits L1 and the TLB
    access_lines(hierarchy, stream)
    counts = hierarchy_counts(hierarchy)
    assert counts["l1_accesses"] == 2 * L1_LINES and counts["l1_misses"] == L1_LINES
    assert counts["l2_accesses"] == L1_LINES and counts["l2_misses"] == L1_LINES  # only L1 misses reach L2
    assert counts["tlb_accesses"] == 2 * L1_LINES and counts["tlb_misses"] == 8


def test_hierarchy_scan_twice_l1_size_hits_in_l2():
    hierarchy = make_hierarchy()
    assert access_lines(hierarchy, lines(list(range(2 * L1_LINES)) * 2)) == 2 * L1_LINES  # to memory: first pass
    counts = hierarchy_counts(hierarchy)
    assert counts["l1_misses"] == 4 * L1_LINES  # cyclic over 2x capacity: every L1 access misses
    assert counts["l2_accesses"] == 4 * L1_LINES and counts["l2_misses"] == 2 * L1_LINES


def test_touch_range_lines_and_pages():
    hierarchy = make_hierarchy()
    touch = njit_without_refcounts(_touch_many)
    touch(hierarchy, lines([100, 4000, 4096 * 3 + 63]), lines([1, 200, 2]))
    counts = hierarchy_counts(hierarchy)
    # [100, 101): line 1; [4000, 4200): lines 62..65 (pages 0, 1); [12351, 12353): lines 192, 193 (page 3)
    assert counts["l1_accesses"] == 1 + 4 + 2 and counts["l1_misses"] == 7
    assert counts["tlb_misses"] == 3  # pages 0, 1, 3
    touch(hierarchy, lines([0]), lines([0]))  # an empty range touches nothing
    assert hierarchy_counts(hierarchy)["l1_accesses"] == 7


def _touch_many(hierarchy, starts, sizes):
    for index in range(starts.shape[0]):
        cachesim.touch_range(hierarchy, starts[index], sizes[index])


def _after_one_range(ranges, start_byte, n_bytes):
    rng = np.random.default_rng(7)
    before = lines(rng.integers(0, 1 << 16, 20_000))  # random prior state, overlapping the range
    after = lines(np.concatenate([rng.integers(0, 1 << 16, 20_000), rng.integers(start_byte >> 6, 1 << 17, 5000)]))
    touch = njit_without_refcounts(_touch_many)
    hierarchy = make_hierarchy(ranges=ranges)
    access_lines(hierarchy, before)
    touch(hierarchy, lines([start_byte]), lines([n_bytes]))
    middle = hierarchy_counts(hierarchy)
    access_lines(hierarchy, after)
    return middle, hierarchy_counts(hierarchy), [cache[1].copy() for cache in hierarchy[:3]]


@pytest.mark.parametrize(
    "start_byte, n_bytes", [(0, 3 << 20), (4096 * 7 + 640, (5 << 20) + 4000), (123 * 64 + 5, 2_300_000)]
)
def test_long_range_shortcut_is_exact(start_byte, n_bytes):
    """A long range takes the exact shortcut; counters and every cache's final contents equal the plain simulation."""
    _, fast, fast_tags = _after_one_range("exact", start_byte, n_bytes)
    _, plain, plain_tags = _after_one_range("plain", start_byte, n_bytes)
    assert fast.pop("skipped_lines") > 0 and plain.pop("skipped_lines") == 0
    assert fast == plain
    for fast_level, plain_level in zip(fast_tags, plain_tags, strict=True):
        np.testing.assert_array_equal(fast_level, plain_level)


@pytest.mark.parametrize(
    "start_byte, n_bytes", [(0, 70_000), (4096 * 7 + 640, 300_000), (123 * 64 + 5, 2_300_000), (64, 1 << 30)]
)
def test_bounded_ranges_keep_the_l1_exact(start_byte, n_bytes):
    """The default touches ~1 100 lines of any range; its L1 counts and the L1's contents after it are exact."""
    bounded, _, bounded_tags = _after_one_range("bounded", start_byte, n_bytes)
    plain, _, plain_tags = _after_one_range("plain", start_byte, n_bytes) if n_bytes < 1 << 24 else (None, 0, 0)
    lines_touched = -(-(start_byte % 64 + n_bytes) // 64)
    assert bounded["skipped_lines"] >= lines_touched - 2 * (512 + 64)  # at most 2 x (512 + a page) simulated
    assert bounded["l1_accesses"] == 20_000 + lines_touched
    if plain is not None:
        for key in ("l1_accesses", "l1_misses", "tlb_accesses"):
            assert bounded[key] == plain[key], key
        assert bounded["l2_misses"] >= plain["l2_misses"]  # the middle lines are counted as L2 misses
        np.testing.assert_array_equal(bounded_tags[0], plain_tags[0])  # the L1 holds what the whole range leaves


def test_fully_associative_tlb_option():
    hierarchy = make_hierarchy(tlb=(64, 64))
    stream = lines([page * 64 for page in range(65)] * 3)  # 65 pages round robin: every lookup misses
    access_lines(hierarchy, stream)
    counts = hierarchy_counts(hierarchy)
    assert counts["tlb_accesses"] == counts["tlb_misses"] == 195
