"""jemalloc model, tcache side: thread set-up, cache-bin fill on a miss, flush, and the incremental GC.

The slow paths of the per-thread cache (src/tcache.c, include/jemalloc/internal/cache_bin.h;
see allocators.jemalloc for the whole design).  A cache bin is a stack of at most
ncached_max pointers (`stacks`, bottom = oldest); the hot path pops and pushes its top.

- `thread_start`: a thread's first operation gives it a tcache and an arena, round robin
  over `narenas` (arena_choose on tsd set-up), and starts its two GC tickers.
- `alloc_miss`: an empty small bin is filled from the thread's arena (tcache_alloc_small_hard:
  nfill = ncached_max >> lg_fill_div, lg_fill_div starting at 1, i.e. half the slots) and
  marked refilled; an empty large bin (16..32 KiB) is not filled: the object comes
  straight from large_malloc.
- `flush_full`: a push onto a full bin first flushes all but ncached_max >> 1 objects
  (opt_lg_tcache_flush_small_div = opt_lg_tcache_flush_large_div = 1), the oldest ones (the
  bottom of the stack, tcache_bin_flush_bottom).  `flush` returns small objects to their
  owning arenas' bins, one bin lock per arena met (items of other arenas are deferred to a
  later pass, as tcache_bin_flush_impl does), large ones to the extents.
- `tcache_event`: every opt_tcache_gc_incr_bytes (64 KiB) of allocated bytes, and every 64 KiB
  of freed bytes (the tcache_gc and tcache_gc_dalloc events), one bin, round robin over
  the 41 bins (next_gc_bin), is collected: with a low-water mark L > 0 it flushes
  L - L / 4 of its oldest objects and a small bin halves its next fill (lg_fill_div + 1, while
  the fill stays >= 1); with L = 0 a small bin refilled since the last pass doubles its
  next fill again (lg_fill_div - 1, not below 1).  The low-water mark is then reset to the
  bin's count.  (opt_tcache_gc_delay_bytes is 0 by default: no delay is modelled.)  Thread 0
  (the process's first, whose startup malloc of libstdc++'s exception pool already fired one event on
  szind 0) starts at the next bin (STARTUP_NEXT_GC_BIN).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.errors import ST_OUT_OF_MEMORY
from allocators.jemalloc_arena import bin_dalloc, bin_fill, large_alloc, large_dalloc
from allocators.jemalloc_layout import (
    B_LG_FILL_DIV,
    B_LOW_WATER,
    B_NCACHED,
    B_REFILLED,
    B_SHIFT,
    C_ALLOCS,
    C_ARENAS_USED,
    C_BIN_LOCKS,
    C_GC_EVENTS,
    C_GC_FLUSHES,
    C_TC_FILLS,
    C_TC_FLUSHES,
    C_TC_MISSES,
    I_CLASSES,
    I_PAGEMAP,
    I_SPANS,
    I_STACKS,
    I_TC,
    I_WORDS,
    K_NCACHED_MAX,
    K_SHIFT,
    K_SIZE,
    K_STACK,
    S_ARENA_BYTES,
    S_GC_INCR,
    S_METADATA,
    S_N_CACHED,
    S_N_SMALL,
    S_NARENAS,
    S_NEXT_ARENA,
    S_STACK_STRIDE,
    S_TC_STRIDE,
    S_TCACHE_BYTES,
    SP_ARENA,
    T_ARENA,
    T_NEXT_GC_BIN,
    T_UNTIL_DGC,
    T_UNTIL_GC,
)
from allocators.shared.jemalloc_sizeclasses import LG_PAGE
from allocators.shared.spans import SPAN_SHIFT
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


#: Thread 0's first GC bin.  Real jemalloc's first malloc in the process (libstdc++'s 72704 B exception pool,
#: before main) counts 80 KiB against the 64 KiB tcache_gc wait: one GC event has then visited szind 0
#: (empty, nothing to flush) and the next one goes to szind 1 (the model's class 2).  Other threads start at 1.
STARTUP_NEXT_GC_BIN = 2


@njit(cache=True)
def reset_threads(words, tc, n_threads, n_cached):
    """Every thread without a tcache or arena; every bin empty, lg_fill_div 1."""
    stride = words[S_TC_STRIDE]
    for thread in range(n_threads):
        trec = thread * stride
        for k in range(stride):
            tc[trec + k] = 0
        tc[trec + T_ARENA] = -1
        tc[trec + T_NEXT_GC_BIN] = 1
        for cls in range(1, n_cached + 1):
            tc[trec + (cls << B_SHIFT) + B_LG_FILL_DIV] = 1
    if n_threads > 0:
        tc[T_NEXT_GC_BIN] = STARTUP_NEXT_GC_BIN


@njit(cache=True)
def thread_start(state, thread):
    """The thread's first operation: its tcache, its arena (round robin), its GC tickers."""
    words, tc = state[I_WORDS], state[I_TC]
    trec = thread * words[S_TC_STRIDE]
    if tc[trec + T_ARENA] >= 0:
        return
    arena = words[S_NEXT_ARENA]
    words[S_NEXT_ARENA] = arena + 1 if arena + 1 < words[S_NARENAS] else 0
    tc[trec + T_ARENA] = arena
    if arena == words[C_ARENAS_USED]:  # round robin: arenas come into use in order
        words[C_ARENAS_USED] += 1
        words[S_METADATA] += words[S_ARENA_BYTES]
    words[S_METADATA] += words[S_TCACHE_BYTES]
    tc[trec + T_UNTIL_GC] = words[S_GC_INCR]
    tc[trec + T_UNTIL_DGC] = words[S_GC_INCR]


@njit(cache=True)
def flush(state, thread, cls, nflush):
    """Give the `nflush` oldest objects of the bin back (bins by arena, or extents); returns the new count."""
    words, classes, tc, stacks = state[I_WORDS], state[I_CLASSES], state[I_TC], state[I_STACKS]
    spans, pagemap = state[I_SPANS], state[I_PAGEMAP]
    rec = thread * words[S_TC_STRIDE] + (cls << B_SHIFT)
    base = thread * words[S_STACK_STRIDE] + classes[(cls << K_SHIFT) + K_STACK]
    n = tc[rec + B_NCACHED]
    if cls <= words[S_N_SMALL]:
        left = nflush
        while left > 0:  # one pass per arena: lock its bin, free its objects, defer the others
            words[C_BIN_LOCKS] += 1
            arena = spans[(pagemap[stacks[base] >> LG_PAGE] << SPAN_SHIFT) + SP_ARENA]
            deferred = 0
            for i in range(left):
                addr = stacks[base + i]
                s = pagemap[addr >> LG_PAGE]
                if spans[(s << SPAN_SHIFT) + SP_ARENA] != arena:
                    stacks[base + deferred] = addr
                    deferred += 1
                else:
                    bin_dalloc(state, cls, s, addr)
            left = deferred
    else:
        for i in range(nflush):
            large_dalloc(state, pagemap[stacks[base + i] >> LG_PAGE])
    keep = n - nflush
    for i in range(keep):
        stacks[base + i] = stacks[base + nflush + i]
    tc[rec + B_NCACHED] = keep
    if tc[rec + B_LOW_WATER] > keep:
        tc[rec + B_LOW_WATER] = keep
    return keep


@njit(cache=True)
def flush_full(state, cls, thread):
    """The bin is full: flush all but half of its slots (the oldest objects); returns the new count."""
    words, classes, tc = state[I_WORDS], state[I_CLASSES], state[I_TC]
    words[C_TC_FLUSHES] += 1
    rec = thread * words[S_TC_STRIDE] + (cls << B_SHIFT)
    remain = classes[(cls << K_SHIFT) + K_NCACHED_MAX] >> 1
    return flush(state, thread, cls, tc[rec + B_NCACHED] - remain)


@njit(cache=True)
def tcache_event(state, thread):
    """One incremental GC step on the thread's next bin (tcache_event)."""
    words, classes, tc = state[I_WORDS], state[I_CLASSES], state[I_TC]
    trec = thread * words[S_TC_STRIDE]
    cls = tc[trec + T_NEXT_GC_BIN]
    rec = trec + (cls << B_SHIFT)
    small = cls <= words[S_N_SMALL]
    low = tc[rec + B_LOW_WATER]
    if low > 0:
        flush(state, thread, cls, low - (low >> 2))
        words[C_GC_FLUSHES] += 1
        if small and classes[(cls << K_SHIFT) + K_NCACHED_MAX] >> (tc[rec + B_LG_FILL_DIV] + 1) >= 1:
            tc[rec + B_LG_FILL_DIV] += 1
    elif small and tc[rec + B_REFILLED] != 0:
        if tc[rec + B_LG_FILL_DIV] > 1:
            tc[rec + B_LG_FILL_DIV] -= 1
        tc[rec + B_REFILLED] = 0
    tc[rec + B_LOW_WATER] = tc[rec + B_NCACHED]
    tc[trec + T_NEXT_GC_BIN] = cls + 1 if cls < words[S_N_CACHED] else 1
    words[C_GC_EVENTS] += 1


@njit(cache=True)
def _event(state, thread, ticker):
    """A GC ticker (T_UNTIL_GC or T_UNTIL_DGC) ran out: a GC step, or on the thread's first operation its set-up."""
    words, tc = state[I_WORDS], state[I_TC]
    trec = thread * words[S_TC_STRIDE]
    if tc[trec + T_ARENA] < 0:
        thread_start(state, thread)
        return
    tc[trec + ticker] = words[S_GC_INCR]
    tcache_event(state, thread)


@njit(cache=True)
def alloc_event(state, thread):
    """64 KiB allocated since the last allocation event (tcache_gc_event_handler)."""
    _event(state, thread, T_UNTIL_GC)


@njit(cache=True)
def dalloc_event(state, thread):
    """64 KiB freed since the last deallocation event (tcache_gc_dalloc_event_handler)."""
    _event(state, thread, T_UNTIL_DGC)


@njit(cache=True, inline="always")
def _tick(state, thread, usize):
    tc = state[I_TC]
    at = thread * state[I_WORDS][S_TC_STRIDE] + T_UNTIL_GC
    left = tc[at] - usize
    tc[at] = left
    if left <= 0:
        alloc_event(state, thread)


@njit(cache=True)
def alloc_miss(state, cls, thread):
    """An empty bin: fill a small one from the thread's arena, or take a large object from the extents."""
    words, classes, tc, stacks = state[I_WORDS], state[I_CLASSES], state[I_TC], state[I_STACKS]
    thread_start(state, thread)
    k = cls << K_SHIFT
    usize = classes[k + K_SIZE]
    words[C_TC_MISSES] += 1
    trec = thread * words[S_TC_STRIDE]
    if cls <= words[S_N_SMALL]:
        rec = trec + (cls << B_SHIFT)
        nfill = classes[k + K_NCACHED_MAX] >> tc[rec + B_LG_FILL_DIV]
        base = thread * words[S_STACK_STRIDE] + classes[k + K_STACK]
        filled = bin_fill(state, tc[trec + T_ARENA], cls, stacks, base, nfill)
        if filled == 0:
            return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
        words[C_TC_FILLS] += 1
        tc[rec + B_REFILLED] = 1
        tc[rec + B_NCACHED] = filled - 1
        addr = stacks[base + filled - 1]
    else:
        addr, usize = large_alloc(state, usize, cls, tc[trec + T_ARENA])
        if addr < 0:
            return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    words[C_ALLOCS] += 1
    _tick(state, thread, usize)
    return addr, usize


@njit(cache=True)
def alloc_huge(state, usize, thread):
    """A request above tcache_max (32 KiB): large_malloc of its large class, no tcache."""
    thread_start(state, thread)
    arena = state[I_TC][thread * state[I_WORDS][S_TC_STRIDE] + T_ARENA]
    addr, usize = large_alloc(state, usize, 0, arena)
    if addr < 0:
        return np.int64(ST_OUT_OF_MEMORY), np.int64(0)
    state[I_WORDS][C_ALLOCS] += 1
    _tick(state, thread, usize)
    return addr, usize
