"""What the models predict for a real program: its allocations recorded once, replayed through the models.

`record_and_predict(invocation, trace_path, models)` runs the program once under a recorder
(`workloads.record.record`: heaptrack when installed, which intercepts malloc with LD_PRELOAD and runs the
program at near its own speed, else valgrind, tens of times slower), with the same command, environment and
input as the measured runs but under glibc, and saves the trace.  Each model then replays the trace
(`bench.harness.build_for_trace`, sized from the trace like every cell of a sweep) and the waste metrics are
taken from the replay (`bench.metrics.waste.compute`: the lab's `overhead_factor` = peak footprint / peak live
requested bytes); the other metric groups (the cache simulation above all) are not computed, which keeps a
multi-million-row trace at seconds per model.

Which model goes with which real allocator: `MODEL_OF`, the pairs of the lab's one pairing table
(`bench.pairs.MODEL_OF_REAL`: real tcmalloc, gperftools 2.10, with `tcmalloc:gperftools`; a real allocator
without a model, None there, is left out).  `default_models()` is the paired models and then every other
general-purpose model of the registry (`objpool` is left out: it wraps another allocator), so the table lists
every model's prediction beside the pairs.

What a model's footprint is not: the measured peak RSS also holds the program's code and data, its libraries,
its stacks and the allocator's start-up state, all in the baseline run's RSS; so the figure to put beside a
model's peak footprint is the RSS growth, peak RSS - baseline RSS (`bench.programs.catalog`).  Even that is not
the same measure: RSS counts pages touched (a block malloc'ed and never written costs no RSS; a model's
footprint counts address space it took from its "OS", touched or not), and memory the program maps itself
(pymalloc's arenas, GCC's garbage-collected pages) is in the RSS and not in the trace.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from allocators import registry
from allocators.errors import AllocatorError
from bench.pairs import paired
from bench.programs.catalog import Invocation
from bench.results import failure_reason

#: Real allocator -> the model that imitates it (bench.pairs: a new pair is one line there).
MODEL_OF: dict[str, str] = dict(paired())
#: General-purpose models left out of `default_models` (objpool is a wrapper around another allocator).
NOT_LISTED = ("objpool",)


def default_models() -> list[str]:
    """The paired models, then every other general-purpose model of the registry."""
    paired = list(dict.fromkeys(MODEL_OF.values()))
    covered = {spec.split(":")[0] for spec in paired}
    others = [name for name in registry.names()
              if registry.general_purpose(name) and name not in covered and name not in NOT_LISTED]
    return paired + others


@dataclass
class Prediction:
    """One model's replay of a recorded trace: status ("ok" or "failed" with a reason) and the waste figures."""

    model: str
    status: str
    reason: str = ""
    peak_footprint: int | None = None
    peak_live_requested: int | None = None
    overhead_factor: float | None = None
    seconds: float | None = None


@dataclass
class Recording:
    """The recorded trace of a program and the models' predictions on it."""

    tool: str
    trace: str
    rows: int
    allocs: int
    frees: int
    reallocs: int
    exit_code: int | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)

    def prediction(self, model: str) -> Prediction | None:
        return next((entry for entry in self.predictions if entry.model == model), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recording:
        fields = {key: raw[key] for key in cls.__dataclass_fields__ if key in raw}
        fields["predictions"] = [Prediction(**entry) for entry in raw.get("predictions", [])]
        return cls(**fields)


def predict(trace: Any, model: str) -> Prediction:
    """`model` replaying `trace`: its peak footprint and overhead factor, or why it failed."""
    from bench import harness
    from bench.metrics import waste

    started = time.perf_counter()
    try:
        log = harness.build_for_trace(model, trace).replay(trace)
    except AllocatorError as error:
        return Prediction(model, "failed", failure_reason(error))
    figures = waste.compute(trace, log)
    return Prediction(model, "ok", "", int(log.peak_footprint), int(log.peak_live_requested),
                      float(figures["overhead_factor"]), time.perf_counter() - started)


def record_and_predict(invocation: Invocation, trace_path: Path, models: Sequence[str], tool: str = "auto",
                       timeout: float | None = 1800.0) -> Recording:
    """Record `invocation` into `trace_path` (.npz) and replay the trace through `models` (module docstring).
    RecordError (a ValueError) when the recorder is missing or saw no allocation."""
    from workloads.record import record
    from workloads.trace import Trace

    started = time.perf_counter()
    report = record(list(invocation.command), trace_path, tool, env=invocation.env, timeout=timeout,
                    stdin=invocation.stdin or "/dev/null")
    recording = Recording(report.tool or tool, str(trace_path), report.rows, report.allocs, report.frees,
                          report.reallocs, report.exit_code, time.perf_counter() - started, list(report.notes))
    trace = Trace.load(trace_path)
    recording.predictions = [predict(trace, model) for model in models]
    return recording
