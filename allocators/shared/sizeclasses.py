"""Size classes: the per-class table and the size -> class lookup shared by the Go and TCMalloc models.

A size-class allocator (Go's mcache/mcentral, TCMalloc's per-CPU caches) rounds
every small request up to one of a few dozen object sizes ("classes") and carves
spans of whole pages into objects of one class.  Both models need the same
things, kept here once:

- `SizeClassTable`: one row per class, as int64 numpy arrays indexed by class
  (class 0 is the unused "large object" sentinel: every column is 0 there):
  `size` (bytes per object), `pages` (pages per span), `num_to_move` (TCMalloc's
  batch size between caches; 0 for Go), and the derived columns `span_bytes`,
  `objects` (span_bytes // size), `tail_waste` (span_bytes % size),
  `max_waste_pct` (mksizeclasses.go's worst case: every object is the smallest
  request that rounds into the class, plus the span's tail), `min_align` (the
  largest power of two dividing size, capped at the page size), and
  `class_index`, the flat lookup array below.
- `build_class_index(sizes, max_size)`: the lookup array.  Sizes up to 1024 B
  are indexed by `(s + 7) >> 3` (one slot per 8 B), larger ones up to max_size
  by `(s + 127 + (120 << 7)) >> 7` (one slot per 128 B, continuing right after
  slot 128).  This is TCMalloc's `SizeMap::ClassIndexMaybe`; Go's two arrays
  (`size_to_class8`, `size_to_class128`) are the same two granularities split
  in two (see go_sizeclasses.py).  Each slot holds the smallest class whose
  size covers every request landing in the slot, so the lookup returns the
  smallest class >= the request exactly when class sizes <= 1024 are multiples
  of 8 and larger ones multiples of 128 (the builder checks this).  Slot 0
  (size 0) holds class 1, as TCMalloc's `SizeMap::Init` fills it.
- `size_to_class(size, class_index)`: the jitted lookup, one compare and one
  load, for 0 <= size <= max_size (the caller routes larger requests to its
  large-object path; kernels do not bounds-check).
- `classes_of(sizes, class_index)`: the same over an array (tests, analysis).

Lookup arrays are int16 (a class number), per-class columns int64 (so kernels
can multiply without overflow).  Everything is built once at import of the
model's table module, in well under a millisecond per table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: Requests up to this size are looked up in 8-byte steps, larger ones in 128-byte steps.
SMALL_LOOKUP_MAX = 1024
SMALL_STEP_SHIFT = 3  # 8 B
LARGE_STEP_SHIFT = 7  # 128 B
#: Added before the >> 7 for sizes above SMALL_LOOKUP_MAX: 127 rounds up, 120 << 7 moves the
#: 128-B slots to start right after slot 128 (= SMALL_LOOKUP_MAX >> 3): (1025 + LARGE_INDEX_BIAS) >> 7 == 129.
LARGE_INDEX_BIAS = (1 << LARGE_STEP_SHIFT) - 1 + (
    ((SMALL_LOOKUP_MAX >> SMALL_STEP_SHIFT) << LARGE_STEP_SHIFT) - SMALL_LOOKUP_MAX
)


def class_index_slot(size: int) -> int:
    """Slot of the flat lookup array that a request of `size` bytes reads (Python mirror of the kernel)."""
    if size <= SMALL_LOOKUP_MAX:
        return (size + (1 << SMALL_STEP_SHIFT) - 1) >> SMALL_STEP_SHIFT
    return (size + LARGE_INDEX_BIAS) >> LARGE_STEP_SHIFT


def class_index_length(max_size: int) -> int:
    """Number of slots needed for requests 0..max_size."""
    return class_index_slot(max_size) + 1


def _slot_top_sizes(length: int) -> np.ndarray:
    """For each slot, the largest request that lands in it."""
    slots = np.arange(length, dtype=np.int64)
    small_slots = SMALL_LOOKUP_MAX >> SMALL_STEP_SHIFT
    return np.where(
        slots <= small_slots,
        slots << SMALL_STEP_SHIFT,
        SMALL_LOOKUP_MAX + ((slots - small_slots) << LARGE_STEP_SHIFT),
    )


def build_class_index(sizes: np.ndarray, max_size: int) -> np.ndarray:
    """The flat size -> class array for class sizes `sizes` (index 0 = the sentinel, size 0).

    Raises ValueError when the sizes cannot be looked up exactly: not strictly
    increasing, the last one not `max_size`, or a size not on the grid of its
    range (multiple of 8 up to 1024 B, of 128 above).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(sizes) < 2 or sizes[0] != 0:
        raise ValueError("sizes must start with the class-0 sentinel (size 0) and hold at least one class")
    classes = sizes[1:]
    if np.any(np.diff(sizes) <= 0):
        raise ValueError("class sizes must be strictly increasing")
    if classes[-1] != max_size:
        raise ValueError(f"the largest class ({classes[-1]} B) must equal max_size ({max_size} B)")
    small_step = 1 << SMALL_STEP_SHIFT
    large_step = 1 << LARGE_STEP_SHIFT
    off_grid = np.where(classes <= SMALL_LOOKUP_MAX, classes % small_step, classes % large_step) != 0
    if np.any(off_grid):
        raise ValueError(f"class sizes off the lookup grid (8 B up to 1024, 128 B above): {classes[off_grid].tolist()}")
    tops = _slot_top_sizes(class_index_length(max_size))
    index = np.searchsorted(classes, tops, side="left") + 1  # smallest class >= the slot's largest request
    if len(sizes) - 1 > np.iinfo(np.int16).max:
        raise ValueError("too many classes for an int16 lookup array")
    return index.astype(np.int16)


@njit(cache=True, inline="always")
def size_to_class(size, class_index):
    """Smallest class whose objects hold `size` bytes, for 0 <= size <= the table's max_size."""
    if size <= SMALL_LOOKUP_MAX:
        return np.int64(class_index[(size + 7) >> SMALL_STEP_SHIFT])
    return np.int64(class_index[(size + LARGE_INDEX_BIAS) >> LARGE_STEP_SHIFT])


@njit(cache=True)
def classes_of(sizes, class_index):
    """`size_to_class` of every entry of the int64 array `sizes` (each within 0..max_size)."""
    out = np.empty(len(sizes), np.int64)
    for i in range(len(sizes)):
        out[i] = size_to_class(sizes[i], class_index)
    return out


def max_waste_pct(sizes: np.ndarray, span_bytes: np.ndarray) -> np.ndarray:
    """mksizeclasses.go's "max waste" column in percent, per class (class 0: 0).

    Worst case for a class: every object holds the smallest request that rounds
    into it (previous class's size + 1), so each slot wastes size - prev - 1
    bytes, and the span's tail is wasted too:
    ((size - prev - 1) * objects + tail_waste) / span_bytes.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    span_bytes = np.asarray(span_bytes, dtype=np.int64)
    out = np.zeros(len(sizes), dtype=np.float64)
    prev = sizes[:-1]
    size = sizes[1:]
    span = span_bytes[1:]
    objects = span // size
    tail = span - size * objects
    out[1:] = 100.0 * ((size - prev - 1) * objects + tail).astype(np.float64) / span.astype(np.float64)
    return out


def _min_align(sizes: np.ndarray, page_shift: int) -> np.ndarray:
    out = np.zeros(len(sizes), dtype=np.int64)
    for cls in range(1, len(sizes)):
        size = int(sizes[cls])
        trailing_zeros = (size & -size).bit_length() - 1
        out[cls] = 1 << min(trailing_zeros, page_shift)
    return out


@dataclass(frozen=True, eq=False)
class SizeClassTable:
    """One allocator's size classes: int64 columns indexed by class (class 0 is the sentinel)."""

    name: str
    page_shift: int
    size: np.ndarray
    pages: np.ndarray
    num_to_move: np.ndarray
    span_bytes: np.ndarray = field(init=False)
    objects: np.ndarray = field(init=False)
    tail_waste: np.ndarray = field(init=False)
    max_waste_pct: np.ndarray = field(init=False)
    min_align: np.ndarray = field(init=False)
    class_index: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        size = np.ascontiguousarray(self.size, dtype=np.int64)
        pages = np.ascontiguousarray(self.pages, dtype=np.int64)
        num_to_move = np.ascontiguousarray(self.num_to_move, dtype=np.int64)
        if not len(size) == len(pages) == len(num_to_move):
            raise ValueError("size, pages and num_to_move must have one entry per class")
        if size[0] != 0 or pages[0] != 0:
            raise ValueError("class 0 is the sentinel: size 0, 0 pages")
        if np.any(pages[1:] <= 0):
            raise ValueError("every class needs at least one page per span")
        span_bytes = pages << self.page_shift
        objects = np.zeros_like(size)
        objects[1:] = span_bytes[1:] // size[1:]
        if np.any(objects[1:] < 1):
            raise ValueError("every span must hold at least one object")
        columns = {
            "size": size,
            "pages": pages,
            "num_to_move": num_to_move,
            "span_bytes": span_bytes,
            "objects": objects,
            "tail_waste": span_bytes - size * objects,
            "max_waste_pct": max_waste_pct(size, span_bytes),
            "min_align": _min_align(size, self.page_shift),
            "class_index": build_class_index(size, int(size[-1])),
        }
        for name, values in columns.items():
            values.setflags(write=False)  # shared module-level tables: nobody may scribble on them
            object.__setattr__(self, name, values)

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def n_classes(self) -> int:
        """Number of real classes (the class-0 sentinel not counted)."""
        return len(self.size) - 1

    @property
    def max_size(self) -> int:
        """Largest request served by a class; larger ones are the allocator's large objects."""
        return int(self.size[-1])

    def lookup(self, size: int) -> int:
        """Class of a request of `size` bytes (Python convenience; kernels use `size_to_class`)."""
        if not 0 <= size <= self.max_size:
            raise ValueError(f"size {size} outside 0..{self.max_size} (larger requests have no class)")
        return int(self.class_index[class_index_slot(size)])
