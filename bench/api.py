"""The lab as a Python library: everything `python -m bench` does, with typed arguments.

The command line (`bench.cli`) parses its arguments into these calls and
prints what they return; a notebook, a script or a Dask worker calls them
directly.  Nothing here takes an `argparse.Namespace` or prints.

    from bench import api

    row = api.run_cell("tcmalloc", "lognormal:sigma=1.5", ops=200_000, seed=1)
    row.throughput_mops, row.metrics["l1_miss_rate"], row.counters["central_fetches"]

    results = api.sweep(api.SweepConfig(allocators=["pool", "tcmalloc"], workloads=["fifo", "phased"],
                                        ops=50_000, seeds=[0, 1]), out="reports/mine", jobs=2)
    for row in results.ok_rows():
        print(row.allocator, row.workload, row["overhead_factor"])
    api.load_results("reports/mine")  # the same Results, from disk

Errors: bad input (an unknown allocator or workload, a bad parameter, a
malformed trace) raises `ValueError` subclasses (`BadParameter`,
`TraceError`); an allocator failing on a trace (out of memory, an unsupported
order) is not an exception: the row says `status="failed"` with its
`status_code` and `reason`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from allocators import AllocLog
from bench import compare as gate
from bench import executors, harness
from bench.compare import Comparison, Thresholds
from bench.results import ResultRow, Results, load_results
from bench.scenarios.pools import PoolsConfig, PoolsReport
from bench.sweep import PRESETS, Cell, Plan, SweepConfig, make_plan, run_sweep
from workloads import catalog, chunked
from workloads.stream import DEFAULT_CHUNK_ROWS, GeneratedTrace, MemorySource, TraceSource
from workloads.trace import Trace

__all__ = [
    "Cell", "Comparison", "PRESETS", "Plan", "PoolsConfig", "ResultRow", "Results", "SweepConfig", "Thresholds",
    "compare", "escape", "escape_check_go", "escape_program", "fidelity", "load_results", "make_calltrace",
    "make_plan", "make_trace", "open_trace", "perf", "pools", "programs", "real", "real_stacks", "replay",
    "replay_stack", "run_cell", "scaling", "stacks", "stream_trace", "sweep", "write_trace",
]


STREAM_THRESHOLD_ROWS = harness.STREAM_THRESHOLD_ROWS


def _saved(report: Any, out: str | Path | None, plots: str | None) -> Any:
    """A scenario's report saved into `out` (if given) and drawn by `bench.plots.<plots>.draw_<plots>(out)` (if
    named); the report."""
    if out is not None:
        report.save(out)
        if plots is not None:
            import importlib

            getattr(importlib.import_module(f"bench.plots.{plots}"), f"draw_{plots}")(out)
    return report


def make_trace(workload: str = "lognormal", ops: int = catalog.DEFAULT_N_OPS, seed: int = 0) -> Trace:
    """The trace of a workload spec in memory (same spec and seed, same trace, bit for bit)."""
    return catalog.make(workload, n_ops=ops, seed=seed)


def stream_trace(workload: str = "lognormal", ops: int = catalog.DEFAULT_N_OPS, seed: int = 0) -> GeneratedTrace:
    """The same trace as `make_trace`, as a source generated chunk by chunk (bounded memory, any length)."""
    catalog.parameters(workload)  # a bad spec fails here, not at the first chunk
    return GeneratedTrace(workload, ops, seed)


def open_trace(path: str | Path) -> TraceSource:
    """A trace file (.npz, .csv, loaded) or a chunked trace directory (read chunk by chunk) as a source."""
    return chunked.open_trace(path)


def write_trace(
    workload: str, ops: int, seed: int, output: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate a workload into a file (.npz, .csv) or, for a path ending in '/' or an existing directory, a
    chunked trace directory written chunk by chunk in bounded memory; return the rows written."""
    if chunked.is_chunked_path(output):
        source = stream_trace(workload, ops, seed)
        with chunked.ChunkedTraceWriter(output, source.meta) as writer:
            for chunk in source.chunks(chunk_rows):
                writer.write(chunk.op, chunk.obj, chunk.size, chunk.thread)
                if progress is not None:
                    progress(writer.rows)
        return writer.rows
    trace = make_trace(workload, ops, seed)
    trace.save(output)
    return len(trace)


def inject_faults(trace: Trace | str | Path, faults: str, seed: int, output: str | Path | None = None) -> Trace:
    """A trace (or trace file, loaded into memory) as a fault trace with the faults of a `--faults` spec
    (`workloads.faults`: 'double_free=0.001,overflow:k=8=0.0005'), seeded; saved to `output` (.npz, .csv) if
    given."""
    from workloads.faults import inject, parse_faults

    requests = parse_faults(faults)
    source = trace if isinstance(trace, Trace) else Trace.load(trace)
    if source.faults is not None and len(source.faults):
        where = "the trace" if isinstance(trace, Trace) else str(trace)
        raise ValueError(f"{where}: the trace is a fault trace already: inject into the trace it was made from")
    result = inject(source, requests, seed)
    if output is not None:
        result.save(output)
    return result


def replay(
    allocator: str, trace: Trace | TraceSource | str | Path, repeats: int = 3, capacity: int | None = None,
    log: str | Path | None = None, chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResultRow:
    """One allocator spec replaying a trace: a Trace, a trace file, a chunked directory or any TraceSource.

    A Trace (or a file, loaded) replays in memory, unless `chunk_rows` is given; a chunked directory or another
    source replays chunk by chunk (`chunk_rows`, default 2^20).  The figures do not depend on which.
    log: also save the replay's AllocLog there (`.npz`; in-memory replays only: a streamed one keeps no per-row log).
    """
    if isinstance(trace, str | Path):
        trace = open_trace(trace)
    if isinstance(trace, MemorySource) and chunk_rows is None:
        trace = trace.trace
    if isinstance(trace, Trace) and chunk_rows is None:
        row, alloc_log = harness.measure(allocator, trace, repeats=repeats, capacity=capacity)
        if log is not None and alloc_log is not None:
            alloc_log.save(log)
        return row
    if log is not None:
        raise ValueError("--log needs a trace replayed in memory (.npz or .csv, no --chunk-rows): a replay chunk "
                         "by chunk keeps no per-row log")
    source = MemorySource(trace) if isinstance(trace, Trace) else trace
    return harness.measure_stream(allocator, source, repeats=repeats, capacity=capacity,
                                  chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS, progress=progress)


def replay_log(allocator: str, trace: Trace, capacity: int | None = None) -> AllocLog:
    """The AllocLog of one replay (addresses and granted sizes per row, timeline, peaks, counters)."""
    return harness.build_for_trace(allocator, trace, capacity).replay(trace)


def run_cell(
    allocator: str, workload: str = "lognormal", ops: int = catalog.DEFAULT_N_OPS, seed: int = 0,
    repeats: int = 3, capacity: int | None = None, chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResultRow:
    """One allocator spec on one generated workload: every figure of the cell (`bench.results.ResultRow`).

    Traces longer than `STREAM_THRESHOLD_ROWS` rows (or any, with `chunk_rows`) are generated and replayed chunk
    by chunk, in memory bounded by the chunk and the live objects; the figures are the same either way.
    """
    if chunk_rows is not None or ops > STREAM_THRESHOLD_ROWS:
        trace: Trace | TraceSource = stream_trace(workload, ops, seed)
        chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    else:
        trace = make_trace(workload, ops, seed)
    row = replay(allocator, trace, repeats=repeats, capacity=capacity, chunk_rows=chunk_rows, progress=progress)
    row.workload, row.family, row.seed = workload, workload.partition(":")[0], seed
    return row


def sweep(
    config: SweepConfig | None = None,
    out: str | Path = "reports/latest",
    jobs: int = 1,
    executor: Any = None,
    resume: bool = False,
    draw_plots: bool = True,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    on_cell: Callable[[Cell, ResultRow], None] | None = None,
) -> Results:
    """Measure a sweep into `out` (results.json/csv, cells/, heapmap.npz, plots/, index.html); return its Results.

    jobs: local worker processes (1: in this process).  executor: any `concurrent.futures.Executor` instead,
    e.g. `dask.distributed.Client(...).get_executor()` (its workers must have the lab installed; give `jobs` = its
    workers, recorded in the results' meta).
    """
    config = config or SweepConfig()
    plan = make_plan(config)
    if executor is not None:
        return run_sweep(plan, out, executor, jobs=jobs, resume=resume, heapmap_cell=config.heapmap,
                         draw_plots=draw_plots, progress=progress, say=say, on_cell=on_cell)
    with executors.local_executor(jobs) as local:
        return run_sweep(plan, out, local, jobs=jobs, resume=resume, heapmap_cell=config.heapmap,
                         draw_plots=draw_plots, progress=progress, say=say, on_cell=on_cell)


def escape(config: Any = None, out: str | Path | None = "reports/escape", plots: bool = True,
           progress: Callable[[str], None] | None = None) -> Any:
    """The escape-analysis scenario (`bench.scenarios.escape.EscapeConfig`, default: go:gc over the ratios
    0/0.25/0.5/0.75/1, seeds 0 and 1): an `EscapeReport`, saved to `out` (escape.json, escape.csv, plots/)."""
    from bench.scenarios.escape import run_escape

    report = run_escape(config, progress=progress)
    return _saved(report, out, "escape" if plots else None)


def escape_program(workload: str = "goescape", ops: int = catalog.DEFAULT_N_OPS, seed: int = 0) -> Any:
    """A `goescape` program run (`workloads.escape.Program`): its heap trace, its frame table, its sites."""
    return catalog.program(workload, ops, seed)


def escape_check_go() -> list[Any]:
    """The lab's escape rules against `go build -gcflags=-m`, one `SiteVerdict` per rule case (needs go)."""
    from bench.scenarios.escape_go import check_sites

    return check_sites()


def compare(base: str | Path, new: str | Path, speed_threshold: float = gate.DEFAULT_SPEED_THRESHOLD,
            statistic: str = gate.DEFAULT_STATISTIC) -> Comparison:
    """The regression gate between two sweeps (`.ok`, `.text()`, `.markdown()`); CompareError on unusable input."""
    return gate.compare(base, new, Thresholds(speed=speed_threshold, statistic=statistic))


def perf(allocators: Sequence[str] | None = None, ops: int = 1_000_000, repeats: int = 7,
         compile_time: bool = True, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The README's performance table, measured: one dict per allocator spec (`bench.perf.measure_all`)."""
    from bench import perf as perf_module

    return perf_module.measure_all(allocators, ops=ops, repeats=repeats, compile_time=compile_time,
                                   progress=progress)


def perf_vs_real(allocators: Sequence[str] | None = None, real: str = "glibc", trace: Trace | None = None,
                 rounds: int = 5, repeats: int = 3, touch: str = "none",
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Model specs and a real allocator on one trace, interleaved (`bench.perf.measure_vs_real`)."""
    from bench import perf as perf_module

    return perf_module.measure_vs_real(allocators, real=real, trace=trace, rounds=rounds, repeats=repeats,
                                       touch=touch, progress=progress)


def fidelity(traces: Sequence[str | Path], repeats: int = 3, out: str | Path | None = None,
             progress: Callable[[str], None] | None = None,
             reals: Sequence[str] | None = None, settings: bool = False) -> list[dict[str, Any]]:
    """Each model beside the real allocator it models, per trace file (`bench.fidelity.measure_traces`);
    `reals` picks the real sides (default all of `bench.fidelity.REALS`: glibc, tcmalloc, jemalloc, mimalloc,
    go); `settings` adds each model parameter beside the real option it stands for (`bench.pairs.SETTING_PAIRS`)."""
    from bench import fidelity as fidelity_module

    return fidelity_module.measure_traces([Path(path) for path in traces], repeats=repeats,
                                          out=Path(out) if out is not None else None, progress=progress,
                                          reals=tuple(reals or fidelity_module.REALS), settings=settings)


def real(trace: Trace | str | Path, allocator: str = "glibc", repeats: int = 3, touch: str | None = None,
         threads: bool = False) -> dict[str, Any]:
    """A trace replayed through the machine's real malloc (glibc, jemalloc, tcmalloc, mimalloc, scudo), in a child;
    threads=True: one OS thread per trace thread (`bench.real.threaded.replay_threads`, figures with `os_threads`).
    touch: bytes written into each new block (default "page"; with threads "first")."""
    if not isinstance(trace, Trace):
        trace = Trace.load(trace)
    if threads:
        from bench.real.threaded import replay_threads

        return replay_threads(trace, allocator, repeats=repeats, touch=touch or "first")
    from bench.real import replay_real

    return replay_real(trace, allocator, repeats=repeats, touch=touch or "page")


def make_calltrace(workload: str = "boundary", ops: int = 100_000, seed: int = 0) -> Any:
    """A call-depth trace (`workloads.calldepth.CallTrace`) of a call-depth workload spec (`workloads.callgen`:
    randomwalk, recursion, boundary); `.save(path)` writes it (.npz or .csv)."""
    from workloads import callgen

    return callgen.make(workload, ops, seed)


def replay_stack(model: str, trace: Any, repeats: int = 1, timeline: bool = False, **params: Any) -> Any:
    """A goroutine-stack model spec (`allocators.gostack`: contiguous[:go1.19,...], segmented[:go1.1,...]) over a
    call-depth trace (a CallTrace or a .npz/.csv path): a `StackResult` (counters, median kernel seconds)."""
    from allocators.gostack import replay_stack as replay
    from workloads.calldepth import CallTrace

    if isinstance(trace, str | Path):
        trace = CallTrace.load(trace)
    return replay(model, trace, repeats=repeats, timeline=timeline, **params)


def stacks(config: Any = None, out: str | Path | None = "reports/stacks", plots: bool = True,
           progress: Callable[[str], None] | None = None) -> Any:
    """The stacks scenario (`bench.scenarios.stacks.StacksConfig` -> `StacksReport`): models x call-depth
    workloads x seeds, the hot-split sweep, real Go beside the contiguous model; saved (and drawn) into `out`."""
    from bench.scenarios.stacks import StacksConfig, run_stacks

    report = run_stacks(config or StacksConfig(), progress=progress)
    return _saved(report, out, "stacks" if plots else None)


def real_stacks(depths: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Real Go's goroutine stack bytes beside the contiguous model's, per frame variant and recursion depth."""
    from bench.real.gostacks import DEFAULT_DEPTHS, measure_real_stacks

    return measure_real_stacks(list(depths) if depths is not None else DEFAULT_DEPTHS)


def pools(config: PoolsConfig | None = None, out: str | Path | None = None, plots: bool = True,
          progress: Callable[[str], None] | None = None) -> PoolsReport:
    """Pools, regions and arenas against the Go heap on request churn (`bench.scenarios.pools`): the report's
    `cells` (heap allocations and those avoided, GC cycles, peak footprint, speed per set-up and grid point) and
    its harness `rows`; saved to `out` (pools.json/csv, results.json/csv, plots/pools.png) if given.

        report = api.pools(api.PoolsConfig(temps=[10, 100], request_bytes=[64 << 10], seeds=[0]))
        [(cell.setup, cell.temps, cell.avoided_fraction, cell.gc_cycles) for cell in report.cells]
    """
    from bench.scenarios.pools import run_pools

    report = run_pools(config, progress=progress)
    return _saved(report, out, "pools" if plots else None)


def scaling(config: Any = None, out: str | Path | None = "reports/latest/scaling", plots: bool = True,
            progress: Callable[[str], None] | None = None) -> Any:
    """Real allocators on 1 and T OS threads beside the models' proxies (`bench.scenarios.scaling.ScalingConfig` ->
    `ScalingReport`); saved to `out` (scaling.json/csv/md) and drawn (scaling.png) if given.

        report = api.scaling(ScalingConfig(workloads=["larson"], threads=[2], ops=100_000), out=None)
        [(real["allocator"], real.get("scaling")) for point in report.points for real in point["reals"]]
    """
    from bench.scenarios.scaling import run_scaling

    report = run_scaling(config, progress=progress)
    return _saved(report, out, "scaling" if plots else None)


def programs(names: Sequence[str] | None = None, command: Sequence[str] | None = None,
             allocators: Sequence[str] | None = None, repeats: int = 3, scale: float = 1.0, record: bool = False,
             models: Sequence[str] | None = None, out: str | Path | None = None, plots: bool = True,
             progress: Callable[[str], None] | None = None) -> Any:
    """Real programs under each real allocator (`bench.programs`): the named programs (`names`, None: all) or one
    `command`, `repeats` runs each per allocator (None: every installed one; glibc always), time and peak RSS
    normalised to glibc; `record`: the models' predictions on each program's recorded trace.  A `ProgramsReport`,
    saved to `out` (programs.json, programs.md, plots/programs.png; traces/ with `record`) if given.

        report = api.programs(["sqlite3"], allocators=["jemalloc"], repeats=3)
        report.programs[0].ratio("jemalloc", "max_rss_bytes").median   # peak RSS / glibc's
    """
    from bench import programs as real_programs

    chosen = [real_programs.command_program(command)] if command else real_programs.named(names)
    report = real_programs.run_programs(chosen, allocators, repeats=repeats, scale=scale, record=record,
                                        models=models, trace_dir=None if out is None else Path(out) / "traces",
                                        progress=progress)
    if out is not None:
        real_programs.write_files(report, Path(out), plots=plots)
    return report
