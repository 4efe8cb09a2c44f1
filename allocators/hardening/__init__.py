"""Hardening options for `pool`, `tcmalloc`, `go` and `freelist`: one generic layer wrapped around a base allocator.

Design.  The mechanisms of hardened allocators (shared/reference/security.md,
"Implications for the lab's fault-injection harness") are built once, as a
layer whose kernels wrap the base allocator's kernels
(`allocators.hardening.kernels`, rebound per base class as `objpool` does).
Each mechanism is a parameter of the base allocator (`options`), on its own
or in a preset (`pool:hardened`, `tcmalloc:scudo`); an allocator with none
set keeps its own kernels, unchanged, at no cost.

The layer asks the base for more than the request (header area, canary,
guard pages: `layout`), so those bytes and the blocks it holds in its
quarantine show in the base's footprint; its own per-block words (header,
canary, slot state) and holding entries are its metadata.  It keeps an
out-of-line record per 8 B of the address space (`layout`), so it always
knows the live block starts: a pointer that is not one never reaches the
base (the base's kernels have no checks, and numba does not bounds-check).
With `slot_state` on, that record is the detection mechanism; with
`checksum` on, the header before the pointer is; otherwise the model stops
with ST_CORRUPTED (a real allocator would corrupt itself).

Modules, one concept each: `options` (names, presets, validation), `layout`
(state, records, block geometry), `keys` (keyed checksum, canary, link
encoding), `checks` (what each mechanism writes and reads back), `holding`
(quarantine and random array), `blocks` (hand-out and free, layer side),
`kernels` (the templates and their per-base copies).

`harden(allocator)` is the classes' `configure_instance` hook
(`allocators.protocol`): for an instance with options set it validates them,
grows a fixed block size (`pool`) by the layer's bytes, and gives the
instance its own kernels, replay kernel, safety kernels (free_checked,
write_bytes: `allocators.detections`), alignment and make_state (the base's
state, then the layer's arrays).

What each option costs (model replay speed and peak footprint; measured
figures in the README section "Hardening options"): slot_state one record
read and write per operation; checksum and canary a keyed hash per alloc and
free and 16 B / 8 B more per block; zero_on_free a write and a scan of every
freed word; quarantine and shuffle the memory of the blocks they hold and a
scan of their entries per allocation while they hold any; guard pages 8 KiB
per large block and 1024 record writes; encode_links one word and a decode
per reuse.
"""

from __future__ import annotations

from typing import Any

from allocators.errors import BadParameter
from allocators.hardening.kernels import kernels_for
from allocators.hardening.layout import base_request_py, make_layer_state
from allocators.hardening.options import (
    HARDENING_DEFAULTS,
    HARDENING_PRESETS,
    Options,
    is_hardened,
    parse_options,
    with_hardening,
)

__all__ = ["HARDENING_DEFAULTS", "HARDENING_PRESETS", "Options", "harden", "is_hardened", "with_hardening"]


def harden(allocator: Any) -> None:
    """The `configure_instance` hook: make a hardened instance of its class when any option is set."""
    params = allocator.params
    if not is_hardened(params):
        return
    options = parse_options(allocator.name, params)
    cls = type(allocator)
    fixed_blocks = "block_size" in cls.defaults
    if fixed_blocks:  # one block size (pool): every block carries the layer's bytes
        grown = base_request_py(int(params["block_size"]), options.checksum, options.canary, options.guard_pages,
                                options.guard_threshold)
        if grown > allocator.capacity:
            raise BadParameter(f"{allocator.name}: block_size {params['block_size']} with the hardening bytes "
                               f"({grown} B) is larger than the capacity {allocator.capacity}")
        params["block_size"] = grown
    base_make_state = cls.make_state.__get__(allocator)

    def make_state() -> tuple:
        base_state = base_make_state()
        composed = kernels_for(cls, len(base_state))
        allocator.kernels = composed.kernels
        allocator.replay_kernel = composed.replay_kernel
        allocator.safety_kernels = composed.safety
        return tuple(base_state) + make_layer_state(options, allocator.capacity, fixed_blocks)

    allocator.make_state = make_state
    allocator.hardening = options
    allocator.alignment = cls.alignment
