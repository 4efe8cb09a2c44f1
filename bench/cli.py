"""`python -m bench`: the lab's command line.

Exit codes: 0 success; 1 the allocator failed on the workload (out of memory,
unsupported operation); 2 bad input (unknown name, bad parameter, malformed
trace, missing file), always as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

import allocators
from allocators.errors import AllocatorError, BadParameter
from bench import api
from bench.results import ResultRow
from bench.table import format_bytes
from workloads import catalog
from workloads.stream import DEFAULT_CHUNK_ROWS, GeneratedTrace, MemorySource, TraceSource
from workloads.trace import OP_ALLOC, OP_REALLOC, Trace, TraceError


class UsageError(Exception):
    """Bad command-line input: exit 2 with one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    if args.fields:
        from bench.results import describe_fields

        print("result row fields (results.json / results.csv, `run --json`):")
        for name, unit, doc in describe_fields():
            print(f"  {name:<28} {('[' + unit + ']') if unit else '':<16} {doc}")
        return 0
    show_all = not (args.allocators or args.workloads or args.metrics)
    if args.allocators or show_all:
        print("allocators:")
        for name in allocators.names():
            cls = allocators.get(name)
            presets = f"  [presets: {', '.join(cls.presets)}]" if cls.presets else ""
            print(f"  {name:<12} {cls.summary}{presets}")
    if args.workloads or show_all:
        print("workloads:")
        for name in catalog.names():
            print(f"  {name:<18} {catalog.describe(name)}")
    if args.metrics or show_all:
        from bench.metrics import describe_metrics

        print("metrics:")
        for line in describe_metrics():
            print(f"  {line}")
    return 0


def _report(row: ResultRow, spec: str, args: argparse.Namespace, source: str, threads: int) -> int:
    """Print one cell's figures (a table, or JSON with --json); exit 1 when the allocator failed."""
    row.extra["trace"] = source
    if not row.ok:
        if args.json:
            print(json.dumps(row.as_dict(), default=str))
        print(f"bench: {spec} failed on {source}: {row.reason}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(row.as_dict(), sort_keys=True, default=str))
        if getattr(args, "log", None):
            print(f"bench: wrote the AllocLog to {args.log.resolve()}", file=sys.stderr)
        return 0
    from bench.metrics import METRICS

    lines: list[tuple[str, str]] = [
        ("allocator", spec),
        ("trace", f"{source} ({row['rows']:,} rows, {threads} thread(s))"),
        ("", "speed"),
        ("throughput",
         f"{row['throughput_mops']:.2f} Mops/s  ({row['ns_per_op']:.1f} ns/op, median of {args.repeats}; "
         f"min..max {row['rows'] / row['seconds_max'] / 1e6:.1f}..{row['rows'] / row['seconds_min'] / 1e6:.1f})"),
        ("compile/load", f"{row['compile_s']:.3f} s (not included above)"),
        ("peak footprint", format_bytes(row["peak_footprint"])),
        ("peak live requested", format_bytes(row["peak_live_requested"])),
        ("peak live granted", format_bytes(row["peak_live_granted"])),
    ]
    group = None
    for name, info in METRICS.items():
        if info.group != group:
            group = info.group
            lines.append(("", group))
        lines.append((name, _format_metric(row[name], info.unit)))
    lines.append(("", "counters"))
    lines += [(name, f"{value:,}") for name, value in row["counters"].items()]
    if getattr(args, "log", None):
        lines.append(("log", str(args.log.resolve())))
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}" if key else f"-- {value}")
    return 0


def _format_metric(value: float, unit: str) -> str:
    if isinstance(value, float) and value != value:
        return "n/a (not declared by this allocator)"
    if unit == "ratio":
        return f"{100 * value:.2f} %"
    if unit == "bytes":
        return format_bytes(value)
    if isinstance(value, int):
        return f"{value:,} {unit}"
    return f"{value:.3f} {unit}"


class _RowsBar:
    """A progress bar over trace rows on stderr (tqdm), for commands that stream long traces."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="row", unit_scale=True, desc=label, file=sys.stderr, dynamic_ncols=True,
                        disable=not enabled, leave=False)

    def to(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.bar.total:
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _replay_streamed(args: argparse.Namespace, source: TraceSource) -> ResultRow:
    """A source replayed chunk by chunk, with a progress bar (a generated source: its facts pass first)."""
    generated = isinstance(source, GeneratedTrace)
    bar = _RowsBar("facts" if generated else "replay", source.n_ops if generated else None, sys.stderr.isatty())
    try:
        if generated:  # one generation pass for the facts the allocator is sized by
            source.facts(progress=bar.to)
            bar.bar.set_description("replay")
        return api.replay(args.allocator, source, repeats=args.repeats, capacity=args.capacity,
                          chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS, progress=bar.to)
    finally:
        bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    if args.chunk_rows is not None or args.ops > api.STREAM_THRESHOLD_ROWS:
        source = api.stream_trace(args.workload, ops=args.ops, seed=args.seed)
        row = _replay_streamed(args, source)
        threads = source.n_threads
    else:
        trace = api.make_trace(args.workload, ops=args.ops, seed=args.seed)
        row = api.replay(args.allocator, trace, repeats=args.repeats, capacity=args.capacity)
        threads = trace.n_threads
    row.workload, row.family, row.seed = args.workload, args.workload.partition(":")[0], args.seed
    return _report(row, args.allocator, args, f"{args.workload} seed {args.seed}", threads)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.log is not None:
        if args.log.suffix != ".npz":
            raise UsageError(f"--log {args.log}: the log is an .npz file; name it OUT.npz")
        if args.log.is_dir():
            raise UsageError(f"--log {args.log}: is a directory")
        if not args.log.resolve().parent.is_dir():
            raise UsageError(f"--log {args.log}: directory {args.log.resolve().parent} does not exist")
    source = api.open_trace(args.trace)
    if isinstance(source, MemorySource) and args.chunk_rows is None:
        row = api.replay(args.allocator, source.trace, repeats=args.repeats, capacity=args.capacity, log=args.log)
    else:
        if args.log:
            raise UsageError("--log needs a trace replayed in memory (.npz or .csv, no --chunk-rows): a replay "
                             "chunk by chunk keeps no per-row log")
        row = _replay_streamed(args, source)
    row.workload = str(args.trace)
    return _report(row, args.allocator, args, str(args.trace), source.n_threads)


def _trace_output(text: str) -> str:
    """A trace output path: .npz, .csv, or a chunked directory (ends in '/' or is a directory)."""
    from workloads.chunked import is_chunked_path

    if not is_chunked_path(text) and Path(text).suffix not in (".npz", ".csv"):
        raise UsageError(f"output {text} must end in .npz or .csv, or in '/' for a chunked trace directory")
    return text


def cmd_trace_gen(args: argparse.Namespace) -> int:
    output = _trace_output(args.output)
    bar = _RowsBar("generate", args.ops, sys.stderr.isatty())
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
        for key, value in info.items():
            print(f"{key:<16} {value}")
    return 0


def cmd_sizeclasses(args: argparse.Namespace) -> int:
    from bench.sizeclasses import render_csv

    options = {"table": args.table} if args.table else {}
    sys.stdout.write(render_csv(args.model, **options))
    return 0


def cmd_real(args: argparse.Namespace) -> int:
    from bench.real import RealAllocatorMissing, RealOutOfMemory, RealReplayFailed, replay_real, summary_lines

    trace = Trace.load(args.trace)
    try:
        result = replay_real(trace, args.allocator, repeats=args.repeats, touch=args.touch)
    except RealAllocatorMissing as error:
        raise UsageError(str(error)) from None
    except (RealOutOfMemory, RealReplayFailed) as error:
        print(f"bench: {args.allocator} failed on {args.trace}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True, default=str) if args.json else "\n".join(summary_lines(result)))
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from bench.fidelity import render_tables

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")

    results = api.fidelity(args.traces, repeats=args.repeats, out=args.out, progress=_say)
    print(render_tables(results))
    if args.out:
        print(f"\nwrote {args.out / 'fidelity.json'}, {args.out / 'fidelity.png'}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.perf import render_table

    rows = api.perf(_specs(args.allocators, "--allocators"), ops=args.ops, repeats=args.repeats,
                    compile_time=not args.no_compile, progress=_say)
    print(render_table(rows, args.ops, args.repeats))
    return 0


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


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _specs(text: str | None, option: str) -> list[str] | None:
    """'a;b;c' -> ['a', 'b', 'c'] (None: the default); duplicates are dropped with a warning, an empty list refused."""
    if text is None:
        return None
    specs = [spec.strip() for spec in text.split(";") if spec.strip()]
    if not specs:
        raise UsageError(f"{option} is an empty list (leave it out for the default)")
    unique = list(dict.fromkeys(specs))
    if len(unique) < len(specs):
        _say(f"bench: warning: duplicate specs dropped ({', '.join(s for s in unique if specs.count(s) > 1)})")
    return unique


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise UsageError("--seeds needs at least one seed >= 0")
    unique = list(dict.fromkeys(seeds))
    if len(unique) < len(seeds):
        _say(f"bench: warning: duplicate seeds dropped (--seeds {','.join(map(str, unique))})")
    return unique


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench import sweep

    if args.quick and args.preset not in ("default", "quick"):
        raise UsageError(f"--quick and --preset {args.preset} contradict each other: give one")
    config = sweep.SweepConfig(
        preset="quick" if args.quick else args.preset, allocators=_specs(args.allocators, "--allocators"),
        workloads=_specs(args.workloads, "--workloads"), ops=args.ops, seeds=_seeds(args.seeds), repeats=args.repeats,
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
            _say(f"sweep: {workers} Dask worker(s) at {args.scheduler}")
            results = sweep.run_sweep(plan, args.out, client.get_executor(), jobs=workers, resume=args.resume,
                                      heapmap_cell=config.heapmap, draw_plots=not args.no_plots,
                                      progress=not args.no_progress, say=_say)
        finally:
            client.close()
    else:
        if args.scheduler:
            raise UsageError("--scheduler is for --executor dask")
        cpus = os.cpu_count() or 1
        if args.jobs > cpus:
            _say(f"bench: warning: --jobs {args.jobs} capped at this machine's {cpus} CPUs (more workers than cores "
                 "only slow each cell down and make its timings unreliable)")
            args.jobs = cpus
        results = api.sweep(config, out=args.out, jobs=args.jobs, resume=args.resume, draw_plots=not args.no_plots,
                            progress=not args.no_progress, say=_say)
    rows, plan_allocators = results.rows, results.meta["allocators"]
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], sort_keys=True, default=str))
        return 0
    print(sweep.tables(rows, plan_allocators, results.meta["workloads"]))
    failed = sum(row.status == "failed" for row in rows)
    skipped = sum(row.skipped for row in rows)
    print(f"\n{len(rows)} cells ({failed} failed" + (f", {skipped} skipped as not applicable" if skipped else "")
          + ": reasons in results.json); "
          f"results: {args.out / 'results.csv'}, {args.out / 'results.json'}")
    if not args.no_plots:
        print(f"report: {args.out / 'index.html'}")
    return 0


# ------------------------------------------------------------------ parser
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _bytes(text: str) -> int:
    from labcore.units import parse_bytes

    try:
        value = parse_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed '{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seed must be >= 0")
    return value


def sweep_presets() -> dict:
    from bench.sweep import PRESETS

    return PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m bench", description="allocator lab: model allocators, replay workloads, measure.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    listing = commands.add_parser("list", help="list allocators and workloads")
    listing.add_argument("--allocators", action="store_true", help="only allocators")
    listing.add_argument("--workloads", action="store_true", help="only workloads")
    listing.add_argument("--metrics", action="store_true", help="only metrics, with their one-line definitions")
    listing.add_argument("--fields", action="store_true", help="the fields of a result row, with their units")
    listing.set_defaults(func=cmd_list)

    def measured(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--allocator", "-a", required=True, metavar="SPEC",
                         help="allocator spec: NAME, NAME:PRESET or NAME:key=value,... (see `list`)")
        sub.add_argument("--repeats", type=_positive, default=3, help="timed replays; the median counts (default 3)")
        sub.add_argument("--capacity", type=_bytes, default=None, metavar="BYTES",
                         help="address space, e.g. 1GiB (units K/KiB, M/MiB, G/GiB, T/TiB; default: sized from "
                         "the trace)")
        sub.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        sub.add_argument("--chunk-rows", type=_positive, default=None, metavar="N",
                         help="replay chunk by chunk, N rows at a time, in bounded memory (the figures do not "
                         f"change; default: in memory, chunks of {DEFAULT_CHUNK_ROWS} rows for chunked traces and "
                         f"for more than {api.STREAM_THRESHOLD_ROWS:,} generated rows)")

    run = commands.add_parser("run", help="one allocator on one generated workload; print its figures")
    measured(run)
    run.add_argument("--workload", "-w", default="lognormal", metavar="SPEC",
                     help="workload: NAME or NAME:key=value,... (default lognormal)")
    run.add_argument("--ops", type=_positive, default=200_000, help="trace rows (default 200000)")
    run.add_argument("--seed", type=_seed, default=0, help="generator seed (default 0)")
    run.set_defaults(func=cmd_run)

    replay = commands.add_parser("replay", help="replay a trace file through one allocator")
    measured(replay)
    replay.add_argument("--trace", "-t", required=True, type=Path,
                        help="trace file (.npz or .csv: replayed in memory) or chunked trace directory (streamed)")
    replay.add_argument("--log", type=Path, default=None, metavar="OUT.npz",
                        help="save the AllocLog (int64 arrays addr, granted, timeline + meta)")
    replay.set_defaults(func=cmd_replay)

    trace = commands.add_parser("trace", help="generate or inspect trace files")
    trace_commands = trace.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", parser_class=Parser)
    trace_commands.required = True
    gen = trace_commands.add_parser("gen", help="generate a workload trace into a file")
    gen.add_argument("--workload", "-w", default="lognormal", metavar="SPEC", help="workload spec (default lognormal)")
    gen.add_argument("--ops", type=_positive, default=200_000, help="trace rows (default 200000)")
    gen.add_argument("--seed", type=_seed, default=0, help="generator seed (default 0)")
    gen.add_argument("--output", "-o", required=True,
                     help="output file (.npz or .csv), or DIR/ for a chunked trace directory written in bounded memory")
    gen.set_defaults(func=cmd_trace_gen)
    importing = trace_commands.add_parser(
        "import", help="convert a real program's allocation log into a trace",
        description="Formats: valgrind (--trace-malloc=yes log), heaptrack (raw .zst/.gz from heaptrack --raw), "
        "cmu (malloc-lab .rep), android (memory_replay dump). Addresses become object ids; frees of unknown "
        "pointers are counted in the report, never silently dropped.",
    )
    importing.add_argument("input", type=Path, help="log file to import")
    importing.add_argument("--format", "-f", default="auto",
                           choices=("auto", "valgrind", "heaptrack", "cmu", "android"), help="input format")
    importing.add_argument("--output", "-o", required=True,
                           help="output trace (.npz or .csv), or DIR/ for a chunked trace directory")
    importing.set_defaults(func=cmd_trace_import)
    recording = trace_commands.add_parser(
        "record", help="run an unmodified program and record its allocations as a trace",
        description="Runs CMD under heaptrack (raw mode; Debian package heaptrack) when installed, else under "
        "valgrind --trace-malloc=yes (package valgrind). Python programs need PYTHONMALLOC=malloc.",
    )
    recording.add_argument("--output", "-o", type=Path, required=True, help="output trace (.npz or .csv)")
    recording.add_argument("--tool", choices=("auto", "heaptrack", "valgrind"), default="auto",
                           help="recorder (default: heaptrack if installed, else valgrind)")
    recording.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    recording.set_defaults(func=cmd_trace_record)
    info = trace_commands.add_parser("info", help="validate a trace file and summarise it")
    info.add_argument("trace", type=Path, help="trace file (.npz or .csv) or chunked trace directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_trace_info)

    sizes = commands.add_parser("sizeclasses", help="print a model's size-class table as CSV")
    sizes.add_argument("model", choices=("go", "tcmalloc"), help="go (generated like Go's mksizeclasses) or tcmalloc")
    sizes.add_argument("--table", choices=("default", "legacy"), default=None,
                       help="tcmalloc table (default: the current google/tcmalloc default)")
    sizes.set_defaults(func=cmd_sizeclasses)

    from bench.compare import DEFAULT_SPEED_THRESHOLD, DEFAULT_STATISTIC, STATISTICS

    comparing = commands.add_parser(
        "compare", help="regression gate: compare two sweep results (exit 1 when a gate fails)",
        description="Match the cells of two results.json files. Deterministic figures must be identical; "
        "speed, normalised by each run's calibration kernel, may not be slower than --threshold times the base.",
    )
    comparing.add_argument("base", type=Path, help="baseline results.json (or the sweep directory holding it)")
    comparing.add_argument("new", type=Path, help="results.json to check (or its directory)")
    comparing.add_argument("--threshold", type=float, default=DEFAULT_SPEED_THRESHOLD, metavar="X",
                           help=f"fail a cell whose calibrated time is more than X times the base's "
                                f"(default {DEFAULT_SPEED_THRESHOLD})")
    comparing.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                           help="also write the report as Markdown (CI logs, PR comments)")
    comparing.add_argument("--statistic", choices=STATISTICS, default=DEFAULT_STATISTIC,
                           help="time compared per cell: the fastest repeat (min, default: stable on a shared "
                                "machine) or the median")
    comparing.set_defaults(func=cmd_compare)

    real = commands.add_parser(
        "real", help="replay a trace through the machine's real malloc (glibc, jemalloc, tcmalloc, mimalloc)",
        description="Replays in a child process with the Debian library preloaded (libjemalloc2, "
        "libtcmalloc-minimal4, libmimalloc2.0; glibc is the default), driving malloc/realloc/free from a jitted "
        "loop. Reports throughput, peak RSS growth, the allocator's own statistics and the overhead factor.",
    )
    real.add_argument("--trace", "-t", required=True, type=Path, help="trace file (.npz or .csv)")
    real.add_argument("--allocator", "-a", choices=("glibc", "jemalloc", "tcmalloc", "mimalloc"), default="glibc",
                      help="real allocator (default glibc)")
    real.add_argument("--repeats", type=_positive, default=3, help="timed replays; the median counts (default 3)")
    real.add_argument("--touch", choices=("page", "first", "none"), default="page",
                      help="bytes written into each new block: one per 4 KiB page (default), the first, none")
    real.add_argument("--json", action="store_true", help="print one JSON object")
    real.set_defaults(func=cmd_real)

    fidelity = commands.add_parser(
        "fidelity", help="models beside the real allocators they model, on the same traces",
        description="For each trace: real glibc vs freelist:glibc and real tcmalloc vs the tcmalloc model "
        "(peak footprint, overhead factor, relative error), and the go/tcmalloc models' replay time over real "
        "glibc's.",
    )
    fidelity.add_argument("traces", nargs="+", type=Path, help="trace files (.npz or .csv), e.g. from trace record")
    fidelity.add_argument("--repeats", type=_positive, default=3, help="timed replays per run (default 3)")
    fidelity.add_argument("--out", type=Path, default=None, help="also write fidelity.json and fidelity.png here")
    fidelity.set_defaults(func=cmd_fidelity)

    perf = commands.add_parser("perf", help="the README's performance table, measured on this machine")
    perf.add_argument("--allocators", "-a", default=None, metavar="SPECS",
                      help="semicolon-separated allocator specs (default: every registered allocator and preset)")
    perf.add_argument("--ops", type=_positive, default=1_000_000, help="benchmark trace rows (default 1000000)")
    perf.add_argument("--repeats", type=_positive, default=7, help="kernel runs; the median counts (default 7)")
    perf.add_argument("--no-compile", action="store_true", help="skip the cold-compile measurement")
    perf.set_defaults(func=cmd_perf)

    plot = commands.add_parser("plot", help="redraw the plots and index.html of a results directory")
    plot.add_argument("directory", type=Path, help="a sweep's --out directory (holding results.json)")
    plot.set_defaults(func=cmd_plot)

    sweep = commands.add_parser(
        "sweep", help="allocators x workloads x seeds; print tables, store results",
        description="Measure every allocator on every workload. Presets: "
        + "; ".join(f"{name}: {preset.description}" for name, preset in sweep_presets().items()),
    )
    sweep.add_argument("--preset", default="default", help="grid preset (default 'default'; see above)")
    sweep.add_argument("--quick", action="store_true", help="the 'quick' preset: seconds, not minutes")
    sweep.add_argument("--allocators", "-a", default=None, metavar="SPECS",
                       help="semicolon-separated allocator specs (default: every registered allocator and preset)")
    sweep.add_argument("--workloads", "-w", default=None, metavar="SPECS",
                       help="semicolon-separated workload specs; FAMILY:PARAM=V1/V2/... sweeps a parameter; "
                       "trace:PATH replays a trace file or a chunked trace directory")
    sweep.add_argument("--ops", type=_positive, default=None, help="rows per trace (default: the preset's)")
    sweep.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    sweep.add_argument("--repeats", type=_positive, default=None, help="timed replays per cell (default: preset's)")
    sweep.add_argument("--jobs", "-j", type=_positive, default=1, help="local worker processes (default 1)")
    sweep.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="where cells run: local processes (default; --jobs) or a Dask cluster (--scheduler)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address for --executor dask, e.g. tcp://127.0.0.1:8786 "
                       "(needs the extra: pip install -e '.[dask]')")
    sweep.add_argument("--resume", action="store_true", help="keep the cells already stored in --out")
    sweep.add_argument("--real", action="store_true",
                       help="add the machine's real allocators (glibc, and jemalloc/tcmalloc/mimalloc when installed) "
                       "as cells real:NAME, with the figures measurable for them (speed, footprint, overhead)")
    sweep.add_argument("--out", type=Path, default=Path("reports/latest"),
                       help="results directory (default reports/latest)")
    sweep.add_argument("--heapmap", default=None, metavar="ALLOCATOR@WORKLOAD",
                       help="cell drawn as a heap map (default: freelist:glibc on the first workload)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--no-plots", action="store_true", help="skip the plots and index.html")
    sweep.add_argument("--json", action="store_true", help="print the result rows as JSON")
    sweep.set_defaults(func=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a usage error (2, message already printed)
        return int(exit_request.code or 0)
    try:
        return args.func(args)
    except (TraceError, BadParameter, UsageError, ValueError, KeyError, FileNotFoundError, IsADirectoryError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"bench: error: {message}", file=sys.stderr)
        return 2
    except AllocatorError as error:
        print(f"bench: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except MemoryError:
        print("bench: error: not enough memory for this command (a smaller --ops or --capacity, or a trace "
              "directory read chunk by chunk: see README 'Traces larger than memory')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m bench list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
