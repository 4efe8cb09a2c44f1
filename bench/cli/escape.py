"""`python -m bench escape`: what escape analysis saves a Go program, over the escape ratio (bench.scenarios.escape);
`--check-go`: the lab's escape rules against the Go compiler (bench.scenarios.escape_go)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from bench.cli.common import UsageError, say, seed_list, spec_list


def ratio_list(text: str) -> list[float]:
    """'0/0.25/0.5' or '0,0.25,0.5' -> [0.0, 0.25, 0.5]; UsageError for anything else."""
    parts = [part.strip() for part in text.replace(",", "/").split("/") if part.strip()]
    try:
        ratios = [float(part) for part in parts]
    except ValueError:
        raise UsageError(f"--ratios must be numbers in 0..1 separated by / or , (got '{text}')") from None
    if not ratios:
        raise UsageError("--ratios needs at least one ratio")
    return ratios


def cmd_escape(args: argparse.Namespace) -> int:
    from bench import api

    if args.check_go:
        from bench.scenarios.escape_go import GoMissing

        try:
            verdicts = api.escape_check_go()
        except GoMissing as error:
            raise UsageError(str(error)) from None
        if args.json:
            print(json.dumps([{**asdict(v), "agrees": v.agrees} for v in verdicts], default=str))
        else:
            print(f"{'site':<24}{'lab':>6}{'go':>6}  compiler says / lab's reason")
            for verdict in verdicts:
                lab, go = ("heap" if verdict.lab_escapes else "stack"), ("heap" if verdict.go_escapes else "stack")
                mark = "" if verdict.agrees else "   <-- DISAGREES"
                print(f"{verdict.name:<24}{lab:>6}{go:>6}  {verdict.go_message} / {verdict.lab_reason}{mark}")
            agree = sum(verdict.agrees for verdict in verdicts)
            print(f"\n{agree} of {len(verdicts)} sites decided as go build -gcflags=-m decides them")
        return 0 if all(verdict.agrees for verdict in verdicts) else 1
    from bench.scenarios.escape import EscapeConfig, summary_lines

    allocators = spec_list(args.allocators, "--allocators")
    config = EscapeConfig(ratios=ratio_list(args.ratios), seeds=seed_list(args.seeds), allocs=args.allocs,
                          repeats=args.repeats, program=args.program)
    if allocators is not None:
        config.allocators = allocators
    report = api.escape(config, out=args.out, plots=not args.no_plots, progress=None if args.json else say)
    if args.json:
        print(json.dumps({"rows": [asdict(row) for row in report.rows], "out": str(args.out)}, default=str))
        return 0
    print("\n".join(summary_lines(report)))
    print(f"\nwrote {args.out / 'escape.json'}, escape.csv" + ("" if args.no_plots else ", plots/escape.png"))
    return 0
