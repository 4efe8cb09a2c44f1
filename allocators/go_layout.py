"""go_layout: the go model's state layout, and the span returns its allocator and its collector share.

The go model is four modules: allocators.go (the design docstring and the `Go`
shell: parameters, state construction), allocators.go_heap (the allocator's
kernels: mcache, mcentral, mheap, tiny and large objects, the replay kernels),
allocators.go_gc (the collector of `free_mode=gc`: Go's pacer, the concurrent
mark, the sweep) and this one, which the others import, so that none needs
another's internals: go_layout <- go_gc <- go_heap <- go, no cycle.

Layout.  The state is a tuple of arrays, at the I_* indices: `words` (the
counters OWN_COUNTERS at C_*, then the page heap's region at PH, the scalars
S_*, and from CB the 136 mcentrals' partial/full list heads,
allocators.shared.central), `class8`/`class128` (Go's size -> class lookup
tables), `classes` (K_STRIDE words per span class, columns K_*), `mcache`
(MC_STRIDE words per thread: one span id per span class, NO_SPAN if none, then
MC_TINY, MC_TINY_OFFSET, MC_ACTIVE), `tiny_counts` (one int8 per 16 B block,
TINY_SHIFT), then the page heap's `spans`, `pagemap`, `run_heads`,
`run_bits`, `run_tree` and the span bitmaps `bits`: every span record's two
regions (allocation and mark bits), then, with the concurrent collector, one
more region per record of *black* bits (its survivors: at
`words[S_BLACK_BASE] + s * bitmap_words`).

Span returns.  A span leaves an mcache (`uncache_span`, mcentral.uncacheSpan:
at a refill, or when a GC cycle flushes every mcache), an mcache lets go of its
tiny block (`tiny_unpin`), a tiny block's last object or pin goes
(`free_slot`), an uncached span gets a free slot in explicit mode
(`explicit_span_transition`: full -> partial, empty -> the mheap), a span goes
back to the mheap (`release_small_span`, `release_large_span`: mheap.freeSpan
and the metadata that goes with it).  The allocator does these on frees and
refills, the collector when it flushes and sweeps, so they live here.  All are
slow paths, not inlined.

Full lists in explicit mode.  Only a GC sweep walks an mcentral's full list;
explicit mode never does, so there a full span is only marked (SP_LIST =
LIST_FULL) and not linked: the list operations it would cost (a push at the
back, an unlink from the middle, each touching a neighbour's record: random
misses, twice per mcache refill) are saved, and every span goes the same way.
The partial lists, which refills pop in order, stay linked in both modes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.central import LIST_FULL, LIST_PARTIAL, central_push_span, central_slots, central_unlink
from allocators.shared.go_sizeclasses import NUM_SIZE_CLASSES, PAGE_SHIFT
from allocators.shared.pageheap import PH_SLOTS, pageheap_free
from allocators.shared.spanbitmap import bitmap_release
from allocators.shared.spans import (
    NO_SPAN,
    SP_CLASS,
    SP_LIST,
    SP_MARK_BITS,
    SP_NFREE,
    SP_NOBJ,
    SP_OBJ_SIZE,
    SP_START,
    SP_USER1,
    SP_USER2,
    SPAN_SHIFT,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

N_SPAN_CLASSES = NUM_SIZE_CLASSES << 1  # 136
BITMAP_WORDS = 16  # bitmap words per span region: 1024 objects (class 1) per span at most
TINY_SHIFT = 4  # 16 B blocks
NO_BLOCK = -1

# ----------------------------------------------------------- words layout
OWN_COUNTERS = (
    "allocs", "frees", "tiny_allocs", "tiny_blocks", "large_allocs", "large_frees",
    "mcache_refills", "mcentral_cache_span", "mcentral_uncache_span", "mheap_alloc_spans", "mheap_free_spans",
    "spans_allocated", "spans_swept", "spans_freed", "gc_cycles", "gc_emergency_cycles",
    "objects_marked", "sweep_freed_objects", "peak_heap_live", "peak_heap_inuse", "mark_phase_frees", "heap_goal",
)
(
    C_ALLOCS, C_FREES, C_TINY_ALLOCS, C_TINY_BLOCKS, C_LARGE_ALLOCS, C_LARGE_FREES,
    C_REFILLS, C_CACHE_SPAN, C_UNCACHE_SPAN, C_MHEAP_ALLOCS, C_MHEAP_FREES,
    C_SPANS_ALLOCATED, C_SPANS_SWEPT, C_SPANS_FREED, C_GC_CYCLES, C_GC_EMERGENCY,
    C_OBJECTS_MARKED, C_SWEEP_FREED, C_PEAK_HEAP_LIVE, C_PEAK_HEAP_INUSE, C_MARK_PHASE_FREES,
    C_HEAP_GOAL,
) = range(len(OWN_COUNTERS))
PH = len(OWN_COUNTERS)  # the page heap's region: its counters extend ours
S_BASE = PH + PH_SLOTS
S_SMALL_LIMIT = S_BASE + 0  # largest small request (32760, or 32768 before Go 1.22)
S_TINY_LIMIT = S_BASE + 1  # noscan requests below this use the tiny allocator (16, or 0 when off)
S_NOSCAN_RULE = S_BASE + 2
S_HEADER_MIN = S_BASE + 3  # pointerful requests above this get the 8 B malloc header (512; huge before 1.22)
S_GC_MODE = S_BASE + 4  # 1: free_mode=gc
S_GC_ON = S_BASE + 5  # 1: gc mode and GOGC not off
S_GOGC = S_BASE + 6
S_HEAP_MINIMUM = S_BASE + 7
S_HEAP_LIVE = S_BASE + 8
S_HEAP_MARKED = S_BASE + 9
S_HEAP_GOAL = S_BASE + 10
S_METADATA = S_BASE + 11  # GC bitmaps + mcaches + mcentrals (the page heap keeps its own)
S_STATIC_METADATA = S_BASE + 12
S_THREADS_SEEN = S_BASE + 13  # 1 + the highest thread whose mcache is in use
# The concurrent collector's pacer (allocators.go_gc): its parameters, then its state.
S_CONCURRENT = S_BASE + 14  # 1: collector=concurrent (a mark phase between trigger and termination), 0: stw
S_TRIGGER_NUM = S_BASE + 15  # the trigger's place between heap_marked and the goal, in 1/65536ths (45/64 in Go)
S_MARK_BYTES = S_BASE + 16  # bytes allocated during a mark before it terminates; -1: until the goal
S_ROOTS = S_BASE + 17  # stack + globals scan bytes: the goal is marked + (marked + roots) * GOGC/100
S_MARKING = S_BASE + 18  # 1 while a mark phase runs
S_TRIGGER = S_BASE + 19  # heap_live at which the next mark starts
S_MARK_END = S_BASE + 20  # heap_live at which the running mark terminates
S_RUNWAY_KNOWN = S_BASE + 21  # 0 until a cycle has measured the runway (Go: consMark = 0, the trigger at 61/64)
S_BLACK_BASE = S_BASE + 22  # where the black regions start in `bits` (after every record's two regions)
CB = S_BASE + 24  # the mcentrals' lists: central_slots(136) words
N_WORDS = CB + central_slots(N_SPAN_CLASSES)

# classes[] columns, per span class
K_SIZE, K_PAGES, K_NELEMS, K_MAGIC, K_TAIL, K_GCBITS, K_SPAN_BYTES = 0, 1, 2, 3, 4, 5, 6
K_STRIDE = 8

# mcache[] layout, per thread
MC_TINY = N_SPAN_CLASSES  # address of the current tiny block, NO_BLOCK if none
MC_TINY_OFFSET = MC_TINY + 1
MC_ACTIVE = MC_TINY + 2
MC_STRIDE = 144

# spans[] field of a large object's span: its survivor ("black") flag during a mark (SP_USER0 is its live flag)
SP_BLACK = SP_USER1

# state tuple indices
I_WORDS, I_CLASS8, I_CLASS128, I_CLASSES, I_MCACHE, I_TINY = 0, 1, 2, 3, 4, 5
I_SPANS, I_PAGEMAP, I_RUN_HEADS, I_RUN_BITS, I_RUN_TREE, I_BITS = 6, 7, 8, 9, 10, 11
#: Twelve arrays, no more: a 13th in the state tuple made every go kernel about 30 % slower (numba passes the
#: tuple to each kernel; measured on the 2M-row lognormal:live=100000 replay), so the concurrent mark's black
#: bits are a third region of `bits` (S_BLACK_BASE) rather than an array of their own.


# ------------------------------------------------------------ span returns
@njit(cache=True)
def release_small_span(state, s):
    """Give a small span (on no list) back to the mheap."""
    words, classes = state[I_WORDS], state[I_CLASSES]
    spans, pagemap, run_heads, run_bits, run_tree = (
        state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    )
    spc = spans[(s << SPAN_SHIFT) + SP_CLASS]
    words[S_METADATA] -= classes[spc * K_STRIDE + K_GCBITS]
    pageheap_free(words, PH, spans, pagemap, run_heads, run_bits, run_tree, s)
    words[C_MHEAP_FREES] += 1
    words[C_SPANS_FREED] += 1


@njit(cache=True)
def release_large_span(state, s):
    """Give a large object's span (on no list) back to the mheap."""
    words, spans = state[I_WORDS], state[I_SPANS]
    pagemap, run_heads, run_bits, run_tree = state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    words[S_METADATA] -= 16  # allocBits + gcmarkBits of one object
    pageheap_free(words, PH, spans, pagemap, run_heads, run_bits, run_tree, s)
    words[C_MHEAP_FREES] += 1
    words[C_LARGE_FREES] += 1


@njit(cache=True)
def explicit_span_transition(state, s):
    """An uncached span just got a free slot (explicit mode): full -> partial, or empty -> the mheap."""
    words, spans = state[I_WORDS], state[I_SPANS]
    base = s << SPAN_SHIFT
    nfree = spans[base + SP_NFREE]
    if nfree == spans[base + SP_NOBJ]:
        if spans[base + SP_LIST] == LIST_PARTIAL:  # (a full span is only marked: uncache_span)
            central_unlink(words, CB, spans, s)
        spans[base + SP_LIST] = NO_SPAN
        release_small_span(state, s)
    elif nfree == 1:  # it was full: marked, on no list
        central_push_span(words, CB, spans[base + SP_CLASS], spans, s, LIST_PARTIAL, True)


@njit(cache=True)
def free_slot(state, s, addr):
    """Free the object slot at `addr` of small span `s` (a slow-path copy of go.free_block's, for tiny blocks)."""
    words, spans, bits = state[I_WORDS], state[I_SPANS], state[I_BITS]
    base = s << SPAN_SHIFT
    index = ((addr - (spans[base + SP_START] << PAGE_SHIFT)) * spans[base + SP_USER2]) >> 32
    if words[S_GC_MODE] != 0:
        bits[spans[base + SP_MARK_BITS] + (index >> 6)] &= ~(np.int64(1) << (index & 63))
    else:
        bitmap_release(spans, bits, s, index)
        spans[base + SP_NFREE] += 1
        if spans[base + SP_LIST] != NO_SPAN:  # not in an mcache
            words[S_HEAP_LIVE] -= spans[base + SP_OBJ_SIZE]
            explicit_span_transition(state, s)


@njit(cache=True)
def tiny_unpin(state, block):
    """The mcache lets go of its tiny block: drop its pin; free the block if no object lives in it."""
    tiny_counts, pagemap = state[I_TINY], state[I_PAGEMAP]
    left = tiny_counts[block >> TINY_SHIFT] - 1
    tiny_counts[block >> TINY_SHIFT] = left
    if left == 0:
        free_slot(state, pagemap[block >> PAGE_SHIFT], block)


@njit(cache=True)
def uncache_span(state, s):
    """mcentral.uncacheSpan: a span leaves an mcache for its class's full or partial list (or the mheap)."""
    words, spans = state[I_WORDS], state[I_SPANS]
    base = s << SPAN_SHIFT
    words[C_UNCACHE_SPAN] += 1
    nfree = spans[base + SP_NFREE]
    spc = spans[base + SP_CLASS]
    if nfree == 0:
        if words[S_GC_MODE] != 0:
            central_push_span(words, CB, spc, spans, s, LIST_FULL, True)
        else:  # explicit mode never walks a full list (only a sweep does): the span is marked full, not linked
            spans[base + SP_LIST] = LIST_FULL
    elif nfree == spans[base + SP_NOBJ] and words[S_GC_MODE] == 0:
        release_small_span(state, s)  # explicit mode: an empty span goes back at once
    else:
        central_push_span(words, CB, spc, spans, s, LIST_PARTIAL, True)
