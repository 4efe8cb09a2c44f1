"""The shared page heap (allocators.shared.pageheap): growth, split, coalescing, best and first fit."""

from __future__ import annotations

import numpy as np
import pytest

from allocators.shared import pageheap as ph_mod
from allocators.shared.pageheap import (
    PH_C_ALLOCS,
    PH_C_COALESCES,
    PH_C_FREES,
    PH_C_GROWS,
    PH_C_SPLITS,
    PH_FREE_PAGES,
    PH_FREE_RUNS,
    PH_HEAP_PAGES,
    PH_METADATA,
    PH_RECORDS,
    PH_RESERVED_PAGES,
    PH_SLOTS,
    POLICY_BEST_FIT,
    POLICY_FIRST_FIT,
    init_pageheap,
    new_pageheap_arrays,
    pageheap_alloc,
    pageheap_footprint,
    pageheap_free,
    pageheap_reset,
)
from allocators.shared.spans import (
    NO_SPAN,
    SP_NPAGES,
    SP_START,
    SP_STATE,
    SPAN_FREE_RUN,
    SPAN_LARGE,
    SPAN_SHIFT,
    SR_LIVE,
)

PH = 3  # a region not at 0, as in a real allocator's words


class Heap:
    """A page heap in a words array at base PH, with Python conveniences for the tests."""

    def __init__(self, capacity_pages=1024, grow_pages=128, policy=POLICY_BEST_FIT, arena_pages=8192):
        self.words = np.zeros(PH + PH_SLOTS, np.int64)
        init_pageheap(
            self.words, PH, page_shift=13, capacity_pages=capacity_pages, grow_pages=grow_pages,
            arena_pages=arena_pages, policy=policy, span_bytes=48, pagemap_entry_bytes=8, bitmap_words=1,
        )
        self.arrays = new_pageheap_arrays(capacity_pages, policy, 1)
        self.spans, self.pagemap = self.arrays[0], self.arrays[1]

    def w(self, slot):
        return int(self.words[PH + slot])

    def alloc(self, npages):
        return int(pageheap_alloc(self.words, PH, *self.arrays, npages))

    def free(self, s):
        pageheap_free(self.words, PH, *self.arrays, s)

    def reset(self):
        pageheap_reset(self.words, PH, *self.arrays)

    def field(self, s, f):
        return int(self.spans[(s << SPAN_SHIFT) + f])

    def run(self, s):
        return self.field(s, SP_START), self.field(s, SP_NPAGES)

    def runs(self):
        """Walk the heap run by run via the page map: [(start, npages, state)]."""
        out, page = [], 0
        while page < self.w(PH_HEAP_PAGES):
            s = int(self.pagemap[page])
            start, npages = self.run(s)
            assert start == page and npages >= 1
            assert int(self.pagemap[start + npages - 1]) == s
            out.append((start, npages, self.field(s, SP_STATE)))
            page += npages
        return out

    def check(self):
        runs = self.runs()
        assert sum(n for _, n, _ in runs) == self.w(PH_HEAP_PAGES)
        free = [(a, n) for a, n, state in runs if state == SPAN_FREE_RUN]
        for (a, n, sa), (b, _, sb) in zip(runs, runs[1:], strict=False):
            assert not (sa == SPAN_FREE_RUN and sb == SPAN_FREE_RUN), f"adjacent free runs at {a}+{n} and {b}"
        assert self.w(PH_FREE_PAGES) == sum(n for _, n in free)
        assert self.w(PH_FREE_RUNS) == len(free)
        assert self.w(PH_RECORDS + SR_LIVE) == len(runs)
        assert self.w(PH_METADATA) == 48 * len(runs) + 8 * self.w(PH_HEAP_PAGES)
        return runs


@pytest.mark.parametrize("policy", [POLICY_BEST_FIT, POLICY_FIRST_FIT])
def test_growth_split_and_coalesce(policy):
    heap = Heap(policy=policy)
    a = heap.alloc(3)
    assert heap.w(PH_HEAP_PAGES) == 128 and heap.w(PH_C_GROWS) == 1  # grown by 1 MiB
    assert pageheap_footprint(heap.words, PH) == 128 << 13
    assert heap.run(a) == (0, 3) and heap.field(a, SP_STATE) == SPAN_LARGE
    b = heap.alloc(5)
    c = heap.alloc(2)
    assert heap.run(b) == (3, 5) and heap.run(c) == (8, 2)
    assert heap.w(PH_C_SPLITS) == 3
    assert heap.check() == [(0, 3, SPAN_LARGE), (3, 5, SPAN_LARGE), (8, 2, SPAN_LARGE), (10, 118, SPAN_FREE_RUN)]
    heap.free(b)
    assert heap.check()[1] == (3, 5, SPAN_FREE_RUN) and heap.w(PH_C_COALESCES) == 0
    heap.free(a)  # merges forward with b's run
    assert heap.check()[0] == (0, 8, SPAN_FREE_RUN) and heap.w(PH_C_COALESCES) == 1
    heap.free(c)  # merges both ways: one run again
    assert heap.check() == [(0, 128, SPAN_FREE_RUN)]
    assert heap.w(PH_C_COALESCES) == 3 and heap.w(PH_C_ALLOCS) == 3 and heap.w(PH_C_FREES) == 3
    assert heap.w(PH_C_GROWS) == 1


def test_growth_rounds_to_the_quantum_and_merges_with_the_trailing_run():
    heap = Heap(grow_pages=128, arena_pages=8192)
    heap.alloc(100)
    big = heap.alloc(200)  # 28 free pages at the end + a 256-page grow (200 rounded up to 128s)
    assert heap.w(PH_HEAP_PAGES) == 128 + 256 and heap.w(PH_C_GROWS) == 2
    assert heap.run(big) == (100, 200)
    assert heap.w(PH_RESERVED_PAGES) == 8192
    assert heap.check()[-1] == (300, 84, SPAN_FREE_RUN)


def test_best_fit_takes_the_smallest_run_and_first_fit_the_lowest():
    for policy, expected_start in ((POLICY_BEST_FIT, 10), (POLICY_FIRST_FIT, 1)):
        heap = Heap(policy=policy)
        spans = [heap.alloc(n) for n in (1, 5, 4, 3, 1, 2)]  # starts 0, 1, 6, 10, 13, 14
        heap.free(spans[1])  # hole of 5 at page 1
        heap.free(spans[3])  # hole of 3 at page 10
        got = heap.alloc(3)
        assert heap.run(got)[0] == expected_start, policy
        heap.check()


def test_capacity_is_the_limit():
    heap = Heap(capacity_pages=100, grow_pages=128)
    a = heap.alloc(60)
    assert heap.w(PH_HEAP_PAGES) == 100  # the grow is clamped to the capacity
    assert heap.alloc(41) == NO_SPAN
    b = heap.alloc(40)
    assert b != NO_SPAN and heap.run(b) == (60, 40)
    assert heap.alloc(1) == NO_SPAN
    heap.free(a)
    assert heap.run(heap.alloc(60)) == (0, 60)
    heap.check()


def test_no_growth_when_even_the_rest_of_the_capacity_is_too_small():
    heap = Heap(capacity_pages=10, grow_pages=4)
    heap.alloc(3)  # heap 4 pages
    assert heap.alloc(8) == NO_SPAN  # 1 trailing + 6 left < 8: the heap must not grow for nothing
    assert heap.w(PH_HEAP_PAGES) == 4 and heap.w(PH_C_GROWS) == 1
    assert heap.alloc(7) != NO_SPAN  # 1 trailing + 6 more pages
    assert heap.w(PH_HEAP_PAGES) == 10
    heap.check()


def test_reset_makes_the_heap_one_free_run():
    for policy in (POLICY_BEST_FIT, POLICY_FIRST_FIT):
        heap = Heap(policy=policy)
        for n in (3, 7, 1, 130, 2):
            heap.alloc(n)
        pages = heap.w(PH_HEAP_PAGES)
        heap.reset()
        assert heap.check() == [(0, pages, SPAN_FREE_RUN)]
        assert heap.w(PH_HEAP_PAGES) == pages
        s = heap.alloc(pages)  # the whole heap in one piece: the index was rebuilt
        assert heap.run(s) == (0, pages) and heap.w(PH_HEAP_PAGES) == pages


@pytest.mark.parametrize("policy", [POLICY_BEST_FIT, POLICY_FIRST_FIT])
def test_random_operations_keep_the_heap_tiled(policy):
    rng = np.random.default_rng(7 + policy)
    heap = Heap(capacity_pages=2048, grow_pages=64, policy=policy)
    live: dict[int, tuple[int, int]] = {}
    for step in range(1500):
        if live and (rng.random() < 0.45 or len(live) > 60):
            s = list(live)[rng.integers(len(live))]
            assert heap.run(s) == live.pop(s)
            heap.free(s)
        else:
            n = int(rng.choice([1, 1, 2, 3, 5, 8, 16, 40, 130]))
            s = heap.alloc(n)
            if s == NO_SPAN:
                continue
            start, npages = heap.run(s)
            assert npages == n and start + n <= heap.w(PH_HEAP_PAGES)
            for other, (a, m) in live.items():
                assert start + n <= a or a + m <= start, f"step {step}: span {s} overlaps {other}"
            live[s] = (start, n)
        if step % 50 == 0:
            heap.check()
    for s in list(live):
        heap.free(s)
    assert heap.check() == [(0, heap.w(PH_HEAP_PAGES), SPAN_FREE_RUN)]


def test_module_documents_its_counters():
    assert len(ph_mod.PH_COUNTER_NAMES) == ph_mod.PH_N_COUNTERS
