"""Heap map: which addresses hold live blocks, over time, as an image.

`occupancy(trace, log, time_bins, address_bins)` returns a float32 image
`[time_bins, address_bins]` whose pixel (t, a) is the share of the bytes of
address bin a that belong to live blocks (granted bytes) at the end of time
bin t, plus the footprint at the end of each time bin.  Holes below the
footprint are external fragmentation made visible.

One pass over the log: every block adds its coverage of each address bin it
overlaps at the time bin where it is allocated and removes it where it is
freed (a difference array over time), then a cumulative sum over time gives
the image.  Cost O(rows + blocks x address bins overlapped + image size).
`HeapMapAccumulator` runs the pass chunk by chunk for a streamed trace, once
the highest block end is known (a first replay pass, `address_end` per chunk):
the image has the same fixed size whatever the trace's length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from allocators.log import AllocLog
from labcore.jitcache import holds_kernels
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk, TraceSource
from workloads.trace import OP_ACCESS, OP_FREE, Trace

holds_kernels(__file__)


@njit(cache=True)
def _coverage_deltas(op, slots, addr, granted, first_row, n_rows, live_addr, live_size, time_bins, bin_width,
                     deltas):
    """Add one chunk's blocks to the per-(time bin, address bin) byte deltas; live_* carry blocks across chunks."""
    for row in range(op.shape[0]):
        code = op[row]
        if code == OP_ACCESS:
            continue
        ident = slots[row]
        time_bin = (first_row + row) * time_bins // n_rows
        if live_addr[ident] >= 0:  # FREE, or the old block of a REALLOC
            start = live_addr[ident]
            end = start + live_size[ident]
            first = start // bin_width
            last = (end - 1) // bin_width
            for column in range(first, last + 1):
                low = max(start, column * bin_width)
                high = min(end, (column + 1) * bin_width)
                deltas[time_bin, column] -= high - low
            live_addr[ident] = -1
        if code != OP_FREE:
            start = addr[row]
            end = start + max(granted[row], 1)
            live_addr[ident] = start
            live_size[ident] = end - start
            first = start // bin_width
            last = (end - 1) // bin_width
            for column in range(first, last + 1):
                low = max(start, column * bin_width)
                high = min(end, (column + 1) * bin_width)
                deltas[time_bin, column] += high - low


def address_end(chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> int:
    """The highest block end (addr + granted, at least 1 byte) of a chunk's ALLOC and REALLOC rows, 0 if none."""
    grows = (chunk.op != OP_FREE) & (chunk.op != OP_ACCESS)
    return int((addr[grows] + np.maximum(granted[grows], 1)).max()) if grows.any() else 0


class HeapMapAccumulator:
    """The heap map of a trace fed chunk by chunk, once the highest block end (`address_max`) is known."""

    def __init__(self, facts: TraceFacts, address_max: int, time_bins: int = 400, address_bins: int = 512) -> None:
        if facts.rows == 0:
            raise ValueError("heap map of an empty trace")
        self.n_rows = facts.rows
        self.address_max = max(int(address_max), 1)
        self.time_bins = max(1, min(time_bins, facts.rows))
        self.bin_width = (self.address_max + address_bins - 1) // address_bins
        self.deltas = np.zeros((self.time_bins, address_bins), np.int64)
        n_slots = max(facts.peak_live_objects, 1)
        self.live_addr = np.full(n_slots, -1, np.int64)
        self.live_size = np.zeros(n_slots, np.int64)

    def update(self, chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> None:
        if len(chunk):
            _coverage_deltas(chunk.op, chunk.slots, addr, granted, chunk.start, self.n_rows, self.live_addr,
                             self.live_size, self.time_bins, self.bin_width, self.deltas)

    def result(self, timeline: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(image [time_bins, address_bins] in 0..1, footprint per time bin from the timeline, address_max)."""
        image = (np.cumsum(self.deltas, axis=0) / self.bin_width).astype(np.float32)
        rows_at_end = (np.arange(1, self.time_bins + 1) * self.n_rows) // self.time_bins - 1
        sample_rows = timeline[:, 0] if len(timeline) else np.zeros(1, np.int64)
        sample_footprint = timeline[:, 1] if len(timeline) else np.zeros(1, np.int64)
        positions = np.clip(np.searchsorted(sample_rows, rows_at_end, side="right") - 1, 0, None)
        footprint = sample_footprint[positions].astype(np.int64)
        return np.clip(image, 0.0, 1.0), footprint, self.address_max


def occupancy(
    trace: Trace, log: AllocLog, time_bins: int = 400, address_bins: int = 512
) -> tuple[np.ndarray, np.ndarray, int]:
    """(image [time_bins, address_bins] in 0..1, footprint per time bin, address_max)."""
    if len(trace) == 0:
        raise ValueError("heap map of an empty trace")
    whole = TraceChunk.of_trace(trace)
    accumulator = HeapMapAccumulator(trace.facts(), address_end(whole, log.addr, log.granted) or 1, time_bins,
                                     address_bins)
    accumulator.update(whole, log.addr, log.granted)
    return accumulator.result(log.timeline)


def occupancy_of_stream(
    spec: str, source: TraceSource, chunk_rows: int, time_bins: int = 400, address_bins: int = 512
) -> tuple[np.ndarray, np.ndarray, int]:
    """`occupancy` of a source replayed chunk by chunk by the allocator `spec`: two replays (the first finds the
    highest block end)."""
    from bench.harness import build_for_trace

    facts = source.facts()
    allocator = build_for_trace(spec, facts)
    address_max = 0
    job = allocator.prepare_stream_replay(facts, chunk_rows)
    for chunk in source.chunks(chunk_rows):
        address_max = max(address_max, address_end(chunk, *job.run_chunk(chunk)))
    job.finish()
    accumulator = HeapMapAccumulator(facts, address_max or 1, time_bins, address_bins)
    job = allocator.prepare_stream_replay(facts, chunk_rows)
    for chunk in source.chunks(chunk_rows):
        accumulator.update(chunk, *job.run_chunk(chunk))
    return accumulator.result(job.finish().timeline)


def write(path: Path, image: np.ndarray, footprint: np.ndarray, address_max: int, rows: int,
          cell: dict[str, Any]) -> None:
    np.savez_compressed(
        path, image=image, footprint=footprint, address_max=np.int64(address_max), rows=np.int64(rows),
        meta=np.array(json.dumps(cell, sort_keys=True)),
    )


def save(path: Path, trace: Trace, log: AllocLog, cell: dict[str, Any]) -> None:
    image, footprint, address_max = occupancy(trace, log)
    write(path, image, footprint, address_max, len(trace), cell)
