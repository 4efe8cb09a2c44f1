"""Boundary-tag chunks in a simulated memory: the chunk words, the chunk heap's state layout, links, tcache lists.

Shared by the malloc-style allocator `allocators.freelist` (its generic fit
policies) and its ptmalloc2 model `allocators.glibc`, and by the modules both
build on (`shared.sysmem`: top, sbrk, mmap; `shared.chunkfree`: the free path;
`shared.sizelists`, `shared.glibc_bins`: free-chunk indices).

Chunks sit where glibc keeps them, in a simulated memory of 8-byte words
(`memory[addr >> 3]`, one word per 8 bytes of capacity):

    chunk + 0   prev_size   size of the previous chunk, valid only while that one is free (its footer)
    chunk + 8   size        chunk size | PREV_INUSE (1) | IS_MMAPPED (2)
    chunk + 16  fd          free-list links, only while the chunk is free
    chunk + 24  bk          (a tcache'd or fastbin chunk keeps its singly linked "next" in fd)
    chunk + 32  fd_nextsize glibc large bins only: skip list over distinct sizes
    chunk + 40  bk_nextsize

A chunk is in use iff the PREV_INUSE bit of the *next* chunk is set.  Links
are addresses; NIL (-1) is "NULL", since 0 is a valid chunk address.  The
arena's NBINS bin headers lie just past `capacity` in the same memory, six
words (BIN_STRIDE bytes) each, shaped like chunks so that a list's sentinel
is its bin header: bin 0 is the lifo/fifo list of the plain policies, bin 1
glibc's unsorted bin.

State: a tuple of arrays, slots I_WORDS .. I_MAPTREE: `words` (event
counters C_* first, then the hot scalars S_*: footprint, metadata, top, brk,
the mapped region, parameters, the glibc binmap, last remainder, rover, the
fastbin heads), `memory`, `tcache` (per thread: an initialised flag, then
(head, count) per bin), `tree` (address-ordered free chunks), `sizebits` and
`sizeheads` (best fit's size lists), `maptree` (mmap holes).  words[S_MODE]
says which free-chunk index the heap keeps (MODE_*), words[S_ORDER] the order
within a list (ORDER_*).
"""

from numba import njit

from allocators.detections import D_SEGV, D_TCACHE_UNALIGNED, detected
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

# Chunk header: flag bits in the size word and word offsets from a chunk's start.
PREV_INUSE = 1
IS_MMAPPED = 2
SIZE_MASK = ~7
W_PREV_SIZE, W_SIZE, W_FD, W_BK, W_FD_NEXTSIZE, W_BK_NEXTSIZE = 0, 1, 2, 3, 4, 5
#: "NULL" in links (0 is a valid chunk address here).
NIL = -1
#: Bytes per bin header in the arena (six words, like a chunk: fd, bk and a non-NULL fd_nextsize).
BIN_STRIDE = 48

#: The free-chunk index (words[S_MODE]): one list, the address tree, exact-size lists, glibc's bins.
MODE_LIST, MODE_TREE, MODE_SIZES, MODE_GLIBC = 0, 1, 2, 3
#: Order within a list (words[S_ORDER]).
ORDER_LIFO, ORDER_FIFO, ORDER_ADDRESS = 0, 1, 2
#: glibc NFASTBINS on 64-bit (chunk sizes 32..176; the default max_fast is 128).
NFASTBINS = 10

# The state tuple's slots.
I_WORDS, I_MEMORY, I_TCACHE, I_TREE, I_SIZEBITS, I_SIZEHEADS, I_MAPTREE = range(7)
N_STATE = 7

# words[]: counters first (the base class reads them there), then the hot scalars.
COUNTER_NAMES = (
    "allocs", "frees", "splits", "coalesces", "tcache_hits", "tcache_puts", "fastbin_puts", "consolidations",
    "search_steps", "os_grows", "os_trims", "mmaps", "munmaps", "reallocs_in_place", "resets",
)
(C_ALLOCS, C_FREES, C_SPLITS, C_COALESCES, C_TCACHE_HITS, C_TCACHE_PUTS, C_FASTBIN_PUTS, C_CONSOLIDATIONS,
 C_SEARCH_STEPS, C_OS_GROWS, C_OS_TRIMS, C_MMAPS, C_MUNMAPS, C_REALLOCS_IN_PLACE, C_RESETS) = range(15)
S_FOOTPRINT = 15        # brk + mapped bytes + retained bytes
S_METADATA = 16
S_TOP = 17              # address of the top chunk
S_BRK = 18              # end of the heap
S_HEAP_LIMIT = 19       # lowest mapped address: the heap may grow up to here
S_MAPPED = 20           # bytes currently mapped
S_MAP_TOP = 21          # end of the mmap region (capacity rounded down to a page)
S_MODE = 22
S_ORDER = 23
S_NEXT_FIT = 24
S_GRAN = 25
S_GRAN_SHIFT = 26
S_MIN_CHUNK = 27
S_HEADER = 28
S_USER_OFFSET = 29
S_TC_BINS = 30
S_TC_COUNT = 31
S_TC_STRIDE = 32
S_TOP_PAD = 33
S_TRIM_THRESHOLD = 34
S_MMAP_THRESHOLD = 35
S_MMAP_DYNAMIC = 36
S_MMAP_THRESHOLD_MAX = 37
S_PAGE = 38
S_PAGE_SHIFT = 39
S_ARENA = 40            # address of bin 0's header (past capacity); bin 0 is the lifo/fifo list
S_BINMAP = 41           # two words: bins 0..63, 64..127
S_LAST_REMAINDER = 43
S_ROVER = 44            # next fit: list node (lists) or granule (tree)
S_FIXED_METADATA = 45
S_TC_STRUCT_BYTES = 46
S_RETAINED = 47         # bytes of mappings released by free() but kept in the footprint
S_MAX_FAST = 48         # largest chunk size that goes to a fastbin (0: no fastbins)
S_HAVE_FAST = 49        # some fastbin is non-empty (glibc have_fastchunks)
S_FASTBINS = 50         # NFASTBINS heads of singly linked LIFO lists
S_CHECKS = S_FASTBINS + NFASTBINS  # 1: glibc's integrity checks and safe-linking (`shared.chunkchecks`)
N_WORDS = S_CHECKS + 1

#: The tcache key a tcache'd chunk holds in its second word (glibc >= 2.34 draws a random one per process;
#: the model's is fixed, so replays repeat).
TCACHE_KEY = 0x2E3A_5C71_9B0D_4F86


# ----------------------------------------------------------------- chunk words
@njit(cache=True, inline="always")
def size_of(memory, chunk):
    return memory[(chunk >> 3) + W_SIZE] & SIZE_MASK


@njit(cache=True, inline="always")
def set_inuse_after(memory, chunk, size):
    """Mark `chunk` in use: set PREV_INUSE in the chunk that follows it."""
    memory[((chunk + size) >> 3) + W_SIZE] |= PREV_INUSE


@njit(cache=True, inline="always")
def set_free_chunk(memory, chunk, size):
    """Header and footer of a free chunk (its previous chunk is in use: free chunks are never adjacent)."""
    memory[(chunk >> 3) + W_SIZE] = size | PREV_INUSE
    memory[(chunk + size) >> 3] = size


@njit(cache=True, inline="always")
def set_top(words, memory, top):
    words[S_TOP] = top
    memory[(top >> 3) + W_SIZE] = (words[S_BRK] - top) | PREV_INUSE


# ---------------------------------------------------------------------- links
@njit(cache=True, inline="always")
def link_after(memory, prev, chunk):
    """Insert `chunk` between `prev` and its successor in a circular doubly linked list."""
    nxt = memory[(prev >> 3) + W_FD]
    memory[(chunk >> 3) + W_FD] = nxt
    memory[(chunk >> 3) + W_BK] = prev
    memory[(nxt >> 3) + W_BK] = chunk
    memory[(prev >> 3) + W_FD] = chunk


@njit(cache=True, inline="always")
def unlink(memory, chunk):
    fd = memory[(chunk >> 3) + W_FD]
    bk = memory[(chunk >> 3) + W_BK]
    memory[(fd >> 3) + W_BK] = bk
    memory[(bk >> 3) + W_FD] = fd


@njit(cache=True, inline="always")
def protect(pos, pointer):
    """glibc's safe-linking (PROTECT_PTR and REVEAL_PTR): a link stored at address `pos`, masked with pos >> 12."""
    return (pos >> 12) ^ pointer


@njit(cache=True, inline="always")
def readable(words, memory, addr, nbytes):
    """Whether `nbytes` from `addr` lie in memory the heap has: the brk heap (and the header of the chunk after
    top), the mapped region, or the arena's bins.  A corrupted link or size that points elsewhere would fault in a
    real process (the checks report it as a SIGSEGV); the model never reads there."""
    end = addr + nbytes
    if addr < 0 or end < addr:
        return False
    if end <= words[S_BRK] + 16:
        return True
    if words[S_HEAP_LIMIT] <= addr and end <= words[S_MAP_TOP]:
        return True
    return words[S_ARENA] <= addr and end <= memory.shape[0] * 8


@njit(cache=True, inline="always")
def tcache_put(words, memory, tcache, slot, chunk):
    """glibc tcache_put: the chunk in front of its bin; with checks, its link safe-linked and its key set."""
    if words[S_CHECKS] != 0:
        memory[(chunk >> 3) + W_FD] = protect(chunk + 8 * W_FD, tcache[slot])
        memory[(chunk >> 3) + W_BK] = TCACHE_KEY
    else:
        memory[(chunk >> 3) + W_FD] = tcache[slot]
    tcache[slot] = chunk
    tcache[slot + 1] += 1


@njit(cache=True, inline="always")
def tcache_get(words, memory, tcache, slot):
    """glibc tcache_get: the chunk in front of a non-empty bin; with checks, an unaligned chunk is
    'malloc(): unaligned tcache chunk detected' and one outside the heap a SIGSEGV (a negative status)."""
    chunk = tcache[slot]
    if words[S_CHECKS] != 0:
        if chunk & 15 != 0:
            return detected(D_TCACHE_UNALIGNED)
        if not readable(words, memory, chunk, 8 * (W_BK + 1)):
            return detected(D_SEGV)
        tcache[slot] = protect(chunk + 8 * W_FD, memory[(chunk >> 3) + W_FD])
        memory[(chunk >> 3) + W_BK] = 0
    else:
        tcache[slot] = memory[(chunk >> 3) + W_FD]
    tcache[slot + 1] -= 1
    return chunk
