"""go_gc: the go model's garbage collector (free_mode=gc): Go's pacer, a concurrent mark, an eager sweep.

Design (golang/go src/runtime/mgc.go, mgcmark.go, mgcsweep.go, mgcpacer.go,
mcache.go's releaseAll; the numbers in shared/reference/go-allocator.md; Go
1.19's pacer, checked against the real runtime by `bench fidelity`).  With
`free_mode=gc` (preset `go:gc`) a FREE only makes the object garbage (Go
programs drop references; the trace says when).

- Reachability.  An object is live from its ALLOC row to its FREE row, so
  the mark bits (Go's gcmarkBits) are kept current as the trace runs: set
  when a slot is allocated, cleared by the FREE (a tiny block's when its
  count reaches zero; a large span has one live flag, SP_USER0).  Marking
  costs nothing at a cycle: the mark bits are the live set.
- heap_live is Go's heapLive: the bytes marked by the last cycle (slot
  sizes; a tiny block counts 16 B), plus for every span cached into an
  mcache since then all of its unallocated bytes (npages*8192 -
  allocCount*elemsize: free slots and tail, Go's over-estimate in
  mcache.refill), plus the pages of every large object allocated since.
  Frees do not lower it.  The checks run where Go's do, on every span
  refill and large allocation, before the allocation (`collect_if_over_goal`
  with the bytes it will add).
- The goal (commit): heap_marked + (heap_marked + roots) * GOGC/100, at
  least heapMinimum = 4 MiB * GOGC/100.  `roots` (bytes, default 0) is the
  scan work of goroutine stacks and globals that Go 1.18+ adds to the goal;
  a trace has none of its own (`bench fidelity` passes the real run's).
- `collector=concurrent` (default): the cycle is a *mark phase* between two
  points of heap_live, then mark termination.
  - The trigger (trigger()): heap_marked + ((goal - heap_marked) / 64) * k
    with k/64 = `trigger` (default 45/64).  Go puts it at goal - runway,
    clamped to [45/64, 61/64] of the way (`trigger` keeps to those bounds),
    where the runway is the allocation it expects during the mark
    (cons/mark x the scan work); a replay allocates without doing other
    work, so the runway is long and the trigger sits at its lower bound:
    measured on real Go 1.19 over the catalog's workloads, 45/64 matches
    best (`bench fidelity`, README).  The mark starts when heap_live
    reaches the trigger (gcStart).
  - During the mark, a *snapshot* decides the survivors: every object live
    when the mark started (Go's deletion barrier shades a pointer as it is
    overwritten, so an object reachable at the start is marked even if it
    is dropped later) and every object allocated during the mark ("allocate
    black", gcmarknewobject).  They are the span's *black* bits (state
    array `black`, one region per span record; SP_BLACK for a large
    object): copied from the mark bits at the start (`mark_start`), set on
    every allocation while marking (`mark_black`).  A FREE during the mark
    clears only the mark bit: the object survives this cycle as floating
    garbage and dies in the next one (`mark_phase_frees` counts them).
  - Mark termination when the mark has run `mark_bytes` of allocation
    ("goal", default: until heap_live reaches the goal; a byte count ends
    it earlier).  Go's mark ends when its work is done, and its assists pace
    the mutator so that this is at the goal; a replayed trace does no
    scanning work of its own, and real Go 1.19 ends its marks at the goal on
    the catalog's traces (gctrace's "trigger->end->marked MB, goal MB").
  - Then the sweep keeps the black objects, heap_live = heap_marked = their
    bytes, and the goal and trigger are recomputed (`_commit`).
- `collector=stw`: a stop-the-world cycle exactly when heap_live would pass
  the goal; the survivors are the live objects (the mark bits).  For
  teaching: it collects every object dropped before the cycle, so its
  marked heap is the live set, and its peak in-use heap is 25-40 % below
  real Go's on steady-state traces (README, "The real Go heap").
- A cycle's sweep (both collectors): every mcache is flushed (releaseAll:
  cached spans back to their mcentral, the tiny block unpinned), then
  *every* span is swept: allocBits := the survivors' bits, free index back
  to 0, allocCount = survivors; a span with no survivor goes back to the
  mheap at once, a full one onto its class's full list, the rest onto
  partial.  Large objects that do not survive die here.  So a dead slot is
  reusable only after a cycle, and then lowest index first.  Sweeping is
  eager (Go sweeps lazily and in the background, with the same outcome
  before the next cycle).
- The capacity is the machine's memory: when the mheap cannot serve a
  request, a full cycle (`emergency_cycle`: a running mark terminates, then
  a stop-the-world cycle collects everything dead) runs and the request is
  retried before it fails with out of memory (what GOMEMLIMIT = capacity
  would do).  `Go.collect()` (runtime.GC()) runs the same full cycle.
- `gogc` = GOGC (default 100); `gogc=off` (or -1) never collects.
  In explicit mode `gogc` and the pacer's parameters are ignored.

Where the allocator (allocators.go) calls in.  Its alloc_block sets the mark
bit and, while marking, the black bit (`mark_black`; `clear_black` for a
span made during a mark); free_block clears one mark bit or a large span's
live flag; its refill checks the pacer with `collect_before_refill` (the
bytes the refill will add: the free slots and tail of the class's first
partial span, else a whole new span) and alloc_large with
`collect_if_over_goal`; both retry once after `emergency_cycle`.  The shell
checks the parameters with `Pacer.from_params` and sets the slots up with
`init_pacer`; reset_state clears them with `reset_pacer`.

State: the slots S_GC_MODE, S_GC_ON, S_GOGC, S_HEAP_MINIMUM, S_HEAP_LIVE,
S_HEAP_MARKED, S_HEAP_GOAL, the pacer's parameters S_CONCURRENT,
S_TRIGGER_NUM (k/64 in 1/65536ths), S_MARK_BYTES (-1: the goal), S_ROOTS, and
its state S_MARKING, S_TRIGGER, S_MARK_END (allocators.go_layout; heap_live
is kept in explicit mode too, for peak_heap_live).  Counters: spans_swept,
gc_cycles, gc_emergency_cycles, objects_marked (survivors, summed over
cycles), sweep_freed_objects, mark_phase_frees, heap_goal (the goal set by
the last cycle, bytes; 0 when GOGC is off or in explicit mode).

Costs.  The checks: O(1).  A mark start: O(bitmap words of the spans in
use) to copy the snapshot.  A cycle: O(threads * 136) to flush the mcaches +
O(bitmap words) per span in use + a page-heap free per dead span.  While
marking, an allocation sets one more bit.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from allocators.errors import BadParameter
from allocators.go_layout import (
    BITMAP_WORDS,
    C_GC_CYCLES,
    C_GC_EMERGENCY,
    C_HEAP_GOAL,
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
    PH,
    S_BLACK_BASE,
    S_CONCURRENT,
    S_GC_MODE,
    S_GC_ON,
    S_GOGC,
    S_HEAP_GOAL,
    S_HEAP_LIVE,
    S_HEAP_MARKED,
    S_HEAP_MINIMUM,
    S_MARK_BYTES,
    S_MARK_END,
    S_MARKING,
    S_ROOTS,
    S_RUNWAY_KNOWN,
    S_THREADS_SEEN,
    S_TRIGGER,
    S_TRIGGER_NUM,
    SP_BLACK,
    release_large_span,
    release_small_span,
    tiny_unpin,
    uncache_span,
)
from allocators.shared.central import CL_FULL, CL_PARTIAL, CL_STRIDE, LIST_FULL, LIST_PARTIAL, central_push_span
from allocators.shared.pageheap import PH_RECORDS
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
    SPAN_SMALL,
    SR_TOP,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

DEFAULT_HEAP_MINIMUM = 4 << 20  # mgcpacer.go defaultHeapMinimum


# ----------------------------------------------------------------- pacing
COLLECTORS = ("concurrent", "stw")
TRIGGER_MIN, TRIGGER_MAX = 45 / 64, 61 / 64  # mgcpacer.go minTriggerRatioNum, maxTriggerRatioNum / 64
FIXED_ONE = 1 << 16  # S_TRIGGER_NUM's unit: 1/65536
FIRST_TRIGGER_NUM = round(TRIGGER_MAX * FIXED_ONE)  # no cons/mark measured yet: runway 0, the trigger at 61/64


def parse_gogc(value: Any) -> int:
    """GOGC: an integer >= 0, or off (-1, False, 'off')."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return -1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < -1:
        raise BadParameter(f"go: gogc must be an integer >= 0 or 'off' (-1), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Pacer:
    """The collector's parameters, checked: `collector`, `trigger`, `mark_bytes` (-1: until the goal), `roots`."""

    concurrent: bool
    trigger: float
    mark_bytes: int
    roots: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Pacer:
        collector = params["collector"]
        if collector not in COLLECTORS:
            raise BadParameter(f"go: collector must be one of {', '.join(COLLECTORS)}, got {collector!r}")
        trigger = params["trigger"]
        if isinstance(trigger, bool) or not isinstance(trigger, (int, float)) or not (
                TRIGGER_MIN <= trigger <= TRIGGER_MAX):
            raise BadParameter(f"go: trigger must be a fraction of the runway between 45/64 ({TRIGGER_MIN}) and "
                               f"61/64 ({TRIGGER_MAX}), Go's pacer bounds, got {trigger!r}")
        mark_bytes = params["mark_bytes"]
        if mark_bytes == "goal":
            mark_bytes = -1
        elif isinstance(mark_bytes, bool) or not isinstance(mark_bytes, (int, np.integer)) or mark_bytes < 0:
            raise BadParameter(f"go: mark_bytes must be 'goal' or a byte count >= 0, got {mark_bytes!r}")
        roots = params["roots"]
        if isinstance(roots, bool) or not isinstance(roots, (int, np.integer)) or not 0 <= roots < 1 << 50:
            raise BadParameter(f"go: roots must be a byte count >= 0 (stack and global scan work), got {roots!r}")
        return cls(collector == "concurrent", float(trigger), int(mark_bytes), int(roots))


def init_pacer(words: np.ndarray, gc_mode: bool, gogc: int, pacer: Pacer) -> None:
    """The collector's slots of a fresh state: mode, GOGC (-1: off), the pacer's parameters, the first goal."""
    words[S_GC_MODE] = int(gc_mode)
    words[S_GC_ON] = int(gc_mode and gogc >= 0)
    words[S_GOGC] = max(gogc, 0)
    words[S_HEAP_MINIMUM] = DEFAULT_HEAP_MINIMUM * max(gogc, 0) // 100
    words[S_CONCURRENT] = int(pacer.concurrent)
    words[S_TRIGGER_NUM] = round(pacer.trigger * FIXED_ONE)
    words[S_MARK_BYTES] = pacer.mark_bytes
    words[S_ROOTS] = pacer.roots
    reset_pacer(words)


@njit(cache=True, inline="always")
def _commit(words, marked):
    """Mark termination (resetLive, commit, trigger): heap_live = heap_marked = marked; the goal; the trigger."""
    goal = marked + (marked + words[S_ROOTS]) * words[S_GOGC] // 100
    if goal < words[S_HEAP_MINIMUM]:
        goal = words[S_HEAP_MINIMUM]
    words[S_HEAP_MARKED] = marked
    words[S_HEAP_LIVE] = marked
    words[S_HEAP_GOAL] = goal
    words[C_HEAP_GOAL] = goal * words[S_GC_ON]
    num = words[S_TRIGGER_NUM] if words[S_RUNWAY_KNOWN] != 0 else FIRST_TRIGGER_NUM
    trigger = goal
    if marked < goal:  # Go's ((goal - marked) / 64) * 45 + marked for the default 45/64
        trigger = marked + ((((goal - marked) >> 6) * num) >> 10)
    words[S_TRIGGER] = trigger
    words[S_MARKING] = 0


@njit(cache=True, inline="always")
def reset_pacer(words):
    """An empty heap: nothing live or marked, no mark running, no runway measured, the goal back to heapMinimum."""
    words[S_RUNWAY_KNOWN] = 0
    _commit(words, 0)


@njit(cache=True)
def collect_if_over_goal(state, need):
    """The GC trigger (gc mode, GOGC on) before `need` more bytes join heap_live: stw, a cycle first if they
    would pass the goal; concurrent, the running mark terminates if they would pass its end, and a mark
    starts if they reach the trigger."""
    words = state[I_WORDS]
    if words[S_GC_ON] == 0:
        return
    after = words[S_HEAP_LIVE] + need
    if words[S_CONCURRENT] == 0:
        if after > words[S_HEAP_GOAL]:
            gc_cycle(state)
        return
    if words[S_MARKING] != 0:
        if after <= words[S_MARK_END]:
            return
        mark_terminate(state)
        after = words[S_HEAP_LIVE] + need
    if after >= words[S_TRIGGER]:
        mark_start(state)


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
def full_cycle(state):
    """runtime.GC(): a running mark terminates, then one whole cycle collects everything dead."""
    if state[I_WORDS][S_MARKING] != 0:
        mark_terminate(state)
    gc_cycle(state)


@njit(cache=True)
def emergency_cycle(state):
    """The mheap cannot serve a request: a full cycle before the allocator retries it (GOMEMLIMIT = capacity)."""
    words = state[I_WORDS]
    words[C_GC_EMERGENCY] += 1
    full_cycle(state)


# ------------------------------------------------------------- the mark phase
@njit(cache=True, inline="always")
def mark_black(state, s, index):
    """Allocate black: a slot allocated while a mark runs survives its cycle."""
    words = state[I_WORDS]
    if words[S_MARKING] != 0:
        state[I_BITS][words[S_BLACK_BASE] + s * BITMAP_WORDS + (index >> 6)] |= np.int64(1) << (index & 63)


@njit(cache=True)
def clear_black(state, s, nobj):
    """A span made during a mark: none of its slots is black yet."""
    words, bits = state[I_WORDS], state[I_BITS]
    if words[S_MARKING] != 0:
        first = words[S_BLACK_BASE] + s * BITMAP_WORDS
        for w in range(first, first + ((nobj + 63) >> 6)):
            bits[w] = 0


@njit(cache=True)
def mark_start(state):
    """The mark begins (gcStart): the survivors of this cycle are the objects live now (black := mark bits, the
    deletion barrier's snapshot) and, from now on, every object allocated (`mark_black`)."""
    words, spans, bits = state[I_WORDS], state[I_SPANS], state[I_BITS]
    words[S_MARKING] = 1
    end = words[S_HEAP_GOAL]
    if words[S_MARK_BYTES] >= 0 and words[S_HEAP_LIVE] + words[S_MARK_BYTES] < end:
        end = words[S_HEAP_LIVE] + words[S_MARK_BYTES]
    words[S_MARK_END] = end
    for s in range(words[PH + PH_RECORDS + SR_TOP]):
        base = s << SPAN_SHIFT
        kind = spans[base + SP_STATE]
        if kind == SPAN_SMALL:
            mark = spans[base + SP_MARK_BITS]
            black = words[S_BLACK_BASE] + s * BITMAP_WORDS
            for w in range((spans[base + SP_NOBJ] + 63) >> 6):
                bits[black + w] = bits[mark + w]
        elif kind == SPAN_LARGE:
            spans[base + SP_BLACK] = spans[base + SP_USER0]


@njit(cache=True)
def mark_terminate(state):
    """Mark termination: the cycle's sweep keeps the black objects; objects dropped during the mark stay
    allocated (unmarked) until the next cycle."""
    _collect(state, True)


# ------------------------------------------------------------ mark / sweep
@njit(cache=True)
def _sweep_bits(spans, bits, s, nobj, survivors, offset):
    """allocBits := the survivors' bits (`survivors[offset:]`: the mark bits, or the black bits of a concurrent
    mark; the mark bits stay, they are the live set), freeindex = 0; returns the surviving objects."""
    base = s << SPAN_SHIFT
    alloc = spans[base + SP_ALLOC_BITS]
    n_words = (nobj + 63) >> 6
    kept = 0
    for w in range(n_words):
        m = survivors[offset + w]
        bits[alloc + w] = m
        kept += popcount64(m)
    bits[alloc + n_words - 1] |= phantom_bits(nobj)
    spans[base + SP_SCAN] = 0
    return kept


@njit(cache=True)
def _sweep_span(state, s, concurrent):
    """Sweep one span (on no list); put it back on its class's list or give it to the mheap. Returns bytes marked."""
    words, spans, bits = state[I_WORDS], state[I_SPANS], state[I_BITS]
    base = s << SPAN_SHIFT
    spc = spans[base + SP_CLASS]
    words[C_SPANS_SWEPT] += 1
    if spans[base + SP_STATE] == SPAN_LARGE:
        if spans[base + (SP_BLACK if concurrent else SP_USER0)] != 0:
            central_push_span(words, CB, spc, spans, s, LIST_FULL, True)
            words[C_OBJECTS_MARKED] += 1
            return spans[base + SP_OBJ_SIZE]
        words[C_SWEEP_FREED] += 1
        release_large_span(state, s)
        return 0
    nobj = spans[base + SP_NOBJ]
    before = nobj - spans[base + SP_NFREE]
    if concurrent:
        live = _sweep_bits(spans, bits, s, nobj, bits, words[S_BLACK_BASE] + s * BITMAP_WORDS)
    else:
        live = _sweep_bits(spans, bits, s, nobj, bits, spans[base + SP_MARK_BITS])
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
    """One stop-the-world cycle: flush every mcache, sweep every span (the live objects survive), commit."""
    _collect(state, False)


@njit(cache=True)
def _collect(state, concurrent):
    """Flush every mcache, sweep every span keeping the survivors (concurrent: the black objects; else the
    live ones), then commit the marked bytes (heap_live, goal, trigger) and count the cycle."""
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
                marked += _sweep_span(state, s, concurrent)
                s = after
    words[C_GC_CYCLES] += 1
    words[S_RUNWAY_KNOWN] = 1
    _commit(words, marked)
