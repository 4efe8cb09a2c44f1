"""The hardened allocator's kernels: templates over (base state..., layer arrays...), rebound per base class.

Design.  A hardened allocator's kernels must call its base allocator's
kernels, and numba binds a kernel's callees when it compiles it.  So, as in
`allocators.objpool`, the kernels here are templates (`_alloc_template`, ...)
calling `base_alloc_block` & co. and slicing the state at `BASE_LEN` (the
length of the base's state tuple); `kernels_for` copies them with those
globals bound to one base class's kernels (`labcore.kernels.rebind`), each
copy under a name unique to the base class and its state length (numba's
on-disk cache is keyed by name), jits them (`cache=True`) and builds the
replay kernel from them.  The options are words of the layer's state, so one
compiled set per base class serves every combination of options.

- alloc(size): a held block that fits the request if there is one
  (`holding.take`); else the base's block for `blocks.base_request` bytes
  (when the base is out of memory and blocks are held, they go back first,
  `_retry_template`), handed out by `blocks.hand_out`.
- free(addr): a pointer that is not a live block start is `blocks.reject`ed
  and never reaches the base; a live block is checked (`free_checks`),
  zeroed and linked (`retire`), then held (`holding.hold`) or released:
  `_release_template` recycles it (the recycle checks, when it was held),
  resets its header to AVAILABLE (or zeroes header and canary with
  zero_on_free), lifts its guard pages and frees it in the base.  The block a
  full holding area pushes out is released the same way.
- free_checked = free; write_bytes stores the bytes into the simulated memory
  (or stops at a guard page: SIGSEGV).
- heap_stats: the base's footprint, the base's metadata plus the layer's
  per-block words (header 8 B, canary 8 B, slot state 1 B) and 8 B per held
  entry.
- reset: the base's free(), then the layer's records (live and held starts
  become freed ones, guard words plain) and memory up to its high-water mark.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from allocators.detections import D_SEGV, SafetyKernels, detected
from allocators.errors import ST_OK, ST_OUT_OF_MEMORY
from allocators.hardening.blocks import (
    base_address,
    base_request,
    free_checks,
    hand_out,
    hand_out_held,
    reject,
    retire,
)
from allocators.hardening.checks import ZERO, recycle_checks, store, unpoison, write_header
from allocators.hardening.holding import clear_holding, drain_one, hold, take
from allocators.hardening.keys import HS_AVAILABLE, HS_QUARANTINED
from allocators.hardening.layout import (
    F_LARGE,
    F_LINK,
    GRANULE_SHIFT,
    GUARD_BYTES,
    H_BLOCK_BYTES,
    H_BLOCKS,
    H_CAPACITY,
    H_CHECKSUM,
    H_GUARD_THRESHOLD,
    H_GUARDS,
    H_HELD,
    H_HIGH,
    H_LAST_FREED,
    H_MEMORY_ON,
    H_PREFIX,
    H_QUARANTINE,
    H_RECYCLED,
    H_SHUFFLE,
    H_SUFFIX,
    H_ZERO,
    HOLDING_ENTRY_BYTES,
    K_FREED,
    K_GUARD,
    K_HELD,
    K_LIVE,
    KIND_MASK,
    SIZE_SHIFT,
)
from allocators.replay import Kernels, build_replay_kernel
from labcore.jitcache import holds_kernels
from labcore.kernels import rebind

holds_kernels(__file__)


# ------------------------------------------------------ layer-only kernels
@njit(cache=True)
def write_bytes_layer(hw, meta, memory, addr, nbytes, byte):
    """The program writes `nbytes` copies of `byte` from addr: into the simulated memory; SIGSEGV at a guard word."""
    capacity = hw[H_CAPACITY]
    memory_on = hw[H_MEMORY_ON] != 0
    value = np.uint64(byte & 0xFF)
    for at in range(max(addr, 0), min(addr + nbytes, capacity)):
        index = at >> GRANULE_SHIFT
        if meta[index] & KIND_MASK == K_GUARD:
            return detected(D_SEGV)
        if memory_on:
            shift = np.uint64((at & 7) * 8)
            memory[index] = (memory[index] & ~(np.uint64(0xFF) << shift)) | (value << shift)
            if index >= hw[H_HIGH]:
                hw[H_HIGH] = index + 1
    return ST_OK


@njit(cache=True)
def reset_layer(hw, meta, memory, q_addr, r_addr, hints):
    """free(): every block the layer knew is gone; live and held starts read as freed ones afterwards."""
    memory_on = hw[H_MEMORY_ON] != 0
    for index in range(hw[H_HIGH]):
        kind = meta[index] & KIND_MASK
        meta[index] = K_FREED if kind == K_LIVE or kind == K_HELD else 0
        if memory_on:
            memory[index] = ZERO
    clear_holding(hw, q_addr, r_addr, hints)
    hw[H_BLOCKS] = 0
    hw[H_LAST_FREED] = 0


# ------------------------------------------------------------------ templates
# Never called as they are: `kernels_for` binds BASE_LEN, base_alloc_block, base_free_block, base_heap_stats,
# base_reset_state, release_block (release_now: its inlined copy), drain_blocks, retry_alloc, refuse_block.
def _release_template(state, user, thread, recycled):
    """A block leaves the layer: recycle checks if it was held, header/canary/guards undone, base free."""
    base = state[:BASE_LEN]  # noqa: F821
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    record = meta[user >> GRANULE_SHIFT]
    granted = record >> SIZE_SHIFT
    if recycled:
        status = recycle_checks(hw, meta, memory, user, granted, hw[H_ZERO] != 0)
        if status < 0:
            return status
        hw[H_RECYCLED] += 1
    if hw[H_ZERO] != 0:  # memory outside held blocks reads zero (but for encoded links)
        if hw[H_CHECKSUM] != 0:
            store(hw, meta, memory, user - 8, ZERO)
        if hw[H_SUFFIX] != 0:
            store(hw, meta, memory, user + granted, ZERO)
    elif hw[H_CHECKSUM] != 0:
        write_header(hw, meta, memory, user, granted, HS_AVAILABLE)
    if record & F_LARGE:
        unpoison(meta, user - hw[H_PREFIX] - GUARD_BYTES, GUARD_BYTES)
        unpoison(meta, user + granted + hw[H_SUFFIX], GUARD_BYTES)
    meta[user >> GRANULE_SHIFT] = K_FREED | (meta[user >> GRANULE_SHIFT] & F_LINK)
    hw[H_BLOCKS] -= 1
    status, _ = base_free_block(base, base_address(hw, user, record), thread)  # noqa: F821
    return status


def _drain_template(state, thread):
    """Every held block goes back to the base (recycled); the first failing status, or 0."""
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    while hw[H_HELD] > 0:
        user = drain_one(hw, q_addr, q_granted, r_addr, r_granted, hints)
        if user < 0:
            break
        status = release_block(state, user, thread, True)  # noqa: F821
        if status < 0:
            return status
    return 0


def _retry_template(state, need, thread):
    """The base was out of memory with blocks held: give them back, ask again."""
    status = drain_blocks(state, thread)  # noqa: F821
    if status < 0:
        return status, 0
    return base_alloc_block(state[:BASE_LEN], need, thread)  # noqa: F821


def _refuse_template(state, addr, thread):
    """A block the layer cannot keep records for goes back to the base: out of memory."""
    base_free_block(state[:BASE_LEN], addr, thread)  # noqa: F821
    return ST_OUT_OF_MEMORY


def _alloc_template(state, size, thread):
    base = state[:BASE_LEN]  # noqa: F821
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    large = hw[H_GUARDS] != 0 and size >= hw[H_GUARD_THRESHOLD]
    if hw[H_HELD] > 0:  # slow path: a held block that fits?
        user = take(hw, meta, q_addr, q_granted, r_addr, r_granted, hints, size, large)
        if user >= 0:
            return hand_out_held(hw, meta, memory, user)
    need = base_request(hw, size, large)
    addr, granted = base_alloc_block(base, need, thread)  # noqa: F821
    if addr == ST_OUT_OF_MEMORY and hw[H_HELD] > 0:
        addr, granted = retry_alloc(state, need, thread)  # noqa: F821
    if addr < 0:
        return addr, granted
    if addr + granted > hw[H_CAPACITY]:  # beyond the layer's records (capacities above COVERED_LIMIT)
        return refuse_block(state, addr, thread), 0  # noqa: F821
    return hand_out(hw, meta, memory, addr, granted, size, large)


def _free_template(state, addr, thread):
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    if addr < 0 or addr >= hw[H_CAPACITY] or addr & 7 != 0:
        return reject(hw, meta, memory, addr), 0
    index = addr >> GRANULE_SHIFT
    record = meta[index]
    if record & KIND_MASK != K_LIVE:
        return reject(hw, meta, memory, addr), 0
    granted = record >> SIZE_SHIFT
    status = free_checks(hw, memory, addr, granted)
    if status < 0:
        return status, 0
    retire(hw, meta, memory, addr, granted)
    if hw[H_QUARANTINE] == 0 and hw[H_SHUFFLE] == 0:  # hot path: straight back to the base (inlined)
        return release_now(state, addr, thread, False), granted  # noqa: F821
    if hw[H_CHECKSUM] != 0:
        write_header(hw, meta, memory, addr, granted, HS_QUARANTINED)
    meta[index] = (meta[index] & ~KIND_MASK) | K_HELD
    out = hold(hw, q_addr, q_granted, r_addr, r_granted, hints, addr, granted)
    if out < 0:
        return ST_OK, granted
    return release_block(state, out, thread, True), granted  # noqa: F821


def _heap_stats_template(state):
    footprint, metadata = base_heap_stats(state[:BASE_LEN])  # noqa: F821
    hw = state[BASE_LEN]  # noqa: F821
    return footprint, metadata + hw[H_BLOCKS] * hw[H_BLOCK_BYTES] + hw[H_HELD] * HOLDING_ENTRY_BYTES


def _reset_template(state):
    base_reset_state(state[:BASE_LEN])  # noqa: F821
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    reset_layer(hw, meta, memory, q_addr, r_addr, hints)


def _write_bytes_template(state, addr, nbytes, byte):
    hw, meta, memory, q_addr, q_granted, r_addr, r_granted, hints = state[BASE_LEN:]  # noqa: F821
    return write_bytes_layer(hw, meta, memory, addr, nbytes, byte)


# ------------------------------------------------------- per-base kernels
class HardenedKernels(NamedTuple):
    """The layer's kernels composed with one base class's, its replay loop and its safety kernels."""

    kernels: Kernels
    replay_kernel: Any
    safety: SafetyKernels


_KERNELS: dict[tuple[type, int], HardenedKernels] = {}


def kernels_for(base_cls: type, base_len: int) -> HardenedKernels:
    """The hardened kernels over `base_cls`'s kernels and a base state of `base_len` arrays (built once)."""
    key = (base_cls, base_len)
    found = _KERNELS.get(key)
    if found is not None:
        return found
    tag = re.sub(r"[^0-9A-Za-z_]", "_", f"{base_cls.__module__}_{base_cls.__qualname__}_{base_len}")
    base = base_cls.kernels
    bindings: dict[str, Any] = {
        "BASE_LEN": base_len,
        "base_alloc_block": base.alloc_block,
        "base_free_block": base.free_block,
        "base_heap_stats": base.heap_stats,
        "base_reset_state": base.reset_state,
    }

    def jit(template: Any, name: str, inline: bool = False) -> Any:
        function = rebind(template, f"hardened_{name}__{tag}", bindings)
        return njit(cache=True, inline="always")(function) if inline else njit(cache=True)(function)

    bindings["release_block"] = jit(_release_template, "release")
    bindings["release_now"] = jit(_release_template, "release_now", inline=True)
    bindings["drain_blocks"] = jit(_drain_template, "drain")
    bindings["retry_alloc"] = jit(_retry_template, "retry")
    bindings["refuse_block"] = jit(_refuse_template, "refuse")
    kernels = Kernels(
        alloc_block=jit(_alloc_template, "alloc_block", inline=True),
        free_block=jit(_free_template, "free_block", inline=True),
        heap_stats=jit(_heap_stats_template, "heap_stats", inline=True),
        reset_state=jit(_reset_template, "reset_state"),
    )
    safety = SafetyKernels(free_checked=jit(_free_template, "free_checked"),
                           write_bytes=jit(_write_bytes_template, "write_bytes"))
    found = HardenedKernels(kernels, build_replay_kernel(f"hardened__{tag}", __file__, kernels), safety)
    _KERNELS[key] = found
    return found
