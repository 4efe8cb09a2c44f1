"""The jemalloc model: size classes against the reference, slabs, tcache fill / flush / GC, arenas, extents, decay.

tests/data/jemalloc_smallbins_derived.csv is a copy of shared/reference/jemalloc_smallbins_derived.csv (jemalloc
@295e4894, DERIVED from sc.h / sc.c / tcache.c).  Expected class sizes here are computed from jemalloc's spacing
rule (four classes per doubling) and the reference file, not from the module's arrays.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import allocators
from allocators import jemalloc
from allocators.errors import BadParameter, OutOfMemory
from allocators.jemalloc_arena import bin_dalloc, bin_fill, extent_alloc, extent_dalloc
from allocators.jemalloc_extents import X_OS_PAGES, next_psize_pages, quantize_ceil, quantize_floor
from allocators.jemalloc_layout import (
    B_LG_FILL_DIV,
    B_NCACHED,
    B_SHIFT,
    I_BITS,
    I_CLASSES,
    I_PAGEMAP,
    I_SPANS,
    I_STACKS,
    I_TC,
    I_WORDS,
    K_SHIFT,
    K_STACK,
    S_STACK_STRIDE,
    S_TC_STRIDE,
    SP_ARENA,
    T_ARENA,
    T_NEXT_GC_BIN,
    XB,
)
from allocators.shared import jemalloc_sizeclasses as sc
from allocators.shared.spans import (
    SP_CLASS,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SPAN_SHIFT,
)
from bench.sizeclasses import render_csv
from tests.spanwalk import small_spans
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

DATA = Path(__file__).parent / "data"
CAPACITY = 64 << 20
PAGE = 4096
STARTUP = 29 * PAGE  # the tcache stacks and libstdc++'s exception pool (jemalloc_arena.STARTUP_EXTENT_PAGES)


def reference_rows() -> list[dict[str, int]]:
    text = (DATA / "jemalloc_smallbins_derived.csv").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return [{key: int(value) for key, value in row.items()} for row in csv.DictReader(lines)]


def spaced_classes(limit: int) -> list[int]:
    """8, 16, 32, 48, 64, then four per doubling: the sc.h spacing, written out independently."""
    sizes = [8, 16, 32, 48, 64]
    base = 64
    while sizes[-1] < limit:
        sizes.extend(base + k * base // 4 for k in range(1, 5))
        base *= 2
    return [s for s in sizes if s <= limit]


def make(threads=4, capacity=CAPACITY, **params):
    return jemalloc.JEMalloc(capacity, max_threads=threads, **params)


def cls_of(size):
    return sc.JEMALLOC_TABLE.lookup(size)


def ncached(heap, thread, cls):
    tc = heap.state[I_TC]
    return int(tc[thread * int(heap.state[I_WORDS][S_TC_STRIDE]) + (cls << B_SHIFT) + B_NCACHED])


def stack(heap, thread, cls):
    words, classes, stacks = heap.state[I_WORDS], heap.state[I_CLASSES], heap.state[I_STACKS]
    base = thread * int(words[S_STACK_STRIDE]) + int(classes[(cls << K_SHIFT) + K_STACK])
    return [int(a) for a in stacks[base:base + ncached(heap, thread, cls)]]


def audit(heap):
    """Every small region is exactly one of: live, in one tcache stack, free in its slab's bitmap."""
    spans, pagemap, bits = heap.state[I_SPANS], heap.state[I_PAGEMAP], heap.state[I_BITS]
    allocated = set()
    for base, addresses in small_spans(spans, pagemap, bits, int(heap.state[I_WORDS][XB + X_OS_PAGES]), PAGE):
        size, nobj, npages = int(spans[base + SP_OBJ_SIZE]), int(spans[base + SP_NOBJ]), int(spans[base + SP_NPAGES])
        assert (npages * PAGE) % size == 0 and nobj == npages * PAGE // size
        allocated.update(addresses)
    cached = [a for t in range(heap.max_threads) for cls in range(1, sc.N_SMALL + 1) for a in stack(heap, t, cls)]
    live = {a for a, g in heap.live_blocks().items() if g <= sc.SMALL_MAXCLASS}
    assert len(cached) == len(set(cached)), "an object is cached twice"
    assert not live & set(cached), "a live object is also cached"
    assert allocated == live | set(cached), "slab bitmaps disagree with live + cached objects"
    return len(cached)


# ------------------------------------------------------------------ size classes
def test_small_bins_match_the_reference():
    rows = reference_rows()
    assert len(rows) == sc.N_SMALL == 36
    for row, (szind, size, pages, nregs, slots) in zip(rows, sc.small_bins(), strict=True):
        assert (szind, size, pages, nregs, slots) == (
            row["bin"], row["size"], row["slab_pages"], row["nregs"], row["tcache_ncached_max_default"]
        )
        assert pages * PAGE % size == 0 and all(p * PAGE % size for p in range(1, pages))  # smallest exact slab
        assert slots == min(max(2 * nregs, 20), 200)


def test_render_csv_is_the_reference_file():
    reference = "".join(line + "\n" for line in (DATA / "jemalloc_smallbins_derived.csv").read_text().splitlines()
                        if not line.startswith("#"))
    assert render_csv("jemalloc") == reference
    with pytest.raises(ValueError):
        render_csv("jemalloc", table="default")


def test_class_spacing_and_the_cached_large_classes():
    assert sc.all_classes(1 << 22) == spaced_classes(1 << 22)
    assert [int(s) for s in sc.JEMALLOC_TABLE.size[1:]] == spaced_classes(32768)
    assert [int(s) for s in sc.JEMALLOC_TABLE.size[sc.N_SMALL + 1:]] == [16384, 20480, 24576, 28672, 32768]
    assert sc.N_CACHED == 41 and all(sc.NCACHED_MAX[sc.N_SMALL + 1:] == 20)


def test_every_size_up_to_4_mib_is_granted_its_smallest_class():
    classes = np.array(spaced_classes(1 << 23))
    sizes = np.arange(1, (4 << 20) + 1)
    expected = classes[np.searchsorted(classes, sizes)]
    table = sc.JEMALLOC_TABLE
    lookup = np.array([table.size[table.lookup(int(s))] for s in sizes[:32768]])
    assert np.array_equal(lookup, expected[:32768])
    large = np.array([sc.je_large_usize(int(s)) for s in sizes[32768::97]])
    assert np.array_equal(large, expected[32768::97])
    assert [sc.usable_size(int(s)) for s in sizes[::13]] == expected[::13].tolist()


def test_granted_sizes_in_the_model():
    heap = make()
    for request, granted in ((1, 8), (9, 16), (17, 32), (100, 112), (1025, 1280), (14336, 14336), (14337, 16384),
                             (32769, 40960), (100_000, 114_688), (1 << 20, 1 << 20), ((1 << 20) + 1, 1310720)):
        addr = heap.allocate(request)
        assert heap.live_blocks()[addr] == granted
        assert addr % (8 if granted == 8 else 16) == 0


# ------------------------------------------------------------------ slabs and bins
def test_a_fill_takes_half_the_slots_lowest_regions_first():
    heap = make()
    first = heap.allocate(32)
    cls = cls_of(32)
    assert ncached(heap, 0, cls) == 100 - 1  # ncached_max 200 >> lg_fill_div 1
    following = [heap.allocate(32) for _ in range(5)]
    assert following == [first + 32 * k for k in range(1, 6)]  # the fill's order: lowest region first
    assert heap.counters()["tcache_fills"] == 1 and heap.counters()["slabs_allocated"] == 1
    audit(heap)


def test_the_bin_refills_from_its_lowest_nonfull_slab():
    heap = make(narenas=1)
    state = heap.state
    cls = cls_of(2048)  # 2 regions per one-page slab
    scratch = np.zeros(16, np.int64)
    assert bin_fill(state, 0, cls, scratch, 0, 6) == 6
    regions = scratch[:6][::-1].tolist()  # the first taken is on top
    slabs = sorted({a // PAGE for a in regions})
    assert len(slabs) == 3 and regions == sorted(regions)
    pagemap = state[I_PAGEMAP]
    # free one region of the last slab (slabcur: no change), then of the first (it becomes slabcur, the last
    # goes to the nonfull set), then of the middle one (nonfull)
    for page in (slabs[2], slabs[0], slabs[1]):
        bin_dalloc(state, cls, int(pagemap[page]), page * PAGE)
    assert bin_fill(state, 0, cls, scratch, 0, 3) == 3
    assert scratch[:3][::-1].tolist() == [slabs[0] * PAGE, slabs[1] * PAGE, slabs[2] * PAGE]
    # a wholly free slab leaves its bin and its extent goes back
    heap2 = make(narenas=1)
    assert bin_fill(heap2.state, 0, cls, scratch, 0, 2) == 2
    s = int(heap2.state[I_PAGEMAP][scratch[0] // PAGE])
    bin_dalloc(heap2.state, cls, s, int(scratch[0]))
    bin_dalloc(heap2.state, cls, s, int(scratch[1]))
    assert heap2.counters()["slabs_freed"] == 1


def test_a_full_bin_flushes_its_oldest_half():
    heap = make()
    cls = cls_of(4096)  # ncached_max 20, one region per slab
    blocks = [heap.allocate(4096) for _ in range(21)]
    for addr in blocks:
        heap.deallocate(addr, thread=1)
    assert heap.counters()["tcache_flushes"] == 1
    # 20 pushed, the 21st found thread 1's bin full: the 10 oldest went back, then it was pushed
    assert stack(heap, 1, cls) == blocks[10:]
    assert heap.counters()["slabs_freed"] >= 10
    audit(heap)


def test_remote_frees_go_to_the_freeing_threads_tcache_then_to_the_owning_arena():
    heap = make(threads=3, narenas=2)
    cls = cls_of(4096)
    x = heap.allocate(4096, thread=0)
    heap.allocate(64, thread=1)  # thread 1 gets arena 1
    s = int(heap.state[I_PAGEMAP][x // PAGE])
    assert heap.state[I_SPANS][(s << 4) + SP_ARENA] == 0
    heap.deallocate(x, thread=1)
    assert stack(heap, 1, cls) == [x]
    assert heap.allocate(4096, thread=1) == x
    audit(heap)


def test_threads_get_arenas_round_robin_on_first_use():
    heap = make(threads=10)
    for t in (3, 0, 9, 1, 2, 4, 5, 6, 7, 8):
        heap.allocate(32, thread=t)
    tc, stride = heap.state[I_TC], int(heap.state[I_WORDS][S_TC_STRIDE])
    arenas = {t: int(tc[t * stride + T_ARENA]) for t in range(10)}
    assert arenas == {3: 0, 0: 1, 9: 2, 1: 3, 2: 4, 4: 5, 5: 6, 6: 7, 7: 0, 8: 1}
    assert heap.counters()["arenas_used"] == jemalloc.DEFAULT_NARENAS == 8
    # threads of one arena share its slabs; of two arenas they do not
    a, b, c = heap.allocate(32, thread=3), heap.allocate(32, thread=7), heap.allocate(32, thread=0)
    assert a // PAGE == b // PAGE != c // PAGE


# ------------------------------------------------------------------ tcache GC
def test_incremental_gc_flushes_three_quarters_of_an_unused_bins_low_water():
    heap = make()
    cls = cls_of(16)
    heap.allocate(16)  # the bin now caches 99
    big = heap.allocate(32768)
    assert heap.counters()["gc_events"] == 0
    # every 64 KiB allocated, and every 64 KiB freed: one GC event, on the next of the 41 bins (8 B first)
    while heap.counters()["gc_events"] < 2:
        heap.deallocate(big)
        big = heap.allocate(32768)
    # the 16 B bin's first visit: low water 0 (it was just filled): its refill flag is cleared, low water := 99
    assert ncached(heap, 0, cls) == 99 and heap.counters()["gc_flushes"] == 0
    tc = heap.state[I_TC]
    assert tc[(cls << B_SHIFT) + B_LG_FILL_DIV] == 1
    while heap.counters()["gc_events"] < 2 + 41:
        heap.deallocate(big)
        big = heap.allocate(32768)
    # the second visit: low water 99, so 99 - 99 // 4 = 75 of the oldest go back and the next fill is halved
    assert ncached(heap, 0, cls) == 24 and heap.counters()["gc_flushes"] == 1
    assert tc[(cls << B_SHIFT) + B_LG_FILL_DIV] == 2
    audit(heap)


# ------------------------------------------------------------------ extents and decay
def test_large_objects_take_their_class_and_a_pad_page_and_decay_decides_the_footprint():
    never, immediate = make(), make(decay="immediate")
    for heap in (never, immediate):
        small = heap.allocate(100)
        big = heap.allocate(1 << 20)
        assert heap.live_blocks()[big] == 1 << 20
        pages = int(heap.state[I_SPANS][(int(heap.state[I_PAGEMAP][big // PAGE]) << 4) + SP_NPAGES])
        assert pages == 256 + 1
        assert heap.state[I_SPANS][(int(heap.state[I_PAGEMAP][big // PAGE]) << 4) + SP_CLASS] == 0
        before = heap.footprint
        heap.deallocate(big)
        assert heap.counters()["large_frees"] == 1
        del small
    assert never.footprint == before == (7 + 257) * PAGE  # the 112 B slab (7 pages) and the extent stay mapped
    assert immediate.footprint == 7 * PAGE  # only the slab in use
    assert never.allocate(1 << 20) == immediate.allocate(1 << 20)  # first fit: the freed extent again


def test_out_of_memory_and_bad_parameters():
    heap = make(capacity=1 << 20)
    with pytest.raises(OutOfMemory):
        heap.allocate(2 << 20)
    for bad in ({"narenas": 0}, {"narenas": 1.5}, {"decay": "10s"}, {"grow_bytes": 1000}, {"grow_bytes": True}):
        with pytest.raises(BadParameter):
            make(**bad)
    assert allocators.create("jemalloc:immediate", CAPACITY).params["decay"] == "immediate"


def test_replay_is_deterministic_and_realloc_stays_in_place_within_a_class():
    rows = [(OP_ALLOC, 0, 100, 0), (OP_REALLOC, 0, 112, 0), (OP_REALLOC, 0, 113, 0), (OP_ALLOC, 1, 40000, 1),
            (OP_REALLOC, 1, 40960, 1), (OP_FREE, 0, 0, 1), (OP_FREE, 1, 0, 0)]
    rng = np.random.default_rng(1)
    live = []
    for i in range(2, 3000):
        if live and rng.random() < 0.45:
            rows.append((OP_FREE, live.pop(int(rng.integers(len(live)))), 0, int(rng.integers(4))))
        else:
            size = int(rng.choice([8, 24, 100, 700, 3000, 9000, 20000, 70000]))
            rows.append((OP_ALLOC, i, size, int(rng.integers(4))))
            live.append(i)
    trace = from_rows(rows)
    first, second = make().replay(trace), make().replay(trace)
    assert np.array_equal(first.addr, second.addr) and np.array_equal(first.granted, second.granted)
    assert first.counters == second.counters
    assert first.addr[1] == first.addr[0] and first.addr[2] != first.addr[0]
    assert first.addr[4] == first.addr[3]  # 40000 and 40960 share the 40 KiB class
    assert first.counters["reallocs_in_place"] == 2


def test_audit_after_random_traffic_and_reset():
    heap = make(threads=4, narenas=2)
    rng = np.random.default_rng(7)
    live = []
    for _ in range(4000):
        if live and rng.random() < 0.5:
            heap.deallocate(live.pop(int(rng.integers(len(live)))), thread=int(rng.integers(4)))
        else:
            live.append(heap.allocate(int(rng.choice([8, 48, 160, 1000, 5000, 14000, 30000])), int(rng.integers(4))))
    assert audit(heap) > 0
    footprint = heap.footprint
    heap.free()
    assert heap.footprint == footprint and audit(heap) == 0
    heap.allocate(64)
    audit(heap)


def test_each_arena_has_its_own_extents_dirty_before_retained():
    heap = make(threads=2, narenas=2)
    a = heap.allocate(1 << 20, thread=0)  # arena 0 grows a 2 MiB chunk
    b = heap.allocate(1 << 20, thread=1)  # arena 1 grows its own
    assert a == STARTUP + PAGE and b == 2 << 20  # arena 0's chunk starts with the startup extents, the 16 B slab
    heap.deallocate(a, thread=0)  # dirty in arena 0
    assert heap.footprint == 2 * 257 * PAGE  # active + dirty; the chunks' unused pages are retained
    c = heap.allocate(1 << 20, thread=1)  # arena 1 cannot use arena 0's extent: it grows; its old chunk's
    # 255 retained pages do not merge with the new chunk (a head extent: no merge across mmap regions)
    # (arena 0's first grow was at startup, before the counters)
    assert c == 4 << 20 and heap.counters()["os_grows"] == 2 and heap.counters()["extent_merges"] == 0
    assert heap.allocate(1 << 20, thread=0) == a  # arena 0 reuses its dirty extent first


def test_the_first_chunk_starts_with_the_startup_extents_outside_the_footprint():
    # real jemalloc 5.3 (LD_PRELOADed libjemalloc2): the warm-up malloc(16) lands 116 KiB into the first
    # 2 MiB chunk, after the tcache bin stacks (28 KiB + pad) and libstdc++'s exception pool (80 KiB + pad)
    heap = make(threads=1)
    assert heap.allocate(16) == STARTUP
    # the startup extents and the warm-up's 16 B slab are in the real replayer's baseline: not counted
    assert heap.footprint == 0 and heap.counters()["os_grows"] == 0 and heap.counters()["slabs_allocated"] == 0
    assert heap.allocate(1792 << 10) == STARTUP + PAGE  # 449 pages with the pad
    assert heap.allocate(128 << 10) == STARTUP + 450 * PAGE  # 33: the chunk's last page used
    assert heap.counters()["os_grows"] == 0
    assert heap.allocate(16 << 10) == 2 << 20  # the chunk is full: the next grow


def test_thread_0s_first_gc_event_goes_to_the_16_byte_bin():
    # the startup malloc of libstdc++'s 80 KiB exception pool fired one GC event (szind 0, empty) before main
    heap = make(threads=2)
    tc, stride = heap.state[I_TC], int(heap.state[I_WORDS][S_TC_STRIDE])
    assert tc[T_NEXT_GC_BIN] == cls_of(16)
    for thread in (0, 1):
        heap.allocate(8, thread=thread)  # the thread's set-up
        for _ in range(4):
            heap.allocate(16 << 10, thread=thread)  # 64 KiB allocated: one GC event
    assert heap.counters()["gc_events"] == 2
    assert tc[T_NEXT_GC_BIN] == cls_of(16) + 1  # thread 0 collected the 16 B bin
    assert tc[stride + T_NEXT_GC_BIN] == cls_of(8) + 1  # another thread starts at szind 0


def test_extent_lengths_are_quantized_with_the_pad():
    # sz_psz_quantize_floor / _ceil with sz_large_pad = 1 page: page-size class + 1 page (lengths <= pad as they are)
    assert [int(quantize_floor(n, 1)) for n in (1, 2, 5, 6, 9, 10, 11, 29, 30)] == [1, 2, 5, 6, 9, 9, 11, 29, 29]
    assert [int(quantize_ceil(n, 1)) for n in (1, 2, 5, 6, 9, 10, 11, 29, 30)] == [1, 2, 5, 6, 9, 11, 11, 29, 33]


def test_dirty_extents_are_not_split_for_requests_64_times_smaller():
    heap = make(threads=1)
    a = heap.allocate(4 << 20)  # 1025 pages (with the pad) of a 1280-page chunk
    heap.deallocate(a)  # dirty; its eset bin is the 1280-page class
    b = heap.allocate(40 << 10)  # 11 pages: 1280 > 64 x 11, so the dirty extent is not split for it
    assert a == 512 * PAGE and b == STARTUP + PAGE  # from the first chunk's retained rest
    assert heap.allocate(80 << 10) == a  # 21 pages: 1280 <= 64 x 21, the dirty extent is used


def test_small_dirty_extents_coalesce_lazily_large_ones_eagerly():
    heap = make(threads=1)
    state = heap.state
    spans = state[I_SPANS]

    def page(s):
        return int(spans[(s << SPAN_SHIFT) + SP_START])

    s1, s2, s3 = extent_alloc(state, 0, 1), extent_alloc(state, 0, 1), extent_alloc(state, 0, 4)
    assert page(s2) == page(s1) + 1 and page(s3) == page(s1) + 2
    extent_dalloc(state, s1)
    extent_dalloc(state, s2)  # below SC_LARGE_MINCLASS (16 KiB): dirty as they are, not merged
    assert heap.counters()["extent_merges"] == 0
    s4 = extent_alloc(state, 0, 2)  # neither 1-page extent holds 2 pages: from the retained rest
    assert page(s4) == page(s1) + 6
    extent_dalloc(state, s3)  # 4 pages (16 KiB): coalesced eagerly with both dirty neighbours below
    assert heap.counters()["extent_merges"] == 2
    assert page(extent_alloc(state, 0, 6)) == page(s1)


def test_arenas_grow_by_page_size_classes():
    assert [int(next_psize_pages(p)) for p in (1, 3, 4, 7, 8, 512, 640, 896, 1024, 1280)] == [
        2, 4, 5, 8, 10, 640, 768, 1024, 1280, 1536]
    heap = make()
    words = heap.state[I_WORDS]
    heap.allocate(5 << 20)  # 1281 pages with the pad: the first class from 2.5 MiB up that holds them is 6 MiB
    assert words[XB + X_OS_PAGES] == 512 + 1536  # (the 2 MiB chunk was grown at startup)
    heap.allocate(6 << 20)  # the next growth starts one class above (7 MiB): 1537 pages fit
    assert words[XB + X_OS_PAGES] == 512 + 1536 + 1792 and heap.counters()["os_grows"] == 2
