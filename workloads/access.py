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
Each such skeleton row consumes one victim uniform and one growth uniform,
even when no object is live (then no row is written).

ACCESS and REALLOC rows run on the object's allocating thread.

`Weaver` turns skeleton chunks (`is_free`, `slot`, `thread`, from
`workloads.threads.SkeletonRun`) into trace rows (op, obj, size, thread),
chunk by chunk, and applies the generator's cut on the way: rows are written
only while rows so far + objects live after them (with drain) fit in
`n_ops`, and an ALLOC with touch is written only if its ACCESS fits too.  It
gives ids in row order (the k-th ALLOC gets id k) and keeps per *slot* (the
skeleton's recycled table index, bounded by the peak live count) the
object's id, current size, owner thread and position in the live array (swap-
remove, as REALLOC victims and scans index it).  `_weave_kernel` is one
resumable `@njit(cache=True)` pass: it stops when the output buffer is full
(mid-row if need be: a row's REALLOC, the row, its touch and each scan row
are separate steps), when the skeleton chunk is used up, or at the cut, and
carries everything else in its state vector.  `weave()` is the in-memory form.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.trace import MAX_THREADS, OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC

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


# State vector of the weave kernel.
S_NEXT_ID, S_LIVE, S_EMITTED, S_ROW, S_STEP, S_SCAN_K, S_SCAN_CURSOR, S_SIZE_AT, S_REALLOC_AT = range(9)
S_KEEP_PRE, S_LIVE_PRE, S_ROW_BASE = 9, 10, 11
N_STATE = 12
# Steps of one skeleton row.
_STEP_REALLOC, _STEP_ROW, _STEP_TOUCH, _STEP_SCAN = 0, 1, 2, 3
# Why the kernel returned.
NEED_ROWS, FULL, CUT = 0, 1, 2
#: Bits of a thread number (threads are < MAX_THREADS) in a survivor key.
OWNER_BITS = max(1, (MAX_THREADS - 1).bit_length())


@njit(cache=True)
def _weave_kernel(is_free, slot_of, thread_of, sizes, u_realloc, u_pick, u_grow, state, ident, size_of, owner,
                  position, live, out_op, out_obj, out_size, out_thread, out, n_ops, drain, touch, scan_every,
                  scan_count, scan_bytes, rate, grow_min, grow_max, max_size):
    """Weave skeleton rows state[S_ROW].. into out[...] from `out` on; returns (rows written up to, reason).

    `ident[slot]` is -1 once the slot's object is freed; sizes and the live
    array are kept only when REALLOC rows or scans need them.
    """
    n_rows = is_free.shape[0]
    cap = out_op.shape[0]
    has_realloc = u_realloc.shape[0] > 0
    track_live = has_realloc or scan_every > 0
    next_id = state[S_NEXT_ID]
    n_live = state[S_LIVE]
    emitted = state[S_EMITTED]
    row = state[S_ROW]
    step = state[S_STEP]
    scan_k = state[S_SCAN_K]
    scan_cursor = state[S_SCAN_CURSOR]
    size_at = state[S_SIZE_AT]
    realloc_at = state[S_REALLOC_AT]
    row_base = state[S_ROW_BASE]
    held = n_live if drain else 0  # FREE rows the drain will add
    reason = NEED_ROWS
    while row < n_rows:
        if step == _STEP_REALLOC:
            if has_realloc and u_realloc[row] < rate:
                if n_live > 0:
                    if emitted + 1 + held > n_ops:
                        reason = CUT
                        break
                    if out == cap:
                        reason = FULL
                        break
                    victim = live[min(np.int64(u_pick[realloc_at] * n_live), n_live - 1)]
                    grown = np.int64(size_of[victim] * (grow_min + (grow_max - grow_min) * u_grow[realloc_at]))
                    grown = min(max(grown, size_of[victim] + 1), max_size)
                    size_of[victim] = grown
                    out_op[out] = OP_REALLOC
                    out_obj[out] = ident[victim]
                    out_size[out] = grown
                    out_thread[out] = owner[victim]
                    out += 1
                    emitted += 1
                realloc_at += 1
            step = _STEP_ROW
        if step == _STEP_ROW:
            slot = slot_of[row]
            if is_free[row]:
                if emitted + 1 + (held - 1 if drain else 0) > n_ops:
                    reason = CUT
                    break
                if out == cap:
                    reason = FULL
                    break
                n_live -= 1
                if track_live:
                    at = position[slot]
                    moved = live[n_live]
                    live[at] = moved
                    position[moved] = at
                out_op[out] = OP_FREE
                out_obj[out] = ident[slot]
                ident[slot] = -1
                out_size[out] = 0
                out_thread[out] = thread_of[row]
                step = _STEP_SCAN
            else:
                after = held + 1 if drain else 0
                if emitted + (2 if touch else 1) + after > n_ops:
                    if touch and emitted + 1 + after <= n_ops:  # the cut would part the ALLOC from its touch
                        state[S_KEEP_PRE] = emitted + 1
                        state[S_LIVE_PRE] = after
                    else:
                        state[S_KEEP_PRE] = emitted
                        state[S_LIVE_PRE] = held
                    reason = CUT
                    break
                if out == cap:
                    reason = FULL
                    break
                ident[slot] = next_id
                owner[slot] = thread_of[row]
                if track_live:
                    size_of[slot] = sizes[size_at]
                    position[slot] = n_live
                    live[n_live] = slot
                n_live += 1
                out_op[out] = OP_ALLOC
                out_obj[out] = next_id
                out_size[out] = sizes[size_at]
                next_id += 1
                size_at += 1
                out_thread[out] = thread_of[row]
                step = _STEP_TOUCH if touch else _STEP_SCAN
            out += 1
            emitted += 1
            held = n_live if drain else 0
        if step == _STEP_TOUCH:
            if out == cap:
                reason = FULL
                break
            slot = slot_of[row]
            out_op[out] = OP_ACCESS
            out_obj[out] = ident[slot]
            out_size[out] = 0
            out_thread[out] = thread_of[row]
            out += 1
            emitted += 1
            step = _STEP_SCAN
        if step == _STEP_SCAN:
            if scan_every > 0 and (row_base + row + 1) % scan_every == 0 and n_live > 0:
                count = min(scan_count, n_live)
                start = scan_cursor % n_live
                while scan_k < count:
                    if emitted + 1 + held > n_ops:
                        reason = CUT
                        break
                    if out == cap:
                        reason = FULL
                        break
                    target = live[(start + scan_k) % n_live]
                    out_op[out] = OP_ACCESS
                    out_obj[out] = ident[target]
                    out_size[out] = min(scan_bytes, size_of[target])
                    out_thread[out] = owner[target]
                    out += 1
                    emitted += 1
                    scan_k += 1
                if scan_k < count:
                    break
                scan_cursor = start + count
                scan_k = 0
            step = _STEP_REALLOC
            row += 1
    if reason == CUT and not (step == _STEP_ROW and not is_free[row]):
        state[S_KEEP_PRE] = emitted
        state[S_LIVE_PRE] = held
    state[S_NEXT_ID] = next_id
    state[S_LIVE] = n_live
    state[S_EMITTED] = emitted
    state[S_ROW] = row
    state[S_STEP] = step
    state[S_SCAN_K] = scan_k
    state[S_SCAN_CURSOR] = scan_cursor
    state[S_SIZE_AT] = size_at
    state[S_REALLOC_AT] = realloc_at
    return out, reason


class Weaver:
    """Trace rows from skeleton chunks, cut at `n_ops` (see the module docstring); state kept between chunks."""

    def __init__(self, access: Access, realloc_fraction: float, realloc_growth: tuple[float, float], max_size: int,
                 n_ops: int, drain: bool) -> None:
        self.access, self.n_ops, self.drain = access, int(n_ops), bool(drain)
        self.rate = realloc_fraction / (1.0 - realloc_fraction) if realloc_fraction > 0 else 0.0
        self.grow_min, self.grow_max = (float(value) for value in realloc_growth)
        self.max_size = int(max_size)
        self.scan_every = access.scan_every if access.scans else 0
        self.state = np.zeros(N_STATE, np.int64)
        self.tables = self._tables(1024)
        self.n_slots = 0
        self.cut = False
        self._chunk: tuple[np.ndarray, ...] | None = None

    @staticmethod
    def _tables(n_slots: int) -> list[np.ndarray]:
        """Per slot: id (-1 = free), size, owner thread, position in the live array; and the live array."""
        return [np.full(n_slots, -1, np.int64), np.empty(n_slots, np.int64), np.empty(n_slots, np.int32),
                np.empty(n_slots, np.int64), np.empty(n_slots, np.int64)]

    def reserve(self, n_slots: int) -> None:
        """Room for slots 0..n_slots-1 (the skeleton's slots so far)."""
        self.n_slots = max(self.n_slots, n_slots)
        if n_slots > self.tables[0].size:
            grown = self._tables(max(2 * self.tables[0].size, n_slots))
            for new, old in zip(grown, self.tables, strict=True):
                new[: old.size] = old
            self.tables = grown

    @property
    def needs_rows(self) -> bool:
        return self._chunk is None

    def feed(self, is_free: np.ndarray, slot: np.ndarray, thread: np.ndarray, sizes: np.ndarray,
             u_realloc: np.ndarray, u_pick: np.ndarray, u_grow: np.ndarray) -> None:
        """The next skeleton chunk: a size per ALLOC row; per row a REALLOC uniform (or none), per REALLOC two."""
        assert self._chunk is None, "the previous chunk is not used up"
        self._chunk = (is_free, slot, thread, sizes, u_realloc, u_pick, u_grow)
        self.state[[S_ROW, S_STEP, S_SIZE_AT, S_REALLOC_AT]] = 0

    def emit(self, out: tuple[np.ndarray, ...], at: int) -> tuple[int, int]:
        """Write rows into `out` from `at` on; returns (rows written up to, NEED_ROWS | FULL | CUT)."""
        assert self._chunk is not None and not self.cut
        access = self.access
        at, reason = _weave_kernel(*self._chunk, self.state, *self.tables, *out, at, self.n_ops, self.drain,
                                   access.touch, self.scan_every, access.scan_count, access.scan_bytes, self.rate,
                                   self.grow_min, self.grow_max, self.max_size)
        if reason == NEED_ROWS:
            self.state[S_ROW_BASE] += self._chunk[0].size
            self._chunk = None
        elif reason == CUT:
            self.cut = True
        return at, reason

    def finish(self) -> None:
        """The skeleton ended before the cut: every row is kept."""
        if not self.cut:
            self.state[S_KEEP_PRE] = self.state[S_EMITTED]
            self.state[S_LIVE_PRE] = self.state[S_LIVE] if self.drain else 0

    @property
    def n_live(self) -> int:
        return int(self.state[S_LIVE])

    @property
    def rows_before_touch_rule(self) -> tuple[int, int]:
        """(rows kept, objects live after them) as the cut found them, before an ALLOC is kept with its touch."""
        return int(self.state[S_KEEP_PRE]), int(self.state[S_LIVE_PRE])

    def survivors(self) -> np.ndarray:
        """The live objects, oldest first, as keys id << OWNER_BITS | owner thread (see `split_survivors`)."""
        ident, owner = self.tables[0][: self.n_slots], self.tables[2][: self.n_slots]
        alive = ident >= 0
        keys = (ident[alive] << OWNER_BITS) | owner[alive]
        keys.sort()
        return keys


def split_survivors(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, owner threads as int32) of survivor keys."""
    return keys >> OWNER_BITS, (keys & ((1 << OWNER_BITS) - 1)).astype(np.int32)


def weave(rng: np.random.Generator, is_free: np.ndarray, obj: np.ndarray, thread: np.ndarray,
          size_of: np.ndarray, access: Access, realloc_fraction: float, realloc_growth: tuple[float, float],
          max_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In memory: the trace columns (op, obj, size, thread) of a whole skeleton whose ids are 0..n_ids-1.

    The ids must be in allocation order (as `workloads.generator` gives
    them); `size_of[id]` is each object's requested size (it is updated in
    place by REALLOC rows).  Draws as `Weaver` does: S REALLOC uniforms,
    then k victim uniforms and k growth uniforms (k = REALLOC rows).
    """
    n = is_free.shape[0]
    weaver = Weaver(access, realloc_fraction, realloc_growth, max_size, 1 << 62, False)
    if realloc_fraction > 0:
        u_realloc = rng.random(n)
        k = int(np.count_nonzero(u_realloc < weaver.rate))
        u_pick, u_grow = rng.random(k), rng.random(k)
    else:
        u_realloc = u_pick = u_grow = np.empty(0)
    n_ids = size_of.size
    weaver.tables = [np.full(n_ids, -1, np.int64), size_of, np.empty(n_ids, np.int32), np.empty(n_ids, np.int64),
                     np.empty(n_ids, np.int64)]
    obj = obj.astype(np.int64)
    weaver.feed(is_free, obj, thread.astype(np.int32), size_of[obj[~is_free]], u_realloc, u_pick, u_grow)
    capacity = n + (u_pick.size if realloc_fraction > 0 else 0) + (n if access.touch else 0)
    if weaver.scan_every:
        capacity += (n // weaver.scan_every) * access.scan_count
    out = (np.empty(capacity, np.int8), np.empty(capacity, np.int64), np.empty(capacity, np.int64),
           np.empty(capacity, np.int32))
    at = weaver.emit(out, 0)[0] if n else 0
    return tuple(column[:at] for column in out)  # type: ignore[return-value]
