"""The sweep's grid: presets, the typed `SweepConfig`, and the plan of cells it expands into.

A *preset* names the allocators, the workloads and the trace size;
`SweepConfig` overrides any of them (allocators, workloads, ops, seeds, real
allocators).  `make_plan(config)` expands the workload entries, a catalog spec
(`fifo`, `lognormal:threads=4`), a *family sweep* `FAMILY:PARAM=V1/V2/...`
(one workload per value, recorded as `family`, `param` and `param_value`), or
`trace:PATH` (a trace file or chunked directory, checked here), crosses them
with the allocator specs and the seeds, and returns the `Plan` of `Cell`s
that bench.sweep runs (its docstring says how cells run, are stored and
resumed).  Nothing here measures anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import allocators
from allocators.hardening import HARDENING_PRESETS
from workloads import catalog
from workloads.chunked import ChunkedTrace


@dataclass(frozen=True)
class Preset:
    description: str
    workloads: tuple[str, ...]
    ops: int
    repeats: int
    allocators: tuple[str, ...] = ()  # empty: every registered allocator and preset
    real: tuple[str, ...] = ()  # real allocators measured beside the models as the scale (cells `real:NAME`)


#: The classics preset's workloads: the mimalloc-bench patterns, one catalog workload each (`xmalloc`, an alias, left
#: out).
CLASSICS = ("larson", "mstress", "rptest", "alloc-test", "sh6bench", "xmalloc-test", "cache-scratch", "cache-thrash",
            "glibc-simple", "glibc-thread", "malloc-large:iterations=200")

PRESETS: dict[str, Preset] = {
    "default": Preset(
        "every allocator and real glibc (the scale) x 27 workloads (log-normal sigma and Pareto alpha swept; "
        "threads 1/2/4/8/16 for independent threads and for producer-consumer), 200k rows, 3 repeats",
        ("lognormal:sigma=0.5/1/1.5/2", "pareto:alpha=1.1/1.5/2/3", "fixed", "bimodal", "adversarial", "lifo",
         "fifo", "phased", "explifetime", "threads4:threads=1/2/4/8/16", "producer-consumer:threads=1/2/4/8/16",
         "scan", "realloc"),
        ops=200_000, repeats=3, real=("glibc",),
    ),
    "ci": Preset(
        "the CI regression preset: every allocator x 6 workloads, 20k rows, 5 repeats (a few seconds)",
        ("lognormal:sigma=0.5/1.5", "pareto", "fifo", "phased", "producer-consumer"),
        ops=20_000, repeats=5,
    ),
    "escape": Preset(
        "go:gc and go on one Go-like program of 200k allocation sites (goescape, mu=5) per escape ratio "
        "0/0.25/0.5/0.75/1 (its heap trace after escape analysis; `bench escape` adds the stack and the "
        "counterfactual)",
        ("goescape:allocs=200000,mu=5,escape=0/0.25/0.5/0.75/1",),
        ops=200_000, repeats=3, allocators=("go:gc", "go"),
    ),
    "quick": Preset(
        "every allocator x 5 workloads, 10k rows, 1 repeat: seconds",
        ("lognormal:sigma=0.5/1.5", "fixed", "lifo", "producer-consumer"),
        ops=10_000, repeats=1,
    ),
    "classics": Preset(
        "every allocator x the 11 classic benchmarks of mimalloc-bench (larson, mstress, rptest, alloc-test, "
        "sh6bench, xmalloc-test, cache-scratch, cache-thrash, glibc-simple, glibc-thread, malloc-large: "
        "workloads/classics/) and every installed real allocator beside them, 200k rows, 3 repeats",
        CLASSICS, ops=200_000, repeats=3, real=("glibc", "jemalloc", "tcmalloc", "mimalloc", "scudo"),
    ),
    "pools": Preset(
        "the pools scenario's set-ups (go:gc; objpool over go:gc, 16 B and power-of-two buckets; region, 8 MiB "
        "chunks) x churn with 10/100/1000 temporaries per 64 KiB request, 100k rows, 3 repeats (python -m bench "
        "pools: the full scenario)",
        ("churn:temps=10/100/1000",), ops=100_000, repeats=3,
        allocators=("go:gc", "objpool:inner=go:gc", "objpool:inner=go:gc,round=pow2",
                    "region:chunk_size=8MiB,reserve=131120"),
    ),
}

#: The lock file a sweep holds in its results directory.
#: Real allocators in a sweep (`--real`) are named `real:glibc`, `real:jemalloc`, ...
REAL_PREFIX = "real:"
#: A workload entry `trace:PATH` replays a trace file (.npz, .csv) or a chunked trace directory (one cell per
#: allocator: the first seed only, a file is one trace).
TRACE_PREFIX = "trace:"


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep measures.  None: the preset's value (allocators: every registered allocator and preset).

    `workloads` entries are catalog specs or family sweeps `FAMILY:PARAM=V1/V2/...`; `real` adds the machine's
    real allocators as cells `real:NAME` (the preset's own real allocators, e.g. the default's `real:glibc`, are
    in the plan unless `allocators` is given); `heapmap` is the cell drawn as a heap map, `ALLOCATOR@WORKLOAD`.
    """

    preset: str = "default"
    allocators: Sequence[str] | None = None
    workloads: Sequence[str] | None = None
    ops: int | None = None
    seeds: Sequence[int] = (0,)
    repeats: int | None = None
    real: bool = False
    heapmap: str | None = None


@dataclass(frozen=True)
class Cell:
    allocator: str
    workload: str
    seed: int
    family: str
    param: str | None = None
    param_value: float | None = None

    def key(self, ops: int, repeats: int) -> str:
        text = json.dumps([self.allocator, self.workload, self.seed, ops, repeats])
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Plan:
    preset: str
    allocators: list[str]
    workloads: list[tuple[str, str, str | None, float | None]]  # spec, family, param, value
    seeds: list[int]
    ops: int
    repeats: int
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines said before the sweep (real allocators --real left out)

    def __post_init__(self) -> None:
        self.cells = [
            Cell(spec, workload, seed, family, param, value)
            for seed in self.seeds
            for workload, family, param, value in self.workloads
            if seed == self.seeds[0] or not workload.startswith(TRACE_PREFIX)  # a trace file is one trace
            for spec in self.allocators
        ]


def default_allocators() -> list[str]:
    """Every registered allocator and preset, but the hardening presets (`:hardened`, `:scudo`), which
    `bench safety` measures against their base: a sweep or `perf` takes them when named (-a)."""
    specs = []
    for name in allocators.names():
        specs.append(name)
        specs.extend(f"{name}:{preset}" for preset in allocators.get(name).presets if preset not in HARDENING_PRESETS)
    return specs


def expand_workload(entry: str) -> list[tuple[str, str, str | None, float | None]]:
    """'lognormal:sigma=0.5/1' -> [('lognormal:sigma=0.5', 'lognormal', 'sigma', 0.5), ...]; 'trace:PATH' as is."""
    if entry.startswith(TRACE_PREFIX):
        return [(entry, "trace", None, None)]
    family, _, rest = entry.partition(":")
    items = [item.strip() for item in rest.split(",") if item.strip()]
    swept = [item for item in items if _is_swept(family, items, item)]
    if len(swept) > 1:
        raise ValueError(f"workload '{entry}': sweep one parameter at a time")
    if not swept:
        return [(entry, family, None, None)]
    key, _, values = swept[0].partition("=")
    fixed = [item for item in items if item is not swept[0]]
    expanded = []
    for text in values.split("/"):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"workload '{entry}': swept value '{text}' of {key} is not a number") from None
        spec = f"{family}:" + ",".join(fixed + [f"{key}={text}"])
        expanded.append((spec, family, key, value))
    return expanded


def _is_swept(family: str, items: list[str], item: str) -> bool:
    """`key=V1/V2/...` sweeps `key` unless the key takes a list or a text (`values=16/32/64`,
    `histogram=dir/sizes.csv`): those are one workload."""
    key, equals, value = item.partition("=")
    if not equals or "/" not in value:
        return False
    return _numeric_key(family, items, item, key.strip())


def _numeric_key(family: str, items: list[str], item: str, key: str) -> bool:
    """Whether `key` takes a number in this workload (a list- or text-valued key is not swept): its value in force
    in the family with the spec's component choices (`sizes=`, `lifetime=`, ...) and nothing else."""
    selectors = [other for other in items if other.partition("=")[0].strip() in catalog.SELECTOR_KEYS]
    base = family + (":" + ",".join(selectors) if selectors else "")
    try:
        in_force = catalog.parameters(base)
    except ValueError:
        return True  # let the sweep's own check name the problem
    value = in_force.get(key)
    if value is None:  # a key not recorded at its default (producer-consumer's threads): ask with the first value
        first = item.partition("=")[2].split("/")[0]
        try:
            float(first)
            value = catalog.parameters(f"{base}{',' if selectors else ':'}{key}={first}").get(key)
        except ValueError:
            return False  # a text (a histogram path) or a key this workload does not take: one workload
    return isinstance(value, int | float) and not isinstance(value, bool)


def make_plan(config: SweepConfig) -> Plan:
    """Expand a config into its cells; every spec is checked first (ValueError / BadParameter naming it)."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset '{config.preset}' (known: {', '.join(PRESETS)})")
    preset = PRESETS[config.preset]
    specs = [spec.strip() for spec in config.allocators or () if spec.strip()]
    if not specs:
        specs = (list(preset.allocators) or default_allocators()) + [f"{REAL_PREFIX}{name}" for name in preset.real]
    entries = [spec.strip() for spec in config.workloads or () if spec.strip()] or list(preset.workloads)
    seeds = list(config.seeds)
    if not seeds or any(isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 for seed in seeds):
        raise ValueError("seeds must be at least one integer >= 0")
    for name, value in (("ops", config.ops), ("repeats", config.repeats)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    notes = []
    if config.real:
        from bench.real import ALLOCATORS as REAL_ALLOCATORS
        from bench.real import RealAllocatorMissing, library_path

        for name in REAL_ALLOCATORS:   # every installed one (glibc: always); a missing one is said, not a cell
            try:
                library_path(name)
            except RealAllocatorMissing as error:
                notes.append(f"sweep --real: {REAL_PREFIX}{name} left out: {error}")
                continue
            if f"{REAL_PREFIX}{name}" not in specs:
                specs.append(f"{REAL_PREFIX}{name}")
    for spec in specs:  # fail fast on a typo, before any work
        if not spec.startswith(REAL_PREFIX):
            allocators.parse_spec(spec)
    workloads = [expanded for entry in entries for expanded in expand_workload(entry)]
    for workload, *_ in workloads:
        if workload.startswith(TRACE_PREFIX):
            check_trace_path(workload[len(TRACE_PREFIX):])
        else:
            catalog.make(workload, n_ops=64, seed=0)
    return Plan(
        preset=config.preset, allocators=specs, workloads=workloads, seeds=seeds,
        ops=config.ops or preset.ops, repeats=config.repeats or preset.repeats, notes=notes,
    )



def check_trace_path(path: str) -> None:
    """A `trace:PATH` workload must name a trace file or a chunked trace directory (TraceError / ValueError)."""
    if Path(path).is_dir():
        ChunkedTrace(path)
    elif not Path(path).is_file():
        raise ValueError(f"workload 'trace:{path}': no such trace file or directory")
    elif Path(path).suffix not in (".npz", ".csv"):
        raise ValueError(f"workload 'trace:{path}': a trace file ends in .npz or .csv")
