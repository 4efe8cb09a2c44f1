"""Where a chunk heap's memory comes from: the top chunk and the break (sbrk, trim), and mmapped chunks.

Shared by `allocators.freelist` and `allocators.glibc` (glibc's sysmalloc,
systrim, mmap_chunk, munmap_chunk and mremap_chunk); chunk words and state
slots as in `shared.chunks`.

Top.  The heap runs from address 0 up to the break (`brk`); its last chunk
is always the top chunk, which is never on a free list.  `malloc_from_top`
cuts a chunk from the front of top; when top is too small (it must keep
min_chunk bytes) the break grows by `round_up(nb + min_chunk + top_pad - top
size, page)` bytes (os_grows), or without top_pad if that would not fit, up
to the lowest mapped address, after which requests fail with
ST_OUT_OF_MEMORY.  `systrim` gives whole pages at the end of top back
(os_trims), keeping top_pad.

mmapped region.  A request of at least the mmap threshold that top cannot
serve gets a chunk of its own mapping, `round_up(nb + SIZE_SZ, page)` bytes
(mmaps; munmaps on free).  Mapped chunks live at the top of the address
space, below `capacity` rounded down to a page, and grow downwards towards
the heap (Linux's top-down mmap layout): a new mapping takes the highest hole
that fits, else extends the mapped region down (it may not cross `brk`, nor
the heap grow into it).  Holes are page runs kept in a max tree (`maptree`,
one slot per page, `shared.maxtree`).  footprint = brk + bytes currently
mapped (+ bytes of mappings released by free(), which keeps the memory taken:
later mappings use those bytes first without growing the footprint).
`mremap_chunk` resizes a mapping: fewer pages unmap the tail, more pages grow
in place when the pages above are a hole, else the chunk moves.
"""

from numba import njit

from allocators.detections import D_SYSMALLOC_ASSERT, ST_CORRUPTED, detected
from allocators.errors import ST_OUT_OF_MEMORY
from allocators.shared.chunks import (
    C_MMAPS,
    C_MUNMAPS,
    C_OS_GROWS,
    C_OS_TRIMS,
    C_SEARCH_STEPS,
    IS_MMAPPED,
    PREV_INUSE,
    S_BRK,
    S_CHECKS,
    S_FOOTPRINT,
    S_HEADER,
    S_HEAP_LIMIT,
    S_MAP_TOP,
    S_MAPPED,
    S_METADATA,
    S_MIN_CHUNK,
    S_MMAP_THRESHOLD,
    S_PAGE,
    S_PAGE_SHIFT,
    S_RETAINED,
    S_TOP,
    S_TOP_PAD,
    S_USER_OFFSET,
    SIZE_MASK,
    W_SIZE,
    set_top,
)
from allocators.shared.maxtree import tree_get, tree_last_at_least, tree_set
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


# ------------------------------------------------------------------ top, sbrk
@njit(cache=True)
def systrim(words, memory):
    """glibc systrim(top_pad): give whole pages at the end of top back to the OS."""
    top = words[S_TOP]
    area = words[S_BRK] - top - words[S_MIN_CHUNK] - 1
    pad = words[S_TOP_PAD]
    if area <= pad:
        return
    extra = (area - pad) & ~(words[S_PAGE] - 1)
    if extra <= 0:
        return
    words[S_BRK] -= extra
    words[S_FOOTPRINT] -= extra
    words[C_OS_TRIMS] += 1
    set_top(words, memory, top)


@njit(cache=True)
def malloc_from_top(words, memory, maptree, nb):
    """Cut nb bytes from the front of top; if top is too small, mmap (large nb) or grow the break."""
    min_chunk = words[S_MIN_CHUNK]
    top = words[S_TOP]
    top_size = words[S_BRK] - top
    checks = words[S_CHECKS] != 0
    if checks:  # glibc trusts top's size word: an overflow into it carries over to the next top
        top_size = memory[(top >> 3) + W_SIZE] & SIZE_MASK
        if top_size >= nb + min_chunk and top + nb + min_chunk > words[S_BRK]:
            return ST_CORRUPTED  # the word says top reaches past the break: glibc would hand out unmapped memory
    grown = False
    if top_size < nb + min_chunk:
        threshold = words[S_MMAP_THRESHOLD]
        if threshold > 0 and nb >= threshold:
            chunk = _mmap_chunk(words, memory, maptree, nb)
            if chunk >= 0:
                return chunk
        page_mask = words[S_PAGE] - 1
        if words[S_CHECKS] != 0 and words[S_BRK] != 0:  # sysmalloc's assertion on the old top (glibc >= 2.26)
            old_head = memory[(top >> 3) + W_SIZE]
            old_size = old_head & SIZE_MASK
            if old_size < min_chunk or old_head & PREV_INUSE == 0 or (top + old_size) & page_mask:
                return detected(D_SYSMALLOC_ASSERT)
        need = nb + min_chunk - top_size
        grow = (need + words[S_TOP_PAD] + page_mask) & ~page_mask
        if words[S_BRK] + grow > words[S_HEAP_LIMIT]:
            grow = (need + page_mask) & ~page_mask
            if words[S_BRK] + grow > words[S_HEAP_LIMIT]:
                return ST_OUT_OF_MEMORY
        words[S_BRK] += grow
        words[S_FOOTPRINT] += grow
        words[C_OS_GROWS] += 1
        grown = True
    memory[(top >> 3) + W_SIZE] = nb | PREV_INUSE
    set_top(words, memory, top + nb)
    if checks and not grown:
        memory[((top + nb) >> 3) + W_SIZE] = (top_size - nb) | PREV_INUSE
    words[S_METADATA] += words[S_HEADER]
    return top


# ---------------------------------------------------------------- mmap region
@njit(cache=True)
def _release_pages(words, maptree, addr, size):
    """Turn [addr, addr + size) of the mmap region into a hole, merging with neighbouring holes."""
    shift = words[S_PAGE_SHIFT]
    first = addr >> shift
    count = size >> shift
    above = first + count
    above_hole = tree_get(maptree, above)
    if above_hole > 0:
        tree_set(maptree, above, 0)
        count += above_hole
    below = tree_last_at_least(maptree, first - 1, 1)
    if below >= 0:
        below_hole = tree_get(maptree, below)
        if below + below_hole == first:
            first = below
            count += below_hole
    if first << shift == words[S_HEAP_LIMIT]:
        tree_set(maptree, first, 0)
        words[S_HEAP_LIMIT] = (first + count) << shift
    else:
        tree_set(maptree, first, count)


@njit(cache=True)
def _map_pages(words, maptree, size):
    """Place a mapping of `size` bytes (a page multiple) like Linux's top-down mmap: the highest hole that
    fits, else just below the mapped region (never into the heap).  Accounts it; returns its address."""
    shift = words[S_PAGE_SHIFT]
    pages = size >> shift
    words[C_SEARCH_STEPS] += 1
    hole = tree_last_at_least(maptree, words[S_MAP_TOP] >> shift, pages)
    if hole >= 0:
        hole_pages = tree_get(maptree, hole)
        tree_set(maptree, hole, hole_pages - pages)
        addr = (hole + hole_pages - pages) << shift
    else:
        addr = words[S_HEAP_LIMIT] - size
        if addr < words[S_BRK]:
            return ST_OUT_OF_MEMORY
        words[S_HEAP_LIMIT] = addr
    kept = words[S_RETAINED] if words[S_RETAINED] < size else size
    words[S_RETAINED] -= kept
    words[S_MAPPED] += size
    words[S_FOOTPRINT] += size - kept
    return addr


@njit(cache=True)
def _mmap_chunk(words, memory, maptree, nb):
    """sysmalloc's mmap path: a chunk of round_up(nb + SIZE_SZ, page) bytes in its own mapping."""
    page = words[S_PAGE]
    size = (nb + words[S_USER_OFFSET] - words[S_HEADER] + page - 1) & ~(page - 1)
    addr = _map_pages(words, maptree, size)
    if addr < 0:
        return addr
    memory[addr >> 3] = 0
    memory[(addr >> 3) + W_SIZE] = size | IS_MMAPPED
    words[S_METADATA] += words[S_USER_OFFSET]
    words[C_MMAPS] += 1
    return addr


@njit(cache=True)
def munmap_chunk(words, maptree, chunk, size):
    _release_pages(words, maptree, chunk, size)
    words[S_MAPPED] -= size
    words[S_FOOTPRINT] -= size
    words[S_METADATA] -= words[S_USER_OFFSET]
    words[C_MUNMAPS] += 1


@njit(cache=True)
def mremap_chunk(words, memory, maptree, chunk, size, nb):
    """glibc mremap_chunk: resize a mapped chunk's mapping (MREMAP_MAYMOVE); returns its (new) address."""
    page_mask = words[S_PAGE] - 1
    mapped = (nb + words[S_USER_OFFSET] - words[S_HEADER] + page_mask) & ~page_mask
    if mapped == size:
        return chunk
    if mapped < size:
        _release_pages(words, maptree, chunk + mapped, size - mapped)
        words[S_MAPPED] -= size - mapped
        words[S_FOOTPRINT] -= size - mapped
        memory[(chunk >> 3) + W_SIZE] = mapped | IS_MMAPPED
        return chunk
    shift = words[S_PAGE_SHIFT]
    above = (chunk + size) >> shift
    hole = tree_get(maptree, above)
    extra = (mapped - size) >> shift
    if hole >= extra:
        # the pages just above are unmapped: grow in place
        tree_set(maptree, above, 0)
        if hole > extra:
            tree_set(maptree, above + extra, hole - extra)
        kept = words[S_RETAINED] if words[S_RETAINED] < mapped - size else mapped - size
        words[S_RETAINED] -= kept
        words[S_MAPPED] += mapped - size
        words[S_FOOTPRINT] += mapped - size - kept
        memory[(chunk >> 3) + W_SIZE] = mapped | IS_MMAPPED
        return chunk
    moved = _map_pages(words, maptree, mapped)
    if moved < 0:
        return moved
    _release_pages(words, maptree, chunk, size)
    words[S_MAPPED] -= size
    words[S_FOOTPRINT] -= size
    memory[moved >> 3] = 0
    memory[(moved >> 3) + W_SIZE] = mapped | IS_MMAPPED
    return moved
