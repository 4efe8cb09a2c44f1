"""Slots: per-object table indices bounded by the peak live count, assigned (and checked) chunk by chunk.

Object ids in a trace only have to be unique while live: a generator numbers
objects in allocation order (ids grow without bound), an importer uses
addresses.  The replay driver and the metric passes keep one record per
object, so they index their tables by a *slot* instead: an ALLOC takes the
most recently released slot (a LIFO stack of free slots) or else the next
unused one, and a FREE releases its object's slot.  The number of slots ever
used is then exactly the peak number of live objects, whatever the number of
allocations, and the slot column of a trace is a pure function of its op and
obj columns (same trace, same slots, whatever the chunking).

`SlotMap` holds the state between chunks: an open-addressing hash map from
live object ids to their slots (`labcore.hashtable`; at most half full), the
free-slot stack, and per slot
the object it holds and that object's current size.  `assign(op, obj, size,
thread)` returns the slot column of a chunk; with `validate=True` it also
checks every row as `workloads.trace` does (op code, ids live when used, sizes
in range, threads) and raises `TraceError` naming the first bad row.  A
stream of chunks is thus validated in memory bounded by its live objects: a
FREE of an object that is not live is reported as such (whether it was freed
before or never allocated would need a record of every id ever seen).

The kernel grows nothing itself: when the map would pass half full, or every
slot is taken, it stops at that row and returns NEED_ROOM; `SlotMap` doubles
its arrays and resumes there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.hashtable import EMPTY, delete, find, rehash
from labcore.jitcache import holds_kernels
from workloads import trace as trace_format
from workloads.trace import MAX_REQUEST_SIZE, MAX_THREADS, OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, TraceError

holds_kernels(__file__)

# Slots of the map's `words`.
W_LIVE, W_USED, W_FREE, W_PEAK, W_ROWS, W_LIVE_BYTES, W_PEAK_BYTES = 0, 1, 2, 3, 4, 5, 6
N_WORDS = 7

OK = 0
NEED_ROOM = -1


@njit(cache=True)
def _assign(op, obj, size, thread, start, keys, values, free_slots, slot_obj, slot_size, words, slots_out,
            validate):
    """Slots of rows start.. of a chunk; returns (row, code): code OK (all done), NEED_ROOM or a trace error."""
    mask = keys.shape[0] - 1
    room = keys.shape[0] >> 1
    n_slots = slot_obj.shape[0]
    for row in range(start, op.shape[0]):
        code = op[row]
        ident = obj[row]
        request = size[row]
        if validate:
            if code < 0 or code > 3:
                return row, trace_format._E_OP
            if ident < 0:
                return row, trace_format._E_OBJ_NEGATIVE
            if thread[row] < 0 or thread[row] >= MAX_THREADS:
                return row, trace_format._E_THREAD
        index = find(keys, ident, mask)
        live = keys[index] != EMPTY
        if code == OP_ALLOC:
            if validate:
                if live:
                    return row, trace_format._E_ALLOC_LIVE
                if request <= 0:
                    return row, trace_format._E_SIZE_NONPOSITIVE
                if request > MAX_REQUEST_SIZE:
                    return row, trace_format._E_SIZE_TOO_LARGE
            if words[W_LIVE] + 1 > room or (words[W_FREE] == 0 and words[W_USED] == n_slots):
                return row, NEED_ROOM
            if words[W_FREE] > 0:
                words[W_FREE] -= 1
                slot = free_slots[words[W_FREE]]
            else:
                slot = words[W_USED]
                words[W_USED] += 1
            keys[index] = ident
            values[index] = slot
            slot_obj[slot] = ident
            slot_size[slot] = request
            words[W_LIVE] += 1
            if words[W_LIVE] > words[W_PEAK]:
                words[W_PEAK] = words[W_LIVE]
            words[W_LIVE_BYTES] += request
            if words[W_LIVE_BYTES] > words[W_PEAK_BYTES]:
                words[W_PEAK_BYTES] = words[W_LIVE_BYTES]
            slots_out[row] = slot
            continue
        if validate and not live:
            return row, trace_format._E_NOT_LIVE
        slot = values[index]
        slots_out[row] = slot
        if code == OP_FREE:
            if validate and request != 0:
                return row, trace_format._E_FREE_SIZE
            delete(keys, values, index, mask)
            free_slots[words[W_FREE]] = slot
            words[W_FREE] += 1
            words[W_LIVE] -= 1
            words[W_LIVE_BYTES] -= slot_size[slot]
        elif code == OP_REALLOC:
            if validate:
                if request <= 0:
                    return row, trace_format._E_SIZE_NONPOSITIVE
                if request > MAX_REQUEST_SIZE:
                    return row, trace_format._E_SIZE_TOO_LARGE
            words[W_LIVE_BYTES] += request - slot_size[slot]
            if words[W_LIVE_BYTES] > words[W_PEAK_BYTES]:
                words[W_PEAK_BYTES] = words[W_LIVE_BYTES]
            slot_size[slot] = request
        elif code == OP_ACCESS:
            if validate and (request < 0 or request > slot_size[slot]):
                return row, trace_format._E_ACCESS_SIZE
    return op.shape[0], OK


class SlotMap:
    """The running state of slot assignment over the chunks of one trace, in order."""

    def __init__(self, expected_live: int = 1024) -> None:
        slots = 1 << max(4, int(expected_live).bit_length())
        self.keys = np.full(2 * slots, EMPTY, np.int64)
        self.values = np.zeros(2 * slots, np.int64)
        self.free_slots = np.zeros(slots, np.int64)
        self.slot_obj = np.zeros(slots, np.int64)
        self.slot_size = np.zeros(slots, np.int64)
        self.words = np.zeros(N_WORDS, np.int64)

    @property
    def peak_live(self) -> int:
        """Largest number of objects live at once so far (= slots used)."""
        return int(self.words[W_PEAK])

    @property
    def peak_live_bytes(self) -> int:
        """Largest sum of the requested sizes of the objects live at once so far."""
        return int(self.words[W_PEAK_BYTES])

    @property
    def rows(self) -> int:
        """Rows assigned so far."""
        return int(self.words[W_ROWS])

    def assign(self, op: np.ndarray, obj: np.ndarray, size: np.ndarray, thread: np.ndarray,
               validate: bool = False, first_row: int | None = None) -> np.ndarray:
        """The slot column of the next chunk (int64); validate=True raises TraceError at its first bad row.

        `first_row` is the chunk's first row number in the trace (for messages; default: rows so far).
        """
        first_row = self.rows if first_row is None else int(first_row)
        slots = np.empty(op.shape[0], np.int64)
        row = 0
        while True:
            row, code = _assign(op, obj, size, thread, row, self.keys, self.values, self.free_slots,
                                self.slot_obj, self.slot_size, self.words, slots, validate)
            if code == OK:
                break
            if code != NEED_ROOM:
                message = trace_format.describe_error(
                    first_row + int(row), int(code), int(op[row]), int(obj[row]), int(size[row]), int(thread[row])
                )
                raise TraceError(message, row=first_row + int(row))
            self._grow()
        self.words[W_ROWS] += op.shape[0]
        return slots

    def _grow(self) -> None:
        self.keys, self.values = rehash(self.keys, self.values, 2 * self.keys.shape[0])
        slots = 2 * self.slot_obj.shape[0]
        for name in ("free_slots", "slot_obj", "slot_size"):
            old = getattr(self, name)
            grown = np.zeros(slots, np.int64)
            grown[: old.shape[0]] = old
            setattr(self, name, grown)


@njit(cache=True)
def _assign_dense(op, dense, n_ids):
    """The same assignment as `_assign` for a whole validated trace whose ids are dense (0..n_ids-1): an array
    instead of the hash map."""
    slot_of = np.empty(n_ids, np.int64)
    free_slots = np.empty(n_ids + 1, np.int64)
    slots = np.empty(op.shape[0], np.int64)
    n_free = 0
    used = 0
    live = 0
    peak = 0
    for row in range(op.shape[0]):
        ident = dense[row]
        if op[row] == OP_ALLOC:
            if n_free > 0:
                n_free -= 1
                slot = free_slots[n_free]
            else:
                slot = used
                used += 1
            slot_of[ident] = slot
            live += 1
            if live > peak:
                peak = live
        else:
            slot = slot_of[ident]
            if op[row] == OP_FREE:
                free_slots[n_free] = slot
                n_free += 1
                live -= 1
        slots[row] = slot
    return slots, peak


@njit(cache=True)
def _sizes_before(op, slots, size, n_slots):
    live = np.zeros(max(n_slots, 1), np.int64)
    out = np.zeros(op.shape[0], np.int64)
    for row in range(op.shape[0]):
        slot = slots[row]
        if op[row] == OP_ALLOC:
            live[slot] = size[row]
        else:
            out[row] = live[slot]
            if op[row] == OP_REALLOC:
                live[slot] = size[row]
    return out


def sizes_before(op: np.ndarray, slots: np.ndarray, size: np.ndarray, n_slots: int) -> np.ndarray:
    """Per row of a validated trace, the requested size its object had just before the row (0 for an ALLOC)."""
    if not op.shape[0]:
        return np.zeros(0, np.int64)
    return _sizes_before(op, slots, size, int(n_slots))


def peak_live_bytes(op: np.ndarray, slots: np.ndarray, size: np.ndarray, n_slots: int) -> int:
    """Largest sum of the requested sizes of the objects live at once, from a validated trace's slot column."""
    if not op.shape[0]:
        return 0
    before = sizes_before(op, slots, size, n_slots)
    grows = (op == OP_ALLOC) | (op == OP_REALLOC)
    change = np.where(grows, size - before, np.where(op == OP_FREE, -before, 0))
    return max(int(np.cumsum(change).max()), 0)


def assign_slots(op: np.ndarray, dense: np.ndarray, n_ids: int) -> tuple[np.ndarray, int]:
    """(slot column, peak live objects) of a whole, already validated trace with dense ids (`Trace.dense_obj`)."""
    if not op.shape[0]:
        return np.zeros(0, np.int64), 0
    slots, peak = _assign_dense(op, dense, max(int(n_ids), 1))
    return slots, int(peak)


__all__ = ["NEED_ROOM", "OK", "SlotMap", "assign_slots", "peak_live_bytes", "sizes_before"]
