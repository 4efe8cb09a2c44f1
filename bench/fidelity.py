"""`python -m bench fidelity TRACE...`: each model beside the real allocator it models, on the same traces.

Pairs (`PAIRS`, one `Pair` per real allocator that has a model in the lab's one pairing table, `bench.pairs`):

    real glibc      <-> freelist:glibc
    real tcmalloc   <-> tcmalloc:gperftools   (gperftools 2.10's libtcmalloc_minimal: its size classes and heap growth)
    real jemalloc   <-> jemalloc
    real mimalloc   <-> mimalloc

Settings (`--settings`, `SETTING_PAIRS` from `bench.pairs.SETTING_PAIRS`): each model parameter that
stands for a real option beside the real allocator run with that option in its environment:

    real jemalloc, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1  <-> jemalloc             (decay=never)
    real jemalloc, MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0    <-> jemalloc:immediate
    real mimalloc, MIMALLOC_ALLOW_DECOMMIT=0                        <-> mimalloc             (purge=never)
    real mimalloc, MIMALLOC_DECOMMIT_DELAY=0                        <-> mimalloc:immediate

The real defaults purge on a timer (jemalloc's 10 s decay, mimalloc's 25 ms decommit delay) that a replay
without a clock cannot follow: how much a default real run purged depends on how long the replay took.
With the timer at 0 or off, the real allocator does what the model's setting does, and the error
measures the rest of the model.

A pair whose model spec is not registered (`allocators.registry.parse_spec` refuses it: no such
allocator or preset yet) is a row with status "no model yet" and its reason; its real side is still
measured, so the table shows what the model will have to match.  A missing real library is a row
"skipped" with the Debian package to install; a real replay that fails (malloc returned NULL, a crash, a
timeout) is a row "real NAME failed: ..." and the other pairs are still measured.

For every trace and pair: the real allocator's peak footprint (`bench.real.cleanheap.clean_heap_footprint`:
a small C replayer, `bench/real/replayer.c`, replaying the trace from a near-empty heap; one rule per
allocator turns its statistics into the bytes held from the OS at the peak, see that module's
docstring: glibc and tcmalloc their statistic at the peak minus the bytes in use at start, jemalloc the
growth of its active and dirty pages, mimalloc the growth of anonymous RSS, since its commit statistic
moves in 32 MiB segments; the median of `repeats` such replays, with their range: real jemalloc's peak
moves by MiB between identical runs, as its 10 s decay curve purges some dirty pages or none before the peak),
beside it that replay's anonymous RSS growth (one measure for every allocator, a cross-check),
the model's peak footprint (`bench.harness.measure`), and

    error = (model peak footprint - real peak footprint) / real peak footprint

with the replay times: the real one is `bench.real.replay_real` (a Python child calling the allocator
from a jitted loop, median of `repeats`), the model's is the harness's median, and the time ratio is
model seconds / real seconds (<= 1.0: the model replays at least as fast as the allocator it imitates).
The real footprint is not read inside that Python child: memory Python and numba freed before the loop
covers part of the replay there (tcmalloc on a 192 MiB trace: 163 MiB there, 217 MiB clean).  Traces with
less than a few MiB live are not meaningful (start-up reservations and page granularity dominate).

Not here: Scudo (LLVM's hardened allocator, `bench real --allocator scudo`, `sweep --real`) has no model
in the lab, so there is nothing to put beside it.

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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocators.errors import BadParameter
from bench import harness, pairs
from bench.table import format_bytes, render
from workloads.trace import Trace


@dataclass(frozen=True)
class Pair:
    """A real allocator and the model spec that imitates it; a setting pair also sets an option (`setting`, its
    short name) in the real allocator's `environment`."""

    real: str
    model: str
    setting: str = ""
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def real_label(self) -> str:
        """The real side as the table shows it: `mimalloc (decommit 0 ms)` for a setting pair."""
        return f"{self.real} ({self.setting})" if self.setting else self.real


#: One row per real allocator that has a model (`bench.pairs.MODEL_OF_REAL`; Scudo has none).
PAIRS = tuple(Pair(real, model) for real, model in pairs.paired())
#: `--settings`: each model parameter beside the real option it stands for (`bench.pairs.SETTING_PAIRS`).
SETTING_PAIRS = tuple(Pair(real, model, setting, environment)
                      for real, setting, environment, model in pairs.SETTING_PAIRS)
#: The real sides `--real` chooses from: the pairs' real allocators and the Go runtime.
REALS = (*(pair.real for pair in PAIRS), "go")
#: The error a model should stay within on traces with a few MiB or more live (issue 14).
TARGET = 0.10


def model_spec(pair: Pair) -> tuple[str | None, str]:
    """(the spec to run, "") when the pair's model is registered, else (None, "no model yet: REASON")."""
    import allocators  # noqa: F401  (registration)
    from allocators import registry

    try:
        registry.parse_spec(pair.model)
    except BadParameter as error:
        return None, f"no model yet: {str(error).split(' (known')[0]}"
    return pair.model, ""


def measure_pair(trace: Trace, pair: Pair, repeats: int) -> dict[str, Any]:
    """One row: the real side's clean-heap footprint and replay time, the model's, the error and time ratio."""
    from bench.real import RealAllocatorMissing, RealOutOfMemory, RealReplayFailed, replay_real
    from bench.real.cleanheap import CompilerMissing, clean_heap_footprint

    spec, note = model_spec(pair)
    environment = dict(pair.environment)
    entry: dict[str, Any] = {"real": pair.real, "real_label": pair.real_label, "real_environment": environment,
                             "model": spec or pair.model, "note": note}
    try:
        cleans = sorted((clean_heap_footprint(trace, pair.real, environment=environment)
                         for _ in range(max(1, repeats))), key=lambda run: run["peak_footprint"])
        real = replay_real(trace, pair.real, repeats=repeats, environment=environment)
    except (RealAllocatorMissing, CompilerMissing) as error:
        entry["status"] = f"skipped: {error}"
        return entry
    except (RealOutOfMemory, RealReplayFailed) as error:  # this pair fails, the others are still measured
        entry["status"] = f"real {pair.real} failed: {str(error)[:300]}"
        return entry
    clean = cleans[(len(cleans) - 1) // 2]  # the median run (the lower middle of an even count)
    real_peak = clean["peak_footprint"]
    entry.update(peak_live_requested=clean["peak_live_requested"], real_peak_heap=real_peak,
                 real_peak_heap_min=cleans[0]["peak_footprint"], real_peak_heap_max=cleans[-1]["peak_footprint"],
                 real_clean_runs=len(cleans),
                 real_measure=clean["footprint_measure"], real_rss_anon_growth=clean["rss_anon_peak_growth"],
                 real_statistic_growth=clean["peak_heap_bytes"], real_statistic=clean["measure"],
                 real_overhead_factor=real_peak / max(1, clean["peak_live_requested"]),
                 real_seconds=real["seconds_median"])
    if spec is None:
        entry["status"] = "no model yet"
        return entry
    model, _ = harness.measure(spec, trace, repeats=repeats)
    entry["status"] = model["status"]
    if model["status"] != "ok":
        entry["reason"] = model["reason"]
        return entry
    entry.update(model_peak_footprint=model["peak_footprint"], model_overhead_factor=model["overhead_factor"],
                 model_seconds=model["seconds_median"],
                 time_ratio=model["seconds_median"] / real["seconds_median"] if real["seconds_median"] else None)
    if real_peak > 0:
        entry["relative_error"] = (model["peak_footprint"] - real_peak) / real_peak
    return entry


def measure_trace(path: Path, repeats: int, reals: Sequence[str] = REALS, settings: bool = False) -> dict[str, Any]:
    """Every pair whose real side is in `reals` on the trace at `path` (with `settings`, the SETTING_PAIRS too),
    and real Go when "go" is."""
    trace = Trace.load(path)
    chosen = [pair for pair in (*PAIRS, *(SETTING_PAIRS if settings else ())) if pair.real in reals]
    result: dict[str, Any] = {"trace": str(path), "rows": len(trace),
                              "pairs": [measure_pair(trace, pair, repeats) for pair in chosen]}
    if "go" in reals:
        result["go"] = _go_entry(trace, repeats)
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
                   progress: Callable[[str], None] | None = None, reals: Sequence[str] = REALS,
                   settings: bool = False) -> list[dict[str, Any]]:
    """One result per trace file; with `out`, also OUT/fidelity.json and OUT/fidelity.png.  `reals` picks the
    real sides (REALS); `settings` adds the SETTING_PAIRS (each model parameter beside the real option)."""
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
        results.append(measure_trace(Path(path), repeats, reals, settings))
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: not a directory")
        out.mkdir(parents=True, exist_ok=True)
        (out / "fidelity.json").write_text(json.dumps(results, indent=1, default=str))
        draw(results, out / "fidelity.png")
    return results


def render_tables(results: Sequence[dict[str, Any]]) -> str:
    """The model-vs-real table (one row per trace and pair, notes under it) and, when measured, real Go's."""
    lines: list[list[str]] = []
    notes: list[str] = []
    measures: dict[str, str] = {}
    settings: dict[str, str] = {}

    def mark(note: str) -> str:
        if not note:
            return ""
        if note not in notes:
            notes.append(note)
        return f" ({notes.index(note) + 1})"

    for result in results:
        name = Path(result["trace"]).name
        for pair in result["pairs"]:
            real_label, model = pair.get("real_label", pair["real"]), pair["model"]
            if "real_peak_heap" not in pair:
                lines.append([name, real_label, model + mark(pair["status"])] + ["-"] * 10)
                continue
            measures.setdefault(pair["real"], pair["real_measure"])
            if pair.get("real_environment"):
                settings.setdefault(pair["real_label"], " ".join(f"{key}={value}"
                                                                 for key, value in pair["real_environment"].items()))
            spread = f"{format_bytes(pair['real_peak_heap_min'])}..{format_bytes(pair['real_peak_heap_max'])}"
            figures = [format_bytes(pair["peak_live_requested"]), format_bytes(pair["real_peak_heap"]), spread,
                       format_bytes(pair["real_rss_anon_growth"])]
            seconds = f"{pair['real_seconds']:.3f}"
            if "model_peak_footprint" not in pair:
                why = pair["note"] if pair["status"] == "no model yet" else pair.get("reason") or pair["status"]
                lines.append([name, real_label, model + mark(why), *figures, pair["status"], "-", "-", seconds, "-",
                              "-"])
                continue
            error = pair.get("relative_error")
            verdict = "-" if error is None else ("yes" if abs(error) <= TARGET else "no")
            lines.append([name, real_label, model + mark(pair["note"]), *figures,
                          format_bytes(pair["model_peak_footprint"]),
                          "-" if error is None else f"{100 * error:+.1f} %", verdict, seconds,
                          f"{pair['model_seconds']:.3f}",
                          "-" if pair["time_ratio"] is None else f"{pair['time_ratio']:.2f}"])
    text = render(["trace", "real", "model", "peak\nlive", "real\npeak", "real peak\nmin..max", "real anon\nRSS growth",
                   "model\npeak", "error", "within\n10 %", "real\nreplay s", "model\nreplay s", "time\nmodel / real"],
                  lines, [False, False, False] + [True] * 10, keep=3)
    text += "".join(f"\n({number}) {note}" for number, note in enumerate(notes, 1))
    if measures:
        text += ("\n\nreal peak (clean-heap C replayer, bench.real.cleanheap; the median of --repeats runs, their "
                 "range beside it): "
                 + "; ".join(f"{real}: {how}" for real, how in measures.items())
                 + ".  real anon RSS growth: the same replay's anonymous resident growth (a cross-check).  "
                 "real replay s: bench.real's timed replay (median).")
    if settings:
        text += ("\n\nsettings (--settings: the real allocator with an option set in its environment, beside the "
                 "model parameter that stands for it): "
                 + "; ".join(f"{label}: {how}" for label, how in settings.items()) + ".")
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
    return text


def draw(results: list[dict[str, Any]], path: Path) -> None:
    """One panel per trace: per pair, the real peak footprint beside the model's (horizontal bars), the
    error at the model's bar, the 10 % target band around the real value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for result in results:
        rows = [(f"{pair.get('real_label', pair['real'])} / {pair['model']}", pair["real_peak_heap"] / 2**20,
                 pair.get("model_peak_footprint", 0) / 2**20) for pair in result["pairs"] if "real_peak_heap" in pair]
        if rows:
            panels.append((Path(result["trace"]).stem, rows))
    if not panels:  # every pair skipped or failed: say so rather than draw empty axes
        figure, axis = plt.subplots(figsize=(6, 1.5))
        axis.axis("off")
        axis.text(0.5, 0.5, "no pair measured (see fidelity.json for why)", ha="center", va="center", fontsize=9)
        figure.savefig(path, dpi=110)
        plt.close(figure)
        return
    heights = [max(1, len(rows)) for _, rows in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 1.0 + 0.42 * sum(heights) + 0.5 * len(panels)),
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    for axis, (name, rows) in zip(axes[:, 0], panels, strict=True):
        positions = range(len(rows))
        real = [real_value for _, real_value, _ in rows]
        model = [model_value for _, _, model_value in rows]
        for position, real_value in enumerate(real):  # the 10 % target band around the real value
            axis.fill_betweenx([position - 0.42, position + 0.42], real_value * (1 - TARGET), real_value * (1 + TARGET),
                               color="#eeeeee", zorder=0)
        axis.barh([p - 0.19 for p in positions], real, height=0.38, color="#555555",
                  label="real allocator (clean-heap peak footprint, median)")
        axis.barh([p + 0.19 for p in positions], model, height=0.38, color="#1f77b4", label="model (peak footprint)")
        for position, (real_value, model_value) in enumerate(zip(real, model, strict=True)):
            if not model_value:
                axis.text(0, position + 0.19, " no model yet", va="center", fontsize=7)
                continue
            error = (model_value - real_value) / real_value if real_value else float("nan")
            axis.text(max(real_value, model_value) * 1.01, position + 0.19, f"{100 * error:+.1f} %", va="center",
                      fontsize=7.5, color="#aa0000" if abs(error) > TARGET else "#333333")
        axis.set_yticks(list(positions), [label for label, _, _ in rows], fontsize=7.5)
        axis.invert_yaxis()
        axis.set_xlim(0, max(real + model + [1e-9]) * 1.18)
        axis.set_title(name, fontsize=9, loc="left")
        axis.tick_params(axis="x", labelsize=7)
        axis.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes[-1, 0].set_xlabel("peak footprint (MiB); grey band: within 10 % of the real value")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    top = 1 - 0.9 / figure.get_figheight()  # room for the title and the legend, in inches
    figure.suptitle("Model fidelity: peak footprint, model beside the real allocator on the same trace", fontsize=10,
                    y=1 - 0.15 / figure.get_figheight())
    figure.legend(handles, labels, loc="upper center", ncol=2, fontsize=7.5, frameon=False,
                  bbox_to_anchor=(0.5, 1 - 0.4 / figure.get_figheight()))
    figure.tight_layout(rect=(0, 0, 1, top))
    figure.savefig(path, dpi=110)
    plt.close(figure)
