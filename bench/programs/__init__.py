"""Real programs under each real allocator: `python -m bench programs`, after mimalloc-bench.

mimalloc-bench runs each benchmark program with `LD_PRELOAD=<allocator>.so` under GNU `time -f` and plots time
and peak RSS relative to one allocator.  This package does the same for a set of named programs (sqlite3, python3,
cc1, xz, zstd: `bench.programs.catalog`, each on an input it generates) or a user's own command, with the real
allocators of `bench.real` (glibc, jemalloc, tcmalloc, mimalloc, Scudo), and puts the lab's models beside them:

    from bench import programs

    report = programs.run_programs(programs.named(["sqlite3", "xz"]), ["glibc", "jemalloc"], repeats=3)
    report.save(Path("reports/latest/programs"))
    cell = report.programs[0].cell("jemalloc")             # medians and min..max of wall, user, sys, peak RSS
    report.programs[0].ratio("jemalloc", "wall_s").median  # time / glibc's

How a program is run (`run_program`):

1. its input is generated into a temporary directory (`Program.build`, at `scale`);
2. a warm-up run under glibc, not counted: it loads the binary and the input into the page cache, and a program
   that fails there (nonzero exit, a signal, no preload: a statically linked binary) is reported with that
   reason and not run again;
3. one baseline run per allocator (`Program.baseline`: the program doing next to nothing; not for a user's
   command): the RSS the program has before its work, subtracted to give the RSS growth;
4. `repeats` rounds, each running every allocator once, in an order rotated by one each round, so that a slow
   spell of a shared machine is spread over the allocators instead of falling on one;
5. with `record`: one recorded run (`bench.programs.predict`: heaptrack or valgrind, under glibc) and the models'
   replays of its trace.

Each run is `bench.real.measured.run_measured`: a C launcher forks and execs the program with the allocator and a
probe preloaded, waits with `wait4`, and the probe's report decides whether the preload took.  A run that is not
ok is counted and reported with its reason, never measured into a median.  glibc is always measured: it is the
reference every ratio divides by.  An allocator whose library is not installed is skipped with the package to
install (`bench.real.library_path`).

Output: `ProgramsReport` (`bench.programs.results`), its tables (`bench.programs.tables`: console and Markdown)
and its figure (`bench.plots.programs`); `write_files(report, out)` writes OUT/programs.json, programs.md and
plots/programs.png.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.programs.catalog import PROGRAMS, Invocation, Program, command_program, named
from bench.programs.predict import default_models, record_and_predict
from bench.programs.results import ProgramResult, ProgramsReport, load_report, machine_meta
from bench.programs.summary import REFERENCE
from bench.real import ALLOCATORS, LIBRARIES, RealAllocatorMissing, library_path
from bench.real.measured import Run, run_measured

__all__ = ["PROGRAMS", "Invocation", "Program", "ProgramResult", "ProgramsReport", "command_program",
           "default_models", "load_report", "named", "resolve_allocators", "run_program", "run_programs",
           "write_files"]

Progress = Callable[[str], None]


def resolve_allocators(allocators: Sequence[str] | None) -> tuple[list[str], dict[str, str], dict[str, str | None]]:
    """(allocators to measure, glibc first; skipped ones with the reason; their libraries).  None: every
    installed allocator.  ValueError for a name that is not a real allocator."""
    wanted = list(dict.fromkeys([REFERENCE, *(allocators if allocators is not None else ALLOCATORS)]))
    unknown = [name for name in wanted if name not in ALLOCATORS]
    if unknown:
        raise ValueError(f"unknown real allocator '{unknown[0]}' (known: {', '.join(ALLOCATORS)})")
    chosen, skipped, libraries = [], {}, {}
    for name in wanted:
        try:
            libraries[name] = library_path(name)
            chosen.append(name)
        except RealAllocatorMissing as error:
            skipped[name] = str(error)
    return chosen, skipped, libraries


def run_program(program: Program, allocators: Sequence[str], repeats: int = 3, scale: float = 1.0,
                record: bool = False, models: Sequence[str] | None = None, trace_dir: Path | None = None,
                timeout: float = 600.0, progress: Progress | None = None,
                record_tool: str = "auto") -> ProgramResult:
    """Measure one program under `allocators` (module docstring, steps 1-5)."""
    say = progress or (lambda line: None)
    binary = program.binary()
    result = ProgramResult(program.name, program.summary, [])
    if binary is None:
        result.status, result.reason = "skipped", program.skip_reason() or "not installed"
        say(f"programs: skipped {result.reason}")
        return result
    with tempfile.TemporaryDirectory(prefix=f"alloclab-{program.name}-") as scratch:
        for part in ("input", "baseline"):
            (Path(scratch) / part).mkdir()
        invocation = program.build(binary, Path(scratch) / "input", scale)
        result.command, result.env = list(invocation.command), dict(invocation.env)

        def run(allocator: str, what: Invocation) -> Run:
            return run_measured(what.command, allocator, env=what.env, stdin=what.stdin, cwd=Path(scratch),
                                timeout=timeout)

        warm = run(REFERENCE, invocation)
        if not warm.ok:
            result.status, result.reason = warm.status, f"warm-up run under glibc: {warm.reason}"
            say(f"programs: {program.name}: {result.reason}")
            return result
        if program.baseline is not None:
            trivial = program.baseline(binary, Path(scratch) / "baseline")
            result.baselines = [run(allocator, trivial) for allocator in allocators]
        total = repeats * len(allocators)
        for round_number in range(repeats):
            shift = round_number % len(allocators)
            for allocator in [*allocators[shift:], *allocators[:shift]]:
                measured = run(allocator, invocation)
                result.runs.append(measured)
                figures = (f"{measured.wall_s:.2f} s, {measured.max_rss_bytes / 2**20:.1f} MiB" if measured.ok
                           else f"{measured.status}: {measured.reason}")
                say(f"programs: {program.name} {len(result.runs)}/{total} {allocator}: {figures}")
        if record:
            say(f"programs: {program.name}: recording its allocations ...")
            directory = trace_dir or Path(scratch)
            directory.mkdir(parents=True, exist_ok=True)
            try:
                result.recording = record_and_predict(invocation, directory / f"{program.name}.npz",
                                                      models if models is not None else default_models(),
                                                      record_tool)
            except (ValueError, OSError) as error:  # RecordError: no recorder, no allocation seen
                result.record_error = str(error)
                say(f"programs: {program.name}: not recorded: {error}")
    return result


def run_programs(programs: Sequence[Program], allocators: Sequence[str] | None = None, repeats: int = 3,
                 scale: float = 1.0, record: bool = False, models: Sequence[str] | None = None,
                 trace_dir: Path | None = None, timeout: float = 600.0,
                 progress: Progress | None = None, record_tool: str = "auto") -> ProgramsReport:
    """Measure every program under every allocator (None: all installed; glibc always); see the module docstring.

    repeats: timed runs per program and allocator; scale: input size (1.0: about 1.4 s a run under glibc here);
    record: also record each program's allocations and replay them through `models` (default `default_models()`),
    keeping the traces in `trace_dir` (None: a temporary directory), recorded by `record_tool` (auto: heaptrack,
    else valgrind: `workloads.record`); timeout: seconds per run.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    if not programs:
        raise ValueError("no program to run")
    chosen, skipped, libraries = resolve_allocators(allocators)
    packages = ["libc6", *(LIBRARIES[name][1] for name in chosen if name in LIBRARIES),
                *(program.package for program in programs)]
    report = ProgramsReport(chosen, repeats, scale, skipped_allocators=skipped, libraries=libraries,
                            meta=machine_meta(packages))
    for name, reason in skipped.items():
        (progress or (lambda line: None))(f"programs: allocator {name} skipped: {reason}")
    for program in programs:
        report.programs.append(run_program(program, chosen, repeats, scale, record, models, trace_dir, timeout,
                                           progress, record_tool))
    report.meta["load_average_end"] = list(os.getloadavg())
    return report


def write_files(report: ProgramsReport, out: Path, plots: bool = True) -> list[Path]:
    """OUT/programs.json, OUT/programs.md and (plots, when a program was measured) OUT/plots/programs.png."""
    from bench.programs.tables import markdown_text

    written = [report.save(out)]
    markdown = out / "programs.md"
    markdown.write_text(markdown_text(report))
    written.append(markdown)
    if plots:
        from bench.plots.programs import draw_programs

        figure = draw_programs(out, report)
        if figure is not None:
            written.append(figure)
    return written
