"""mimalloc model: the named slots of its state, shared by mimalloc.py, mimalloc_page.py and mimalloc_segments.py.

The state is a tuple of arrays (indices I_*), sized from the capacity and the
thread count in `MiMalloc.make_state`:

- `words` (int64): counters (C_*, named by COUNTER_NAMES), then scalars (S_*).
- `bin_index` (uint8, wsize -> bin) and `bin_size` (int64, bin -> block size):
  allocators.shared.mimalloc_bins.
- `pages` (int64, PG_STRIDE words per 64 KiB slice of the address space): the
  record of the page or free span whose first slice it is (mimalloc keeps the
  same `mi_page_t` per slice in the segment's `slices[]`).
- `slice_page` (int32, one per slice): the first slice of the page or span the
  slice belongs to (mimalloc's `slice_offset`), NO_PAGE for a segment's info
  slice.  Kept exact for every slice of a page and for the first and last slice
  of a free span (what coalescing reads).
- `committed` (uint8, one per slice): 1 while the slice is committed.
- `resident` (uint8, one per 4 KiB OS page): 1 while the page is resident (written since it was last
  purged): the footprint, S_RESIDENT (allocators.mimalloc_segments, "Footprint").
- `links` (int64, one per 8 B granule, np.empty): the next block of whatever
  list (free, local_free, thread_free) a free block is on.
- `queues` (int64, per thread x N_QUEUES bins: first, last page): the heap's
  page queues, MI_BIN_FULL the full pages.
- `spanq` (int64, per thread x N_SPAN_BINS: first span): the thread's free
  spans by slice-count bin (mimalloc's `tld->segments.spans`).
- `segs` (int64, SG_STRIDE words per 32 MiB frame of the address space).
- `heaps` (int64, H_STRIDE words per thread).
"""

from __future__ import annotations

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: 64 KiB slices, 32 MiB segments of 512 slices (MI_SEGMENT_SLICE_SHIFT, MI_SEGMENT_SHIFT), one slice of
#: segment info (sizeof(mi_segment_t) is about 41 KiB: 512 + 1 slice records).
SLICE_SHIFT = 16
SLICE_SIZE = 1 << SLICE_SHIFT
SEGMENT_SHIFT = 25
SEGMENT_SIZE = 1 << SEGMENT_SHIFT
SLICES_PER_SEGMENT = SEGMENT_SIZE >> SLICE_SHIFT
FRAME_SHIFT = SEGMENT_SHIFT - SLICE_SHIFT  # global slice index >> FRAME_SHIFT = its segment frame
INFO_SLICES = 1
SMALL_PAGE_SLICES = 1  # 64 KiB
MEDIUM_PAGE_SLICES = 8  # 512 KiB
#: Blocks of at most 1 KiB start 384 B into their page (measured on libmimalloc 2.0.9: the first block of a
#: fresh page of 8 .. 1024 B blocks is at page + 0x180; of 1025 B and up at the page start).
SMALL_BLOCK_OFFSET = 384
SMALL_BLOCK_OFFSET_MAX = 1024
#: The OS page: the unit of resident memory (the footprint), 4 KiB on Linux x86-64.
OS_PAGE_SHIFT = 12
OS_PAGE_SIZE = 1 << OS_PAGE_SHIFT
OS_PAGES_PER_SLICE = SLICE_SIZE >> OS_PAGE_SHIFT
#: The segment info's layout (mi_segment_t): a header, then one mi_slice_t (mi_page_t) record per slice.
SEGMENT_HEADER_BYTES = 160
SLICE_RECORD_BYTES = 80
#: page.c: MI_MAX_EXTEND_SIZE, MI_MIN_EXTEND, MI_RETIRE_CYCLES.  A retired page's countdown is 1 + 8 (1 + 8 / 4
#: for blocks above 16 KiB), as measured on libmimalloc 2.0.9: a lone emptied page of 16 B blocks is freed by the
#: 9th fresh page its heap takes, one of 20000 B blocks by the 3rd (tests/test_mimalloc.py).
MAX_EXTEND_SIZE = 4096
MIN_EXTEND = 4
RETIRE_CYCLES = 8
LINK_SHIFT = 3
END = -1
NO_PAGE = -2

#: Metadata model (bytes): a segment's info (its header + one 80 B mi_page_t per slice, 513 of them), a heap
#: (mi_heap_t: 130 direct page pointers + 75 page queues of 24 B + the rest, and its tld).
SEGMENT_INFO_BYTES = SEGMENT_HEADER_BYTES + (SLICES_PER_SEGMENT + 1) * SLICE_RECORD_BYTES
HEAP_BYTES = 3072

# ----------------------------------------------------------------- words
#: Local frees (by the page's owner) are not counted on the hot path: frees - remote_frees - huge_frees.
C_ALLOCS, C_FREES, C_HUGE_FREES, C_REMOTE_FREES = 0, 1, 2, 3
C_GENERIC_ALLOCS, C_COLLECTS, C_EXTENDS, C_PAGES_ALLOCATED = 4, 5, 6, 7
C_PAGES_FREED, C_PAGES_RETIRED, C_FULL_MOVES, C_DELAYED_FREES = 8, 9, 10, 11
C_SEGMENTS_ALLOCATED, C_SEGMENTS_FREED, C_LARGE_ALLOCS, C_HUGE_ALLOCS = 12, 13, 14, 15
C_BORROWED_SPANS, C_COMMITS, C_PURGES, C_REALLOCS_IN_PLACE = 16, 17, 18, 19
C_RECLAIM_PASSES, C_RECLAIMED_PAGES = 20, 21
COUNTER_NAMES = (
    "allocs", "frees", "huge_frees", "remote_frees",
    "generic_allocs", "collects", "extends", "pages_allocated",
    "pages_freed", "pages_retired", "full_moves", "delayed_frees",
    "segments_allocated", "segments_freed", "large_allocs", "huge_allocs",
    "borrowed_spans", "slice_commits", "slice_purges", "reallocs_in_place",
    "reclaim_passes", "reclaimed_pages",
)
S_BASE = len(COUNTER_NAMES)
S_N_THREADS = S_BASE + 0
S_N_FRAMES = S_BASE + 1
S_N_SLICES = S_BASE + 2
S_PURGE = S_BASE + 3  # PURGE_NEVER | PURGE_IMMEDIATE
S_COMMITTED = S_BASE + 4  # bytes of committed slices (mimalloc's commit statistic, at slice granularity)
S_SEGMENTS = S_BASE + 5  # live segments (normal and huge)
S_HEAPS = S_BASE + 6  # heaps created
S_METADATA = S_BASE + 7  # bytes
S_RESIDENT = S_BASE + 8  # bytes of resident OS pages: the footprint
N_WORDS = S_BASE + 9

PURGE_NEVER, PURGE_IMMEDIATE = 0, 1
PURGE_MODES = {"never": PURGE_NEVER, "immediate": PURGE_IMMEDIATE}

# ----------------------------------------------------------------- pages[] (per first slice)
#: The fields the hot paths read (alloc: free, used, touched; free: free's neighbours) share one 64 B line.
#: PG_TOUCHED: the address below which the page's blocks have been written (a block handed out there for the
#: first time is not; see mimalloc_page, "Footprint").
PG_FREE, PG_LOCAL, PG_USED, PG_BSIZE = 0, 1, 2, 3
PG_HEAP, PG_QUEUE, PG_KIND, PG_TOUCHED = 4, 5, 6, 7
PG_THREAD_N, PG_CAPACITY, PG_RESERVED, PG_START = 8, 9, 10, 11
PG_NEXT, PG_PREV, PG_SLICES, PG_RETIRE = 12, 13, 14, 15
PG_BIN, PG_DELAYED, PG_DNEXT, PG_THREAD = 16, 17, 18, 19
PG_SHIFT = 5
PG_STRIDE = 1 << PG_SHIFT
#: PG_KIND values
K_FREE_SPAN, K_PAGE, K_LARGE, K_HUGE = 0, 1, 2, 3
NO_QUEUE = -1

# ----------------------------------------------------------------- segs[] (per 32 MiB frame)
SG_KIND, SG_OWNER, SG_USED, SG_END, SG_FRAMES = 0, 1, 2, 3, 4
SG_STRIDE = 8
F_FREE, F_NORMAL, F_HUGE, F_HUGE_TAIL = 0, 1, 2, 3

# ----------------------------------------------------------------- heaps[] (per thread)
H_ACTIVE, H_RETIRED_MIN, H_RETIRED_MAX, H_DELAYED = 0, 1, 2, 3
H_STRIDE = 4

#: Free-span queues per thread (mi_slice_bin8 of a span of up to 511 slices is at most 31; MI_SEGMENT_BIN_MAX 35).
N_SPAN_BINS = 36

# ----------------------------------------------------------------- state tuple
I_WORDS, I_BIN_INDEX, I_BIN_SIZE, I_PAGES, I_SLICE_PAGE, I_COMMITTED = 0, 1, 2, 3, 4, 5
I_LINKS, I_QUEUES, I_SPANQ, I_SEGS, I_HEAPS, I_RESIDENT = 6, 7, 8, 9, 10, 11
N_STATE = 12
