"""Traces read chunk by chunk: `TraceChunk` and the `TraceSource`s that yield them.

A trace too large for memory (100M rows is 2.1 GB of columns, more again for
the replay's per-row log) is replayed and measured one chunk of rows at a
time: the replay driver (`allocators.replay`), the slot map
(`workloads.slots`) and every metric pass keep their running state between
chunks, so the figures are those of one pass over the whole trace, bit for
bit, whatever the chunk size.

- `TraceChunk`: rows [start, start + len) of a trace: the four columns and
  the rows' slots (per-object table indices, `workloads.slots`).
- `TraceSource`: a trace that can be read from the start as often as needed
  (`chunks(chunk_rows)` restarts each time), with its `facts()` known before
  the first chunk (`workloads.facts`), its `meta` and a `label`.  Sources:
  `MemorySource` (views of a Trace in memory), `workloads.chunked.ChunkedTrace`
  (a chunked trace directory on disk), `GeneratedTrace`
  (a catalog workload generated chunk by chunk).
- `chunks_with_slots(columns, validate)` turns an iterator of raw column
  chunks into TraceChunks through one `SlotMap`, validating every row on the
  way when the rows come from outside (a file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.facts import FactsAccumulator, TraceFacts
from workloads.slots import SlotMap
from workloads.trace import COLUMNS, Trace, TraceError

#: Rows per chunk unless asked otherwise: ~50 MB of columns, log and work buffers.
DEFAULT_CHUNK_ROWS = 1 << 20


@dataclass(frozen=True, eq=False)
class TraceChunk:
    """Rows [start, start + len) of a trace: op, obj, size, thread and the rows' slots."""

    start: int
    op: np.ndarray
    obj: np.ndarray
    size: np.ndarray
    thread: np.ndarray
    slots: np.ndarray

    def __len__(self) -> int:
        return int(self.op.shape[0])

    @classmethod
    def of_trace(cls, trace: Trace, start: int = 0, stop: int | None = None) -> TraceChunk:
        """Rows [start, stop) of an in-memory trace, as views."""
        stop = len(trace) if stop is None else stop
        return cls(start, trace.op[start:stop], trace.obj[start:stop], trace.size[start:stop],
                   trace.thread[start:stop], trace.slots[start:stop])


class TraceSource:
    """A trace read chunk by chunk, from the start, as often as needed (see the module docstring)."""

    label: str = "trace"
    meta: dict[str, Any]

    def facts(self) -> TraceFacts:
        raise NotImplementedError

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[TraceChunk]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.facts().rows

    @property
    def n_threads(self) -> int:
        return self.facts().n_threads

    def load(self) -> Trace:
        """The whole trace in memory (for traces that fit)."""
        parts = list(self.chunks())
        columns = {name: np.concatenate([getattr(part, name) for part in parts]) if parts else np.zeros(0, dtype)
                   for name, dtype in COLUMNS}
        return Trace(**columns, meta=dict(self.meta))


class MemorySource(TraceSource):
    """An in-memory Trace, served as chunks that are views of its columns."""

    def __init__(self, trace: Trace, label: str = "trace") -> None:
        self.trace = trace
        self.meta = trace.meta
        self.label = label

    def facts(self) -> TraceFacts:
        return self.trace.facts()

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[TraceChunk]:
        chunk_rows = check_chunk_rows(chunk_rows)
        for start in range(0, len(self.trace), chunk_rows):
            yield TraceChunk.of_trace(self.trace, start, min(start + chunk_rows, len(self.trace)))

    def load(self) -> Trace:
        return self.trace


class GeneratedTrace(TraceSource):
    """A catalog workload generated chunk by chunk (`workloads.catalog.make_chunks`): the same rows as
    `catalog.make(spec, n_ops, seed)`, in memory bounded by the chunk and the live objects.

    `facts()` costs one generation pass (kept); every `chunks()` generates the trace again.
    """

    def __init__(self, spec: str, n_ops: int, seed: int = 0) -> None:
        from workloads import catalog

        self.spec, self.n_ops, self.seed = spec, int(n_ops), int(seed)
        self.meta = catalog.make_chunks(spec, n_ops=self.n_ops, seed=self.seed, chunk_rows=1).meta
        self.label = f"{spec} seed {seed}"
        self._facts: TraceFacts | None = None

    def _raw(self, chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        from workloads import catalog

        return iter(catalog.make_chunks(self.spec, n_ops=self.n_ops, seed=self.seed, chunk_rows=chunk_rows))

    def facts(self, progress: Callable[[int], None] | None = None) -> TraceFacts:
        """The trace's facts, from one generation pass the first time (progress(rows so far) after each chunk)."""
        if self._facts is None:
            accumulator = FactsAccumulator()
            slot_map = SlotMap()
            for op, obj, size, thread in self._raw(DEFAULT_CHUNK_ROWS):
                slot_map.assign(op, obj, size, thread)
                accumulator.add(op, size, thread)
                if progress is not None:
                    progress(accumulator.rows)
            self._facts = accumulator.finish(slot_map.peak_live, slot_map.peak_live_bytes)
        return self._facts

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[TraceChunk]:
        chunk_rows = check_chunk_rows(chunk_rows)
        expected = self._facts.peak_live_objects if self._facts is not None else 1024
        return chunks_with_slots(self._raw(chunk_rows), validate=False, where=self.label, expected_live=expected)


def check_chunk_rows(chunk_rows: Any) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer) or not 1 <= chunk_rows <= 1 << 40:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    return int(chunk_rows)


def check_columns(op: np.ndarray, obj: np.ndarray, size: np.ndarray, thread: np.ndarray, where: str) -> None:
    """Dtypes and lengths of one chunk's columns (TraceError naming `where`)."""
    length = op.shape[0]
    for (name, dtype), column in zip(COLUMNS, (op, obj, size, thread), strict=True):
        if column.dtype != dtype or column.ndim != 1:
            raise TraceError(f"{where}: column '{name}' has dtype {column.dtype}, expected {np.dtype(dtype).name}")
        if column.shape[0] != length:
            raise TraceError(f"{where}: column '{name}' has {column.shape[0]} rows, column 'op' has {length}")


def chunks_with_slots(
    columns: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], validate: bool,
    where: str = "trace", expected_live: int = 1024,
) -> Iterator[TraceChunk]:
    """TraceChunks of raw (op, obj, size, thread) chunks in row order, slots assigned (and rows checked)."""
    slot_map = SlotMap(expected_live)
    start = 0
    for op, obj, size, thread in columns:
        if validate:
            check_columns(op, obj, size, thread, where)
        try:
            slots = slot_map.assign(op, obj, size, thread, validate=validate, first_row=start)
        except TraceError as error:
            raise TraceError(f"{where}: {error}", row=error.row) from None
        yield TraceChunk(start, op, obj, size, thread, slots)
        start += op.shape[0]
