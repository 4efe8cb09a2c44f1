"""glibc's integrity checks on a chunk heap: what `free(): invalid pointer` and its siblings look at.

glibc (2.36, malloc/malloc.c) never set out to catch misuse: its checks are
cheap sanity tests of the in-band metadata it is about to trust, run inline
on every call.  The model runs the same tests on the same words of its
simulated memory (`shared.chunks`), in glibc's order, when words[S_CHECKS]
is set (`freelist:glibc`, parameter `checks`), and returns the detection
(`allocators.detections`) with glibc's message where glibc would abort:

- free (`check_free`, before anything is changed): a mapped chunk's page
  alignment (`munmap_chunk(): invalid pointer`); the pointer's alignment and
  wrap-around (`free(): invalid pointer`); the size (`free(): invalid
  size`); for a chunk that goes to the tcache, the tcache key in its second
  word, which makes glibc walk the bin (`free(): double free detected in
  tcache 2`); for a fastbin chunk, the next chunk's size and the bin's top
  (`(fasttop)`); for the rest, top, the arena's end, the next chunk's
  PREV_INUSE and size (`(top)`, `(out)`, `(!prev)`, `invalid next size
  (normal)`), and the neighbours it will merge with (`check_unlink`:
  `corrupted size vs. prev_size`, `corrupted double-linked list`);
- malloc: the tcache's safe-linked head (`shared.chunks.tcache_get`), a
  fastbin's head (`check_fastbin_victim`), each chunk taken from the
  unsorted bin (`check_unsorted_victim`), the top chunk's size
  (`malloc(): corrupted top size`).

glibc's `system_mem` (bytes the arena took from the OS) is the break here.
Where glibc would follow a corrupted size or link into memory the process
does not have, a real process dies of SIGSEGV; the model reports the same
(D_SEGV) instead of reading outside its arrays (`shared.chunks.readable`).
A chunk that passes every check but whose words are garbage is used as glibc
would use it, as long as that stays inside the model's memory; where it
would not, `ST_CORRUPTED`: the real heap would be corrupted, undetected.
"""

from numba import njit

from allocators.detections import (
    D_CORRUPTED_LIST,
    D_CORRUPTED_PREV_SIZE_CONSOLIDATING,
    D_CORRUPTED_SIZE_VS_PREV_SIZE,
    D_DOUBLE_FREE_OUT,
    D_DOUBLE_FREE_PREV,
    D_DOUBLE_FREE_TOP,
    D_FASTBIN_CORRUPTION,
    D_FASTBIN_UNALIGNED,
    D_FASTTOP,
    D_FREE_UNSORTED,
    D_INVALID_NEXT_SIZE_FAST,
    D_INVALID_NEXT_SIZE_NORMAL,
    D_INVALID_POINTER,
    D_INVALID_SIZE,
    D_MUNMAP_INVALID,
    D_SEGV,
    D_TCACHE_DOUBLE_FREE,
    D_TCACHE_TOO_MANY,
    D_TCACHE_UNALIGNED_FREE,
    D_TOP_SIZE,
    D_UNSORTED_INVALID_NEXT_SIZE,
    D_UNSORTED_INVALID_SIZE,
    D_UNSORTED_LIST,
    D_UNSORTED_PREV_INUSE,
    D_UNSORTED_PREV_SIZE,
    FOREIGN_BYTES,
    FOREIGN_GAP,
    ST_CORRUPTED,
    detected,
)
from allocators.errors import ST_OK
from allocators.shared.chunks import (
    BIN_STRIDE,
    IS_MMAPPED,
    NIL,
    PREV_INUSE,
    S_ARENA,
    S_BRK,
    S_FASTBINS,
    S_GRAN_SHIFT,
    S_HEAP_LIMIT,
    S_MAP_TOP,
    S_MAX_FAST,
    S_MIN_CHUNK,
    S_PAGE,
    S_TC_BINS,
    S_TC_COUNT,
    S_TOP,
    SIZE_MASK,
    TCACHE_KEY,
    W_BK,
    W_BK_NEXTSIZE,
    W_FD,
    W_FD_NEXTSIZE,
    W_PREV_SIZE,
    W_SIZE,
    protect,
    readable,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: glibc MIN_LARGE_SIZE on 64-bit (chunks from here on sit in large bins, with nextsize links).
_MIN_LARGE_SIZE = 1024
#: glibc CHUNK_HDR_SZ: the smallest size word a chunk that follows another may hold is above this.
CHUNK_HDR_SZ = 16
#: The header word of a chunk whose mapping free() released: reading it would fault (SIGSEGV).
UNMAPPED = -0x7E57_0000_0000_0000
#: The unsorted bin's index (shared.glibc_bins.UNSORTED_BIN).
_UNSORTED_BIN = 1


@njit(cache=True, inline="always")
def _foreign(words, chunk):
    """A header in the zeroed memory far past the heap that foreign frees point into (FOREIGN_GAP)."""
    start = words[S_MAP_TOP] + FOREIGN_GAP - 2 * words[S_PAGE]
    return start <= chunk < start + FOREIGN_BYTES + 4 * words[S_PAGE]


@njit(cache=True)
def check_unlink(words, memory, chunk):
    """glibc unlink_chunk's checks on a free chunk about to leave its bin."""
    if not readable(words, memory, chunk, 8 * (W_BK_NEXTSIZE + 1)):
        return detected(D_SEGV)
    cw = chunk >> 3
    size = memory[cw + W_SIZE] & SIZE_MASK
    following = chunk + size
    if not readable(words, memory, following, 8):
        return detected(D_SEGV)
    if memory[following >> 3] != size:
        return detected(D_CORRUPTED_SIZE_VS_PREV_SIZE)
    fd, bk = memory[cw + W_FD], memory[cw + W_BK]
    if not readable(words, memory, fd, 8 * (W_BK_NEXTSIZE + 1)) or not readable(words, memory, bk, 48):
        return detected(D_SEGV)
    if memory[(fd >> 3) + W_BK] != chunk or memory[(bk >> 3) + W_FD] != chunk:
        return detected(D_CORRUPTED_LIST)
    if size >= _MIN_LARGE_SIZE and memory[cw + W_FD_NEXTSIZE] != NIL:
        nxt, prv = memory[cw + W_FD_NEXTSIZE], memory[cw + W_BK_NEXTSIZE]
        if not readable(words, memory, nxt, 48) or not readable(words, memory, prv, 48):
            return detected(D_SEGV)
        if memory[(nxt >> 3) + W_BK_NEXTSIZE] != chunk or memory[(prv >> 3) + W_FD_NEXTSIZE] != chunk:
            return detected(D_CORRUPTED_LIST)
    return ST_OK


@njit(cache=True)
def _check_tcache_bin(words, memory, tcache, slot, chunk):
    """A chunk carrying the tcache key: walk its bin as glibc does; is it there already?"""
    entry = tcache[slot]
    count = 0
    while entry != NIL:
        if count >= words[S_TC_COUNT]:
            return detected(D_TCACHE_TOO_MANY)
        if entry & 15 != 0:
            return detected(D_TCACHE_UNALIGNED_FREE)
        if entry == chunk:
            return detected(D_TCACHE_DOUBLE_FREE)
        if not readable(words, memory, entry, 8 * (W_FD + 1)):
            return detected(D_SEGV)
        entry = protect(entry + 8 * W_FD, memory[(entry >> 3) + W_FD])
        count += 1
    return ST_OK


@njit(cache=True)
def check_merge(words, memory, chunk, prev_size_code):
    """The checks of coalescing an in-use chunk with its free neighbours (the previous one's size against our
    prev_size: `prev_size_code`; each neighbour's unlink), then of filing it in the unsorted bin."""
    cw = chunk >> 3
    head = memory[cw + W_SIZE]
    following = chunk + (head & SIZE_MASK)
    if not readable(words, memory, following, 8 * (W_SIZE + 1)):
        return detected(D_SEGV)
    next_size = memory[(following >> 3) + W_SIZE] & SIZE_MASK
    if head & PREV_INUSE == 0:
        before = memory[cw + W_PREV_SIZE]
        previous = chunk - before
        if before <= 0 or not readable(words, memory, previous, 8 * (W_SIZE + 1)):
            return detected(D_SEGV)
        if memory[(previous >> 3) + W_SIZE] & SIZE_MASK != before:
            return detected(prev_size_code)
        status = check_unlink(words, memory, previous)
        if status < 0:
            return status
    if following != words[S_TOP]:
        if not readable(words, memory, following + next_size, 8 * (W_SIZE + 1)):
            return detected(D_SEGV)
        if memory[((following + next_size) >> 3) + W_SIZE] & PREV_INUSE == 0:
            status = check_unlink(words, memory, following)
            if status < 0:
                return status
        unsorted = words[S_ARENA] + _UNSORTED_BIN * BIN_STRIDE
        first = memory[(unsorted >> 3) + W_FD]
        if not readable(words, memory, first, 8 * (W_BK + 1)):
            return detected(D_SEGV)
        if memory[(first >> 3) + W_BK] != unsorted:
            return detected(D_FREE_UNSORTED)
    return ST_OK


@njit(cache=True)
def check_free(words, memory, tcache, chunk, tbase):
    """glibc 2.36's checks in free() of the chunk at `chunk`, on the path the free will take (tbase: the thread's
    tcache, -1 if it has none yet), before anything changes.  ST_OK, a detection, or ST_CORRUPTED."""
    if not readable(words, memory, chunk, 8 * (W_SIZE + 1)):
        if _foreign(words, chunk):  # zeroed memory: size 0
            return detected(D_INVALID_POINTER) if chunk & 15 else detected(D_INVALID_SIZE)
        return detected(D_SEGV)
    cw = chunk >> 3
    head = memory[cw + W_SIZE]
    if head == UNMAPPED:
        return detected(D_SEGV)
    size = head & SIZE_MASK
    if head & IS_MMAPPED:
        page = words[S_PAGE]
        block = chunk - memory[cw + W_PREV_SIZE]
        total = memory[cw + W_PREV_SIZE] + size
        offset = (chunk + 16) & (page - 1)
        if (block | total) & (page - 1) or offset & (offset - 1):
            return detected(D_MUNMAP_INVALID)
        if not (words[S_HEAP_LIMIT] <= chunk and 0 < size <= words[S_MAP_TOP] - chunk):
            return ST_CORRUPTED  # munmap of a range the model never mapped
        return ST_OK
    if size < 0 or chunk + size < chunk or chunk & 15:
        return detected(D_INVALID_POINTER)
    if size < words[S_MIN_CHUNK] or size & 15:
        return detected(D_INVALID_SIZE)
    if not readable(words, memory, chunk, 8 * (W_BK + 1)):
        return ST_CORRUPTED  # a chunk the tcache would write into memory the model does not keep
    index = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
    if tbase >= 0 and index < words[S_TC_BINS]:
        slot = tbase + 2 + 2 * index
        if memory[cw + W_BK] == TCACHE_KEY:
            status = _check_tcache_bin(words, memory, tcache, slot, chunk)
            if status < 0:
                return status
        if tcache[slot + 1] < words[S_TC_COUNT]:
            return ST_OK
    system_mem = words[S_BRK]
    following = chunk + size
    if size <= words[S_MAX_FAST]:
        if not readable(words, memory, following, 8 * (W_SIZE + 1)):
            return detected(D_SEGV)
        next_head = memory[(following >> 3) + W_SIZE]
        if next_head <= CHUNK_HDR_SZ or (next_head & SIZE_MASK) >= system_mem:
            return detected(D_INVALID_NEXT_SIZE_FAST)
        fast_index = (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT]
        if words[S_FASTBINS + fast_index] == chunk:
            return detected(D_FASTTOP)
        return ST_OK
    top = words[S_TOP]
    if chunk == top:
        return detected(D_DOUBLE_FREE_TOP)
    if following >= words[S_BRK] or following < 0:
        return detected(D_DOUBLE_FREE_OUT)
    next_head = memory[(following >> 3) + W_SIZE]
    if next_head & PREV_INUSE == 0:
        return detected(D_DOUBLE_FREE_PREV)
    if next_head <= CHUNK_HDR_SZ or (next_head & SIZE_MASK) >= system_mem:
        return detected(D_INVALID_NEXT_SIZE_NORMAL)
    return check_merge(words, memory, chunk, D_CORRUPTED_PREV_SIZE_CONSOLIDATING)


@njit(cache=True)
def check_fastbin_chunk(words, memory, chunk, index, nbytes, unaligned_code, size_code):
    """The checks glibc makes on a chunk it takes off fastbin `index` (malloc's pop, malloc_consolidate's walk):
    its alignment (`unaligned_code`), `nbytes` of it readable, and a size that belongs in this bin (`size_code`)."""
    if chunk & 15 != 0:
        return detected(unaligned_code)
    if not readable(words, memory, chunk, nbytes):
        return detected(D_SEGV)
    size = memory[(chunk >> 3) + W_SIZE] & SIZE_MASK
    if size < words[S_MIN_CHUNK] or (size - words[S_MIN_CHUNK]) >> words[S_GRAN_SHIFT] != index:
        return detected(size_code)
    return ST_OK


@njit(cache=True)
def check_fastbin_victim(words, memory, victim, index):
    """malloc's checks on the chunk at the front of fastbin `index` (its link revealed, with checks)."""
    return check_fastbin_chunk(words, memory, victim, index, 8 * (W_FD + 1), D_FASTBIN_UNALIGNED,
                               D_FASTBIN_CORRUPTION)


@njit(cache=True)
def check_unsorted_victim(words, memory, victim, unsorted):
    """_int_malloc's checks on the chunk it takes from the back of the unsorted bin."""
    if not readable(words, memory, victim, 8 * (W_BK_NEXTSIZE + 1)):
        return detected(D_SEGV)
    vw = victim >> 3
    size = memory[vw + W_SIZE] & SIZE_MASK
    system_mem = words[S_BRK]
    if size <= CHUNK_HDR_SZ or size > system_mem:
        return detected(D_UNSORTED_INVALID_SIZE)
    following = victim + size
    if not readable(words, memory, following, 8 * (W_SIZE + 1)):
        return detected(D_SEGV)
    next_head = memory[(following >> 3) + W_SIZE]
    if next_head < CHUNK_HDR_SZ or next_head > system_mem:
        return detected(D_UNSORTED_INVALID_NEXT_SIZE)
    if memory[following >> 3] & SIZE_MASK != size:
        return detected(D_UNSORTED_PREV_SIZE)
    bck = memory[vw + W_BK]
    if not readable(words, memory, bck, 8 * (W_BK + 1)):
        return detected(D_SEGV)
    if memory[(bck >> 3) + W_FD] != victim or memory[vw + W_FD] != unsorted:
        return detected(D_UNSORTED_LIST)
    if next_head & PREV_INUSE:
        return detected(D_UNSORTED_PREV_INUSE)
    return ST_OK


@njit(cache=True, inline="always")
def check_top(words, memory):
    """use_top: 'malloc(): corrupted top size' when top's size word says more than the arena has."""
    if memory[(words[S_TOP] >> 3) + W_SIZE] & SIZE_MASK > words[S_BRK]:
        return detected(D_TOP_SIZE)
    return ST_OK
