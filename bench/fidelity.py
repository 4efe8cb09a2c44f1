"""`python -m bench fidelity TRACE...`: each model beside the real allocator it models, on the same traces.

Pairs (`PAIRS`, from the lab's one pairing table `bench.pairs`): real glibc <-> `freelist:glibc`,
real tcmalloc (gperftools 2.10's libtcmalloc_minimal) <-> `tcmalloc:gperftools` (gperftools' size
classes and page-heap growth).  For every trace and pair it replays the trace through the real
allocator in a child process (`bench.real.replay_real`) and through the model
(`bench.harness.measure`), and reports peak footprint and overhead factor side
by side with the model's relative error:

    error = (model peak footprint - real peak heap growth) / real peak heap growth

The real figure is the allocator's own measure of heap taken from the OS during
the replay (glibc: mallinfo2 arena + hblkhd; tcmalloc: heap_size - unmapped;
jemalloc: stats.mapped; mimalloc: committed bytes), measured by a small C
replayer (`bench.real.cleanheap`, `bench/real/replayer.c`) from a near-empty heap: inside
the Python child of `bench.real`, memory that Python and numba freed before the
loop would cover part of the replay and understate it (tcmalloc on a 192 MiB
trace: 163 MiB there, 217 MiB clean).  What remains of the start-up heap is
about 0.1-1 MiB (glibc's first arena, tcmalloc's first 1 MiB; jemalloc starts
with 6.4 MiB mapped), so traces with less live data than that are not
meaningful.  Timings still come from `bench.real`.

Not here: real jemalloc, mimalloc and Scudo.  Fidelity's rows are model/real
pairs, and the pairs are the models built to imitate a real allocator; Scudo
(LLVM's hardened allocator, `bench real --allocator scudo`, `sweep --real`) has
no model in the lab yet, so there is nothing to put beside it.  Its speed and
footprint against real glibc on the same trace come from `bench real` (README,
"Real programs and real allocators").

Real Go <-> `go:gc` (`bench.real.go`, the trace on the real Go 1.19 heap with GOGC=100 and GOMAXPROCS=1,
at least three runs, medians): the model's peak in-use heap (its `peak_heap_inuse` counter: pages of
spans in use) beside real Go's peak HeapInuse over the replayer's baseline, the model's peak footprint
(its mapped heap pages) beside real Go's peak mapped heap (in-use + free + released pages), GC cycles
beside GC cycles, and the last cycle's heap goal (real: over the baseline's heap objects, which the goal
counts once), with relative errors.  The model runs as `go:gc,go_version=V,roots=R`: V is the real
runtime's version (its size classes and span layouts), R comes from the real run
(`bench.real.go.model_roots`: the stacks and globals the real collector scanned, and the replayer's own
reference table), so that both goals count the same roots.  Real Go's peak is two figures: at
GOMAXPROCS=1 a mark now and then runs far past its goal (`bench.real.go.OVERRUN_PAST_GOAL`; gctrace shows the
background mark worker doing such a mark, where assists do the others), at random cycles, and the
next goal is set from the larger marked heap; the table counts the runs that had one and gives the median of
the runs that had none ("paced"), which is what the model, a pacer with no scheduler, predicts.  Skipped,
with the reason, when Go is not installed.

Speed against reality: the replay time of the `go` and `tcmalloc` models over
real glibc's replay time on the same trace, measured in the same run
(ratio <= 1.0: the model replays at least as fast as the real allocator).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import harness, pairs
from bench.table import format_bytes, render
from workloads.trace import Trace

PAIRS = pairs.paired()
#: The real sides `--real` chooses from: the pairs' real allocators and the Go runtime.
REALS = (*(real for real, _ in PAIRS), "go")
SPEED_MODELS = ("go", "tcmalloc")


def measure_trace(path: Path, repeats: int, reals: Sequence[str] = REALS) -> dict[str, Any]:
    from bench.real import RealAllocatorMissing, replay_real
    from bench.real.cleanheap import CompilerMissing, clean_heap_footprint

    trace = Trace.load(path)
    result: dict[str, Any] = {"trace": str(path), "rows": len(trace), "pairs": [], "speed": []}
    real_runs: dict[str, dict[str, Any]] = {}
    for real_name, model_spec in PAIRS:
        if real_name not in reals:
            continue
        try:
            real = real_runs[real_name] = replay_real(trace, real_name, repeats=repeats)
            clean = clean_heap_footprint(trace, real_name)
        except (RealAllocatorMissing, CompilerMissing) as error:
            result["pairs"].append({"real": real_name, "model": model_spec, "status": f"skipped: {error}"})
            continue
        model, _ = harness.measure(model_spec, trace, repeats=repeats)
        real_peak = clean["peak_heap_bytes"]  # heap growth in the clean C replayer, not in the Python child
        entry: dict[str, Any] = {"real": real_name, "model": model_spec, "status": model["status"],
                                 "peak_live_requested": real["peak_live_requested"],
                                 "real_peak_heap": real_peak, "real_measure": "clean heap: " + clean["measure"],
                                 "real_peak_heap_in_python": real["peak_heap_bytes"],
                                 "real_overhead_factor": real_peak / max(1, clean["peak_live_requested"]),
                                 "real_seconds": real["seconds_median"]}
        if model["status"] == "ok":
            entry.update(model_peak_footprint=model["peak_footprint"], model_overhead_factor=model["overhead_factor"],
                         model_seconds=model["seconds_median"])
            if real_peak > 0:
                entry["relative_error"] = (model["peak_footprint"] - real_peak) / real_peak
        else:
            entry["reason"] = model["reason"]
        result["pairs"].append(entry)
    if "go" in reals:
        result["go"] = _go_entry(trace, repeats)
    if "glibc" in real_runs:
        glibc_seconds = real_runs["glibc"]["seconds_median"]
        for spec in SPEED_MODELS:
            model, _ = harness.measure(spec, trace, repeats=repeats)
            if model["status"] == "ok":
                result["speed"].append({"model": spec, "model_seconds": model["seconds_median"],
                                        "glibc_seconds": glibc_seconds,
                                        "ratio": model["seconds_median"] / glibc_seconds})
    return result


def _go_entry(trace: Trace, repeats: int) -> dict[str, Any]:
    """Real Go beside `go:gc`: peak in-use heap (HeapInuse), mapped heap and GC cycles, with relative errors."""
    from bench.real.go import GoMissing, model_roots, replay_go_repeated

    try:
        real = replay_go_repeated(trace, repeats=max(3, repeats))
    except GoMissing as error:
        return {"status": f"skipped: {error}"}
    roots = model_roots(real)
    spec = f"go:gc,go_version={real['go_version']},roots={roots}"  # the real toolchain's size classes (go1.19.8)
    model, _ = harness.measure(spec, trace, repeats=repeats)
    inuse = real["peak_heap_inuse_over_baseline"]
    entry: dict[str, Any] = {
        "status": model["status"], "model": spec, "real_repeats": real["repeats"],
        "real_peak_heap_inuse": inuse, "real_peak_heap_inuse_min": real["peak_heap_inuse_over_baseline_min"],
        "real_peak_heap_inuse_max": real["peak_heap_inuse_over_baseline_max"],
        "real_peak_heap_mapped": real["peak_heap_mapped_bytes"], "real_gc_cycles": real["gc_cycles"],
        "real_gc_cycles_runs": real["gc_cycles_runs"], "real_mark_overruns_runs": real["mark_overruns_runs"],
        "real_paced_runs": real["paced_runs"],
        "real_paced_peak_heap_inuse": real["paced_peak_heap_inuse_over_baseline"],
        "real_heap_goal": real["final_heap_goal_bytes"] - real["baseline"]["heap_objects_bytes"],
        "go_version": real["go_version"],
    }
    if model["status"] != "ok":
        entry["reason"] = model["reason"]
        return entry
    cycles = int(model["counters"]["gc_cycles"])
    model_inuse = int(model["counters"]["peak_heap_inuse"])
    entry.update(model_peak_heap_inuse=model_inuse, model_peak_footprint=model["peak_footprint"],
                 model_gc_cycles=cycles, inuse_error=(model_inuse - inuse) / max(1, inuse),
                 paced_error=None if entry["real_paced_peak_heap_inuse"] is None
                 else (model_inuse - entry["real_paced_peak_heap_inuse"]) / max(1, entry["real_paced_peak_heap_inuse"]),
                 model_heap_goal=int(model["counters"]["heap_goal"]),
                 goal_error=(model["counters"]["heap_goal"] - entry["real_heap_goal"])
                 / max(1, entry["real_heap_goal"]),
                 mapped_error=(model["peak_footprint"] - real["peak_heap_mapped_bytes"])
                 / max(1, real["peak_heap_mapped_bytes"]),
                 cycles_error=(cycles - real["gc_cycles"]) / real["gc_cycles"] if real["gc_cycles"] else None)
    return entry


def measure_traces(paths: Sequence[Path], repeats: int = 3, out: Path | None = None,
                   progress: Callable[[str], None] | None = None, reals: Sequence[str] = REALS) -> list[dict[str, Any]]:
    """One result per trace file; with `out`, also OUT/fidelity.json and OUT/fidelity.png.  `reals` picks the
    real sides (REALS; the speed rows need glibc)."""
    unknown = [name for name in reals if name not in REALS]
    if unknown or not reals:
        raise ValueError(f"fidelity: unknown real side {unknown[0] if unknown else '(none)'!r} "
                         f"(known: {', '.join(REALS)})")
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file")
    results = []
    for path in paths:
        if progress is not None:
            progress(f"fidelity: {path} ...")
        results.append(measure_trace(Path(path), repeats, reals))
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: not a directory")
        out.mkdir(parents=True, exist_ok=True)
        (out / "fidelity.json").write_text(json.dumps(results, indent=1, default=str))
        draw(results, out / "fidelity.png")
    return results


def render_tables(results: Sequence[dict[str, Any]]) -> str:
    """The model-vs-real table and, when measured, the speed table."""
    lines, speed_lines = [], []
    for result in results:
        name = Path(result["trace"]).name
        for pair in result["pairs"]:
            if "relative_error" not in pair:
                lines.append([name, f"{pair['real']} / {pair['model']}", "-", "-", "-", "-", "-",
                              pair.get("reason") or pair["status"]])
                continue
            lines.append([
                name, f"{pair['real']} / {pair['model']}", format_bytes(pair["peak_live_requested"]),
                format_bytes(pair["real_peak_heap"]), format_bytes(pair["model_peak_footprint"]),
                f"{pair['real_overhead_factor']:.3f} / {pair['model_overhead_factor']:.3f}",
                f"{100 * pair['relative_error']:+.1f} %", pair["real_measure"].split(" (")[0],
            ])
        for entry in result["speed"]:
            speed_lines.append([name, entry["model"], f"{entry['model_seconds'] * 1e3:.2f}",
                                f"{entry['glibc_seconds'] * 1e3:.2f}", f"{entry['ratio']:.2f}"])
    text = render(["trace", "real / model", "peak live", "real peak heap", "model peak", "overhead real / model",
                   "error", "real measure"], lines, [False, False] + [True] * 5 + [False])
    go_lines = []
    for result in results:
        go = result.get("go")
        if not go:
            continue
        name = Path(result["trace"]).name
        if "inuse_error" not in go:
            go_lines.append([name] + ["-"] * 11 + [go.get("reason") or go["status"]])
            continue
        cycles_error = "-" if go["cycles_error"] is None else f"{100 * go['cycles_error']:+.0f} %"
        spread = f"{format_bytes(go['real_peak_heap_inuse_min'])}..{format_bytes(go['real_peak_heap_inuse_max'])}"
        overran = sum(1 for count in go["real_mark_overruns_runs"] if count)
        paced = go["real_paced_peak_heap_inuse"]
        go_lines.append([name, format_bytes(go["real_peak_heap_inuse"]), spread,
                         f"{overran} / {go['real_repeats']}", "-" if paced is None else format_bytes(paced),
                         format_bytes(go["model_peak_heap_inuse"]), f"{100 * go['inuse_error']:+.1f} %",
                         "-" if go["paced_error"] is None else f"{100 * go['paced_error']:+.1f} %",
                         format_bytes(go["real_peak_heap_mapped"]), format_bytes(go["model_peak_footprint"]),
                         f"{go['real_gc_cycles']} / {go['model_gc_cycles']}", cycles_error,
                         f"{format_bytes(go['real_heap_goal'])} / {format_bytes(go['model_heap_goal'])}",
                         f"{100 * go['goal_error']:+.1f} %"])
    if go_lines:
        text += ("\n\nreal Go 1.19 (GOGC=100, GOMAXPROCS=1; median of the runs, in-use over the replayer's baseline) "
                 "beside go:gc (given the real run's roots).  'overran': runs in which a mark ended over 15 % past its "
                 "goal (the scheduler's doing); 'paced': the median of the other runs, what a pacer without a "
                 "scheduler should match:\n")
        text += render(["trace", "real in use", "real runs", "overran", "paced", "go:gc in use", "error",
                        "vs paced", "real mapped", "go:gc mapped", "GC cycles real / model", "error",
                        "final goal real / model", "error"], go_lines,
                       [False, True, False, True, True, True, True, True, True, True, True, True, True, True])
    if speed_lines:
        text += "\n\n" + render(["trace", "model", "model ms", "real glibc ms", "model / glibc time"], speed_lines)
    return text


def draw(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, real, model = [], [], []
    for result in results:
        for pair in result["pairs"]:
            if "relative_error" in pair:
                labels.append(f"{Path(result['trace']).stem}\n{pair['model']}")
                real.append(pair["real_peak_heap"] / 2**20)
                model.append(pair["model_peak_footprint"] / 2**20)
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4.5))
    positions = range(len(labels))
    axis.bar([p - 0.2 for p in positions], real, width=0.4, label="real allocator (peak heap growth)")
    axis.bar([p + 0.2 for p in positions], model, width=0.4, label="model (peak footprint)")
    for position, (real_value, model_value) in enumerate(zip(real, model, strict=True)):
        error = (model_value - real_value) / real_value if real_value else float("nan")
        axis.annotate(f"{100 * error:+.0f} %", (position + 0.2, model_value), ha="center", va="bottom", fontsize=8)
    axis.set_xticks(list(positions), labels, fontsize=8)
    axis.set_ylabel("MiB")
    axis.set_title("Model fidelity: peak footprint, model vs the real allocator on the same trace")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
