"""`python -m bench perf`: the performance table of the README, measured on this machine.

For every allocator spec (default: every registered allocator and preset but the hardening presets):
- replay throughput on the 1M-operation benchmark trace (`workloads.benchmark_trace()`:
  log-normal sizes, random lifetimes; `stack` replays the same sizes with LIFO
  lifetimes, the only order it supports): median of `--repeats` kernel runs,
  buffers prepared outside the clock;
- compile time of the allocator's replay kernel from a cold cache, measured in a
  child process with an empty numba cache directory (`--no-compile` skips it);
- memory per trace row: the trace's four columns, and the replay's log and work
  buffers (per-row address and granted size, the per-object record, the timeline).

Side by side with a real allocator (`perf --vs-real glibc`, `measure_vs_real`): one trace
(default `VS_REAL_WORKLOAD` = `lognormal:live=100000` at 2M rows: log-normal sizes, mu=4, sigma=1,
random lifetimes, ~100k objects live) replayed through model specs (default go, tcmalloc, go:gc)
and through the machine's real malloc, in `rounds` interleaved rounds: each round times `repeats`
replays of every model, then one real child (`bench.real.replay_real`) times `repeats` replays.
What each side's clock covers:
- model: `ReplayJob.run()`, the whole jitted replay (allocators.replay): reading the trace
  columns, the allocator's alloc/free kernels, the per-object table, the per-row log writes
  (address, granted), live bytes, peaks and the timeline; the fresh heap and every buffer are
  made before the clock starts (the heap's lazily mapped tables still fault in their pages
  inside it, as in every `perf` figure);
- real: `bench.real.child.replay_kernel` over every row: reading the same columns, malloc/free
  through their addresses, the pointer table; `touch="none"` by default (nothing written into the
  blocks: only the allocator's own work, as the model does none either), the blocks left live
  freed between repeats outside the clock.  The child is a fresh process: its first repeat grows
  the heap, later ones reuse what the allocator kept.
Per round the ratio is the model's median over the real allocator's median of that round; the
report gives the median of those ratios and their min..max (the spread between rounds), and each
side's median time over all its replays.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import allocators
from bench.harness import build_for_trace, warm_up
from bench.sweep import default_allocators
from bench.table import render
from labcore.jitcache import compile_done
from workloads import catalog
from workloads.trace import Trace

#: The side-by-side's default trace: ~100k objects live at 2M rows (`measure_vs_real`).
VS_REAL_WORKLOAD = "lognormal:live=100000"
VS_REAL_OPS = 2_000_000
VS_REAL_SPECS = ("go", "tcmalloc", "go:gc")


def cold_compile_seconds(spec: str) -> float:
    """Compile the spec's replay kernel in a fresh process with an empty cache; the seconds it took."""
    code = "from bench.harness import warm_up; import sys; print(warm_up(sys.argv[1], metrics=False))"
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, ALLOCLAB_CACHE_DIR=cache)
        result = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True, env=environment,
                                timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{spec}: compile run failed: {result.stderr.strip().splitlines()[-1:]}")
    return float(result.stdout.strip().splitlines()[-1])


def measure(spec: str, traces: dict[str, Any], repeats: int, compile_time: bool) -> dict[str, Any]:
    lifo_only = allocators.get(allocators.parse_spec(spec)[0]).lifo_only
    trace = traces["lifo" if lifo_only else "random"]
    warm_up(spec)
    allocator = build_for_trace(spec, trace)
    times = []
    job = None
    for _ in range(repeats):
        job = allocator.prepare_replay(trace)
        times.append(job.run_timed())
    log = job.finish()
    rows = len(trace)
    trace_bytes = sum(getattr(trace, column).nbytes for column in ("op", "obj", "size", "thread"))
    log_bytes = job.addr.nbytes + job.granted.nbytes + job.objects.nbytes + job.timeline.nbytes
    return {
        "allocator": spec,
        "trace": "lifo" if lifo_only else "benchmark",
        "mops": rows / statistics.median(times) / 1e6,
        "mops_min": rows / max(times) / 1e6,
        "mops_max": rows / min(times) / 1e6,
        "compile_s": cold_compile_seconds(spec) if compile_time else None,
        "trace_bytes_per_row": trace_bytes / rows,
        "log_bytes_per_row": log_bytes / rows,
        "peak_footprint": log.peak_footprint,
    }


def measure_all(specs: Sequence[str] | None = None, ops: int = 1_000_000, repeats: int = 7, compile_time: bool = True,
                progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per spec (default: `bench.sweep.default_allocators()`) on the benchmark traces of `ops` rows."""
    specs = [spec.strip() for spec in specs or () if spec.strip()] or default_allocators()
    for spec in specs:
        allocators.parse_spec(spec)
    traces = {"random": catalog.benchmark_trace(n_ops=ops, seed=0), "lifo": catalog.make("lifo", n_ops=ops, seed=0)}
    for spec in specs:  # every kernel first, so that a cold cache is said once ("compiled in T s")
        warm_up(spec)
    compile_done()
    rows = []
    for spec in specs:
        if progress is not None:
            progress(f"measuring {spec} ...")
        rows.append(measure(spec, traces, repeats, compile_time))
    return rows


def render_table(rows: Sequence[dict[str, Any]], ops: int, repeats: int) -> str:
    """The README's performance table."""
    lines = []
    for row in rows:
        compile_text = "-" if row["compile_s"] is None else f"{row['compile_s']:.1f}"
        lines.append([row["allocator"], f"{row['mops']:.1f}", f"{row['mops_min']:.1f}..{row['mops_max']:.1f}",
                      compile_text, f"{row['trace_bytes_per_row']:.0f}", f"{row['log_bytes_per_row']:.0f}",
                      row["trace"]])
    table = render(["allocator", "Mops/s (median)", "min..max", "cold compile s", "trace B/row", "log B/row",
                    "trace"], lines)
    return f"{table}\n\n{ops:,} rows, median of {repeats} kernel runs; `stack` replays the LIFO trace."


def measure_vs_real(specs: Sequence[str] | None = None, real: str = "glibc", trace: Trace | None = None,
                    rounds: int = 5, repeats: int = 3, touch: str = "none",
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Models and a real allocator on one trace, interleaved (module docstring): times and model/real ratios.

    trace: default `VS_REAL_WORKLOAD` at `VS_REAL_OPS` rows, seed 0.  Returns {"trace": description,
    "rows", "rounds", "repeats", "touch", "real": name, "sides": {label: [seconds of every replay]},
    "ratios": {spec: [model median / real median, per round]}}.
    """
    from bench.real import replay_real

    specs = [spec.strip() for spec in specs or () if spec.strip()] or list(VS_REAL_SPECS)
    for spec in specs:
        allocators.parse_spec(spec)
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds} and {repeats}")
    if trace is None:
        trace = catalog.make(VS_REAL_WORKLOAD, n_ops=VS_REAL_OPS, seed=0)
    for spec in specs:
        warm_up(spec, metrics=False)
    compile_done()
    models = {spec: build_for_trace(spec, trace) for spec in specs}
    real_label = f"real {real}"
    sides: dict[str, list[float]] = {label: [] for label in [*specs, real_label]}
    ratios: dict[str, list[float]] = {spec: [] for spec in specs}
    for number in range(rounds):
        if progress is not None:
            progress(f"round {number + 1} of {rounds} ...")
        medians = {}
        for spec, allocator in models.items():
            times = []
            for _ in range(repeats):
                job = allocator.prepare_replay(trace)
                times.append(job.run_timed())
            job.finish()
            sides[spec] += times
            medians[spec] = statistics.median(times)
        result = replay_real(trace, real, repeats=repeats, touch=touch)
        sides[real_label] += result["seconds"]
        for spec in specs:
            ratios[spec].append(medians[spec] / result["seconds_median"])
    spec_text = trace.meta.get("spec") or trace.meta.get("source") or "trace"
    return {"trace": f"{spec_text} seed {trace.meta.get('seed', 0)}", "rows": len(trace),
            "live": int(trace.n_slots), "rounds": rounds, "repeats": repeats, "touch": touch, "real": real,
            "sides": sides, "ratios": ratios}


def render_vs_real(result: dict[str, Any]) -> str:
    """The side-by-side as a table: median time per side (min..max), and each model's ratio to the real one."""
    lines = []
    for label, times in result["sides"].items():
        ratios = result["ratios"].get(label)
        ratio_text = "-" if ratios is None else f"{statistics.median(ratios):.2f}"
        spread = "-" if ratios is None else f"{min(ratios):.2f}..{max(ratios):.2f}"
        lines.append([label, f"{statistics.median(times) * 1e3:.1f}", f"{min(times) * 1e3:.1f}..{max(times) * 1e3:.1f}",
                      f"{result['rows'] / statistics.median(times) / 1e6:.1f}", ratio_text, spread])
    table = render(["side", "ms (median)", "min..max ms", "Mops/s", f"x {result['real']} (median)",
                    "min..max (rounds)"], lines)
    return (f"{table}\n\n{result['trace']}: {result['rows']:,} rows, {result['live']:,} objects live at the peak; "
            f"{result['rounds']} interleaved rounds of {result['repeats']} replays per side (real touch="
            f"{result['touch']}); ratio = the model's median / {result['real']}'s median in the same round.")
