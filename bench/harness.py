"""One cell of measurement: one allocator replaying one trace.

The harness knows nothing about particular allocators: it builds any
registered allocator from a spec string, lets the allocator fill parameters it
derives from the trace (`params_for_trace`) and its capacity
(`capacity_for_trace`, halved while the model's tables for it would pass
`allocators.protocol.DEFAULT_STATE_LIMIT`, so that a request too large for a
model is an allocator failure, exit 1, not a machine brought down), replays,
and turns the AllocLog into a flat dict of figures.

Timing.  The first replay of a process compiles the allocator's kernel (or
loads it from numba's on-disk cache); that time is measured on a two-row trace
and reported as `compile_s`, never mixed into throughput.  Then the trace is
replayed `repeats` times on a fresh heap each time; throughput is rows divided
by the median kernel time (the harness's own buffers are allocated and touched
before the clock starts).  Every figure but the timings is deterministic.

A cold compiled-kernel cache is said on stderr by the command line
(`labcore.jitcache.compile_notice`); the warm-up is where its "compiled in T s"
comes (`compile_done`), before the first timed replay.

Streams.  `measure` replays a Trace in memory in one kernel call.
`measure_stream` replays a `TraceSource` (a chunked trace directory, a
workload generated chunk by chunk) one chunk at a time: the allocator is
sized from the source's facts, each repeat reads the source from its start,
the kernel time is the sum over its chunks, and the metric passes
(`bench.metrics.MetricsAccumulator`) run on the first repeat's chunks as they
go by.  Memory stays that of a chunk and the live objects; the figures are
those `measure` gives for the same rows, bit for bit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import allocators
from allocators import Allocator, AllocLog
from allocators.errors import AllocatorError, BadParameter
from bench.results import ResultRow, failure_reason, status_code_for
from labcore.jitcache import compile_done
from workloads.facts import TraceFacts, as_facts
from workloads.stream import DEFAULT_CHUNK_ROWS, TraceSource
from workloads.trace import Trace, TraceError, from_rows

_WARM: set[str] = set()
#: Generated traces longer than this are streamed chunk by chunk instead of built in memory (~60 B a row there).
STREAM_THRESHOLD_ROWS = 8_000_000


def build_for_trace(spec: str, trace: Trace | TraceFacts, capacity: int | None = None, **overrides: Any) -> Allocator:
    """Create the allocator a spec names, sized and parameterised for `trace` (a Trace, or its TraceFacts)."""
    facts = as_facts(trace)
    name, params = allocators.parse_spec(spec)
    params.update(overrides)
    cls = allocators.get(name)
    params.update(cls.params_for_trace(facts, params))
    params.setdefault("max_threads", max(64, facts.n_threads))
    if not capacity:  # the trace's, within the fixed limit on the model's tables (a larger request: out of memory)
        capacity = cls.fit_capacity(cls.capacity_for_trace(facts, params), params)
    return cls(capacity, **params)


def warm_up(spec: str, metrics: bool = True) -> float:
    """Compile (or load from cache) the allocator's replay kernel, and the metric passes; the seconds it took.

    0 when this process already did (by spec: objpool compiles one kernel per inner allocator).
    metrics=False: the replay kernel only (what `bench perf` reports as the allocator's compile time).
    """
    if spec in _WARM:
        return 0.0
    from bench.metrics import compute_metrics

    tiny = from_rows([(0, 0, 16, 0), (1, 0, 0, 0)])
    tiny.slots  # noqa: B018  (the slot pass is the trace's, not the allocator's: compiled outside the clock)
    started = time.perf_counter()
    allocator = build_for_trace(spec, tiny)
    log = allocator.replay(tiny)
    elapsed = time.perf_counter() - started
    if metrics:
        compute_metrics(tiny, log)
        allocator.footprint  # noqa: B018  (heap_stats called from Python: a failing cell's message names it)
        _WARM.add(spec)
    return elapsed


def refuse_empty(rows: int, meta: dict[str, Any], label: str | None = None) -> None:
    """A trace without rows has no figures to measure (0 Mops/s, an overhead factor of 0): TraceError."""
    if rows == 0:
        where = label or meta.get("spec") or meta.get("source") or "trace"
        raise TraceError(f"{where}: trace has no rows (a generated workload needs --ops >= 2: an ALLOC and its FREE)")


def failed_row(spec: str, rows: int, error: AllocatorError, **labels: Any) -> ResultRow:
    """The row of a cell whose allocator failed (out of memory, an unsupported operation)."""
    return ResultRow(allocator=spec, rows=rows, status="failed", status_code=status_code_for(error),
                     reason=failure_reason(error), **labels)


def measure(
    spec: str, trace: Trace, repeats: int = 3, capacity: int | None = None
) -> tuple[ResultRow, AllocLog | None]:
    """Replay `trace` `repeats` times; return the cell's row (status ok, or failed with a reason) and the last log.

    Bad input (an unknown spec, a bad parameter, a trace without rows) raises; an allocator failing on the trace
    does not.
    """
    refuse_empty(len(trace), trace.meta)
    compile_s = None
    try:
        compile_s = round(warm_up(spec), 4)
        compile_done()  # "compiled in T s", when this warm-up (or the trace's generation before it) compiled
        allocator = build_for_trace(spec, trace, capacity)
        times = []
        log = None
        for _ in range(max(1, repeats)):  # every replay starts from a fresh heap (prepare_replay)
            log, elapsed = allocator.replay_timed(trace)
            times.append(elapsed)
    except BadParameter:
        raise  # bad input, not an allocator failure
    except AllocatorError as error:
        return failed_row(spec, len(trace), error, compile_s=compile_s), None
    from bench.metrics import compute_metrics

    return _ok_row(spec, allocator, len(trace), compile_s, times, log, compute_metrics(trace, log)), log


def _ok_row(spec: str, allocator: Allocator, rows: int, compile_s: float | None, times: list[float],
            log: AllocLog, metrics: dict[str, Any]) -> ResultRow:
    median = statistics.median(times)
    return ResultRow(
        allocator=spec, rows=rows, status="ok", compile_s=compile_s,
        seconds_median=median, seconds_min=min(times), seconds_max=max(times),
        throughput_mops=rows / median / 1e6 if median > 0 else float("inf"),
        ns_per_op=median * 1e9 / max(rows, 1), capacity=allocator.capacity,
        peak_footprint=log.peak_footprint, peak_live_requested=log.peak_live_requested,
        peak_live_granted=log.peak_live_granted, final_footprint=log.final_footprint,
        metrics=metrics, counters=log.counters, extra={"params": dict(allocator.params)},
    )


def measure_stream(
    spec: str, source: TraceSource, repeats: int = 3, capacity: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: Callable[[int, int], None] | None = None,
) -> ResultRow:
    """Replay a source chunk by chunk `repeats` times; the cell's row, with the figures `measure` would give.

    progress(rows_done, total_rows) is called after every chunk (over all repeats: total = repeats x rows).
    Bad input (a bad spec or parameter, a malformed trace file) raises; an allocator failing on the trace does not.
    """
    from bench.metrics import MetricsAccumulator

    facts = source.facts()
    refuse_empty(facts.rows, source.meta, source.label)
    repeats = max(1, repeats)
    compile_s = None
    try:
        compile_s = round(warm_up(spec), 4)
        compile_done()
        allocator = build_for_trace(spec, facts, capacity)
        times = []
        log = None
        metrics = MetricsAccumulator(facts)
        for repeat in range(repeats):
            job = allocator.prepare_stream_replay(facts, chunk_rows)
            for chunk in source.chunks(chunk_rows):
                addr, granted = job.run_chunk(chunk)
                if job.stopped:
                    break
                if repeat == 0:
                    metrics.update(chunk, addr, granted)
                if progress is not None:
                    progress(repeat * facts.rows + chunk.start + len(chunk), repeats * facts.rows)
            log = job.finish()
            times.append(job.seconds)
    except BadParameter:
        raise
    except AllocatorError as error:
        return failed_row(spec, facts.rows, error, compile_s=compile_s)
    return _ok_row(spec, allocator, facts.rows, compile_s, times, log, metrics.result(log))
