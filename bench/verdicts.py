"""Verdicts: per workload, which general-purpose allocator model is fastest, leanest, most cache-friendly and
best-scaling, with its figure and the runner-up's.  The report's index page leads with them.

Criteria (`CRITERIA`; each one metric of the results rows, the median over
seeds of one allocator x workload cell):

- fastest: highest `throughput_mops`, the *model's replay speed* (trace rows
  per second of kernel time replaying the model; not the speed of the real
  allocator it models);
- leanest: lowest `overhead_factor` = peak footprint / peak live requested
  bytes (1 is perfect);
- most cache-friendly: fewest `l2_misses_per_kop`, L2 misses of the simulated
  L1 + L2 hierarchy per 1000 trace rows (the accesses that would go to
  memory).  Unlike the L1 miss rate, which is 50-100 % for every allocator on
  26 of the 27 default workloads (all but `lifo`; each allocation touches
  fresh lines, measured 2026-12-02), it separates allocators
  that reuse warm memory from those that spread over cold memory; ties go to
  the higher `hot_reuse_rate`;
- best-scaling: fewest `shared_ops_per_kop`, operations on structures all
  threads share (what would take a lock) per 1000 rows; ties go to the fewer
  `false_sharing_lines_peak`.  Only on workloads with more than one thread
  (`workload_threads`); '—' on the others.

Who competes: general-purpose models only (`allocators` class attribute
`general_purpose`; `linear`, `pool`, `stack` and `region` are special
purpose), and only where every seed of the cell is ok and has the metric: a
cell that failed or was skipped on any seed never wins.  Real allocators
(`real:*`) are not models: they are the scale (`scale`), never in a verdict.
Two allocators with the same figure (primary and tie-break) are a tie, shown
as such.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.plots.data import GENERAL, REAL, ReportData, number


@dataclass(frozen=True)
class Criterion:
    """One verdict: the metric it ranks by, its direction and tie-break, how its figure is written."""

    key: str
    title: str
    metric: str
    lower_is_better: bool
    label: str  # what the figure is, for the table's header
    fmt: Callable[[float], str]
    tie_break: str | None = None
    tie_break_lower_is_better: bool = True
    multi_thread_only: bool = False


def _speed(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _count(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


CRITERIA: tuple[Criterion, ...] = (
    Criterion("fastest", "fastest", "throughput_mops", False, "model replay speed, Mops/s", _speed),
    Criterion("leanest", "leanest", "overhead_factor", True, "overhead factor (peak footprint / peak live)",
              lambda value: f"{value:.3f}"),
    Criterion("cache", "most cache-friendly", "l2_misses_per_kop", True, "L2 misses per 1000 rows",
              _count, tie_break="hot_reuse_rate", tie_break_lower_is_better=False),
    Criterion("scaling", "best-scaling", "shared_ops_per_kop", True, "shared-structure ops per 1000 rows",
              _count, tie_break="false_sharing_lines_peak", multi_thread_only=True),
)


@dataclass(frozen=True)
class Pick:
    allocator: str
    value: float
    tie_value: float | None = None


@dataclass(frozen=True)
class Verdict:
    """One criterion on one workload: the winner and runner-up (None when fewer competed), or why there is none."""

    criterion: Criterion
    winner: Pick | None
    runner_up: Pick | None
    tied: bool = False
    note: str = ""  # why there is no winner ('' when there is one)


@dataclass(frozen=True)
class WorkloadVerdicts:
    workload: str
    threads: int | None
    verdicts: tuple[Verdict, ...]
    scale: dict[str, Pick]  # real allocator spec -> its replay speed (Mops/s) on this workload


@lru_cache(maxsize=256)
def workload_threads(workload: str) -> int | None:
    """Threads of a workload's traces: from the catalog for a spec (a short trace of it), from the facts for a
    `trace:PATH` whose file is here; None when unknown."""
    from workloads import catalog
    from workloads.trace import Trace

    try:
        if workload.startswith("trace:"):
            path = Path(workload[len("trace:"):])
            if path.is_dir():
                from workloads.chunked import ChunkedTrace

                return ChunkedTrace(path).facts().n_threads
            return Trace.load(path).n_threads if path.is_file() else None
        return catalog.make(workload, n_ops=512, seed=0).n_threads
    except (OSError, ValueError):
        return None


def _eligible_medians(results: ReportData, metric: str, workload: str) -> dict[str, float]:
    """{allocator: median of `metric` over seeds} for the general-purpose models whose every seed is ok and has it."""
    per_allocator: dict[str, list[float | None]] = {}
    for row in results.rows:
        if row["workload"] != workload or results.kind(row["allocator"]) != GENERAL:
            continue
        value = number(row, metric) if row.ok else None
        per_allocator.setdefault(row["allocator"], []).append(value)
    return {spec: statistics.median(values) for spec, values in per_allocator.items()
            if values and all(value is not None for value in values)}


def judge(results: ReportData, workload: str, criterion: Criterion, threads: int | None) -> Verdict:
    """The verdict of one criterion on one workload."""
    if criterion.multi_thread_only and (threads is None or threads < 2):
        note = "one thread" if threads is not None else "thread count unknown"
        return Verdict(criterion, None, None, note=note)
    primary = _eligible_medians(results, criterion.metric, workload)
    if not primary:
        return Verdict(criterion, None, None, note=f"no general-purpose model ran with '{criterion.metric}'")
    secondary = _eligible_medians(results, criterion.tie_break, workload) if criterion.tie_break else {}
    order = {spec: index for index, spec in enumerate(results.allocators)}
    sign = 1.0 if criterion.lower_is_better else -1.0
    tie_sign = 1.0 if criterion.tie_break_lower_is_better else -1.0

    def rank(spec: str) -> tuple[float, float, int]:
        tie = secondary.get(spec)
        return sign * primary[spec], tie_sign * tie if tie is not None else math.inf, order.get(spec, len(order))

    ranked = sorted(primary, key=rank)
    picks = [Pick(spec, primary[spec], secondary.get(spec)) for spec in ranked[:2]]
    tied = len(picks) == 2 and rank(ranked[0])[:2] == rank(ranked[1])[:2]
    return Verdict(criterion, picks[0], picks[1] if len(picks) > 1 else None, tied=tied)


def verdicts(results: ReportData) -> list[WorkloadVerdicts]:
    """Every criterion on every workload of the results, in the report's workload order."""
    out = []
    for workload in results.workloads:
        threads = workload_threads(workload)
        scale = {}
        for spec in results.allocators:
            if results.kind(spec) == REAL:
                medians = [number(row, "throughput_mops") for row in results.rows
                           if row["allocator"] == spec and row["workload"] == workload and row.ok]
                medians = [value for value in medians if value is not None]
                if medians:
                    scale[spec] = Pick(spec, statistics.median(medians))
        out.append(WorkloadVerdicts(workload, threads, tuple(judge(results, workload, criterion, threads)
                                                            for criterion in CRITERIA), scale))
    return out
