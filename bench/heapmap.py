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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from allocators.log import AllocLog
from labcore.jitcache import holds_kernels
from workloads.trace import OP_ACCESS, OP_FREE, Trace

holds_kernels(__file__)


@njit(cache=True)
def _coverage_deltas(op, obj, addr, granted, n_slots, time_bins, address_bins, address_max, deltas):
    n_rows = op.shape[0]
    bin_width = (address_max + address_bins - 1) // address_bins
    live_addr = np.full(n_slots, -1, np.int64)
    live_size = np.zeros(n_slots, np.int64)
    for row in range(n_rows):
        code = op[row]
        if code == OP_ACCESS:
            continue
        ident = obj[row]
        time_bin = row * time_bins // n_rows
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
    return bin_width


def occupancy(
    trace: Trace, log: AllocLog, time_bins: int = 400, address_bins: int = 512
) -> tuple[np.ndarray, np.ndarray, int]:
    """(image [time_bins, address_bins] in 0..1, footprint per time bin, address_max)."""
    if len(trace) == 0:
        raise ValueError("heap map of an empty trace")
    ends = log.addr + np.maximum(log.granted, 1)
    grows = (trace.op != OP_FREE) & (trace.op != OP_ACCESS)
    address_max = int(ends[grows].max()) if grows.any() else 1
    time_bins = max(1, min(time_bins, len(trace)))
    deltas = np.zeros((time_bins, address_bins), np.int64)
    bin_width = _coverage_deltas(
        trace.op, trace.slots, log.addr, log.granted, max(trace.n_slots, 1), time_bins, address_bins,
        address_max, deltas,
    )
    image = (np.cumsum(deltas, axis=0) / bin_width).astype(np.float32)
    rows_at_end = (np.arange(1, time_bins + 1) * len(trace)) // time_bins - 1
    sample_rows = log.timeline[:, 0] if len(log.timeline) else np.zeros(1, np.int64)
    sample_footprint = log.timeline[:, 1] if len(log.timeline) else np.zeros(1, np.int64)
    positions = np.clip(np.searchsorted(sample_rows, rows_at_end, side="right") - 1, 0, None)
    footprint = sample_footprint[positions].astype(np.int64)
    return np.clip(image, 0.0, 1.0), footprint, address_max


def save(path: Path, trace: Trace, log: AllocLog, cell: dict[str, Any]) -> None:
    image, footprint, address_max = occupancy(trace, log)
    np.savez_compressed(
        path, image=image, footprint=footprint, address_max=np.int64(address_max), rows=np.int64(len(trace)),
        meta=np.array(json.dumps(cell, sort_keys=True)),
    )
