"""Figure: waste (overhead factor, internal fragmentation) against a swept size parameter."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from bench.plots.data import ReportData, SkipFigure, number, sweep_group
from bench.plots.style import Style, allocator_handles, legend_columns, log_axis_readable, new_figure, save_figure

OVERHEAD = "overhead_factor"
INTERNAL = "internal_fragmentation"


def plot_waste_vs_param(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Overhead factor (log y) and internal fragmentation (%) against the swept parameter, per family."""
    swept = [row for row in results.rows if row["param"] is not None]
    if not swept:
        raise SkipFigure("no swept parameter in these results (every row has param = null)")
    metrics = [(metric, label) for metric, label in (
        (OVERHEAD, "overhead factor (log)"), (INTERNAL, "internal fragmentation (%)"),
    ) if any(number(row, metric) is not None for row in swept if row["status"] == "ok")]
    if not metrics:
        raise SkipFigure(f"no successful swept cell has '{OVERHEAD}' or '{INTERNAL}'")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in swept:
        groups.setdefault(sweep_group(row), []).append(row)
    group_keys = list(groups)
    n_cols = min(len(group_keys), 3)
    n_blocks = math.ceil(len(group_keys) / n_cols)
    figure = new_figure(max(7.5, 1.6 + 4.0 * n_cols), 0.8 + 2.7 * len(metrics) * n_blocks)
    grid = figure.add_gridspec(n_blocks * len(metrics), n_cols)
    drawn_allocators: list[str] = []
    missing: set[tuple[str, str]] = set()
    for group_index, key in enumerate(group_keys):
        family, param, base = key
        block, column = divmod(group_index, n_cols)
        group_rows = groups[key]
        x_values = sorted({row["param_value"] for row in group_rows})
        log_x = x_values[0] > 0 and x_values[-1] / x_values[0] >= 10
        for metric_index, (metric, label) in enumerate(metrics):
            ax = figure.add_subplot(grid[block * len(metrics) + metric_index, column])
            scale = 100.0 if metric == INTERNAL else 1.0
            for spec in results.allocators:
                per_x: dict[float, list[float]] = {}
                for row in group_rows:
                    if row["allocator"] != spec:
                        continue
                    value = number(row, metric) if row["status"] == "ok" else None
                    if value is not None:
                        per_x.setdefault(row["param_value"], []).append(value * scale)
                    elif row["status"] != "ok":
                        missing.add((spec, row["workload"]))
                if not per_x:
                    continue
                xs = sorted(per_x)
                ys = [statistics.median(per_x[x]) for x in xs]
                style = styles[spec]
                ax.plot(xs, ys, color=style.color, marker=style.marker, linestyle=style.linestyle, markersize=4.5,
                        linewidth=1.4)
                if spec not in drawn_allocators:
                    drawn_allocators.append(spec)
            if metric == OVERHEAD:
                ax.set_yscale("log")
                ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle=":", zorder=0)
                log_axis_readable(ax.yaxis)
            else:
                ax.set_ylim(bottom=0)
            if log_x:
                ax.set_xscale("log")
                log_axis_readable(ax.xaxis)
            ax.grid(which="major", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.set_ylabel(label)
            if metric_index == 0:
                ax.set_title(f"{base}: {param} swept")
            if metric_index == len(metrics) - 1:
                ax.set_xlabel(param)
    figure.suptitle("Waste against the size-distribution parameter (median over seeds)")
    figure.legend(handles=allocator_handles(drawn_allocators, styles, line=True), loc="outside right center",
                  ncols=legend_columns(len(drawn_allocators)), title="allocator", frameon=False)
    save_figure(figure, path)
    return f"{len(group_keys)} swept parameter(s)" + (f"; {len(missing)} failed cells left out" if missing else "")

