"""go_gc: the go model's garbage collector, a GOGC-paced stop-the-world mark-sweep (free_mode=gc).

Design (golang/go src/runtime/mgc.go, mgcsweep.go, mgcpacer.go, mcache.go's
releaseAll; the numbers in shared/reference/go-allocator.md).  With
`free_mode=gc` (preset `go:gc`) a FREE only makes the object garbage (Go
programs drop references; the trace says when).  The collector is
*stop-the-world* with eager sweeping:

- Marking.  Reachability is known from the trace: an object is live from its
  ALLOC row to its FREE row.  So the mark bits (Go's gcmarkBits) are kept
  current as the trace runs: set when a slot is allocated ("allocate
  black"), cleared by the FREE (a tiny block's when its count reaches zero;
  a large span has one live flag).  A cycle then finds them complete.
- Trigger (mgcpacer.go).  `heap_live` is Go's heapLive: bytes marked by the
  last cycle (slot sizes, a tiny block counts 16 B) + for every span cached
  into an mcache since then, all of its unallocated bytes (npages*8192 -
  allocCount*elemsize: free slots and tail, Go's deliberate over-estimate in
  mcache.refill) + the pages of every large object allocated since.  Frees
  do not lower it.  The goal is `heap_marked * (1 + GOGC/100)`, at least
  `heapMinimum = 4 MiB * GOGC/100` (no stacks or globals in a trace).  The
  check runs where Go's does, on every span refill and large allocation, but
  *before* the allocation: a cycle runs when the allocation would take
  heap_live past the goal.  (Go starts its concurrent mark at a trigger
  below the goal so that the heap peaks near the goal; stop-the-world
  collecting just before the goal is the same target.)
- A cycle: every mcache is flushed (releaseAll: cached spans back to their
  mcentral, the tiny block unpinned), then *every* span is swept:
  allocBits := gcmarkBits, free index back to 0, allocCount = live
  objects; a span with no live object goes back to the mheap at once, a full
  one onto its class's full list, the rest onto partial.  Large objects
  without a live flag die here.  Then heap_live = heap_marked = the marked
  bytes and the goal is recomputed.  So a dead slot is reusable only after
  a cycle, and then lowest index first.  Sweeping is eager (Go sweeps lazily
  and in the background, with the same outcome before the next cycle).
- The capacity is the machine's memory: when the mheap cannot serve a
  request, one emergency cycle runs and the request is retried before it
  fails with out of memory (what GOMEMLIMIT = capacity would do).
- `gogc` = GOGC (default 100); `gogc=off` (or -1) never collects.
  In explicit mode `gogc` is ignored.

Where the allocator (allocators.go) calls in.  Its alloc_block and
free_block keep the mark bits (the hot path stays there: shared.spanbitmap's
`bitmap_mark` on allocation, one cleared bit or a large span's live flag
SP_USER0 on a FREE); its refill checks the trigger with
`collect_before_refill` (the bytes the refill will add: the free slots and
tail of the class's first partial span, else a whole new span) and
alloc_large with `collect_if_over_goal`; both retry once after
`emergency_cycle`.  `Go.collect()` runs `gc_cycle` (runtime.GC()).  The
shell sets the pacer up with `parse_gogc` and `init_pacer`, reset_state
clears it with `reset_pacer`.

State: the slots S_GC_MODE, S_GC_ON, S_GOGC, S_HEAP_MINIMUM, S_HEAP_LIVE,
S_HEAP_MARKED and S_HEAP_GOAL of `words` (allocators.go_layout; heap_live is
kept in explicit mode too, for peak_heap_live).  Counters: spans_swept,
gc_cycles, gc_emergency_cycles, objects_marked, sweep_freed_objects.

Costs.  The trigger: O(1).  A cycle: O(threads * 136) to flush the mcaches +
O(bitmap words) per span in use + a page-heap free per dead span.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import BadParameter
from allocators.go_layout import (
    C_GC_CYCLES,
    C_GC_EMERGENCY,
    C_OBJECTS_MARKED,
    C_SPANS_SWEPT,
    C_SWEEP_FREED,
    CB,
    I_BITS,
    I_CLASSES,
    I_MCACHE,
    I_SPANS,
    I_WORDS,
    K_SPAN_BYTES,
    K_STRIDE,
    MC_ACTIVE,
    MC_STRIDE,
    MC_TINY,
    MC_TINY_OFFSET,
    N_SPAN_CLASSES,
    NO_BLOCK,
    S_GC_MODE,
    S_GC_ON,
    S_GOGC,
    S_HEAP_GOAL,
    S_HEAP_LIVE,
    S_HEAP_MARKED,
    S_HEAP_MINIMUM,
    S_THREADS_SEEN,
    release_large_span,
    release_small_span,
    tiny_unpin,
    uncache_span,
)
from allocators.shared.central import CL_FULL, CL_PARTIAL, CL_STRIDE, LIST_FULL, LIST_PARTIAL, central_push_span
from allocators.shared.spanbitmap import phantom_bits, popcount64
from allocators.shared.spans import (
    NO_SPAN,
    SP_ALLOC_BITS,
    SP_CLASS,
    SP_LIST,
    SP_MARK_BITS,
    SP_NEXT,
    SP_NFREE,
    SP_NOBJ,
    SP_OBJ_SIZE,
    SP_SCAN,
    SP_STATE,
    SP_USER0,
    SPAN_LARGE,
    SPAN_SHIFT,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

DEFAULT_HEAP_MINIMUM = 4 << 20  # mgcpacer.go defaultHeapMinimum


# ----------------------------------------------------------------- pacing
def parse_gogc(value: Any) -> int:
    """GOGC: an integer >= 0, or off (-1, False, 'off')."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return -1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < -1:
        raise BadParameter(f"go: gogc must be an integer >= 0 or 'off' (-1), got {value!r}")
    return int(value)


def init_pacer(words: np.ndarray, gc_mode: bool, gogc: int) -> None:
    """The collector's slots of a fresh state: the mode, GOGC (-1: off) and the first goal, heapMinimum."""
    heap_minimum = DEFAULT_HEAP_MINIMUM * max(gogc, 0) // 100
    words[S_GC_MODE] = int(gc_mode)
    words[S_GC_ON] = int(gc_mode and gogc >= 0)
    words[S_GOGC] = max(gogc, 0)
    words[S_HEAP_MINIMUM] = heap_minimum
    words[S_HEAP_GOAL] = heap_minimum


@njit(cache=True, inline="always")
def reset_pacer(words):
    """An empty heap: nothing live or marked, the goal back to heapMinimum."""
    words[S_HEAP_LIVE] = 0
    words[S_HEAP_MARKED] = 0
    words[S_HEAP_GOAL] = words[S_HEAP_MINIMUM]


@njit(cache=True)
def collect_if_over_goal(state, need):
    """GC trigger (gc mode): run a cycle first if allocating `need` more bytes would pass the heap goal."""
    words = state[I_WORDS]
    if words[S_GC_ON] != 0 and words[S_HEAP_LIVE] + need > words[S_HEAP_GOAL]:
        gc_cycle(state)


@njit(cache=True, inline="always")
def collect_before_refill(state, spc, size, tail):
    """The trigger at an mcache refill (gc on): the first partial span's free slots + tail, else a new span."""
    words, classes, spans = state[I_WORDS], state[I_CLASSES], state[I_SPANS]
    head = words[CB + spc * CL_STRIDE + CL_PARTIAL]
    need = classes[spc * K_STRIDE + K_SPAN_BYTES]
    if head != NO_SPAN:
        need = spans[(head << SPAN_SHIFT) + SP_NFREE] * size + tail
    collect_if_over_goal(state, need)


@njit(cache=True)
def emergency_cycle(state):
    """The mheap cannot serve a request: one cycle before the allocator retries it (GOMEMLIMIT = capacity)."""
    words = state[I_WORDS]
    words[C_GC_EMERGENCY] += 1
    gc_cycle(state)


# ------------------------------------------------------------ mark / sweep
@njit(cache=True)
def _sweep_bits(spans, bits, s, nobj):
    """allocBits := gcmarkBits (the marks stay: they are the live set), freeindex = 0; returns live objects."""
    base = s << SPAN_SHIFT
    alloc = spans[base + SP_ALLOC_BITS]
    mark = spans[base + SP_MARK_BITS]
    n_words = (nobj + 63) >> 6
    live = 0
    for w in range(n_words):
        m = bits[mark + w]
        bits[alloc + w] = m
        live += popcount64(m)
    bits[alloc + n_words - 1] |= phantom_bits(nobj)
    spans[base + SP_SCAN] = 0
    return live


@njit(cache=True)
def _sweep_span(state, s):
    """Sweep one span (on no list); put it back on its class's list or give it to the mheap. Returns bytes marked."""
    words, spans, bits = state[I_WORDS], state[I_SPANS], state[I_BITS]
    base = s << SPAN_SHIFT
    spc = spans[base + SP_CLASS]
    words[C_SPANS_SWEPT] += 1
    if spans[base + SP_STATE] == SPAN_LARGE:
        if spans[base + SP_USER0] != 0:
            central_push_span(words, CB, spc, spans, s, LIST_FULL, True)
            words[C_OBJECTS_MARKED] += 1
            return spans[base + SP_OBJ_SIZE]
        words[C_SWEEP_FREED] += 1
        release_large_span(state, s)
        return 0
    nobj = spans[base + SP_NOBJ]
    before = nobj - spans[base + SP_NFREE]
    live = _sweep_bits(spans, bits, s, nobj)
    spans[base + SP_NFREE] = nobj - live
    words[C_OBJECTS_MARKED] += live
    words[C_SWEEP_FREED] += before - live
    if live == 0:
        release_small_span(state, s)
    elif live == nobj:
        central_push_span(words, CB, spc, spans, s, LIST_FULL, True)
    else:
        central_push_span(words, CB, spc, spans, s, LIST_PARTIAL, True)
    return live * spans[base + SP_OBJ_SIZE]


@njit(cache=True)
def gc_cycle(state):
    """One stop-the-world cycle: flush every mcache, sweep every span, reset heap_live and the goal."""
    words, mcache, spans = state[I_WORDS], state[I_MCACHE], state[I_SPANS]
    for thread in range(words[S_THREADS_SEEN]):  # mcache.releaseAll on every P
        mc = thread * MC_STRIDE
        if mcache[mc + MC_ACTIVE] == 0:
            continue
        for spc in range(N_SPAN_CLASSES):
            s = mcache[mc + spc]
            if s != NO_SPAN:
                mcache[mc + spc] = NO_SPAN
                uncache_span(state, s)
        block = mcache[mc + MC_TINY]
        mcache[mc + MC_TINY] = NO_BLOCK
        mcache[mc + MC_TINY_OFFSET] = 0
        if block != NO_BLOCK:
            tiny_unpin(state, block)
    marked = 0
    for spc in range(N_SPAN_CLASSES):
        block = CB + spc * CL_STRIDE
        partial = words[block + CL_PARTIAL]
        full = words[block + CL_FULL]
        words[block + CL_PARTIAL] = NO_SPAN
        words[block + CL_PARTIAL + 1] = NO_SPAN
        words[block + CL_FULL] = NO_SPAN
        words[block + CL_FULL + 1] = NO_SPAN
        for chain in range(2):
            s = partial if chain == 0 else full
            while s != NO_SPAN:
                after = spans[(s << SPAN_SHIFT) + SP_NEXT]
                spans[(s << SPAN_SHIFT) + SP_LIST] = NO_SPAN
                marked += _sweep_span(state, s)
                s = after
    goal = marked + marked * words[S_GOGC] // 100
    if goal < words[S_HEAP_MINIMUM]:
        goal = words[S_HEAP_MINIMUM]
    words[S_HEAP_MARKED] = marked
    words[S_HEAP_LIVE] = marked
    words[S_HEAP_GOAL] = goal
    words[C_GC_CYCLES] += 1
