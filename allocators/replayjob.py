"""The buffers and running state of one replay: in memory (`ReplayJob`) or chunk by chunk (`StreamReplay`).

Both are made by the allocator's shell (`Allocator.prepare_replay`,
`Allocator.prepare_stream_replay`) on a fresh heap, and allocate (and touch)
every array they need before the clock starts, so a timed kernel call pays
only for the allocator's own work:

- `objects`: one 32 B record per slot (`workloads.slots`: a per-object index
  bounded by the peak live count), address, granted, requested;
- `timeline`: the samples every `sample_every` rows, sized for the whole trace;
- `totals`: the driver's running state between calls (`allocators.replay`);
- `failure_rows`: (row, status) of failing rows in keep-going mode.

`ReplayJob` holds a whole Trace and its per-row log (`addr`, `granted`):
`run(start, stop)` replays any run of rows and may be called again to
continue where it stopped, and `finish()` gives the AllocLog.

`StreamReplay` holds only the per-row log of the chunk at hand: each
`run_chunk(chunk)` replays the next `TraceChunk` (`workloads.stream`) into
reusable buffers and returns views of them, which the caller consumes (the
metric accumulators) before the next chunk overwrites them.  It is sized
from the trace's `TraceFacts`, which may come from a file: every chunk is
checked against them (its rows in order, slots and threads inside the tables,
no more rows than the facts say) before it reaches the kernel.  `finish()`
gives an AllocLog with empty per-row arrays (`streamed` true).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from allocators import replay as driver
from allocators.errors import error_for
from allocators.log import AllocLog
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk
from workloads.trace import OP_NAMES, Trace

if TYPE_CHECKING:
    from allocators.protocol import Allocator

OP_LABELS = tuple(name.upper() for name in OP_NAMES)


def new_totals(keep_going: bool = False) -> np.ndarray:
    """The running state of a replay that has not started (`allocators.replay` T_* slots)."""
    totals = np.zeros(driver.N_TOTALS, np.int64)
    totals[driver.T_FAILED_ROW] = -1
    totals[driver.T_KEEP_GOING] = int(keep_going)
    return totals


class _Replay:
    """What both kinds of replay hold: the tables, the timeline, the running totals, the failures."""

    def __init__(self, allocator: Allocator, n_rows: int, n_slots: int, sample_every: int, keep_going: bool,
                 max_failures: int) -> None:
        self.allocator = allocator
        self.n_rows = n_rows
        self.sample_every = sample_every
        self.objects = np.full(max(n_slots, 1) * driver.OBJECT_COLUMNS, 0, np.int64)
        self.timeline = np.full((n_rows // sample_every + 2, len(driver.TIMELINE_COLUMNS)), 0, np.int64)
        self.totals = new_totals(keep_going)
        self.failure_rows = np.zeros(2 * max_failures, np.int64)
        self.failed_row_text = ""

    @property
    def rows_done(self) -> int:
        """Rows replayed so far (where the next call starts); at a stopping failure, that row."""
        return int(self.totals[driver.T_ROW])

    @property
    def stopped(self) -> bool:
        """A row failed and the replay stopped there (not in keep-going mode)."""
        return not self.totals[driver.T_KEEP_GOING] and self.totals[driver.T_FAILED_ROW] >= 0

    def failures(self) -> np.ndarray:
        """(row, status) of the failing rows recorded so far (keep-going mode), as an int64 array [k, 2]."""
        recorded = min(int(self.totals[driver.T_FAILURES]), self.failure_rows.shape[0] // 2)
        return self.failure_rows[: 2 * recorded].reshape(-1, 2).copy()

    def _kernel(self, op, slots, size, thread, addr, granted) -> int:
        return int(self.allocator.replay_kernel(
            self.allocator.state, op, slots, size, thread, self.objects, self.sample_every, addr, granted,
            self.timeline, self.totals, self.failure_rows,
        ))

    def _describe_failure(self, op: np.ndarray, obj: np.ndarray, size: np.ndarray, thread: np.ndarray,
                          first_row: int) -> None:
        """Remember the stopping row's description while its chunk is at hand."""
        if self.stopped and not self.failed_row_text:
            row = int(self.totals[driver.T_FAILED_ROW])
            local = row - first_row
            self.failed_row_text = (f"trace row {row} ({OP_LABELS[int(op[local])]} of object {int(obj[local])}, "
                                    f"size {int(size[local])}, thread {int(thread[local])})")

    def _log(self, addr: np.ndarray, granted: np.ndarray, streamed: bool) -> AllocLog:
        """A stopping failure as its exception, or the state as an AllocLog."""
        allocator, totals = self.allocator, self.totals
        if self.stopped:
            live_blocks = int(np.count_nonzero(self.objects[1::driver.OBJECT_COLUMNS]))  # granted > 0: live
            raise error_for(int(totals[driver.T_STATUS]),
                            f"{allocator.name}: {self.failed_row_text} {allocator._state_text(live_blocks)}")
        if self.rows_done != self.n_rows:
            raise ValueError(f"replay finished at row {self.rows_done} of {self.n_rows}: replay the rest first")
        return AllocLog(
            allocator=allocator.name, params=dict(allocator.params), capacity=allocator.capacity,
            addr=addr, granted=granted, timeline=self.timeline[: int(totals[driver.T_SAMPLES])].copy(),
            sample_every=int(self.sample_every),
            peak_footprint=int(totals[driver.T_PEAK_FOOTPRINT]),
            peak_live_requested=int(totals[driver.T_PEAK_LIVE_REQUESTED]),
            peak_live_granted=int(totals[driver.T_PEAK_LIVE_GRANTED]),
            peak_metadata_bytes=int(totals[driver.T_PEAK_METADATA]),
            final_footprint=int(totals[driver.T_FINAL_FOOTPRINT]),
            final_metadata_bytes=int(totals[driver.T_FINAL_METADATA]),
            counters=allocator.counters(),
            failures=self.failures(), n_failures=int(totals[driver.T_FAILURES]), streamed=streamed,
        )


class ReplayJob(_Replay):
    """A replay of a whole Trace in memory, with its per-row log; rows may be replayed in any chunking."""

    def __init__(self, allocator: Allocator, trace: Trace, sample_every: int, keep_going: bool = False,
                 max_failures: int = 0) -> None:
        super().__init__(allocator, len(trace), trace.n_slots, sample_every, keep_going, max_failures)
        self.trace = trace
        self.addr = np.full(len(trace), -1, np.int64)
        self.granted = np.full(len(trace), 0, np.int64)
        self.slots = trace.slots

    def run(self, start: int | None = None, stop: int | None = None) -> int:
        """Replay rows [start, stop) (default: from where the last call stopped to the end); return rows replayed.

        `start` must be where the replay stands (`rows_done`): rows are replayed in order, each once.
        """
        done, n_rows = self.rows_done, self.n_rows
        start = done if start is None else int(start)
        stop = n_rows if stop is None else int(stop)
        if start != done:
            raise ValueError(f"replay stands at row {done}; cannot run from row {start}")
        if not start <= stop <= n_rows:
            raise ValueError(f"rows [{start}, {stop}) outside the trace's {n_rows} rows")
        if self.stopped or start == stop:
            return 0
        trace = self.trace
        replayed = self._kernel(trace.op[start:stop], self.slots[start:stop], trace.size[start:stop],
                                trace.thread[start:stop], self.addr[start:stop], self.granted[start:stop])
        self._describe_failure(trace.op[start:stop], trace.obj[start:stop], trace.size[start:stop],
                               trace.thread[start:stop], start)
        return replayed

    def run_timed(self, start: int | None = None, stop: int | None = None) -> float:
        """run(), returning its wall time in seconds."""
        started = time.perf_counter()
        self.run(start, stop)
        return time.perf_counter() - started

    def finish(self) -> AllocLog:
        """Turn a stopping failure into its exception, or the buffers into an AllocLog."""
        return self._log(self.addr, self.granted, streamed=False)


class StreamReplay(_Replay):
    """A replay fed chunk by chunk, sized from the trace's facts; only the current chunk's log is kept."""

    def __init__(self, allocator: Allocator, facts: TraceFacts, sample_every: int, chunk_rows: int,
                 keep_going: bool = False, max_failures: int = 0) -> None:
        super().__init__(allocator, facts.rows, facts.peak_live_objects, sample_every, keep_going, max_failures)
        self.n_slots = max(facts.peak_live_objects, 1)
        self.chunk_rows = chunk_rows
        self.addr = np.full(chunk_rows, -1, np.int64)
        self.granted = np.full(chunk_rows, 0, np.int64)
        self.seconds = 0.0  # kernel time of every chunk so far

    def run_chunk(self, chunk: TraceChunk) -> tuple[np.ndarray, np.ndarray]:
        """Replay the next chunk (timed: `seconds`); return views of its addresses and granted sizes."""
        rows = len(chunk)
        if chunk.start != self.rows_done and not self.stopped:
            raise ValueError(f"replay stands at row {self.rows_done}; the chunk starts at row {chunk.start}")
        if rows > self.chunk_rows:
            raise ValueError(f"chunk of {rows} rows is larger than the replay's buffers ({self.chunk_rows} rows)")
        if chunk.start + rows > self.n_rows:
            raise ValueError(f"the trace has more rows than its facts say ({self.n_rows})")
        if rows and (int(chunk.slots.max()) >= self.n_slots or int(chunk.slots.min()) < 0):
            raise ValueError(f"rows {chunk.start}..: more objects live at once than the facts say ({self.n_slots})")
        if rows and int(chunk.thread.max()) >= self.allocator.max_threads:
            raise ValueError(f"rows {chunk.start}..: thread outside the allocator's {self.allocator.max_threads}")
        addr, granted = self.addr[:rows], self.granted[:rows]
        if self.stopped or not rows:
            return addr[:0], granted[:0]
        started = time.perf_counter()
        self._kernel(chunk.op, chunk.slots, chunk.size, chunk.thread, addr, granted)
        self.seconds += time.perf_counter() - started
        self._describe_failure(chunk.op, chunk.obj, chunk.size, chunk.thread, chunk.start)
        return addr, granted

    def finish(self) -> AllocLog:
        """Turn a stopping failure into its exception, or the state into an AllocLog without per-row arrays."""
        empty = np.zeros(0, np.int64)
        return self._log(empty, empty, streamed=True)
