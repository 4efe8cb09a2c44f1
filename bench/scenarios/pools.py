"""pools: object pools, regions and arenas against the garbage-collected heap, on request churn.

What it models.  A Go server whose requests each allocate a batch of
temporaries and drop them when the request ends (`workloads.churn`), run
four ways (issue 12; seed-notes, "methods of reducing allocations"):

- `heap`, `go:gc`: every temporary from the Go heap, reclaimed by the
  GOGC-paced collector;
- `pool`, `objpool:inner=go:gc`: a sync.Pool per size bucket in front of the
  same heap: a put at the request's end, a get at the next request;
- `pool-pow2`, `objpool:inner=go:gc,round=pow2`: the same with one pool per
  power-of-two size, as Go servers pool []byte buffers (a pooled buffer
  serves any request up to its capacity; 16 B buckets rarely match the next
  request's sizes when they vary);
- `arena`, `region:chunk_size=8MiB,reserve=131120`: Go's arena experiment, 8
  MiB chunks less the 131120 B reserve, bump allocation, a chunk reused once
  all its objects died (the request's Free()).

Design.  The grid is request size (`request_bytes`) x temporaries per
request (`temps`) x seeds; each point is one churn trace (`churn:
request_bytes=R,temps=T`, generated once) replayed by each set-up through the
sweep's harness (`bench.harness.measure`, so every cell is an ordinary
results row, written to `results.json`/`results.csv` as the sweep writes
them).  The first set-up is the baseline (the plain heap).  Per cell:

- heap allocations: the allocations that reached the Go heap.  `go`: its
  `allocs`; `objpool`: the inner heap's `inner_allocs` (the pool's misses,
  bypasses of objects over `max_pooled`, and reallocations); `region`:
  `chunks_taken`, the chunks it took from the heap (each chunk is one large
  span in Go; a chunk reused after its objects died takes nothing).  Any
  other allocator: its `allocs` counter.  *Avoided* = the baseline's count
  minus the cell's, as a number and a fraction of the baseline's.
- GC cycles: `gc_cycles` of the go heap (`inner_gc_cycles` behind the pool).
  The region model has no collector and frees chunks as their objects die
  (Go's arena needs a cycle before a freed chunk's address space is reused),
  so its cycles are not measured: None, not 0.  The pool's own clears (Go
  empties every sync.Pool at each GC; the model does it every 4 MiB taken
  from the inner heap, `objpool`'s `clear_every`) are reported as
  `pool_clears`.
- peak footprint (bytes the allocator took from its "OS", the harness's
  `peak_footprint`), the peak live requested bytes, the overhead factor,
  and the replay speed (Mops/s, median of `repeats`; the only figure that is
  not deterministic).

Cost: cells = len(request_bytes) x len(temps) x seeds x set-ups, each `ops`
rows replayed `repeats` times plus the metric passes; the default grid (2 x 3
x 2 x 4 = 48 cells of 100k rows) takes about a minute with warm kernels.

State: `PoolsConfig` (what to measure, validated by `check`), `PoolsCell`
(one figure row), `PoolsReport` (cells, the harness rows, meta; `save` writes
`pools.json`, `pools.csv`, `results.json`, `results.csv`).  The plot is
`bench.plots.pools`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import allocators
from allocators.errors import BadParameter
from bench import harness
from bench.results import ResultRow, write_results
from bench.scenarios import save_report
from workloads import catalog

#: The set-ups: label -> allocator spec.  The first is the baseline.
DEFAULT_SETUPS: dict[str, str] = {
    "heap": "go:gc", "pool": "objpool:inner=go:gc", "pool-pow2": "objpool:inner=go:gc,round=pow2",
    "arena": "region:chunk_size=8MiB,reserve=131120",
}
DEFAULT_TEMPS = (10, 100, 1000)
DEFAULT_REQUEST_BYTES = (16 << 10, 256 << 10)
DEFAULT_SEEDS = (0, 1)
DEFAULT_OPS = 100_000
ORDERS = ("lifo", "fifo", "random", "halves")
MAX_OPS = 8_000_000  # the harness replays in memory up to here (bench.harness.STREAM_THRESHOLD_ROWS)


@dataclass
class PoolsConfig:
    """What `run_pools` measures; every field has a default (the issue's grid)."""

    temps: list[int] = field(default_factory=lambda: list(DEFAULT_TEMPS))
    request_bytes: list[int] = field(default_factory=lambda: list(DEFAULT_REQUEST_BYTES))
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    setups: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SETUPS))
    ops: int = DEFAULT_OPS
    repeats: int = 3
    threads: int = 1
    order: str = "lifo"
    sigma: float = 1.0  # the spread of the temporaries' log-normal sizes (0: all of one size)

    def workload(self, request_bytes: int, temps: int) -> str:
        """The churn spec of one grid point."""
        spec = f"churn:request_bytes={request_bytes},temps={temps}"
        if self.threads != 1:
            spec += f",threads={self.threads}"
        if self.order != "lifo":
            spec += f",order={self.order}"
        if self.sigma != 1.0:
            spec += f",sigma={self.sigma!r}"
        return spec

    def check(self) -> None:
        """BadParameter (a ValueError) naming the first bad field."""
        for name, values in (("temps", self.temps), ("request_bytes", self.request_bytes), ("seeds", self.seeds)):
            if not values or len(set(values)) != len(values):
                raise BadParameter(f"pools: {name} must be a non-empty list without repeats, got {values!r}")
            if any(isinstance(value, bool) or not isinstance(value, int) for value in values):
                raise BadParameter(f"pools: {name} must be integers, got {values!r}")
        if min(self.seeds) < 0:
            raise BadParameter(f"pools: seeds must be >= 0, got {self.seeds!r}")
        for name, value, low, high in (("ops", self.ops, 2, MAX_OPS), ("repeats", self.repeats, 1, 1000),
                                       ("threads", self.threads, 1, 1024)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise BadParameter(f"pools: {name} must be an integer in {low}..{high}, got {value!r}")
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, int | float) or not 0 <= self.sigma <= 4:
            raise BadParameter(f"pools: sigma must be a number in 0..4, got {self.sigma!r}")
        if self.order not in ORDERS:
            raise BadParameter(f"pools: order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.ops < 2 * max(self.temps) * self.threads:
            raise BadParameter(f"pools: ops={self.ops} holds no whole request of {max(self.temps)} temporaries "
                               f"on each of {self.threads} thread(s) (needs >= {2 * max(self.temps) * self.threads} "
                               "rows)")
        if not self.setups:
            raise BadParameter("pools: no set-up given")
        for label, spec in self.setups.items():
            if not isinstance(label, str) or not label.strip() or not isinstance(spec, str):
                raise BadParameter(f"pools: set-up {label!r}: a label and an allocator spec string, got {spec!r}")
            name, params = allocators.parse_spec(spec)
            try:
                allocators.get(name)(1 << 24, **params)
            except BadParameter as error:
                raise BadParameter(f"pools: set-up {label} ({spec}): {error}") from None
        for request_bytes in self.request_bytes:
            for temps in self.temps:
                try:
                    catalog.parameters(self.workload(request_bytes, temps))
                except ValueError as error:
                    raise BadParameter(f"pools: {error}") from None


@dataclass(frozen=True)
class PoolsCell:
    """One set-up on one churn trace: the scenario's figures (None where not measured or the cell failed)."""

    setup: str
    allocator: str
    workload: str
    request_bytes: int
    temps: int
    seed: int
    status: str
    reason: str
    rows: int
    allocations: int
    heap_allocations: int | None
    baseline_heap_allocations: int | None
    avoided: int | None
    avoided_fraction: float | None
    gc_cycles: int | None
    pool_clears: int | None
    peak_footprint: int | None
    peak_live_requested: int | None
    overhead_factor: float | None
    throughput_mops: float | None


@dataclass
class PoolsReport:
    config: PoolsConfig
    cells: list[PoolsCell]
    rows: list[ResultRow]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        """OUT/pools.json (config, meta, cells), OUT/pools.csv (cells) and the harness rows (results.json/csv)."""
        document = {"meta": self.meta, "config": asdict(self.config), "cells": [asdict(c) for c in self.cells]}
        cells = [{key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in asdict(cell).items()}
                 for cell in self.cells]
        out = save_report(out, "pools", document, {"pools": cells})
        write_results(out, self.rows, {**self.meta, "scenario": "pools"})
        return out


def load_report(out: str | Path) -> dict[str, Any]:
    """pools.json of a saved report, as a dict (FileNotFoundError when there is none)."""
    path = Path(out) / "pools.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pools report (run `python -m bench pools --out {out}`)")
    return json.loads(path.read_text())


# ----------------------------------------------------------------- figures
def heap_allocations(allocator_name: str, counters: dict[str, int]) -> int | None:
    """Allocations that reached the Go heap (see the module docstring), from a cell's counters."""
    if allocator_name == "objpool":
        key = "inner_allocs"
    elif allocator_name == "region":
        key = "chunks_taken"
    else:
        key = "allocs"
    value = counters.get(key)
    return None if value is None else int(value)


def gc_cycles(allocator_name: str, counters: dict[str, int]) -> int | None:
    """Garbage-collection cycles of the Go heap behind a set-up (None: the model has no collector)."""
    key = "inner_gc_cycles" if allocator_name == "objpool" else "gc_cycles"
    value = counters.get(key)
    return None if value is None else int(value)


def _cell(setup: str, row: ResultRow, config: PoolsConfig, request_bytes: int, temps: int, allocations: int,
          baseline: int | None) -> PoolsCell:
    name = row.allocator_name or row.allocator.partition(":")[0]
    heap = heap_allocations(name, row.counters) if row.ok else None
    avoided = baseline - heap if heap is not None and baseline is not None else None
    return PoolsCell(
        setup=setup, allocator=row.allocator, workload=row.workload, request_bytes=request_bytes, temps=temps,
        seed=row.seed, status=row.status, reason=row.reason, rows=int(row.rows or 0), allocations=allocations,
        heap_allocations=heap, baseline_heap_allocations=baseline, avoided=avoided,
        avoided_fraction=avoided / baseline if avoided is not None and baseline else None,
        gc_cycles=gc_cycles(name, row.counters) if row.ok else None,
        pool_clears=int(row.counters["clears"]) if row.ok and name == "objpool" else None,
        peak_footprint=row.peak_footprint if row.ok else None,
        peak_live_requested=row.peak_live_requested if row.ok else None,
        overhead_factor=row.metrics.get("overhead_factor") if row.ok else None,
        throughput_mops=row.throughput_mops if row.ok else None,
    )


def run_pools(config: PoolsConfig | None = None, progress: Callable[[str], None] | None = None) -> PoolsReport:
    """Measure the grid (see the module docstring); bad input raises BadParameter before anything runs."""
    config = config or PoolsConfig()
    config.check()
    cells: list[PoolsCell] = []
    rows: list[ResultRow] = []
    labels = list(config.setups)
    total = len(config.request_bytes) * len(config.temps) * len(config.seeds)
    done = 0
    for request_bytes in config.request_bytes:
        for temps in config.temps:
            workload = config.workload(request_bytes, temps)
            for seed in config.seeds:
                trace = catalog.make(workload, n_ops=config.ops, seed=seed)
                allocations = int((trace.op == 0).sum())
                baseline: int | None = None
                for index, label in enumerate(labels):
                    spec = config.setups[label]
                    row, _ = harness.measure(spec, trace, repeats=config.repeats)
                    row.workload, row.family, row.seed = workload, "churn", seed
                    row.param, row.param_value = "temps", float(temps)
                    row.allocator_name = spec.partition(":")[0]
                    row.extra["setup"] = label
                    if index == 0:
                        name = row.allocator_name
                        baseline = heap_allocations(name, row.counters) if row.ok else None
                    rows.append(row)
                    cells.append(_cell(label, row, config, request_bytes, temps, allocations, baseline))
                done += 1
                if progress is not None:
                    progress(f"pools: {done}/{total} {workload} seed {seed}")
    meta = {"scenario": "pools", "baseline": labels[0], "setups": dict(config.setups), "ops": config.ops,
            "repeats": config.repeats}
    return PoolsReport(config, cells, rows, meta)


# ----------------------------------------------------------------- summary
@dataclass(frozen=True)
class PoolsPoint:
    """A set-up at one grid point, over its seeds: means (None where not measured)."""

    setup: str
    request_bytes: int
    temps: int
    heap_allocations: float | None
    avoided_fraction: float | None
    gc_cycles: float | None
    peak_footprint: float | None
    throughput_mops: float | None
    failed: int


def _mean(values: Sequence[float | int | None]) -> float | None:
    present = [float(value) for value in values if value is not None]
    return statistics.fmean(present) if present and len(present) == len(values) else None


def summarise(cells: Sequence[PoolsCell | dict[str, Any]]) -> list[PoolsPoint]:
    """Mean figures per (set-up, request size, temporaries) over the seeds, in the cells' order."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for cell in cells:
        record = asdict(cell) if isinstance(cell, PoolsCell) else cell
        groups.setdefault((record["setup"], record["request_bytes"], record["temps"]), []).append(record)
    points = []
    for (setup, request_bytes, temps), members in groups.items():
        ok = [member for member in members if member["status"] == "ok"]

        def mean(key: str, ok: list[dict[str, Any]] = ok) -> float | None:
            return _mean([member[key] for member in ok]) if ok else None

        points.append(PoolsPoint(setup, request_bytes, temps, mean("heap_allocations"), mean("avoided_fraction"),
                                 mean("gc_cycles"), mean("peak_footprint"), mean("throughput_mops"),
                                 len(members) - len(ok)))
    return points


def summary_lines(points: Sequence[PoolsPoint]) -> list[str]:
    """The table `python -m bench pools` prints: one line per set-up and grid point (means over the seeds)."""
    from bench.table import format_bytes

    def show(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    header = (f"{'request':>9} {'temps':>6} {'set-up':<8} {'heap allocs':>12} {'avoided':>8} {'GC cycles':>9} "
              f"{'peak footprint':>14} {'Mops/s':>7}")
    lines = [header, "-" * len(header)]
    for point in points:
        avoided = "-" if point.avoided_fraction is None else f"{100 * point.avoided_fraction:.1f} %"
        footprint = "-" if point.peak_footprint is None else format_bytes(point.peak_footprint)
        failed = f"  ({point.failed} failed)" if point.failed else ""
        lines.append(f"{format_bytes(point.request_bytes):>9} {point.temps:>6} {point.setup:<8} "
                     f"{show(point.heap_allocations, ',.0f'):>12} {avoided:>8} {show(point.gc_cycles, '.1f'):>9} "
                     f"{footprint:>14} {show(point.throughput_mops, '.1f'):>7}{failed}")
    return lines
