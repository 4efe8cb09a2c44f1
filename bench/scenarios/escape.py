"""`python -m bench escape`: what escape analysis saves a Go program, swept over the share of sites that escape.

The question.  Go keeps every object that escape analysis proves local in
its stack frame, and only the rest reaches the heap and the collector.  How
much does that save: heap allocations, GC cycles, footprint, locality,
time?  The scenario answers it on one program per (ratio, seed) measured
twice: with escape analysis (the heap trace of `goescape:escape=R`) and
without it (`escape_analysis=off`: the same program, every object on the
heap), so what is avoided is a difference of two measurements, not a
formula.

Design.  For each escape ratio R and seed, `catalog.program` runs the
program `goescape:allocs=K,escape=R` (workloads/escape.py: a fixed program
of K allocation sites, so every ratio runs the same amount of work), with and
without escape analysis.  Each heap trace goes through every allocator
(`go:gc` by default: Go's allocator with its paced collector) by
`bench.harness.measure`, the harness `sweep` uses, so its figures are the
sweep's (speed, footprint, the locality proxies of bench/metrics/locality.py,
the allocator's counters such as gc_cycles); the frame table goes through
allocators.goframes (bump allocation, frames freed at return).

One `EscapeRow` per (allocator, ratio, seed, analysis on/off):

- heap: heap_allocs (ALLOC rows), heap_bytes, gc_cycles, peak_heap_footprint,
  the locality proxies (hot_reuse_rate, alloc_same_line_rate,
  alloc_same_page_rate, l1_miss_rate, tlb_miss_rate), heap_seconds (median
  replay);
- stack: stack_objects, stack_bytes, peak_stack_bytes, stack_reserved_bytes
  (the power-of-two goroutine stack that holds the peak),
  stack_same_line_rate, stack_same_page_rate, stack_seconds;
- together: peak_footprint = peak heap footprint + reserved stack (an upper
  bound: the two peaks need not coincide), ns_per_site = (heap + stack
  seconds) / sites, the program's time per allocation;
- against the counterfactual (on rows): heap_allocs_avoided and its share,
  gc_cycles_avoided.

`reports/escape/` gets escape.json (config, meta, rows), escape.csv and
plots/ (bench.plots.escape).  Timings vary from run to run; every other
figure is a function of the config (same config, same figures).

Costs: 2 x ratios x seeds programs of K sites (about 40 B per site), and as
many replays per allocator, each O(rows) plus the metric passes.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import allocators
from bench import harness
from bench.scenarios import save_report
from workloads import catalog
from workloads.trace import OP_ALLOC

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_ALLOCATORS = ("go:gc",)
DEFAULT_ALLOCS = 200_000
#: The program's other keys by default: requests of median ~150 B (mu=5), so that a fully escaping program of
#: DEFAULT_ALLOCS sites allocates ~50 MB and go:gc's collector runs more than a dozen cycles.
DEFAULT_PROGRAM = "mu=5"
MAX_ALLOCS = 20_000_000
#: Keys of the program that the scenario sets itself (the others may be given in `program`).
OWN_KEYS = ("escape", "escape_analysis", "allocs")


@dataclass
class EscapeConfig:
    """What the escape scenario measures (module docstring)."""

    ratios: Sequence[float] = DEFAULT_RATIOS
    seeds: Sequence[int] = (0, 1)
    allocators: Sequence[str] = DEFAULT_ALLOCATORS
    allocs: int = DEFAULT_ALLOCS
    program: str = DEFAULT_PROGRAM  # more goescape keys, e.g. "mu=5,sites=8"
    repeats: int = 3

    def check(self) -> None:
        """ValueError / BadParameter naming the first bad field."""
        ratios = list(self.ratios)
        if not ratios or any(isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r <= 1.0
                             for r in ratios):
            raise ValueError(f"ratios must be at least one number in 0..1 (got {ratios})")
        if len(set(ratios)) != len(ratios):
            raise ValueError(f"ratios must not repeat (got {ratios})")
        seeds = list(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be at least one integer >= 0 (got {seeds})")
        if isinstance(self.allocs, bool) or not isinstance(self.allocs, int) or not 1 <= self.allocs <= MAX_ALLOCS:
            raise ValueError(f"allocs must be an integer in 1..{MAX_ALLOCS:,} (got {self.allocs!r})")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an integer >= 1 (got {self.repeats!r})")
        if not list(self.allocators):
            raise ValueError("allocators must name at least one allocator spec")
        for spec in self.allocators:
            allocators.parse_spec(spec)  # BadParameter naming it
        for item in (part.strip() for part in self.program.split(",")):
            if item and item.partition("=")[0].strip() in OWN_KEYS:
                raise ValueError(f"program key '{item.partition('=')[0].strip()}' is set by the scenario "
                                 "(--ratios, --allocs; the counterfactual is always measured)")
        catalog.parameters(self.spec(ratios[0], True))  # a bad program key: ValueError naming it

    def spec(self, ratio: float, analysis: bool) -> str:
        extra = "," + self.program.strip().strip(",") if self.program.strip().strip(",") else ""
        return (f"goescape:allocs={self.allocs},escape={ratio:g}{extra}"
                + ("" if analysis else ",escape_analysis=off"))


@dataclass
class EscapeRow:
    allocator: str
    ratio: float
    seed: int
    analysis: str  # "on" or "off" (the counterfactual)
    status: str
    reason: str
    sites: int
    escape_ratio: float  # measured: sites decide sends to the heap / sites
    heap_allocs: int
    heap_bytes: int
    gc_cycles: int | None
    peak_heap_footprint: int | None
    hot_reuse_rate: float | None
    alloc_same_line_rate: float | None
    alloc_same_page_rate: float | None
    l1_miss_rate: float | None
    tlb_miss_rate: float | None
    heap_seconds: float | None
    stack_objects: int
    stack_bytes: int
    peak_stack_bytes: int
    stack_reserved_bytes: int
    stack_same_line_rate: float
    stack_same_page_rate: float
    stack_seconds: float
    peak_footprint: int | None
    ns_per_site: float | None
    heap_allocs_avoided: int | None = None
    heap_allocs_avoided_share: float | None = None
    gc_cycles_avoided: int | None = None


@dataclass
class EscapeReport:
    config: EscapeConfig
    rows: list[EscapeRow]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        document = {"meta": self.meta, "config": asdict(self.config), "rows": [asdict(row) for row in self.rows]}
        return save_report(out, "escape", document, {"escape": [asdict(row) for row in self.rows]})


def _row(allocator: str, ratio: float, seed: int, analysis: bool, program: Any, frames: Any,
         cell: Any) -> EscapeRow:
    figures = program.figures
    ok = cell.status == "ok"
    metrics = cell.metrics if ok else {}
    heap_seconds = cell.seconds_median if ok else None
    total = None if heap_seconds is None else heap_seconds + frames.seconds
    peak_heap = cell.peak_footprint if ok else None
    return EscapeRow(
        allocator=allocator, ratio=ratio, seed=seed, analysis="on" if analysis else "off", status=cell.status,
        reason=cell.reason or "", sites=figures["sites"], escape_ratio=figures["escape_ratio"],
        heap_allocs=int((program.trace.op == OP_ALLOC).sum()), heap_bytes=int(program.trace.size[
            program.trace.op == OP_ALLOC].sum()),
        gc_cycles=cell.counters.get("gc_cycles") if ok else None, peak_heap_footprint=peak_heap,
        hot_reuse_rate=metrics.get("hot_reuse_rate"), alloc_same_line_rate=metrics.get("alloc_same_line_rate"),
        alloc_same_page_rate=metrics.get("alloc_same_page_rate"),
        l1_miss_rate=metrics.get("l1_miss_rate"), tlb_miss_rate=metrics.get("tlb_miss_rate"),
        heap_seconds=heap_seconds, stack_objects=frames.objects, stack_bytes=frames.bytes,
        peak_stack_bytes=frames.peak_bytes, stack_reserved_bytes=frames.reserved_bytes,
        stack_same_line_rate=frames.same_line_rate, stack_same_page_rate=frames.same_page_rate,
        stack_seconds=frames.seconds,
        peak_footprint=None if peak_heap is None else peak_heap + frames.reserved_bytes,
        ns_per_site=None if total is None else total * 1e9 / max(figures["sites"], 1),
    )


def _against_counterfactual(rows: list[EscapeRow]) -> None:
    off = {(row.allocator, row.ratio, row.seed): row for row in rows if row.analysis == "off"}
    for row in rows:
        base = off.get((row.allocator, row.ratio, row.seed))
        if row.analysis != "on" or base is None:
            continue
        row.heap_allocs_avoided = base.heap_allocs - row.heap_allocs
        row.heap_allocs_avoided_share = row.heap_allocs_avoided / base.heap_allocs if base.heap_allocs else 0.0
        if row.gc_cycles is not None and base.gc_cycles is not None:
            row.gc_cycles_avoided = base.gc_cycles - row.gc_cycles


def run_escape(config: EscapeConfig | None = None, progress: Callable[[str], None] | None = None) -> EscapeReport:
    """Measure the scenario (module docstring); bad input raises ValueError / BadParameter before any work."""
    from allocators.goframes import replay_frames

    config = config or EscapeConfig()
    config.check()
    started = time.perf_counter()
    rows: list[EscapeRow] = []
    for ratio in config.ratios:
        for seed in config.seeds:
            for analysis in (True, False):
                spec = config.spec(ratio, analysis)
                program = catalog.program(spec, 0, seed)
                frames, _ = replay_frames(program.stack_op, program.stack_size, repeats=config.repeats)
                for allocator in config.allocators:
                    cell, _ = harness.measure(allocator, program.trace, repeats=config.repeats)
                    rows.append(_row(allocator, float(ratio), seed, analysis, program, frames, cell))
                    if progress is not None:
                        last = rows[-1]
                        say_gc = "" if last.gc_cycles is None else f", {last.gc_cycles} GC cycles"
                        progress(f"escape: {allocator} escape={ratio:g} seed {seed} analysis "
                                 f"{last.analysis}: {last.heap_allocs:,} heap allocations{say_gc}")
    _against_counterfactual(rows)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "seconds": round(time.perf_counter() - started, 2), "specs": [config.spec(r, a) for r in config.ratios
                                                                           for a in (True, False)]}
    return EscapeReport(config, rows, meta)


def summary_lines(report: EscapeReport) -> list[str]:
    """One line per (allocator, ratio): means over the seeds, escape analysis on, against off."""
    lines = [f"{'allocator':<12}{'escape':>7}{'measured':>9}{'heap allocs':>12}{'avoided':>9}{'GC on/off':>11}"
             f"{'peak heap+stack':>16}{'ns/site on/off':>16}"]
    keys = list(dict.fromkeys((row.allocator, row.ratio) for row in report.rows))
    for allocator, ratio in keys:
        group = [row for row in report.rows if row.allocator == allocator and row.ratio == ratio]
        on = [row for row in group if row.analysis == "on"]
        off = [row for row in group if row.analysis == "off"]
        if any(row.status != "ok" for row in group):
            failed = next(row for row in group if row.status != "ok")
            lines.append(f"{allocator:<12}{ratio:>7g}  failed: {failed.reason}")
            continue

        def mean(rows: list[EscapeRow], name: str) -> float:
            return sum(getattr(row, name) for row in rows) / len(rows)

        lines.append(
            f"{allocator:<12}{ratio:>7g}{mean(on, 'escape_ratio'):>9.3f}{mean(on, 'heap_allocs'):>12,.0f}"
            f"{100 * mean(on, 'heap_allocs_avoided_share'):>8.1f}%"
            f"{mean(on, 'gc_cycles'):>6.1f}/{mean(off, 'gc_cycles'):<4.1f}"
            f"{mean(on, 'peak_footprint') / 2**20:>12.2f} MiB"
            f"{mean(on, 'ns_per_site'):>9.1f}/{mean(off, 'ns_per_site'):<6.1f}")
    return lines
