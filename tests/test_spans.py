"""Span records and lists, span bitmaps (lowest free index first) and the central lists."""

from __future__ import annotations

import numpy as np

from allocators.shared.central import (
    CL_FULL,
    CL_N_FREE,
    CL_N_SPANS,
    CL_PARTIAL,
    CL_STRIDE,
    LIST_FULL,
    LIST_PARTIAL,
    central_add_span,
    central_pop_partial,
    central_push_span,
    central_return_object,
    central_slots,
    central_take_object,
    central_unlink,
    init_central,
)
from allocators.shared.spanbitmap import (
    bitmap_count_allocated,
    bitmap_init,
    bitmap_is_allocated,
    bitmap_mark,
    bitmap_release,
    bitmap_sweep,
    bitmap_take_lowest,
    bitmap_words_for,
)
from allocators.shared.spans import (
    NO_SPAN,
    RECORD_SLOTS,
    SP_ALLOC_BITS,
    SP_LIST,
    SP_MARK_BITS,
    SP_NPAGES,
    SP_START,
    SPAN_SHIFT,
    SR_LIVE,
    init_records,
    list_init,
    list_pop_front,
    list_push_back,
    list_push_front,
    list_remove,
    new_pagemap,
    new_span_bits,
    new_span_table,
    span_record_free,
    span_record_new,
)

RB = 2


def make(n_records=8, bitmap_words=16):
    words = np.zeros(64, np.int64)
    init_records(words, RB, bitmap_words)
    return words, new_span_table(n_records), new_span_bits(n_records, bitmap_words)


def walk(heads, hi, spans):
    out, s = [], int(heads[hi])
    while s != NO_SPAN:
        out.append(s)
        s = int(spans[(s << SPAN_SHIFT) + 4])  # SP_NEXT
    return out


def test_records_are_recycled_and_own_their_bitmap_regions():
    words, spans, _ = make(bitmap_words=16)
    a, b, c = (span_record_new(words, RB, spans) for _ in range(3))
    assert (a, b, c) == (0, 1, 2) and words[RB + SR_LIVE] == 3
    assert spans[(b << SPAN_SHIFT) + SP_ALLOC_BITS] == 32 and spans[(b << SPAN_SHIFT) + SP_MARK_BITS] == 48
    span_record_free(words, RB, spans, b)
    span_record_free(words, RB, spans, a)
    assert span_record_new(words, RB, spans) == a  # LIFO reuse
    assert span_record_new(words, RB, spans) == b
    assert span_record_new(words, RB, spans) == 3
    assert words[RB + SR_LIVE] == 4


def test_span_lists_push_pop_remove():
    _, spans, _ = make()
    heads = np.zeros(2, np.int64)
    list_init(heads, 0)
    for s in (1, 2, 3):
        list_push_back(heads, 0, spans, s)
    list_push_front(heads, 0, spans, 0)
    assert walk(heads, 0, spans) == [0, 1, 2, 3] and heads[1] == 3
    list_remove(heads, 0, spans, 2)
    list_remove(heads, 0, spans, 3)
    assert walk(heads, 0, spans) == [0, 1] and heads[1] == 1
    assert list_pop_front(heads, 0, spans) == 0
    assert list_pop_front(heads, 0, spans) == 1
    assert list_pop_front(heads, 0, spans) == NO_SPAN and heads[0] == heads[1] == NO_SPAN


def test_bitmap_hands_out_the_lowest_free_index():
    words, spans, bits = make()
    s = span_record_new(words, RB, spans)
    bitmap_init(spans, bits, s, 200)
    taken = [bitmap_take_lowest(spans, bits, s) for _ in range(130)]
    assert taken == list(range(130))
    for index in (129, 3, 70, 64):
        bitmap_release(spans, bits, s, index)
    assert [bitmap_take_lowest(spans, bits, s) for _ in range(5)] == [3, 64, 70, 129, 130]
    assert bitmap_count_allocated(spans, bits, s, 200) == 131
    assert bitmap_is_allocated(spans, bits, s, 130) == 1 and bitmap_is_allocated(spans, bits, s, 131) == 0


def test_bitmap_never_passes_the_object_count():
    words, spans, bits = make()
    s = span_record_new(words, RB, spans)
    bitmap_init(spans, bits, s, 70)
    assert [bitmap_take_lowest(spans, bits, s) for _ in range(70)] == list(range(70))
    assert bitmap_count_allocated(spans, bits, s, 70) == 70
    bitmap_release(spans, bits, s, 69)
    assert bitmap_take_lowest(spans, bits, s) == 69


def test_sweep_turns_marks_into_allocation_bits():
    words, spans, bits = make()
    s = span_record_new(words, RB, spans)
    bitmap_init(spans, bits, s, 100)
    for _ in range(100):
        bitmap_take_lowest(spans, bits, s)
    for index in (5, 63, 64, 99):
        bitmap_mark(spans, bits, s, index)
    assert bitmap_sweep(spans, bits, s, 100) == 4
    assert [bitmap_take_lowest(spans, bits, s) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert bitmap_take_lowest(spans, bits, s) == 6  # 5 survived the sweep
    assert bitmap_sweep(spans, bits, s, 100) == 0  # nothing marked since: everything is free again
    assert bitmap_take_lowest(spans, bits, s) == 0


def test_bitmap_words_for():
    assert bitmap_words_for(1024) == 16 and bitmap_words_for(1) == 1 and bitmap_words_for(65) == 2


def make_central(n_classes=4):
    words = np.zeros(RB + RECORD_SLOTS + central_slots(n_classes), np.int64)
    init_records(words, RB, 16)
    cb = RB + RECORD_SLOTS
    init_central(words, cb, n_classes)
    spans, bits = new_span_table(16), new_span_bits(16, 16)
    return words, cb, spans, bits, new_pagemap(64)


def new_run(words, spans, start, npages):
    s = span_record_new(words, RB, spans)
    spans[(s << SPAN_SHIFT) + SP_START] = start
    spans[(s << SPAN_SHIFT) + SP_NPAGES] = npages
    return s


def test_central_object_level():
    words, cb, spans, bits, pagemap = make_central()
    cls, size, nobj = 2, 3000, 5  # 2 pages of 8 KiB hold 5 objects of 3000 B
    s = new_run(words, spans, 4, 2)
    central_add_span(words, cb, cls, spans, bits, pagemap, s, size, nobj)
    block = cb + cls * CL_STRIDE
    assert list(pagemap[4:6]) == [s, s] and words[block + CL_N_SPANS] == 1 and words[block + CL_N_FREE] == 5
    addrs = [central_take_object(words, cb, cls, spans, bits, 13) for _ in range(5)]
    assert addrs == [(4 << 13) + i * size for i in range(5)]
    assert central_take_object(words, cb, cls, spans, bits, 13) == -1
    assert walk(words, block + CL_FULL, spans) == [s] and spans[(s << SPAN_SHIFT) + SP_LIST] == LIST_FULL
    assert not central_return_object(words, cb, spans, bits, s, addrs[3], 13)
    assert walk(words, block + CL_PARTIAL, spans) == [s] and walk(words, block + CL_FULL, spans) == []
    assert central_take_object(words, cb, cls, spans, bits, 13) == addrs[3]
    results = [central_return_object(words, cb, spans, bits, s, a, 13) for a in addrs]
    assert results == [False, False, False, False, True]  # the last return empties the span
    assert words[block + CL_N_SPANS] == 0 and words[block + CL_N_FREE] == 0
    assert walk(words, block + CL_PARTIAL, spans) == [] and walk(words, block + CL_FULL, spans) == []


def test_central_span_level_fifo():
    words, cb, spans, bits, pagemap = make_central()
    cls = 1
    runs = [new_run(words, spans, 8 * i, 1) for i in range(3)]
    for s in runs:
        central_add_span(words, cb, cls, spans, bits, pagemap, s, 64, 128)
        central_unlink(words, cb, spans, s)  # as a Go mcache would hold it
        central_push_span(words, cb, cls, spans, s, LIST_PARTIAL, True)
    assert [central_pop_partial(words, cb, cls, spans) for _ in range(4)] == runs + [NO_SPAN]
    assert spans[(runs[0] << SPAN_SHIFT) + SP_LIST] == NO_SPAN
    central_push_span(words, cb, cls, spans, runs[1], LIST_FULL, False)
    central_unlink(words, cb, spans, runs[1])
    assert walk(words, cb + cls * CL_STRIDE + CL_FULL, spans) == []
