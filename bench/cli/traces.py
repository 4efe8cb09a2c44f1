"""The trace commands: `trace gen`, `trace import`, `trace record`, `trace info`, and `sizeclasses`."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from bench import api
from bench.cli.common import RowsBar, UsageError
from bench.table import WIDTH
from workloads.stream import MemorySource
from workloads.trace import OP_ALLOC, OP_REALLOC


def _trace_output(text: str) -> str:
    """A trace output path: .npz, .csv, or a chunked directory (ends in '/' or is a directory)."""
    from workloads.chunked import is_chunked_path

    if not is_chunked_path(text) and Path(text).suffix not in (".npz", ".csv"):
        raise UsageError(f"output {text} must end in .npz or .csv, or in '/' for a chunked trace directory")
    return text


def cmd_trace_gen(args: argparse.Namespace) -> int:
    output = _trace_output(args.output)
    bar = RowsBar("generate", args.ops, sys.stderr.isatty())
    try:
        rows = api.write_trace(args.workload, args.ops, args.seed, output, progress=bar.to)
    finally:
        bar.close()
    print(f"wrote {output}: {rows:,} rows ({args.workload}, seed {args.seed})")
    return 0


def cmd_trace_import(args: argparse.Namespace) -> int:
    from workloads.importers import import_trace

    output = _trace_output(args.output)
    trace, report = import_trace(args.input, args.format)
    trace.save(output)
    print(report.summary())
    print(f"wrote {output}: {len(trace):,} rows")
    return 0


def cmd_trace_inject(args: argparse.Namespace) -> int:
    output = _trace_output(args.output)
    if not output.endswith((".npz", ".csv")):
        raise UsageError(f"output {output}: a fault trace is written as .npz or .csv")
    trace = api.inject_faults(args.input, args.faults, args.seed, output)
    counts = ", ".join(f"{count:,} {kind}" for kind, count in trace.faults.counts().items() if count)
    print(f"wrote {output}: {len(trace):,} rows and {len(trace.faults):,} faults ({counts}), seed {args.seed}")
    return 0


def cmd_trace_record(args: argparse.Namespace) -> int:
    from workloads.record import record

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to record (usage: trace record -o OUT.npz -- CMD ARGS...)")
    report = record(command, args.output, tool=args.tool, capture_output=False)
    print(report.summary())
    print(f"wrote {args.output}")
    return 0


def cmd_trace_info(args: argparse.Namespace) -> int:
    source = api.open_trace(args.trace)
    if isinstance(source, MemorySource):
        trace = source.trace
        grows = (trace.op == OP_ALLOC) | (trace.op == OP_REALLOC)
        sizes = trace.size[grows]
        info: dict[str, Any] = {
            "file": str(args.trace),
            "rows": len(trace),
            "ops": trace.counts(),
            "objects": trace.n_ids,
            "threads": trace.n_threads,
            "peak_live_objects": trace.n_slots,
            "requested_bytes": int(sizes.sum()),
            "size_min": int(sizes.min()) if sizes.size else 0,
            "size_median": float(np.median(sizes)) if sizes.size else 0,
            "size_max": int(sizes.max()) if sizes.size else 0,
            "meta": trace.meta,
        }
        if trace.faults is not None:
            info["faults"] = {kind: count for kind, count in trace.faults.counts().items() if count}
    else:  # a chunked directory: what its facts say (the rows are read only when replayed)
        facts = source.facts()
        info = {
            "file": str(args.trace),
            "format": "chunked directory",
            "rows": facts.rows,
            "ops": {"alloc": facts.allocs, "free": facts.frees, "realloc": facts.reallocs,
                    "access": facts.accesses},
            "threads": facts.n_threads,
            "peak_live_objects": facts.peak_live_objects,
            "requested_bytes": facts.requested_bytes,
            "size_max": facts.max_request,
            "meta": source.meta,
        }
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        for key, value in info.items():  # long values (the meta) wrapped at 100 columns, under the first
            print(textwrap.fill(str(value), WIDTH, initial_indent=f"{key:<18}", subsequent_indent=" " * 18,
                                break_long_words=False, break_on_hyphens=False))
    return 0


def cmd_sizeclasses(args: argparse.Namespace) -> int:
    from bench.sizeclasses import render_csv

    options = {"table": args.table} if args.table else {}
    sys.stdout.write(render_csv(args.model, **options))
    return 0
