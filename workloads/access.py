"""Extra rows woven into an ALLOC/FREE skeleton: ACCESS (memory touches) and REALLOC (growth).

`Access` describes the optional access pattern:
- `touch`: after every ALLOC an ACCESS row of the new object (size 0 = the
  whole object), as a program that initialises what it allocates;
- scans: after every `scan_every` skeleton rows, ACCESS rows for up to
  `scan_count` live objects, `scan_bytes` each (0 = whole object).  A scan
  walks the live-object table from where the previous scan stopped, so
  successive scans sweep the whole working set.

REALLOC rows: before each skeleton row, with probability
`realloc_fraction / (1 - realloc_fraction)`, a uniformly random live object
grows to its size times U(grow_min, grow_max), capped at `max_size`.  Among
ALLOC, FREE and REALLOC rows about `realloc_fraction` are then REALLOCs.

ACCESS and REALLOC rows run on the object's allocating thread.

`weave()` does all of it in one `@njit(cache=True)` pass that keeps the live
objects in an array with swap-remove (O(1) per row) plus, per object id, its
position in that array, its current size and its owner thread.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC

holds_kernels(__file__)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class Access:
    """Optional ACCESS rows: touch on allocation and/or periodic scans over live objects."""

    touch: bool = False
    scan_every: int = 0
    scan_count: int = 0
    scan_bytes: int = 0

    def __post_init__(self) -> None:
        _check(isinstance(self.touch, bool), f"touch must be true or false (got {self.touch})")
        _check(isinstance(self.scan_every, int) and self.scan_every >= 0,
               f"scan_every must be an integer >= 0, 0 = no scans (got {self.scan_every})")
        _check(isinstance(self.scan_count, int) and self.scan_count >= 0,
               f"scan_count must be an integer >= 0 (got {self.scan_count})")
        _check(isinstance(self.scan_bytes, int) and self.scan_bytes >= 0,
               f"scan_bytes must be an integer >= 0, 0 = whole object (got {self.scan_bytes})")

    @property
    def scans(self) -> bool:
        return self.scan_every > 0 and self.scan_count > 0

    @property
    def enabled(self) -> bool:
        return self.touch or self.scans

    def rows_per_skeleton_row(self, alloc_share: float = 0.5) -> float:
        """Expected ACCESS rows per skeleton row (scans assumed full)."""
        extra = alloc_share if self.touch else 0.0
        if self.scans:
            extra += self.scan_count / self.scan_every
        return extra

    def params(self) -> dict[str, Any]:
        return {"touch": self.touch, "scan_every": self.scan_every, "scan_count": self.scan_count,
                "scan_bytes": self.scan_bytes}


@njit(cache=True)
def _weave_kernel(is_free, obj, thread, size_of, realloc_rows, u_pick, u_grow, grow_min, grow_max, max_size,
                  touch, scan_every, scan_count, scan_bytes, capacity):
    n = is_free.shape[0]
    n_ids = size_of.shape[0]
    out_op = np.empty(capacity, np.int8)
    out_obj = np.empty(capacity, np.int64)
    out_size = np.empty(capacity, np.int64)
    out_thread = np.empty(capacity, np.int32)
    live = np.empty(n_ids, np.int64)
    position = np.empty(n_ids, np.int64)
    owner = np.empty(n_ids, np.int32)
    n_live = 0
    out = 0
    next_realloc = 0
    scan_cursor = 0
    for row in range(n):
        # REALLOC before this row?
        while next_realloc < realloc_rows.shape[0] and realloc_rows[next_realloc] == row:
            if n_live > 0:
                victim = live[min(np.int64(u_pick[next_realloc] * n_live), n_live - 1)]
                grown = np.int64(size_of[victim] * (grow_min + (grow_max - grow_min) * u_grow[next_realloc]))
                grown = min(max(grown, size_of[victim] + 1), max_size)
                size_of[victim] = grown
                out_op[out] = OP_REALLOC
                out_obj[out] = victim
                out_size[out] = grown
                out_thread[out] = owner[victim]
                out += 1
            next_realloc += 1
        ident = obj[row]
        if is_free[row]:
            slot = position[ident]
            n_live -= 1
            moved = live[n_live]
            live[slot] = moved
            position[moved] = slot
            out_op[out] = OP_FREE
            out_obj[out] = ident
            out_size[out] = 0
            out_thread[out] = thread[row]
            out += 1
        else:
            position[ident] = n_live
            live[n_live] = ident
            n_live += 1
            owner[ident] = thread[row]
            out_op[out] = OP_ALLOC
            out_obj[out] = ident
            out_size[out] = size_of[ident]
            out_thread[out] = thread[row]
            out += 1
            if touch:
                out_op[out] = OP_ACCESS
                out_obj[out] = ident
                out_size[out] = 0
                out_thread[out] = thread[row]
                out += 1
        if scan_every > 0 and (row + 1) % scan_every == 0 and n_live > 0:
            count = min(scan_count, n_live)
            start = scan_cursor % n_live
            for k in range(count):
                target = live[(start + k) % n_live]
                out_op[out] = OP_ACCESS
                out_obj[out] = target
                out_size[out] = min(scan_bytes, size_of[target])
                out_thread[out] = owner[target]
                out += 1
            scan_cursor = start + count
    return out_op[:out], out_obj[:out], out_size[:out], out_thread[:out]


def weave(rng: np.random.Generator, is_free: np.ndarray, obj: np.ndarray, thread: np.ndarray,
          size_of: np.ndarray, access: Access, realloc_fraction: float, realloc_growth: tuple[float, float],
          max_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build the trace columns (op, obj, size, thread) from a skeleton whose ids are 0..n_ids-1.

    `size_of[id]` is each object's requested size (it is updated in place by REALLOC rows).
    """
    n = is_free.shape[0]
    if not access.enabled and realloc_fraction <= 0:
        op = np.where(is_free, np.int8(OP_FREE), np.int8(OP_ALLOC)).astype(np.int8)
        size = np.where(is_free, 0, size_of[obj]).astype(np.int64)
        return op, obj.astype(np.int64), size, thread.astype(np.int32)
    if realloc_fraction > 0:
        rate = realloc_fraction / (1.0 - realloc_fraction)
        realloc_rows = np.flatnonzero(rng.random(n) < rate).astype(np.int64)
        u_pick = rng.random(realloc_rows.size)
        u_grow = rng.random(realloc_rows.size)
    else:
        realloc_rows = np.empty(0, np.int64)
        u_pick = u_grow = np.empty(0)
    capacity = n + realloc_rows.size
    if access.touch:
        capacity += n
    scan_every = access.scan_every if access.scans else 0
    if scan_every:
        capacity += (n // scan_every) * access.scan_count
    grow_min, grow_max = realloc_growth
    return _weave_kernel(is_free, obj, thread, size_of, realloc_rows, u_pick, u_grow, float(grow_min),
                         float(grow_max), int(max_size), access.touch, scan_every, access.scan_count,
                         access.scan_bytes, capacity)
