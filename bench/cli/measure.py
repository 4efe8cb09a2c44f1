"""The commands that measure one allocator or print what the lab knows: `list`, `run`, `replay`, `real`,
`fidelity`, `perf` (the figures of one cell as a key/value list, at most 100 columns but for long paths)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

import allocators
from bench import api
from bench.cli.common import RowsBar, UsageError, say, spec_list
from bench.results import ResultRow
from bench.table import WIDTH, format_bytes, wrap_text
from workloads import catalog
from workloads.stream import DEFAULT_CHUNK_ROWS, GeneratedTrace, MemorySource, TraceSource
from workloads.trace import Trace


def _entry(prefix: str, text: str) -> None:
    """`prefix text`, wrapped at 100 columns under the start of `text` (or 40 columns in)."""
    print(textwrap.fill(text, WIDTH, initial_indent=prefix, subsequent_indent=" " * min(len(prefix), 40),
                        break_long_words=False, break_on_hyphens=False))


def cmd_list(args: argparse.Namespace) -> int:
    if args.fields:
        from bench.results import describe_fields

        print("result row fields (results.json / results.csv, `run --json`):")
        for name, unit, doc in describe_fields():
            _entry(f"  {name:<28} {('[' + unit + ']') if unit else '':<16} ", doc)
        return 0
    show_all = not (args.allocators or args.workloads or args.metrics or args.scenarios)
    if args.allocators or show_all:
        print("allocators:")
        for name in allocators.names():
            cls = allocators.get(name)
            presets = f"  [presets: {', '.join(cls.presets)}]" if cls.presets else ""
            _entry(f"  {name:<12} ", f"{cls.summary}{presets}")
    if args.workloads or show_all:
        print("workloads:")
        for name in catalog.names():
            _entry(f"  {name:<18} ", catalog.describe(name))
        from workloads import callgen

        print("call-depth workloads (goroutine stacks: python -m bench stacks -w NAME):")
        for name in callgen.names():
            _entry(f"  {name:<18} ", callgen.describe(name))
    if args.scenarios or show_all:
        from bench.scenarios import SCENARIOS

        print("scenarios (each is a subcommand: python -m bench NAME --help):")
        for name, line in SCENARIOS.items():
            _entry(f"  {name:<18} ", line)
    if args.metrics or show_all:
        from bench.metrics import describe_metrics

        print("metrics:")
        for line in describe_metrics():
            name, _, definition = line.partition(": ")
            _entry(f"  {name}: ", definition)
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
        ("model replay speed",
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


def _replay_streamed(args: argparse.Namespace, source: TraceSource) -> ResultRow:
    """A source replayed chunk by chunk, with a progress bar (a generated source: its facts pass first)."""
    generated = isinstance(source, GeneratedTrace)
    bar = RowsBar("facts" if generated else "replay", source.n_ops if generated else None, sys.stderr.isatty())
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


def cmd_real(args: argparse.Namespace) -> int:
    from bench.real import RealAllocatorMissing, RealOutOfMemory, RealReplayFailed, replay_real, summary_lines
    from bench.real.cleanheap import CompilerMissing

    trace = Trace.load(args.trace)
    if args.allocator == "go":
        if args.threads:
            raise UsageError("--threads goes with a real malloc (glibc, jemalloc, tcmalloc, mimalloc, scudo), not go")
        return _real_go(trace, args)
    try:
        if args.threads:
            from bench.real.threaded import replay_threads
            from bench.real.threaded import summary_lines as threaded_lines

            result = replay_threads(trace, args.allocator, repeats=args.repeats, touch=args.touch or "first")
            lines = threaded_lines(result)
        else:
            result = replay_real(trace, args.allocator, repeats=args.repeats, touch=args.touch or "page")
            lines = summary_lines(result)
    except (RealAllocatorMissing, CompilerMissing) as error:
        raise UsageError(str(error)) from None
    except (RealOutOfMemory, RealReplayFailed) as error:
        print(f"bench: {args.allocator} failed on {args.trace}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, sort_keys=True, default=str))
    else:  # label, then value from column 24: long values continue under it
        print(wrap_text("\n".join(lines), indent=" " * 24))
    return 0


def _real_go(trace: Trace, args: argparse.Namespace) -> int:
    from bench.real import RealReplayFailed
    from bench.real.go import GoMissing, replay_go, summary_lines

    gogc: int | str = args.gogc
    if gogc != "off":
        try:
            gogc = int(gogc)
        except ValueError:
            raise UsageError(f"--gogc must be a positive integer or off, got {args.gogc!r}") from None
    try:
        result = replay_go(trace, gogc=gogc)
    except GoMissing as error:
        raise UsageError(str(error)) from None
    except RealReplayFailed as error:
        print(f"bench: go failed on {args.trace}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, sort_keys=True, default=str))
    else:
        print("\n".join(summary_lines(result)))
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from bench.fidelity import REALS, render_tables

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")

    results = api.fidelity(args.traces, repeats=args.repeats, out=args.out, progress=say,
                           reals=tuple(args.real or REALS), settings=args.settings)
    print(render_tables(results))
    if args.out:
        print(f"\nwrote {args.out / 'fidelity.json'}, {args.out / 'fidelity.png'}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.perf import VS_REAL_OPS, VS_REAL_WORKLOAD, render_table, render_vs_real

    specs = spec_list(args.allocators, "--allocators")
    if args.vs_real:
        ops = args.ops or VS_REAL_OPS
        try:
            trace = catalog.make(args.workload or VS_REAL_WORKLOAD, n_ops=ops, seed=0)
        except ValueError as error:
            raise UsageError(f"--workload: {error}") from None
        result = api.perf_vs_real(specs, real=args.vs_real, trace=trace, rounds=args.rounds,
                                  repeats=args.repeats or 3, touch=args.touch, progress=say)
        print(render_vs_real(result))
        return 0
    if args.workload:
        raise UsageError("--workload goes with --vs-real (the table's trace is the benchmark trace)")
    ops, repeats = args.ops or 1_000_000, args.repeats or 7
    rows = api.perf(specs, ops=ops, repeats=repeats, compile_time=not args.no_compile, progress=say)
    print(render_table(rows, ops, repeats))
    return 0
