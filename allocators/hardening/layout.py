"""The hardening layer's state: its scalar words, the out-of-line block records, and where a block's parts lie.

Design.  A hardened allocator's state is the base allocator's tuple followed
by the layer's arrays (`LAYER_ARRAYS`), so `state[0]` is still the base's
counter words and every base accessor keeps working; the layer's kernels hand
the base kernels `state[:BASE_LEN]`.

- `hw` (int64): the layer's scalars, at the `H_*` slots: the options, the
  keys, the random stream, the holding areas' cursors and the block count.
- `meta` (int64, one record per 8 B of the address space, np.zeros: only
  pages where blocks start are touched): the out-of-line record of each
  address, `kind | flags | granted << SIZE_SHIFT`.  Kinds: `K_LIVE` (a live
  block starts here), `K_HELD` (a freed block held in the quarantine or the
  random array), `K_FREED` (a block that started here went back to the base),
  `K_GUARD` (a poisoned guard-page word).  Flags: `F_LARGE` (the block has
  guard pages), `F_LINK` (this word holds an encoded link the layer wrote).
  The layer always knows the live block starts from it: nothing else ever
  reaches the base's free_block.  With `slot_state` on it is also the
  mechanism (hardened_malloc's slab bitmaps), and counted as metadata.
- `memory` (uint64, one word per 8 B of the address space, np.zeros; one word
  when no mechanism needs it): the simulated bytes the layer reads back:
  headers, canaries, zeroed blocks, encoded links, and whatever faults wrote.
- the holding areas (`allocators.hardening.holding`): the quarantine ring
  and the random array (addresses and usable sizes), and `hints`, held
  blocks per bit length of their usable size.

A block as the layer asks the base for it (`base_request`), from the base's
address B:

    small:  [B, B + PREFIX) header area, user block, canary  (PREFIX = 16 with checksum: the header word is the
            8 B just before the user block, as Scudo's; SUFFIX = 8 with canary)
    large:  [B, B + GUARD_BYTES) guard, header area, user block rounded to 16 B, canary, [E, E + GUARD_BYTES) guard

The user block starts at `B + offset` (fixed per layout, so the base address
is never stored); its usable size is what the base granted minus the
layer's bytes (small), or the request rounded up to 16 B (large: right-aligned
against the trailing guard page at 16 B, as Scudo's secondary).
"""

from __future__ import annotations

import numpy as np

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

GRANULE_SHIFT = 3
#: Bytes of one guard page (the poisoned range before and after a large block).
GUARD_BYTES = 4096
HEADER_AREA = 16
CANARY_BYTES = 8

# meta record: kind (3 bits), flags, granted bytes << SIZE_SHIFT
K_NONE, K_LIVE, K_HELD, K_FREED, K_GUARD = 0, 1, 2, 3, 4
KIND_MASK = 7
F_LARGE = 8
F_LINK = 16
SIZE_SHIFT = 8

# hw slots: options first (set once), then the running scalars
H_SLOT_STATE, H_CHECKSUM, H_CANARY, H_ZERO, H_LINKS, H_GUARDS = 0, 1, 2, 3, 4, 5
H_GUARD_THRESHOLD, H_QUARANTINE, H_SHUFFLE, H_PREFIX, H_SUFFIX, H_CAPACITY = 6, 7, 8, 9, 10, 11
H_KEY_SUM, H_KEY_CANARY, H_KEY_LINK0, H_KEY_LINK1, H_MEMORY_ON, H_BLOCK_BYTES = 12, 13, 14, 15, 16, 17
H_RNG, H_Q_HEAD, H_Q_LEN, H_R_COUNT, H_HELD = 18, 19, 20, 21, 22
H_BLOCKS, H_METADATA, H_LAST_FREED, H_HIGH = 23, 24, 25, 26
H_RECYCLED, H_REUSED, H_FIXED_BLOCKS = 27, 28, 29
N_HW = 32

#: The holding areas' hint counts: one per bit length of a usable size.
HINT_BUCKETS = 64
#: The layer's arrays, in state order after the base's.
LAYER_ARRAYS = ("hw", "meta", "memory", "q_addr", "q_granted", "r_addr", "r_granted", "hints")
#: Modelled bytes of one slot-state entry (hardened_malloc: a bit in the slab bitmap and one in the
#: quarantine bitmap, rounded up to a byte) and of one holding-area entry (an address).
SLOT_STATE_BYTES = 1
HOLDING_ENTRY_BYTES = 8

#: The layer's records and memory cover at most this much of the address space (8 B of each per 8 B): a block
#: the base places beyond it is refused as out of memory (a 1 TiB request in a pool of 1 TiB blocks).
COVERED_LIMIT = 1 << 30

MASK64 = (1 << 64) - 1


def _splitmix(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def prefix_bytes(checksum: bool) -> int:
    return HEADER_AREA if checksum else 0


def suffix_bytes(canary: bool) -> int:
    return CANARY_BYTES if canary else 0


def base_request_py(size: int, checksum: bool, canary: bool, guards: bool, threshold: int) -> int:
    """What the layer asks the base for, for a request of `size` bytes (the kernel's `base_request`)."""
    body = (size + 15) // 16 * 16 + prefix_bytes(checksum) + suffix_bytes(canary)
    if guards and size >= threshold:
        body += 2 * GUARD_BYTES
    return (body + 15) // 16 * 16


def make_layer_state(options, capacity: int, fixed_blocks: bool) -> tuple[np.ndarray, ...]:
    """The layer's arrays for a fresh heap over `capacity` bytes (`options`: hardening.options.Options;
    fixed_blocks: the base hands out blocks of one size, any held block fits any request)."""
    hw = np.zeros(N_HW, np.int64)
    hw[H_FIXED_BLOCKS] = fixed_blocks
    hw[H_SLOT_STATE] = options.slot_state
    hw[H_CHECKSUM] = options.checksum
    hw[H_CANARY] = options.canary
    hw[H_ZERO] = options.zero_on_free
    hw[H_LINKS] = options.encode_links
    hw[H_GUARDS] = options.guard_pages
    hw[H_GUARD_THRESHOLD] = options.guard_threshold
    hw[H_QUARANTINE] = options.quarantine
    hw[H_SHUFFLE] = options.shuffle
    hw[H_PREFIX] = prefix_bytes(options.checksum)
    hw[H_SUFFIX] = suffix_bytes(options.canary)
    capacity = min(capacity, COVERED_LIMIT)
    hw[H_CAPACITY] = capacity
    keys = [_splitmix(options.seed * 8 + index + 1) for index in range(5)]
    hw[H_KEY_SUM], hw[H_KEY_CANARY], hw[H_KEY_LINK0], hw[H_KEY_LINK1], hw[H_RNG] = (_signed(k) for k in keys)
    if hw[H_RNG] == 0:
        hw[H_RNG] = 1
    hw[H_MEMORY_ON] = options.needs_memory
    hw[H_BLOCK_BYTES] = (prefix_bytes(options.checksum) // 2 + suffix_bytes(options.canary)
                         + SLOT_STATE_BYTES * options.slot_state)
    hw[H_LAST_FREED] = 0
    granules = (capacity >> GRANULE_SHIFT) + 1
    meta = np.zeros(granules, np.int64)
    memory = np.zeros(granules if options.needs_memory else 1, np.uint64)
    quarantine = max(options.quarantine, 1)
    shuffle = max(options.shuffle, 1)
    return (
        hw, meta, memory,
        np.full(quarantine, -1, np.int64), np.zeros(quarantine, np.int64),
        np.full(shuffle, -1, np.int64), np.zeros(shuffle, np.int64),
        np.zeros(HINT_BUCKETS, np.int64),
    )
