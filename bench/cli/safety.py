"""`python -m bench safety`: which misuse each allocator catches, how late, at what cost (bench.scenarios.safety)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from bench.cli.common import UsageError, say, seed_list, spec_list


def cmd_safety(args: argparse.Namespace) -> int:
    from bench.real import RealAllocatorMissing, RealReplayFailed
    from bench.scenarios.safety import SafetyConfig, cost_lines, run_safety, verdict_lines

    allocators = spec_list(args.allocators, "--allocators")
    config = SafetyConfig(
        allocators=list(allocators) if allocators is not None else (list(SafetyConfig().allocators)
                                                                    if not args.real else []),
        real=list(dict.fromkeys(args.real or [])), workload=args.workload, ops=args.ops,
        seeds=seed_list(args.seeds), window=args.window, trace=str(args.trace) if args.trace else None,
        cost_ops=args.cost_ops, repeats=args.repeats, costs=not args.no_costs,
    )
    if args.faults is not None:
        config.faults, config.faults_given = args.faults, True
    if args.trace is not None and args.faults is not None:
        raise UsageError("--faults injects faults into a workload's trace; a --trace is a fault trace already")
    try:
        config.check()
        report = run_safety(config, progress=None if args.json else say)
    except RealAllocatorMissing as error:
        raise UsageError(str(error)) from None
    except RealReplayFailed as error:
        say(f"bench: safety: {error}")
        return 1
    out = report.save(args.out)
    if not args.no_plots:
        from bench.plots.safety import draw_safety

        draw_safety(out)
    if args.json:
        print(json.dumps({"verdicts": [asdict(v) for v in report.verdicts],
                          "costs": [asdict(c) for c in report.costs], "out": str(out)}, default=str))
        return 0
    print("\n".join(verdict_lines(report.verdicts)))
    if report.costs:
        print("\ncost on the clean trace, against the same allocator unhardened (real: against real glibc):")
        print("\n".join(cost_lines(report.costs)))
    print(f"\nwrote {out / 'safety.json'}, verdicts.csv, costs.csv, outcomes.csv"
          + ("" if args.no_plots else ", plots/safety_heatmap.png, plots/safety_cost.png"))
    return 0
