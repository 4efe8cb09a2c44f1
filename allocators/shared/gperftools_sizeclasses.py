"""gperftools 2.10's size classes (libtcmalloc_minimal, Debian's libtcmalloc-minimal4): the `gperftools` table.

gperftools does not keep a table in its sources: `SizeMap::Init()` (src/common.cc)
computes the classes at start-up from a few constants, and with its defaults
(kPageShift 13: 8 KiB pages; kAlignment 8; kMinAlign 16; kMaxSize 256 KiB;
TCMALLOC_TRANSFER_NUM_OBJ unset: 32) it always computes the same 85 classes.
Those are the rows below, each (size, pages, num_to_move); row 0 is the
sentinel.  They are a copy of the lab's derived table
(shared/reference/gperftools_sizeclasses_derived.csv, tests/data/ has a copy),
which re-implements SizeMap::Init as gperftools 2.10 runs it:

- sizes: from 8 B in steps of AlignmentForSize(size): 8 below 16 B, 16
  (kMinAlign) below 128 B, then 2^floor(log2 size) / 8 (at most 12.5 % of
  rounding waste) up to kMaxSize;
- pages: the smallest span (whole 8 KiB pages) whose tail left over is at most
  1/8 of the span and that holds at least num_to_move / 4 objects;
- a size whose span has the same pages and objects as the previous class's is
  merged into it (the previous class grows to this size);
- num_to_move (NumMoveSize): 64 KiB / size, at least 2, at most 32.

tests/test_sizeclasses.py re-derives them with that algorithm, compares them
with the CSV, and tests/test_usable_sizes.py compares every request size 1 B ..
4 MiB with what the real library's tc_nallocx says.  The lookup is the one the
other TCMalloc tables use (allocators.shared.sizeclasses.size_to_class:
gperftools' ClassIndex is the same 8 B / 128 B two-step array, class_array_
filled the same way), so every class size <= 1024 B is a multiple of 8 and
every larger one of 128.  `check_rows` checks at import what SizeMap::Init
guarantees (sizes on the AlignmentForSize grid, span tails <= 1/8,
num_to_move = NumMoveSize(size), last class kMaxSize), and
allocators.shared.tcmalloc_sizeclasses runs its own check_rows on them too
when it lists the table in TABLES.

The preset `tcmalloc:gperftools` (allocators/tcmalloc.py) selects this table
and `grow_at_least`.  gperftools 2.10 beside the model's defaults, constant by
constant (src/common.h, thread_cache.cc, page_heap.cc):
- kPageShift 13 (8 KiB pages) and kMaxSize 256 KiB: the model's PAGE_SHIFT and
  MAX_SIZE; above kMaxSize a request is ceil(size / 8 KiB) pages from the page
  heap (tc_nallocx says the same: whole pages, nothing more).
- kMinThreadCacheSize = 2 x kMaxSize = 512 KiB, kStealAmount 64 KiB,
  kDefaultOverallThreadCacheSize = 8 x kMaxThreadCacheSize = 32 MiB, 10 steal
  tries, kMaxDynamicFreeListLength 8192: the model's constants already.
  kMaxThreadCacheSize (4 MiB) only caps a thread's share when the program
  changes the overall budget (RecomputePerThreadCacheSize, from
  MallocExtension's tcmalloc.max_total_thread_cache_bytes); the replay never
  does, so it is not modelled.
- Page heap growth: GrowHeap asks the OS for max(n, kMinSystemAlloc) pages,
  kMinSystemAlloc = kMaxPages = 128 pages = 1 MiB, not n rounded up to 1 MiB:
  `grow_at_least=true` with grow_bytes = 1 MiB.
- Not modelled: gperftools 2.10 gives free page-heap spans back to the OS
  (madvise; IncrementalScavenge after frees at the default
  TCMALLOC_RELEASE_RATE 1, and every free span before a growth once free +
  unmapped pages reach a quarter of the heap).  The real heap measure of
  `bench fidelity` (heap_size - unmapped) falls when it does; the model's
  footprint never does.  Nor the transfer cache's start at 16 batches a class
  growing on demand (allocators.shared.transfercache gives every class its
  maximum, min(64, 1 MiB / batch bytes), from the start).
"""

from __future__ import annotations

import numpy as np

from allocators.shared.sizeclasses import SizeClassTable
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

PAGE_SHIFT = 13  # kPageShift, TCMALLOC_PAGE_SIZE_SHIFT unset (Debian's build)
MAX_SIZE = 256 << 10  # kMaxSize
ALIGNMENT = 8  # kAlignment: the 8-B class
MIN_ALIGN = 16  # kMinAlign (TCMALLOC_ALIGN_8BYTES unset): every class from 16 B on is 16-B aligned
TRANSFER_NUM_OBJECTS = 32  # kDefaultTransferNumObjecs, the cap of NumMoveSize
TARGET_TRANSFER_BYTES = 64 << 10  # NumMoveSize: about 64 KiB a batch
VERSION = "2.10"

# (size, pages, num_to_move); gperftools 2.10 SizeMap::Init with the defaults above
# (shared/reference/gperftools_sizeclasses_derived.csv).
GPERFTOOLS_ROWS = (
    (0, 0, 0), (8, 1, 32), (16, 1, 32), (32, 1, 32), (48, 1, 32), (64, 1, 32), (80, 1, 32), (96, 1, 32),
    (112, 1, 32), (128, 1, 32), (144, 1, 32), (160, 1, 32), (176, 1, 32), (192, 1, 32), (208, 1, 32), (224, 1, 32),
    (240, 1, 32), (256, 1, 32), (288, 1, 32), (320, 1, 32), (352, 1, 32), (384, 1, 32), (416, 1, 32), (448, 1, 32),
    (480, 1, 32), (512, 1, 32), (576, 1, 32), (640, 1, 32), (704, 1, 32), (768, 1, 32), (896, 1, 32), (1024, 1, 32),
    (1152, 2, 32), (1280, 2, 32), (1408, 2, 32), (1536, 2, 32), (1792, 2, 32), (2048, 2, 32), (2304, 2, 28),
    (2560, 2, 25), (2816, 3, 23), (3072, 2, 21), (3328, 3, 19), (4096, 2, 16), (4608, 3, 14), (5120, 2, 12),
    (6144, 3, 10), (6656, 5, 9), (8192, 2, 8), (9216, 5, 7), (10240, 4, 6), (12288, 3, 5), (13312, 5, 4),
    (16384, 2, 4), (20480, 5, 3), (24576, 3, 2), (26624, 7, 2), (32768, 4, 2), (40960, 5, 2), (49152, 6, 2),
    (57344, 7, 2), (65536, 8, 2), (73728, 9, 2), (81920, 10, 2), (90112, 11, 2), (98304, 12, 2), (106496, 13, 2),
    (114688, 14, 2), (122880, 15, 2), (131072, 16, 2), (139264, 17, 2), (147456, 18, 2), (155648, 19, 2),
    (163840, 20, 2), (172032, 21, 2), (180224, 22, 2), (188416, 23, 2), (196608, 24, 2), (204800, 25, 2),
    (212992, 26, 2), (221184, 27, 2), (229376, 28, 2), (237568, 29, 2), (245760, 30, 2), (253952, 31, 2),
    (262144, 32, 2),
)


def alignment_for_size(size: int) -> int:
    """AlignmentForSize for a class size <= kMaxSize: the step from this class size to the next candidate."""
    if size >= 128:
        return min((1 << (size.bit_length() - 1)) // 8, 1 << PAGE_SHIFT)
    return MIN_ALIGN if size >= MIN_ALIGN else ALIGNMENT


def num_move_size(size: int) -> int:
    """SizeMap::NumMoveSize: the batch between a thread cache and the central lists."""
    return min(max(int(TARGET_TRANSFER_BYTES / size), 2), TRANSFER_NUM_OBJECTS)


def check_rows(rows: tuple[tuple[int, int, int], ...]) -> None:
    """What SizeMap::Init guarantees of its output; raises ValueError naming the first bad row."""
    if rows[0] != (0, 0, 0):
        raise ValueError("row 0 must be the sentinel (0, 0, 0)")
    for cls in range(1, len(rows)):
        size, pages, num_to_move = rows[cls]
        span = pages << PAGE_SHIFT
        problems = [
            (size <= rows[cls - 1][0], "size not larger than the previous class"),
            (size % alignment_for_size(size) != 0, f"size not a multiple of {alignment_for_size(size)}"),
            (pages < 1 or span < size, "span holds no object"),
            (span % size > span >> 3, "span tail above 1/8 of the span"),
            (num_to_move != num_move_size(size), f"num_to_move is not NumMoveSize = {num_move_size(size)}"),
        ]
        for bad, why in problems:
            if bad:
                raise ValueError(f"gperftools size class {cls} {rows[cls]}: {why}")
    if rows[-1][0] != MAX_SIZE:
        raise ValueError(f"the last class must be kMaxSize {MAX_SIZE}")


def _make_table() -> SizeClassTable:
    check_rows(GPERFTOOLS_ROWS)
    columns = np.array(GPERFTOOLS_ROWS, dtype=np.int64)
    return SizeClassTable(
        name="tcmalloc-gperftools", page_shift=PAGE_SHIFT,
        size=columns[:, 0].copy(), pages=columns[:, 1].copy(), num_to_move=columns[:, 2].copy(),
    )


GPERFTOOLS_TABLE = _make_table()

__all__ = [
    "ALIGNMENT", "GPERFTOOLS_ROWS", "GPERFTOOLS_TABLE", "MAX_SIZE", "MIN_ALIGN", "PAGE_SHIFT", "TARGET_TRANSFER_BYTES",
    "TRANSFER_NUM_OBJECTS", "VERSION", "alignment_for_size", "check_rows", "num_move_size",
]
