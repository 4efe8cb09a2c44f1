"""`python -m bench scaling`: real allocators on 1 and T OS threads beside the models' proxies
(`bench.scenarios.scaling`)."""

from __future__ import annotations

import argparse
import json

from bench import api
from bench.cli.common import UsageError, say, spec_list


def _thread_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--threads must be comma-separated integers, got '{text}'") from None
    if not counts:
        raise UsageError("--threads is an empty list (leave it out for the default)")
    return list(dict.fromkeys(counts))


def cmd_scaling(args: argparse.Namespace) -> int:
    from bench.scenarios.scaling import ScalingConfig, render_table

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    config = ScalingConfig(ops=args.ops, seed=args.seed, repeats=args.repeats, touch=args.touch,
                           threads=_thread_counts(args.threads))
    config.workloads = spec_list(args.workloads, "--workloads") or config.workloads
    config.models = spec_list(args.models, "--models") or config.models
    config.reals = list(dict.fromkeys(args.real)) if args.real else config.reals
    report = api.scaling(config, out=args.out, plots=not args.no_plots,
                         progress=None if args.json or args.no_progress else say)
    files = ["scaling.json", "scaling.csv", "scaling.md", *([] if args.no_plots else ["scaling.png"])]
    if args.json:
        print(json.dumps({**report.document(), "out": str(args.out)}, default=str))
        return 0
    print(render_table(report))
    print(f"\nwrote {args.out}/: {', '.join(files)}")
    return 0
