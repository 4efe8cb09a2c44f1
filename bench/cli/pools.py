"""`python -m bench pools`: pools, regions and arenas against the Go heap on request churn (`bench.scenarios.pools`)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from bench.cli.common import UsageError, say, seed_list


def _int_list(text: str, option: str) -> list[int]:
    from labcore.units import parse_bytes

    try:
        values = [parse_bytes(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None
    if not values:
        raise UsageError(f"{option} is an empty list (leave it out for the default)")
    return values


def _setups(text: str) -> dict[str, str]:
    """'LABEL=SPEC;LABEL=SPEC' (or bare specs, labelled by themselves) -> {label: spec}."""
    setups: dict[str, str] = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        label, equals, spec = item.partition("=")
        if not equals or ":" in label:  # a bare spec (its own '=' belongs to its parameters)
            label, spec = item, item
        label, spec = label.strip(), spec.strip()
        if label in setups:
            raise UsageError(f"--setups: label '{label}' given twice")
        setups[label] = spec
    if not setups:
        raise UsageError("--setups is an empty list (leave it out for the default)")
    return setups


def cmd_pools(args: argparse.Namespace) -> int:
    from bench.scenarios.pools import PoolsConfig, run_pools, summarise, summary_lines

    config = PoolsConfig(ops=args.ops, repeats=args.repeats, threads=args.threads, order=args.order, sigma=args.sigma,
                         seeds=seed_list(args.seeds))
    if args.temps is not None:
        config.temps = _int_list(args.temps, "--temps")
    if args.request_bytes is not None:
        config.request_bytes = _int_list(args.request_bytes, "--request-bytes")
    if args.setups is not None:
        config.setups = _setups(args.setups)
    report = run_pools(config, progress=None if args.json or args.no_progress else say)
    out = report.save(args.out)
    written = ["pools.json", "pools.csv", "results.json", "results.csv"]
    if not args.no_plots:
        from bench.plots.pools import draw_pools

        written += [str(path.relative_to(out)) for path in draw_pools(out)]
    points = summarise(report.cells)
    if args.json:
        print(json.dumps({"points": [asdict(point) for point in points], "out": str(out)}))
        return 0
    print(f"means over seeds {','.join(map(str, config.seeds))}; heap allocs: allocations that reached the Go heap "
          f"(arena: chunks), avoided against {next(iter(config.setups))}")
    print("\n".join(summary_lines(points)))
    print(f"\nwrote {out}/: {', '.join(written)}")
    return 0
