"""freelist: a malloc-style allocator with boundary tags (K&R / dlmalloc / glibc ptmalloc2 family).

Design.  The heap is a run of *chunks* laid back to back from address 0 up to
the break (`brk`), followed by nothing: the last chunk is always the *top*
chunk (the "wilderness"), which is never on a free list.  Chunks are modelled
exactly where glibc keeps them, in a simulated memory of 8-byte words
(`memory[addr >> 3]`): a chunk starts with its prev_size word (the previous
chunk's footer, valid while that one is free) and its size word (size |
PREV_INUSE | IS_MMAPPED), then, while it is free, its fd/bk links (and glibc's
fd_nextsize/bk_nextsize in large bins); the words and the state layout are
in `shared.chunks`.

A chunk is in use iff the PREV_INUSE bit of the *next* chunk is set, so
freeing is O(1) boundary-tag coalescing: merge backward if our PREV_INUSE is
clear (the previous chunk starts `prev_size` bytes before us), forward if the
next chunk is free, and into top if the next chunk is top.  Free chunks are
therefore never adjacent.  Allocation rounds the request to a chunk size
`nb = max(min_chunk, round_up(request + header, granularity))`, picks a free
chunk by the policy below, splits off the tail as a new free chunk when it is
at least `min_chunk`, and otherwise hands out the whole chunk.  The user block
starts `user_offset = round_up(header, 16)` bytes into the chunk (16-aligned)
and its usable ("granted") size is `chunk size - header`: with glibc's
header = 8 the last 8 usable bytes are the next chunk's prev_size word, which
is only needed while this chunk is free.  When nothing fits, the chunk is cut
from the front of top; when top is too small the break grows ("sbrk") by
`round_up(nb + min_chunk + top_pad - top size, page)` bytes (os_grows),
up to the lowest mapped address, after which requests fail with
ST_OUT_OF_MEMORY.  Freeing into a top of at least `trim_threshold` bytes
gives pages back (os_trims) when the merged chunk is >= 64 KiB (glibc's rule;
0 = never trim).

Fit policies (parameters `policy`, `order`; defaults first / address): first
or next fit over an address-ordered free list (a max segment tree), a LIFO
or FIFO list; best fit over per-size lists; their searches and costs are in
`allocators.plainfit`.  bins="glibc" (preset `glibc`): ptmalloc2's bins
instead, `allocators.glibc`.  Where a freed chunk is filed for each policy
(`index_insert`/`index_remove`), the coalescing and the rest of the free
path are in `shared.chunkfree`; top, sbrk and mmap in `shared.sysmem`.  This
module holds malloc's front end (tcache, fastbins, then the policy's search,
`plainfit.malloc_plain`, or `glibc.malloc_glibc`), the replay kernels,
realloc and reset.

Thread cache (`tcache_bins` > 0): per-thread LIFO singly linked lists, one per
chunk size `min_chunk + i * granularity`, each holding at most
`tcache_count` chunks.  Cached chunks stay "in use" for the heap (no
coalescing) and are reused by the same thread in O(1): the common path of
allocate and free is a few loads and stores.  As in glibc, a thread's
`tcache_perthread_struct` (10 B per bin: a uint16 count and a pointer, 640 B
for 64 bins) is itself allocated from the heap on the thread's first call.

Fastbins (`max_fast` > 0, a chunk size): chunks of at most max_fast bytes
that a free does not put in a tcache go on per-size LIFO singly linked lists
and stay "in use" (no coalescing).  malloc takes from them first;
malloc_consolidate (before serving a request >= 1024 B, before growing
top, and on a free that merges into >= 64 KiB) coalesces them all.

glibc preset (`freelist:glibc`): ptmalloc2 of glibc 2.30 .. 2.41 on x86-64,
one arena, with its tcache, fastbins, bins, top pad, trim and mmap
thresholds; its design, and how it was checked against the real glibc
(the same address for every allocation), are in `allocators.glibc`.

Checks (`checks`, true in the glibc preset, bins=glibc only): glibc 2.36's
integrity checks, `shared.chunkchecks`: tcache and fastbin links are
safe-linked (PROTECT_PTR), a tcache'd chunk carries the tcache key in its
second word, and free, malloc, realloc and malloc_consolidate test the
chunk words glibc tests, in its order, returning a detection status with
glibc's message (`allocators.detections`) where glibc aborts.  They cost
10-30 % of the replay speed (README "Safety").  The safety kernels (`free_checked`,
`write_bytes`) let a safety replay free any pointer and write into the
simulated memory (`allocators.faultreplay`).

mmapped region (`mmap_threshold` > 0): a request of at least the threshold
that top cannot serve gets a mapping of its own, placed top-down below
`capacity` (Linux's layout, never into the heap) in the holes of a second
max tree; footprint = brk + bytes currently mapped (+ bytes of mappings
released by free(), which later mappings use first); `shared.sysmem`.

realloc (replay REALLOC rows) is glibc's (`realloc_in_place` does all of
it): a smaller size keeps the chunk and frees the tail if it is at least
min_chunk; a larger one takes the free chunk after it or extends into top,
else _int_malloc (without a tcache lookup) gives a new chunk and the old one
is freed; a mapped chunk is remapped (mremap: in place when the pages above
are free, else moved) and stays mapped.  free() (reset) makes the whole
heap one top chunk again, clears the free index, fastbins and tcaches (the tcache
structs are allocated again on next use) and keeps the break.

metadata_bytes = header bytes of every chunk in use or held in a tcache or fastbin
+ user_offset bytes per mapped chunk + the per-thread tcache structs + the
arena (2200 B, sizeof(struct malloc_state) on x86-64, with bins=glibc;
16 B, a list head and top pointer, otherwise).  The max tree and bitset
that stand in for list walks are modelling aids and are not counted.

State (slots I_* of `shared.chunks`): `words` (counters, then the hot
scalars: footprint, metadata, top, brk, mapped region, parameters, the glibc
binmap, last remainder, rover), `memory` (the words of the simulated address
space, plus the bin headers of the arena just past `capacity`), `tcache` (per
thread: initialised flag, then (head, count) per bin), `tree`
(address-ordered policies), `sizebits` and `sizeheads` (best fit), `maptree`
(mmap holes).  Arrays proportional to the capacity are np.zeros: only pages
the heap touches cost memory (about 1 byte of virtual memory per byte of
capacity, 2 with the address tree, 1.5 with best fit); capacities beyond the
machine's memory are refused (BadParameter).

Cost per operation: tcache or fastbin hit O(1); free O(1) plus the index
insert/remove of the policy (O(1) lists and glibc bins, O(log) tree and size
bitset), plus the occasional malloc_consolidate (O(fastbin chunks)); malloc
on a tcache miss: the policy's search above, or glibc's (`allocators.glibc`).
Counters: search_steps counts chunks examined plus one per index query.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocators.chunkheap import (
    SAFETY_KERNELS,
    alloc_block,
    free_block,
    heap_stats,
    init_arena,
    realloc_in_place,
    reset_state,
    walk_heap,
)
from allocators.errors import BadParameter
from allocators.glibc import MALLOC_STATE_BYTES
from allocators.hardening import HARDENING_OFF, HARDENING_PRESETS, harden, with_hardening
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import is_power_of_two
from allocators.shared.bitset import new_bitset
from allocators.shared.chunks import (
    BIN_STRIDE,
    COUNTER_NAMES,
    I_MAPTREE,
    I_MEMORY,
    I_SIZEBITS,
    I_SIZEHEADS,
    I_TCACHE,
    I_TREE,
    I_WORDS,
    IS_MMAPPED,
    MODE_GLIBC,
    MODE_LIST,
    MODE_SIZES,
    MODE_TREE,
    N_STATE,
    N_WORDS,
    NFASTBINS,
    NIL,
    ORDER_ADDRESS,
    ORDER_FIFO,
    ORDER_LIFO,
    PREV_INUSE,
    S_ARENA,
    S_BRK,
    S_CHECKS,
    S_FASTBINS,
    S_FIXED_METADATA,
    S_GRAN,
    S_GRAN_SHIFT,
    S_HEADER,
    S_HEAP_LIMIT,
    S_MAP_TOP,
    S_MAPPED,
    S_MAX_FAST,
    S_METADATA,
    S_MIN_CHUNK,
    S_MMAP_DYNAMIC,
    S_MMAP_THRESHOLD,
    S_MMAP_THRESHOLD_MAX,
    S_MODE,
    S_NEXT_FIT,
    S_ORDER,
    S_PAGE,
    S_PAGE_SHIFT,
    S_TC_BINS,
    S_TC_COUNT,
    S_TC_STRIDE,
    S_TC_STRUCT_BYTES,
    S_TOP,
    S_TOP_PAD,
    S_TRIM_THRESHOLD,
    S_USER_OFFSET,
    SIZE_MASK,
    W_SIZE,
)
from allocators.shared.glibc_bins import MIN_LARGE_SIZE, NBINS
from allocators.shared.maxtree import new_tree
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ALIGNMENT = 16

#: The `order` parameter's values and their codes in words[S_ORDER].
ORDER_CODES = {"lifo": ORDER_LIFO, "fifo": ORDER_FIFO, "address": ORDER_ADDRESS}
ORDERS = tuple(ORDER_CODES)
POLICIES = ("first", "next", "best")
BINS = ("none", "glibc")

#: The arena without bins=glibc: a list head and a top pointer.
PLAIN_ARENA_BYTES = 16
#: Per tcache bin in tcache_perthread_struct (glibc >= 2.30): uint16 count + entry pointer.
TCACHE_BYTES_PER_BIN = 10


@register
class Freelist(Allocator):
    """See the module docstring."""

    name = "freelist"
    summary = "malloc-style boundary-tag chunks: first/next/best fit, split, coalesce, top chunk; glibc preset"
    alignment = ALIGNMENT
    counter_names = COUNTER_NAMES
    #: One arena: every malloc/free that the per-thread tcache does not absorb takes the arena lock.
    shared_counters = ("arena_lock_ops",)

    def counters(self) -> dict[str, int]:
        found = super().counters()
        found["arena_lock_ops"] = (
            found["allocs"] + found["frees"] - found["tcache_hits"] - found["tcache_puts"]
        )
        return found
    defaults = with_hardening({
        "policy": "first", "order": "address", "bins": "none",
        "granularity": 16, "min_chunk": 32, "header": 8,
        "tcache_bins": 0, "tcache_count": 7, "max_fast": 0,
        "top_pad": 0, "trim_threshold": 0,
        "mmap_threshold": 0, "mmap_dynamic": False, "mmap_threshold_max": 32 << 20,
        "page": 4096, "checks": False,
    })
    presets = {
        "glibc": {
            "policy": "best", "order": "fifo", "bins": "glibc",
            "granularity": 16, "min_chunk": 32, "header": 8,
            "tcache_bins": 64, "tcache_count": 7, "max_fast": 128,
            "top_pad": 128 << 10, "trim_threshold": 128 << 10,
            "mmap_threshold": 128 << 10, "mmap_dynamic": True, "mmap_threshold_max": 32 << 20,
            "page": 4096, "checks": True,
        },
        **HARDENING_PRESETS,  # on the default policy (first fit, address order)
    }
    configure_instance = harden
    variants = ("policy=best", "policy=next,order=lifo", "order=fifo,tcache_bins=64,max_fast=128",
                "policy=best,order=address,mmap_threshold=131072,trim_threshold=131072")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)
    hardening_params = {"checks": False, **HARDENING_OFF}

    # ---------------------------------------------------------------- params
    def check_params(self) -> None:
        p = self.params
        for key, allowed in (("policy", POLICIES), ("order", ORDERS), ("bins", BINS)):
            if p[key] not in allowed:
                raise BadParameter(f"freelist: {key} must be one of {', '.join(allowed)}, got {p[key]!r}")
        for key in ("granularity", "min_chunk", "header", "tcache_bins", "tcache_count", "max_fast", "top_pad",
                    "trim_threshold", "mmap_threshold", "mmap_threshold_max", "page"):
            value = p[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise BadParameter(f"freelist: {key} must be a non-negative integer, got {value!r}")
            p[key] = int(value)
        if not isinstance(p["mmap_dynamic"], (bool, np.bool_)) and p["mmap_dynamic"] not in (0, 1):
            raise BadParameter(f"freelist: mmap_dynamic must be true or false, got {p['mmap_dynamic']!r}")
        p["mmap_dynamic"] = bool(p["mmap_dynamic"])
        if not isinstance(p["checks"], (bool, np.bool_)) and p["checks"] not in (0, 1):
            raise BadParameter(f"freelist: checks must be true or false, got {p['checks']!r}")
        p["checks"] = bool(p["checks"])
        granularity = p["granularity"]
        if not is_power_of_two(granularity) or not 16 <= granularity <= 4096:
            raise BadParameter(f"freelist: granularity must be a power of two in 16..4096, got {granularity}")
        min_chunk = p["min_chunk"]
        if min_chunk < 32 or min_chunk % granularity or min_chunk > 1 << 20:
            raise BadParameter(
                f"freelist: min_chunk must be a multiple of granularity ({granularity}) in 32..1 MiB "
                f"(a free chunk holds a header and two links), got {min_chunk}"
            )
        if p["header"] > 64 or p["header"] >= min_chunk:
            raise BadParameter(f"freelist: header must be in 0..64 and below min_chunk, got {p['header']}")
        if p["tcache_bins"] > 1024:
            raise BadParameter(f"freelist: tcache_bins must be in 0..1024, got {p['tcache_bins']}")
        if not 1 <= p["tcache_count"] <= 65535:
            raise BadParameter(f"freelist: tcache_count must be in 1..65535, got {p['tcache_count']}")
        largest_fast = min_chunk + (NFASTBINS - 1) * granularity
        if p["max_fast"] and not min_chunk <= p["max_fast"] <= largest_fast:
            raise BadParameter(
                f"freelist: max_fast must be 0 (no fastbins) or a chunk size in {min_chunk}..{largest_fast}, "
                f"got {p['max_fast']}"
            )
        page = p["page"]
        if not is_power_of_two(page) or not max(1024, granularity) <= page <= 1 << 30:
            raise BadParameter(f"freelist: page must be a power of two in max(1024, granularity)..1 GiB, got {page}")
        if p["bins"] == "glibc":
            if p["policy"] != "best" or p["order"] != "fifo":
                raise BadParameter(
                    "freelist: bins=glibc fixes the fit (best fit, fifo within a size): "
                    f"policy must be best and order fifo, got policy={p['policy']}, order={p['order']}"
                )
            if granularity != 16 or min_chunk >= MIN_LARGE_SIZE:
                raise BadParameter(
                    f"freelist: bins=glibc needs granularity 16 and min_chunk below {MIN_LARGE_SIZE}, "
                    f"got {granularity} and {min_chunk}"
                )
        if p["checks"] and (p["bins"] != "glibc" or p["header"] != 8):
            raise BadParameter("freelist: checks (glibc's integrity checks) need glibc's chunks: bins=glibc, header=8")
        if self.capacity < page:
            raise BadParameter(f"freelist: capacity_bytes {self.capacity} is smaller than one page ({page} B)")
        self.safety_kernels = SAFETY_KERNELS if p["checks"] else None

    def make_state(self) -> tuple:
        p = self.params
        granularity = p["granularity"]
        page = p["page"]
        map_top = self.capacity // page * page
        if p["bins"] == "glibc":
            mode = MODE_GLIBC
        elif p["policy"] == "best":
            mode = MODE_SIZES
        elif p["order"] == "address":
            mode = MODE_TREE
        else:
            mode = MODE_LIST
        arena = (self.capacity + 63) // 64 * 64 + 64
        tc_bins = p["tcache_bins"]
        stride = 2 + 2 * tc_bins
        heap_slots = map_top // granularity
        try:
            memory = np.zeros((arena + NBINS * BIN_STRIDE) // 8 + 8, np.int64)
            tree = new_tree(heap_slots if mode == MODE_TREE else 1)
            sizebits = new_bitset(heap_slots + 1 if mode == MODE_SIZES else 1)
            sizeheads = np.zeros(heap_slots + 1 if mode == MODE_SIZES else 1, np.int64)
            maptree = new_tree(map_top // page + 1 if p["mmap_threshold"] > 0 else 1)
        except MemoryError:
            raise BadParameter(
                f"freelist: capacity_bytes {self.capacity} too large for this model's address-indexed tables"
            ) from None
        tcache = np.zeros(self.max_threads * stride if tc_bins else 1, np.int64)
        words = np.zeros(N_WORDS, np.int64)
        words[S_MAP_TOP] = map_top
        words[S_HEAP_LIMIT] = map_top
        words[S_MODE] = mode
        words[S_ORDER] = ORDER_CODES[p["order"]]
        words[S_NEXT_FIT] = p["policy"] == "next"
        words[S_GRAN] = granularity
        words[S_GRAN_SHIFT] = granularity.bit_length() - 1
        words[S_MIN_CHUNK] = p["min_chunk"]
        words[S_HEADER] = p["header"]
        words[S_USER_OFFSET] = (p["header"] + 15) // 16 * 16
        words[S_TC_BINS] = tc_bins
        words[S_TC_COUNT] = p["tcache_count"]
        words[S_TC_STRIDE] = stride
        words[S_TC_STRUCT_BYTES] = TCACHE_BYTES_PER_BIN * tc_bins
        words[S_TOP_PAD] = p["top_pad"]
        words[S_TRIM_THRESHOLD] = p["trim_threshold"]
        words[S_MMAP_THRESHOLD] = p["mmap_threshold"]
        words[S_MMAP_DYNAMIC] = p["mmap_dynamic"]
        words[S_MMAP_THRESHOLD_MAX] = p["mmap_threshold_max"]
        words[S_PAGE] = page
        words[S_PAGE_SHIFT] = page.bit_length() - 1
        words[S_ARENA] = arena
        words[S_MAX_FAST] = p["max_fast"]
        words[S_CHECKS] = p["checks"]
        words[S_FASTBINS: S_FASTBINS + NFASTBINS] = NIL
        words[S_FIXED_METADATA] = MALLOC_STATE_BYTES if mode == MODE_GLIBC else PLAIN_ARENA_BYTES
        words[S_METADATA] = words[S_FIXED_METADATA]
        init_arena(words, memory)
        memory[W_SIZE] = PREV_INUSE  # top: empty, at address 0
        state: list[np.ndarray] = [words] * N_STATE
        state[I_WORDS], state[I_MEMORY], state[I_TCACHE], state[I_MAPTREE] = words, memory, tcache, maptree
        state[I_TREE], state[I_SIZEBITS], state[I_SIZEHEADS] = tree, sizebits, sizeheads
        return tuple(state)

    # ------------------------------------------------------------ inspection
    def chunk_size(self, addr: int) -> int:
        """Size of the chunk behind the user address `addr` (header and flags removed)."""
        chunk = int(addr) - int(self.state[I_WORDS][S_USER_OFFSET])
        return int(self.state[I_MEMORY][(chunk >> 3) + W_SIZE] & SIZE_MASK)

    def is_mapped(self, addr: int) -> bool:
        chunk = int(addr) - int(self.state[I_WORDS][S_USER_OFFSET])
        return bool(self.state[I_MEMORY][(chunk >> 3) + W_SIZE] & IS_MMAPPED)

    def heap_chunks(self) -> list[tuple[int, int, str]]:
        """Every chunk of the brk heap in address order: (chunk address, size, 'used' | 'free' | 'top').

        Chunks cached in a tcache count as 'used' (for the heap they are in use)."""
        limit = int(self.state[I_WORDS][S_TOP]) // int(self.params["min_chunk"]) + 2
        out = np.zeros((limit, 3), np.int64)
        count = walk_heap(self.state, out)
        names = ("used", "free", "top")
        return [(int(a), int(s), names[int(k)]) for a, s, k in out[:count]]

    @property
    def top_chunk(self) -> tuple[int, int]:
        """(address, size) of the top chunk."""
        words = self.state[I_WORDS]
        return int(words[S_TOP]), int(words[S_BRK] - words[S_TOP])

    @property
    def mmap_threshold(self) -> int:
        return int(self.state[I_WORDS][S_MMAP_THRESHOLD])

    def arena_info(self) -> dict[str, Any]:
        """brk, top, mapped bytes and the current mmap / trim thresholds."""
        words = self.state[I_WORDS]
        return {"brk": int(words[S_BRK]), "top": int(words[S_TOP]), "mapped": int(words[S_MAPPED]),
                "mmap_threshold": int(words[S_MMAP_THRESHOLD]), "trim_threshold": int(words[S_TRIM_THRESHOLD])}
