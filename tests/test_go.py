"""The go model: size classes, tiny allocator, mcache/mcentral/mheap, explicit frees and the paced mark-sweep GC."""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from allocators import go, go_heap
from allocators.conformance import check_replay
from allocators.go_gc import gc_cycle
from allocators.go_layout import (
    I_BITS,
    I_MCACHE,
    I_PAGEMAP,
    I_SPANS,
    I_TINY,
    MC_STRIDE,
    MC_TINY,
    N_SPAN_CLASSES,
    NO_BLOCK,
    PH,
)
from allocators.shared.go_sizeclasses import GO_TABLE, objects_per_span, size_to_class
from allocators.shared.pageheap import PH_FREE_PAGES, PH_FREE_RUNS, PH_HEAP_PAGES, PH_RECORDS
from allocators.shared.spans import (
    SP_ALLOC_BITS,
    SP_CLASS,
    SP_MARK_BITS,
    SP_NFREE,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SP_STATE,
    SPAN_LARGE,
    SPAN_SMALL,
    SR_LIVE,
)
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

CAPACITY = 64 << 20
PAGE = 8192
MIB = 1 << 20


def make(capacity=CAPACITY, threads=4, **params):
    return go.Go(capacity, max_threads=threads, **params)


def counter(heap, name):
    return heap.counters()[name]


def span_of(heap, addr):
    return int(heap.state[I_PAGEMAP][addr >> 13])


def field(heap, s, f):
    return int(heap.state[I_SPANS][(s << 4) + f])


def walk_spans(heap):
    """[(span id, start page, npages, state)] over the mapped heap, via the page map."""
    words, pagemap = heap.state[0], heap.state[I_PAGEMAP]
    out, page = [], 0
    while page < words[PH + PH_HEAP_PAGES]:
        s = int(pagemap[page])
        start, npages = field(heap, s, SP_START), field(heap, s, SP_NPAGES)
        assert start == page and npages >= 1
        out.append((s, start, npages, field(heap, s, SP_STATE)))
        page += npages
    return out


def bit_set(heap, region, i):
    return (int(heap.state[I_BITS][region + (i >> 6)]) >> (i & 63)) & 1


def slots(heap, which=SP_ALLOC_BITS):
    """Addresses of the small-span slots whose allocation (or mark) bit is set, and the large objects."""
    small, large = set(), set()
    for s, start, _, state in walk_spans(heap):
        if state == SPAN_SMALL:
            size, nobj = field(heap, s, SP_OBJ_SIZE), field(heap, s, SP_NOBJ)
            region = field(heap, s, which)
            taken = {start * PAGE + i * size for i in range(nobj) if bit_set(heap, region, i)}
            if which == SP_ALLOC_BITS:
                assert nobj - len(taken) == field(heap, s, SP_NFREE), f"span {s}: free count"
            small |= taken
        elif state == SPAN_LARGE:
            large.add(start * PAGE)
    return small, large


def slot_base(heap, addr):
    s = span_of(heap, addr)
    base, size = field(heap, s, SP_START) * PAGE, field(heap, s, SP_OBJ_SIZE)
    return base + (addr - base) // size * size


def pinned_blocks(heap):
    mcache = heap.state[I_MCACHE]
    blocks = mcache[MC_TINY :: MC_STRIDE]
    return {int(b) for b in blocks if b != NO_BLOCK}


def audit(heap, live, exact=True):
    """live: addr -> requested size of every live object.  Checks the spans, bits and tiny counts against it."""
    expect_small, expect_large = set(), set()
    tiny_objects: dict[int, int] = {}
    for addr in live:
        s = span_of(heap, addr)
        if field(heap, s, SP_STATE) == SPAN_LARGE:
            expect_large.add(addr)
            continue
        slot = slot_base(heap, addr)
        expect_small.add(slot)
        if field(heap, s, SP_CLASS) == go_heap.TINY_SPAN_CLASS and heap.state[I_TINY].size > 1:
            if heap.state[I_TINY][addr >> 4] != 0:
                tiny_objects[slot] = tiny_objects.get(slot, 0) + 1
    pinned = pinned_blocks(heap)
    small, large = slots(heap)
    if exact:
        assert small == expect_small | pinned and large == expect_large
    else:  # gc mode between cycles: garbage is still allocated
        assert small >= expect_small | pinned and large >= expect_large
    if heap.params["free_mode"] == "gc":
        marked, _ = slots(heap, SP_MARK_BITS)
        assert marked == expect_small | pinned
    counts = heap.state[I_TINY]
    for block in set(tiny_objects) | pinned:
        assert counts[block >> 4] == tiny_objects.get(block, 0) + (block in pinned), f"tiny block {block}"
    words = heap.state[0]
    n_spans = int(words[PH + PH_RECORDS + SR_LIVE] - words[PH + PH_FREE_RUNS])
    assert n_spans == sum(1 for *_, state in walk_spans(heap) if state != 0)


# ------------------------------------------------------------ size classes
def test_granted_is_the_class_size_for_every_small_request():
    sizes = list(range(1, 1100)) + list(np.random.default_rng(1).integers(1100, 32761, 2000)) + [32760]
    rows = []
    for i, size in enumerate(sizes):
        rows += [(OP_ALLOC, i, int(size), 0), (OP_FREE, i, 0, 0)]
    heap = make(tiny=False)
    log = heap.replay(from_rows(rows))
    granted = log.granted[0::2]
    expected = [int(GO_TABLE.size[size_to_class(int(size))]) for size in sizes]
    assert list(granted) == expected


def test_small_large_cut_off_at_32760():
    heap = make()
    small = heap.allocate(32760)
    large = heap.allocate(32761)
    larger = heap.allocate(32769)
    live = heap.live_blocks()
    assert live[small] == 32768 and field(heap, span_of(heap, small), SP_STATE) == SPAN_SMALL
    assert live[large] == 32768 and field(heap, span_of(heap, large), SP_STATE) == SPAN_LARGE
    assert field(heap, span_of(heap, large), SP_NPAGES) == 4 and large % PAGE == 0
    assert live[larger] == 40960 and field(heap, span_of(heap, larger), SP_NPAGES) == 5
    old = make(go_version="1.21")
    assert field(old, span_of(old, old.allocate(32768)), SP_STATE) == SPAN_SMALL
    assert field(old, span_of(old, old.allocate(32769)), SP_STATE) == SPAN_LARGE
    assert counter(heap, "large_allocs") == 2 and counter(heap, "mheap_alloc_spans") == 3


def test_malloc_header_for_pointerful_objects_above_512():
    heap = make(noscan="none")
    a = heap.allocate(513)  # 521 -> class 27 (576 B), the object after the 8 B header
    assert heap.live_blocks()[a] == 568 and (a - 8) % PAGE == 0
    b = heap.allocate(512)
    assert heap.live_blocks()[b] == 512  # heap bits in the span, no header
    assert field(heap, span_of(heap, a), SP_CLASS) == 27 << 1  # scan span class
    heap.deallocate(a)
    assert heap.allocate(513) == a
    old = make(noscan="none", go_version="1.21")
    c = old.allocate(513)
    assert old.live_blocks()[c] == 576


@pytest.mark.parametrize(("version", "noscan", "nelems"), [("1.26", "all", 504), ("1.22", "all", 512),
                                                           ("1.22", "none", 504), ("1.27", "none", 496)])
def test_objects_per_span_follow_the_go_version(version, noscan, nelems):
    assert objects_per_span(2, version, scan=noscan == "none") == nelems
    heap = make(go_version=version, noscan=noscan, tiny=False)
    addrs = [heap.allocate(16) for _ in range(nelems)]
    assert counter(heap, "mcache_refills") == 1 and addrs == list(range(0, 16 * nelems, 16))
    assert heap.allocate(16) == PAGE  # the next span
    assert counter(heap, "mcache_refills") == 2 and counter(heap, "spans_allocated") == 2


# ------------------------------------------------------------ placement
def test_lowest_free_index_first_within_a_span():
    heap = make()
    addrs = [heap.allocate(100) for _ in range(40)]  # class 9: 112 B
    assert addrs == [i * 112 for i in range(40)]
    for i in (30, 3, 17):
        heap.deallocate(addrs[i])
    assert [heap.allocate(100) for _ in range(4)] == [addrs[3], addrs[17], addrs[30], 40 * 112]


def test_tiny_objects_share_16_byte_blocks():
    heap = make()
    a, b, c, d = (heap.allocate(n) for n in (1, 2, 4, 8))
    assert (a, b, c, d) == (0, 2, 4, 8)  # offsets aligned to 2, 4, 8 by size
    e = heap.allocate(3)  # no room: a new block, and it has more room left (13 > 0): switch
    assert e == 16
    assert heap.allocate(5) == 19 and heap.allocate(6) == 24  # 6 is aligned to 2
    assert heap.allocate(12) == 32  # 12 > 16 - 30 % 16: new block; 12 < offset 14: switch
    assert heap.allocate(4) == 44
    assert counter(heap, "tiny_allocs") == 9 and counter(heap, "tiny_blocks") == 3
    live = heap.live_blocks()
    assert live[a] == 1 and live[d] == 8 and live[e] == 3  # granted = the request
    audit(heap, live)
    assert make(noscan="none").allocate(1) % 8 == 0  # pointerful: no tiny packing


def test_tiny_no_switch_when_the_old_block_has_more_room():
    heap = make()
    assert heap.allocate(2) == 0  # block 0, offset 2
    assert heap.allocate(15) == 16  # new block 16; 15 < 2 is false: block 0 stays current
    assert heap.allocate(4) == 4  # still block 0
    assert pinned_blocks(heap) == {0}


def test_tiny_block_is_freed_when_all_its_objects_are_dead():
    heap = make()
    objs = [heap.allocate(4) for _ in range(8)]  # blocks 0 and 16, 4 objects each; block 16 current
    assert [o // 16 for o in objs] == [0] * 4 + [1] * 4
    for o in objs[:3]:
        heap.deallocate(o)
    assert slots(heap)[0] == {0, 16}
    heap.deallocate(objs[3])
    assert slots(heap)[0] == {16}  # block 0 freed
    for o in objs[4:]:
        heap.deallocate(o)
    assert slots(heap)[0] == {16}  # block 16 is pinned by the mcache
    assert heap.allocate(8) == 0  # no room in block 16: a new block at the lowest free slot, switch
    assert slots(heap)[0] == {0}  # the old current block had no objects left: freed on the switch
    audit(heap, heap.live_blocks())


# ------------------------------------------------------------ mcache / mcentral / mheap
def test_refills_per_thread_and_span_returned_to_the_heap_when_empty():
    heap = make()
    nelems = objects_per_span(9, "1.27")  # 112 B noscan: 72 per span (Go 1.26+)
    first = [heap.allocate(100, 0) for _ in range(nelems)]
    assert counter(heap, "mcache_refills") == 1
    other = heap.allocate(100, 1)  # thread 1 gets its own span
    assert other == PAGE and counter(heap, "mcache_refills") == 2
    nxt = heap.allocate(100, 0)  # thread 0's span is full: refill (full span -> mcentral's full list)
    assert nxt == 2 * PAGE and counter(heap, "mcache_refills") == 3
    assert counter(heap, "mcentral_uncache_span") == 1 and counter(heap, "spans_allocated") == 3
    free_before = int(heap.state[0][PH + PH_FREE_PAGES])
    for i, addr in enumerate(first):
        heap.deallocate(addr, thread=i % 4)  # frees from any thread release the slot
    assert counter(heap, "spans_freed") == 1 and counter(heap, "mheap_free_spans") == 1
    assert int(heap.state[0][PH + PH_FREE_PAGES]) == free_before + 1
    assert heap.allocate(100, 2) == 0  # thread 2's new span reuses page 0 (first fit)
    audit(heap, heap.live_blocks())


def test_partial_spans_are_reused_before_new_ones():
    heap = make(tiny=False)
    a = [heap.allocate(1024) for _ in range(8)]  # class 32: 8 per 1-page span
    b = heap.allocate(1024)  # second span
    heap.deallocate(a[5])  # first span: full -> partial
    for _ in range(7):
        heap.allocate(1024)  # fill the second span
    assert heap.allocate(1024) == a[5]  # refill took the partial span
    assert counter(heap, "spans_allocated") == 2 and b == PAGE


def test_metadata_and_footprint():
    heap = make(threads=2)
    assert heap.footprint == 0
    heap.allocate(100, 0)
    heap.allocate(40000, 1)
    assert heap.footprint == 4 * MIB  # one 4 MiB growth
    spans_in_use = 2
    expected = (
        spans_in_use * go_heap.MSPAN_BYTES + 512 * go_heap.PAGE_META_BYTES
        + 2 * 8 * 2 + 16  # 72-object span: two 2-word bitmaps; large span: 16 B
        + 2 * go_heap.MCACHE_BYTES + N_SPAN_CLASSES * go_heap.MCENTRAL_BYTES
    )
    assert heap.metadata_bytes == expected


def test_reset_frees_everything_and_keeps_the_heap():
    heap = make()
    first = [heap.allocate(n) for n in (3, 5, 100, 50000, 7)]
    footprint = heap.footprint
    heap.free()
    assert heap.footprint == footprint and int(heap.state[I_TINY][:64].sum()) == 0
    assert [heap.allocate(n) for n in (3, 5, 100, 50000, 7)] == first
    audit(heap, heap.live_blocks())


# ------------------------------------------------------------ gc mode
def test_gc_frees_are_not_reusable_before_a_cycle():
    heap = make(free_mode="gc")
    a = [heap.allocate(64) for _ in range(10)]
    heap.deallocate(a[2])
    heap.deallocate(a[7])
    assert heap.allocate(64) == 10 * 64  # the freed slots are still allocated
    audit(heap, heap.live_blocks(), exact=False)
    heap.collect()
    assert counter(heap, "gc_cycles") == 1 and counter(heap, "sweep_freed_objects") == 2
    assert [heap.allocate(64) for _ in range(3)] == [a[2], a[7], 11 * 64]  # lowest first after the sweep
    audit(heap, heap.live_blocks())


def test_gc_cycle_runs_at_the_4_mib_goal():
    heap = make(free_mode="gc", collector="stw")
    nelems = objects_per_span(6, "1.27")  # 64 B noscan: 126 per 8 KiB span; heapLive grows 8 KiB per span
    for _ in range(512 * nelems):
        heap.deallocate(heap.allocate(64))  # all garbage
    assert counter(heap, "gc_cycles") == 0 and heap.heap_live == 4 * MIB == heap.heap_goal
    assert heap.footprint == 4 * MIB
    # The 513th span would pass the goal: the full span goes back to its mcentral, then a cycle runs first.
    assert heap.allocate(64) == 0
    assert counter(heap, "gc_cycles") == 1 and counter(heap, "sweep_freed_objects") == 512 * nelems
    assert counter(heap, "spans_swept") == 512 and counter(heap, "spans_freed") == 512
    assert heap.footprint == 4 * MIB and heap.heap_goal == 4 * MIB and heap.heap_live == PAGE
    assert counter(heap, "peak_heap_live") == 4 * MIB


def test_gc_goal_follows_the_live_heap_and_gogc():
    heap = make(free_mode="gc", gogc=50)
    assert heap.heap_goal == 2 * MIB  # heapMinimum = 4 MiB * GOGC / 100
    keep = [heap.allocate(100_000) for _ in range(12)]  # 13 pages each: 1.2 MiB live
    heap.collect()
    marked = 12 * 13 * PAGE
    assert heap.heap_live == marked and heap.heap_goal == max(marked + marked // 2, 2 * MIB)
    big = make(free_mode="gc", collector="stw")
    live = [big.allocate(100_000) for _ in range(40)]  # 4 MiB of large objects, all live
    assert counter(big, "gc_cycles") == 1  # the 40th passed the 4 MiB goal
    big.collect()
    assert big.heap_goal == 2 * 40 * 13 * PAGE
    assert keep and live


def test_gogc_off_never_collects():
    heap = make(free_mode="gc", gogc="off")
    for _ in range(3000):
        heap.deallocate(heap.allocate(5000))
    assert counter(heap, "gc_cycles") == 0 and heap.footprint > 4 * MIB
    spec = allocators.create("go:free_mode=gc,gogc=off", CAPACITY)
    assert spec.params["gogc"] == -1


def test_gc_emergency_cycle_at_capacity():
    heap = make(capacity=2 * MIB, free_mode="gc")  # the 4 MiB goal is beyond the capacity
    for _ in range(200):
        heap.deallocate(heap.allocate(50_000))
    assert counter(heap, "gc_emergency_cycles") >= 1 and heap.footprint == 2 * MIB
    with pytest.raises(allocators.OutOfMemory):
        make(capacity=2 * MIB, free_mode="gc", gogc="off").replay(
            from_rows([(OP_ALLOC, i, 50_000, 0) for i in range(60)])
        )


def test_gc_sweeps_tiny_blocks_and_large_objects():
    heap = make(free_mode="gc")
    tiny = [heap.allocate(4) for _ in range(8)]  # blocks 0 and 16
    large = heap.allocate(100_000)
    for o in tiny[:4]:
        heap.deallocate(o)
    heap.deallocate(large)
    heap.collect()
    small, big = slots(heap)
    assert small == {16} and big == set()  # block 0 died; block 16 lives; the large object died at sweep
    assert counter(heap, "large_frees") == 1
    assert pinned_blocks(heap) == set()  # a cycle resets every mcache's tiny block
    audit(heap, heap.live_blocks())


# ------------------------------------------------------------ brute force
def random_trace(seed, n_rows=6000, threads=3):
    rng = np.random.default_rng(seed)
    rows, live, next_id = [], [], 0
    for _ in range(n_rows):
        thread = int(rng.integers(threads))
        if live and rng.random() < 0.45:
            ident = live.pop(int(rng.integers(len(live))))
            rows.append((OP_FREE, ident, 0, thread))
            continue
        kind = rng.random()
        if kind < 0.3:
            size = int(rng.integers(1, 16))
        elif kind < 0.95:
            size = int(rng.lognormal(5, 1.5)) + 1
        else:
            size = int(rng.integers(30_000, 150_000))
        if live and rng.random() < 0.05:
            ident = live[int(rng.integers(len(live)))]
            rows.append((OP_REALLOC, ident, size, thread))
        else:
            rows.append((OP_ALLOC, next_id, size, thread))
            live.append(next_id)
            next_id += 1
    return from_rows(rows)


def check_alignment(heap, trace, log):
    """Tiny objects: aligned by their size's rule inside one 16 B block; others: the class's min align (>= 8)."""
    tiny_on = heap.params["tiny"] and heap.params["noscan"] != "none"
    headers = heap.params["noscan"] != "all" and heap.params["go_version"] >= "1.22"
    sizes = set(GO_TABLE.size.tolist())
    for row in np.flatnonzero(trace.op != OP_FREE):
        addr, granted, size = int(log.addr[row]), int(log.granted[row]), int(trace.size[row])
        assert granted >= size
        if tiny_on and granted < 16:  # granted = the original request (in-place reallocs keep it)
            step = 8 if granted % 8 == 0 else 4 if granted % 4 == 0 else 2 if granted % 2 == 0 else 1
            assert addr % step == 0 and addr // 16 == (addr + granted - 1) // 16
        elif granted >= 32768 and granted % PAGE == 0:
            assert addr % PAGE == 0  # large object, or the 32 KiB class (one object per span)
        else:
            header = 8 if headers and granted + 8 > 512 and granted + 8 in sizes else 0
            min_align = int(GO_TABLE.min_align[int(np.searchsorted(GO_TABLE.size, granted + header))])
            assert min_align >= 8 and (addr - header) % min_align == 0 and addr % 8 == 0


@pytest.mark.parametrize(
    "params",
    [{}, {"free_mode": "gc", "gogc": 10}, {"free_mode": "gc", "noscan": "small"}, {"noscan": "none", "tiny": False}],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_traces_keep_every_invariant(params, seed):
    trace = random_trace(seed)
    heap = make(capacity=256 * MIB, **params)
    log = heap.replay(trace)
    check_replay(heap, trace, log)
    check_alignment(heap, trace, log)
    if heap.params["free_mode"] == "gc" and heap.params["gogc"] == 10:
        assert counter(heap, "gc_cycles") >= 3
    live = {}
    for row in range(len(trace)):
        ident = int(trace.obj[row])
        if trace.op[row] == OP_FREE:
            live.pop(ident)
        elif trace.op[row] != 3:
            live[ident] = int(log.addr[row])
    addrs = dict.fromkeys(live.values(), 0)
    if heap.params["free_mode"] == "gc":
        audit(heap, addrs, exact=False)
        gc_cycle(heap.state)
    audit(heap, addrs)
    assert heap.metadata_bytes > 0 and log.peak_footprint >= 4 * MIB


def test_replay_matches_heap_accounting_in_explicit_mode():
    """heap_live = allocated bytes of uncached spans + whole slot bytes of cached spans + large pages."""
    trace = random_trace(5, n_rows=3000)
    heap = make(capacity=256 * MIB)
    heap.replay(trace)
    cached = {int(s) for t in range(heap.max_threads) for s in
              heap.state[I_MCACHE][t * MC_STRIDE : t * MC_STRIDE + N_SPAN_CLASSES] if s >= 0}
    total = 0
    for s, _, npages, state in walk_spans(heap):
        if state == SPAN_SMALL:
            size, nobj, nfree = field(heap, s, SP_OBJ_SIZE), field(heap, s, SP_NOBJ), field(heap, s, SP_NFREE)
            total += size * (nobj if s in cached else nobj - nfree)
        elif state == SPAN_LARGE:
            total += npages * PAGE
    assert heap.heap_live == total


def test_bad_parameters():
    for bad in ({"free_mode": "rc"}, {"noscan": "some"}, {"gogc": -2}, {"gogc": "x"}, {"tiny": "yes"},
                {"go_version": "1.15"}, {"go_version": "banana"}):
        with pytest.raises(allocators.BadParameter):
            make(**bad)
    assert make(go_version=1.2).params["go_version"] == "1.20"  # a spec string's 1.20 arrives as a float
    with pytest.raises(allocators.BadParameter, match="collect"):
        make().collect()
