"""Per-span object bitmaps: allocation bits handed out lowest free index first, and mark bits.

A small span of `nobj` objects keeps one bit per object in its allocation
bitmap (1 = allocated, as Go's `allocBits`), `ceil(nobj / 64)` int64 words in
the flat array `bits` at the offset `spans[s].SP_ALLOC_BITS` (allocators.shared
.spans gives every span record two regions of `bitmap_words` words: allocation
and mark bits).  The bits of the last word past `nobj` are set at
initialisation ("phantom" allocated objects), so a search never returns an
index >= nobj and needs no bound check.

Allocation takes the lowest free index, as Go's `nextFreeFast` does (its
`allocCache` is the complement of 64 allocation bits shifted to `freeindex`;
`count trailing zeros` gives the next free slot): the search starts at the
span's `SP_SCAN` word, skips full words (-1), and takes the lowest zero bit of
the first word that has one (one `cttz` of the complement,
allocators.shared.bits).  Invariant: every word below SP_SCAN is full.  Freeing
an object (TCMalloc's central free list, explicit frees) clears its bit and
lowers SP_SCAN to its word, so the lowest free object is found again.  A model
that must not reuse freed slots before a sweep (Go) simply never calls
`bitmap_release`; SP_SCAN then only moves up, like Go's freeindex (at word
granularity, which finds the same slots because every word below is full).

Cost: take = O(1 + full words skipped), at most ceil(nobj/64) <= 16 words for a
1024-object span; release O(1); init O(words).  The caller keeps the count of
free objects (spans.SP_NFREE) and never takes from a full span.

Mark bits (Go's gcmarkBits) are a second region: `bitmap_mark` sets one,
`bitmap_sweep` makes the mark bits the new allocation bits (an exchange of the
two offsets, as Go swaps the pointers), clears the new mark region, restores
the phantom bits, resets SP_SCAN and returns the number of objects still
allocated (a population count).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.shared.bits import lowest_set_bit
from allocators.shared.spans import SP_ALLOC_BITS, SP_MARK_BITS, SP_SCAN, SPAN_SHIFT
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: Objects per bitmap word.
WORD_BITS = 64


def bitmap_words_for(max_objects: int) -> int:
    """Words per bitmap region for spans of at most `max_objects` objects."""
    return max(1, (int(max_objects) + WORD_BITS - 1) // WORD_BITS)


@njit(cache=True, inline="always")
def phantom_bits(nobj):
    """The last word's bits at and above nobj, set (0 when nobj is a multiple of 64)."""
    rest = nobj & 63
    if rest == 0:
        return np.int64(0)
    return np.int64(-1) << rest


@njit(cache=True)
def bitmap_init(spans, bits, s, nobj):
    """Every object of span `s` free (both regions cleared, phantom bits set); O(words)."""
    base = s << SPAN_SHIFT
    alloc = spans[base + SP_ALLOC_BITS]
    mark = spans[base + SP_MARK_BITS]
    n_words = (nobj + 63) >> 6
    for w in range(n_words):
        bits[alloc + w] = 0
        bits[mark + w] = 0
    bits[alloc + n_words - 1] = phantom_bits(nobj)
    spans[base + SP_SCAN] = 0


@njit(cache=True, inline="always")
def bitmap_take_lowest(spans, bits, s):
    """Mark the lowest free object of span `s` allocated and return its index (the span has one)."""
    base = s << SPAN_SHIFT
    alloc = spans[base + SP_ALLOC_BITS]
    w = spans[base + SP_SCAN]
    word = bits[alloc + w]
    while word == -1:
        w += 1
        word = bits[alloc + w]
    bit = lowest_set_bit(~word)
    bits[alloc + w] = word | (np.int64(1) << bit)
    spans[base + SP_SCAN] = w
    return (w << 6) + bit


@njit(cache=True, inline="always")
def bitmap_release(spans, bits, s, index):
    """Mark object `index` of span `s` free again (it must be allocated)."""
    base = s << SPAN_SHIFT
    w = index >> 6
    position = spans[base + SP_ALLOC_BITS] + w
    bits[position] &= ~(np.int64(1) << (index & 63))
    if w < spans[base + SP_SCAN]:
        spans[base + SP_SCAN] = w


@njit(cache=True, inline="always")
def bitmap_is_allocated(spans, bits, s, index):
    position = spans[(s << SPAN_SHIFT) + SP_ALLOC_BITS] + (index >> 6)
    return (bits[position] >> (index & 63)) & 1


@njit(cache=True, inline="always")
def bitmap_mark(spans, bits, s, index):
    position = spans[(s << SPAN_SHIFT) + SP_MARK_BITS] + (index >> 6)
    bits[position] |= np.int64(1) << (index & 63)


@njit(cache=True, inline="always")
def popcount64(x):
    """Number of set bits of an int64 (SWAR; LLVM turns it into one popcnt where available)."""
    x = np.uint64(x)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def bitmap_count_allocated(spans, bits, s, nobj):
    """Objects of span `s` whose allocation bit is set (phantom bits not counted); O(words)."""
    alloc = spans[(s << SPAN_SHIFT) + SP_ALLOC_BITS]
    n_words = (nobj + 63) >> 6
    total = 0
    for w in range(n_words):
        total += popcount64(bits[alloc + w])
    return total - popcount64(phantom_bits(nobj))


@njit(cache=True)
def bitmap_sweep(spans, bits, s, nobj):
    """Go's sweep: allocation bits := mark bits, fresh mark bits; returns the objects still allocated."""
    base = s << SPAN_SHIFT
    marks = spans[base + SP_MARK_BITS]
    spans[base + SP_MARK_BITS] = spans[base + SP_ALLOC_BITS]
    spans[base + SP_ALLOC_BITS] = marks
    n_words = (nobj + 63) >> 6
    fresh = spans[base + SP_MARK_BITS]
    for w in range(n_words):
        bits[fresh + w] = 0
    bits[marks + n_words - 1] |= phantom_bits(nobj)
    spans[base + SP_SCAN] = 0
    return bitmap_count_allocated(spans, bits, s, nobj)
