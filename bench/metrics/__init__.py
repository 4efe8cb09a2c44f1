"""The lab's metric passes: deterministic figures computed from a trace and the AllocLog of its replay.

`compute_metrics(trace, log, counters_info=None)` returns every metric of the
registry `METRICS` (name -> MetricInfo(name, unit, group, one_line_doc, deterministic)),
in registry order; the same trace and log give the same numbers, bit for bit.
Each group is one module with one jitted pass over the trace and log arrays:

- `waste`: internal and external fragmentation, metadata, overhead factor;
- `locality`: hot reuse, placement of consecutive allocations, simulated
  L1/L2/TLB miss rates of the access stream (`cachesim`), distinct pages;
- `scalability`: shared-structure operations (counters the allocator declares
  in its class attribute `shared_counters`), remote frees, false-sharing lines.

Every metric's exact definition is in its module docstring and, in one line,
in `METRICS[name].one_line_doc` (`python -m bench list --metrics`).

`MetricsAccumulator(facts)` runs the same passes over a trace streamed chunk
by chunk (`update(chunk, addr, granted)` per chunk, in order, then
`result(log)`), each pass carrying its state between chunks, so the figures
equal `compute_metrics` on the whole trace, bit for bit, whatever the
chunking.  `compute_metrics` is one update with the whole trace.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from allocators.log import AllocLog
from bench.metrics import locality, scalability, waste
from workloads.facts import TraceFacts
from workloads.stream import TraceChunk
from workloads.trace import Trace


class MetricInfo(NamedTuple):
    """One metric: its name, unit, group (the module computing it), one-line definition, determinism."""

    name: str
    unit: str
    group: str
    one_line_doc: str
    deterministic: bool = True


METRICS: dict[str, MetricInfo] = {
    name: MetricInfo(name, unit, module.__name__.rsplit(".", 1)[-1], doc)
    for module in (waste, locality, scalability)
    for name, unit, doc in module.DOCS
}


class MetricsAccumulator:
    """Every metric pass over a trace's chunks in order; `result(log)` once the replay is finished."""

    def __init__(self, facts: TraceFacts, counters_info: Any = None) -> None:
        self.counters_info = counters_info
        self.waste = waste.WasteAccumulator(facts)
        self.locality = locality.LocalityAccumulator(facts)
        self.scalability = scalability.ScalabilityAccumulator(facts)

    def update(self, chunk: TraceChunk, addr: np.ndarray, granted: np.ndarray) -> None:
        """Add the next chunk of the trace and its rows of the replay's log (addresses, granted sizes)."""
        for part in (self.waste, self.locality, self.scalability):
            part.update(chunk, addr, granted)

    def result(self, log: AllocLog) -> dict[str, float | int]:
        """Every metric of `METRICS`, in registry order (`log`: the finished replay, per-row arrays not needed)."""
        found: dict[str, float | int] = {}
        found.update(self.waste.result(log))
        found.update(self.locality.result())
        found.update(self.scalability.result(log, self.counters_info))
        return {name: found[name] for name in METRICS}


def compute_metrics(trace: Trace, log: AllocLog, counters_info: Any = None) -> dict[str, float | int]:
    """Every metric of `METRICS` for one replay of `trace` (its AllocLog `log`), in registry order.

    `counters_info` says which allocator counters are shared-structure operations
    (see `scalability.shared_counter_names`); None reads the allocator class's
    `shared_counters` attribute through the registry.  Ratios are floats (0.0 when
    their denominator is 0), counts are ints; `shared_ops_per_kop` is NaN when the
    allocator declares no `shared_counters`.
    """
    if len(log.addr) != len(trace) or len(log.granted) != len(trace):
        raise ValueError(f"log has {len(log.addr)} rows, trace has {len(trace)}: not a log of this trace")
    accumulator = MetricsAccumulator(trace.facts(), counters_info)
    accumulator.update(TraceChunk.of_trace(trace), log.addr, log.granted)
    return accumulator.result(log)


def describe_metrics() -> list[str]:
    """One line per metric, `name  [unit]  group: definition`, for `python -m bench list --metrics`."""
    width = max(len(name) for name in METRICS)
    return [f"{info.name:<{width}}  [{info.unit}]  {info.group}: {info.one_line_doc}" for info in METRICS.values()]


__all__ = ["METRICS", "MetricInfo", "MetricsAccumulator", "compute_metrics", "describe_metrics"]
