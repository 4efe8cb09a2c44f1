"""The tcmalloc model's state layout: its constants, the named slots of `words`, the class columns, the state tuple.

`allocators.tcmalloc` (design docstring, slow paths, hot path, shell) reads the state through these
names; the shared pieces it is built from (page heap, central lists, transfer cache, thread caches)
keep their own regions, whose sizes fix where ours start.
"""

from __future__ import annotations

from allocators.shared.central import central_slots
from allocators.shared.pageheap import PH_SLOTS
from allocators.shared.tcmalloc_sizeclasses import MAX_SIZE, PAGE_SHIFT
from allocators.shared.transfercache import transfer_slots
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

PAGE_SIZE = 1 << PAGE_SHIFT

#: gperftools common.h (8 KiB pages).
STEAL_AMOUNT = 64 << 10  # kStealAmount
MIN_THREAD_CACHE_SIZE = 2 * MAX_SIZE  # kMinThreadCacheSize = 512 KiB
DEFAULT_OVERALL_THREAD_CACHE = 32 << 20  # kDefaultOverallThreadCacheSize = 8 x 4 MiB
STEAL_TRIES = 10
DEFAULT_GROW_BYTES = 1 << 20  # kMinSystemAlloc
RESERVE_BYTES = 1 << 30  # kMinMmapAlloc

#: Metadata model (bytes).
SPAN_BYTES = 48
PAGEMAP_ENTRY_BYTES = 8
THREAD_CACHE_HEADER_BYTES = 64
FREE_LIST_BYTES = 24
CENTRAL_LIST_BYTES = 64
TRANSFER_ENTRY_BYTES = 16
TRANSFER_ENTRIES = 64

# ----------------------------------------------------------- words layout
C_ALLOCS, C_FREES, C_TC_HITS, C_TC_MISSES = 0, 1, 2, 3
C_CENTRAL_FETCHES, C_CENTRAL_RELEASES, C_TRANSFER_HITS, C_TRANSFER_INSERTS = 4, 5, 6, 7
C_SPANS_ALLOCATED, C_SPANS_RELEASED, C_LARGE_ALLOCS, C_LARGE_FREES = 8, 9, 10, 11
C_LIST_OVERFLOWS, C_SCAVENGES, C_REALLOCS_IN_PLACE = 12, 13, 14
OWN_COUNTERS = (
    "allocs", "frees", "thread_cache_hits", "thread_cache_misses",
    "central_fetches", "central_releases", "transfer_hits", "transfer_inserts",
    "spans_allocated", "spans_released", "large_allocs", "large_frees",
    "list_overflows", "scavenges", "reallocs_in_place",
)
PH = len(OWN_COUNTERS)  # the page heap's region: its counters extend ours
S_BASE = PH + PH_SLOTS
S_N_CLASSES = S_BASE + 0
S_N_THREADS = S_BASE + 1
S_METADATA = S_BASE + 2  # thread caches + static middle end (the page heap keeps its own)
S_STATIC_METADATA = S_BASE + 3
S_UNCLAIMED = S_BASE + 4  # unclaimed thread-cache budget (may go negative, as in gperftools)
S_NEXT_STEAL = S_BASE + 5
S_OVERALL = S_BASE + 6
S_THREADS_ACTIVE = S_BASE + 7
S_THREAD_BYTES = S_BASE + 8  # metadata of one thread cache
S_XB = S_BASE + 9  # where the transfer-cache counts start (after the central lists)
CB = S_BASE + 16  # central lists: central_slots(n_classes) words


def transfer_base(n_classes: int) -> int:
    return CB + central_slots(n_classes)


def n_words(n_classes: int) -> int:
    return transfer_base(n_classes) + transfer_slots(n_classes)


# classes[] columns
K_SIZE, K_PAGES, K_BATCH, K_NOBJ = 0, 1, 2, 3
K_STRIDE = 4

# state tuple indices
I_WORDS, I_CLASS_INDEX, I_CLASSES, I_LISTS, I_LINKS, I_SLOTS = 0, 1, 2, 3, 4, 5
I_SPANS, I_PAGEMAP, I_RUN_HEADS, I_RUN_BITS, I_RUN_TREE, I_BITS = 6, 7, 8, 9, 10, 11
