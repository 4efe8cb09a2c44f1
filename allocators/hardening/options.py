"""Hardening options: their names, defaults, presets and validation (pure Python, no kernels).

Design.  Every hardening mechanism is one parameter of the allocator it
hardens, switchable on its own (`tcmalloc:canary=1,quarantine=256`), and the
two presets gather them (`pool:hardened`, `go:scudo`).  The four classes that
take them (`pool`, `tcmalloc`, `go`, `freelist`) add `HARDENING_DEFAULTS` to
their own defaults with `with_hardening(...)` and `HARDENING_PRESETS` to their
presets, so the names are declared once, here.  All defaults are off: an
allocator with none set keeps its own kernels (`is_hardened`), at no cost.

| parameter | values | mechanism (allocators.hardening module) |
|---|---|---|
| `slot_state` | 0/1 | out-of-line slot state: deterministic double / invalid free (`layout`) |
| `checksum` | 0/1 | Scudo's keyed 16-bit header checksum, header word before the block (`keys`, `checks`) |
| `canary` | 0/1 | an 8 B canary after the usable bytes, checked on free (`checks`) |
| `quarantine` | N >= 0 | FIFO of the last N freed blocks (`holding`) |
| `zero_on_free` | 0/1 | freed bytes zeroed, checked still zero on reuse (`checks`) |
| `shuffle` | 0/1/N | randomised reuse through a random array of N entries (1: 16) (`holding`) |
| `seed` | int | seeds the keys and the shuffle's random stream |
| `guard_pages` | 0/1 | a poisoned 4 KiB page before and after blocks >= `guard_threshold` (`layout`) |
| `guard_threshold` | bytes | smallest request that gets guard pages (default 64 KiB) |
| `encode_links` | 0/1 | the freed block's first word holds a keyed encoded link, checked on reuse (`keys`) |

Presets: `hardened` (everything on: hardened_malloc-like, with a 256-entry
quarantine and a 16-entry random array) and `scudo` (Scudo's defaults:
checksum, shuffle and guard pages, quarantine off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocators.errors import BadParameter
from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: Entries of the shuffle's random array for `shuffle=1`.
DEFAULT_SHUFFLE_ENTRIES = 16
#: Largest quarantine / random array.
MAX_HOLDING = 1 << 20
#: Smallest request that gets guard pages unless `guard_threshold` says otherwise.
DEFAULT_GUARD_THRESHOLD = 64 << 10

HARDENING_DEFAULTS: dict[str, Any] = {
    "slot_state": 0, "checksum": 0, "canary": 0, "quarantine": 0, "zero_on_free": 0, "shuffle": 0,
    "seed": 0, "guard_pages": 0, "guard_threshold": DEFAULT_GUARD_THRESHOLD, "encode_links": 0,
}
#: The switches: an allocator with none of them set is not hardened.
SWITCHES = ("slot_state", "checksum", "canary", "quarantine", "zero_on_free", "shuffle", "guard_pages",
            "encode_links")
_FLAGS = ("slot_state", "checksum", "canary", "zero_on_free", "guard_pages", "encode_links")
#: Each switch with its value off: a hardenable class's `hardening_params` (the unhardened baseline's settings).
HARDENING_OFF: dict[str, Any] = {name: HARDENING_DEFAULTS[name] for name in SWITCHES}

HARDENING_PRESETS: dict[str, dict[str, Any]] = {
    "hardened": {"slot_state": 1, "checksum": 1, "canary": 1, "quarantine": 256, "zero_on_free": 1,
                 "shuffle": 1, "guard_pages": 1, "encode_links": 1},
    "scudo": {"checksum": 1, "shuffle": 1, "guard_pages": 1},
}


def with_hardening(defaults: dict[str, Any]) -> dict[str, Any]:
    """An allocator class's `defaults` with the hardening parameters added (names must not clash)."""
    clash = set(defaults) & set(HARDENING_DEFAULTS)
    if clash:
        raise ValueError(f"hardening parameters clash with the allocator's own: {sorted(clash)}")
    return {**defaults, **HARDENING_DEFAULTS}


@dataclass(frozen=True)
class Options:
    """Validated hardening options of one allocator instance."""

    slot_state: bool
    checksum: bool
    canary: bool
    quarantine: int
    zero_on_free: bool
    shuffle: int  # entries of the random array, 0: off
    seed: int
    guard_pages: bool
    guard_threshold: int
    encode_links: bool

    @property
    def needs_memory(self) -> bool:
        """Whether any mechanism keeps words in the simulated memory."""
        return self.checksum or self.canary or self.zero_on_free or self.encode_links


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise BadParameter(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return int(value)


def is_hardened(params: dict[str, Any]) -> bool:
    """Whether any hardening switch is set in these (resolved) parameters."""
    return any(params.get(name) not in (None, 0, False) for name in SWITCHES)


def parse_options(owner: str, params: dict[str, Any]) -> Options:
    """The hardening options of `params` (BadParameter naming the allocator and the parameter)."""
    try:
        values: dict[str, Any] = {name: bool(_integer(name, params[name], 0, 1)) for name in _FLAGS}
        values["quarantine"] = _integer("quarantine", params["quarantine"], 0, MAX_HOLDING)
        shuffle = _integer("shuffle", params["shuffle"], 0, MAX_HOLDING)
        values["shuffle"] = DEFAULT_SHUFFLE_ENTRIES if shuffle == 1 else shuffle
        values["seed"] = _integer("seed", params["seed"], 0, (1 << 63) - 1)
        values["guard_threshold"] = _integer("guard_threshold", params["guard_threshold"], 1, 1 << 48)
    except BadParameter as error:
        raise BadParameter(f"{owner}: {error}") from None
    return Options(**values)
