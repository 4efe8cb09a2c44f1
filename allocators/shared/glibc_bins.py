"""glibc malloc (ptmalloc2) size arithmetic on 64-bit: chunk sizes, bin and tcache indices.

Facts (bminor/glibc malloc/malloc.c, 2.26 .. 2.42, x86-64; see
shared/reference/production-allocators.md section 4):

- `request2size(req) = max(MINSIZE, (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK)` with
  SIZE_SZ = 8, alignment 16, MINSIZE = 32: malloc(24) -> 32 B chunk, malloc(25) -> 48 B.
- 128 bins: bin 1 is the unsorted bin; small bins 2..63 hold one chunk size each
  (`smallbin_index(sz) = sz >> 4`, sizes 32..1008); large bins 64..126 are
  roughly logarithmic (`largebin_index_64`); MIN_LARGE_SIZE = 1024.
- tcache: `csize2tidx(sz) = (sz - MINSIZE + 15) >> 4`, 64 bins for chunk sizes
  32..1040 (user sizes up to 1032).
"""

from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

NBINS = 128
UNSORTED_BIN = 1
MIN_LARGE_SIZE = 1024
SIZE_SZ = 8
MALLOC_ALIGNMENT = 16
MINSIZE = 32


@njit(cache=True, inline="always")
def request2size(request, header, granularity, min_chunk):
    """Chunk size for a request: header added, rounded up to the granularity, at least min_chunk."""
    size = (request + header + granularity - 1) & ~(granularity - 1)
    return size if size > min_chunk else min_chunk


@njit(cache=True, inline="always")
def smallbin_index(size):
    return size >> 4


@njit(cache=True)
def largebin_index(size):
    """glibc's largebin_index_64 (chunk size -> bin 64..126)."""
    if (size >> 6) <= 48:
        return 48 + (size >> 6)
    if (size >> 9) <= 20:
        return 91 + (size >> 9)
    if (size >> 12) <= 10:
        return 110 + (size >> 12)
    if (size >> 15) <= 4:
        return 119 + (size >> 15)
    if (size >> 18) <= 2:
        return 124 + (size >> 18)
    return 126


@njit(cache=True)
def bin_index(size):
    if size < MIN_LARGE_SIZE:
        return size >> 4
    return largebin_index(size)
