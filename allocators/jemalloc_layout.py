"""The jemalloc model's state layout: the named slots of its arrays, shared by its three kernel modules.

`allocators.jemalloc` (design docstring, hot path, shell), `jemalloc_arena` (bins, slabs,
extents) and `jemalloc_tcache` (fill, flush, incremental GC) all read the same state tuple;
its indices, the words layout and the record strides are named here once.

State tuple (`I_*`):
    words      counters, then the extents' region at XB (allocators.jemalloc_extents, its counters
               extend ours), then the scalars S_*
    class_index  int16 size -> class for requests <= 32 KiB (jemalloc_sizeclasses)
    classes    per table class c (0 = sentinel, 1..36 small, 37..41 large <= 32 KiB): K_* columns
    tc         per thread a record of TC_STRIDE words: the thread's T_* header in its class-0 slot,
               then per class c at c << B_SHIFT the cache bin's B_* fields
    stacks     per thread STACK_STRIDE slots: each class's cache-bin stack at its K_STACK offset,
               oldest object at the bottom (index 0), newest at ncached - 1
    bins       per (arena, small class) the bin's current slab (slabcur) or NO_SPAN
    nonfull    per (arena, small class) a hierarchical bitset over pages (allocators.shared.bitset):
               bit p set = the slab starting at page p is one of the bin's nonfull slabs
    spans, pagemap, trees   the extents (4 KiB pages; per arena a dirty and a retained first-fit tree)
    bits       the slabs' region bitmaps (allocators.shared.spanbitmap)

Span fields the model adds to the extent records: SP_CLASS (the table class: small for a
slab, 37..41 for a large extent the tcache caches, 0 for a larger one), SP_ARENA (the owning
arena of every extent, jemalloc_extents).
"""

from __future__ import annotations

from allocators.jemalloc_extents import SP_ARENA, X_COUNTER_NAMES, X_SLOTS  # noqa: F401  (SP_ARENA: re-exported)
from allocators.shared.jemalloc_sizeclasses import N_CACHED, NCACHED_MAX
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

OWN_COUNTERS = (
    "allocs", "frees", "tcache_hits", "tcache_misses", "tcache_fills", "tcache_flushes", "gc_events",
    "gc_flushes", "bin_locks", "slabs_allocated", "slabs_freed", "large_allocs", "large_frees",
    "reallocs_in_place", "arenas_used",
)
(C_ALLOCS, C_FREES, C_TC_HITS, C_TC_MISSES, C_TC_FILLS, C_TC_FLUSHES, C_GC_EVENTS, C_GC_FLUSHES, C_BIN_LOCKS,
 C_SLABS_ALLOCATED, C_SLABS_FREED, C_LARGE_ALLOCS, C_LARGE_FREES, C_REALLOCS_IN_PLACE, C_ARENAS_USED) = range(15)
COUNTER_NAMES = OWN_COUNTERS + X_COUNTER_NAMES

XB = len(OWN_COUNTERS)  # the extents' region
S_BASE = XB + X_SLOTS
S_N_THREADS = S_BASE + 0
S_NARENAS = S_BASE + 1
S_NEXT_ARENA = S_BASE + 2  # round-robin assignment of threads to arenas
S_EXT_METADATA = S_BASE + 3  # the extents' metadata (records + rtree), kept after every extent operation
S_MAPPED_PAGES = S_BASE + 4  # the footprint in pages (stats.mapped), kept after every extent operation
S_METADATA = S_BASE + 5  # tcaches + arenas (the extents keep their own)
S_STATIC_METADATA = S_BASE + 6
S_TC_STRIDE = S_BASE + 7
S_STACK_STRIDE = S_BASE + 8
S_BITSET_WORDS = S_BASE + 9  # words of one nonfull bitset
S_GC_INCR = S_BASE + 10  # opt_tcache_gc_incr_bytes
S_ARENA_BYTES = S_BASE + 11
S_TCACHE_BYTES = S_BASE + 12
S_LARGE_PAD = S_BASE + 13  # pages added to every large extent (cache-oblivious pad)
S_N_SMALL = S_BASE + 14
S_N_CACHED = S_BASE + 15
N_WORDS = S_BASE + 16

# classes[] columns
K_SHIFT = 3
K_SIZE, K_PAGES, K_NREGS, K_NCACHED_MAX, K_STACK = 0, 1, 2, 3, 4

# tc[]: the thread's header (class-0 slot), then the cache bins
B_SHIFT = 2
T_ARENA, T_UNTIL_GC, T_UNTIL_DGC, T_NEXT_GC_BIN = 0, 1, 2, 3
B_NCACHED, B_LOW_WATER, B_LG_FILL_DIV, B_REFILLED = 0, 1, 2, 3
#: Words of a thread's tc record, slots of its stacks (constants: the hot path multiplies by them).
TC_STRIDE = (N_CACHED + 1) << B_SHIFT
STACK_STRIDE = int(NCACHED_MAX[1:].sum())

# state tuple indices
I_WORDS, I_CLASS_INDEX, I_CLASSES, I_TC, I_STACKS, I_BINS, I_NONFULL = 0, 1, 2, 3, 4, 5, 6
I_SPANS, I_PAGEMAP, I_TREES, I_BITS = 7, 8, 9, 10
