"""Figure: waste (overhead factor, internal fragmentation) against a swept size parameter.

Per swept family/parameter one column of panels: the overhead factor (log),
the internal fragmentation (%), and a zoomed overhead row on a linear scale
with only the general-purpose models, and among them only the lines that stay
within `ZOOM_BOUND` times the median of the panel's values (those left out are
named in the panel and in the note).  Special-purpose models (a pool's block
is the largest request, a region keeps whole chunks) are off any common scale
there; real allocators are left out of the whole figure, their footprint being
measured from the process.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from bench.plots.data import GENERAL, REAL, THREAD_PARAMS, ReportData, SkipFigure, number, param_lines, sweep_group
from bench.plots.style import (
    Style,
    allocator_handles,
    label_column_panel,
    legend_columns,
    log_axis_readable,
    new_figure,
    save_figure,
)

OVERHEAD = "overhead_factor"
INTERNAL = "internal_fragmentation"
#: The zoomed row also leaves out a general-purpose line that rises above this many times the median of the
#: panel's values (a model whose footprint is dominated by a fixed reservation on these traces).
ZOOM_BOUND = 3.0


def plot_waste_vs_param(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Overhead factor (log y) and internal fragmentation (%) against the swept parameter, per family."""
    swept = [row for row in results.rows if row["param"] is not None and row["param"] not in THREAD_PARAMS]
    if not swept:
        raise SkipFigure("no swept size-distribution parameter in these results (every row has param = null, "
                         "or a thread count: the scalability figure's)")
    swept = [row for row in swept if results.kind(row["allocator"]) != REAL]  # process-measured footprints
    present = {metric for metric in (OVERHEAD, INTERNAL)
               if any(number(row, metric) is not None for row in swept if row["status"] == "ok")}
    if not present:
        raise SkipFigure(f"no successful swept cell of a model has '{OVERHEAD}' or '{INTERNAL}'")
    general = any(results.kind(row["allocator"]) == GENERAL for row in swept)
    # (metric, label, zoomed): the zoomed row leaves the special-purpose models out, on a linear scale
    metrics = [(metric, label, zoomed) for metric, label, zoomed in (
        (OVERHEAD, "overhead factor (log)", False), (INTERNAL, "internal fragmentation (%)", False),
        (OVERHEAD, "overhead factor, general-\npurpose models (zoomed)", True),
    ) if metric in present and (general or not zoomed)]
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
    left_out: set[str] = set()
    for group_index, key in enumerate(group_keys):
        family, param, base = key
        block, column = divmod(group_index, n_cols)
        group_rows = groups[key]
        x_values = sorted({row["param_value"] for row in group_rows})
        log_x = x_values[0] > 0 and x_values[-1] / x_values[0] >= 10
        for metric_index, (metric, label, zoomed) in enumerate(metrics):
            ax = figure.add_subplot(grid[block * len(metrics) + metric_index, column])
            scale = 100.0 if metric == INTERNAL else 1.0
            lines: dict[str, tuple[list[float], list[float]]] = {}
            for spec in results.allocators:
                if zoomed and results.kind(spec) != GENERAL:
                    continue
                xs, ys, failed = param_lines(group_rows, spec, metric, scale)
                missing.update((spec, workload) for workload in failed)
                if xs:
                    lines[spec] = (xs, ys)
            dropped = []
            if zoomed and lines:  # degenerate lines (far above the others) would flatten the rest again
                bound = ZOOM_BOUND * statistics.median(y for _, ys in lines.values() for y in ys)
                dropped = [spec for spec, (_, ys) in lines.items() if max(ys) > bound]
                lines = {spec: line for spec, line in lines.items() if spec not in dropped}
            for spec, (xs, ys) in lines.items():
                style = styles[spec]
                ax.plot(xs, ys, color=style.color, marker=style.marker, linestyle=style.linestyle, markersize=4.5,
                        linewidth=1.4)
                if spec not in drawn_allocators:
                    drawn_allocators.append(spec)
            if metric == OVERHEAD and zoomed:
                ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle=":", zorder=0)
                ax.set_ylim(bottom=min(1.0, ax.get_ylim()[0]))
                if dropped:
                    left_out.update(dropped)
                    ax.set_title(f"left out (above {ZOOM_BOUND:g}x the median): " + ", ".join(dropped), fontsize=7.5,
                                 color="#555555")
                ax.set_facecolor("#fbfbf4")
            elif metric == OVERHEAD:
                ax.set_yscale("log")
                ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle=":", zorder=0)
                log_axis_readable(ax.yaxis)
            else:
                ax.set_ylim(bottom=0)
            if log_x:
                ax.set_xscale("log")
                log_axis_readable(ax.xaxis)
            label_column_panel(ax, label, metric_index, len(metrics), f"{base}: {param} swept", param)
    figure.suptitle("Waste against the size-distribution parameter (median over seeds)")
    kinds = {spec: results.kind(spec) for spec in drawn_allocators}
    figure.legend(handles=allocator_handles(drawn_allocators, styles, line=True, kinds=kinds),
                  loc="outside right center",
                  ncols=legend_columns(len(drawn_allocators)), title="allocator", frameon=False)
    save_figure(figure, path)
    return (f"{len(group_keys)} swept parameter(s)" + (f"; {len(missing)} failed cells left out" if missing else "")
            + (f"; left out of the zoomed row (overhead above {ZOOM_BOUND:g}x the median): "
               f"{', '.join(sorted(left_out))}" if left_out else ""))

