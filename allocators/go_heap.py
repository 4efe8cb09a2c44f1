"""go_heap: the go model's allocator kernels: mcache, mcentral, mheap, the tiny allocator and large objects.

The design is in allocators.go's docstring; this module is its code, the
`Go` shell's replay kernels (`alloc_block`, `free_block`, `heap_stats`,
`reset_state`, handed to the shared replay driver) and the slow paths they
call.  The hot path is `alloc_block`'s mcache hit (a lookup, one bitmap word
search, no call) and `free_block`'s bit clear; everything below a refill or a
span return is a separate, not inlined function: `refill` (mcache.refill) and
`_cache_span` (mcentral.cacheSpan, mcentral.grow), `alloc_large` /
`free_large` (mcache.allocLarge, the mheap), `tiny_new_block` (a fresh 16 B
tiny block).  The span returns both this module and the collector make are in
allocators.go_layout; the collector (allocators.go_gc) is called at the
refill and large-allocation checks and, while a concurrent mark runs, on
every allocation (`mark_black`).

State: the tuple of arrays laid out by allocators.go_layout (slots and
indices by name), built by `Go.make_state`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY
from allocators.go_gc import (
    clear_black,
    collect_before_refill,
    collect_if_over_goal,
    emergency_cycle,
    mark_black,
    reset_pacer,
)
from allocators.go_layout import (
    C_ALLOCS,
    C_CACHE_SPAN,
    C_FREES,
    C_LARGE_ALLOCS,
    C_MARK_PHASE_FREES,
    C_MHEAP_ALLOCS,
    C_PEAK_HEAP_INUSE,
    C_PEAK_HEAP_LIVE,
    C_REFILLS,
    C_SPANS_ALLOCATED,
    C_TINY_ALLOCS,
    C_TINY_BLOCKS,
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
    K_STRIDE,
    K_TAIL,
    MC_ACTIVE,
    MC_STRIDE,
    MC_TINY,
    MC_TINY_OFFSET,
    N_SPAN_CLASSES,
    NO_BLOCK,
    PH,
    S_GC_MODE,
    S_GC_ON,
    S_HEADER_MIN,
    S_HEAP_LIVE,
    S_MARKING,
    S_METADATA,
    S_NOSCAN_RULE,
    S_SMALL_LIMIT,
    S_STATIC_METADATA,
    S_THREADS_SEEN,
    S_TINY_LIMIT,
    SP_BLACK,
    TINY_SHIFT,
    explicit_span_transition,
    free_slot,
    release_large_span,
    tiny_unpin,
    uncache_span,
)
from allocators.shared.central import LIST_FULL, central_pop_partial, central_push_span, reset_central
from allocators.shared.go_sizeclasses import (
    MALLOC_HEADER_SIZE,
    PAGE_SHIFT,
    TINY_SIZE,
    TINY_SIZE_CLASS,
    go_size_to_class,
)
from allocators.shared.pageheap import (
    PH_FREE_PAGES,
    PH_FREE_RUNS,
    PH_HEAP_PAGES,
    PH_METADATA,
    PH_RECORDS,
    pageheap_alloc,
    pageheap_reset,
)
from allocators.shared.spanbitmap import bitmap_init, bitmap_mark, bitmap_release, bitmap_take_lowest
from allocators.shared.spans import (
    NO_SPAN,
    SP_CLASS,
    SP_LIST,
    SP_MARK_BITS,
    SP_NFREE,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SP_STATE,
    SP_USER0,
    SP_USER2,
    SPAN_SHIFT,
    SPAN_SMALL,
    SR_TOP,
    pagemap_set_range,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

PAGE_SIZE = 1 << PAGE_SHIFT
TINY_SPAN_CLASS = (TINY_SIZE_CLASS << 1) | 1  # 5: class 2 (16 B), noscan
GROW_PAGES = 512  # mheap.grow: alignUp(npages, 512) pages = 4 MiB
ARENA_PAGES = 8192  # 64 MiB heap arenas (linux/amd64)
ALIGNMENT = 8  # every class size is a multiple of 8 and spans start on pages: MinHeapAlign

#: Metadata model (bytes).
MSPAN_BYTES = 160
PAGE_META_BYTES = 9
MCACHE_BYTES = 1192
MCENTRAL_BYTES = 192

NOSCAN_RULES = ("all", "none", "small")
NOSCAN_ALL, NOSCAN_NONE, NOSCAN_SMALL = 0, 1, 2
FREE_MODES = ("explicit", "gc")


# ------------------------------------------------------------------ helpers
@njit(cache=True, inline="always")
def _heap_live_add(words, delta):
    live = words[S_HEAP_LIVE] + delta
    words[S_HEAP_LIVE] = live
    if live > words[C_PEAK_HEAP_LIVE]:
        words[C_PEAK_HEAP_LIVE] = live


@njit(cache=True, inline="always")
def _note_heap_inuse(words):
    """Peak HeapInuse: the pages of spans in use (mapped - free), after the mheap handed out a span."""
    inuse = (words[PH + PH_HEAP_PAGES] - words[PH + PH_FREE_PAGES]) << PAGE_SHIFT
    if inuse > words[C_PEAK_HEAP_INUSE]:
        words[C_PEAK_HEAP_INUSE] = inuse


# ---------------------------------------------------------- mcentral / mheap
@njit(cache=True)
def _cache_span(state, spc):
    """mcentral.cacheSpan: the first partial span of the class, else a new span from the mheap (NO_SPAN: none)."""
    words, classes = state[I_WORDS], state[I_CLASSES]
    spans, pagemap, run_heads, run_bits, run_tree, bits = (
        state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE], state[I_BITS]
    )
    words[C_CACHE_SPAN] += 1
    s = central_pop_partial(words, CB, spc, spans)
    if s != NO_SPAN:
        return s
    row = spc * K_STRIDE
    s = pageheap_alloc(words, PH, spans, pagemap, run_heads, run_bits, run_tree, classes[row + K_PAGES])
    if s == NO_SPAN:
        return s
    words[C_MHEAP_ALLOCS] += 1
    words[C_SPANS_ALLOCATED] += 1
    _note_heap_inuse(words)
    words[S_METADATA] += classes[row + K_GCBITS]
    base = s << SPAN_SHIFT
    nobj = classes[row + K_NELEMS]
    spans[base + SP_STATE] = SPAN_SMALL
    spans[base + SP_CLASS] = spc
    spans[base + SP_OBJ_SIZE] = classes[row + K_SIZE]
    spans[base + SP_NOBJ] = nobj
    spans[base + SP_NFREE] = nobj
    spans[base + SP_LIST] = NO_SPAN
    spans[base + SP_USER2] = classes[row + K_MAGIC]
    pagemap_set_range(pagemap, s, spans[base + SP_START], spans[base + SP_NPAGES])
    bitmap_init(spans, bits, s, nobj)
    clear_black(state, s, nobj)
    return s


@njit(cache=True)
def _activate_mcache(state, thread):
    words, mcache = state[I_WORDS], state[I_MCACHE]
    mcache[thread * MC_STRIDE + MC_ACTIVE] = 1
    words[S_METADATA] += MCACHE_BYTES
    if thread + 1 > words[S_THREADS_SEEN]:
        words[S_THREADS_SEEN] = thread + 1


@njit(cache=True)
def refill(state, thread, spc):
    """mcache.refill: swap the mcache's full span for one with a free slot; NO_SPAN when memory is exhausted."""
    words, classes, mcache, spans = state[I_WORDS], state[I_CLASSES], state[I_MCACHE], state[I_SPANS]
    mc = thread * MC_STRIDE
    if mcache[mc + MC_ACTIVE] == 0:
        _activate_mcache(state, thread)
    words[C_REFILLS] += 1
    old = mcache[mc + spc]
    if old != NO_SPAN:
        mcache[mc + spc] = NO_SPAN
        uncache_span(state, old)
    row = spc * K_STRIDE
    size = classes[row + K_SIZE]
    tail = classes[row + K_TAIL] * words[S_GC_MODE]  # Go counts the tail too: allocators.go_gc, Trigger
    if words[S_GC_ON] != 0:
        collect_before_refill(state, spc, size, tail)
    s = _cache_span(state, spc)
    if s == NO_SPAN and words[S_GC_ON] != 0:
        emergency_cycle(state)
        s = _cache_span(state, spc)
    if s == NO_SPAN:
        return s
    mcache[mc + spc] = s
    _heap_live_add(words, spans[(s << SPAN_SHIFT) + SP_NFREE] * size + tail)
    return s


@njit(cache=True)
def alloc_large(state, size, noscan, thread):
    """mcache.allocLarge: ceil(size / 8 KiB) pages straight from the mheap."""
    words, mcache, spans = state[I_WORDS], state[I_MCACHE], state[I_SPANS]
    pagemap, run_heads, run_bits, run_tree = state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    if mcache[thread * MC_STRIDE + MC_ACTIVE] == 0:
        _activate_mcache(state, thread)
    npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
    nbytes = npages << PAGE_SHIFT
    collect_if_over_goal(state, nbytes)
    s = pageheap_alloc(words, PH, spans, pagemap, run_heads, run_bits, run_tree, npages)
    if s == NO_SPAN and words[S_GC_ON] != 0:
        emergency_cycle(state)
        s = pageheap_alloc(words, PH, spans, pagemap, run_heads, run_bits, run_tree, npages)
    if s == NO_SPAN:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    base = s << SPAN_SHIFT
    spans[base + SP_CLASS] = noscan  # span class 0 (scan) or 1 (noscan)
    spans[base + SP_OBJ_SIZE] = nbytes
    spans[base + SP_NOBJ] = 1
    spans[base + SP_NFREE] = 0
    spans[base + SP_USER0] = 1  # live
    spans[base + SP_BLACK] = 1  # survives a running mark (allocate black)
    if words[S_GC_MODE] != 0:  # Go puts large spans on their mcentral's full list for the sweeper
        central_push_span(words, CB, noscan, spans, s, LIST_FULL, True)
    words[S_METADATA] += 16
    words[C_MHEAP_ALLOCS] += 1
    words[C_LARGE_ALLOCS] += 1
    words[C_ALLOCS] += 1
    _note_heap_inuse(words)
    _heap_live_add(words, nbytes)
    return spans[base + SP_START] << PAGE_SHIFT, nbytes


@njit(cache=True)
def free_large(state, s):
    words, spans = state[I_WORDS], state[I_SPANS]
    base = s << SPAN_SHIFT
    if words[S_GC_MODE] != 0:
        spans[base + SP_USER0] = 0  # garbage: the next sweep frees it
    else:
        words[S_HEAP_LIVE] -= spans[base + SP_OBJ_SIZE]
        release_large_span(state, s)


@njit(cache=True)
def tiny_new_block(state, thread, block, size):
    """A tiny request got a fresh 16 B block (object at its start); maybe make it the mcache's tiny block."""
    words, mcache, tiny_counts = state[I_WORDS], state[I_MCACHE], state[I_TINY]
    mc = thread * MC_STRIDE
    tiny_counts[block >> TINY_SHIFT] = 1
    words[C_TINY_BLOCKS] += 1
    old = mcache[mc + MC_TINY]
    if old == NO_BLOCK or size < mcache[mc + MC_TINY_OFFSET]:
        tiny_counts[block >> TINY_SHIFT] = 2  # the object + the mcache's pin
        mcache[mc + MC_TINY] = block
        mcache[mc + MC_TINY_OFFSET] = size
        if old != NO_BLOCK:
            tiny_unpin(state, old)


# ------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, class8, class128, mcache, tiny_counts, spans, bits = (
        state[I_WORDS], state[I_CLASS8], state[I_CLASS128], state[I_MCACHE], state[I_TINY], state[I_SPANS],
        state[I_BITS],
    )
    rule = words[S_NOSCAN_RULE]
    noscan = np.int64(1)
    if rule == NOSCAN_NONE or (rule == NOSCAN_SMALL and size >= TINY_SIZE):
        noscan = np.int64(0)
    if size > words[S_SMALL_LIMIT]:
        return alloc_large(state, size, noscan, thread)
    mc = thread * MC_STRIDE
    tiny = noscan == 1 and size < words[S_TINY_LIMIT]
    header = np.int64(0)
    if tiny:
        block = mcache[mc + MC_TINY]
        offset = mcache[mc + MC_TINY_OFFSET]
        if size & 7 == 0:
            offset = (offset + 7) & -8
        elif size & 3 == 0:
            offset = (offset + 3) & -4
        elif size & 1 == 0:
            offset = (offset + 1) & -2
        if block != NO_BLOCK and offset + size <= TINY_SIZE:
            mcache[mc + MC_TINY_OFFSET] = offset + size
            tiny_counts[block >> TINY_SHIFT] += 1
            words[C_TINY_ALLOCS] += 1
            words[C_ALLOCS] += 1
            return block + offset, size
        spc = np.int64(TINY_SPAN_CLASS)
    else:
        if noscan == 0 and size > words[S_HEADER_MIN]:
            header = np.int64(MALLOC_HEADER_SIZE)
        spc = (go_size_to_class(size + header, class8, class128) << 1) | noscan
    s = mcache[mc + spc]
    if s == NO_SPAN or spans[(s << SPAN_SHIFT) + SP_NFREE] == 0:
        s = refill(state, thread, spc)
        if s == NO_SPAN:
            return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    base = s << SPAN_SHIFT
    index = bitmap_take_lowest(spans, bits, s)
    spans[base + SP_NFREE] -= 1
    if words[S_GC_MODE] != 0:
        bitmap_mark(spans, bits, s, index)
        mark_black(state, s, index)
    elemsize = spans[base + SP_OBJ_SIZE]
    addr = (spans[base + SP_START] << PAGE_SHIFT) + index * elemsize
    words[C_ALLOCS] += 1
    if tiny:
        words[C_TINY_ALLOCS] += 1
        tiny_new_block(state, thread, addr, size)
        return addr, size
    return addr + header, elemsize - header


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, tiny_counts, spans, pagemap, bits = (
        state[I_WORDS], state[I_TINY], state[I_SPANS], state[I_PAGEMAP], state[I_BITS]
    )
    words[C_FREES] += 1
    words[C_MARK_PHASE_FREES] += words[S_MARKING]
    s = pagemap[addr >> PAGE_SHIFT]
    base = s << SPAN_SHIFT
    if spans[base + SP_STATE] != SPAN_SMALL:
        free_large(state, s)
        return np.int64(ST_OK), np.int64(0)
    size = spans[base + SP_OBJ_SIZE]
    if size == TINY_SIZE and words[S_TINY_LIMIT] != 0 and tiny_counts[addr >> TINY_SHIFT] != 0:
        left = tiny_counts[addr >> TINY_SHIFT] - 1
        tiny_counts[addr >> TINY_SHIFT] = left
        if left == 0:
            free_slot(state, s, addr & -TINY_SIZE)
        return np.int64(ST_OK), np.int64(0)
    index = ((addr - (spans[base + SP_START] << PAGE_SHIFT)) * spans[base + SP_USER2]) >> 32
    if words[S_GC_MODE] != 0:
        bits[spans[base + SP_MARK_BITS] + (index >> 6)] &= ~(np.int64(1) << (index & 63))
    else:
        bitmap_release(spans, bits, s, index)
        nfree = spans[base + SP_NFREE] + 1
        spans[base + SP_NFREE] = nfree
        if spans[base + SP_LIST] != NO_SPAN:  # not in an mcache
            words[S_HEAP_LIVE] -= size
            if nfree == 1 or nfree == spans[base + SP_NOBJ]:
                explicit_span_transition(state, s)
    return np.int64(ST_OK), size


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[I_WORDS]
    return (
        words[PH + PH_HEAP_PAGES] << PAGE_SHIFT,
        words[PH + PH_METADATA] - words[PH + PH_FREE_RUNS] * MSPAN_BYTES + words[S_METADATA],
    )


@njit(cache=True)
def _clear_tiny_counts(state):
    """Zero the tiny-block counts of every live 16 B noscan span (before the heap forgets its spans)."""
    words, tiny_counts, spans = state[I_WORDS], state[I_TINY], state[I_SPANS]
    for s in range(words[PH + PH_RECORDS + SR_TOP]):
        base = s << SPAN_SHIFT
        if spans[base + SP_STATE] == SPAN_SMALL and spans[base + SP_CLASS] == TINY_SPAN_CLASS:
            first = spans[base + SP_START] << (PAGE_SHIFT - TINY_SHIFT)
            for block in range(first, first + (spans[base + SP_NPAGES] << (PAGE_SHIFT - TINY_SHIFT))):
                tiny_counts[block] = 0


@njit(cache=True)
def reset_state(state):
    """Every block free: mcaches and mcentrals empty, the heap one free run (footprint kept), GC state fresh."""
    words, mcache = state[I_WORDS], state[I_MCACHE]
    spans, pagemap, run_heads, run_bits, run_tree = (
        state[I_SPANS], state[I_PAGEMAP], state[I_RUN_HEADS], state[I_RUN_BITS], state[I_RUN_TREE]
    )
    if words[S_TINY_LIMIT] > 0:
        _clear_tiny_counts(state)
    for thread in range(words[S_THREADS_SEEN]):
        mc = thread * MC_STRIDE
        for spc in range(N_SPAN_CLASSES):
            mcache[mc + spc] = NO_SPAN
        mcache[mc + MC_TINY] = NO_BLOCK
        mcache[mc + MC_TINY_OFFSET] = 0
        mcache[mc + MC_ACTIVE] = 0
    words[S_THREADS_SEEN] = 0
    reset_central(words, CB, N_SPAN_CLASSES)
    pageheap_reset(words, PH, spans, pagemap, run_heads, run_bits, run_tree)
    words[S_METADATA] = words[S_STATIC_METADATA]
    reset_pacer(words)
