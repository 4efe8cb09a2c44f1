"""Figure: time and peak memory per workload, normalised to real glibc's, real allocators and models side by side.

mimalloc-bench's question ("which allocator should my program use?") asked of
a sweep: for every workload that has a `real:glibc` cell, two panels sharing
the workload bands,

- time / glibc's: a cell's replay time over real glibc's on the same workload
  and seed (`seconds_median` over `seconds_median`; the whisker spans the
  cell's `seconds_min`..`seconds_max` over its repeats, and the seeds, over
  glibc's median);
- peak memory / glibc's: `peak_footprint` over real glibc's (a real
  allocator's from the clean-heap C replayer, a model's its peak footprint;
  the whisker spans the seeds).

Log x, a line at 1 (glibc).  Real allocators are dark bars across the band,
as in the speed figure; models are dots, one row of the band each.  A model's
time is its kernels' replay time: it says how far the simulation is from the
real malloc, not how fast the modelled allocator would be; its memory is the
modelled allocator's.  A cell whose value is missing or zero (a real
allocator whose statistic did not move on a small trace) is left out and
counted in the note.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from matplotlib.lines import Line2D

from bench.plots.data import REAL, REAL_PREFIX, ReportData, SkipFigure, number
from bench.plots.style import (
    FAILED_COLOR,
    Style,
    allocator_handles,
    legend_columns,
    log_axis_readable,
    new_figure,
    save_figure,
)

GLIBC = REAL_PREFIX + "glibc"
#: (panel title, x label, metric of the value, metrics of its whisker)
PANELS = (
    ("time / real glibc's", "replay time / real glibc's on the same trace (log; whisker: repeats and seeds)",
     "seconds_median", ("seconds_min", "seconds_max")),
    ("peak memory / real glibc's", "peak footprint / real glibc's (log; whisker: seeds)",
     "peak_footprint", ("peak_footprint", "peak_footprint")),
)


def _ratios(results: ReportData, metric: str, spread: tuple[str, str]) -> dict[tuple[str, str], list[float]]:
    """(allocator, workload) -> [median ratio over seeds, low, high] against real glibc on the same seed."""
    glibc = {(row["workload"], row["seed"]): number(row, metric) for row in results.rows
             if row["allocator"] == GLIBC and row["status"] == "ok"}
    per_cell: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for row in results.rows:
        base = glibc.get((row["workload"], row["seed"]))
        value = number(row, metric) if row["status"] == "ok" else None
        if not base or not value:
            continue
        low, high = (number(row, key) or value for key in spread)
        per_cell.setdefault((row["allocator"], row["workload"]), []).append((value / base, low / base, high / base))
    return {key: [statistics.median(v for v, _, _ in cells), min(lo for _, lo, _ in cells),
                  max(hi for _, _, hi in cells)] for key, cells in per_cell.items()}


def plot_normalised(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Two dot-plot panels (time, peak memory) over real glibc's, one band per workload; returns a note."""
    if not any(row["allocator"] == GLIBC and row["status"] == "ok" for row in results.rows):
        raise SkipFigure("no successful real:glibc cell to normalise to (sweep with --real, or the default preset)")
    panels = [(title, label, _ratios(results, metric, spread)) for title, label, metric, spread in PANELS]
    workloads = [w for w in results.workloads if any(key[1] == w for _, _, ratios in panels for key in ratios)]
    allocators = [a for a in results.allocators if any(key[0] == a for _, _, ratios in panels for key in ratios)]
    kinds = {spec: results.kind(spec) for spec in allocators}
    models = [spec for spec in allocators if kinds[spec] != REAL]
    band = 0.8
    step = band / max(len(models), 1)
    height = max(3.2, 1.3 + len(workloads) * max(0.45, 0.07 * len(models)), 0.9 + 0.2 * (len(allocators) + 2))
    figure = new_figure(14.0, height)
    axes = figure.subplots(1, len(panels), sharey=True)
    ok_cells = {(row["allocator"], row["workload"]) for row in results.rows if row["status"] == "ok"}
    left_out = sum(len(ok_cells - set(ratios)) for _, _, ratios in panels)
    for ax, (title, label, ratios) in zip(axes, panels, strict=True):
        for band_index, workload in enumerate(workloads):
            if band_index % 2 == 0:
                ax.axhspan(band_index - 0.5, band_index + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
            for spec in allocators:
                cell = ratios.get((spec, workload))
                if kinds[spec] == REAL and cell and spec != GLIBC:
                    ax.vlines(cell[0], band_index - 0.47, band_index + 0.47, color=styles[spec].color, linewidth=2.2,
                              zorder=4)
            for slot, spec in enumerate(models):
                cell = ratios.get((spec, workload))
                if cell is None:
                    continue
                y = band_index - band / 2 + step * (slot + 0.5)
                style = styles[spec]
                if cell[2] > cell[1]:
                    ax.hlines(y, cell[1], cell[2], color=style.color, linewidth=1.2, zorder=2)
                ax.plot([cell[0]], [y], marker=style.marker, color=style.color, markersize=5.5, linestyle="none",
                        markeredgecolor="black", markeredgewidth=0.4, zorder=3)
        values = [value for cell in ratios.values() for value in cell]
        if values:
            low, high = min(values), max(values)
            ax.set_xlim(10 ** (math.floor(math.log10(low) * 4) / 4 - 0.1), 10 ** (math.ceil(math.log10(high) * 4) / 4
                                                                                  + 0.1))
        ax.set_xscale("log")
        log_axis_readable(ax.xaxis)
        ax.axvline(1.0, color=styles[GLIBC].color if GLIBC in styles else "black", linewidth=1.4, zorder=4)
        ax.grid(axis="x", which="major", color="#cccccc", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_title(title)
        ax.set_xlabel(label, fontsize=8.5)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(range(len(workloads)), workloads)
    axes[0].set_ylim(len(workloads) - 0.5, -0.5)
    figure.suptitle("Time and peak memory normalised to real glibc (1 = glibc; left of the line is faster / leaner)")
    handles = allocator_handles(allocators, styles, kinds=kinds)
    handles.append(Line2D([], [], color=FAILED_COLOR, linewidth=1.2, label="spread (repeats, seeds)"))
    figure.legend(handles=handles, loc="outside right upper", ncols=legend_columns(len(handles)),
                  title="allocator", frameon=False)
    save_figure(figure, path)
    cells = sum(len(ratios) for _, _, ratios in panels)
    return f"{cells} cell ratios over {len(workloads)} workloads" + (
        f"; {left_out} cell values left out (missing or zero)" if left_out else "")

