"""Locality proxies: how cache- and TLB-friendly an allocator's placement is.

Nothing here runs the program's real memory accesses; the trace says which
objects are touched and the AllocLog says where they live, and one jitted pass
(`_locality_pass`) derives:

- hot reuse: does an allocation get a block that was freed a moment ago (its
  lines are likely still in cache)?  A ring of the addresses of the last 64
  frees of the whole process, and one ring per thread of the last 64 frees
  that thread did; an allocation is a hit when its address is in the ring.
- placement of consecutive allocations of one thread: same 64 B line, same
  4 KiB page, and the log2 of the stride between them.
- the access stream through a simulated L1 + L2 + TLB (`bench.metrics.cachesim`).
- distinct 4 KiB pages touched by that stream.

Definitions (exact; the METRICS registry repeats them in one line each):

- An *allocation* is an ALLOC row, or a REALLOC row whose new address differs
  from the object's previous one (it moved).  A *free* is a FREE row, or the
  release of the old block by a moving REALLOC (after the new block is taken,
  as the replay driver does).
- hot_reuse_rate = allocations whose address equals one of the addresses of
  the last 64 frees (process-wide, counted before this allocation) / allocations.
  hot_reuse_rate_thread: the same with the ring of the last 64 frees done by the
  allocating thread itself.
- Pairs: each allocation of thread t with the previous allocation of thread t
  (whatever happened in between).  alloc_same_line_rate = pairs with
  addr >> 6 equal / pairs; alloc_same_page_rate = pairs with addr >> 12 equal /
  pairs; alloc_mean_log2_stride = mean over pairs of bit_length(|addr - prev|)
  (= floor(log2 |d|) + 1, and 0 for d = 0: a 16 B stride scores 5, 4 KiB 13).
- Access stream, in trace order, by line (64 B):
  ALLOC: every line of [addr, addr + requested);  FREE: the block's first line
  (the line holding addr);  ACCESS: [addr, addr + size), size 0 = the object's
  current requested size;  REALLOC in place: [addr, addr + new size);
  REALLOC that moved: the copy reads [old, old + min(old size, new size)), then
  [new, new + new size) is touched (the old block's release adds no access).
  Every line is counted, whatever the block size, and the TLB is looked up
  once per line access; a range longer than 1 152 lines (72 KiB) simulates
  only its first and last 512 lines and counts the lines between as misses of
  the L1, the L2 and (one per page) the TLB (`cachesim`'s bounded ranges: at
  most ~1 100 simulated lines per range, so a 1 TiB block costs what a
  64 KiB one does; the L1 figures stay exact, the L2 and TLB ones are upper
  bounds for ranges of 72 KiB to 2 MiB).
- l1_miss_rate = L1 misses / line accesses; l2_miss_rate = L2 misses / L2
  lookups (= L1 misses: a local rate); tlb_miss_rate = TLB misses / line accesses;
  l2_misses_per_kop = 1000 * L2 misses / trace rows.
- distinct_pages = number of distinct 4 KiB pages holding a byte of the
  stream's ranges above (FREE: the page of addr), exactly.  A range of at
  most `SMALL_RANGE_PAGES` pages puts its pages in a hash set; a longer one
  is kept as a page interval, and the intervals are merged (sorted, overlaps
  joined) after every chunk.  The count is the set's size plus the merged
  intervals' lengths minus the set's pages that fall inside an interval.  So
  the pass's memory and time are bounded by its rows (at most
  `SMALL_RANGE_PAGES` set entries and one interval per range), whatever the
  block sizes: a 1 TiB block is one interval, not 2^28 set entries.

`LocalityAccumulator` runs the pass chunk by chunk (a trace streamed from a
generator or a file), carrying the rings, the per-slot records, the cache
simulator, the page set and the merged page intervals from one chunk to the
next: the figures are those of one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.log import AllocLog
from allocators.shared.bits import bit_length
from bench.metrics.cachesim import LINE_BYTES, PAGE_BYTES, hierarchy_counts, make_hierarchy, touch_range
from labcore.hashtable import find, rehash_set
from labcore.jitcache import holds_kernels
from labcore.kernels import njit_without_refcounts
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, Trace

holds_kernels(__file__)

#: Frees remembered by the hot-reuse rings.
RING = 64
#: Ranges of at most this many pages count their pages in a hash set; longer ones are kept as intervals.
SMALL_RANGE_PAGES = 16
LINE_SHIFT = LINE_BYTES.bit_length() - 1
PAGE_SHIFT = PAGE_BYTES.bit_length() - 1

# Slots of the pass's `counts` output.
K_ALLOCATIONS, K_HOT, K_HOT_THREAD, K_PAIRS, K_SAME_LINE, K_SAME_PAGE, K_LOG2_SUM, K_RANGES = range(8)
N_COUNTS = 8

#: (name, unit, one-line definition) of every metric this module computes.
DOCS = (
    ("hot_reuse_rate", "ratio",
     "allocations (ALLOC, moving REALLOC) whose address is one of the last 64 freed addresses (process-wide ring)"),
    ("hot_reuse_rate_thread", "ratio",
     "allocations whose address is one of the last 64 addresses freed by the allocating thread itself"),
    ("alloc_same_line_rate", "ratio",
     "pairs of consecutive allocations of one thread whose addresses share a 64 B line (addr >> 6 equal)"),
    ("alloc_same_page_rate", "ratio",
     "pairs of consecutive allocations of one thread whose addresses share a 4 KiB page (addr >> 12 equal)"),
    ("alloc_mean_log2_stride", "bits",
     "mean over those pairs of bit_length(|addr - previous addr|) (floor(log2 d) + 1; 0 when d = 0)"),
    ("l1_miss_rate", "ratio",
     "L1 (32 KiB 8-way LRU, 64 B lines) misses / line accesses of the stream (alloc: block, free: 1st line, ...;"
     " ranges over 72 KiB: first and last 32 KiB simulated, the middle counted as misses)"),
    ("l2_miss_rate", "ratio", "L2 (1 MiB 16-way LRU) misses / L2 lookups (= L1 misses): local miss rate"),
    ("l2_misses_per_kop", "per 1000 rows", "1000 x L2 misses / trace rows (accesses that would go to memory)"),
    ("tlb_miss_rate", "ratio", "TLB (64 entries, 4-way LRU, 4 KiB pages) misses / line accesses"),
    ("line_accesses", "lines", "line accesses in the simulated stream (every line of every touched range)"),
    ("distinct_pages", "pages", "distinct 4 KiB pages touched by the access stream"),
)


@njit(cache=True, inline="always")
def _remember_free(ring, thread_rings, ring_next, address, thread, n_threads):
    """Put a freed address in the process ring and in its thread's ring (slot n_threads of ring_next: process)."""
    slot = ring_next[n_threads]
    ring[slot] = address
    ring_next[n_threads] = (slot + 1) & (RING - 1)
    slot = ring_next[thread]
    thread_rings[thread * RING + slot] = address
    ring_next[thread] = (slot + 1) & (RING - 1)


@njit(cache=True, inline="always")
def _emit_pages(page_first, page_last, counts, address, nbytes):
    """Record the page range of [address, address + nbytes) unless it repeats the previous one."""
    first = address >> PAGE_SHIFT
    last = (address + nbytes - 1) >> PAGE_SHIFT
    index = counts[K_RANGES]
    if index > 0 and page_first[index - 1] == first and page_last[index - 1] == last:
        return
    page_first[index] = first
    page_last[index] = last
    counts[K_RANGES] = index + 1


@njit_without_refcounts
def _locality_pass(
    op, obj, size, thread, addr, n_threads,
    object_addr, object_size, ring, thread_rings, ring_next, previous_addr,
    hierarchy, page_first, page_last, counts,
):
    """One pass over trace + log; fills `counts`, the hierarchy's counters and the page ranges."""
    for row in range(op.shape[0]):
        code = op[row]
        ident = obj[row]
        who = thread[row]
        address = addr[row]
        if code == OP_FREE:
            touch_range(hierarchy, address, 1)
            _emit_pages(page_first, page_last, counts, address, 1)
            _remember_free(ring, thread_rings, ring_next, address, who, n_threads)
            continue
        if code == OP_ACCESS:
            touched = size[row]
            if touched == 0:
                touched = object_size[ident]
            touch_range(hierarchy, address, touched)
            _emit_pages(page_first, page_last, counts, address, touched)
            continue
        request = size[row]
        old_address = object_addr[ident]
        moved = code == OP_ALLOC or address != old_address
        if moved:
            counts[K_ALLOCATIONS] += 1
            hot = 0
            hot_thread = 0
            base = who * RING
            for slot in range(RING):  # no early exit: the compiler vectorises the scan
                hot |= ring[slot] == address
                hot_thread |= thread_rings[base + slot] == address
            counts[K_HOT] += hot
            counts[K_HOT_THREAD] += hot_thread
            previous = previous_addr[who]
            if previous >= 0:
                counts[K_PAIRS] += 1
                counts[K_SAME_LINE] += (address >> LINE_SHIFT) == (previous >> LINE_SHIFT)
                counts[K_SAME_PAGE] += (address >> PAGE_SHIFT) == (previous >> PAGE_SHIFT)
                counts[K_LOG2_SUM] += bit_length(abs(address - previous))
            previous_addr[who] = address
        if code != OP_ALLOC and moved:  # the copy reads the old block, then the old block is released
            copied = min(object_size[ident], request)
            touch_range(hierarchy, old_address, copied)
            _emit_pages(page_first, page_last, counts, old_address, copied)
        touch_range(hierarchy, address, request)
        _emit_pages(page_first, page_last, counts, address, request)
        if code != OP_ALLOC and moved:
            _remember_free(ring, thread_rings, ring_next, old_address, who, n_threads)
        object_addr[ident] = address
        object_size[ident] = request


@njit(cache=True)
def _add_pages(keys, used, page_first, page_last, n_ranges, long_first, long_last):
    """Add the pages of the short ranges to the hash set `keys` (rehashed twice as large when half full) and
    copy the long ranges to `long_first`, `long_last`; return (keys, used, long ranges copied)."""
    mask = keys.shape[0] - 1
    n_long = 0
    for index in range(n_ranges):
        first = page_first[index]
        last = page_last[index]
        if last - first >= SMALL_RANGE_PAGES:
            long_first[n_long] = first
            long_last[n_long] = last
            n_long += 1
            continue
        for page in range(first, last + 1):
            slot = find(keys, page, mask)
            if keys[slot] == page:
                continue
            keys[slot] = page
            used += 1
            if 2 * used > keys.shape[0]:
                keys = rehash_set(keys, 2 * keys.shape[0])
                mask = keys.shape[0] - 1
    return keys, used, n_long


def merge_intervals(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint page intervals covering the same pages as the closed intervals [first[i], last[i]]
    (intervals that overlap or touch are joined)."""
    if not first.size:
        return first, last
    order = np.argsort(first, kind="stable")
    first, last = first[order], np.maximum.accumulate(last[order])
    starts = np.empty(first.size, bool)
    starts[0] = True
    starts[1:] = first[1:] > last[:-1] + 1  # not covered by (nor adjacent to) the intervals before it
    begin = np.flatnonzero(starts)
    end = np.append(begin[1:], first.size) - 1
    return first[begin], last[end]


def pages_in_intervals(pages: np.ndarray, first: np.ndarray, last: np.ndarray) -> int:
    """How many of `pages` fall inside the sorted disjoint intervals [first, last]."""
    if not pages.size or not first.size:
        return 0
    index = np.searchsorted(first, pages, side="right") - 1
    inside = index >= 0
    inside[inside] = pages[inside] <= last[index[inside]]
    return int(inside.sum())


class LocalityAccumulator:
    """The locality pass over a trace's chunks in order (`update`), then its figures (`result`).

    `hierarchy`: the cache simulator to run the access stream through (a fresh `cachesim.make_hierarchy()`
    unless given).  The distinct pages of the stream are kept in a hash set across chunks.
    """

    def __init__(self, facts: TraceFacts, hierarchy: tuple | None = None) -> None:
        n_threads = max(facts.n_threads, 1)
        n_slots = max(facts.peak_live_objects, 1)
        self.n_rows = facts.rows
        self.n_threads = n_threads
        self.hierarchy = make_hierarchy() if hierarchy is None else hierarchy
        self.counts = np.zeros(N_COUNTS, np.int64)
        self.object_addr = np.full(n_slots, -1, np.int64)
        self.object_size = np.zeros(n_slots, np.int64)
        self.ring = np.full(RING, -1, np.int64)
        self.thread_rings = np.full(n_threads * RING, -1, np.int64)
        self.ring_next = np.zeros(n_threads + 1, np.int64)
        self.previous_addr = np.full(n_threads, -1, np.int64)
        self.page_first = np.empty(0, np.int64)
        self.page_last = np.empty(0, np.int64)
        self.pages = np.full(1 << 12, -1, np.int64)
        self.pages_used = 0
        self.long_first = np.empty(0, np.int64)  # merged intervals of the long ranges so far
        self.long_last = np.empty(0, np.int64)

    def update(self, chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> None:
        rows = len(chunk)
        if not rows:
            return
        if self.page_first.shape[0] < 2 * rows + 1:
            self.page_first = np.empty(2 * rows + 1, np.int64)
            self.page_last = np.empty(2 * rows + 1, np.int64)
            self.new_first = np.empty(2 * rows + 1, np.int64)
            self.new_last = np.empty(2 * rows + 1, np.int64)
        self.counts[K_RANGES] = 0
        _locality_pass(
            chunk.op, chunk.slots, chunk.size, chunk.thread, addr, self.n_threads,
            self.object_addr, self.object_size, self.ring, self.thread_rings, self.ring_next, self.previous_addr,
            self.hierarchy, self.page_first, self.page_last, self.counts,
        )
        self.pages, self.pages_used, n_long = _add_pages(
            self.pages, self.pages_used, self.page_first, self.page_last, self.counts[K_RANGES],
            self.new_first, self.new_last,
        )
        if n_long:
            self.long_first, self.long_last = merge_intervals(
                np.concatenate((self.long_first, self.new_first[:n_long])),
                np.concatenate((self.long_last, self.new_last[:n_long])),
            )

    def distinct_pages(self) -> int:
        """Distinct pages of the stream so far: the set's, the intervals', less the set's inside an interval."""
        spans = int((self.long_last - self.long_first + 1).sum())
        keys = self.pages[self.pages >= 0]
        return int(self.pages_used) + spans - pages_in_intervals(keys, self.long_first, self.long_last)

    def result(self) -> dict[str, float | int]:
        counts, n_rows = self.counts, self.n_rows
        cache = hierarchy_counts(self.hierarchy)
        allocations, pairs = int(counts[K_ALLOCATIONS]), int(counts[K_PAIRS])
        return {
            "hot_reuse_rate": _ratio(counts[K_HOT], allocations),
            "hot_reuse_rate_thread": _ratio(counts[K_HOT_THREAD], allocations),
            "alloc_same_line_rate": _ratio(counts[K_SAME_LINE], pairs),
            "alloc_same_page_rate": _ratio(counts[K_SAME_PAGE], pairs),
            "alloc_mean_log2_stride": _ratio(counts[K_LOG2_SUM], pairs),
            "l1_miss_rate": _ratio(cache["l1_misses"], cache["l1_accesses"]),
            "l2_miss_rate": _ratio(cache["l2_misses"], cache["l2_accesses"]),
            "l2_misses_per_kop": _ratio(1000 * cache["l2_misses"], n_rows),
            "tlb_miss_rate": _ratio(cache["tlb_misses"], cache["tlb_accesses"]),
            "line_accesses": cache["l1_accesses"],
            "distinct_pages": self.distinct_pages(),
        }


def compute(trace: Trace, log: AllocLog, hierarchy: tuple | None = None) -> dict[str, float | int]:
    """Every locality metric of one replay (`hierarchy`: a fresh `cachesim.make_hierarchy()` unless given)."""
    accumulator = LocalityAccumulator(trace.facts(), hierarchy)
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    return accumulator.result()


def _ratio(part: int, whole: int) -> float:
    """part / whole as a float, 0.0 when whole is 0."""
    return float(part) / float(whole) if whole else 0.0
