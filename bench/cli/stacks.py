"""`python -m bench stacks`: segmented against contiguous goroutine stacks, and real Go (`bench.scenarios.stacks`)."""

from __future__ import annotations

import argparse
import json

from bench.cli.common import UsageError, say, seed_list, spec_list


def cmd_stacks(args: argparse.Namespace) -> int:
    from bench.real import RealReplayFailed
    from bench.scenarios.stacks import StacksConfig, real_lines, run_stacks, table_lines

    models = spec_list(args.models, "--models")
    workloads = spec_list(args.workloads, "--workloads")
    if args.trace is not None and workloads is not None:
        raise UsageError("give --trace or --workloads, not both")
    config = StacksConfig(seeds=seed_list(args.seeds), ops=args.ops, repeats=args.repeats,
                          trace=str(args.trace) if args.trace is not None else None, real=args.real)
    if models is not None:
        config.models = models
    if workloads is not None:
        config.workloads = workloads
    try:
        report = run_stacks(config, progress=None if args.json else say)
    except RealReplayFailed as error:
        say(f"bench: stacks: {error}")
        return 1
    out = report.save(args.out)
    written = []
    if not args.no_plots:
        from bench.plots.stacks import draw_stacks

        written = draw_stacks(out)
    if args.json:
        print(json.dumps({"cells": report.cells, "hot": report.hot, "boundaries": report.boundaries,
                          "real": report.real, "out": str(out)}, default=str))
        return 0
    print("\n".join(table_lines(report.cells)))
    print("\nloop depths (frames of 128 B) where the boundary loop's 256 B call splits or grows the stack:")
    for model, depths in report.boundaries.items():
        print(f"  {model:<20} {', '.join(map(str, depths)) or 'none'}")
    if report.real:
        print("\nreal Go beside the contiguous model (GOGC=off, GOMAXPROCS=1):")
        print("\n".join(real_lines(report.real)))
        matched = sum(row["match"] for row in report.real)
        print(f"{matched} of {len(report.real)} stack sizes equal")
    elif report.real_note:
        print(f"\n{report.real_note}")
    files = ["stacks.json", "cells.csv", "hot.csv", "real.csv", *(f"plots/{path.name}" for path in written)]
    print(f"\nwrote {out}/: {', '.join(files)}")
    return 0
