"""`python -m bench sweep`: allocators x workloads x seeds, one measured cell each.

Each cell generates its trace (same spec + seed -> same trace), replays it
through one allocator with `bench.harness.measure`, and becomes one tidy row.
A failing cell (out of memory, unsupported operation order) is recorded with
its reason and the sweep goes on.  The rows go to `OUT/results.csv` and
`OUT/results.json` (with run metadata: package versions, git revision,
machine, seeds), each written atomically; two tables (throughput, peak
footprint) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import allocators
from bench import harness
from bench.table import format_bytes, render
from workloads import catalog

DEFAULT_WORKLOADS = ("lognormal", "fixed", "pareto", "lifo", "fifo", "phased", "producer-consumer")
QUICK_OPS = 20_000

CSV_COLUMNS = (
    "allocator", "workload", "seed", "rows", "status", "reason", "throughput_mops", "ns_per_op",
    "seconds_median", "seconds_min", "seconds_max", "compile_s", "peak_footprint", "peak_live_requested",
    "peak_live_granted", "peak_metadata_bytes", "overhead_factor", "internal_fragmentation", "final_footprint",
)


def default_allocators() -> list[str]:
    specs = []
    for name in allocators.names():
        specs.append(name)
        specs.extend(f"{name}:{preset}" for preset in allocators.get(name).presets)
    return specs


def run_metadata(args: argparse.Namespace, seeds: list[int]) -> dict[str, Any]:
    import matplotlib
    import numba
    import numpy

    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        revision = None
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "seeds": seeds,
        "ops": args.ops,
        "repeats": args.repeats,
        "git_revision": revision,
        "versions": {
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "matplotlib": matplotlib.__version__,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_results(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = json.dumps({"meta": meta, "rows": rows}, indent=1, sort_keys=True, default=str)
    _atomic_write(out / "results.json", document)
    lines = [",".join(CSV_COLUMNS)]
    for row in rows:
        values = []
        for column in CSV_COLUMNS:
            value = row.get(column, "")
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            values.append('"' + text.replace('"', "'") + '"' if "," in text or '"' in text else text)
        lines.append(",".join(values))
    _atomic_write(out / "results.csv", "\n".join(lines) + "\n")


def _short_reason(reason: str) -> str:
    if "out of memory" in reason:
        return "OOM"
    if "out of LIFO order" in reason:
        return "not LIFO"
    if "larger than the largest block" in reason:
        return "too large"
    return "failed"


def tables(rows: list[dict[str, Any]], specs: list[str], workloads: list[str]) -> str:
    cells = {(row["allocator"], row["workload"]): row for row in rows if row["seed"] == rows[0]["seed"]}

    def grid(value) -> list[list[str]]:
        grid_rows = []
        for spec in specs:
            line = [spec]
            for workload in workloads:
                row = cells.get((spec, workload))
                if row is None:
                    line.append("-")
                else:
                    line.append(value(row) if row["status"] == "ok" else _short_reason(row["reason"]))
            grid_rows.append(line)
        return grid_rows

    seed_note = f" (seed {rows[0]['seed']})" if rows else ""
    speed = render(["Mops/s" + seed_note] + workloads, grid(lambda row: f"{row['throughput_mops']:.1f}"))
    footprint = render(["peak footprint"] + workloads, grid(lambda row: format_bytes(row["peak_footprint"])))
    overhead = render(["overhead factor"] + workloads, grid(lambda row: f"{row['overhead_factor']:.2f}"))
    return "\n\n".join((speed, footprint, overhead))


def run(args: argparse.Namespace) -> int:
    specs = [spec.strip() for spec in (args.allocators or "").split(";") if spec.strip()] or default_allocators()
    workloads = [spec.strip() for spec in (args.workloads or "").split(";") if spec.strip()] or list(DEFAULT_WORKLOADS)
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got '{args.seeds}'") from None
    if not seeds or min(seeds) < 0:
        raise ValueError("--seeds needs at least one seed >= 0")
    if args.quick:
        args.ops = min(args.ops, QUICK_OPS)
        args.repeats = 1
    for spec in specs:  # fail fast on a typo, before any work
        allocators.parse_spec(spec)
    for workload in workloads:
        catalog.make(workload, n_ops=64, seed=0)

    total = len(specs) * len(workloads) * len(seeds)
    rows: list[dict[str, Any]] = []
    meta = run_metadata(args, seeds)
    started = time.perf_counter()
    done = 0
    for seed in seeds:
        for workload in workloads:
            trace = catalog.make(workload, n_ops=args.ops, seed=seed)
            for spec in specs:
                row, _ = harness.measure(spec, trace, repeats=args.repeats)
                row.update(workload=workload, seed=seed)
                row.pop("params", None)
                rows.append(row)
                done += 1
                elapsed = time.perf_counter() - started
                eta = elapsed / done * (total - done)
                if row["status"] == "ok":
                    outcome = f"{row['throughput_mops']:.1f} Mops/s"
                else:
                    outcome = _short_reason(row["reason"])
                print(f"[{done}/{total}] {spec} x {workload} seed {seed}: {outcome}"
                      f"  (elapsed {elapsed:.0f} s, eta {eta:.0f} s)", file=sys.stderr, flush=True)
                write_results(args.out, rows, meta)
    if args.json:
        print(json.dumps(rows, sort_keys=True, default=str))
    else:
        print(tables(rows, specs, workloads))
        print(f"\nresults: {args.out / 'results.csv'}, {args.out / 'results.json'}")
    return 0
