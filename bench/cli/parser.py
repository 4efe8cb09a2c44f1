"""The argument parser of `python -m bench`: every subcommand, its options and their types."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import api
from bench.cli.common import Parser
from bench.cli.escape import cmd_escape
from bench.cli.measure import cmd_fidelity, cmd_list, cmd_perf, cmd_real, cmd_replay, cmd_run
from bench.cli.pools import cmd_pools
from bench.cli.programs import cmd_programs
from bench.cli.safety import cmd_safety
from bench.cli.scaling import cmd_scaling
from bench.cli.stacks import cmd_stacks
from bench.cli.sweeps import cmd_compare, cmd_plot, cmd_sweep
from bench.cli.traces import (
    cmd_sizeclasses,
    cmd_trace_gen,
    cmd_trace_import,
    cmd_trace_info,
    cmd_trace_inject,
    cmd_trace_record,
)
from bench.pairs import paired
from workloads.stream import DEFAULT_CHUNK_ROWS

#: `bench.real.ALLOCATORS`, spelled out so that building the parser does not import numba (a test keeps them equal)
REAL_ALLOCATORS = ("glibc", "jemalloc", "tcmalloc", "mimalloc", "scudo")
#: `bench.fidelity.REALS`: the real sides of the pairing table's pairs (bench.pairs imports nothing), and Go
FIDELITY_REALS = (*(real for real, _ in paired()), "go")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be > 0")
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

    listing = commands.add_parser("list", help="list allocators, workloads, scenarios and metrics")
    listing.add_argument("--allocators", action="store_true", help="only allocators")
    listing.add_argument("--workloads", action="store_true", help="only workloads")
    listing.add_argument("--scenarios", action="store_true", help="only scenarios (each is a subcommand)")
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
    injecting = trace_commands.add_parser(
        "inject", help="turn a trace into a fault trace: misuse (double frees, overflows, ...) at given rates",
        description="Faults per trace row, each at a random eligible row (seeded): KIND[:key=N...]=RATE, "
        "comma-separated. Kinds and parameters: double_free[:delay=K][:reuse=1], invalid_free[:offset=O] "
        "(offset 1: a misaligned pointer), foreign_free[:offset=O], uaf_write[:offset=O], overflow[:k=K], "
        "underflow[:k=K], stale_free. The faults are kept beside the trace's rows (workloads/faults.py): "
        "ordinary replays ignore them.",
    )
    injecting.add_argument("input", type=Path, help="trace file (.npz or .csv)")
    injecting.add_argument("--output", "-o", required=True, help="output fault trace (.npz or .csv)")
    injecting.add_argument("--faults", required=True, help="e.g. double_free=0.001,overflow:k=8=0.0005")
    injecting.add_argument("--seed", type=int, default=0, help="seed of the fault placement (default 0)")
    injecting.set_defaults(func=cmd_trace_inject)
    info = trace_commands.add_parser("info", help="validate a trace file and summarise it")
    info.add_argument("trace", type=Path, help="trace file (.npz or .csv) or chunked trace directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_trace_info)

    sizes = commands.add_parser("sizeclasses", help="print a model's size-class table as CSV")
    sizes.add_argument("model", choices=("go", "tcmalloc", "jemalloc", "mimalloc"),
                       help="go (generated like Go's mksizeclasses), tcmalloc, jemalloc (its small bins) or "
                            "mimalloc (2.0's bins)")
    sizes.add_argument("--table", choices=("default", "legacy", "gperftools"), default=None,
                       help="tcmalloc table (default: the current google/tcmalloc default; gperftools: "
                            "gperftools 2.10's classes)")
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
        "real", help="replay a trace through the machine's real malloc (glibc, jemalloc, tcmalloc, mimalloc, scudo)",
        description="Replays in a child process with the Debian library preloaded (libjemalloc2, "
        "libtcmalloc-minimal4, libmimalloc2.0, libclang-rt-14-dev for Scudo; glibc is the default), driving "
        "malloc/realloc/free from a jitted loop. Reports throughput, peak RSS growth, the allocator's own "
        "statistics and the overhead factor. With --threads: one OS thread per trace thread (pthreads in a C "
        "replayer, the trace's cross-thread order kept per object), reporting throughput, waits and os_threads.",
    )
    real.add_argument("--trace", "-t", required=True, type=Path, help="trace file (.npz or .csv)")
    real.add_argument("--allocator", "-a", choices=(*REAL_ALLOCATORS, "go"), default="glibc",
                      help="real allocator (default glibc); go: the trace on the real Go heap (golang-go), "
                      "with the runtime's heap metrics")
    real.add_argument("--gogc", default="100", help="GOGC for --allocator go (default 100; off: never collect)")
    real.add_argument("--repeats", type=_positive, default=3, help="timed replays; the median counts (default 3)")
    real.add_argument("--touch", choices=("page", "first", "none"), default=None,
                      help="bytes written into each new block: one per 4 KiB page (default), the first (default with "
                      "--threads), none")
    real.add_argument("--threads", action="store_true",
                      help="one OS thread per trace thread (at most 256), not every row on one thread")
    real.add_argument("--json", action="store_true", help="print one JSON object (with --threads: os_threads too)")
    real.set_defaults(func=cmd_real)

    fidelity = commands.add_parser(
        "fidelity", help="models beside the real allocators they model, on the same traces",
        description="For each trace, each real allocator beside the model that imitates it (glibc / "
        "freelist:glibc, tcmalloc / tcmalloc:gperftools, jemalloc / jemalloc, mimalloc / mimalloc; a model not "
        "registered yet is 'no model yet'): clean-heap real peak footprint, model peak footprint, relative error, "
        "replay times and their ratio; real Go 1.19 vs go:gc (peak in-use and mapped heap, GC cycles, heap goal; "
        "median of 3 or more runs).",
    )
    fidelity.add_argument("traces", nargs="+", type=Path, help="trace files (.npz or .csv), e.g. from trace record")
    fidelity.add_argument("--repeats", type=_positive, default=3, help="timed replays per run (default 3)")
    fidelity.add_argument("--out", type=Path, default=None, help="also write fidelity.json and fidelity.png here")
    fidelity.add_argument("--real", action="append", choices=FIDELITY_REALS, default=None,
                          help="only this real side (repeatable; default all)")
    fidelity.add_argument("--settings", action="store_true",
                          help="also each model parameter beside the real option it stands for: jemalloc decay "
                          "off / 0 ms (MALLOC_CONF) beside jemalloc / jemalloc:immediate, mimalloc decommit off / "
                          "decommit delay 0 ms beside mimalloc / mimalloc:immediate")
    fidelity.set_defaults(func=cmd_fidelity)

    safety = commands.add_parser(
        "safety", help="which misuse (double frees, overflows, ...) each allocator catches, how late, at what cost",
        description="Injects faults into a workload's trace per seed (or takes a fault trace, --trace), runs each "
        "fault on a copy of the heap at its row and then a window of rows: models through their own checks, real "
        "allocators in a forked child per fault. Prints detection per allocator and fault class, and each "
        "allocator's slowdown and extra footprint against itself unhardened (real ones: against real glibc).",
    )
    safety.add_argument("--allocators", "-a", default=None, metavar="SPECS",
                        help="semicolon-separated model specs (default freelist:glibc, or none with --real)")
    safety.add_argument("--real", action="append", choices=REAL_ALLOCATORS, metavar="NAME",
                        help="a real allocator too (repeatable): " + ", ".join(REAL_ALLOCATORS))
    safety.add_argument("--trace", "-t", type=Path, default=None, help="a fault trace file (from trace inject)")
    safety.add_argument("--workload", "-w", default="lognormal", help="workload spec (default lognormal)")
    safety.add_argument("--faults", default=None,
                        help="faults to inject, as for trace inject (default: every fault class, 10 each per "
                        "20000 rows)")
    safety.add_argument("--ops", type=_positive, default=20_000, help="rows per trace (default 20000)")
    safety.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    safety.add_argument("--window", type=int, default=1000, help="rows replayed after each fault (default 1000)")
    safety.add_argument("--cost-ops", type=_positive, default=200_000,
                        help="rows of the clean trace the costs are measured on (default 200000)")
    safety.add_argument("--repeats", type=_positive, default=3, help="timed replays per cost (default 3)")
    safety.add_argument("--no-costs", action="store_true", help="skip the speed and footprint costs")
    safety.add_argument("--out", type=Path, default=Path("reports/safety"),
                        help="results directory (default reports/safety)")
    safety.add_argument("--no-plots", action="store_true", help="skip the plots")
    safety.add_argument("--json", action="store_true", help="print verdicts and costs as JSON")
    safety.set_defaults(func=cmd_safety)

    escaping = commands.add_parser(
        "escape", help="what Go's escape analysis saves (heap allocations, GC cycles, footprint, locality, speed)",
        description="Runs one Go-like program (workload goescape: frames of allocation sites whose escape is "
        "decided by Go's rules) per escape ratio and seed, with escape analysis and without it (every object on "
        "the heap), replays each heap trace through the allocators (default go:gc) and the stack frames through "
        "the frame model, and writes escape.json, escape.csv and plots/escape.png. --check-go compiles every "
        "rule case with go build -gcflags=-m and compares the compiler's decisions with the lab's.",
    )
    escaping.add_argument("--ratios", default="0/0.25/0.5/0.75/1",
                          help="escape ratios in 0..1, separated by / or , (default 0/0.25/0.5/0.75/1)")
    escaping.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    escaping.add_argument("--allocators", "-a", default=None, metavar="SPECS",
                          help="semicolon-separated heap allocator specs (default go:gc)")
    escaping.add_argument("--allocs", type=_positive, default=200_000,
                          help="allocation sites of the program (default 200000)")
    escaping.add_argument("--program", default="mu=5",
                          help="more goescape keys, comma-separated (default mu=5; see list --workloads and the "
                          "README: sites, depth, frame, globals, init, sizes and the size model's keys)")
    escaping.add_argument("--repeats", type=_positive, default=3, help="timed replays; the median counts (default 3)")
    escaping.add_argument("--out", type=Path, default=Path("reports/escape"),
                          help="results directory (default reports/escape)")
    escaping.add_argument("--no-plots", action="store_true", help="skip the plots")
    escaping.add_argument("--json", action="store_true", help="print the rows (or --check-go's verdicts) as JSON")
    escaping.add_argument("--check-go", action="store_true",
                          help="only compare the lab's escape rules with the Go compiler's (needs go; exit 1 on "
                          "a disagreement)")
    escaping.set_defaults(func=cmd_escape)

    stacks = commands.add_parser(
        "stacks", help="goroutine stacks: segmented (Go <= 1.2) vs contiguous (Go >= 1.3) on call-depth traces",
        description="Replays call-depth workloads (randomwalk, recursion, boundary: see `list --workloads`) on "
        "the stack models (segmented[:go1.1|keep=1|segment=N,...], contiguous[:go1.19|adaptive=1|shrink=0,...]), "
        "sweeps the boundary loop's depth to show the hot split, and, with the go toolchain, checks the "
        "contiguous model's stack size against real Go's for recursions of known frames.",
    )
    stacks.add_argument("--models", "-m", default=None, metavar="SPECS",
                        help="semicolon-separated stack model specs (default: segmented; segmented:go1.1; "
                        "segmented:keep=1; contiguous; contiguous:go1.19)")
    stacks.add_argument("--workloads", "-w", default=None, metavar="SPECS",
                        help="semicolon-separated call-depth workload specs, e.g. 'boundary:depth=61;recursion'")
    stacks.add_argument("--trace", "-t", type=Path, default=None,
                        help="a call-depth trace file (.npz or .csv: op,frame,goroutine) instead of workloads")
    stacks.add_argument("--ops", type=_positive, default=100_000, help="rows per generated trace (default 100000)")
    stacks.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    stacks.add_argument("--repeats", type=_positive, default=3, help="timed runs per cell; the median counts "
                        "(default 3)")
    realness = stacks.add_mutually_exclusive_group()
    realness.add_argument("--real", dest="real", action="store_const", const=True, default=None,
                          help="require the real Go check (default: run it when go is installed)")
    realness.add_argument("--no-real", dest="real", action="store_const", const=False, help="skip real Go")
    stacks.add_argument("--out", type=Path, default=Path("reports/stacks"),
                        help="results directory (default reports/stacks)")
    stacks.add_argument("--no-plots", action="store_true", help="skip the plots")
    stacks.add_argument("--json", action="store_true", help="print cells, hot-split points and real rows as JSON")
    stacks.set_defaults(func=cmd_stacks)
    pools = commands.add_parser(
        "pools", help="object pools, regions and arenas against the Go heap on request churn",
        description="Churn workloads (requests of --temps temporaries totalling about --request-bytes, freed when "
        "the request ends) replayed by each set-up: go:gc (the heap), objpool:inner=go:gc (a sync.Pool in front), "
        "the same with power-of-two pools, and region with 8 MiB chunks (Go's arena experiment). Reports, per "
        "grid point and set-up, the allocations that reached the heap and those avoided, GC cycles, peak "
        "footprint and speed; writes "
        "pools.json/csv, results.json/csv and plots/pools.png.",
    )
    pools.add_argument("--temps", default=None, metavar="N,N,...",
                       help="temporaries per request (default 10,100,1000)")
    pools.add_argument("--request-bytes", default=None, metavar="B,B,...",
                       help="bytes per request, units allowed (default 16KiB,256KiB)")
    pools.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    pools.add_argument("--ops", type=_positive, default=100_000, help="rows per trace (default 100000)")
    pools.add_argument("--repeats", type=_positive, default=3, help="timed replays per cell (default 3)")
    pools.add_argument("--threads", type=_positive, default=1, help="request streams, interleaved (default 1)")
    pools.add_argument("--order", choices=("lifo", "fifo", "random", "halves"), default="lifo",
                       help="order of the frees at a request's end (default lifo: newest first)")
    pools.add_argument("--sigma", type=float, default=1.0,
                       help="spread of the temporaries' log-normal sizes (default 1; 0: all of one size)")
    pools.add_argument("--setups", default=None, metavar="LABEL=SPEC;...",
                       help="set-ups, the first is the baseline (default heap=go:gc;pool=objpool:inner=go:gc;"
                       "pool-pow2=objpool:inner=go:gc,round=pow2;arena=region:chunk_size=8MiB,reserve=131120)")
    pools.add_argument("--out", type=Path, default=Path("reports/pools"), help="results directory (default "
                       "reports/pools)")
    pools.add_argument("--no-plots", action="store_true", help="skip the plot")
    pools.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    pools.add_argument("--json", action="store_true", help="print the mean figures per set-up and point as JSON")
    pools.set_defaults(func=cmd_pools)

    scaling = commands.add_parser(
        "scaling", help="real allocators on 1 and T OS threads beside the models' scalability proxies",
        description="For each multi-thread workload at T threads: its trace replayed through every real allocator "
        "(glibc, jemalloc, tcmalloc, mimalloc, scudo when installed) on T OS threads and, serialised, on one; the "
        "scaling T/1 with its spread over the repeats; beside it each model's proxies (shared-structure operations "
        "per 1000 rows, remote-free rate, false-shared lines) on the same two traces. Writes scaling.json, "
        "scaling.csv, scaling.md and scaling.png.",
    )
    scaling.add_argument("--workloads", "-w", default=None, metavar="SPECS",
                         help="semicolon-separated workload specs (default threads4;larson:rounds=1000000;"
                         "producer-consumer;xmalloc-test:threads=1; a spec naming its thread count keeps it)")
    scaling.add_argument("--threads", default="2", metavar="T,T,...",
                         help="thread counts, each >= 2 (default 2; the 1-thread side is the same trace on one thread)")
    scaling.add_argument("--ops", type=_positive, default=1_000_000, help="rows per trace (default 1000000)")
    scaling.add_argument("--seed", type=_seed, default=0, help="trace seed (default 0)")
    scaling.add_argument("--repeats", type=_positive, default=5,
                         help="timed replays per side after a warm-up; the median counts (default 5)")
    scaling.add_argument("--real", action="append", choices=REAL_ALLOCATORS, metavar="NAME",
                         help="only this real allocator (repeatable; default all five, missing ones listed as skipped)")
    scaling.add_argument("--models", default=None, metavar="SPECS",
                         help="semicolon-separated model specs (default freelist:glibc;tcmalloc;go;buddy)")
    scaling.add_argument("--touch", choices=("first", "page", "none"), default="first",
                         help="bytes written into each new block (default first: its first byte)")
    scaling.add_argument("--out", type=Path, default=Path("reports/latest/scaling"),
                         help="results directory (default reports/latest/scaling)")
    scaling.add_argument("--no-plots", action="store_true", help="skip the plot")
    scaling.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    scaling.add_argument("--json", action="store_true", help="print the report as JSON (os_threads per side)")
    scaling.set_defaults(func=cmd_scaling)

    programs = commands.add_parser(
        "programs", help="real programs (sqlite3, python3, cc1, xz, zstd, or -- CMD) under each real allocator",
        usage="python -m bench programs [NAME ...] [options] [-- CMD ARGS...]",
        description="Runs each program several times with each real allocator preloaded (glibc, jemalloc, "
        "tcmalloc, mimalloc, scudo; the ones not installed are skipped with their Debian package), measures wall, "
        "user and system time and peak RSS per run (wait4, as GNU time), checks with a preloaded probe that "
        "malloc really is the allocator's, and writes OUT/programs.json, programs.md and plots/programs.png "
        "(time and peak RSS normalised to glibc, min..max over the repeats). Named programs generate their "
        "input; -- CMD ARGS... measures your own command instead. --record also records each program's "
        "allocations (heaptrack, else valgrind) and puts the models' peak footprint and overhead factor beside "
        "the measured RSS.",
    )
    programs.add_argument("names", nargs="*", metavar="NAME",
                          help="named programs (default: all; see --list): sqlite3, python3, python3-pymalloc, "
                          "cc1, xz, zstd")
    programs.add_argument("--allocators", "-a", default=None, metavar="A,B,...",
                          help="comma-separated real allocators (default: every installed one; glibc, the "
                          "reference, is always measured)")
    programs.add_argument("--repeats", "-n", type=_positive, default=3,
                          help="timed runs per program and allocator (default 3)")
    programs.add_argument("--scale", type=_scale, default=1.0,
                          help="input size of the named programs (default 1: about 1.4 s a run under glibc on "
                          "2 cores)")
    programs.add_argument("--out", type=Path, default=Path("reports/latest/programs"),
                          help="results directory (default reports/latest/programs)")
    programs.add_argument("--record", action="store_true",
                          help="record each program's allocations once and replay them through the models")
    programs.add_argument("--models", default=None, metavar="SPECS",
                          help="with --record: semicolon-separated model specs (default: freelist:glibc; "
                          "tcmalloc; and every other general-purpose model)")
    programs.add_argument("--tool", choices=("auto", "heaptrack", "valgrind"), default="auto",
                          help="with --record: the recorder (default: heaptrack if installed, else valgrind, which "
                          "is tens of times slower: use a small --scale)")
    programs.add_argument("--timeout", type=float, default=600.0, help="seconds per run (default 600)")
    programs.add_argument("--name", default=None, help="label of the -- CMD program (default: its file name)")
    programs.add_argument("--list", action="store_true", help="list the named programs and exit")
    programs.add_argument("--no-plots", action="store_true", help="skip the figure")
    programs.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    programs.add_argument("--json", action="store_true", help="print the whole report as JSON")
    programs.set_defaults(func=cmd_programs, command=None)

    perf = commands.add_parser("perf", help="the README's performance table, measured on this machine")
    perf.add_argument("--allocators", "-a", default=None, metavar="SPECS",
                      help="semicolon-separated allocator specs (default: every registered allocator and "
                      "preset but the hardening presets :hardened and :scudo)")
    perf.add_argument("--ops", type=_positive, default=None,
                      help="benchmark trace rows (default 1000000; with --vs-real 2000000)")
    perf.add_argument("--repeats", type=_positive, default=None,
                      help="kernel runs; the median counts (default 7; with --vs-real 3 per side and round)")
    perf.add_argument("--no-compile", action="store_true", help="skip the cold-compile measurement")
    perf.add_argument("--vs-real", choices=REAL_ALLOCATORS, default=None, metavar="REAL",
                      help="side by side with a real allocator (glibc, jemalloc, tcmalloc, mimalloc, scudo) on one "
                      "trace, interleaved: median times and model/real ratios (default models go;tcmalloc;go:gc)")
    perf.add_argument("--workload", "-w", default=None,
                      help="with --vs-real: the trace's workload spec (default lognormal:live=100000)")
    perf.add_argument("--rounds", type=_positive, default=5,
                      help="with --vs-real: interleaved rounds (default 5)")
    perf.add_argument("--touch", choices=("none", "first", "page"), default="none",
                      help="with --vs-real: bytes the real replay writes into each new block (default none)")
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
                       help="semicolon-separated allocator specs (default: every registered allocator and "
                      "preset but the hardening presets :hardened and :scudo)")
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
                       help="add the machine's real allocators (glibc, and jemalloc/tcmalloc/mimalloc/scudo when "
                       "installed; the ones left out are named with their package) as cells real:NAME, with the "
                       "figures measurable for them (speed, footprint, overhead)")
    sweep.add_argument("--out", type=Path, default=Path("reports/latest"),
                       help="results directory (default reports/latest)")
    sweep.add_argument("--heapmap", default=None, metavar="ALLOCATOR@WORKLOAD",
                       help="cell drawn as a heap map (default: freelist:glibc on the first workload)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--no-plots", action="store_true", help="skip the plots and index.html")
    sweep.add_argument("--json", action="store_true", help="print the result rows as JSON")
    sweep.set_defaults(func=cmd_sweep)
    return parser
