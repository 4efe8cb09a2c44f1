"""Safety: which misuse each allocator catches, how late, and what catching it costs (`python -m bench safety`).

The founding notes judge an allocator on four criteria; safety, protection
against misuse, is the one said to cost speed.  This module measures it on
fault traces (`workloads.faults`): ordinary traces with faults written
beside their rows (double frees, invalid and foreign frees, writes after
free, overflows, underflows, frees after a reset).

For each seed it makes the workload's trace and injects the faults
(`inject`, seeded), or takes the user's fault trace as it is; then every
allocator runs every fault on a copy of its heap at the fault's anchor,
followed by a continuation window of rows: the models through their own
checks (`allocators.faultreplay`), the real allocators in a forked child per
fault (`bench.real.safety`).  Each fault's outcome is classified as it hit that
allocator (`workloads.faults.fault_class`: a double free whose address was
handed out again is "after reuse", an overflow inside the size-class slack is
"slack"), so model and real rows tabulate alike.

Verdicts, per allocator x fault class: faults, detected, the detection rate
with a 95 % Wilson interval over every fault of that class in every seed,
the median latency (rows from the fault to its detection; 0 = at the faulty
call itself), and the most common message.  Costs, per allocator: replay
speed and peak footprint on the clean trace (the faults ignored) against the
same allocator with its checks and hardening off (`unhardened_spec`; for the
real allocators, against real glibc), as a slowdown factor and extra bytes.

Results (`SafetyReport.save`): `safety.json` (config, verdicts, costs,
every outcome), `verdicts.csv`, `outcomes.csv`, and with plots
(`bench.plots.safety`) a detection heatmap (model and real rows side by
side) and detection against slowdown.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import allocators
from allocators.errors import AllocatorError, BadParameter
from allocators.faultreplay import DEFAULT_WINDOW, DETECTED, SKIPPED, FaultOutcome, replay_faults
from bench.harness import build_for_trace
from bench.scenarios import save_report
from workloads import catalog
from workloads.faults import FAULT_CLASSES, inject, is_fault_trace, mix_spec, parse_faults
from workloads.trace import Trace, TraceError

DEFAULT_WORKLOAD = "lognormal"
DEFAULT_OPS = 20_000
DEFAULT_SEEDS = (0, 1, 2)
#: Rows of the clean trace the costs are measured on.
DEFAULT_COST_OPS = 200_000
#: Every fault class, 10 faults each in DEFAULT_OPS rows.
DEFAULT_FAULTS = mix_spec("all", 0.0005)
DEFAULT_ALLOCATORS = ("freelist:glibc",)
REAL_BASELINE = "glibc"
#: z for a 95 % interval.
_Z95 = 1.959964


@dataclass
class SafetyConfig:
    """What `run_safety` measures (every field has a default that works on a fresh machine)."""

    allocators: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOCATORS))
    real: list[str] = field(default_factory=list)
    workload: str = DEFAULT_WORKLOAD
    ops: int = DEFAULT_OPS
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    faults: str = DEFAULT_FAULTS
    window: int = DEFAULT_WINDOW
    trace: str | None = None  # a fault trace file: used as it is (workload, ops, seeds and faults unused)
    cost_ops: int = DEFAULT_COST_OPS
    repeats: int = 3
    costs: bool = True
    faults_given: bool = False  # `faults` was asked for (a fault workload's own faults are replaced)

    def check(self) -> None:
        """ValueError naming the first bad field."""
        if not self.allocators and not self.real:
            raise ValueError("safety: no allocator given (-a SPEC or --real NAME)")
        for name, value, low in (("ops", self.ops, 1), ("window", self.window, 0), ("cost_ops", self.cost_ops, 1),
                                 ("repeats", self.repeats, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"safety: {name} must be an integer >= {low}, got {value!r}")
        if not self.seeds and self.trace is None:
            raise ValueError("safety: no seed given")
        parse_faults(self.faults)
        for spec in self.allocators:  # BadParameter (a ValueError) for an unknown name or parameter, now
            name, params = allocators.parse_spec(spec)
            allocators.get(name)(1 << 22, **params)


@dataclass(frozen=True)
class Verdict:
    """One allocator on one fault class, over every seed."""

    allocator: str
    source: str  # "model" or "real"
    fault_class: str
    faults: int
    detected: int
    rate: float
    rate_low: float
    rate_high: float
    median_latency: float | None
    message: str
    mechanism: str


@dataclass(frozen=True)
class Cost:
    """Replay speed and footprint of an allocator against its unhardened baseline, on the clean trace."""

    allocator: str
    source: str
    baseline: str
    throughput_mops: float | None
    baseline_mops: float | None
    slowdown: float | None
    peak_footprint: int | None
    baseline_footprint: int | None
    extra_footprint: int | None
    note: str = ""


@dataclass
class SafetyReport:
    config: SafetyConfig
    outcomes: list[dict[str, Any]]
    verdicts: list[Verdict]
    costs: list[Cost]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        document = {"meta": self.meta, "config": asdict(self.config),
                    "verdicts": [asdict(v) for v in self.verdicts], "costs": [asdict(c) for c in self.costs],
                    "outcomes": self.outcomes}
        return save_report(out, "safety", document, {"verdicts": [asdict(v) for v in self.verdicts],
                                                      "costs": [asdict(c) for c in self.costs],
                                                      "outcomes": self.outcomes})


def load_report(out: str | Path) -> dict[str, Any]:
    """safety.json of a saved report, as a dict."""
    return json.loads((Path(out) / "safety.json").read_text())


# ------------------------------------------------------------------------ inputs
def fault_traces(config: SafetyConfig) -> list[tuple[int, Trace]]:
    """(seed, fault trace) pairs: the user's fault trace, or the workload's trace per seed with faults injected."""
    if config.trace is not None:  # its faults are checked where they are replayed
        trace = Trace.load(config.trace)
        if not is_fault_trace(trace.meta):
            raise TraceError(f"{config.trace}: not a fault trace (make one with: python -m bench trace inject ...)")
        return [(-1, trace)]
    requests = parse_faults(config.faults)
    traces = []
    for seed in config.seeds:
        trace = catalog.make(config.workload, config.ops, seed)
        if not is_fault_trace(trace.meta) or config.faults_given:  # a fault workload (faults=MIX) keeps its own
            trace = inject(trace, requests, seed)
        traces.append((seed, trace))
    return traces


def unhardened_spec(spec: str) -> str:
    """The spec with every check and hardening option off (the class's `hardening_params`), or the spec itself:
    a preset that only switches hardening on (`pool:hardened`) is dropped, given options are removed, and a
    preset's checks (`freelist:glibc`'s) are switched off explicitly."""
    name, params = allocators.parse_spec(spec)
    cls = allocators.get(name)
    off_values = dict(getattr(cls, "hardening_params", {}))
    if not off_values:
        return spec
    preset = params.pop("preset", None)
    preset_params = cls.presets.get(preset, {}) if preset else {}
    if preset and set(preset_params) <= set(off_values):
        preset, preset_params = None, {}
    kept = {key: value for key, value in params.items() if key not in off_values}
    resolved = {**cls.defaults, **preset_params, **kept}
    kept.update({key: value for key, value in off_values.items() if key in resolved and resolved[key] != value})
    items = ([preset] if preset else []) + [f"{key}={int(value) if isinstance(value, bool) else value}"
                                            for key, value in kept.items()]
    return f"{name}:{','.join(items)}" if items else name


# ----------------------------------------------------------------------- running
def run_safety(config: SafetyConfig, progress: Callable[[str], None] | None = None) -> SafetyReport:
    """Every allocator on every fault of every seed's fault trace, then the verdicts and the costs."""
    config.check()
    say = progress or (lambda text: None)
    started = time.perf_counter()
    traces = fault_traces(config)
    outcomes: list[dict[str, Any]] = []
    for seed, trace in traces:
        for spec in config.allocators:
            say(f"model {spec}, seed {seed}: {len(trace.faults)} faults")
            try:
                found = replay_faults(build_for_trace(spec, trace), trace, config.window)
            except BadParameter:
                raise
            except AllocatorError as error:  # the clean replay itself failed: every fault skipped
                found = [FaultOutcome(i, "", "", 0, 0, 0, SKIPPED, message=str(error))
                         for i in range(len(trace.faults))]
            outcomes += [{"allocator": spec, "source": "model", "seed": seed, **o.as_dict()} for o in found]
        for name in config.real:
            from bench.real.safety import replay_faults_real

            say(f"real {name}, seed {seed}: {len(trace.faults)} faults, one child each")
            found = replay_faults_real(trace, name, config.window)
            outcomes += [{"allocator": f"real:{name}", "source": "real", "seed": seed, **o.as_dict()} for o in found]
    verdicts = summarise(outcomes)
    clean = traces[0][1] if config.trace is not None else None  # a file's trace: loaded once
    costs = measure_costs(config, say, clean) if config.costs else []
    meta = {"seconds": round(time.perf_counter() - started, 2), "traces": len(traces),
            "faults_per_trace": [len(trace.faults) for _, trace in traces]}
    return SafetyReport(config, outcomes, verdicts, costs, meta)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a rate."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + _Z95**2 / trials
    centre = (p + _Z95**2 / (2 * trials)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / trials + _Z95**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(outcomes: Sequence[dict[str, Any]]) -> list[Verdict]:
    """One Verdict per (allocator, fault class) that occurred, skipped faults left out."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in outcomes:
        if row["outcome"] != SKIPPED:
            groups[(row["allocator"], row["source"], row["fault_class"])].append(row)
    order = {name: index for index, name in enumerate(FAULT_CLASSES)}
    allocator_order = {name: index for index, name in enumerate(dict.fromkeys(row["allocator"] for row in outcomes))}
    verdicts = []
    for (spec, source, klass), rows in sorted(groups.items(),
                                             key=lambda item: (allocator_order[item[0][0]], order.get(item[0][2], 99))):
        hits = [row for row in rows if row["outcome"] == DETECTED]
        low, high = wilson(len(hits), len(rows))
        messages = Counter(row["message"] for row in hits)
        mechanisms = Counter(row["mechanism"] for row in hits)
        verdicts.append(Verdict(
            spec, source, klass, len(rows), len(hits), len(hits) / len(rows), low, high,
            statistics.median(row["latency"] for row in hits) if hits else None,
            messages.most_common(1)[0][0] if hits else "", mechanisms.most_common(1)[0][0] if hits else "",
        ))
    return verdicts


def _model_speed(spec: str, trace: Trace, repeats: int) -> tuple[float, int]:
    allocator = build_for_trace(spec, trace)
    allocator.replay(trace)  # compile and warm
    times = []
    log = None
    for _ in range(repeats):
        log, seconds = allocator.replay_timed(trace)
        times.append(seconds)
    return len(trace) / statistics.median(times) / 1e6, int(log.peak_footprint)


def measure_costs(config: SafetyConfig, say: Callable[[str], None], trace: Trace | None = None) -> list[Cost]:
    """Each allocator's speed and footprint on the clean trace (`trace`, else the workload's `cost_ops` rows)
    against its unhardened baseline."""
    if trace is None:
        trace = catalog.make(config.workload, config.cost_ops, 0)
    costs = []
    measured: dict[str, tuple[float, int]] = {}  # one measure per spec: a baseline several specs share, once

    def speed(spec: str) -> tuple[float, int]:
        if spec not in measured:
            measured[spec] = _model_speed(spec, trace, config.repeats)
        return measured[spec]

    for spec in config.allocators:
        baseline = unhardened_spec(spec)
        say(f"cost of {spec} against {baseline}: {len(trace):,} rows x {config.repeats}")
        try:
            mops, footprint = speed(spec)
            base_mops, base_footprint = speed(baseline)
        except AllocatorError as error:
            costs.append(Cost(spec, "model", baseline, None, None, None, None, None, None, str(error)))
            continue
        costs.append(Cost(spec, "model", baseline, mops, base_mops, base_mops / mops, footprint, base_footprint,
                          footprint - base_footprint))
    if config.real:
        from bench.real import replay_real
        from bench.real.cleanheap import CompilerMissing, clean_heap_footprint

        figures = {}
        for name in dict.fromkeys([REAL_BASELINE, *config.real]):
            say(f"cost of real {name}: {len(trace):,} rows x {config.repeats}")
            result = replay_real(trace, name, repeats=config.repeats)
            try:
                footprint = clean_heap_footprint(trace, name).get("peak_heap_bytes")
            except CompilerMissing:
                footprint = None
            figures[name] = (float(result["throughput_mops"]), footprint)
        base_mops, base_footprint = figures[REAL_BASELINE]
        for name in config.real:
            mops, footprint = figures[name]
            extra = footprint - base_footprint if footprint is not None and base_footprint is not None else None
            costs.append(Cost(f"real:{name}", "real", f"real:{REAL_BASELINE}", mops, base_mops, base_mops / mops,
                              footprint, base_footprint, extra))
    return costs


# ------------------------------------------------------------------------ tables
def verdict_lines(verdicts: Sequence[Verdict], width_limit: int = 100) -> list[str]:
    """The verdict table: one line per fault class, one column per allocator, each cell 'detected/faults' and the
    95 % interval of the rate; split into tables of as many allocators as fit `width_limit` columns."""
    names = list(dict.fromkeys(v.allocator for v in verdicts))
    cells = {(v.allocator, v.fault_class): v for v in verdicts}
    classes = [klass for klass in FAULT_CLASSES if any((name, klass) in cells for name in names)]
    width = max([len(klass) for klass in classes] + [11])

    def text(name: str, klass: str) -> str:
        verdict = cells.get((name, klass))
        if verdict is None:
            return "-"
        return f"{verdict.detected}/{verdict.faults} {100 * verdict.rate_low:.0f}-{100 * verdict.rate_high:.0f}%"

    columns = {name: max([len(name)] + [len(text(name, klass)) for klass in classes]) + 2 for name in names}
    groups: list[list[str]] = [[]]
    for name in names:
        if groups[-1] and width + sum(columns[n] for n in groups[-1]) + columns[name] > width_limit:
            groups.append([])
        groups[-1].append(name)
    lines = []
    for group in groups:
        if lines:
            lines.append("")
        lines.append("fault class".ljust(width) + "".join(name.rjust(columns[name]) for name in group))
        lines += [klass.ljust(width) + "".join(text(name, klass).rjust(columns[name]) for name in group)
                  for klass in classes]
    lines.append("cells: faults detected / faults of the class, and the 95 % Wilson interval of the rate")
    return lines


def cost_lines(costs: Sequence[Cost]) -> list[str]:
    lines = []
    for cost in costs:
        if cost.slowdown is None:
            lines.append(f"{cost.allocator}: not measured ({cost.note})")
            continue
        extra = "" if cost.extra_footprint is None else f", footprint {cost.extra_footprint / 1024:+,.0f} KiB"
        lines.append(f"{cost.allocator}: {cost.throughput_mops:.2f} Mops/s, {cost.slowdown:.2f}x slower than "
                     f"{cost.baseline} ({cost.baseline_mops:.2f} Mops/s){extra}")
    return lines
