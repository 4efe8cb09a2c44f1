"""The figure of a programs report (`python -m bench programs --out OUT`): OUT/plots/programs.png.

Three panels, after mimalloc-bench's bar charts: wall time over glibc's (top), CPU time (user + sys) over glibc's
(middle: on a shared machine a run's wall time also holds its waits for a core, its CPU time does not) and peak RSS
over glibc's (bottom).
One group of bars per program, one bar per real allocator in a fixed color (glibc grey, the reference), its
height the median over the repeats of each run divided by glibc's median run, its error bar the min..max of those
ratios (`bench.programs.summary.normalised`), its value written above it.  A dashed line marks 1.0 (as fast, or
as small, as glibc); below it is better.  The x labels give glibc's own median wall and CPU time and peak RSS, the units
the ratios scale.  A program or allocator without ok runs has no bar (its cell says n/a).  The title names the repeats,
the machine's cores and CPU and the load average, since the machine may be shared.

What to look at: bars below the line in both panels (faster and smaller); an allocator that buys time with memory
(a low time bar over a tall RSS bar); error bars that overlap 1.0 (no difference the repeats can tell); a wall bar
far from its CPU bar (the machine was busy: trust the CPU panel).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from bench.plots.style import RC, new_figure, save_figure
from bench.programs.results import ProgramsReport, load_report
from bench.table import format_bytes

#: One color per real allocator, the same in every figure; glibc, the reference, grey.
COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#ff7f0e", "mimalloc": "#2ca02c",
          "scudo": "#d62728"}
PANELS = (("wall_s", "wall time / glibc's", "time: each run's wall time over glibc's median run (lower: faster)"),
          ("cpu_s", "user+sys time / glibc's",
           "CPU time (user + sys), which a busy machine's waits for a core leave out (lower: faster)"),
          ("max_rss_bytes", "peak RSS / glibc's",
           "memory: each run's peak RSS over glibc's median run (lower: smaller)"))


def draw_programs(out: str | Path, report: ProgramsReport | None = None) -> Path | None:
    """Draw OUT/plots/programs.png from OUT/programs.json (or `report`); None when no program was measured."""
    out = Path(out)
    report = report or load_report(out)
    programs = report.measured()
    if not programs:
        return None
    allocators = report.allocators
    path = out / "plots" / "programs.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    width = 0.8 / len(allocators)
    with matplotlib.rc_context(RC):
        figure = new_figure(max(6.5, 1.35 * len(programs) * max(1.0, len(allocators) / 4) + 2.0), 9.6)
        axes = figure.subplots(len(PANELS), 1, sharex=True)
        for axis, (measure, label, title) in zip(axes, PANELS, strict=True):
            top = 1.0
            for index, allocator in enumerate(allocators):
                for position, program in enumerate(programs):
                    x = position - 0.4 + width * (index + 0.5)
                    spread = program.ratio(allocator, measure)
                    if spread is None:
                        axis.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
                        continue
                    axis.bar(x, spread.median, width * 0.92, color=COLORS.get(allocator, "#444444"),
                             yerr=[[spread.median - spread.low], [spread.high - spread.median]],
                             error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"},
                             label=allocator if position == 0 else None)
                    axis.text(x, spread.high, f"{spread.median:.2f}", ha="center", va="bottom", fontsize=6)
                    top = max(top, spread.high)
            axis.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
            axis.set_ylim(0, top * 1.15)
            axis.set_ylabel(label)
            axis.set_title(f"{title}; bar: median, whiskers: min..max over the runs", fontsize=8, loc="right")
            axis.grid(True, axis="y", alpha=0.3)
        axes[0].legend(title="allocator (preloaded)", ncols=min(5, len(allocators)), loc="lower left",
                       bbox_to_anchor=(0.0, 1.0), frameon=False)
        axes[-1].set_xticks(range(len(programs)), [_label(program, report) for program in programs])
        axes[-1].set_xlabel("program (glibc's median wall time, CPU time and peak RSS: what 1.0 is)")
        meta = report.meta
        figure.suptitle(f"Real programs under each allocator, normalised to glibc: {report.repeats} run(s) each, "
                        f"scale {report.scale:g}\n{meta.get('cpus', '?')} cores, {meta.get('cpu', '')}; load "
                        f"average {_load(meta)} (a shared machine shows here)", fontsize=9)
        save_figure(figure, path)
    return path


def _label(program, report: ProgramsReport) -> str:
    cell = program.cell("glibc")
    wall, cpu, rss = cell.median("wall_s"), cell.median("cpu_s"), cell.median("max_rss_bytes")
    if wall is None or cpu is None or rss is None:
        return program.name
    return f"{program.name}\n{wall:.2f} s wall, {cpu:.2f} s CPU\n{format_bytes(int(rss))}"


def _load(meta: dict) -> str:
    start, end = meta.get("load_average_start"), meta.get("load_average_end")
    return "?" if not start else f"{start[0]:.2f} at start" + ("" if not end else f", {end[0]:.2f} at end")
