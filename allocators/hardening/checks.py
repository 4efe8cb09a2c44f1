"""The checks of the hardening mechanisms, over the layer's simulated memory and block records.

Design.  Each mechanism writes its word(s) when a block is handed out or
freed, and reads them back at the next point the real allocator would:

- header (`checksum`): written ALLOCATED when the block is handed out,
  QUARANTINED when it is held, AVAILABLE when it goes back to the base; read
  at every free and recycle: a failing checksum is "corrupted chunk header"
  (D_HEADER_CHECKSUM), a valid one in the wrong state "invalid chunk state"
  (D_HEADER_STATE), as Scudo's `deallocate`.
- canary (`canary`): written after the usable bytes at hand-out, read at free:
  "canary corrupted" (D_CANARY).  An overflow within the slack (granted minus
  requested) never reaches it.
- zero on free (`zero_on_free`): the usable words are zeroed at free (cost
  proportional to the size, as hardened_malloc's) and scanned when the block
  is handed out again or recycled from the quarantine: a non-zero word is
  "detected write after free" (D_WRITE_AFTER_FREE).  Words that hold one of
  the layer's encoded links (`F_LINK` records) are the link check's, and
  skipped.  With zeroing on, a block going back to the base also has its
  header and canary words cleared, so memory outside held blocks reads zero.
- encoded link (`encode_links`): at free the block's first word gets the
  encoded address of the block freed before it (the free list's next), and
  the word's record `F_LINK`; when a block with such a record is handed out
  or recycled, the word must decode to a heap address: "corrupted free list
  entry" (D_FREE_LIST_ENTRY).  Any write of the layer over a word clears its
  record, so a link overwritten by a header of another layout is never read
  as a link.
- guard pages (`guard_pages`): `poison` marks the words of a guard range
  `K_GUARD`; `allocators.hardening.kernels.write_bytes` stops at the first
  one with SIGSEGV (D_SEGV).

Every read goes through `load`, which reads words outside [0, capacity) as
zeros (foreign memory), so no check reads outside the arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.detections import (
    D_CANARY,
    D_FREE_LIST_ENTRY,
    D_HEADER_CHECKSUM,
    D_HEADER_STATE,
    D_WRITE_AFTER_FREE,
    detected,
)
from allocators.hardening.keys import (
    HS_QUARANTINED,
    canary_value,
    encode_link,
    header_status,
    link_is_valid,
    make_header,
)
from allocators.hardening.layout import (
    F_LINK,
    GRANULE_SHIFT,
    H_CAPACITY,
    H_CHECKSUM,
    H_HIGH,
    H_KEY_CANARY,
    H_KEY_LINK0,
    H_KEY_LINK1,
    H_KEY_SUM,
    H_LAST_FREED,
    H_LINKS,
    H_MEMORY_ON,
    K_FREED,
    K_GUARD,
    K_HELD,
    K_NONE,
    KIND_MASK,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

ZERO = np.uint64(0)


@njit(cache=True, inline="always")
def load(hw, memory, addr):
    """The simulated word at addr (8-aligned down); 0 outside the heap or without simulated memory."""
    if hw[H_MEMORY_ON] == 0 or addr < 0 or addr >= hw[H_CAPACITY]:
        return ZERO
    return memory[addr >> GRANULE_SHIFT]


@njit(cache=True, inline="always")
def store(hw, meta, memory, addr, value):
    """The layer writes one of its words (the word's record no longer says it holds a link)."""
    index = addr >> GRANULE_SHIFT
    memory[index] = value
    if meta[index] & KIND_MASK != K_GUARD:
        meta[index] &= ~np.int64(F_LINK)
    if index >= hw[H_HIGH]:
        hw[H_HIGH] = index + 1


# ---------------------------------------------------------------- header
@njit(cache=True, inline="always")
def write_header(hw, meta, memory, user, granted, state):
    store(hw, meta, memory, user - 8, make_header(hw[H_KEY_SUM], user, granted, state))
    meta[(user - 8) >> GRANULE_SHIFT] = K_NONE


@njit(cache=True, inline="always")
def header_check(hw, memory, user, want):
    """0 if the header before `user` has a valid checksum and state `want`; else the detection status."""
    state = header_status(hw[H_KEY_SUM], user, load(hw, memory, user - 8))
    if state < 0:
        return detected(D_HEADER_CHECKSUM)
    if state != want:
        return detected(D_HEADER_STATE)
    return 0


# ---------------------------------------------------------------- canary
@njit(cache=True, inline="always")
def write_canary(hw, meta, memory, user, granted):
    store(hw, meta, memory, user + granted, canary_value(hw[H_KEY_CANARY], user))
    meta[(user + granted) >> GRANULE_SHIFT] = K_NONE


@njit(cache=True, inline="always")
def canary_check(hw, memory, user, granted):
    if load(hw, memory, user + granted) != canary_value(hw[H_KEY_CANARY], user):
        return detected(D_CANARY)
    return 0


# ---------------------------------------------------------- zero on free
@njit(cache=True)
def zero_block(hw, memory, user, granted):
    """Zero the usable words of a freed block (the cost scales with the size)."""
    first = user >> GRANULE_SHIFT
    memory[first : first + (granted >> GRANULE_SHIFT)] = ZERO


@njit(cache=True)
def zero_check(hw, meta, memory, user, granted):
    """0 if every usable word of the block is still zero (link words excepted); else D_WRITE_AFTER_FREE."""
    first = user >> GRANULE_SHIFT
    links = hw[H_LINKS] != 0
    for index in range(first, first + (granted >> GRANULE_SHIFT)):
        if memory[index] != ZERO and not (links and meta[index] & F_LINK != 0):
            return detected(D_WRITE_AFTER_FREE)
    return 0


# --------------------------------------------------------- encoded links
@njit(cache=True, inline="always")
def write_link(hw, meta, memory, user):
    store(hw, meta, memory, user, encode_link(hw[H_KEY_LINK0], hw[H_KEY_LINK1], hw[H_LAST_FREED]))
    meta[user >> GRANULE_SHIFT] |= F_LINK
    hw[H_LAST_FREED] = user


@njit(cache=True, inline="always")
def link_check(hw, meta, memory, user):
    """0 unless the block's record says its first word is a link and the word does not decode."""
    record = meta[user >> GRANULE_SHIFT]
    kind = record & KIND_MASK
    if record & F_LINK == 0 or (kind != K_FREED and kind != K_HELD):
        return 0
    if not link_is_valid(hw[H_KEY_LINK0], hw[H_KEY_LINK1], load(hw, memory, user), hw[H_CAPACITY]):
        return detected(D_FREE_LIST_ENTRY)
    return 0


# ------------------------------------------------------------ guard pages
@njit(cache=True)
def poison(meta, start, nbytes):
    """Mark the words of [start, start + nbytes) as guard-page words (a link flag is kept)."""
    first = start >> GRANULE_SHIFT
    for index in range(first, first + (nbytes >> GRANULE_SHIFT)):
        meta[index] = (meta[index] & F_LINK) | K_GUARD


@njit(cache=True)
def unpoison(meta, start, nbytes):
    first = start >> GRANULE_SHIFT
    for index in range(first, first + (nbytes >> GRANULE_SHIFT)):
        meta[index] &= F_LINK


# --------------------------------------------------- checks at recycling
@njit(cache=True)
def recycle_checks(hw, meta, memory, user, granted, zeroing):
    """The checks of a held block leaving the quarantine or random array: link, zeroing, header state."""
    if hw[H_LINKS] != 0:
        status = link_check(hw, meta, memory, user)
        if status < 0:
            return status
    if zeroing:
        status = zero_check(hw, meta, memory, user, granted)
        if status < 0:
            return status
    if hw[H_CHECKSUM] != 0:
        from_header = header_check(hw, memory, user, HS_QUARANTINED)
        if from_header < 0:
            return from_header
    return 0
