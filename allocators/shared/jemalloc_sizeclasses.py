"""jemalloc 5.3's size classes (4 KiB pages, 16 B quantum), its slab sizes, tcache slots and size -> class lookup.

Generated, as jemalloc generates them at boot (`src/sc.c` size_classes(),
constants of `include/jemalloc/internal/sc.h`: LG_PAGE 12, LG_QUANTUM 4,
SC_LG_NGROUP 2, SC_LG_TINY_MIN 3, 64-bit pointers):

- tiny classes below the quantum: 8 B;
- the first (pseudo) group, quantum-spaced: 16, 32, 48, 64;
- then groups of four per doubling, each step a quarter of the group's base:
  80, 96, 112, 128 | 160 .. 256 | 320 .. 512 | ... (size = 2^lg_base +
  ndelta * 2^lg_delta, ndelta 1..4), up to just under 2^63.

A class below 4 pages x 4 (`size < 1 << (LG_PAGE + SC_LG_NGROUP)` = 16 KiB)
is *small* (a bin: 36 classes, 8 B .. 14 KiB); its slab is `slab_size()`'s
answer: the smallest number of pages whose bytes are an exact multiple of the
region size (the loop of src/sc.c; at most 2 x ngroup - 1 = 7 pages), so a
slab has no tail waste, nregs = slab bytes / size.  Larger classes are
*large*: page multiples from 16 KiB on (16, 20, 24, 28, 32 KiB, 40 KiB, ...).

tcache (src/tcache.c, tcache_ncached_max_compute with the defaults
opt_tcache_nslots_small_min 20, _max 200, opt_lg_tcache_nslots_mul 1,
opt_tcache_nslots_large 20): a small bin caches 2 x nregs slots, made even and
clamped to 20..200; a large bin 20.  opt_tcache_max = 32 KiB, so the tcache has
nhbins = 41 bins: the 36 small classes and the large classes 16..32 KiB.

The table (`JEMALLOC_TABLE`, an allocators.shared.sizeclasses.SizeClassTable)
holds those 41 cached classes; its class c is jemalloc's szind c - 1 (class 0
is the table's sentinel).  Column `pages` is the slab's page count for a small
class and the class's own page count for a large one; `num_to_move` holds the
tcache slots (ncached_max).  `nregs` (= `objects` for small classes) and
`ncached_max` are exported as arrays too.  Lookup for requests up to 32 KiB is
one table read (`je_size_to_class`, the flat class_index of sizeclasses.py:
8 B steps to 1 KiB, 128 B steps above, both on jemalloc's grid); above it the
granted size is computed (`je_large_usize`, sz_s2u_compute: round up to a
quarter of the next power of two).  `usable_size(size)` is the same in Python
for any size (what `nallocx(size, 0)` returns) and `all_classes(limit)` lists
every class size up to a limit.  tests/test_jemalloc.py compares the small
classes with shared/reference/jemalloc_smallbins_derived.csv (copy in
tests/data/).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.bits import ceil_log2
from allocators.shared.sizeclasses import SizeClassTable, size_to_class
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

LG_PAGE = 12
PAGE_SIZE = 1 << LG_PAGE
LG_QUANTUM = 4
SC_LG_NGROUP = 2
SC_NGROUP = 1 << SC_LG_NGROUP
SC_LG_TINY_MIN = 3
PTR_BITS = 64
#: Requests up to this size are small (bins); larger are large (SC_SMALL_MAXCLASS = 14 KiB).
SMALL_MAXCLASS = 14336
LARGE_MINCLASS = 16384
#: opt_tcache_max and the tcache slot rules (src/tcache.c defaults).
TCACHE_MAX = 32768
NSLOTS_SMALL_MIN = 20
NSLOTS_SMALL_MAX = 200
NSLOTS_LARGE = 20
LG_NSLOTS_MUL = 1
#: Alignment every class honours: 8 B (the tiny class); classes from 16 B on are 16 B aligned (the quantum).
ALIGNMENT = 8


def slab_pages(size: int, lg_page: int = LG_PAGE) -> int:
    """src/sc.c slab_size(): the smallest page count whose bytes are a multiple of `size`."""
    page = 1 << lg_page
    pages = 1
    while (pages * page) % size:
        pages += 1
    return pages


def all_classes(limit: int) -> list[int]:
    """Every class size <= `limit`, in order, as src/sc.c size_classes() generates them."""
    sizes = []
    lg_base = SC_LG_TINY_MIN
    while lg_base < LG_QUANTUM:  # tiny
        sizes.append(1 << lg_base)
        lg_base += 1
    lg_delta = LG_QUANTUM
    sizes.extend((1 << LG_QUANTUM) * n for n in range(1, SC_NGROUP + 1))  # the pseudo group 16 .. 64
    lg_base = LG_QUANTUM + SC_LG_NGROUP
    while lg_base < PTR_BITS - 1:
        limit_n = SC_NGROUP - 1 if lg_base == PTR_BITS - 2 else SC_NGROUP
        for ndelta in range(1, limit_n + 1):
            size = (1 << lg_base) + (ndelta << lg_delta)
            if size > limit:
                return sizes
            sizes.append(size)
        lg_base += 1
        lg_delta += 1
    return sizes


def usable_size(size: int) -> int:
    """The class a request of `size` >= 1 bytes is granted (nallocx(size, 0))."""
    if size <= 8:
        return 8
    lg = (size - 1).bit_length()
    lg_delta = max(LG_QUANTUM, lg - SC_LG_NGROUP - 1)
    delta = 1 << lg_delta
    return (size + delta - 1) & ~(delta - 1)


def ncached_max_for(nregs: int) -> int:
    """tcache_ncached_max_compute() for a small bin of `nregs` regions per slab, with the default options."""
    candidate = nregs << LG_NSLOTS_MUL
    if candidate % 2:
        candidate += 1
    return min(max(candidate, NSLOTS_SMALL_MIN), NSLOTS_SMALL_MAX)


def _build_table() -> tuple[SizeClassTable, np.ndarray, np.ndarray, int]:
    sizes = all_classes(TCACHE_MAX)
    n_small = sum(1 for s in sizes if s <= SMALL_MAXCLASS)
    pages = [0]
    slots = [0]
    nregs = [0]
    for size in sizes:
        if size <= SMALL_MAXCLASS:
            p = slab_pages(size)
            pages.append(p)
            nregs.append(p * PAGE_SIZE // size)
            slots.append(ncached_max_for(nregs[-1]))
        else:
            pages.append(size // PAGE_SIZE)
            nregs.append(1)
            slots.append(NSLOTS_LARGE)
    table = SizeClassTable(
        name="jemalloc", page_shift=LG_PAGE, size=np.array([0, *sizes], np.int64),
        pages=np.array(pages, np.int64), num_to_move=np.array(slots, np.int64),
    )
    nregs_array = np.array(nregs, np.int64)
    slots_array = np.array(slots, np.int64)
    for values in (nregs_array, slots_array):
        values.setflags(write=False)
    return table, nregs_array, slots_array, n_small


JEMALLOC_TABLE, NREGS, NCACHED_MAX, N_SMALL = _build_table()
#: Classes of the table (the sentinel not counted): small 1..N_SMALL, then the cached large ones.
N_CACHED = JEMALLOC_TABLE.n_classes


def small_bins() -> list[tuple[int, int, int, int, int]]:
    """(szind, size, slab_pages, nregs, ncached_max) of every small bin, as the reference CSV lists them."""
    t = JEMALLOC_TABLE
    return [(c - 1, int(t.size[c]), int(t.pages[c]), int(NREGS[c]), int(NCACHED_MAX[c])) for c in range(1, N_SMALL + 1)]


@njit(cache=True, inline="always")
def je_size_to_class(size, class_index):
    """Table class (jemalloc szind + 1) of a request of 0 <= size <= TCACHE_MAX bytes."""
    return size_to_class(size, class_index)


@njit(cache=True, inline="always")
def je_large_usize(size):
    """sz_s2u_compute for size > 4 KiB: round up to a quarter of the next power of two."""
    delta = np.int64(1) << (ceil_log2(size) - SC_LG_NGROUP - 1)
    return (size + delta - 1) & ~(delta - 1)
