"""freelist: glibc chunk facts, tcache, split/coalesce, fit policies, mmap, errors, and brute-force invariants."""

from __future__ import annotations

import bisect
import ctypes
import platform
import random
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from allocators import BadParameter, OutOfMemory, create
from allocators.conformance import check_replay
from allocators.freelist import Freelist
from allocators.glibc import MALLOC_STATE_BYTES
from allocators.shared import chunks as layout
from allocators.shared.bitset import bitset_clear, bitset_clear_all, bitset_next, bitset_prev, bitset_set, new_bitset
from allocators.shared.glibc_bins import NBINS, bin_index, largebin_index
from allocators.shared.maxtree import new_tree, tree_clear_range, tree_first_at_least, tree_last_at_least, tree_set
from bench.real import allocator_environment
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

MiB = 1 << 20
PLAIN_SPECS = ["freelist", "freelist:policy=next", "freelist:policy=best", "freelist:order=lifo",
               "freelist:order=fifo", "freelist:policy=next,order=lifo", "freelist:policy=best,order=address",
               "freelist:policy=best,order=lifo"]
ALL_SPECS = PLAIN_SPECS + ["freelist:glibc", "freelist:glibc,tcache_bins=0"]


def glibc(capacity: int = 16 * MiB, **params) -> Freelist:
    return Freelist(capacity, preset="glibc", **params)


# ------------------------------------------------------------------ heap checker
def _next_link(words, memory, chunk: int) -> int:
    """The next chunk on a tcache or fastbin list (safe-linked when glibc's checks are on)."""
    stored = int(memory[(chunk >> 3) + layout.W_FD])
    if words[layout.S_CHECKS]:
        return ((chunk + 8 * layout.W_FD) >> 12) ^ stored
    return stored


def chunks_in_list(memory: np.ndarray, sentinel: int) -> list[int]:
    found = []
    chunk = int(memory[(sentinel >> 3) + layout.W_FD])
    while chunk != sentinel:
        found.append(chunk)
        assert int(memory[(int(memory[(chunk >> 3) + layout.W_FD]) >> 3) + layout.W_BK]) == chunk
        chunk = int(memory[(chunk >> 3) + layout.W_FD])
        assert len(found) < 1_000_000
    return found


def assert_heap_consistent(allocator: Freelist) -> None:
    """White-box check: chunks tile the heap, boundary tags agree, the free index holds exactly the free chunks,
    and every chunk in use is a live block, a chunk in a tcache or fastbin, or a thread's tcache struct."""
    words, memory, tcache, tree, sizebits, sizeheads, maptree = allocator.state
    params = allocator.params
    granularity, min_chunk = params["granularity"], params["min_chunk"]
    user_offset = int(words[layout.S_USER_OFFSET])
    chunks = allocator.heap_chunks()
    assert chunks[-1][2] == "top"
    top, top_size = allocator.top_chunk
    assert chunks[-1][:2] == (top, top_size) and top + top_size == words[layout.S_BRK]
    expected = 0
    free_chunks: dict[int, int] = {}
    used: set[int] = set()
    previous = "used"
    for addr, size, kind in chunks[:-1]:
        assert addr == expected and size >= min_chunk and size % granularity == 0
        expected += size
        if kind == "free":
            assert previous != "free", f"adjacent free chunks at {addr}"
            assert memory[(addr + size) >> 3] == size, "footer"
            free_chunks[addr] = size
        else:
            used.add(addr)
        previous = kind
    assert expected == top and (previous != "free" or not chunks[:-1]), "free chunk next to top"
    # the free index
    mode = int(words[layout.S_MODE])
    arena = int(words[layout.S_ARENA])
    if mode == layout.MODE_GLIBC:
        indexed = []
        for index in range(1, NBINS):
            members = chunks_in_list(memory, arena + index * layout.BIN_STRIDE)
            if index > 1:
                assert all(bin_index(free_chunks.get(c, -1)) == index for c in members), f"bin {index}"
                if index >= 64:
                    sizes = [free_chunks[c] for c in members]
                    assert sizes == sorted(sizes, reverse=True), f"large bin {index} not sorted"
            indexed += members
    elif mode == layout.MODE_LIST:
        indexed = chunks_in_list(memory, arena)
    elif mode == layout.MODE_TREE:
        leaves = int(tree[0])
        shift = int(words[layout.S_GRAN_SHIFT])
        slots = np.nonzero(tree[leaves: leaves + (top >> shift) + 1])[0]
        indexed = [int(s) << shift for s in slots]
        assert all(int(tree[leaves + (c >> shift)]) << shift == free_chunks.get(c) for c in indexed)
    else:
        indexed = []
        shift = int(words[layout.S_GRAN_SHIFT])
        slot = bitset_next(sizebits, 0)
        while slot >= 0:
            members = chunks_in_list(memory, int(sizeheads[slot])) + [int(sizeheads[slot])]
            assert all(free_chunks.get(c) == slot << shift for c in members)
            if params["order"] == "address":
                assert members[-1] == min(members) and members[:-1] == sorted(members[:-1])
            indexed += members
            slot = bitset_next(sizebits, slot + 1)
    assert sorted(indexed) == sorted(free_chunks), "free index differs from the free chunks"
    # chunks in use: live blocks, tcache entries, tcache structs
    live_chunks = set()
    for addr, granted in allocator.live_blocks().items():
        chunk = addr - user_offset
        if allocator.is_mapped(addr):
            assert granted == allocator.chunk_size(addr) - user_offset
            continue
        live_chunks.add(chunk)
        assert granted == allocator.chunk_size(addr) - params["header"]
    cached = set()
    bins = params["tcache_bins"]
    threads = 0
    if bins:
        stride = 2 + 2 * bins
        for thread in range(allocator.max_threads):
            base = thread * stride
            threads += int(tcache[base] != 0)
            for tidx in range(bins):
                count = int(tcache[base + 3 + 2 * tidx])
                assert count <= params["tcache_count"]
                chunk = int(tcache[base + 2 + 2 * tidx])
                for _ in range(count):
                    assert chunk in used and chunk not in live_chunks and chunk not in cached
                    assert int(memory[(chunk >> 3) + 1] & ~7) == min_chunk + tidx * granularity
                    cached.add(chunk)
                    chunk = _next_link(words, memory, chunk)
    for index in range(layout.NFASTBINS):
        chunk = int(words[layout.S_FASTBINS + index])
        while chunk != layout.NIL:
            assert chunk in used and chunk not in live_chunks and chunk not in cached
            assert int(memory[(chunk >> 3) + 1] & ~7) == min_chunk + index * granularity <= params["max_fast"]
            cached.add(chunk)
            chunk = _next_link(words, memory, chunk)
    assert live_chunks <= used
    assert len(used) == len(live_chunks) + len(cached) + threads, "a chunk in use that nobody holds"


class Checker:
    """Live blocks from outside: no overlap, inside [0, capacity), 16-aligned, granted >= requested."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.starts: list[int] = []
        self.blocks: dict[int, tuple[int, int]] = {}

    def add(self, addr: int, granted: int, requested: int) -> None:
        assert granted >= requested and addr % 16 == 0 and 0 <= addr and addr + granted <= self.capacity
        position = bisect.bisect_left(self.starts, addr)
        if position:
            before = self.starts[position - 1]
            assert before + self.blocks[before][0] <= addr, "overlap with the block below"
        if position < len(self.starts):
            assert addr + granted <= self.starts[position], "overlap with the block above"
        self.starts.insert(position, addr)
        self.blocks[addr] = (granted, requested)

    def remove(self, addr: int) -> None:
        del self.blocks[addr]
        self.starts.pop(bisect.bisect_left(self.starts, addr))


# --------------------------------------------------------------- glibc facts
def test_glibc_chunk_sizes():
    heap = glibc()
    first = heap.allocate(24)
    assert first == 0x290 + 16, "the first chunk follows the 0x290 B tcache_perthread_struct, as in glibc"
    assert heap.footprint == 0x21000, "first sbrk: 32 + 128 KiB top pad + 32, page-rounded"
    assert heap.chunk_size(first) == 32 and heap.live_blocks()[first] == 24
    for request, chunk in ((25, 48), (1, 32), (40, 48), (1032, 1040), (1033, 1056), (100_000, 100_016)):
        addr = heap.allocate(request)
        assert heap.chunk_size(addr) == chunk, request
        assert heap.live_blocks()[addr] == chunk - 8 >= request
    assert heap.metadata_bytes == MALLOC_STATE_BYTES + 640 + 8 * 8


def test_tcache_lifo_and_limits():
    heap = glibc()
    a, b, c = (heap.allocate(40) for _ in range(3))
    heap.deallocate(a)
    heap.deallocate(b)
    assert heap.counters()["tcache_puts"] == 2 and heap.counters()["coalesces"] == 0
    assert heap.allocate(40) == b and heap.allocate(40) == a, "tcache is LIFO per thread"
    assert heap.counters()["tcache_hits"] == 2
    # another thread has its own cache: it does not see thread 0's chunks
    heap.deallocate(c)
    assert heap.allocate(40, thread=1) != c and heap.allocate(40) == c
    # largest tcache size: 1032 B requests (1040 B chunks) are cached, 1033 B ones are not
    big = heap.allocate(1032)
    heap.deallocate(big)
    assert heap.counters()["tcache_puts"] == 4
    bigger = heap.allocate(1033)
    heap.deallocate(bigger)
    assert heap.counters()["tcache_puts"] == 4
    # at most 7 per bin: the 8th and 9th free go to the bins
    blocks = [heap.allocate(200) for _ in range(9)]
    for addr in blocks:
        heap.deallocate(addr)
    assert heap.counters()["tcache_puts"] == 4 + 7
    assert_heap_consistent(heap)


def test_fastbins_defer_coalescing_until_consolidation():
    heap = glibc()
    blocks = [heap.allocate(100) for _ in range(9)]
    heap.allocate(16)
    for addr in blocks:
        heap.deallocate(addr)
    counters = heap.counters()
    assert counters["tcache_puts"] == 7 and counters["fastbin_puts"] == 2 and counters["coalesces"] == 0
    assert all(kind == "used" for _, _, kind in heap.heap_chunks()[:-1]), "fastbin chunks stay in use"
    assert heap.allocate(100) == blocks[6], "the tcache comes first (LIFO)"
    heap.allocate(2000)  # a large request consolidates the fastbins first: blocks 7 and 8 merge
    assert heap.counters()["consolidations"] == 1 and heap.counters()["coalesces"] == 1
    assert (blocks[7] - 16, 224, "free") in heap.heap_chunks()
    assert_heap_consistent(heap)
    assert [heap.allocate(100) for _ in range(6)] == blocks[5::-1], "the rest of the tcache"
    assert heap.allocate(100) == blocks[7], "then the merged chunk, split by best fit"
    assert_heap_consistent(heap)


# ---------------------------------------------------------- split, coalesce
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_freeing_everything_leaves_one_top_chunk(spec):
    heap = create(spec, 8 * MiB)
    rng = random.Random(1)
    blocks = [heap.allocate(rng.choice([16, 24, 100, 1500, 5000, 40_000])) for _ in range(300)]
    rng.shuffle(blocks)
    for addr in blocks:
        heap.deallocate(addr)
    assert_heap_consistent(heap)
    chunks = heap.heap_chunks()
    if not heap.params["tcache_bins"] and not heap.params["max_fast"]:
        assert len(chunks) == 1 and chunks[0][2] == "top", chunks[:5]
    assert heap.counters()["coalesces"] > 0


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_neighbours_merge_and_memory_is_reused(spec):
    heap = create(spec, 8 * MiB, tcache_bins=0, max_fast=0)
    a, b, c, guard = (heap.allocate(2000) for _ in range(4))
    heap.deallocate(a)
    heap.deallocate(c)
    assert [kind for _, _, kind in heap.heap_chunks()[:4]] == ["free", "used", "free", "used"]
    merged = heap.counters()["coalesces"]
    heap.deallocate(b)
    assert heap.counters()["coalesces"] == merged + 2
    chunks = heap.heap_chunks()
    assert chunks[0] == (a - 16, 3 * 2016, "free")
    footprint = heap.footprint
    assert heap.allocate(3 * 2016 - 8) == a and heap.footprint == footprint
    # splitting: a small request carves the front of a free chunk, the rest stays free
    heap.deallocate(a)
    splits = heap.counters()["splits"]
    assert heap.allocate(100) == a
    assert heap.counters()["splits"] == splits + 1
    assert heap.heap_chunks()[:2] == [(a - 16, 112, "used"), (a - 16 + 112, 3 * 2016 - 112, "free")]
    assert_heap_consistent(heap)
    assert heap.arena_info()["top"] == guard - 16 + 2016


def test_realloc_in_place_cases():
    rows = [
        (OP_ALLOC, 0, 100, 0), (OP_ALLOC, 1, 100, 0), (OP_ALLOC, 2, 100, 0), (OP_ALLOC, 3, 100, 0),
        (OP_REALLOC, 3, 2000, 0),   # last chunk: grows into top
        (OP_REALLOC, 0, 50, 0),     # shrinks in place, the 48 B tail becomes a free chunk
        (OP_FREE, 2, 0, 0),
        (OP_REALLOC, 1, 200, 0),    # grows into the free chunk after it
        (OP_REALLOC, 3, 60, 0),     # shrinks and gives the tail back to top
        (OP_REALLOC, 0, 3000, 0),   # no room: moves
    ]
    trace = from_rows(rows)
    for spec in ("freelist", "freelist:glibc,tcache_bins=0,max_fast=0", "freelist:policy=best"):
        heap = create(spec, 4 * MiB)
        log = heap.replay(trace)
        addr = log.addr
        assert addr[4] == addr[3] and addr[5] == addr[0] and addr[7] == addr[1] and addr[8] == addr[3], spec
        assert addr[9] != addr[0]
        assert log.granted[4] >= 2000 and log.granted[7] >= 200 and log.granted[8] >= 60
        assert log.counters["reallocs_in_place"] == 4
        check_replay(heap, trace, log)


def test_realloc_of_mapped_chunks_remaps():
    rows = [(OP_ALLOC, 0, 300_000, 0), (OP_ALLOC, 1, 300_000, 0),
            (OP_REALLOC, 0, 200_000, 0),   # fewer pages, same place
            (OP_REALLOC, 1, 100, 0),       # still mapped (mremap), one page
            (OP_REALLOC, 0, 600_000, 0)]   # more pages: the pages above are taken, so it moves
    heap = glibc(64 * MiB, mmap_dynamic=False)
    trace = from_rows(rows)
    log = heap.replay(trace)
    check_replay(heap, trace, log)
    assert log.addr[2] == log.addr[0] and log.addr[3] == log.addr[1] and log.addr[4] != log.addr[0]
    assert log.granted[3] == 4096 - 16 and log.counters["mmaps"] == 2 and log.counters["reallocs_in_place"] == 2
    heap_part = 0x21000
    assert log.final_footprint == heap_part + 4096 + (600_000 + 16 + 4095) // 4096 * 4096


# ------------------------------------------------------------ fit policies
def test_policies_pick_different_chunks():
    picks = {}
    for spec in ("freelist", "freelist:policy=best", "freelist:order=lifo", "freelist:order=fifo",
                 "freelist:glibc,tcache_bins=0,max_fast=0"):
        heap = create(spec, 4 * MiB)
        large = heap.allocate(400)
        heap.allocate(16)
        small = heap.allocate(100)
        heap.allocate(16)
        middle = heap.allocate(200)
        heap.allocate(16)
        heap.deallocate(small)
        heap.deallocate(large)
        heap.deallocate(middle)
        got = heap.allocate(90)
        picks[spec] = {large: "large", small: "small", middle: "middle"}.get(got, "top")
        assert_heap_consistent(heap)
    assert picks["freelist"] == "large", "address-ordered first fit: the lowest chunk that fits"
    assert picks["freelist:policy=best"] == "small", "best fit: the smallest chunk that fits"
    assert picks["freelist:order=lifo"] == "middle", "lifo first fit: the most recently freed chunk"
    assert picks["freelist:order=fifo"] == "small", "fifo first fit: the least recently freed chunk"
    assert picks["freelist:glibc,tcache_bins=0,max_fast=0"] == "small", "glibc bins: best fit"


def test_best_fit_ties_follow_the_order():
    results = {}
    for order in ("lifo", "fifo", "address"):
        heap = Freelist(4 * MiB, policy="best", order=order)
        blocks = []
        for _ in range(3):
            blocks.append(heap.allocate(100))
            heap.allocate(16)
        for addr in (blocks[1], blocks[2], blocks[0]):
            heap.deallocate(addr)
        results[order] = blocks.index(heap.allocate(100))
        assert_heap_consistent(heap)
    assert results == {"lifo": 0, "fifo": 1, "address": 0}


@pytest.mark.parametrize("order", ["address", "fifo"])
def test_next_fit_continues_from_the_rover(order):
    heap = Freelist(4 * MiB, policy="next", order=order)
    blocks = [heap.allocate(100) for _ in range(6)]
    heap.allocate(16)
    for addr in blocks[::2]:
        heap.deallocate(addr)
    assert heap.allocate(100) == blocks[0]  # the rover was at top: the search wrapped around
    heap.deallocate(blocks[0])
    assert heap.allocate(100) == blocks[2], "first fit would take blocks[0] again"
    assert heap.allocate(100) == blocks[4]
    assert heap.allocate(100) == blocks[0]
    top = heap.top_chunk
    assert heap.allocate(100) not in blocks and heap.top_chunk != top
    assert_heap_consistent(heap)


# ------------------------------------------------------- mmap, trim, reset
def test_mmap_threshold_and_footprint():
    heap = glibc(64 * MiB)
    small = heap.allocate(100)
    base = heap.footprint
    big = heap.allocate(200 * 1024)
    assert heap.is_mapped(big) and not heap.is_mapped(small)
    mapping = (200 * 1024 + 8 + 8 + 4095) // 4096 * 4096
    assert heap.footprint == base + mapping and big >= 32 * MiB
    assert heap.live_blocks()[big] == mapping - 16
    heap.deallocate(big)
    assert heap.footprint == base and heap.counters()["munmaps"] == 1
    # dynamic threshold: freeing a mapped chunk raises it to that chunk's size
    assert heap.mmap_threshold == mapping and heap.arena_info()["trim_threshold"] == 2 * mapping
    again = heap.allocate(200 * 1024)
    assert not heap.is_mapped(again), "now below the threshold: served from the heap"
    static = glibc(64 * MiB, mmap_dynamic=False)
    static.deallocate(static.allocate(300_000))
    assert static.mmap_threshold == 128 * 1024 and static.is_mapped(static.allocate(300_000))
    # holes between mappings are reused, and mappings never overlap the heap
    heap = glibc(4 * MiB, mmap_dynamic=False)
    maps = [heap.allocate(300_000) for _ in range(6)]
    heap.deallocate(maps[2])
    heap.deallocate(maps[3])
    assert heap.allocate(500_000) in range(maps[3], maps[2] + 1) and heap.counters()["mmaps"] == 7
    assert_heap_consistent(heap)


def test_trim_gives_pages_back():
    heap = glibc(16 * MiB, tcache_bins=0, max_fast=0)
    blocks = [heap.allocate(1000) for _ in range(600)]
    grown = heap.footprint
    for addr in reversed(blocks):
        heap.deallocate(addr)
    assert heap.counters()["os_trims"] >= 1 and heap.footprint < grown
    assert heap.top_chunk[1] <= 128 * 1024 + 4096 + 32
    plain = Freelist(16 * MiB)  # trim_threshold=0: never trims
    blocks = [plain.allocate(1000) for _ in range(600)]
    grown = plain.footprint
    for addr in blocks:
        plain.deallocate(addr)
    assert plain.footprint == grown and plain.counters()["os_trims"] == 0
    assert plain.heap_chunks() == [(0, grown, "top")]


def test_free_resets_the_heap_and_keeps_the_footprint():
    heap = glibc(16 * MiB)
    for size in (100, 5000, 300_000, 40):
        heap.allocate(size)
    footprint = heap.footprint
    heap.free()
    assert heap.footprint == footprint and heap.live_blocks() == {}
    assert len(heap.heap_chunks()) == 1
    assert heap.allocate(300_000) and heap.footprint == footprint, "a retained mapping is reused"
    assert_heap_consistent(heap)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("spec", ["freelist", "freelist:glibc", "freelist:policy=best", "freelist:order=lifo"])
def test_out_of_memory(spec):
    heap = create(spec, 1 << 16)
    with pytest.raises(OutOfMemory, match="out of memory"):
        heap.allocate(1 << 20)
    with pytest.raises(OutOfMemory):
        for _ in range(1000):
            heap.allocate(1000)
    assert len(heap.live_blocks()) > 30
    heap.deallocate(next(iter(heap.live_blocks())))
    heap.allocate(1000)


@pytest.mark.parametrize("params", [
    {"policy": "worst"}, {"order": "random"}, {"bins": "dl"}, {"granularity": 24}, {"granularity": 8},
    {"min_chunk": 16}, {"min_chunk": 40}, {"header": 100}, {"header": -8}, {"header": 32, "min_chunk": 32},
    {"tcache_count": 0}, {"tcache_bins": 5000}, {"page": 1000}, {"mmap_threshold": -1}, {"top_pad": 1.5},
    {"mmap_dynamic": "sometimes"}, {"preset": "glibc", "policy": "first"}, {"preset": "glibc", "granularity": 32},
    {"bogus": 1}, {"preset": "jemalloc"},
])
def test_bad_parameters(params):
    with pytest.raises(BadParameter):
        Freelist(MiB, **params)


# ---------------------------------------------------------- replay, brute force
def test_replay_of_a_small_trace():
    rng = random.Random(7)
    rows, live, next_id = [], [], 0
    for _ in range(3000):
        if live and rng.random() < 0.45:
            rows.append((OP_FREE, live.pop(rng.randrange(len(live))), 0, rng.randrange(3)))
        elif live and rng.random() < 0.1:
            rows.append((OP_REALLOC, rng.choice(live), rng.choice([8, 100, 2000, 150_000]), rng.randrange(3)))
        else:
            rows.append((OP_ALLOC, next_id, rng.choice([8, 24, 33, 100, 700, 1500, 9000, 150_000]),
                         rng.randrange(3)))
            live.append(next_id)
            next_id += 1
    trace = from_rows(rows)
    for spec in ALL_SPECS:
        heap = create(spec, 64 * MiB, max_threads=4)
        log = heap.replay(trace)
        check_replay(heap, trace, log)
        again = create(spec, 64 * MiB, max_threads=4).replay(trace)
        assert np.array_equal(log.addr, again.addr), "replay is deterministic"


@pytest.mark.parametrize("spec", ALL_SPECS + ["freelist:order=fifo,tcache_bins=64,mmap_threshold=65536",
                                              "freelist:policy=best,granularity=64,min_chunk=64,header=16"])
def test_random_operations_keep_every_invariant(spec):
    rng = random.Random(zlib.crc32(spec.encode()))
    capacity = 4 * MiB
    heap = create(spec, capacity, max_threads=3)
    checker = Checker(capacity)
    live: list[int] = []
    for step in range(2500):
        roll = rng.random()
        if live and roll < 0.47:
            addr = live.pop(rng.randrange(len(live)))
            heap.deallocate(addr, rng.randrange(3))
            checker.remove(addr)
        elif roll < 0.003:
            heap.free()
            live.clear()
            checker = Checker(capacity)
        else:
            size = rng.choice([rng.randint(1, 64), rng.randint(1, 1100), rng.randint(1, 9000),
                               rng.randint(60_000, 300_000) if rng.random() < 0.05 else 40])
            try:
                addr = heap.allocate(size, rng.randrange(3))
            except OutOfMemory:
                continue
            checker.add(addr, heap.live_blocks()[addr], size)
            live.append(addr)
        if step % 250 == 0:
            assert_heap_consistent(heap)
    assert_heap_consistent(heap)


REPLAYER_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
static int64_t rows[3 * 100000], out[100000 + 1];
static void *ptrs[100000];
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    ssize_t got = 0, n;
    while ((n = read(fd, (char *)rows + got, sizeof rows - got)) > 0) got += n;
    close(fd);
    long count = got / 24;
    for (long i = 0; i < count; i++) {
        int64_t op = rows[3 * i], id = rows[3 * i + 1], size = rows[3 * i + 2];
        if (op == 0) ptrs[id] = malloc(size);
        else if (op == 1) free(ptrs[id]);
        else ptrs[id] = realloc(ptrs[id], size);
        out[i] = (int64_t)(uintptr_t)ptrs[id];
    }
    out[count] = (int64_t)(uintptr_t)sbrk(0);
    fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, out, (count + 1) * 8);
    close(fd);
    return 0;
}
"""


def libc_version() -> tuple[int, int] | None:
    try:
        text = ctypes.CDLL("libc.so.6").gnu_get_libc_version
        text.restype = ctypes.c_char_p
        major, minor = text().decode().split(".")[:2]
        return int(major), int(minor)
    except (OSError, AttributeError, ValueError):
        return None


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("cc") is None
                    or not (2, 30) <= (libc_version() or (0, 0)) <= (2, 41),
                    reason="needs x86-64 glibc 2.30..2.41 and a C compiler")
def test_same_addresses_as_the_real_glibc(tmp_path):
    """Replay one single-threaded trace through this machine's glibc and through the model."""
    rng = random.Random(11)
    rows, live, next_id = [], [], 0
    for _ in range(20_000):
        roll = rng.random()
        if live and roll < 0.45:
            rows.append((OP_FREE, live.pop(rng.randrange(len(live))), 0, 0))
        elif live and roll < 0.5:
            rows.append((OP_REALLOC, rng.choice(live), int(rng.lognormvariate(5, 1.5)) + 1, 0))
        else:
            size = int(rng.lognormvariate(4, 1.5)) + 1 if rng.random() > 0.01 else rng.randint(100_000, 400_000)
            rows.append((OP_ALLOC, next_id, size, 0))
            live.append(next_id)
            next_id += 1
    (tmp_path / "replay.c").write_text(REPLAYER_C)
    subprocess.run(["cc", "-O1", "-o", str(tmp_path / "replay"), str(tmp_path / "replay.c")], check=True)
    np.array([row[:3] for row in rows], np.int64).tofile(tmp_path / "trace.bin")
    subprocess.run([str(tmp_path / "replay"), str(tmp_path / "trace.bin"), str(tmp_path / "out.bin")], check=True,
                   env=allocator_environment())  # glibc's defaults (no MALLOC_*_ tunables from the environment)
    real = np.fromfile(tmp_path / "out.bin", np.int64)
    heap_start = real[0] - 0x2A0  # the first chunk follows the tcache struct
    model = glibc(1 << 32)
    log = model.replay(from_rows(rows))
    in_heap = np.abs(real[:-1] - heap_start) < (1 << 30)
    assert np.array_equal(in_heap, log.addr < (1 << 31)), "the same requests are mmapped"
    assert np.array_equal((real[:-1] - heap_start)[in_heap], log.addr[in_heap])
    assert real[-1] - heap_start == model.arena_info()["brk"]


# ------------------------------------------------------------ shared pieces
def test_glibc_bin_indices():
    assert bin_index(32) == 2 and bin_index(1008) == 63 and bin_index(1024) == 64
    assert largebin_index(3135) == 96 and largebin_index(3136) == 97 and largebin_index(1 << 30) == 126
    assert all(largebin_index(s) <= largebin_index(s + 16) for s in range(1024, 600_000, 16))


def test_maxtree_and_bitset_against_brute_force():
    rng = random.Random(3)
    n = 700
    tree, values = new_tree(n), [0] * n
    bits, members = new_bitset(5000), set()
    for _ in range(3000):
        slot, value = rng.randrange(n), rng.choice([0, 0, rng.randrange(1, 50)])
        tree_set(tree, slot, value)
        values[slot] = value
        lo, need = rng.randrange(n), rng.randrange(1, 50)
        assert tree_first_at_least(tree, lo, need) == next((s for s in range(lo, n) if values[s] >= need), -1)
        assert tree_last_at_least(tree, lo, need) == next((s for s in range(lo, -1, -1) if values[s] >= need), -1)
        position = rng.randrange(5000)
        if rng.random() < 0.5:
            bitset_set(bits, position)
            members.add(position)
        else:
            bitset_clear(bits, position)
            members.discard(position)
        probe = rng.randrange(5000)
        assert bitset_next(bits, probe) == min((m for m in members if m >= probe), default=-1)
        assert bitset_prev(bits, probe) == max((m for m in members if m <= probe), default=-1)
    tree_clear_range(tree, 0, n)
    assert tree[1] == 0 and not tree[tree[0]:].any()
    bitset_clear_all(bits)
    assert bitset_next(bits, 0) == -1 and not bits[1 + 2 * bits[0]:].any()
