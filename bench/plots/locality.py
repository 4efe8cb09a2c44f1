"""Figure: locality heatmaps, allocators x workloads, of the measures that separate allocators.

The maps lead with the hot-reuse rate (a freed block handed out again while
its lines are warm) and the L2 misses per 1000 trace rows of the simulated
cache hierarchy (the accesses that would go to memory).  The L1 miss rate is
not drawn: in the default sweep it is 50-100 % for every allocator on every
workload but `lifo` (each allocation touches fresh lines), so its map is
nearly one color; it stays in the results table.  Rates are shown in %, on one color scale for the map; counts
per 1000 rows as they are, colored within each workload (column) from its
fewest to its most, since they differ far more between workloads (an
adversarial size pattern misses on almost every row) than between allocators.
Real allocators have no simulated locality and are left out; special-purpose
models keep their row, with a grey name.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

from bench.plots.data import REAL, SPECIAL, ReportData, SkipFigure, cell_medians, failed_cells, skipped_cells
from bench.plots.style import SPECIAL_COLOR, Style, new_figure, percent_text, save_figure

#: Locality heatmaps: (metric, title, True when lower is better, True when a rate shown in %).
LOCALITY_METRICS = (
    ("hot_reuse_rate", "hot-reuse rate (%): higher is better", False, True),
    ("l2_misses_per_kop", "L2 misses per 1000 rows: lower is better", True, False),
)


def plot_locality(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Heatmaps allocators x workloads of the locality rates (in %), each cell annotated."""
    del styles  # heatmaps are colored by value
    metrics = [entry for entry in LOCALITY_METRICS if results.has_metric(entry[0])]
    if not metrics:
        names = ", ".join(metric for metric, *_ in LOCALITY_METRICS)
        raise SkipFigure(f"no successful cell has a locality metric ({names})")
    failed = failed_cells(results)
    skipped = skipped_cells(results)
    ok_cells = {(row["allocator"], row["workload"]) for row in results.ok_rows()}
    allocators = [a for a in results.allocators if results.kind(a) != REAL and any(
        (a, w) in ok_cells or (a, w) in failed for w in results.workloads)]
    workloads = results.workloads
    side_by_side = len(workloads) <= 7 and len(metrics) > 1
    panel_w = 2.2 + 0.62 * len(workloads)
    panel_h = 1.6 + 0.3 * len(allocators)
    width = panel_w * len(metrics) if side_by_side else panel_w
    height = panel_h if side_by_side else panel_h * len(metrics)
    figure = new_figure(width + 0.6, height + 0.4)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0] if side_by_side else \
        figure.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, (metric, title, lower_better, rate) in zip(axes, metrics, strict=True):
        medians = cell_medians(results, metric)
        grid = np.full((len(allocators), len(workloads)), np.nan)
        for i, spec in enumerate(allocators):
            for j, workload in enumerate(workloads):
                if (spec, workload) in medians:
                    grid[i, j] = medians[(spec, workload)]
        scale = 100.0 if rate else 1.0
        grid *= scale
        if rate:  # one scale for the whole map: 0 .. the highest rate
            finite = grid[np.isfinite(grid)]
            top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            shade = grid / top
        else:  # per workload: counts differ between workloads far more than between allocators
            with np.errstate(invalid="ignore"):
                low = np.nanmin(np.where(np.isfinite(grid), grid, np.nan), axis=0, initial=np.inf)
                high = np.nanmax(np.where(np.isfinite(grid), grid, np.nan), axis=0, initial=-np.inf)
            span = np.where(high > low, high - low, 1.0)
            shade = np.where(np.isfinite(grid), (grid - low) / span, np.nan)
        cmap = matplotlib.colormaps["viridis_r" if lower_better else "viridis"].with_extremes(bad="#e6e6e6")
        image = ax.imshow(np.ma.masked_invalid(shade), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
                          interpolation="nearest")
        for i, spec in enumerate(allocators):
            for j, workload in enumerate(workloads):
                value = grid[i, j]
                if math.isfinite(value):
                    red, green, blue, _ = cmap(shade[i, j])
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                    text = percent_text(value / 100.0) if rate else f"{value:.0f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7.5,
                            color="white" if dark else "black")
                elif (spec, workload) in failed:
                    ax.text(j, i, "failed", ha="center", va="center", fontsize=6.5, color="#b00000")
                elif (spec, workload) in ok_cells or (spec, workload) in skipped:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=6.5, color="#555555")
        ax.set_xticks(range(len(workloads)), workloads, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(allocators)), allocators)
        for label, spec in zip(ax.get_yticklabels(), allocators, strict=True):
            if results.kind(spec) == SPECIAL:
                label.set_color(SPECIAL_COLOR)
        ax.set_xticks(np.arange(-0.5, len(workloads)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(allocators)), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.2)
        ax.tick_params(which="minor", length=0)
        ax.set_title(title)
        colorbar = figure.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
        if rate:
            shares = np.linspace(0.0, 1.0, 5)
            colorbar.set_ticks(shares, labels=[f"{top * share:.0f}" for share in shares])
            colorbar.set_label("%")
        else:
            colorbar.set_ticks([0.0, 1.0], labels=["fewest", "most"])
            colorbar.set_label("within each workload (column)")
    figure.suptitle("Locality of placement (median over seeds)")
    save_figure(figure, path)
    return ", ".join(metric for metric, *_ in metrics) + (
        "; special-purpose models in grey" if any(results.kind(spec) == SPECIAL for spec in allocators) else "")

