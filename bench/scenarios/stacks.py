"""Stacks: segmented against contiguous goroutine stacks over call-depth traces (`python -m bench stacks`).

Go's stacks were segmented up to Go 1.2 (a new segment when a call did not
fit, freed on return) and are contiguous since Go 1.3 (double and copy,
halve at GC).  The switch was made for the *hot split*: a loop that calls a
function across a segment boundary allocates and frees a segment on every
iteration.  This scenario measures both designs (`allocators.gostack`) on
call-depth workloads (`workloads.callgen`) and checks the contiguous model
against the real runtime.

1. Cells: every model spec x workload spec x seed (or a `--trace` file):
   the model's counters (segment allocations and frees, splits, hot splits,
   copies, bytes copied, shrinks, peak stack bytes) and the kernel's time per
   row, the median of `repeats` timed runs.
2. The hot split: the `boundary` loop (frame 128 B, callee 256 B, by default)
   run at every loop depth from `hot_depths`, for every model: segment
   allocations per 1000 calls against the loop's depth.  Segmented models
   spike to ~1000 where the callee's call crosses a segment boundary (the
   depths are computed by the models themselves: `boundary_depths`) and are ~0
   elsewhere; the contiguous model pays its few doublings once.
3. Real Go (when the toolchain is installed and `real` is not False):
   `bench.real.gostacks.measure_real_stacks`, real stack bytes beside the
   contiguous model's for a recursion of known frames to given depths, plus
   each variant's first growth depth and the one before it.

Results (`StacksReport.save(out)`, default reports/stacks): `stacks.json`
(config, cells, hot-split points, real rows, meta), `cells.csv`, `hot.csv`,
`real.csv`; the plots are `bench.plots.stacks`'s.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from allocators.errors import BadParameter
from allocators.gostack import StackResult, parse_model, replay_stack
from bench.scenarios import save_report
from workloads import callgen
from workloads.calldepth import CallTrace, descend

DEFAULT_MODELS = ("segmented", "segmented:go1.1", "segmented:keep=1", "contiguous", "contiguous:go1.19")
DEFAULT_WORKLOADS = ("randomwalk:gc_every=1000", "randomwalk:goroutines=16,gc_every=2000", "recursion:gc_every=3333",
                     "recursion:depth=1000,frame=200", "boundary")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_OPS = 100_000
#: Loop depths of the hot-split sweep (frames of 128 B below the loop: 2.5 to 12 KiB).
DEFAULT_HOT_DEPTHS = tuple(range(20, 97))
HOT_OPS = 4_000
HOT_FRAME = 128
HOT_CALLEE = 256
#: Most loop depths (and the deepest) of the hot-split sweep: `boundary_depths` replays every depth up to it.
MAX_HOT_DEPTHS = 2_000


@dataclass
class StacksConfig:
    """What `run_stacks` measures (every field has a default that finishes in well under a minute)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    workloads: list[str] = field(default_factory=lambda: list(DEFAULT_WORKLOADS))
    ops: int = DEFAULT_OPS
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    repeats: int = 3
    trace: str | None = None
    hot_depths: list[int] = field(default_factory=lambda: list(DEFAULT_HOT_DEPTHS))
    #: None: real Go when the toolchain is installed; True: required; False: never.
    real: bool | None = None

    def check(self) -> None:
        """BadParameter / ValueError naming the first bad field."""
        if not self.models:
            raise BadParameter("stacks: no model given")
        for spec in self.models:
            parse_model(spec)
        if self.trace is None:
            if not self.workloads:
                raise ValueError("stacks: no workload given")
            for spec in self.workloads:
                callgen.parameters(spec)
        for name, value, low in (("ops", self.ops, 1), ("repeats", self.repeats, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"stacks: {name} must be an integer >= {low}, got {value!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError("stacks: seeds must be one or more integers >= 0")
        if len(self.hot_depths) > MAX_HOT_DEPTHS or any(
                isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= MAX_HOT_DEPTHS for d in self.hot_depths):
            raise ValueError(f"stacks: hot depths must be at most {MAX_HOT_DEPTHS} integers in 0..{MAX_HOT_DEPTHS}")


@dataclass
class StacksReport:
    config: StacksConfig
    cells: list[dict[str, Any]]
    hot: list[dict[str, Any]]
    boundaries: dict[str, list[int]]
    real: list[dict[str, Any]]
    real_note: str = ""
    #: per real variant, the contiguous model's (depth, stack bytes) steps (`bench.real.gostacks.model_steps`)
    real_steps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        document = {"meta": self.meta, "config": asdict(self.config), "cells": self.cells, "hot": self.hot,
                    "boundaries": self.boundaries, "real": self.real, "real_note": self.real_note,
                    "real_steps": self.real_steps}
        return save_report(out, "stacks", document, {"cells": self.cells, "hot": self.hot, "real": self.real})


def cell_row(model: str, workload: str, seed: int, trace: CallTrace, result: StackResult) -> dict[str, Any]:
    counters = result.counters
    calls = max(counters["calls"], 1)
    return {"model": model, "workload": workload, "seed": seed, "rows": result.rows, **counters,
            "seg_allocs_per_kcall": 1000.0 * counters["seg_allocs"] / calls,
            "ns_per_row": result.ns_per_row, "ns_per_call": 1e9 * result.seconds / calls}


def boundary_depths(model: str, frame: int = HOT_FRAME, callee: int = HOT_CALLEE, up_to: int = 200) -> list[int]:
    """Depths d <= up_to at which a call of `callee` bytes below d frames of `frame` bytes makes the model split
    or grow its stack while the d frames alone do not go past the stack they end in: the loop depths that pay
    for every iteration (segmented) or once (contiguous)."""
    depths = []
    for depth in range(up_to + 1):
        base = replay_stack(model, descend([frame] * depth)) if depth else None
        with_callee = replay_stack(model, descend([frame] * depth + [callee]))
        if with_callee["splits"] > (base["splits"] if base else 0):
            depths.append(depth)
    return depths


def hot_sweep(models: list[str], depths: list[int], ops: int = HOT_OPS, repeats: int = 3) -> list[dict[str, Any]]:
    """Per model and loop depth: the boundary loop's segment allocations per 1000 calls and time per call."""
    rows = []
    for depth in depths:
        trace = callgen.make(f"boundary:depth={depth},frame={HOT_FRAME},callee={HOT_CALLEE}", ops, 0)
        for model in models:
            result = replay_stack(model, trace, repeats=repeats)
            rows.append({"model": model, "depth": depth, "loop_bytes": depth * HOT_FRAME,
                         **{key: result[key] for key in ("calls", "seg_allocs", "splits", "hot_splits",
                                                         "bytes_copied", "peak_reserved")},
                         "seg_allocs_per_kcall": 1000.0 * result["seg_allocs"] / max(result["calls"], 1),
                         "splits_per_kcall": 1000.0 * result["splits"] / max(result["calls"], 1),
                         "ns_per_call": 1e9 * result.seconds / max(result["calls"], 1)})
    return rows


def real_rows(real: bool | None) -> tuple[list[dict[str, Any]], str]:
    """Real Go beside the contiguous model, or ([], why not)."""
    import shutil

    if real is False:
        return [], "real Go not asked for (--no-real)"
    if shutil.which("go") is None:
        if real:
            raise ValueError("stacks: --real needs the go toolchain (apt-get install -y golang-go)")
        return [], "real Go skipped: the go toolchain is not installed (apt-get install -y golang-go)"
    from bench.real.gostacks import DEFAULT_DEPTHS, VARIANTS, first_growth_depths, measure_real_stacks

    edges = first_growth_depths()
    rows = []
    for variant in VARIANTS:
        depths = sorted({*DEFAULT_DEPTHS, *((edges[variant] - 1, edges[variant]) if variant in edges else ())})
        rows += measure_real_stacks(depths, variants=[variant])
    return rows, ""


def real_steps(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, int]]]:
    """Per real variant, the contiguous model's (depth, size) steps up to the deepest depth measured."""
    from bench.real.gostacks import model_steps

    variants = dict.fromkeys(row["variant"] for row in rows)
    return {v: model_steps(v, max(row["depth"] for row in rows if row["variant"] == v)) for v in variants}


def run_stacks(config: StacksConfig, progress: Callable[[str], None] | None = None) -> StacksReport:
    """The cells, the hot-split sweep and the real-Go check of `config` (module docstring)."""
    config.check()
    say = progress or (lambda text: None)
    if config.trace is not None:
        sources = [(Path(config.trace).name, -1, CallTrace.load(config.trace))]
    else:
        sources = [(spec, seed, callgen.make(spec, config.ops, seed))
                   for spec in config.workloads for seed in config.seeds]
    cells = []
    for workload, seed, trace in sources:
        say(f"stacks: {workload} seed {seed} ({len(trace):,} rows)")
        for model in config.models:
            cells.append(cell_row(model, workload, seed, trace, replay_stack(model, trace, repeats=config.repeats)))
    say(f"stacks: the hot-split sweep ({len(config.hot_depths)} loop depths)")
    hot = hot_sweep(config.models, config.hot_depths, repeats=config.repeats)
    top = max(config.hot_depths, default=0)
    boundaries = {model: boundary_depths(model, up_to=top) for model in config.models}
    real, note = real_rows(config.real)
    if real:
        say(f"stacks: real Go, {len(real)} recursions")
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "go_version": real[0]["go_version"] if real else None}
    return StacksReport(config=config, cells=cells, hot=hot, boundaries=boundaries, real=real, real_note=note,
                        real_steps=real_steps(real) if real else {}, meta=meta)


# ---------------------------------------------------------------------- console
def _bytes(value: float) -> str:
    from bench.table import format_bytes

    return format_bytes(value)


def summary(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells averaged over seeds, per model x workload (in order)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((cell["workload"], cell["model"]), []).append(cell)
    rows = []
    for (workload, model), members in groups.items():
        mean = {key: sum(m[key] for m in members) / len(members) for key in (
            "seg_allocs", "splits", "hot_splits", "copies", "bytes_copied", "peak_reserved", "shrinks",
            "seg_allocs_per_kcall", "ns_per_call")}
        rows.append({"workload": workload, "model": model, "seeds": len(members), **mean})
    return rows


def table_lines(cells: list[dict[str, Any]]) -> list[str]:
    """One table per workload, a row per model (means over the seeds)."""
    from bench.table import render

    headers = ["model", "seg\nallocs", "splits", "hot\nsplits", "copies", "bytes\ncopied", "peak\nstack",
               "shrinks", "allocs/\nkcall", "ns/\ncall"]
    rows = summary(cells)
    lines: list[str] = []
    for workload in dict.fromkeys(row["workload"] for row in rows):
        members = [row for row in rows if row["workload"] == workload]
        lines += ["" if lines else None, f"{workload} (mean of {members[0]['seeds']} seed(s)):"]
        lines += render(headers, [[
            row["model"], f"{row['seg_allocs']:,.0f}", f"{row['splits']:,.0f}", f"{row['hot_splits']:,.0f}",
            f"{row['copies']:,.0f}", _bytes(row["bytes_copied"]), _bytes(row["peak_reserved"]),
            f"{row['shrinks']:,.0f}", f"{row['seg_allocs_per_kcall']:.1f}", f"{row['ns_per_call']:.1f}",
        ] for row in members]).splitlines()
    return [line for line in lines if line is not None]


def real_lines(rows: list[dict[str, Any]]) -> list[str]:
    from bench.table import render

    headers = ["variant ($F)", "depth", "real Go\nstack", "model\nstack", "match", "StackInuse\ndelta",
               "used real\n/ model"]
    body = [[f"{row['variant']} ({row['frame']} B)", f"{row['depth']:,}", _bytes(row["real_stack_bytes"]),
             _bytes(row["model_stack_bytes"]), "yes" if row["match"] else "NO", _bytes(row["stackinuse_delta"]),
             f"{row['real_used_at_probe']:,} / {row['model_used_at_probe']:,}"] for row in rows]
    return render(headers, body).splitlines()
