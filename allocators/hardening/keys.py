"""Keyed values the hardening mechanisms store in the simulated memory: header checksums, canaries, encoded links.

Design.  Each mechanism's word is a function of a secret key (from the
`seed` parameter, `layout.make_layer_state`) and the block's address, so a
word copied from elsewhere or forged does not pass:

- header (Scudo's chunk header, `chunk.h`): `packed = granted << 2 | state`
  (state ALLOCATED, QUARANTINED or AVAILABLE) in the low 48 bits, and a 16-bit
  checksum of (key, address, packed) in the top 16.  Scudo uses a CRC32 of the
  cookie, the address and the header; here a 64-bit mix (splitmix64's
  finaliser) folded to 16 bits: a random word passes with probability 2^-16.
- canary (hardened_malloc's slot canary, mimalloc's keyed padding): a mix of
  (key, address) with its low byte zeroed, the first byte after the block in
  little-endian order, so a NUL written past a string is absorbed.
- encoded link (mimalloc's `mi_ptr_encode`): `rotl(next ^ k1, r) + k0`; a
  decoded link must be an 8-aligned address inside the heap (or the word 0,
  which the layer's zeroing leaves), so a random overwrite decodes to a valid
  one with probability about capacity / 2^67.

`next_random` is the shuffle's stream (xorshift64*).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
LOW48 = np.uint64((1 << 48) - 1)
LOW_BYTE_CLEAR = np.uint64(~0xFF & ((1 << 64) - 1))
STAR = np.uint64(0x2545F4914F6CDD1D)

#: Header states.
HS_ALLOCATED, HS_QUARANTINED, HS_AVAILABLE = 1, 2, 3


@njit(cache=True, inline="always")
def mix64(value):
    value = (value ^ (value >> np.uint64(30))) * M1
    value = (value ^ (value >> np.uint64(27))) * M2
    return value ^ (value >> np.uint64(31))


@njit(cache=True, inline="always")
def checksum16(key, addr, packed):
    """The 16-bit keyed checksum of a header (uint64)."""
    return mix64(np.uint64(key) ^ (np.uint64(addr) * GOLDEN) ^ mix64(packed + GOLDEN)) >> np.uint64(48)


@njit(cache=True, inline="always")
def make_header(key, addr, granted, state):
    packed = (np.uint64(granted) << np.uint64(2)) | np.uint64(state)
    return packed | (checksum16(key, addr, packed) << np.uint64(48))


@njit(cache=True, inline="always")
def header_status(key, addr, header):
    """-1: the checksum fails; else the header's state."""
    packed = header & LOW48
    if checksum16(key, addr, packed) != header >> np.uint64(48):
        return -1
    return np.int64(packed & np.uint64(3))


@njit(cache=True, inline="always")
def canary_value(key, addr):
    return mix64(np.uint64(key) ^ (np.uint64(addr) * GOLDEN)) & LOW_BYTE_CLEAR


@njit(cache=True, inline="always")
def _rotation(key0):
    return np.uint64(np.uint64(key0) % np.uint64(63) + np.uint64(1))


@njit(cache=True, inline="always")
def encode_link(key0, key1, target):
    rot = _rotation(key0)
    value = np.uint64(target) ^ np.uint64(key1)
    return ((value << rot) | (value >> (np.uint64(64) - rot))) + np.uint64(key0)


@njit(cache=True, inline="always")
def link_is_valid(key0, key1, word, capacity):
    """Whether a link word decodes to an 8-aligned address inside the heap (0, the zeroed word, is the end)."""
    if word == np.uint64(0):
        return True
    rot = _rotation(key0)
    value = word - np.uint64(key0)
    decoded = ((value >> rot) | (value << (np.uint64(64) - rot))) ^ np.uint64(key1)
    return decoded < np.uint64(capacity) and decoded & np.uint64(7) == np.uint64(0)


@njit(cache=True, inline="always")
def next_random(hw, slot):
    """The next value (>= 0) of the xorshift64* stream kept in hw[slot]."""
    x = np.uint64(hw[slot])
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    hw[slot] = np.int64(x)
    return np.int64((x * STAR) >> np.uint64(1))
