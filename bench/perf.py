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
