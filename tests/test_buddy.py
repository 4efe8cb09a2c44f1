"""Tests of the binary buddy allocator: address arithmetic, split/merge, growth, errors, a brute-force run."""

from __future__ import annotations

import numpy as np
import pytest

from allocators import BadParameter, OutOfMemory, UnsupportedOperation, buddy
from allocators.conformance import HeapChecker, check_replay
from allocators.shared.bits import bit_length, ceil_log2, floor_log2, lowest_set_bit
from workloads.trace import OP_ALLOC, OP_FREE, from_rows

MiB = 1 << 20


def expected_granted(size: int, min_block: int = 32) -> int:
    return 1 << (max(size, min_block) - 1).bit_length()


def heap_invariants(allocator: buddy.Buddy) -> None:
    """Walk the model's own tables: free lists, tags and live blocks tile the heap, buddies are merged."""
    words, tags, links = allocator.state
    min_shift = int(words[buddy.S_MIN_SHIFT])
    max_order = int(words[buddy.S_MAX_ORDER])
    limit = int(words[buddy.S_MERGE_LIMIT])
    heap_end = int(words[buddy.S_HEAP_END])
    assert heap_end == allocator.footprint <= allocator.capacity
    free_blocks: dict[int, int] = {}  # unit -> order
    for order in range(max_order + 1):
        unit = int(words[buddy.S_HEADS + order])
        assert bool(int(words[buddy.S_NONEMPTY]) >> order & 1) == (unit != buddy.NO_BLOCK), f"order {order} bit"
        previous = buddy.NO_BLOCK
        while unit != buddy.NO_BLOCK:
            assert unit not in free_blocks, f"unit {unit} twice on the free lists"
            assert int(links[2 * unit + 1]) == previous, f"broken prev link at unit {unit}"
            assert int(tags[unit]) == order + buddy.FREE_TAG, f"unit {unit} on list {order} has tag {tags[unit]}"
            free_blocks[unit] = order
            previous, unit = unit, int(links[2 * unit])
    pieces = [(unit << min_shift, 1 << (order + min_shift)) for unit, order in free_blocks.items()]
    for addr, granted in allocator.live_blocks().items():
        assert int(tags[addr >> min_shift]) == granted.bit_length() - 1 - min_shift
        pieces.append((addr, granted))
    pieces.sort()
    position = 0
    for addr, granted in pieces:
        assert addr == position, f"hole or overlap at {position}: next piece starts at {addr}"
        assert addr % granted == 0, f"block {addr} not aligned to its size {granted}"
        position = addr + granted
    assert position == heap_end, "free and live blocks do not tile the heap"
    for unit, order in free_blocks.items():
        if order < limit:
            assert free_blocks.get(unit ^ (1 << order)) != order, f"free buddies at order {order} not merged"


# ------------------------------------------------------------------ bit helpers
def test_bit_helpers_match_python():
    for value in [1, 2, 3, 4, 5, 31, 32, 33, 1023, 1024, 1025, (1 << 40) + 1, (1 << 62)]:
        assert bit_length(value) == value.bit_length()
        assert ceil_log2(value) == (value - 1).bit_length()
        assert floor_log2(value) == value.bit_length() - 1
        assert lowest_set_bit(value) == (value & -value).bit_length() - 1
    assert bit_length(0) == 0 and lowest_set_bit(0) == 64


# ------------------------------------------------------------ address arithmetic
def test_first_allocations_split_and_buddies_merge():
    allocator = buddy.Buddy(MiB)
    first = allocator.allocate(32)
    assert first == 0
    assert allocator.footprint == 4096  # the doubling heap starts as one 4 KiB block
    assert allocator.counters()["splits"] == 7  # 4096 -> 2048 -> ... -> 32
    second = allocator.allocate(20)
    assert second == first ^ 32  # the buddy of block 0 at order 0
    third = allocator.allocate(40)
    assert third == 64 and allocator.live_blocks()[third] == 64  # the upper half of the first 128 B block
    allocator.deallocate(first)
    assert allocator.counters()["merges"] == 0  # its buddy is live
    allocator.deallocate(second)
    assert allocator.counters()["merges"] == 1  # 0 and 32 merge into 64 B at 0; its buddy 64 is live
    assert allocator.allocate(64) == 0
    heap_invariants(allocator)


@pytest.mark.parametrize("size", [1, 1024, 1025, 4096, 70_000])
def test_block_is_aligned_to_its_size_and_its_buddy_is_addr_xor_size(size):
    allocator = buddy.Buddy(MiB)
    allocator.allocate(1)
    addr = allocator.allocate(size)
    granted = allocator.live_blocks()[addr]
    assert addr % granted == 0
    buddy_addr = addr ^ granted
    assert buddy_addr // (2 * granted) == addr // (2 * granted)  # the two halves of one aligned 2x block


def test_min_blocks_merge_back_into_the_max_block_at_zero():
    capacity = 1 << 16
    allocator = buddy.Buddy(capacity)
    blocks = [allocator.allocate(32) for _ in range(capacity // 32)]
    assert sorted(blocks) == list(range(0, capacity, 32))
    with pytest.raises(OutOfMemory):
        allocator.allocate(1)
    rng = np.random.default_rng(7)
    for index in rng.permutation(len(blocks)):
        allocator.deallocate(blocks[index])
    heap_invariants(allocator)
    assert allocator.allocate(capacity) == 0
    assert allocator.footprint == capacity


@pytest.mark.parametrize("size", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4096, 4097, 300_000])
@pytest.mark.parametrize("min_block", [16, 32, 256])
def test_granted_is_the_next_power_of_two(size, min_block):
    allocator = buddy.Buddy(MiB, min_block=min_block)
    addr = allocator.allocate(size)
    assert allocator.live_blocks()[addr] == expected_granted(size, min_block)
    assert addr % 16 == 0


# --------------------------------------------------------------------- growth
def test_doubling_growth_footprint_and_metadata():
    allocator = buddy.Buddy(MiB)
    heads = buddy.HEAD_BYTES * (allocator.state[0][buddy.S_MAX_ORDER] + 1)
    assert (allocator.footprint, allocator.metadata_bytes) == (0, heads)
    allocator.allocate(32)
    assert allocator.footprint == 4096
    addr = allocator.allocate(5000)  # needs 8 KiB: the heap doubles to 8 KiB, then to 16 KiB
    assert addr == 8192 and allocator.footprint == 16384
    assert allocator.counters()["os_grows"] == 3
    assert allocator.metadata_bytes == 16384 // 32 + heads
    heap_invariants(allocator)


def test_doubling_merges_the_free_old_heap_with_its_new_half():
    allocator = buddy.Buddy(MiB)
    allocator.deallocate(allocator.allocate(32))  # heap [0, 4 KiB) is one free block again
    addr = allocator.allocate(8192)  # grow to 8 KiB: [0, 4K) and [4K, 8K) merge into one 8 KiB block
    assert addr == 0 and allocator.footprint == 8192
    heap_invariants(allocator)


def test_top_growth_takes_one_max_block_at_a_time():
    allocator = buddy.Buddy(MiB, max_block=1 << 16, growth="top")
    allocator.allocate(1)
    assert allocator.footprint == 1 << 16
    big = [allocator.allocate(1 << 16) for _ in range(3)]
    assert big == [1 << 16, 2 << 16, 3 << 16] and allocator.footprint == 4 << 16
    assert allocator.counters()["os_grows"] == 4
    for addr in big:
        allocator.deallocate(addr)
    heap_invariants(allocator)
    assert allocator.allocate(1 << 16) in big  # freed top blocks are reused, no new memory
    assert allocator.footprint == 4 << 16


def test_default_max_block_is_the_largest_power_of_two_in_capacity_capped_at_1_gib():
    assert buddy.Buddy(3 * MiB).params["max_block"] == 2 * MiB
    assert buddy.Buddy(1 << 20).params["max_block"] == 1 << 20
    assert buddy.Buddy(3 << 30, min_block=1 << 16).params["max_block"] == 1 << 30


# --------------------------------------------------------------------- errors
def test_exhaustion_raises_out_of_memory():
    allocator = buddy.Buddy(4096)
    for _ in range(4):
        allocator.allocate(1000)
    with pytest.raises(OutOfMemory, match="out of memory"):
        allocator.allocate(1000)
    allocator = buddy.Buddy(3 * MiB)  # the last MiB is not a whole max block: never used
    allocator.allocate(2 * MiB)
    with pytest.raises(OutOfMemory):
        allocator.allocate(16)


def test_request_above_max_block_is_too_large():
    allocator = buddy.Buddy(MiB, max_block=1 << 16)
    with pytest.raises(UnsupportedOperation, match="larger than the largest block"):
        allocator.allocate((1 << 16) + 1)
    allocator.allocate(1 << 16)  # exactly max_block is fine
    with pytest.raises(UnsupportedOperation, match="larger than the largest block"):
        buddy.Buddy(MiB).allocate(MiB + 1)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"min_block": 24}, "min_block"),
        ({"min_block": 8}, "min_block"),
        ({"min_block": "32"}, "min_block"),
        ({"min_block": True}, "min_block"),
        ({"min_block": 1 << 21}, "min_block"),
        ({"max_block": 3000}, "max_block"),
        ({"max_block": 16, "min_block": 32}, "max_block"),
        ({"max_block": 1 << 21}, "max_block"),
        ({"growth": "triple"}, "growth"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_parameters_raise_bad_parameter(params, named):
    with pytest.raises(BadParameter, match=named):
        buddy.Buddy(MiB, **params)


def test_huge_capacity_with_tiny_blocks_is_a_clear_error_or_works():
    try:
        allocator = buddy.Buddy(1 << 48, min_block=16, max_block=1 << 20, growth="top")
    except BadParameter as error:
        assert "min_block" in str(error)
    else:
        assert allocator.allocate(100) == 0


# ---------------------------------------------------------------------- reset
@pytest.mark.parametrize("params", [{}, {"growth": "top", "max_block": 1 << 16}])
def test_free_resets_every_block_and_keeps_the_memory(params):
    allocator = buddy.Buddy(MiB, **params)
    for size in (100, 5000, 30_000, 32, 32, 70):
        allocator.allocate(size)
    footprint = allocator.footprint
    allocator.free()
    assert allocator.live_blocks() == {}
    assert allocator.footprint == footprint
    heap_invariants(allocator)
    largest = min(footprint, allocator.params["max_block"])
    assert allocator.allocate(largest) == 0
    assert allocator.footprint == footprint


# ---------------------------------------------------------------- brute force
@pytest.mark.parametrize(
    "params",
    [{}, {"min_block": 16}, {"growth": "top", "max_block": 1 << 16}, {"min_block": 64, "max_block": 1 << 18}],
)
def test_random_alloc_free_keeps_every_invariant(params):
    capacity = 2 * MiB
    allocator = buddy.Buddy(capacity, **params)
    min_block, max_block = allocator.params["min_block"], allocator.params["max_block"]
    checker = HeapChecker(capacity, allocator.alignment)
    rng = np.random.default_rng(2024)
    live: list[int] = []
    for step in range(3000):
        if live and (rng.random() < 0.45 or len(live) > 400):
            addr = live.pop(int(rng.integers(len(live))))
            allocator.deallocate(addr)
            checker.remove(addr, f"step {step}")
        else:
            size = int(np.exp(rng.uniform(0, np.log(max_block)))) if rng.random() < 0.9 else int(rng.integers(1, 64))
            size = max(1, min(size, max_block))
            try:
                addr = allocator.allocate(size)
            except OutOfMemory:
                continue
            granted = allocator.live_blocks()[addr]
            assert granted == expected_granted(size, min_block)
            assert addr % granted == 0, "buddy blocks are aligned to their size"
            checker.add(addr, granted, size, f"step {step}")  # in range, no overlap, granted >= size
            live.append(addr)
        if step % 100 == 0:
            heap_invariants(allocator)
    for addr in live:
        allocator.deallocate(addr)
    heap_invariants(allocator)
    counters = allocator.counters()
    assert counters["allocs"] == counters["frees"]
    free_orders = {int(o) for o in range(64) if int(allocator.state[0][buddy.S_NONEMPTY]) >> o & 1}
    top_order = int(allocator.state[0][buddy.S_MERGE_LIMIT])
    assert free_orders == {top_order}, "everything freed: only whole top blocks remain"


# --------------------------------------------------------------------- replay
def test_replay_of_a_small_trace_matches_the_per_call_api():
    rows = [(OP_ALLOC, i, 1 + 97 * i, i % 2) for i in range(30)]
    rows += [(OP_FREE, i, 0, 0) for i in range(0, 30, 3)]
    rows += [(OP_ALLOC, 100 + i, 3000 - 90 * i, 1) for i in range(20)]
    rows += [(OP_FREE, i, 0, 1) for i in range(1, 30, 3)]
    trace = from_rows(rows)
    allocator = buddy.Buddy(MiB, max_threads=2)
    log = allocator.replay(trace)
    check_replay(allocator, trace, log)
    fresh = buddy.Buddy(MiB, max_threads=2)
    by_object: dict[int, int] = {}
    for row, (op, ident, size, thread) in enumerate(rows):
        if op == OP_ALLOC:
            by_object[ident] = fresh.allocate(size, thread)
            assert by_object[ident] == log.addr[row]
            assert log.granted[row] == expected_granted(size)
        else:
            fresh.deallocate(by_object.pop(ident), thread)
    assert log.counters == fresh.counters()
    assert log.final_footprint == fresh.footprint
    assert log.peak_metadata_bytes == fresh.metadata_bytes
    assert log.counters["allocs"] == 50 and log.counters["frees"] == 20
    heap_invariants(fresh)
