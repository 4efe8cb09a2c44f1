"""TCMalloc's size-class tables (8 KiB pages, 8-byte new alignment) and its size -> class lookup.

Data, not generated: google/tcmalloc keeps hand-tuned tables in C++ sources,
one per configuration, as rows {bytes, span bytes or pages, batch size}.  The
two embedded here are, at google/tcmalloc @ fce3f55de93a0dd7611990d9bfcf96db426e01dc
(2026-08-21), for TCMALLOC_PAGE_SHIFT 13 and __STDCPP_DEFAULT_NEW_ALIGNMENT__ <= 8:

- "default": `kReuseRelaxedBelow64SizeClasses`
  (tcmalloc/reuse_relaxed_below_64_size_classes.cc), the table
  `Static::size_class_configuration()` selects by default since commit a8125d07
  (2026-06-16): 49 classes, 8 B .. 256 KiB.
- "legacy": `kLegacySizeClasses` (tcmalloc/legacy_size_classes.cc), the
  long-standing opt-out table: 85 classes.

and a third, from the other TCMalloc:
- "gperftools": gperftools 2.10's classes (the real `libtcmalloc_minimal` on
  Debian), computed by its SizeMap::Init: 85 classes, 16-B steps below 128 B
  (allocators.shared.gperftools_sizeclasses).

Each row is (size, pages, num_to_move); row 0 is the sentinel.  pages = span
bytes / 8 KiB.  num_to_move is the batch moved between the front-end caches
and the transfer cache / central free list.  The rows are checked at import
the way `SizeMap::ValidSizeClasses` checks them (increasing sizes, 8-B
alignment up to kLargeSize = 1024 B and 128-B above, 1..32 pages, at least one
object per span, 2 <= num_to_move <= kMaxObjectsToMove = 128, last class =
kMaxSize = 256 KiB); tests/test_sizeclasses.py compares them with the copy of
the reference CSV in tests/data/.

Lookup (`SizeMap::ClassIndexMaybe` + `class_array_`): one flat int16 array,
sizes <= 1024 indexed by (s + 7) >> 3, sizes up to kMaxSize by
(s + 127 + (120 << 7)) >> 7; each slot holds the smallest class >= every size
mapping to it (`SizeMap::Init` walks s = 0, 8, 16, ... through each class), so
the lookup returns the smallest class whose size is >= the request; size 0
gives class 1.  `tcmalloc_size_to_class(size, class_index)` is the kernel
(allocators.shared.sizeclasses.size_to_class); `table.class_index` is the array.
Requests above kMaxSize are large: whole pages from the page heap.
"""

from __future__ import annotations

import numpy as np

from allocators.shared.gperftools_sizeclasses import GPERFTOOLS_ROWS, GPERFTOOLS_TABLE
from allocators.shared.sizeclasses import SizeClassTable
from allocators.shared.sizeclasses import size_to_class as tcmalloc_size_to_class
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

PAGE_SHIFT = 13  # TCMALLOC_PAGE_SHIFT default: 8 KiB TCMalloc pages
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_SIZE = 256 << 10  # kMaxSize: largest request served by a size class (8/32/256 KiB pages)
LARGE_SIZE = 1024  # kLargeSize: classes above it are multiples of LARGE_SIZE_ALIGNMENT
LARGE_SIZE_ALIGNMENT = 128  # kLargeSizeAlignment
ALIGNMENT = 8  # kAlignment with __STDCPP_DEFAULT_NEW_ALIGNMENT__ <= 8
MAX_PAGES_PER_SPAN = 32  # SizeMap::IsValidSizeClass
MIN_OBJECTS_TO_MOVE = 2  # kMinObjectsToMove
MAX_OBJECTS_TO_MOVE = 128  # kMaxObjectsToMove
SOURCE_COMMIT = "fce3f55de93a0dd7611990d9bfcf96db426e01dc"

# (size, pages, num_to_move); google/tcmalloc @ fce3f55d tcmalloc/reuse_relaxed_below_64_size_classes.cc,
# the TCMALLOC_PAGE_SHIFT == 13, new-alignment <= 8 table.
DEFAULT_ROWS = (
    (0, 0, 0), (8, 1, 32), (16, 1, 32), (24, 1, 32), (32, 1, 32), (48, 1, 32), (64, 1, 32), (80, 1, 32), (96, 1, 32),
    (112, 1, 32), (128, 1, 32), (160, 1, 32), (184, 1, 32), (208, 1, 32), (256, 1, 32), (312, 1, 32), (368, 1, 32),
    (448, 1, 32), (512, 1, 32), (576, 1, 32), (704, 1, 32), (896, 1, 32), (1024, 1, 32), (1152, 2, 32),
    (1408, 2, 32), (1792, 2, 32), (2048, 1, 32), (2304, 2, 28), (2688, 2, 24), (3456, 3, 18), (4096, 1, 16),
    (4736, 3, 13), (6144, 3, 10), (8192, 1, 8), (9472, 5, 6), (12288, 3, 5), (16384, 2, 4), (20480, 5, 3),
    (28672, 7, 2), (32768, 4, 2), (40960, 5, 2), (49152, 6, 2), (65536, 8, 2), (73728, 9, 2), (81920, 10, 2),
    (98304, 12, 2), (131072, 16, 2), (155648, 19, 2), (204800, 25, 2), (262144, 32, 2),
)

# (size, pages, num_to_move); google/tcmalloc @ fce3f55d tcmalloc/legacy_size_classes.cc,
# the TCMALLOC_PAGE_SHIFT == 13, new-alignment <= 8 table.
LEGACY_ROWS = (
    (0, 0, 0), (8, 1, 32), (16, 1, 32), (24, 1, 32), (32, 1, 32), (40, 1, 32), (48, 1, 32), (56, 1, 32), (64, 1, 32),
    (72, 1, 32), (80, 1, 32), (88, 1, 32), (96, 1, 32), (104, 1, 32), (112, 1, 32), (120, 1, 32), (128, 1, 32),
    (136, 1, 32), (144, 1, 32), (160, 1, 32), (168, 1, 32), (176, 1, 32), (184, 1, 32), (192, 1, 32), (208, 1, 32),
    (224, 1, 32), (240, 1, 32), (256, 1, 32), (272, 1, 32), (296, 1, 32), (312, 1, 32), (320, 1, 32), (352, 1, 32),
    (368, 1, 32), (384, 1, 32), (408, 1, 32), (424, 1, 32), (448, 1, 32), (480, 1, 32), (512, 1, 32), (576, 1, 32),
    (640, 1, 32), (704, 1, 32), (768, 1, 32), (896, 1, 32), (1024, 1, 32), (1152, 2, 32), (1280, 2, 32),
    (1408, 2, 32), (1536, 2, 32), (1792, 2, 32), (2048, 1, 32), (2304, 2, 28), (2688, 2, 24), (3200, 2, 20),
    (3584, 4, 18), (4096, 1, 16), (4736, 3, 13), (5376, 2, 12), (6144, 3, 10), (7168, 7, 9), (8192, 1, 8),
    (9472, 5, 6), (10240, 4, 6), (12288, 3, 5), (14336, 7, 4), (16384, 2, 4), (20480, 5, 3), (24576, 3, 2),
    (28672, 7, 2), (32768, 4, 2), (40960, 5, 2), (49152, 6, 2), (57344, 7, 2), (65536, 8, 2), (73728, 9, 2),
    (81920, 10, 2), (98304, 12, 2), (114688, 14, 2), (131072, 16, 2), (139264, 17, 2), (155648, 19, 2),
    (172032, 21, 2), (204800, 25, 2), (221184, 27, 2), (262144, 32, 2),
)

#: Table name -> the C++ array it copies.
SOURCE_ARRAYS = {"default": "kReuseRelaxedBelow64SizeClasses", "legacy": "kLegacySizeClasses"}


def check_rows(rows: tuple[tuple[int, int, int], ...]) -> None:
    """SizeMap::ValidSizeClasses for 8 KiB pages; raises ValueError naming the first bad row."""
    if rows[0] != (0, 0, 0):
        raise ValueError("row 0 must be the sentinel (0, 0, 0)")
    for cls in range(1, len(rows)):
        size, pages, num_to_move = rows[cls]
        alignment = LARGE_SIZE_ALIGNMENT if size > LARGE_SIZE else ALIGNMENT
        problems = [
            (size <= rows[cls - 1][0], "size not larger than the previous class"),
            (size > MAX_SIZE, f"size above kMaxSize {MAX_SIZE}"),
            (size % alignment != 0, f"size not a multiple of {alignment}"),
            (not 1 <= pages <= MAX_PAGES_PER_SPAN, f"pages outside 1..{MAX_PAGES_PER_SPAN}"),
            (pages * PAGE_SIZE < size, "span holds no object"),
            (not MIN_OBJECTS_TO_MOVE <= num_to_move <= MAX_OBJECTS_TO_MOVE,
             f"num_to_move outside {MIN_OBJECTS_TO_MOVE}..{MAX_OBJECTS_TO_MOVE}"),
        ]
        for bad, why in problems:
            if bad:
                raise ValueError(f"size class {cls} {rows[cls]}: {why}")
    if rows[-1][0] != MAX_SIZE:
        raise ValueError(f"the last class must be kMaxSize {MAX_SIZE}")


def _make_table(name: str, rows: tuple[tuple[int, int, int], ...]) -> SizeClassTable:
    check_rows(rows)
    columns = np.array(rows, dtype=np.int64)
    return SizeClassTable(
        name=f"tcmalloc-{name}", page_shift=PAGE_SHIFT,
        size=columns[:, 0].copy(), pages=columns[:, 1].copy(), num_to_move=columns[:, 2].copy(),
    )


DEFAULT_TABLE = _make_table("default", DEFAULT_ROWS)
LEGACY_TABLE = _make_table("legacy", LEGACY_ROWS)
check_rows(GPERFTOOLS_ROWS)  # gperftools' classes pass google/tcmalloc's checks too
TABLES = {"default": DEFAULT_TABLE, "legacy": LEGACY_TABLE, "gperftools": GPERFTOOLS_TABLE}


def get_table(name: str = "default") -> SizeClassTable:
    """The table called `name` ('default', 'legacy' or 'gperftools')."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown tcmalloc size-class table {name!r}; choose from {', '.join(TABLES)}") from None


__all__ = [
    "ALIGNMENT", "DEFAULT_ROWS", "DEFAULT_TABLE", "GPERFTOOLS_TABLE", "LARGE_SIZE", "LARGE_SIZE_ALIGNMENT",
    "LEGACY_ROWS", "LEGACY_TABLE", "MAX_OBJECTS_TO_MOVE", "MAX_PAGES_PER_SPAN", "MAX_SIZE", "MIN_OBJECTS_TO_MOVE",
    "PAGE_SHIFT", "PAGE_SIZE", "SOURCE_ARRAYS", "SOURCE_COMMIT", "TABLES", "check_rows", "get_table",
    "tcmalloc_size_to_class",
]
