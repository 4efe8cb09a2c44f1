"""The commands over many cells: `sweep` (tables of medians over seeds, `bench.sweep.tables`), `compare`
(the regression gate), `plot` (redraw a results directory)."""

from __future__ import annotations

import argparse
import json
import os

from bench import api
from bench.cli.common import UsageError, say, seed_list, spec_list


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import main_compare

    return main_compare(args.base, args.new, speed_threshold=args.threshold, markdown=args.markdown,
                        statistic=args.statistic)


def cmd_plot(args: argparse.Namespace) -> int:
    from bench.plots import draw_all
    from bench.report import write_index

    if not (args.directory / "results.json").exists():
        raise UsageError(f"{args.directory}: no results.json (run `python -m bench sweep --out {args.directory}`)")
    paths = draw_all(args.directory)
    index = write_index(args.directory)
    print(f"{len(paths)} plots in {args.directory / 'plots'}; open {index}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench import sweep

    if args.quick and args.preset not in ("default", "quick"):
        raise UsageError(f"--quick and --preset {args.preset} contradict each other: give one")
    config = sweep.SweepConfig(
        preset="quick" if args.quick else args.preset, allocators=spec_list(args.allocators, "--allocators"),
        workloads=spec_list(args.workloads, "--workloads"), ops=args.ops, seeds=seed_list(args.seeds),
        repeats=args.repeats,
        real=args.real, heapmap=args.heapmap,
    )
    if args.executor == "dask":
        from bench import executors

        if not args.scheduler:
            raise UsageError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
        plan = sweep.make_plan(config)
        client = executors.dask_client(args.scheduler)
        try:
            workers = executors.prepare_workers(client, [s for s in plan.allocators if not s.startswith("real:")])
            say(f"sweep: {workers} Dask worker(s) at {args.scheduler}")
            results = sweep.run_sweep(plan, args.out, client.get_executor(), jobs=workers, resume=args.resume,
                                      heapmap_cell=config.heapmap, draw_plots=not args.no_plots,
                                      progress=not args.no_progress, say=say)
        finally:
            client.close()
    else:
        if args.scheduler:
            raise UsageError("--scheduler is for --executor dask")
        cpus = os.cpu_count() or 1
        if args.jobs > cpus:
            say(f"bench: warning: --jobs {args.jobs} capped at this machine's {cpus} CPUs (more workers than cores "
                 "only slow each cell down and make its timings unreliable)")
            args.jobs = cpus
        results = api.sweep(config, out=args.out, jobs=args.jobs, resume=args.resume, draw_plots=not args.no_plots,
                            progress=not args.no_progress, say=say)
    rows, plan_allocators = results.rows, results.meta["allocators"]
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], sort_keys=True, default=str))
        return 0
    print(sweep.tables(rows, plan_allocators, results.meta["workloads"]))
    failed = sum(row.status == "failed" for row in rows)
    skipped = sum(row.skipped for row in rows)
    print(f"\n{len(rows)} cells ({failed} failed" + (f", {skipped} skipped as not applicable" if skipped else "")
          + ": reasons in results.json)")
    print(f"results: {args.out / 'results.csv'}, {args.out / 'results.json'}")
    if not args.no_plots:
        print(f"report: {args.out / 'index.html'}")
    return 0
