"""mimalloc 2.0's size bins: the `_mi_bin` computation, the bins' block sizes, and the size -> bin kernel.

mimalloc (2.0.x, 64-bit, as Debian's libmimalloc2.0 2.0.9 is built) rounds a
small or medium request (<= MI_MEDIUM_OBJ_SIZE_MAX = 128 KiB) up to the block
size of its *bin*; every mimalloc page holds blocks of one bin.  `_mi_bin`
(src/page-queue.c) works on the size in words (wsize = ceil(size / 8)):

- wsize <= 1: bin 1 (8 B);
- wsize <= 8: exact word sizes, rounded up to an even word count when the
  library is built with MI_ALIGN2W (Debian's build is: mi_good_size(17) is
  32, so the 24, 40 and 56 B bins exist in the table but are never used):
  bins 2, 4, 6, 8 = 16, 32, 48, 64 B;
- larger: four bins per doubling, from the top three bits of wsize - 1:
  b = bsr(wsize - 1), bin = 4 b + ((wsize - 1) >> (b - 2) & 3) - 3, so
  80, 96, 112, 128, 160, 192, 224, 256, 320, ... 128 KiB (bin 52);
- MI_BIN_HUGE = 73 is the queue of large and huge pages, MI_BIN_FULL = 74
  the queue of full pages.

A bin's block size is the largest wsize that maps to it, times 8 (the
`QNULL` table of src/init.c is exactly that), so the granted size of a
request is `BIN_SIZE[bin]`, which is what `mi_good_size` returns up to 128 KiB.

Above 128 KiB a request gets a page of its own (src/page.c
`mi_large_huge_page_alloc`): `_mi_os_good_alloc_size` rounds it up (to 4 KiB
below 512 KiB, 64 KiB below 2 MiB, 256 KiB below 8 MiB, 1 MiB below 32 MiB,
4 MiB above); up to MI_LARGE_OBJ_SIZE_MAX (16 MiB, half a segment) that size
becomes a span of 64 KiB slices in a segment, rounded up to whole slices, or to
512 KiB (MI_MEDIUM_PAGE_SIZE) when it is larger than that, and the whole span
is usable (`mi_usable_size`); beyond 16 MiB the rounded size gets a huge
segment of its own.  `large_granted` is that rule.  (`mi_good_size` itself
only rounds sizes above 128 KiB up to 4 KiB: it is a hint, not the usable size.)

The lookup kernel reads one byte: `bin_index[wsize]`, a uint8 table over
wsize 0 .. 16384 (16 KiB, built at import).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

WORD = 8
#: MI_SMALL_OBJ_SIZE_MAX (64 KiB small pages / 4), MI_MEDIUM_OBJ_SIZE_MAX (512 KiB medium pages / 4),
#: MI_LARGE_OBJ_SIZE_MAX (32 MiB segment / 2), include/mimalloc-types.h in 2.0.x.
SMALL_OBJ_SIZE_MAX = 16 << 10
MEDIUM_OBJ_SIZE_MAX = 128 << 10
LARGE_OBJ_SIZE_MAX = 16 << 20
MEDIUM_OBJ_WSIZE_MAX = MEDIUM_OBJ_SIZE_MAX // WORD
BIN_HUGE = 73
BIN_FULL = BIN_HUGE + 1
N_QUEUES = BIN_FULL + 1  # the heap's `pages[MI_BIN_FULL + 1]`
SLICE_SIZE = 64 << 10
MEDIUM_PAGE_SIZE = 512 << 10
OS_PAGE_SIZE = 4096


def bin_of_wsize(wsize: int) -> int:
    """`_mi_bin` for a size of `wsize` words (MI_ALIGN2W: even word counts up to 8 words)."""
    if wsize <= 1:
        return 1
    if wsize <= 8:
        return (wsize + 1) & ~1
    if wsize > MEDIUM_OBJ_WSIZE_MAX:
        return BIN_HUGE
    w = wsize - 1
    b = w.bit_length() - 1
    return (b << 2) + ((w >> (b - 2)) & 0x03) - 3


def _build() -> tuple[np.ndarray, np.ndarray]:
    index = np.zeros(MEDIUM_OBJ_WSIZE_MAX + 1, np.uint8)
    sizes = np.zeros(N_QUEUES, np.int64)
    for wsize in range(1, MEDIUM_OBJ_WSIZE_MAX + 1):
        b = bin_of_wsize(wsize)
        index[wsize] = b
        sizes[b] = max(sizes[b], wsize * WORD)
    index[0] = 1
    return index, sizes


#: wsize (0 .. 16384) -> bin; bin -> block size in bytes (0 for bins no size maps to).
BIN_INDEX, BIN_SIZE = _build()
#: The bins that hold blocks, in increasing block size.
USED_BINS = np.flatnonzero(BIN_SIZE).astype(np.int64)


@njit(cache=True, inline="always")
def mimalloc_bin(size, bin_index):
    """The bin of a request of 1 .. MEDIUM_OBJ_SIZE_MAX bytes (the caller routes larger ones elsewhere)."""
    return np.int64(bin_index[(size + 7) >> 3])


def good_size(size: int) -> int:
    """Granted bytes for a small or medium request (mi_good_size up to 128 KiB)."""
    return int(BIN_SIZE[BIN_INDEX[(size + 7) >> 3]])


@njit(cache=True)
def os_good_alloc_size(size):
    """`_mi_os_good_alloc_size`: round a large request to the OS allocation granularity."""
    if size < (512 << 10):
        align = np.int64(OS_PAGE_SIZE)
    elif size < (2 << 20):
        align = np.int64(64 << 10)
    elif size < (8 << 20):
        align = np.int64(256 << 10)
    elif size < (32 << 20):
        align = np.int64(1 << 20)
    else:
        align = np.int64(4 << 20)
    return (size + align - 1) // align * align


@njit(cache=True)
def large_granted(size):
    """Usable bytes of a request above 128 KiB: its large page (<= 16 MiB) or its huge segment's block."""
    block = os_good_alloc_size(size)
    if block > LARGE_OBJ_SIZE_MAX:
        return block
    unit = MEDIUM_PAGE_SIZE if block > MEDIUM_PAGE_SIZE else SLICE_SIZE
    return (block + unit - 1) // unit * unit


def granted_size(size: int) -> int:
    """What the model grants for `size` bytes (mi_usable_size of a fresh malloc(size))."""
    return good_size(size) if size <= MEDIUM_OBJ_SIZE_MAX else int(large_granted(size))
