"""go: the Go runtime's memory allocator (mcache -> mcentral -> mheap), with explicit frees or a paced mark-sweep GC.

Design (golang/go src/runtime/malloc.go, mcache.go, mcentral.go, mheap.go;
the numbers in shared/reference/go-allocator.md).
The main allocator works in runs of 8 KiB pages.  Small requests are rounded
up to one of Go's 67 size classes (class 0 = large objects) and carved from
*spans*: runs of pages that hold objects of one size, with one allocation bit
per object.  Each trace thread is a P, with its own *mcache*.

Allocating a small object (size <= 32760 B; 32768 B before Go 1.22):

1. The *span class* is `sizeclass << 1 | noscan`: Go's size -> class lookup
   (`size_to_class8` up to 1016 B, `size_to_class128` above; allocators.shared
   .go_sizeclasses), of `size + 8` for a pointerful object > 512 B in Go 1.22+
   (the 8 B malloc header sits at the start of the slot; the object's address
   is slot + 8 and it is granted elemsize - 8).
2. The mcache holds one span per span class (136 slots).  If it has a free
   slot, take the *lowest free index* (Go's nextFreeFast: count trailing
   zeros of allocCache, the complement of the allocation bits from
   freeindex on).  Here that is allocators.shared.spanbitmap's
   `bitmap_take_lowest` (a search from the lowest word that may hold a free
   bit + one cttz).  No lock.  Granted = the class size.
3. Otherwise *refill*: the full span goes back to its mcentral
   (`uncacheSpan`: onto the *full* list, or *partial* if it has free slots)
   and `cacheSpan` takes the first span of the mcentral's partial list (a
   FIFO spanSet: push at the back, pop the front), or else *grows* the
   mcentral: a new span of the class's page count from the mheap, all slots
   free (`nelems` from go_sizeclasses.objects_per_span for the Go version
   and scan/noscan: Go 1.22+ reserves heap bits in pointerful spans <= 512 B,
   Go 1.26+ 128 B of inline mark bits).
4. The mheap is the shared page heap (allocators.shared.pageheap) with Go's
   policy: address-ordered *first fit* (Go's page allocator: bitmap + radix
   tree of free-run summaries, which finds the lowest fitting run), growth by
   `alignUp(npages, 512)` pages = 4 MiB multiples, address space reserved in
   64 MiB arenas (reported in the page heap's reserved_pages only).  Free runs
   coalesce; pages are never returned to the OS (no scavenger), so the
   footprint (mapped pages) only grows.

The tiny allocator (mallocgcTiny): a pointer-free request < 16 B is packed
into the mcache's current 16 B *tiny block* (span class 5: class 2, noscan).
The offset is aligned to 8, 4 or 2 when the size is a multiple of 8, 4 or 2;
if the object fits (offset + size <= 16) it goes there.  Otherwise a new 16 B
slot is taken (step 2) and the object is put at its start; the mcache switches
to the new block only if it has more room left than the old one
(`size < tinyoffset or tiny == 0`).  A tiny object is *granted its own size*
(it shares the 16 B block with others); its address is aligned only by the rule
above (1 B for odd sizes).  The block is one object to the allocator: it is
freed only when all its objects are dead.  Here a per-block count
(`tiny_counts`, int8 per 16 B of address space) holds the live objects of the
block plus one while it is the mcache's current block ("pinned").  A FREE of a
tiny object decrements it; at zero the block is freed as a 16 B object.

Large objects (> 32760 B): ceil(size / 8 KiB) pages straight from the mheap
(span class 0 or 1), page aligned, granted the whole pages.

Pointers.  Traces carry no type information, so `noscan` says which objects
are pointer-free: "all" (default: every object noscan, so no malloc headers and
tiny packing for < 16 B), "none" (every object has pointers: no tiny packing,
8 B header above 512 B in Go 1.22+, scan span layouts), or "small" (requests
< 16 B are pointer-free, larger ones have pointers).  `tiny=false` turns the
tiny allocator off (< 16 B noscan requests then use the 8 B/16 B classes).

Frees (`free_mode`):

- "explicit" (default): a FREE releases the slot at once: its allocation bit
  is cleared (the object index is (offset * divMagic) >> 32, Go's 32-bit
  reciprocal), so the slot is the lowest free index again.  A span that is
  not in an mcache moves from full to partial when it gets its first free
  slot, and goes back to the mheap *immediately* when its last object is
  freed.  A span held by an mcache stays there, even when empty, until the
  mcache lets go of it (a refill, when it is full).  Large objects go back to
  the mheap at once.  Go has no explicit free; this mode is the allocator's
  structure without the collector.  (In Go a slot below a cached span's
  freeindex becomes free only by a sweep; here "lowest free index" includes
  slots freed since the span was cached.)  heap_live (reported through
  peak_heap_live) then counts allocated slots, the free slots of cached spans
  and large pages, without Go's tail-waste term (which only a cycle would
  correct), so it stays exact.
- "gc" (preset `go:gc`): a FREE only makes the object garbage (the trace
  says when a Go program drops its last reference), and a GOGC-paced
  mark-sweep collector, allocators.go_gc, reclaims it: by default Go's
  pacer with a concurrent mark (a trigger below the goal, allocate-black,
  objects dropped during the mark surviving it), or `collector=stw`, a
  stop-the-world cycle at the goal.  The allocator keeps the mark bits
  current (set when a slot is allocated, cleared by the FREE; a large
  object has a live flag), sets the survivor ("black") bits while a mark
  runs, checks the pacer before every span refill and large allocation,
  and runs one emergency cycle before it fails with out of memory.  A
  cycle flushes every mcache and sweeps every span, so a dead slot is
  reusable only after one.  `gogc` = GOGC (default 100, `off` never
  collects); `collector`, `trigger` (45/64), `mark_bytes` ("goal") and
  `roots` (0 B) are the pacer's parameters; all ignored in explicit mode.
  go_gc's docstring explains marking, pacing and the cycle.

Counters: allocs, frees (FREE rows), tiny_allocs (requests served by the tiny
allocator), tiny_blocks (16 B blocks it took), large_allocs, large_frees (given
back to the mheap, in gc mode at sweep), mcache_refills, mcentral_cache_span /
mcentral_uncache_span (lock-free spanSet operations since Go 1.16: no lock),
mheap_alloc_spans / mheap_free_spans (each takes mheap.lock; Go serves < 16
page requests from a per-P page cache and takes the lock only to refill it,
which is not modelled), spans_allocated (small spans made by mcentral.grow),
spans_swept, spans_freed (small spans given back to the mheap), gc_cycles,
gc_emergency_cycles, objects_marked (survivors of the cycles, summed),
sweep_freed_objects, peak_heap_live (bytes), peak_heap_inuse (bytes: the
pages of spans in use, Go's HeapInuse, at their peak; `bench fidelity`
compares it with real Go's), mark_phase_frees (FREEs while a mark ran:
floating garbage), heap_goal (the last goal, bytes), then the page heap's
counters.

footprint = the mheap's mapped pages * 8 KiB.  metadata_bytes = an mspan (160
B) per span in use (free page runs have none in Go: the page allocator's bitmap
covers them) + 9 B per mapped page (the 8 B span pointer of heapArena.spans
and about a byte of per-page bitmaps) + allocBits and gcmarkBits of every span
in use (Go's gcBits: ceil(nelems / 64) * 8 B each) + 1192 B per mcache in use
(136 span pointers, tiny state, stack cache) + the 136 mcentrals (192 B each
with padding).  All kept as running sums, so heap_stats is O(1).

Code: this module is the shell (parameters, state); the kernels are in
allocators.go_heap, the collector in allocators.go_gc.  State (slots and
indices named in allocators.go_layout, which also holds the span returns the
kernels and the collector share): `words` (counters; the
page heap's region; scalars: small-size limit, tiny limit, noscan rule,
header threshold, free mode, heap_live, goal, ...; then the 136 mcentrals'
partial/full list heads, allocators.shared.central),
`class8`/`class128` (Go's lookup tables), `classes` (per span class: object
size, pages, nelems, divMagic, tail bytes, GC-bitmap bytes, span bytes),
`mcache` (per thread: 136 span ids, tiny block, tiny offset, in-use flag),
`tiny_counts`, then the page heap's `spans`, `pagemap`, `run_heads`,
`run_bits`, `run_tree`, the span bitmaps `bits` (allocation and mark
regions, and the concurrent mark's black region).  Span record
fields used: SP_START, SP_NPAGES, SP_STATE, SP_CLASS (the span class),
SP_OBJ_SIZE, SP_NOBJ, SP_NFREE, the bitmap offsets, SP_SCAN, SP_LIST
(NO_SPAN for a small span: it is in an mcache), SP_USER0 (a large
object's live flag), SP_USER1 (its black flag, SP_BLACK), SP_USER2 (divMagic).

Costs.  Allocation hit: one lookup, one bitmap word search, O(1) (a span's
search skips at most its 16 bitmap words).  Refill: O(1) list work, plus for
a new span O(log pages) in the page heap and O(pages + bitmap words) to set
it up.  Free: a page-map lookup, a multiply for the index, O(1); a span given
back costs a page-heap free, O(log pages).  A GC cycle: see allocators.go_gc.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocators.errors import BadParameter
from allocators.go_gc import (
    TRIGGER_MIN,
    Pacer,
    full_cycle,
    init_pacer,
    parse_gogc,
)
from allocators.go_heap import (
    ALIGNMENT,
    ARENA_PAGES,
    FREE_MODES,
    GROW_PAGES,
    MCENTRAL_BYTES,
    MSPAN_BYTES,
    NOSCAN_RULES,
    PAGE_META_BYTES,
    PAGE_SIZE,
    alloc_block,
    free_block,
    heap_stats,
    reset_state,
)
from allocators.go_layout import (
    BITMAP_WORDS,
    CB,
    I_BITS,
    I_CLASS8,
    I_CLASS128,
    I_CLASSES,
    I_MCACHE,
    I_PAGEMAP,
    I_RUN_BITS,
    I_RUN_HEADS,
    I_RUN_TREE,
    I_SPANS,
    I_TINY,
    I_WORDS,
    K_GCBITS,
    K_MAGIC,
    K_NELEMS,
    K_PAGES,
    K_SIZE,
    K_SPAN_BYTES,
    K_STRIDE,
    K_TAIL,
    MC_ACTIVE,
    MC_STRIDE,
    MC_TINY_OFFSET,
    N_SPAN_CLASSES,
    N_WORDS,
    OWN_COUNTERS,
    PH,
    S_BLACK_BASE,
    S_HEADER_MIN,
    S_HEAP_GOAL,
    S_HEAP_LIVE,
    S_MARKING,
    S_METADATA,
    S_NOSCAN_RULE,
    S_SMALL_LIMIT,
    S_STATIC_METADATA,
    S_TINY_LIMIT,
    S_TRIGGER,
    TINY_SHIFT,
)
from allocators.hardening import HARDENING_OFF, HARDENING_PRESETS, harden, with_hardening
from allocators.protocol import Allocator, default_capacity, no_reuse_capacity
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.central import init_central
from allocators.shared.go_sizeclasses import (
    DIV_MAGIC,
    GO_TABLE,
    MIN_SIZE_FOR_MALLOC_HEADER,
    NUM_SIZE_CLASSES,
    PAGE_SHIFT,
    SIZE_TO_CLASS8,
    SIZE_TO_CLASS128,
    TINY_SIZE,
    objects_per_span_array,
    parse_version,
    small_size_limit,
)
from allocators.shared.pageheap import (
    PH_COUNTER_NAMES,
    POLICY_FIRST_FIT,
    init_pageheap,
    new_pageheap_arrays,
)
from allocators.shared.spans import (
    NO_SPAN,
    new_span_bits,
)
from workloads.facts import TraceFacts
from workloads.trace import Trace

LATEST_VERSION = "1.27"


def _parse_version(value: Any) -> str:
    """'1.22', 'go1.22', '1.22.3' or a number such as 1.22 (from a spec string) -> '1.22'."""
    if isinstance(value, float):
        value = f"{value:.2f}"
    try:
        major, minor = parse_version(str(value))
    except ValueError as error:
        raise BadParameter(f"go: go_version: {error}") from None
    return f"{major}.{minor}"


@register
class Go(Allocator):
    name = "go"
    summary = (
        "Go runtime allocator: 68 size classes, per-thread mcache spans (lowest free index first), mcentral "
        "partial/full spans, first-fit 8 KiB-page mheap growing by 4 MiB; tiny allocator; explicit frees or "
        "a GOGC-paced mark-sweep with Go's concurrent-mark pacer (free_mode=gc; collector=stw for stop-the-world)"
    )
    alignment = ALIGNMENT  # per instance: 1 when the tiny allocator packs odd-sized objects
    defaults = with_hardening(
        {"free_mode": "explicit", "gogc": 100, "noscan": "all", "tiny": True, "go_version": LATEST_VERSION,
         "collector": "concurrent", "trigger": TRIGGER_MIN, "mark_bytes": "goal", "roots": 0}
    )
    presets = {"gc": {"free_mode": "gc"}, **HARDENING_PRESETS}
    configure_instance = harden
    hardening_params = HARDENING_OFF
    variants = ("noscan=none", "free_mode=gc,noscan=small", "tiny=false,go_version=1.21")
    counter_names = OWN_COUNTERS + PH_COUNTER_NAMES
    #: mcentral and mheap operations take locks; mcache allocation and tiny packing do not.
    shared_counters = ("mcentral_cache_span", "mcentral_uncache_span", "mheap_alloc_spans", "mheap_free_spans")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state)

    #: Replays get at least one heap arena of address space, so the mheap grows by whole 4 MiB steps as in Go.
    MIN_REPLAY_CAPACITY = ARENA_PAGES << PAGE_SHIFT

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """Room for what is live, and for the garbage a collector lets grow between cycles: GOGC % more live
        heap (the default margin covers GOGC=100; GOGC=off keeps every request: no reuse)."""
        resolved = {**cls.defaults, **cls.presets.get(params.get("preset"), {}), **params}
        capacity = default_capacity(trace)
        if resolved["free_mode"] == "gc":
            gogc = parse_gogc(resolved["gogc"])
            if gogc < 0:
                capacity = no_reuse_capacity(trace)
            else:
                capacity = default_capacity(trace, max(1.0, (100 + gogc) / 200))
        return max(capacity, cls.MIN_REPLAY_CAPACITY)

    def check_params(self) -> None:
        p = self.params
        if p["free_mode"] not in FREE_MODES:
            raise BadParameter(f"go: free_mode must be one of {', '.join(FREE_MODES)}, got {p['free_mode']!r}")
        if p["noscan"] not in NOSCAN_RULES:
            raise BadParameter(f"go: noscan must be one of {', '.join(NOSCAN_RULES)}, got {p['noscan']!r}")
        if not isinstance(p["tiny"], (bool, np.bool_)):
            raise BadParameter(f"go: tiny must be true or false, got {p['tiny']!r}")
        p["tiny"] = bool(p["tiny"])
        p["gogc"] = parse_gogc(p["gogc"])
        self.pacer = Pacer.from_params(p)
        p["go_version"] = _parse_version(p["go_version"])
        if self.capacity < PAGE_SIZE:
            raise BadParameter(f"go: capacity_bytes {self.capacity} is smaller than one {PAGE_SIZE} B page")
        # Tiny objects of odd size sit at any byte of their block; everything else is 8-aligned.
        self.alignment = 1 if p["tiny"] and p["noscan"] != "none" else ALIGNMENT

    def make_state(self) -> tuple:
        p = self.params
        version = p["go_version"]
        header_era = parse_version(version) >= (1, 22)
        capacity_pages = self.capacity >> PAGE_SHIFT
        words = np.zeros(N_WORDS, np.int64)
        init_pageheap(
            words, PH, page_shift=PAGE_SHIFT, capacity_pages=capacity_pages, grow_pages=GROW_PAGES,
            arena_pages=ARENA_PAGES, policy=POLICY_FIRST_FIT, span_bytes=MSPAN_BYTES,
            pagemap_entry_bytes=PAGE_META_BYTES, bitmap_words=BITMAP_WORDS,
        )
        init_central(words, CB, N_SPAN_CLASSES)
        init_pacer(words, p["free_mode"] == "gc", p["gogc"], self.pacer)
        words[S_SMALL_LIMIT] = small_size_limit(version)
        words[S_TINY_LIMIT] = TINY_SIZE if p["tiny"] else 0
        words[S_NOSCAN_RULE] = NOSCAN_RULES.index(p["noscan"])
        words[S_HEADER_MIN] = MIN_SIZE_FOR_MALLOC_HEADER if header_era else 1 << 62
        static = N_SPAN_CLASSES * MCENTRAL_BYTES
        words[S_STATIC_METADATA] = static
        words[S_METADATA] = static
        classes = np.zeros(N_SPAN_CLASSES * K_STRIDE, np.int64)
        for noscan in (0, 1):
            nelems = objects_per_span_array(version, scan=not noscan)
            for cls in range(1, NUM_SIZE_CLASSES):
                row = ((cls << 1) | noscan) * K_STRIDE
                size, pages, n = int(GO_TABLE.size[cls]), int(GO_TABLE.pages[cls]), int(nelems[cls])
                classes[row + K_SIZE] = size
                classes[row + K_PAGES] = pages
                classes[row + K_NELEMS] = n
                classes[row + K_MAGIC] = int(DIV_MAGIC[cls])
                classes[row + K_TAIL] = pages * PAGE_SIZE - n * size
                classes[row + K_GCBITS] = 2 * ((n + 63) // 64) * 8
                classes[row + K_SPAN_BYTES] = pages * PAGE_SIZE
        mcache = np.full(self.max_threads * MC_STRIDE, NO_SPAN, np.int64)
        mcache[MC_TINY_OFFSET::MC_STRIDE] = 0
        mcache[MC_ACTIVE::MC_STRIDE] = 0
        try:
            tiny_counts = np.zeros((self.capacity >> TINY_SHIFT) if p["tiny"] else 1, np.int8)
            spans, pagemap, run_heads, run_bits, run_tree = new_pageheap_arrays(
                capacity_pages, POLICY_FIRST_FIT, BITMAP_WORDS
            )
            bits = new_span_bits(capacity_pages + 1, BITMAP_WORDS)
            if p["free_mode"] == "gc" and self.pacer.concurrent:  # the black regions after the two per record
                words[S_BLACK_BASE] = bits.size
                bits = np.concatenate([bits, np.zeros((capacity_pages + 1) * BITMAP_WORDS, np.int64)])
        except (MemoryError, ValueError):
            raise BadParameter(
                f"go: capacity_bytes {self.capacity} too large for this model's page- and block-indexed tables"
            ) from None
        arrays = {
            I_WORDS: words, I_CLASS8: SIZE_TO_CLASS8, I_CLASS128: SIZE_TO_CLASS128, I_CLASSES: classes,
            I_MCACHE: mcache, I_TINY: tiny_counts, I_SPANS: spans, I_PAGEMAP: pagemap, I_RUN_HEADS: run_heads,
            I_RUN_BITS: run_bits, I_RUN_TREE: run_tree, I_BITS: bits,
        }
        return tuple(arrays[i] for i in range(len(arrays)))

    # ------------------------------------------------------------ inspection
    @property
    def heap_live(self) -> int:
        """Go's heapLive (the GC trigger's measure), bytes."""
        return int(self.state[I_WORDS][S_HEAP_LIVE])

    @property
    def heap_goal(self) -> int:
        """The current GOGC heap goal, bytes (gc mode)."""
        return int(self.state[I_WORDS][S_HEAP_GOAL])

    @property
    def heap_trigger(self) -> int:
        """heap_live at which the concurrent collector starts its next mark, bytes (gc mode)."""
        return int(self.state[I_WORDS][S_TRIGGER])

    @property
    def marking(self) -> bool:
        """True while a concurrent mark runs (gc mode)."""
        return bool(self.state[I_WORDS][S_MARKING])

    def collect(self) -> None:
        """Run a whole GC cycle now, after finishing a running mark (gc mode only; like runtime.GC())."""
        if self.params["free_mode"] != "gc":
            raise BadParameter("go: collect() needs free_mode=gc")
        full_cycle(self.state)
