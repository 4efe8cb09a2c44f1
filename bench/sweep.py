"""`python -m bench sweep`: allocators x workload families x parameter values x seeds.

The grid (bench.plan: presets, `SweepConfig`, `make_plan`; re-exported here).  A *preset* names the
allocators, the workloads and the trace size;
`--allocators`, `--workloads`, `--ops`, `--seeds` override it.  A workload
entry is a catalog spec (`fifo`, `lognormal:threads=4`) or a *family sweep*
`FAMILY:PARAM=V1/V2/...` (`lognormal:sigma=0.5/1/1.5/2`), which expands into
one workload per value and records `family`, `param` and `param_value` in each
row, so plots can draw a figure against the parameter.

Cells.  One cell = one allocator spec x one workload spec x one seed.  Its
trace is generated from the spec and the seed (same seed, same trace), replayed
`repeats` times (`bench.harness.measure`), and becomes one tidy row (see
README "Sweep results").  A failing cell (out of memory, unsupported operation
order) is recorded with its reason and the sweep goes on.  A cell that does not
apply is recorded as *skipped* with its reason, without running: a LIFO-only
allocator (`stack`) on a trace that does not free newest-first
(`workloads.order`, checked on the cell's trace before any replay), a real
allocator whose library is not installed.

Real allocators.  A preset may name real allocators measured beside the models
as the scale (`Preset.real`: the default preset has `real:glibc`; the ci and
quick presets none, so their cells stay as they were); `SweepConfig.real`
adds every installed one (`bench.real.ALLOCATORS`: glibc, jemalloc, tcmalloc,
mimalloc, Scudo) and says which it left out and the Debian package that would
add it (`Plan.notes`); a `real:NAME` cell named explicitly whose library is
missing is a skipped cell with that reason.  Given allocators (`SweepConfig.allocators`) replace
the preset's models and its real ones alike (a `real:NAME` entry among them is
a real cell).

Storage and resume.  Each finished cell is written atomically to
`OUT/cells/<key>.json`, where the key hashes the cell and every setting that
changes its figures (ops, repeats, versions of the code are not in it: use a
fresh OUT after changing code).  `results.json` and `results.csv` are rebuilt
atomically after every cell.  A killed sweep loses no finished cell, and
`--resume` skips the cells already stored, so the completed results have the
same non-timing figures as an uninterrupted run.

Calibration.  A fixed calibration kernel (`bench.calibrate`) is timed at the
start and at the end of the sweep and stored in `meta["calibration"]`, so
`bench compare` can normalise cell times by the machine's speed.  With
`--resume`, stored cells keep the timings they were measured with.

Executors.  Cells run through a `concurrent.futures.Executor`
(`bench.executors`): in this process by default, a pool of N local processes
(`jobs=N`), or the workers of a Dask cluster.  Cells travel as specs and
seeds; every kernel is compiled once before they fan out.  Non-timing figures
do not depend on the executor or the number of workers; timings do, since
workers share the machine's cores.

API.  `SweepConfig` says what to measure (typed fields, no command line),
`make_plan(config)` expands it into cells, `run_sweep(plan, out, ...)` measures
them and returns the `bench.results.Results`; `python -m bench sweep` is a
thin layer that parses its arguments into these.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from contextlib import contextmanager
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import allocators
from bench import calibrate, executors, harness
from bench.plan import (  # noqa: F401 (the grid's names, re-exported: bench.sweep is their public home too)
    PRESETS,
    REAL_PREFIX,
    TRACE_PREFIX,
    Cell,
    Plan,
    Preset,
    SweepConfig,
    check_trace_path,
    default_allocators,
    expand_workload,
    make_plan,
)
from bench.progress import SweepBar, cell_cost
from bench.results import ResultRow, Results, atomic_write, write_results
from workloads import catalog
from workloads.chunked import ChunkedTrace
from workloads.order import first_out_of_order_row
from workloads.stream import DEFAULT_CHUNK_ROWS, GeneratedTrace, TraceSource
from workloads.trace import Trace, from_rows

LOCK_FILE = ".sweep.lock"


# ------------------------------------------------------------------ running
@lru_cache(maxsize=4)
def _trace(workload: str, ops: int, seed: int) -> Trace:
    if workload.startswith(TRACE_PREFIX):
        return Trace.load(workload[len(TRACE_PREFIX):])
    return catalog.make(workload, n_ops=ops, seed=seed)


def cell_source(workload: str, ops: int, seed: int) -> Trace | TraceSource:
    """A cell's trace: in memory, or a source read chunk by chunk (a chunked directory, a long generated trace)."""
    if workload.startswith(TRACE_PREFIX) and Path(workload[len(TRACE_PREFIX):]).is_dir():
        return ChunkedTrace(workload[len(TRACE_PREFIX):])
    if not workload.startswith(TRACE_PREFIX) and streamed(ops):
        return GeneratedTrace(workload, ops, seed)
    return _trace(workload, ops, seed)


def measure_real(name: str, trace, repeats: int) -> ResultRow:
    """A real allocator's cell: the figures that can be measured for it (speed, footprint, overhead); skipped
    (not failed) when its library is not installed on this machine."""
    from bench.real import RealAllocatorMissing, RealOutOfMemory, RealReplayFailed, replay_real

    spec = f"{REAL_PREFIX}{name}"
    try:
        real = replay_real(trace, name, repeats=repeats)
    except RealAllocatorMissing as error:
        return ResultRow.skip(spec, f"not applicable here: {error}", rows=len(trace))
    except (RealOutOfMemory, RealReplayFailed) as error:
        return harness.failed_row(spec, len(trace), error)
    footprint, overhead, measure = real_footprint(name, trace, real)
    return ResultRow(
        allocator=spec, rows=len(trace), status="ok", throughput_mops=real["throughput_mops"],
        ns_per_op=real["ns_per_op"], seconds_median=real["seconds_median"], seconds_min=real["seconds_min"],
        seconds_max=real["seconds_max"], compile_s=real["compile_s"], peak_footprint=footprint,
        peak_live_requested=real["peak_live_requested"], peak_live_granted=real["peak_live_granted"],
        metrics={"overhead_factor": overhead, "internal_fragmentation": real["internal_fragmentation"]},
        extra={"real_measure": measure},
    )


def real_footprint(name: str, trace: Trace, real: dict[str, Any]) -> tuple[int | None, float | None, str]:
    """(peak footprint, overhead factor, what measured it) of a real allocator's cell.

    The Python child of `replay_real` shares its heap with Python's own allocations, so on a trace with little
    live data its heap growth reads far too low (overhead factors of 0.01-0.6 on the default preset's small
    workloads); the clean-heap C replayer (`bench.real.cleanheap`, as `bench fidelity` uses) measures a fresh heap.
    Without gcc, the child's figure is kept and the measure says so.
    """
    from bench.real import RealOutOfMemory, RealReplayFailed
    from bench.real.cleanheap import CompilerMissing, clean_heap_footprint

    try:
        clean = clean_heap_footprint(trace, name)
    except (CompilerMissing, RealOutOfMemory, RealReplayFailed) as error:
        return (real["peak_heap_bytes"], real["overhead_factor"],
                f"in the Python child (no clean-heap replay: {error}): {real['peak_heap_measure']}")
    peak = int(clean["peak_heap_bytes"])
    return peak, peak / max(1, int(clean["peak_live_requested"])), "clean-heap C replayer: " + clean["measure"]


def streamed(ops: int) -> bool:
    """Whether a cell of `ops` rows is generated and replayed chunk by chunk (see `bench.api.run_cell`)."""
    return ops > harness.STREAM_THRESHOLD_ROWS


def not_applicable(spec: str, source: Trace | TraceSource) -> str:
    """Why the model `spec` cannot take this trace by design ('' when it can): a LIFO-only allocator on a trace
    that does not free newest-first (`workloads.order`)."""
    if spec.startswith(REAL_PREFIX):
        return ""
    name, _ = allocators.parse_spec(spec)
    if not allocators.get(name).lifo_only:
        return ""
    row = first_out_of_order_row(source)
    if row < 0:
        return ""
    return (f"not applicable: {name} frees newest-first only, and row {row} of this trace frees or reallocates "
            "an older object")


def run_cell(cell: Cell, ops: int, repeats: int) -> ResultRow:
    """Measure one cell (in whichever process runs it); never raises for an allocator failure (the row says why).

    A cell of more than `STREAM_THRESHOLD_ROWS` rows streams its trace (model cells; a real allocator's cell
    needs the trace in memory).
    """
    source = cell_source(cell.workload, ops, cell.seed)
    skip = not_applicable(cell.allocator, source)
    if skip:
        row = ResultRow.skip(cell.allocator, skip, rows=len(source), allocator_name=allocators.parse_spec(
            cell.allocator)[0])
    elif cell.allocator.startswith(REAL_PREFIX):
        trace = source if isinstance(source, Trace) else source.load()
        row = measure_real(cell.allocator[len(REAL_PREFIX):], trace, repeats)
        row.allocator_name = cell.allocator
    else:
        if isinstance(source, Trace):
            row, _ = harness.measure(cell.allocator, source, repeats=repeats)
        else:
            row = harness.measure_stream(cell.allocator, source, repeats)
        row.allocator_name = allocators.parse_spec(cell.allocator)[0]
    row.extra.pop("params", None)
    row.workload, row.family, row.param, row.param_value, row.seed = (
        cell.workload, cell.family, cell.param, cell.param_value, cell.seed
    )
    return row


class OutLocked(ValueError):
    """Another sweep is writing into the results directory."""


@contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """Hold OUT/.sweep.lock for the sweep: a second sweep into OUT is refused (OutLocked, naming the pid).

    An flock: the kernel releases it when the holder exits, however it exits (a killed sweep leaves no lock).
    """
    path = out / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115  (held for the block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise OutLocked(f"another sweep, pid {holder}, is writing into {out}; wait for it or choose another "
                            "--out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def run_metadata(plan: Plan) -> dict[str, Any]:
    import matplotlib
    import numba
    import numpy

    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        revision = None
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "preset": plan.preset,
        "allocators": plan.allocators,
        "workloads": [workload for workload, *_ in plan.workloads],
        "seeds": plan.seeds,
        "ops": plan.ops,
        "repeats": plan.repeats,
        "git_revision": revision,
        "versions": {
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "matplotlib": matplotlib.__version__,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }


def _short_reason(reason: str) -> str:
    for words, short in (("not applicable", "n/a"), ("out of memory", "OOM"), ("out of LIFO order", "not LIFO"),
                         ("larger than the largest block", "too large")):
        if words in reason:
            return short
    return "failed"


def tables(rows: Sequence[Any], specs: Sequence[str], workloads: Sequence[str]) -> str:
    """The console's grids (throughput, peak footprint, overhead factor): medians over seeds with their spread,
    workloads x allocators, at most 100 columns wide (`bench.console`)."""
    from bench import console

    return console.tables(rows, specs, workloads)


def _load_stored(path: Path) -> ResultRow | None:
    try:
        return ResultRow.from_dict(json.loads(path.read_text()), strict=True)
    except (OSError, ValueError, TypeError):
        return None  # a cell file that cannot be read is measured again


def check_heapmap_choice(plan: Plan, wanted: str | None) -> None:
    """Refuse a `--heapmap ALLOCATOR@WORKLOAD` that names no cell of the plan, before any work (ValueError)."""
    if not wanted:
        return
    allocator, _, workload = wanted.partition("@")
    workload = workload or plan.workloads[0][0]
    if allocator not in plan.allocators or allocator.startswith(REAL_PREFIX):
        raise ValueError(f"--heapmap {wanted}: allocator '{allocator}' is not a model of this sweep "
                         f"(models: {', '.join(spec for spec in plan.allocators if not spec.startswith(REAL_PREFIX))})")
    if workload not in [spec for spec, *_ in plan.workloads]:
        raise ValueError(f"--heapmap {wanted}: workload '{workload}' is not in this sweep "
                         f"(workloads: {', '.join(spec for spec, *_ in plan.workloads)})")


def choose_heapmap_cell(plan: Plan, rows: Sequence[ResultRow], wanted: str | None) -> dict[str, Any] | None:
    """The cell drawn as a heap map: `ALLOCATOR@WORKLOAD` if given, else freelist:glibc (or the first
    allocator) on the first workload and seed; only a cell that replayed successfully."""
    ok = {(row.allocator, row.workload, row.seed) for row in rows if row.ok}
    if wanted:
        allocator, _, workload = wanted.partition("@")
        candidates = [(allocator, workload or plan.workloads[0][0], plan.seeds[0])]
    else:
        models = [spec for spec in plan.allocators if not spec.startswith(REAL_PREFIX)]
        preferred = [spec for spec in models if spec == "freelist:glibc"] + models
        candidates = [(spec, workload, plan.seeds[0]) for workload, *_ in plan.workloads for spec in preferred]
    for allocator, workload, seed in candidates:
        if (allocator, workload, seed) in ok:
            return {"allocator": allocator, "workload": workload, "seed": seed}
    return None


def save_heapmap(out: Path, plan: Plan, rows: Sequence[ResultRow], wanted: str | None) -> dict[str, Any] | None:
    from bench import heapmap

    cell = choose_heapmap_cell(plan, rows, wanted)
    if cell is None:
        (out / "heapmap.npz").unlink(missing_ok=True)
        return None
    source = cell_source(cell["workload"], plan.ops, cell["seed"])
    if not isinstance(source, Trace):
        image, footprint, address_max = heapmap.occupancy_of_stream(cell["allocator"], source, DEFAULT_CHUNK_ROWS)
        heapmap.write(out / "heapmap.npz", image, footprint, address_max, len(source), cell)
        return cell
    log = harness.build_for_trace(cell["allocator"], source).replay(source)
    heapmap.save(out / "heapmap.npz", source, log, cell)
    return cell


def warm_up(models: Sequence[str]) -> None:
    """The compile step: every kernel the cells and the heap map call, compiled (or loaded from the cache) in this
    process before the cells fan out (workers forked from it inherit them, others load the cache it filled).
    A cold cache is said at the first compile and "compiled in T s" after this step (`labcore.jitcache`)."""
    if models:
        from bench import heapmap

        tiny = from_rows([(0, 0, 16, 0), (1, 0, 0, 0)])
        heapmap.occupancy(tiny, harness.build_for_trace(models[0], tiny).replay(tiny), time_bins=2, address_bins=2)
    executors.warm_up(models)


def run_sweep(
    plan: Plan,
    out: Path | str,
    executor: Executor | None = None,
    jobs: int = 1,
    resume: bool = False,
    heapmap_cell: str | None = None,
    draw_plots: bool = True,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    on_cell: Callable[[Cell, ResultRow], None] | None = None,
) -> Results:
    """Measure every cell of `plan` into `out` and return the results (in the plan's cell order).

    executor: where cells run (default: in this process; see `bench.executors`); the caller owns it.
    jobs: how many cells it runs at a time (recorded as meta["jobs"]: `bench compare` gates speed only between
    sweeps with the same count).  One sweep at a time writes into `out` (OutLocked otherwise).
    resume: keep the cells already stored in `out/cells` (same plan: same cell keys) and measure the rest.
    draw_plots: the figures and index.html after the last cell.  progress: a progress bar on stderr.
    say(text): a line about the sweep before it starts.  on_cell(cell, row): after each cell.
    """
    out = Path(out)
    check_heapmap_choice(plan, heapmap_cell)
    cells_dir = out / "cells"
    try:
        cells_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out {out}: not a directory") from None
    with out_lock(out):
        return _run_locked(plan, out, cells_dir, executor, jobs, resume, heapmap_cell, draw_plots, progress, say,
                           on_cell)


def _run_locked(plan: Plan, out: Path, cells_dir: Path, executor: Executor | None, jobs: int, resume: bool,
                heapmap_cell: str | None, draw_plots: bool, progress: bool, say: Callable[[str], None] | None,
                on_cell: Callable[[Cell, ResultRow], None] | None) -> Results:
    for note in plan.notes:
        if say is not None:
            say(note)
    meta = run_metadata(plan)
    meta["jobs"] = jobs
    meta["calibration"] = calibrate.combine(calibrate.calibrate())  # before any cell: a killed sweep keeps it
    keys = {cell: cell.key(plan.ops, plan.repeats) for cell in plan.cells}
    done: dict[Cell, ResultRow] = {}
    if resume:
        for cell, key in keys.items():
            stored = _load_stored(cells_dir / f"{key}.json")
            if stored is not None:
                done[cell] = stored
    else:
        for stale in cells_dir.glob("*.json"):
            stale.unlink()
    todo = [cell for cell in plan.cells if cell not in done]

    def ordered_rows() -> list[ResultRow]:
        return [done[cell] for cell in plan.cells if cell in done]

    def finish(cell: Cell, row: ResultRow) -> None:
        atomic_write(cells_dir / f"{keys[cell]}.json", json.dumps(row.as_dict(), sort_keys=True, default=str))
        done[cell] = row
        write_results(out, ordered_rows(), meta)
        if on_cell is not None:
            on_cell(cell, row)

    models = [spec for spec in plan.allocators if not spec.startswith(REAL_PREFIX)]
    executor = executor or executors.InlineExecutor()
    if say is not None:
        say(f"sweep: {len(plan.cells)} cells ({len(plan.allocators)} allocators x {len(plan.workloads)} workloads "
            f"x {len(plan.seeds)} seeds), {plan.ops:,} rows, {plan.repeats} repeats"
            + (f"; {len(done)} already stored" if done else "") + f" -> {out}")
    if todo:
        warm_up(models)  # every kernel compiled once, before the cells fan out
    cost = {cell: cell_cost(cell.allocator, plan.ops, plan.repeats) for cell in plan.cells}  # weights the bar
    bar = SweepBar([cost[cell] for cell in todo], [cost[cell] for cell in done], enabled=progress)
    # Cells are submitted a few at a time (two per worker; one for the inline executor, which runs a cell when it
    # is submitted), so that each is stored, and the bar moves, as soon as it is done.
    window = 1 if isinstance(executor, executors.InlineExecutor) else 2 * max(1, jobs)
    queue, pending = iter(todo), {}
    try:
        while True:
            for cell in islice(queue, max(0, window - len(pending))):
                pending[executor.submit(run_cell, cell, plan.ops, plan.repeats)] = cell
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                cell, row = pending.pop(future), future.result()
                finish(cell, row)
                outcome = f"{row.throughput_mops:.1f} Mops/s" if row.ok else _short_reason(row.reason)
                bar.advance(cost[cell], f"{cell.allocator} x {cell.workload}: {outcome}")
    finally:
        bar.close()
    rows = ordered_rows()
    meta["calibration"] = calibrate.combine(meta["calibration"]["start"], calibrate.calibrate())
    meta["heapmap_cell"] = save_heapmap(out, plan, rows, heapmap_cell)
    write_results(out, rows, meta)
    if draw_plots:
        from bench.plots import draw_all
        from bench.report import write_index

        draw_all(out)
        write_index(out)
    return Results(meta=meta, rows=rows, directory=out)
