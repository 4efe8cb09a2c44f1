"""Figure: model replay speed per workload and allocator (a dot plot).

One horizontal band per workload, one row of the band per model, a dot at the
median over seeds of `throughput_mops` (log x) and a whisker over the seeds.
The figure says *model replay speed* everywhere: rows per second of the
model's kernels, which ranks the models' algorithms, not the real allocators
they imitate.  A real allocator's cell (`real:NAME`) is that scale: a dark bar
across the band at its replay speed, so every model reads against it.  A cell
that failed is a cross at the left edge; a skipped one (not applicable) is
left empty.  Special-purpose models keep their color and are marked in the
legend.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from matplotlib.lines import Line2D

from bench.plots.data import REAL, ReportData, SkipFigure, cell_values, failed_cells
from bench.plots.style import (
    FAILED_COLOR,
    Style,
    allocator_handles,
    legend_columns,
    log_axis_readable,
    new_figure,
    save_figure,
)

SPEED = "throughput_mops"


def plot_throughput(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Dot plot: one band per workload, one dot per allocator at its median throughput (log x); returns a note."""
    values = cell_values(results, SPEED)
    if not values:
        raise SkipFigure(f"no successful cell has '{SPEED}'")
    failed = failed_cells(results)
    workloads = [w for w in results.workloads if any((a, w) in values or (a, w) in failed for a in results.allocators)]
    allocators = [a for a in results.allocators if any((a, w) in values or (a, w) in failed for w in workloads)]
    kinds = {spec: results.kind(spec) for spec in allocators}
    models = [spec for spec in allocators if kinds[spec] != REAL]  # real allocators: a bar across the band
    n_alloc = len(models)
    band = 0.8
    step = band / max(n_alloc, 1)
    height = max(3.2, 1.3 + len(workloads) * max(0.45, 0.07 * n_alloc), 0.9 + 0.2 * (n_alloc + 2))
    figure = new_figure(10.5, height)
    ax = figure.add_subplot()
    all_values = [value for cell in values.values() for value in cell]
    low, high = min(all_values), max(all_values)
    left = 10 ** (math.log10(low) - 0.3) if low > 0 else 1e-3
    fail_x = left * 1.2
    multi_seed = False
    for band_index, workload in enumerate(workloads):
        if band_index % 2 == 0:
            ax.axhspan(band_index - 0.5, band_index + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
        for spec in allocators:
            cell = values.get((spec, workload))
            if kinds[spec] == REAL and cell:
                ax.vlines(statistics.median(cell), band_index - 0.47, band_index + 0.47, color=styles[spec].color,
                          linewidth=2.2, zorder=4)
        for slot, spec in enumerate(models):
            y = band_index - band / 2 + step * (slot + 0.5)
            style = styles[spec]
            cell = values.get((spec, workload))
            if cell:
                median = statistics.median(cell)
                if len(cell) > 1:
                    multi_seed = True
                    ax.hlines(y, min(cell), max(cell), color=style.color, linewidth=1.2, zorder=2)
                ax.plot([median], [y], marker=style.marker, color=style.color, markersize=5.5, linestyle="none",
                        markeredgecolor="black", markeredgewidth=0.4, zorder=3)
            elif (spec, workload) in failed:
                ax.plot([fail_x], [y], marker="x", color=style.color, markersize=5, linestyle="none", zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(left, 10 ** (math.log10(high) + 0.15))
    log_axis_readable(ax.xaxis)
    ax.grid(axis="x", which="major", color="#cccccc", linewidth=0.8)
    ax.grid(axis="x", which="minor", color="#eeeeee", linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_yticks(range(len(workloads)), workloads)
    ax.set_ylim(len(workloads) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("model replay speed (Mops/s: trace rows per second of kernel time, log scale; median over seeds)")
    seeds = results.seeds
    ax.set_title(f"Model replay speed per workload and allocator ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    handles = allocator_handles(allocators, styles, kinds=kinds)
    if failed:
        handles.append(Line2D([], [], color=FAILED_COLOR, marker="x", linestyle="none", label="failed cell"))
    if multi_seed:
        handles.append(Line2D([], [], color=FAILED_COLOR, linewidth=1.2, label="range over seeds"))
    figure.legend(handles=handles, loc="outside right upper", ncols=legend_columns(len(handles)),
                  title="allocator", frameon=False)
    save_figure(figure, path)
    n_failed = sum(1 for key in failed if key[0] in allocators and key[1] in workloads)
    return f"{len(values)} cells drawn" + (f", {n_failed} failed (crosses at the left edge)" if n_failed else "")

