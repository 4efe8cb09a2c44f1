"""Figure: model replay speed versus waste per workload, with the Pareto front of the general-purpose models.

One panel per workload, x = overhead factor, y = model replay speed (both
log, medians over seeds), four panels a row; the panels of a row share both
axes (one scale for the row, from every point and real-allocator speed in
it), so they compare at a glance.  The front (`pareto_front`) is computed over
the general-purpose models whose every seed succeeded; special-purpose models
are drawn grey, a model that failed on some seed hollow, and neither can be on
the front.  A real allocator's speed is a dotted horizontal line (the scale).

Labels (`_label_fronts`) go up and to the left of their front points, where no
other front point can be (it would dominate): the row's shared x range is
widened first so every label fits inside its panel, then labels that would
overlap are stacked in pixels, with a leader line to a label moved off its
point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.plots.data import GENERAL, REAL, ReportData, SkipFigure, cell_medians
from bench.plots.style import (
    SPECIAL_COLOR,
    Style,
    allocator_handles,
    legend_columns,
    log_axis_readable,
    new_figure,
    save_figure,
)

SPEED = "throughput_mops"
OVERHEAD = "overhead_factor"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated, for (overhead, throughput): lower overhead and higher throughput win.

    A point is dominated when another one has overhead <= and throughput >=,
    with at least one strictly better.  Equal points are all on the front.
    Points with a non-finite coordinate are ignored.  The result is sorted by
    overhead, ascending (so throughput ascends too).
    """
    valid = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
    front = []
    for i in valid:
        xi, yi = points[i]
        dominated = any(
            points[j][0] <= xi and points[j][1] >= yi and (points[j][0] < xi or points[j][1] > yi) for j in valid
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))




def plot_pareto(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Speed (y, log) against overhead factor (x, log), one panel per workload, panels of a row sharing their
    axes; the Pareto front of the general-purpose models marked and labelled, special-purpose models grey, a
    real allocator's speed a dotted line."""
    speed = cell_medians(results, SPEED)
    overhead = cell_medians(results, OVERHEAD)
    models = [spec for spec in results.allocators if results.kind(spec) != REAL]
    reals = [spec for spec in results.allocators if results.kind(spec) == REAL]
    points_by_workload = {}
    for workload in results.workloads:
        specs = [spec for spec in models if (spec, workload) in speed and (spec, workload) in overhead]
        if specs:
            points_by_workload[workload] = specs
    if not points_by_workload:
        raise SkipFigure(f"no successful cell of a model has both '{SPEED}' and '{OVERHEAD}'")
    workloads = list(points_by_workload)
    n_cols = min(len(workloads), 4)
    n_rows = math.ceil(len(workloads) / n_cols)
    figure = new_figure(max(9.0, 1.8 + 3.6 * n_cols), 0.9 + 3.1 * n_rows)
    axes = figure.subplots(n_rows, n_cols, squeeze=False, sharex="row", sharey="row")
    for row in range(n_rows):  # one scale per row: every point (and real speed) of the row's panels
        row_workloads = workloads[row * n_cols:(row + 1) * n_cols]
        xs = [overhead[(spec, w)] for w in row_workloads for spec in points_by_workload[w]]
        ys = [speed[(spec, w)] for w in row_workloads for spec in points_by_workload[w]]
        ys += [speed[(spec, w)] for w in row_workloads for spec in reals if (spec, w) in speed]
        axes[row][0].set_xscale("log")
        axes[row][0].set_yscale("log")
        _pad_log_limits(axes[row][0], xs, ys)
    some_failed = {(row["allocator"], row["workload"]) for row in results.rows if row["status"] == "failed"}
    on_front: dict[str, int] = {}
    labelled: list[tuple[Any, list[tuple[str, tuple[float, float]]]]] = []
    for index, workload in enumerate(workloads):
        ax = axes[index // n_cols][index % n_cols]
        specs = points_by_workload[workload]
        points = [(overhead[(spec, workload)], speed[(spec, workload)]) for spec in specs]
        general = [i for i, spec in enumerate(specs) if results.kind(spec) == GENERAL]
        eligible = [i for i in general if (specs[i], workload) not in some_failed]  # failed cells never win
        front = [eligible[i] for i in pareto_front([points[i] for i in eligible])]
        for i, spec in enumerate(specs):
            style = styles[spec]
            if i in general and i not in eligible:  # failed on some seed: hollow, never on the front
                ax.plot([points[i][0]], [points[i][1]], marker=style.marker, color=style.color, linestyle="none",
                        markersize=5.5, markerfacecolor="none", markeredgewidth=1.0, zorder=3)
                continue
            if i not in general:  # special purpose: greyed, never on the front
                ax.plot([points[i][0]], [points[i][1]], marker=style.marker, color=SPECIAL_COLOR, linestyle="none",
                        markersize=5.0, alpha=0.9, markeredgecolor=SPECIAL_COLOR, zorder=2)
                continue
            is_front = i in front
            ax.plot([points[i][0]], [points[i][1]], marker=style.marker, color=style.color, linestyle="none",
                    markersize=7.5 if is_front else 5.5, alpha=1.0 if is_front else 0.75,
                    markeredgecolor="black" if is_front else style.color, markeredgewidth=1.0 if is_front else 0.3,
                    zorder=4 if is_front else 3)
        for spec in reals:
            if (spec, workload) in speed:
                ax.axhline(speed[(spec, workload)], color=styles[spec].color, linestyle=":", linewidth=1.2, zorder=1)
        if front:
            # the staircase bounds the dominated region: down from the leanest point, right from the fastest
            xs = [points[front[0]][0]] + [points[i][0] for i in front] + [ax.get_xlim()[1]]
            ys = [ax.get_ylim()[0]] + [points[i][1] for i in front] + [points[front[-1]][1]]
            ax.step(xs, ys, where="post", color="black", linewidth=1.0, linestyle="--", zorder=2)
        for i in front:
            on_front[specs[i]] = on_front.get(specs[i], 0) + 1
        labelled.append((ax, [(specs[i], points[i]) for i in front]))
        ax.grid(which="major", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(workload)
    for index in range(len(workloads), n_rows * n_cols):
        axes[index // n_cols][index % n_cols].set_axis_off()
    figure.supxlabel("overhead factor = peak footprint / peak live requested bytes (log; left is leaner)")
    figure.supylabel("model replay speed (Mops/s, log; up is faster)")
    figure.suptitle("Model replay speed versus waste: Pareto front of the general-purpose models (dashed, labelled), "
                    "median over seeds")
    drawn = [spec for spec in results.allocators if any(spec in specs for specs in points_by_workload.values())]
    drawn += [spec for spec in reals if any((spec, w) in speed for w in workloads)]
    kinds = {spec: results.kind(spec) for spec in drawn}
    handles = allocator_handles(drawn, styles, line=False, kinds=kinds, grey_special=True)
    handles = [handle if kinds[spec] != REAL else Line2D([], [], color=styles[spec].color, linestyle=":",
                                                          linewidth=1.2, label=handle.get_label())
               for spec, handle in zip(drawn, handles, strict=True)]
    handles.append(Line2D([], [], color="black", linestyle="--", label="Pareto front"))
    figure.legend(handles=handles, loc="outside right center", ncols=legend_columns(len(handles)),
                  title="allocator", frameon=False)
    _label_fronts(figure, labelled)
    for row in axes:
        log_axis_readable(row[0].xaxis)
        log_axis_readable(row[0].yaxis)
    save_figure(figure, path)
    ranking = sorted(on_front.items(), key=lambda item: (-item[1], drawn.index(item[0])))
    return "on the front in most workloads: " + ", ".join(f"{spec} ({count}/{len(workloads)})"
                                                          for spec, count in ranking[:5])


def _label_fronts(figure: Figure, labelled: list[tuple[Any, list[tuple[str, tuple[float, float]]]]]) -> None:
    """Label each panel's front points up and to the left of them, where no front point can be (it would dominate).

    Runs after a first draw, when the constrained layout has fixed the axes.
    First every panel's x range is widened to the left until its labels fit
    inside it (panels of a row share their x axis, so a row takes the widest
    need of its panels); then, with the final limits, labels that would
    collide are stacked (in pixels, lowest point first) and a thin leader
    joins a label moved away from its point.  The labels stay out of the
    layout, so saving does not move the axes under them.
    """
    figure.draw_without_rendering()  # runs the constrained layout, rasterizes nothing
    renderer = figure.canvas.get_renderer()
    gap = 5.0  # pixels between a point and its label
    box_style = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
    sizes_of = {}
    for ax, entries in labelled:
        sizes = []
        for spec, _ in entries:
            probe = ax.text(0, 0, spec, fontsize=7, bbox=box_style)
            extent = probe.get_window_extent(renderer)
            sizes.append((extent.width + 4.0, extent.height + 2.0))
            probe.remove()
        sizes_of[id(ax)] = sizes
        if not entries:
            continue
        frame = ax.get_window_extent(renderer)
        low, high = (math.log10(value) for value in ax.get_xlim())
        for (_, (x, _)), (width, _) in zip(entries, sizes, strict=True):
            share = min((width + gap) / frame.width, 0.6)  # of the axes width the label needs left of its point
            low = min(low, (math.log10(x) - share * high) / (1.0 - share))
        ax.set_xlim(10 ** low, 10 ** high)  # shared by the row: only ever widened
    for ax, entries in labelled:
        if not entries:
            continue
        sizes = sizes_of[id(ax)]
        frame = ax.get_window_extent(renderer)
        pixels = ax.transData.transform([point for _, point in entries])
        order = sorted(range(len(entries)), key=lambda i: pixels[i][1])
        centers = {}
        previous = -math.inf
        for i in order:  # bottom up: each label just above its point, or above the previous label
            height = sizes[i][1]
            centers[i] = max(pixels[i][1] + height * 0.55, previous + height)
            previous = centers[i]
        ceiling = frame.y1
        for i in reversed(order):  # top down: keep labels inside the panel
            height = sizes[i][1]
            centers[i] = min(centers[i], ceiling - height / 2)
            ceiling = centers[i] - height / 2
        for i, (spec, point) in enumerate(entries):
            dy = centers[i] - pixels[i][1]
            moved = abs(dy) > sizes[i][1]
            annotation = ax.annotate(
                spec, point, xytext=(-gap, dy), textcoords="offset pixels", ha="right", va="center", fontsize=7,
                zorder=5, bbox=box_style, annotation_clip=False,
                arrowprops={"arrowstyle": "-", "color": "#555555", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}
                if moved else None,
            )
            annotation.set_in_layout(False)


def _pad_log_limits(ax: Any, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Log limits with room for labels: at least a factor 1.6 wide, 12% (of the log span) margins."""
    for values, setter, right_pad in ((xs, ax.set_xlim, 0.35), (ys, ax.set_ylim, 0.12)):
        positive = [value for value in values if value > 0]
        if not positive:
            continue
        low, high = math.log10(min(positive)), math.log10(max(positive))
        if high - low < 0.2:
            middle = (high + low) / 2
            low, high = middle - 0.1, middle + 0.1
        span = high - low
        setter(10 ** (low - 0.12 * span), 10 ** (high + right_pad * span))
