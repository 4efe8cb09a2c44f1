"""Figure: locality heatmaps, allocators x workloads."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

from bench.plots.data import ReportData, SkipFigure, cell_medians, failed_cells
from bench.plots.style import Style, new_figure, percent_text, save_figure

#: Locality heatmaps: (metric, title, True when lower is better).
LOCALITY_METRICS = (
    ("l1_miss_rate", "L1 miss rate (%): lower is better", True),
    ("hot_reuse_rate", "hot-reuse rate (%): higher is better", False),
)


def plot_locality(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Heatmaps allocators x workloads of the locality rates (in %), each cell annotated."""
    del styles  # heatmaps are colored by value
    metrics = [entry for entry in LOCALITY_METRICS if results.has_metric(entry[0])]
    if not metrics:
        names = ", ".join(metric for metric, _, _ in LOCALITY_METRICS)
        raise SkipFigure(f"no successful cell has a locality metric ({names})")
    failed = failed_cells(results)
    ok_cells = {(row["allocator"], row["workload"]) for row in results.ok_rows()}
    allocators = [a for a in results.allocators if any((a, w) in ok_cells or (a, w) in failed
                                                        for w in results.workloads)]
    workloads = results.workloads
    side_by_side = len(workloads) <= 7 and len(metrics) > 1
    panel_w = 2.2 + 0.62 * len(workloads)
    panel_h = 1.6 + 0.3 * len(allocators)
    width = panel_w * len(metrics) if side_by_side else panel_w
    height = panel_h if side_by_side else panel_h * len(metrics)
    figure = new_figure(width + 0.6, height + 0.4)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0] if side_by_side else \
        figure.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, (metric, title, lower_better) in zip(axes, metrics, strict=True):
        medians = cell_medians(results, metric)
        grid = np.full((len(allocators), len(workloads)), np.nan)
        for i, spec in enumerate(allocators):
            for j, workload in enumerate(workloads):
                if (spec, workload) in medians:
                    grid[i, j] = medians[(spec, workload)]
        finite = grid[np.isfinite(grid)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        cmap = matplotlib.colormaps["viridis_r" if lower_better else "viridis"].with_extremes(bad="#e6e6e6")
        image = ax.imshow(np.ma.masked_invalid(grid * 100), cmap=cmap, vmin=0, vmax=top * 100, aspect="auto",
                          interpolation="nearest")
        for i, spec in enumerate(allocators):
            for j, workload in enumerate(workloads):
                value = grid[i, j]
                if math.isfinite(value):
                    red, green, blue, _ = cmap(value / top if top else 0)
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                    ax.text(j, i, percent_text(value), ha="center", va="center", fontsize=7.5,
                            color="white" if dark else "black")
                elif (spec, workload) in failed:
                    ax.text(j, i, "failed", ha="center", va="center", fontsize=6.5, color="#b00000")
                elif (spec, workload) in ok_cells:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=6.5, color="#555555")
        ax.set_xticks(range(len(workloads)), workloads, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(allocators)), allocators)
        ax.set_xticks(np.arange(-0.5, len(workloads)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(allocators)), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.2)
        ax.tick_params(which="minor", length=0)
        ax.set_title(title)
        colorbar = figure.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
        colorbar.set_label("%")
    figure.suptitle("Locality of placement (median over seeds)")
    save_figure(figure, path)
    return ", ".join(metric for metric, _, _ in metrics)

