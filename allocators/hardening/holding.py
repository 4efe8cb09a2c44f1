"""Where freed blocks wait before the base allocator gets them back: the quarantine (FIFO) and the random array.

Design.  A freed block first goes into the *random array* (`shuffle`, N
entries, hardened_malloc's slab quarantine's random part): it takes a
uniformly random entry, and the block that entry held, if any, moves on.  It
then goes into the *quarantine* (`quarantine`, a ring of N entries, FIFO,
hardened_malloc's queue and Scudo's quarantine): when the ring is full the
oldest block leaves it.  A block leaving the last area that is on goes back to
the base allocator, after the recycle checks (`checks.recycle_checks`: its
link, its zeroing, its header state).

A block in the random array may also be handed out again without going
through the base (the random slot selection): a request of `size` bytes takes
a uniformly random *fitting* entry (usable size in size..2 x size + 64; any
usable size >= size for a base of fixed-size blocks, `pool`) before it asks
the base.  A block in the quarantine is never handed out: it waits until N
younger frees push it out (Scudo's and hardened_malloc's quarantines), so
the held blocks are the quarantine's memory cost in the footprint, and a
freed block's address stays out of reach of the next allocations (which is
what lets slot state see a double free that would otherwise come after
reuse).  The conformance suite knows (`Allocator.delays_reuse`).  When the
base runs out of memory, every held block goes back to it (`drain`) and the
request is tried again.

`hints` counts the held blocks per bit length of their usable size, so a
request with no fitting candidate scans nothing; a scan is otherwise
O(entries).  Entries taken from the middle of the ring leave holes (-1) that
the head skips.
"""

from __future__ import annotations

from numba import njit

from allocators.hardening.keys import next_random
from allocators.hardening.layout import (
    F_LARGE,
    GRANULE_SHIFT,
    H_FIXED_BLOCKS,
    H_HELD,
    H_Q_HEAD,
    H_Q_LEN,
    H_QUARANTINE,
    H_R_COUNT,
    H_RNG,
    H_SHUFFLE,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

EMPTY = -1


@njit(cache=True, inline="always")
def bit_length(value):
    length = 0
    while value > 0:
        value >>= 1
        length += 1
    return length


@njit(cache=True, inline="always")
def fits(meta, user, granted, size, fixed, large):
    """Whether the held block at `user` may serve the request (a large request needs a block with guard pages)."""
    if granted < size or not (fixed or granted <= 2 * size + 64):
        return False
    return (meta[user >> GRANULE_SHIFT] & F_LARGE != 0) == large


@njit(cache=True, inline="always")
def may_fit(hw, hints, size):
    """Whether any held block could fit a request of `size` bytes (by the hint counts)."""
    if hw[H_FIXED_BLOCKS] != 0:
        return True
    low, high = bit_length(size), bit_length(2 * size + 64)
    for length in range(low, high + 1):
        if hints[length] > 0:
            return True
    return False


@njit(cache=True)
def hold(hw, q_addr, q_granted, r_addr, r_granted, hints, user, granted):
    """Put a freed block into the holding areas; return the block that leaves them for the base (or -1)."""
    hints[bit_length(granted)] += 1
    hw[H_HELD] += 1
    n_random = hw[H_SHUFFLE]
    if n_random > 0:
        entry = next_random(hw, H_RNG) % n_random
        out, out_granted = r_addr[entry], r_granted[entry]
        r_addr[entry], r_granted[entry] = user, granted
        if out < 0:
            hw[H_R_COUNT] += 1
            return EMPTY
        user, granted = out, out_granted
    n_ring = hw[H_QUARANTINE]
    if n_ring > 0:
        out = EMPTY
        out_granted = 0
        while hw[H_Q_LEN] == n_ring:
            head = hw[H_Q_HEAD]
            out, out_granted = q_addr[head], q_granted[head]
            hw[H_Q_HEAD] = head + 1 if head + 1 < n_ring else 0
            hw[H_Q_LEN] -= 1
            if out >= 0:
                break
        tail = hw[H_Q_HEAD] + hw[H_Q_LEN]
        if tail >= n_ring:
            tail -= n_ring
        q_addr[tail], q_granted[tail] = user, granted
        hw[H_Q_LEN] += 1
        if out < 0:
            return EMPTY
        user, granted = out, out_granted
    hints[bit_length(granted)] -= 1
    hw[H_HELD] -= 1
    return user


@njit(cache=True)
def take(hw, meta, q_addr, q_granted, r_addr, r_granted, hints, size, large):
    """A block of the random array fitting `size`, at random, or -1 (the quarantine's blocks are not taken)."""
    if not may_fit(hw, hints, size):
        return EMPTY
    fixed = hw[H_FIXED_BLOCKS] != 0
    found = EMPTY
    n_random = hw[H_SHUFFLE]
    if n_random > 0 and hw[H_R_COUNT] > 0:
        seen = 0
        for entry in range(n_random):
            if r_addr[entry] >= 0 and fits(meta, r_addr[entry], r_granted[entry], size, fixed, large):
                seen += 1
                if next_random(hw, H_RNG) % seen == 0:
                    found = entry
        if found >= 0:
            user = r_addr[found]
            r_addr[found] = EMPTY
            hw[H_R_COUNT] -= 1
            hints[bit_length(r_granted[found])] -= 1
            hw[H_HELD] -= 1
            return user
    return EMPTY  # the quarantine hands nothing out


@njit(cache=True)
def drain_one(hw, q_addr, q_granted, r_addr, r_granted, hints):
    """Remove and return one held block (random array first, then the quarantine's oldest), or -1 if none."""
    for entry in range(hw[H_SHUFFLE]):
        if r_addr[entry] >= 0:
            user = r_addr[entry]
            r_addr[entry] = EMPTY
            hw[H_R_COUNT] -= 1
            hints[bit_length(r_granted[entry])] -= 1
            hw[H_HELD] -= 1
            return user
    n_ring = hw[H_QUARANTINE]
    while hw[H_Q_LEN] > 0:
        head = hw[H_Q_HEAD]
        user = q_addr[head]
        q_addr[head] = EMPTY
        hw[H_Q_HEAD] = head + 1 if head + 1 < n_ring else 0
        hw[H_Q_LEN] -= 1
        if user >= 0:
            hints[bit_length(q_granted[head])] -= 1
            hw[H_HELD] -= 1
            return user
    return EMPTY


@njit(cache=True)
def clear_holding(hw, q_addr, r_addr, hints):
    """free(): the base releases every block; the areas forget theirs."""
    q_addr[:] = EMPTY
    r_addr[:] = EMPTY
    hints[:] = 0
    hw[H_Q_HEAD] = 0
    hw[H_Q_LEN] = 0
    hw[H_R_COUNT] = 0
    hw[H_HELD] = 0
