"""Handing a block out and taking it back: the layer's side of alloc and free, without the base's kernels.

Design.  `hand_out` turns the base's block (address B, granted G) into the
user's: it places the user block (`layout`: B + the header area, or after the
leading guard page for a large block), checks the memory being reused
(`reuse_checks`: the encoded link, the zeroing) and writes the block's words
(`go_live`: header ALLOCATED, canary, guard pages, the LIVE record).
`hand_out_held` does the same for a block taken back from the holding areas
(its checks are the recycle checks).  On free, `free_checks` verifies the
header and the canary of a live block, `retire` zeroes it and writes its
link, and `reject` says what the mechanisms make of a pointer that is not a
live block start: slot state first (hardened_malloc's bitmaps: "double free"
for a held or freed block start, else "invalid free"), then the header
checksum (Scudo: the 8 bytes before the pointer read as a header), else
ST_CORRUPTED (the real allocator would corrupt itself; the model stops, and
nothing reaches the base).

Hot path: `hand_out`, `go_live`, `free_checks` and `retire` are inlined
into the replay loop and each mechanism costs one flag test when off; the
rest (`reject`, `hand_out_held`, the zero scans, guard poisoning) is out of
line.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from allocators.detections import (
    D_HEADER_CHECKSUM,
    D_HEADER_STATE,
    D_MISALIGNED,
    D_SLOT_DOUBLE_FREE,
    D_SLOT_INVALID_FREE,
    ST_CORRUPTED,
    detected,
)
from allocators.hardening.checks import (
    canary_check,
    header_check,
    link_check,
    load,
    poison,
    recycle_checks,
    write_canary,
    write_header,
    write_link,
    zero_block,
    zero_check,
)
from allocators.hardening.keys import HS_ALLOCATED, header_status
from allocators.hardening.layout import (
    F_LARGE,
    GRANULE_SHIFT,
    GUARD_BYTES,
    H_BLOCKS,
    H_CANARY,
    H_CAPACITY,
    H_CHECKSUM,
    H_HIGH,
    H_KEY_SUM,
    H_LINKS,
    H_PREFIX,
    H_REUSED,
    H_SLOT_STATE,
    H_SUFFIX,
    H_ZERO,
    K_FREED,
    K_HELD,
    K_LIVE,
    KIND_MASK,
    SIZE_SHIFT,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True, inline="always")
def base_request(hw, size, large):
    """Bytes the layer asks the base for (`layout.base_request_py`)."""
    body = ((size + 15) & -16) + hw[H_PREFIX] + hw[H_SUFFIX]
    if large:
        body += 2 * GUARD_BYTES
    return (body + 15) & -16


@njit(cache=True, inline="always")
def base_address(hw, user, record):
    """The base's address of the block the layer placed at `user`."""
    if record & F_LARGE:
        return user - hw[H_PREFIX] - GUARD_BYTES
    return user - hw[H_PREFIX]


@njit(cache=True)
def guard_block(hw, meta, user, granted):
    """Poison the guard pages of a large block."""
    poison(meta, user - hw[H_PREFIX] - GUARD_BYTES, GUARD_BYTES)
    poison(meta, user + granted + hw[H_SUFFIX], GUARD_BYTES)


@njit(cache=True, inline="always")
def go_live(hw, meta, memory, user, granted, large, guards_set):
    """Write a block's words as it is handed out: header, canary, guard pages, its LIVE record."""
    if hw[H_CHECKSUM] != 0:
        write_header(hw, meta, memory, user, granted, HS_ALLOCATED)
    if hw[H_CANARY] != 0:
        write_canary(hw, meta, memory, user, granted)
    record = K_LIVE | (granted << SIZE_SHIFT)
    end = user + granted + hw[H_SUFFIX]
    if large:
        record |= F_LARGE
        end += GUARD_BYTES
        if not guards_set:
            guard_block(hw, meta, user, granted)
    meta[user >> GRANULE_SHIFT] = record
    end = (end >> GRANULE_SHIFT) + 1
    if end > hw[H_HIGH]:
        hw[H_HIGH] = end


@njit(cache=True, inline="always")
def reuse_checks(hw, meta, memory, user, granted):
    """Checks of memory the base hands out again: the encoded link left at its start, its zeroing."""
    if hw[H_LINKS] != 0:
        status = link_check(hw, meta, memory, user)
        if status < 0:
            return status
    if hw[H_ZERO] != 0:
        return zero_check(hw, meta, memory, user, granted)
    return 0


@njit(cache=True, inline="always")
def hand_out(hw, meta, memory, base_addr, base_granted, size, large):
    """The user's (address, granted) for the base's block, after the reuse checks; (status, 0) if one fires."""
    if large:
        user = base_addr + GUARD_BYTES + hw[H_PREFIX]
        granted = (size + 15) & -16
    else:
        user = base_addr + hw[H_PREFIX]
        granted = (base_granted - hw[H_PREFIX] - hw[H_SUFFIX]) & -8
    status = reuse_checks(hw, meta, memory, user, granted)
    if status < 0:
        return np.int64(status), np.int64(0)
    go_live(hw, meta, memory, user, granted, large, False)
    hw[H_BLOCKS] += 1
    return user, granted


@njit(cache=True)
def hand_out_held(hw, meta, memory, user):
    """A held block handed out again, after the recycle checks."""
    record = meta[user >> GRANULE_SHIFT]
    granted = record >> SIZE_SHIFT
    status = recycle_checks(hw, meta, memory, user, granted, hw[H_ZERO] != 0)
    if status < 0:
        return np.int64(status), np.int64(0)
    hw[H_REUSED] += 1
    go_live(hw, meta, memory, user, granted, record & F_LARGE != 0, True)
    return user, granted


@njit(cache=True, inline="always")
def free_checks(hw, memory, user, granted):
    """The checks at the free of a live block: its header, its canary."""
    if hw[H_CHECKSUM] != 0:
        status = header_check(hw, memory, user, HS_ALLOCATED)
        if status < 0:
            return status
    if hw[H_CANARY] != 0:
        return canary_check(hw, memory, user, granted)
    return 0


@njit(cache=True, inline="always")
def retire(hw, meta, memory, user, granted):
    """A freed block's words: zeroed (zero_on_free), then its encoded link (encode_links)."""
    if hw[H_ZERO] != 0:
        zero_block(hw, memory, user, granted)
    if hw[H_LINKS] != 0:
        write_link(hw, meta, memory, user)


@njit(cache=True)
def reject(hw, meta, memory, addr):
    """The status of a free of `addr`, which is not a live block start (see the module docstring)."""
    inside = addr >= 0 and addr < hw[H_CAPACITY]
    if hw[H_SLOT_STATE] != 0:
        if inside and addr & 7 == 0:
            kind = meta[addr >> GRANULE_SHIFT] & KIND_MASK
            if kind == K_HELD or kind == K_FREED:
                return detected(D_SLOT_DOUBLE_FREE)
        return detected(D_SLOT_INVALID_FREE)
    if hw[H_CHECKSUM] != 0:
        if addr & 15 != 0:  # Scudo checks the alignment before it reads the header
            return detected(D_MISALIGNED)
        state = header_status(hw[H_KEY_SUM], addr, load(hw, memory, addr - 8))
        if state < 0:
            return detected(D_HEADER_CHECKSUM)
        if state != HS_ALLOCATED:
            return detected(D_HEADER_STATE)
    return ST_CORRUPTED
