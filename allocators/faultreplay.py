"""Safety replay: run each fault of a fault trace through a model, and record whether, how and when it is caught.

One clean replay walks the trace once.  At each fault's anchor (before row
`at`) the allocator's state and the driver's running state are copied, and
on the copy:

1. the fault is carried out as a program would do it: double, invalid,
   foreign and stale frees call the allocator's `free_checked`; overflows, underflows and
   writes after free store `FAULT_BYTE` into the model's simulated memory
   (`write_bytes`), which a later check may read.  A stale free releases the
   whole heap (every live block freed, in object order, as the real replays
   do; an allocator without single frees is reset), then frees the target's
   old address again;
2. the trace goes on for a continuation window of `window` rows through the
   ordinary replay kernels, with every check on (most checks fire only when
   the damaged block is next freed or handed out).

The first check that fires ends the fault's run: *detected*, with the
allocator's message, the mechanism, the row and the latency (0: at the
faulty call itself, n: at the n-th row after it).  A window that ends
without one is *not detected*; a model that finds its heap damaged beyond
its checks (`ST_CORRUPTED`) stops there, *not detected* too (a real
allocator would go on corrupted).  The clean replay then continues to the
next fault, so faults never see each other.

Detection comes from the allocator's own checks reading its own state,
never from the fault table: the table only says what the program does.  An
allocator without `safety_kernels` has no checks; its faults are recorded as
not detected without being run (running them would corrupt the model's
arrays).  Each fault is classified as it hits this allocator
(`workloads.faults.fault_class`): a double free whose address another live
object holds again is "after reuse", an overflow within granted minus
requested bytes is "slack".

The outcome record, `FaultOutcome`, is shared with the real allocators'
fault replays (`bench.real.safety`), so the two are tabulated alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from allocators import replay as driver
from allocators.detections import (
    FAULT_BYTE,
    FOREIGN_GAP,
    ST_CORRUPTED,
    detection_of,
    is_detection,
)
from workloads.faults import (
    F_DOUBLE_FREE,
    F_FOREIGN_FREE,
    F_INVALID_FREE,
    F_OVERFLOW,
    F_STALE_FREE,
    F_UAF_WRITE,
    F_UNDERFLOW,
    FAULT_KINDS,
    check_fault_trace,
    fault_class,
    target_rows,
)
from workloads.trace import OP_ACCESS, OP_FREE, Trace

if TYPE_CHECKING:
    from allocators.protocol import Allocator

#: Rows replayed after each fault by default.
DEFAULT_WINDOW = 1000
#: Outcomes.
DETECTED, NOT_DETECTED, SKIPPED = "detected", "not_detected", "skipped"


@dataclass(frozen=True)
class FaultOutcome:
    """What one fault did in one allocator (a model or a real one)."""

    index: int  # the fault's row in the trace's fault table
    kind: str  # FAULT_KINDS
    fault_class: str  # FAULT_CLASSES, as it hit this allocator
    at: int
    obj: int
    param: int
    outcome: str  # DETECTED, NOT_DETECTED or SKIPPED
    latency: int = -1  # rows from the fault to the detection (0: the faulty call itself); -1 if none
    row: int = -1  # trace row where it was detected (at - 1 ... for the faulty call itself: at - 1 + latency)
    message: str = ""  # the allocator's message (or the signal), or why not detected / skipped
    mechanism: str = ""  # the mechanism that caught it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _copy_state(state: Any) -> Any:
    if isinstance(state, np.ndarray):
        return state.copy()
    return tuple(_copy_state(item) for item in state)


def _not_run(index: int, kind: str, klass: str, at: int, obj: int, param: int, outcome: str,
             message: str) -> FaultOutcome:
    return FaultOutcome(index, kind, klass, at, obj, param, outcome, message=message)


def replay_faults(allocator: Allocator, trace: Trace, window: int = DEFAULT_WINDOW) -> list[FaultOutcome]:
    """Every fault of `trace` (a fault trace) run through `allocator` on a fresh heap (module docstring)."""
    faults = check_fault_trace(trace)
    if faults is None or not len(faults):
        return []
    window = int(window)
    if window < 0:
        raise ValueError(f"window must be >= 0 rows, got {window}")
    job = allocator.prepare_replay(trace)  # validates the trace's rows; a fresh heap
    safety = allocator.safety_kernels
    last_row, immediate = target_rows(trace, faults)
    n_rows = len(trace)
    scratch_addr = np.full(min(window, n_rows) + 1, -1, np.int64)
    scratch_granted = np.zeros(min(window, n_rows) + 1, np.int64)
    no_failures = np.zeros(0, np.int64)
    outcomes = []
    for index in range(len(faults)):
        at, kind_code = int(faults.at[index]), int(faults.kind[index])
        obj, param = int(faults.obj[index]), int(faults.param[index])
        kind = FAULT_KINDS[kind_code]
        job.run(stop=at)
        if job.stopped:
            outcomes.append(_not_run(index, kind, kind, at, obj, param, SKIPPED,
                                     f"the clean replay failed at row {int(job.totals[driver.T_FAILED_ROW])}"))
            continue
        block_row = int(last_row[index])
        addr = int(job.addr[block_row]) if block_row >= 0 else allocator.capacity + FOREIGN_GAP
        granted = int(job.granted[block_row]) if block_row >= 0 else 0
        requested = int(trace.size[block_row]) if block_row >= 0 else 0
        live = job.objects[driver.O_GRANTED::driver.OBJECT_COLUMNS] > 0
        reused = bool(np.any(job.objects[driver.O_ADDR::driver.OBJECT_COLUMNS][live] == addr))
        klass = fault_class(kind_code, param, requested, granted, bool(immediate[index]), reused)
        if block_row >= 0 and addr < 0:
            outcomes.append(_not_run(index, kind, klass, at, obj, param, SKIPPED,
                                     "the target's allocation failed in this allocator"))
            continue
        if safety is None:
            outcomes.append(_not_run(index, kind, klass, at, obj, param, NOT_DETECTED,
                                     "the allocator has no checks"))
            continue
        state = _copy_state(allocator.state)
        thread = int(trace.thread[at - 1]) if at > 0 else 0
        live = _live_blocks(trace, job.addr, at) if kind_code == F_STALE_FREE else None
        status = _carry_out(allocator, safety, state, kind_code, addr, requested, param, thread, live)
        if status < 0:
            outcomes.append(_outcome(index, kind, klass, at, obj, param, status, 0, at - 1))
            continue
        stop = min(at + window, n_rows)
        totals = job.totals.copy()
        totals[driver.T_KEEP_GOING] = 0
        allocator.replay_kernel(
            state, trace.op[at:stop], job.slots[at:stop], trace.size[at:stop], trace.thread[at:stop],
            job.objects.copy(), job.sample_every, scratch_addr[: stop - at], scratch_granted[: stop - at],
            job.timeline.copy(), totals, no_failures,
        )
        failed_row = int(totals[driver.T_FAILED_ROW])
        if failed_row >= 0:
            outcomes.append(_outcome(index, kind, klass, at, obj, param, int(totals[driver.T_STATUS]),
                                     failed_row - at + 1, failed_row))
        else:
            outcomes.append(_not_run(index, kind, klass, at, obj, param, NOT_DETECTED,
                                     f"no check fired in the {stop - at} rows after the fault"))
    return outcomes


def _live_blocks(trace: Trace, addresses: np.ndarray, at: int) -> np.ndarray:
    """Addresses of the objects live before row `at`, in dense object id order."""
    rows = np.flatnonzero(trace.op[:at] != OP_ACCESS)
    ids = trace.dense_obj[rows]
    reverse = rows[::-1]
    _, last = np.unique(ids[::-1], return_index=True)  # each id's last row (ids sorted: dense id order)
    last_rows = reverse[last]
    return addresses[last_rows[trace.op[last_rows] != OP_FREE]]


def _carry_out(allocator: Allocator, safety: Any, state: Any, kind: int, addr: int, requested: int, param: int,
               thread: int, live: np.ndarray | None) -> int:
    """Do what the fault's program does, on `state`; the first status < 0, or 0.  A stale free releases the
    whole heap first: every live block freed in object order (as the real replays do), or, for an allocator
    without single frees, its reset."""
    if kind == F_DOUBLE_FREE or kind == F_FOREIGN_FREE:
        return int(safety.free_checked(state, addr + (param if kind == F_FOREIGN_FREE else 0), thread)[0])
    if kind == F_INVALID_FREE:
        return int(safety.free_checked(state, addr + param, thread)[0])
    if kind == F_STALE_FREE:
        if not allocator.supports_deallocate:
            allocator.kernels.reset_state(state)
        else:
            for block in live.tolist():
                status = int(safety.free_checked(state, block, thread)[0])
                if status < 0:
                    return status
        return int(safety.free_checked(state, addr, thread)[0])
    if kind == F_UAF_WRITE:
        return int(safety.write_bytes(state, addr + param, 8, FAULT_BYTE))
    if kind == F_OVERFLOW:
        return int(safety.write_bytes(state, addr + requested, param, FAULT_BYTE))
    if kind == F_UNDERFLOW:
        return int(safety.write_bytes(state, addr - param, param, FAULT_BYTE))
    raise ValueError(f"unknown fault kind {kind}")


def _outcome(index: int, kind: str, klass: str, at: int, obj: int, param: int, status: int, latency: int,
             row: int) -> FaultOutcome:
    if is_detection(status):
        _, message, mechanism = detection_of(status)
        return FaultOutcome(index, kind, klass, at, obj, param, DETECTED, latency, row, message, mechanism)
    if status == ST_CORRUPTED:
        return FaultOutcome(index, kind, klass, at, obj, param, NOT_DETECTED, -1, row,
                            f"heap corrupted undetected (the model stopped at row {row})")
    return FaultOutcome(index, kind, klass, at, obj, param, NOT_DETECTED, -1, row,
                        f"the replay failed at row {row} (status {status}) without a check firing")
