"""The real Go runtime as a backend: a trace replayed on the Go heap, measured by the runtime's own metrics.

`replay_go(trace)` runs the Go replayer (bench/real/goreplayer/main.go: its
header says what each row does and which `runtime/metrics` it reads) with
GOGC and GOMAXPROCS set (100 and 1 by default, Debian's Go 1.19 toolchain),
and returns its figures: the peak in-use heap (Go's HeapInuse: object bytes
plus the free slots of spans that hold objects), the peak mapped heap
(in-use + free + released pages), GC cycles, the final heap goal, how many
cycles' marks overran their goals (`mark_overruns`, from the pacer's trace), and
the samples read every `sample_every` rows.  The trace's own share is the figure
minus the baseline read after a GC before the first row (`*_over_baseline`),
which holds the replayer's one table of references (8 B per object slot,
`table_bytes`: the collector must see the blocks' references, so the table
is on the Go heap and counts in the pacer's live heap, as a program's own
references would) and the runtime's own first allocations.

The replayer is built with `go build` on first use of its source into
~/.cache/allocator-lab/goreplayer/<sha256 of the source>/ (the Go build cache
beside it), like the C replayer (`bench.real.cleanheap`); `build_go` does that for
any one-file Go program (bench.real.gostacks's too).  Without Go:
`GoMissing` naming the Debian package (golang-go).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.real import RealReplayFailed

SOURCE = Path(__file__).with_name("goreplayer") / "main.go"
CACHE_ROOT = Path.home() / ".cache" / "allocator-lab" / "goreplayer"
#: Samples of the runtime's metrics per replay by default (every rows // this rows).
DEFAULT_SAMPLES = 1000
#: GODEBUG=gcpacertrace=1's end-of-cycle line: "... for HEAP+STACK+GLOBALS B work ...".
PACER_WORK = re.compile(r" for (\d+)\+(\d+)\+(\d+) B work")
#: The same line's "in TRIGGERED B -> LIVE B (∆goal EXCESS": the heap when the mark started and when it ended,
#: and how far the end passed the goal.
PACER_HEAP = re.compile(r" in (\d+) B -> (\d+) B \(\S*goal (-?\d+)")  # \S*: the delta sign, whatever the locale
#: A mark overran when it ended more than this fraction past its goal.  Measured on this machine (7 traces x 4
#: runs, 1300 cycles): paced marks end at 0.86-1.04 x the goal; at GOMAXPROCS=1 a mark now and then ends at
#: 1.19-1.41 x instead (the mutator allocated 2.2-3 x the runway during it), in 0-3 of 60-80 cycles, a different
#: number each run; the next goal is set from the larger marked heap, so that run's peak in-use heap is 1.3-1.5 x
#: higher.  The gap is wide: the only marks between were two first cycles of a short trace (1.11, 1.14).
OVERRUN_PAST_GOAL = 0.15


class GoMissing(RuntimeError):
    """The Go toolchain is not installed (the message names the Debian package)."""


def goreplayer_binary() -> Path:
    """Path of the built Go replayer, building bench/real/goreplayer/main.go with `go build` on first use."""
    return build_go(SOURCE, "goreplayer")


def build_go(source: Path, name: str, gcflags: str | None = None) -> Path:
    """Path of the binary `name` built from one Go file with `go build` (module `name`, Go 1.19, no cgo) into
    ~/.cache/allocator-lab/NAME/<sha256 of the source and flags>/, on first use; later calls find it there.
    With `gcflags` (e.g. "-S") the compiler's output is kept beside the binary as `build.log`
    (`build_log(binary)`).  GoMissing without the toolchain, RealReplayFailed if the build fails."""
    text = source.read_bytes()
    directory = CACHE_ROOT.parent / name / hashlib.sha256(text + (gcflags or "").encode()).hexdigest()[:16]
    binary = directory / name
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise GoMissing("real Go: the go toolchain is not installed; install the Debian package: "
                        "apt-get install -y golang-go")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="alloclab-gobuild-") as build:
        (Path(build) / "main.go").write_bytes(text)
        (Path(build) / "go.mod").write_text(f"module {name}\n\ngo 1.19\n")
        partial = directory / f"{name}.{os.getpid()}.tmp"
        env = {**os.environ, "GOCACHE": str(CACHE_ROOT / "gocache"), "GOFLAGS": "-mod=mod", "GO111MODULE": "on",
               "CGO_ENABLED": "0"}
        env.setdefault("HOME", str(Path.home()))
        flags = [f"-gcflags={name}={gcflags}"] if gcflags else []
        completed = subprocess.run([go, "build", *flags, "-o", str(partial), "."], cwd=build, env=env,
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RealReplayFailed(f"real Go: go build failed on {source}:\n{completed.stderr[-4000:]}")
        if gcflags:
            log = directory / f"build.{os.getpid()}.tmp"
            log.write_text(completed.stderr)
            os.replace(log, directory / "build.log")
        os.replace(partial, binary)  # atomic: concurrent builders leave one complete binary
    return binary


def build_log(binary: Path) -> str:
    """The compiler output kept by `build_go(..., gcflags=...)` beside `binary`."""
    return (binary.parent / "build.log").read_text()


def replay_go(trace: Any, gogc: int | str = 100, gomaxprocs: int = 1, samples: int = DEFAULT_SAMPLES,
              timeout: float | None = 1800.0) -> dict[str, Any]:
    """Replay `trace` on the real Go heap; return the runtime's figures (module docstring)."""
    if not hasattr(trace, "slots") or not hasattr(trace, "op"):
        raise TypeError(f"replay_go() needs a Trace, got {type(trace).__name__}")
    if not len(trace):
        raise ValueError("real Go: the trace has no rows")
    if not (gogc == "off" or (isinstance(gogc, int) and not isinstance(gogc, bool) and gogc > 0)):
        raise ValueError(f"real Go: GOGC must be a positive integer or 'off', got {gogc!r}")
    if isinstance(gomaxprocs, bool) or not isinstance(gomaxprocs, int) or gomaxprocs < 1:
        raise ValueError(f"real Go: GOMAXPROCS must be a positive integer, got {gomaxprocs!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"real Go: samples must be a positive integer, got {samples!r}")
    binary = goreplayer_binary()
    every = max(1, len(trace) // samples)
    with tempfile.TemporaryDirectory(prefix="alloclab-go-") as scratch:
        paths = [Path(scratch) / name for name in ("op.bin", "obj.bin", "size.bin")]
        np.ascontiguousarray(trace.op, dtype=np.int8).tofile(paths[0])
        np.ascontiguousarray(trace.slots, dtype=np.int64).tofile(paths[1])
        np.ascontiguousarray(trace.size, dtype=np.int64).tofile(paths[2])
        env = {**os.environ, "GOGC": str(gogc), "GOMAXPROCS": str(gomaxprocs), "GODEBUG": "gcpacertrace=1"}
        try:
            done = subprocess.run([str(binary), *map(str, paths), str(max(trace.n_slots, 1)), str(every)],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RealReplayFailed(f"real Go: the replay did not finish within {timeout} s") from None
    if done.returncode != 0:
        raise RealReplayFailed(f"real Go: the replayer failed (exit status {done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    work = PACER_WORK.findall(done.stderr)  # one line per cycle: heap + stack + globals scan work
    result["gc_stack_scan_bytes"] = int(work[-1][1]) if work else 0
    result["gc_globals_scan_bytes"] = int(work[-1][2]) if work else 0
    result["mark_overruns"] = mark_overruns(done.stderr)
    baseline = result["baseline"]
    baseline_inuse = baseline["heap_objects_bytes"] + baseline["heap_unused_bytes"]
    result["baseline_heap_inuse_bytes"] = baseline_inuse
    result["peak_heap_inuse_over_baseline"] = result["peak_heap_inuse_bytes"] - baseline_inuse
    result["peak_heap_objects_over_baseline"] = result["peak_heap_objects_bytes"] - baseline["heap_objects_bytes"]
    result["sample_every"] = every
    result["binary"] = str(binary)
    return result


def mark_overruns(pacer_trace: str) -> int:
    """How many cycles of a GODEBUG=gcpacertrace=1 log had a mark that overran (`OVERRUN_PAST_GOAL`)."""
    overruns = 0
    for _triggered, live, excess in PACER_HEAP.findall(pacer_trace):
        goal = int(live) - int(excess)
        overruns += int(excess) > OVERRUN_PAST_GOAL * goal
    return overruns


def replay_go_repeated(trace: Any, repeats: int = 3, gogc: int | str = 100) -> dict[str, Any]:
    """`replay_go` `repeats` times: the median of each figure, and the in-use heap's spread over the runs.

    One run's peak is set by its worst cycle, and a mark that overruns its goal (`OVERRUN_PAST_GOAL`: the
    scheduler's doing, at random cycles) raises it by a third or more, so one run is not a measurement.
    Beside the medians: the runs whose marks all kept to their goals (`paced_runs`) and their median peak
    (`paced_peak_heap_inuse_over_baseline`, None when every run had an overrun), which a model of the pacer
    without a scheduler should match."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"real Go: repeats must be a positive integer, got {repeats!r}")
    runs = [replay_go(trace, gogc=gogc) for _ in range(repeats)]
    inuse = sorted(run["peak_heap_inuse_over_baseline"] for run in runs)
    result = dict(runs[0])
    result.pop("samples", None)
    for key in ("peak_heap_inuse_bytes", "peak_heap_inuse_over_baseline", "peak_heap_mapped_bytes",
                "peak_heap_objects_bytes", "gc_cycles", "final_heap_goal_bytes", "gc_stack_scan_bytes",
                "gc_globals_scan_bytes", "baseline_heap_inuse_bytes"):
        result[key] = statistics.median_low(sorted(run[key] for run in runs))
    paced = sorted(run["peak_heap_inuse_over_baseline"] for run in runs if not run["mark_overruns"])
    result.update(repeats=repeats, peak_heap_inuse_over_baseline_min=inuse[0],
                  peak_heap_inuse_over_baseline_max=inuse[-1],
                  gc_cycles_runs=[run["gc_cycles"] for run in runs],
                  mark_overruns_runs=[run["mark_overruns"] for run in runs], paced_runs=len(paced),
                  paced_peak_heap_inuse_over_baseline=statistics.median_low(paced) if paced else None)
    return result


def model_roots(result: dict[str, Any], gogc: int = 100) -> int:
    """The `roots` (scan work) that gives `go:gc` the real run's goal: the stacks and globals the real
    collector scanned, plus the replayer's own live heap at the start (its reference table and the runtime's
    first objects: `baseline_heap_objects`, T), which the trace does not hold.  Real Go's goal is
    (M + T) + (M + T + stacks + globals) * GOGC/100 for a trace heap M; the model's is M + (M + roots) *
    GOGC/100, equal for roots = stacks + globals + T * (100 + GOGC) / GOGC."""
    table = result["baseline"]["heap_objects_bytes"]
    return int(result["gc_stack_scan_bytes"] + result["gc_globals_scan_bytes"] + table * (100 + gogc) // gogc)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The figures of `replay_go` as label/value lines for the console."""
    mib = 1 << 20
    return [
        f"{'runtime':<24}{result['go_version']} (GOGC={result['gogc']}, GOMAXPROCS={result['gomaxprocs']})",
        f"{'rows':<24}{result['rows']:,}",
        f"{'peak in-use heap':<24}{result['peak_heap_inuse_bytes'] / mib:.2f} MiB (HeapInuse; "
        f"{result['peak_heap_inuse_over_baseline'] / mib:.2f} MiB over the baseline)",
        f"{'peak mapped heap':<24}{result['peak_heap_mapped_bytes'] / mib:.2f} MiB",
        f"{'peak object bytes':<24}{result['peak_heap_objects_bytes'] / mib:.2f} MiB",
        f"{'GC cycles':<24}{result['gc_cycles']} ({result['mark_overruns']} with a mark that ended over "
        f"{100 * OVERRUN_PAST_GOAL:.0f} % past its goal)",
        f"{'final heap goal':<24}{result['final_heap_goal_bytes'] / mib:.2f} MiB",
        f"{'GC roots':<24}{result['gc_stack_scan_bytes']:,} B of stacks and {result['gc_globals_scan_bytes']:,} B "
        f"of globals scanned (the last cycle)",
        f"{'baseline':<24}{result['baseline_heap_inuse_bytes'] / mib:.2f} MiB in use before the first row "
        f"(the replayer's reference table: {result['table_bytes']:,} B)",
    ]
