"""Walking a page-mapped heap of spans in tests: every span in address order, the set bits of its small spans.

tcmalloc and jemalloc keep the same span records (allocators.shared.spans) and the same per-span
region bitmaps (allocators.shared.spanbitmap); their audits walk the heap through this one helper.
"""

from allocators.shared.spans import (
    SP_ALLOC_BITS,
    SP_NOBJ,
    SP_NPAGES,
    SP_OBJ_SIZE,
    SP_START,
    SP_STATE,
    SPAN_SHIFT,
    SPAN_SMALL,
)


def small_spans(spans, pagemap, bits, heap_pages: int, page_bytes: int):
    """Yield (span record offset, allocated object addresses) for each small span of pages 0..heap_pages.

    Asserts on the way that spans tile the heap (each starts where the last ended) and that every
    page of a small span maps to it.
    """
    page = 0
    while page < heap_pages:
        s = int(pagemap[page])
        base = s << SPAN_SHIFT
        start, npages = int(spans[base + SP_START]), int(spans[base + SP_NPAGES])
        assert start == page
        if spans[base + SP_STATE] == SPAN_SMALL:
            assert all(pagemap[start:start + npages] == s)
            size, nobj = int(spans[base + SP_OBJ_SIZE]), int(spans[base + SP_NOBJ])
            region = int(spans[base + SP_ALLOC_BITS])
            set_bits = [i for i in range(nobj) if (int(bits[region + (i >> 6)]) >> (i & 63)) & 1]
            yield base, [start * page_bytes + i * size for i in set_bits]
        page += npages
