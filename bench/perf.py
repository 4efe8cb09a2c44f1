"""`python -m bench perf`: the performance table of the README, measured on this machine.

For every allocator spec (default: every registered allocator and preset):
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

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

import allocators
from bench.harness import build_for_trace, warm_up
from bench.sweep import default_allocators
from bench.table import render
from workloads import catalog


def cold_compile_seconds(spec: str) -> float:
    """Compile the spec's replay kernel in a fresh process with an empty cache; the seconds it took."""
    code = "from bench.harness import warm_up; import sys; print(warm_up(sys.argv[1]))"
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


def run(args: argparse.Namespace) -> int:
    specs = [spec.strip() for spec in (args.allocators or "").split(";") if spec.strip()] or default_allocators()
    for spec in specs:
        allocators.parse_spec(spec)
    traces = {"random": catalog.benchmark_trace(n_ops=args.ops, seed=0),
              "lifo": catalog.make("lifo", n_ops=args.ops, seed=0)}
    lines = []
    for spec in specs:
        print(f"measuring {spec} ...", file=sys.stderr, flush=True)
        row = measure(spec, traces, args.repeats, not args.no_compile)
        compile_text = "-" if row["compile_s"] is None else f"{row['compile_s']:.1f}"
        lines.append([spec, f"{row['mops']:.1f}", f"{row['mops_min']:.1f}..{row['mops_max']:.1f}", compile_text,
                      f"{row['trace_bytes_per_row']:.0f}", f"{row['log_bytes_per_row']:.0f}", row["trace"]])
    print(render(["allocator", "Mops/s (median)", "min..max", "cold compile s", "trace B/row", "log B/row", "trace"],
                 lines))
    print(f"\n{args.ops:,} rows, median of {args.repeats} kernel runs; `stack` replays the LIFO trace.")
    return 0
