"""Waste: memory an allocator takes beyond what the program asked for.

Three kinds (Wilson et al. 1995, Johnstone & Wilson 1998):

- internal fragmentation: a granted block larger than its request
  (size classes, alignment, minimum block size);
- external fragmentation: address space the allocator holds (its footprint)
  that no live block occupies (holes between blocks, free lists, caches);
- metadata: bytes the allocator spends on its own headers and tables (as the
  model reports them; whether they lie inside the footprint is the model's
  choice, see each allocator's docstring).

Live requested and live granted bytes are recomputed exactly, row by row, by a
jitted pass over the trace and the log's `granted` column (the same accounting
as the replay driver: a FREE removes the object's block, an ALLOC or REALLOC
replaces it).  The footprint per row is not in the log, only in its timeline
(sampled every `log.sample_every` rows, 1000 samples by default), so external
fragmentation is measured at the timeline's resolution; replay with
`sample_every=1` to make it exact.

Definitions (one line each in the METRICS registry):

- internal_fragmentation = 1 - live_requested / live_granted at the first row
  where live granted bytes reach their maximum (0 when nothing was granted).
- internal_fragmentation_mean = 1 - sum over rows of live_requested / sum over
  rows of live_granted (every trace row, after its operation: time-weighted).
- external_fragmentation = 1 - L / P, where P is the largest footprint of the
  timeline and L the largest live granted among the samples whose footprint
  is P: the share of the peak footprint that no live block occupied even at the
  fullest moment the heap had that size; 0 when P is 0.  (Not the first sample
  at P: a model that takes its footprint up front, as `go` reserves an arena
  at row 0, would be measured on an empty heap.  For a heap that grows on
  demand the two differ little.)
- external_fragmentation_mean = 1 - sum of live_granted / sum of footprint over
  the timeline samples.
- overhead_factor = peak footprint / peak live requested bytes (Johnstone &
  Wilson's measure; the two peaks may be at different rows; exact, from the log).
- peak_metadata_bytes = the largest metadata_bytes the model reported after any row.
- metadata_ratio = peak_metadata_bytes / peak live requested bytes.
"""

from __future__ import annotations

import numpy as np

from allocators.log import AllocLog
from allocators.replay import TIMELINE_COLUMNS
from labcore.jitcache import holds_kernels
from labcore.kernels import njit_without_refcounts
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk
from workloads.trace import OP_ACCESS, OP_FREE, Trace

holds_kernels(__file__)

_FOOTPRINT = TIMELINE_COLUMNS.index("footprint")
_LIVE_GRANTED = TIMELINE_COLUMNS.index("live_granted")

#: (name, unit, one-line definition) of every metric this module computes.
DOCS = (
    ("internal_fragmentation", "ratio",
     "1 - live requested / live granted bytes at the first row where live granted bytes peak"),
    ("internal_fragmentation_mean", "ratio",
     "1 - (sum over rows of live requested) / (sum over rows of live granted): time-weighted"),
    ("external_fragmentation", "ratio",
     "1 - (largest live granted among timeline samples at the peak footprint) / peak footprint"),
    ("external_fragmentation_mean", "ratio",
     "1 - (sum of live granted) / (sum of footprint) over the timeline samples"),
    ("overhead_factor", "factor",
     "peak footprint / peak live requested bytes (Johnstone & Wilson; peaks may be at different rows)"),
    ("peak_metadata_bytes", "bytes", "largest metadata_bytes the allocator model reported after any row"),
    ("metadata_ratio", "ratio", "peak metadata bytes / peak live requested bytes"),
)


# Slots of the pass's running `state` (int64) between chunks; `sums` (float64) holds the two row sums.
S_LIVE_REQUESTED, S_LIVE_GRANTED, S_PEAK_GRANTED, S_AT_PEAK_ROW, S_AT_PEAK_REQUESTED, S_AT_PEAK_GRANTED = range(6)
N_STATE = 6


@njit_without_refcounts
def _live_bytes_pass(op, obj, size, granted, object_requested, object_granted, sums, state, first_row):
    """Live requested/granted after every row of a chunk: their sums (float64, in row order) and the values at
    the first row where live granted is largest (state[S_AT_PEAK_*]); state carries everything to the next chunk."""
    live_requested = state[S_LIVE_REQUESTED]
    live_granted = state[S_LIVE_GRANTED]
    peak_granted = state[S_PEAK_GRANTED]
    sum_requested = sums[0]
    sum_granted = sums[1]
    for row in range(op.shape[0]):
        code = op[row]
        if code != OP_ACCESS:
            ident = obj[row]
            live_requested -= object_requested[ident]
            live_granted -= object_granted[ident]
            if code == OP_FREE:
                object_requested[ident] = 0
                object_granted[ident] = 0
            else:
                object_requested[ident] = size[row]
                object_granted[ident] = granted[row]
                live_requested += size[row]
                live_granted += granted[row]
        if live_granted > peak_granted:
            peak_granted = live_granted
            state[S_AT_PEAK_ROW] = first_row + row
            state[S_AT_PEAK_REQUESTED] = live_requested
            state[S_AT_PEAK_GRANTED] = live_granted
        sum_requested += live_requested
        sum_granted += live_granted
    state[S_LIVE_REQUESTED] = live_requested
    state[S_LIVE_GRANTED] = live_granted
    state[S_PEAK_GRANTED] = peak_granted
    sums[0] = sum_requested
    sums[1] = sum_granted


class WasteAccumulator:
    """The waste pass over a trace's chunks in order (`update`), then its figures (`result`)."""

    def __init__(self, facts: TraceFacts) -> None:
        n_slots = max(facts.peak_live_objects, 1)
        self.object_requested = np.zeros(n_slots, np.int64)
        self.object_granted = np.zeros(n_slots, np.int64)
        self.sums = np.zeros(2, np.float64)
        self.state = np.zeros(N_STATE, np.int64)
        self.state[S_PEAK_GRANTED] = -1

    def update(self, chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> None:
        if len(chunk):
            _live_bytes_pass(chunk.op, chunk.slots, chunk.size, granted, self.object_requested,
                             self.object_granted, self.sums, self.state, chunk.start)

    def result(self, log: AllocLog) -> dict[str, float | int]:
        """Every waste metric, from the pass and the replay's timeline and exact peaks."""
        sums, state = self.sums, self.state
        at_requested, at_granted = state[S_AT_PEAK_REQUESTED], state[S_AT_PEAK_GRANTED]
        timeline = log.timeline
        external = external_mean = 0.0
        if timeline.shape[0]:
            footprint = timeline[:, _FOOTPRINT]
            live = timeline[:, _LIVE_GRANTED]
            largest = int(footprint.max())
            if largest > 0:
                external = 1.0 - float(live[footprint == largest].max()) / float(largest)
            total = float(footprint.sum(dtype=np.float64))
            if total > 0:
                external_mean = 1.0 - float(live.sum(dtype=np.float64)) / total
        peak_requested = max(int(log.peak_live_requested), 1)
        return {
            "internal_fragmentation": 1.0 - float(at_requested) / float(at_granted) if at_granted > 0 else 0.0,
            "internal_fragmentation_mean": 1.0 - float(sums[0]) / float(sums[1]) if sums[1] > 0 else 0.0,
            "external_fragmentation": external,
            "external_fragmentation_mean": external_mean,
            "overhead_factor": log.peak_footprint / peak_requested,
            "peak_metadata_bytes": int(log.peak_metadata_bytes),
            "metadata_ratio": log.peak_metadata_bytes / peak_requested,
        }


def live_bytes(trace: Trace, log: AllocLog) -> tuple[np.ndarray, np.ndarray]:
    """(sums, at_peak) of the live-bytes pass: sums = [sum live requested, sum live granted] over rows (float64),
    at_peak = [row, live requested, live granted] at the first row where live granted peaks (int64)."""
    accumulator = WasteAccumulator(trace.facts())
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    at_peak = accumulator.state[[S_AT_PEAK_ROW, S_AT_PEAK_REQUESTED, S_AT_PEAK_GRANTED]].copy()
    return accumulator.sums.copy(), at_peak


def compute(trace: Trace, log: AllocLog) -> dict[str, float | int]:
    """Every waste metric of one replay."""
    accumulator = WasteAccumulator(trace.facts())
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    return accumulator.result(log)
