"""Central lists: per size class, the spans with free objects and the full ones.

The middle of a size-class allocator: TCMalloc's `CentralFreeList` (one per
class, "nonempty" and "empty" span lists, a lock) and Go's `mcentral` (one per
span class, `partial` and `full` span sets).  Every small span belongs to one
class and sits on one of its class's two lists, or on none while a Go mcache
holds it:

- *partial*: spans with at least one free object, newest first;
- *full*: spans with no free object.

Per class, a block of CL_STRIDE = 8 words in the caller's `words` at
`cb + cls * CL_STRIDE` (hot scalars live in `words`): partial head and tail,
full head and tail (allocators.shared.spans lists), the number of spans the
class owns (`CL_N_SPANS`) and of free objects in them (`CL_N_FREE`, kept by
the object-level calls below).  A span's `SP_LIST` says which list it is on
(LIST_PARTIAL, LIST_FULL, or NO_SPAN for none).

Object level (TCMalloc: the central list hands out and takes back single
objects; its caller moves them in batches):
- `central_add_span`: a span fresh from the page heap becomes a class's span
  (`init_small_span`: state SPAN_SMALL, every page mapped to it for object ->
  span lookup, all objects free in its bitmap), at the front of partial.
  O(pages + words).
- `central_take_object`: the lowest free object of the first partial span
  (allocators.shared.spanbitmap), moving the span to full when it was its
  last free object.  O(1) amortised.
- `central_return_object`: clear the object's bit (object index = offset / size:
  one division); a full span moves back to the front of partial; a span whose
  objects are all free leaves the class and True is returned: the caller gives
  its pages back to the page heap (TCMalloc does this at once).  O(1).

Span level (Go: mcentral.cacheSpan / uncacheSpan; sweeping):
`init_small_span` (a fresh span on no list, for an mcache),
`central_pop_partial`, `central_push_span` (front or back of either list;
FIFO when pushing at the back and popping the front, like Go's spanSet),
`central_unlink`.  These do not touch CL_N_FREE (a Go model counts objects
itself, its spans being away in mcaches).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.spanbitmap import bitmap_init, bitmap_release, bitmap_take_lowest
from allocators.shared.spans import (
    NO_SPAN,
    SP_CLASS,
    SP_LIST,
    SP_NFREE,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SP_STATE,
    SPAN_SHIFT,
    SPAN_SMALL,
    list_init,
    list_pop_front,
    list_push_back,
    list_push_front,
    list_remove,
    pagemap_set_range,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

CL_PARTIAL = 0  # head; tail at CL_PARTIAL + 1
CL_FULL = 2  # head; tail at CL_FULL + 1
CL_N_SPANS = 4
CL_N_FREE = 5
CL_STRIDE = 8

LIST_PARTIAL = 0
LIST_FULL = 1


def central_slots(n_classes: int) -> int:
    """Words the central lists of classes 0 .. n_classes - 1 need."""
    return n_classes * CL_STRIDE


def init_central(words: np.ndarray, cb: int, n_classes: int) -> None:
    """Empty lists for every class (Python side)."""
    for cls in range(n_classes):
        block = cb + cls * CL_STRIDE
        words[block : block + CL_STRIDE] = 0
        list_init(words, block + CL_PARTIAL)
        list_init(words, block + CL_FULL)


@njit(cache=True)
def reset_central(words, cb, n_classes):
    for cls in range(n_classes):
        block = cb + cls * CL_STRIDE
        list_init(words, block + CL_PARTIAL)
        list_init(words, block + CL_FULL)
        words[block + CL_N_SPANS] = 0
        words[block + CL_N_FREE] = 0


@njit(cache=True, inline="always")
def _list_slot(cb, cls, which):
    return cb + cls * CL_STRIDE + (CL_FULL if which == LIST_FULL else CL_PARTIAL)


# ---------------------------------------------------------------- span level
@njit(cache=True, inline="always")
def central_push_span(words, cb, cls, spans, s, which, at_back):
    """Put span `s` of class `cls` on its partial or full list, at the front or the back."""
    slot = _list_slot(cb, cls, which)
    if at_back:
        list_push_back(words, slot, spans, s)
    else:
        list_push_front(words, slot, spans, s)
    spans[(s << SPAN_SHIFT) + SP_LIST] = which


@njit(cache=True, inline="always")
def central_unlink(words, cb, spans, s):
    """Take span `s` off whichever of its class's lists it is on (no-op if none)."""
    base = s << SPAN_SHIFT
    which = spans[base + SP_LIST]
    if which != NO_SPAN:
        list_remove(words, _list_slot(cb, spans[base + SP_CLASS], which), spans, s)
        spans[base + SP_LIST] = NO_SPAN


@njit(cache=True, inline="always")
def central_pop_partial(words, cb, cls, spans):
    """Remove and return the first partial span of `cls` (NO_SPAN if none); it is then on no list."""
    s = list_pop_front(words, cb + cls * CL_STRIDE + CL_PARTIAL, spans)
    if s != NO_SPAN:
        spans[(s << SPAN_SHIFT) + SP_LIST] = NO_SPAN
    return s


# -------------------------------------------------------------- object level
@njit(cache=True)
def init_small_span(spans, bits, pagemap, s, cls, obj_size, nobj):
    """Turn page-heap span `s` into a span of `nobj` free objects of class `cls`; on no list.

    Every page is mapped to `s` (object -> span lookup), the bitmaps cleared.  O(pages + words).
    """
    base = s << SPAN_SHIFT
    spans[base + SP_STATE] = SPAN_SMALL
    spans[base + SP_CLASS] = cls
    spans[base + SP_OBJ_SIZE] = obj_size
    spans[base + SP_NOBJ] = nobj
    spans[base + SP_NFREE] = nobj
    spans[base + SP_LIST] = NO_SPAN
    pagemap_set_range(pagemap, s, spans[base + SP_START], spans[base + SP_NPAGES])
    bitmap_init(spans, bits, s, nobj)


@njit(cache=True)
def central_add_span(words, cb, cls, spans, bits, pagemap, s, obj_size, nobj):
    """Make page-heap span `s` a span of class `cls` with `nobj` free objects, first on partial."""
    init_small_span(spans, bits, pagemap, s, cls, obj_size, nobj)
    central_push_span(words, cb, cls, spans, s, LIST_PARTIAL, False)
    block = cb + cls * CL_STRIDE
    words[block + CL_N_SPANS] += 1
    words[block + CL_N_FREE] += nobj


@njit(cache=True, inline="always")
def central_take_object(words, cb, cls, spans, bits, page_shift):
    """Address of the lowest free object of the first partial span of `cls`, or -1 if no span has one."""
    block = cb + cls * CL_STRIDE
    s = words[block + CL_PARTIAL]
    if s == NO_SPAN:
        return -1
    base = s << SPAN_SHIFT
    index = bitmap_take_lowest(spans, bits, s)
    left = spans[base + SP_NFREE] - 1
    spans[base + SP_NFREE] = left
    words[block + CL_N_FREE] -= 1
    if left == 0:
        list_pop_front(words, block + CL_PARTIAL, spans)
        list_push_front(words, block + CL_FULL, spans, s)
        spans[base + SP_LIST] = LIST_FULL
    return (spans[base + SP_START] << page_shift) + index * spans[base + SP_OBJ_SIZE]


@njit(cache=True, inline="always")
def central_return_object(words, cb, spans, bits, s, addr, page_shift):
    """Free the object at `addr` in span `s`; True when the span is now wholly free and has left its class."""
    base = s << SPAN_SHIFT
    cls = spans[base + SP_CLASS]
    block = cb + cls * CL_STRIDE
    index = (addr - (spans[base + SP_START] << page_shift)) // spans[base + SP_OBJ_SIZE]
    bitmap_release(spans, bits, s, index)
    free = spans[base + SP_NFREE] + 1
    spans[base + SP_NFREE] = free
    words[block + CL_N_FREE] += 1
    if free == spans[base + SP_NOBJ]:
        central_unlink(words, cb, spans, s)
        words[block + CL_N_SPANS] -= 1
        words[block + CL_N_FREE] -= free
        return True
    if free == 1 and spans[base + SP_LIST] == LIST_FULL:
        list_remove(words, block + CL_FULL, spans, s)
        list_push_front(words, block + CL_PARTIAL, spans, s)
        spans[base + SP_LIST] = LIST_PARTIAL
    return False
