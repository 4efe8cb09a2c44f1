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

What each option costs: `python -m bench replay -t lognormal.npz -a SPEC --repeats 3 --json` on a 200 000-row
`python -m bench trace gen -w lognormal --ops 200000 --seed 0` trace (about 0.9 MiB live), 2-core VM shared
with a test run (so +-20 %); Mops/s from the median of the 3 repeats, then the spread (slowest..fastest
repeat: a low first repeat is the first touch of the records' and memory's pages); peak footprint; peak
metadata (B).  pool's footprint is its carved blocks (block size = the largest request, 4432 B; 80 B more
per block with everything on); tcmalloc's and go's stay within their page heap's growth steps (1 MiB, 4 MiB)
on this small trace, so their extra bytes show only in the metadata here; pool's quarantine holds 256 of
its 4.4 KiB blocks (+1.1 MiB).  The random array's time is mostly the model's scan of its entries per
allocation while it holds blocks.  The quarantine and hardened rows were measured again after the quarantine
became strict (it hands nothing out), the others before; README "Safety" has tcmalloc's slowdowns measured
in one run against one baseline.

| spec | Mops/s | spread | peak footprint (MiB) | peak metadata (B) |
|---|---|---|---|---|
| `pool` | 127.62 | 127.00..129.44 | 43.00 | 16 |
| `pool:slot_state=1` | 14.76 | 1.63..19.57 | 43.00 | 10190 |
| `pool:checksum=1` | 6.76 | 1.36..8.58 | 43.16 | 81408 |
| `pool:canary=1` | 9.32 | 6.53..10.50 | 43.16 | 81408 |
| `pool:zero_on_free=1` | 1.83 | 1.33..1.84 | 43.00 | 16 |
| `pool:quarantine=256` | 13.57 | 2.64..14.12 | 44.08 | 2064 |
| `pool:shuffle=1` | 12.97 | 12.04..12.99 | 43.00 | 144 |
| `pool:guard_pages=1` | 23.98 | 22.57..24.47 | 43.00 | 16 |
| `pool:encode_links=1` | 12.23 | 7.15..12.54 | 43.00 | 16 |
| `pool:scudo` | 7.83 | 7.19..7.86 | 43.16 | 81464 |
| `pool:hardened` | 1.35 | 0.68..1.45 | 44.40 | 179422 |
| `tcmalloc` | 41.13 | 38.44..44.92 | 2.00 | 66209 |
| `tcmalloc:slot_state=1` | 27.06 | 25.86..28.80 | 2.00 | 76450 |
| `tcmalloc:checksum=1` | 21.58 | 19.80..22.26 | 2.00 | 148657 |
| `tcmalloc:canary=1` | 19.83 | 13.08..20.28 | 2.00 | 148657 |
| `tcmalloc:zero_on_free=1` | 15.44 | 12.86..16.18 | 2.00 | 66305 |
| `tcmalloc:quarantine=256` | 11.06 | 11.02..11.25 | 2.00 | 68545 |
| `tcmalloc:shuffle=1` | 11.11 | 10.29..11.21 | 2.00 | 68449 |
| `tcmalloc:guard_pages=1` | 33.96 | 33.60..34.87 | 2.00 | 66305 |
| `tcmalloc:encode_links=1` | 25.29 | 23.55..26.38 | 2.00 | 66305 |
| `tcmalloc:scudo` | 8.77 | 8.52..9.09 | 2.00 | 150529 |
| `tcmalloc:hardened` | 4.09 | 3.87..4.28 | 2.00 | 249393 |
| `go` | 43.62 | 42.31..43.67 | 4.00 | 62456 |
| `go:slot_state=1` | 25.82 | 25.42..26.98 | 4.00 | 72742 |
| `go:checksum=1` | 15.36 | 15.31..16.38 | 4.00 | 147392 |
| `go:canary=1` | 18.70 | 18.15..21.40 | 4.00 | 147392 |
| `go:zero_on_free=1` | 16.13 | 16.09..16.24 | 4.00 | 62584 |
| `go:quarantine=256` | 13.56 | 11.37..13.69 | 4.00 | 65512 |
| `go:shuffle=1` | 7.53 | 7.48..7.56 | 4.00 | 70296 |
| `go:guard_pages=1` | 26.61 | 26.02..26.71 | 4.00 | 62584 |
| `go:encode_links=1` | 23.51 | 23.30..23.59 | 4.00 | 62584 |
| `go:scudo` | 8.48 | 8.33..8.63 | 4.00 | 154360 |
| `go:hardened` | 7.13 | 6.75..7.65 | 4.00 | 256048 |
"""

from __future__ import annotations

from typing import Any

from allocators.errors import BadParameter
from allocators.hardening.kernels import kernels_for
from allocators.hardening.layout import base_request_py, make_layer_state
from allocators.hardening.options import (
    HARDENING_DEFAULTS,
    HARDENING_OFF,
    HARDENING_PRESETS,
    Options,
    is_hardened,
    parse_options,
    with_hardening,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

__all__ = ["HARDENING_DEFAULTS", "HARDENING_OFF", "HARDENING_PRESETS", "Options", "harden", "is_hardened",
           "with_hardening"]


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
    allocator.delays_reuse = options.quarantine > 0
    allocator.alignment = cls.alignment
