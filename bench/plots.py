"""Figures of a sweep: one function per figure, drawn with matplotlib's Agg canvas into OUT/plots/*.png.

Input is what `python -m bench sweep --out OUT` writes (README "Sweep results"):
`OUT/results.json` (run `meta` + one tidy row per cell = allocator spec x
workload spec x seed, `status` "ok" or "failed" with a `reason`) and, when the
sweep recorded one, `OUT/heapmap.npz` (an address x time occupancy image of one
cell).  `draw_all(OUT)` draws every figure it has data for and writes
`OUT/plots/manifest.json`, the list of figures with their captions and, for a
figure it could not draw, why; `bench.report.write_index` turns that into
`OUT/index.html`.

Figures (file name, what it needs):

1. `throughput.png`: replay throughput (Mops/s, log axis) per workload and
   allocator, a dot plot; whiskers span the seeds; failed cells are crosses at
   the left edge.  Needs `throughput_mops`.
2. `waste_vs_param.png`: overhead factor (log) and internal fragmentation
   against a swept size-distribution parameter, one panel column per swept
   family/parameter, one line per allocator.  Needs rows with `param` set.
3. `locality.png`: heatmaps allocators x workloads of the L1 miss rate and the
   hot-reuse rate, values written in the cells.  Needs either metric.
4. `pareto.png`: speed versus waste, one panel per workload: x = overhead
   factor, y = throughput (both log); the Pareto front (no other allocator is
   both faster and leaner) is a staircase, its points labelled.
5. `heapmap.png`: the heap map of `meta.heapmap_cell`: occupancy of each
   address bin over time (dark = live blocks, light below the footprint curve
   = holes), and below it live bytes against footprint.  Needs heapmap.npz.
6. `go_sizeclasses.png`: Go's size classes (`allocators.shared.go_sizeclasses`):
   worst-case waste per class and the tail left over in each span.  Needs no
   results.

Conventions.  Every figure aggregates a cell's seeds by the median (whiskers or
notes say when seeds disagree).  Each allocator spec keeps one color and one
marker in every figure: styles are assigned in the order of `meta.allocators`
(the sweep's order), then of first appearance.  Workloads are ordered by family
(first appearance), then by swept parameter value.  A figure function raises
`SkipFigure(reason)` when its data is missing (no swept parameter, metric
absent from every row, every cell failed, no heap map); `draw_all` records the
reason and removes a stale PNG of that name, so the page never shows an old
figure.  Rates stored as fractions (miss rates, fragmentation) are shown in %.

Rendering uses `matplotlib.figure.Figure` with an Agg canvas (no pyplot, no
global backend switch) inside an `rc_context`, so importing this module from a
notebook or another tool changes nothing there.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.results import ResultRow, load_results
from bench.table import format_bytes

PLOTS_DIR = "plots"
MANIFEST = "manifest.json"
DPI = 110

#: rc settings for every figure (applied in a context, never globally).
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 12,
    "axes.grid": False,
    "savefig.facecolor": "white",
}

#: 20 distinguishable colors: tab10, then the dark shades of tab20b/tab20c.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
FAILED_COLOR = "#9a9a9a"

SPEED = "throughput_mops"
OVERHEAD = "overhead_factor"
INTERNAL = "internal_fragmentation"
#: Locality heatmaps: (metric, title, True when lower is better).
LOCALITY_METRICS = (
    ("l1_miss_rate", "L1 miss rate (%): lower is better", True),
    ("hot_reuse_rate", "hot-reuse rate (%): higher is better", False),
)


class SkipFigure(Exception):
    """A figure cannot be drawn from these results; the message says why (shown on the page)."""


# ------------------------------------------------------------------ results
@dataclass
class ReportData:
    """What the figures read: a sweep's results (`bench.results`), the allocator and workload orders, the heap map."""

    directory: Path
    meta: dict[str, Any]
    rows: list[ResultRow]
    allocators: list[str]
    workloads: list[str]
    heapmap: dict[str, Any] | None  # arrays of heapmap.npz (+ "meta" dict), None when absent
    heapmap_error: str = ""  # why heapmap.npz could not be read ("" when absent or fine)

    def ok_rows(self) -> list[ResultRow]:
        return [row for row in self.rows if row.ok]

    def has_metric(self, metric: str) -> bool:
        """True when at least one ok cell has a finite value of `metric`."""
        return any(number(row, metric) is not None for row in self.ok_rows())

    @property
    def seeds(self) -> list[int]:
        return sorted({row["seed"] for row in self.rows})


def number(row: Mapping[str, Any], key: str) -> float | None:
    """row[key] as a finite float, or None (absent, null, not a number, NaN, infinite)."""
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _spec_items(spec: str) -> tuple[str, list[str]]:
    name, _, rest = spec.partition(":")
    return name, [item.strip() for item in rest.split(",") if item.strip()]


def sweep_group(row: dict[str, Any]) -> tuple[str, str, str] | None:
    """(family, param, the workload spec without the swept item) of a swept row, None if not swept.

    Rows of `lognormal:sigma=0.5` and `lognormal:sigma=2` share the group
    ('lognormal', 'sigma', 'lognormal'); `lognormal:threads=4,sigma=1` belongs
    to ('lognormal', 'sigma', 'lognormal:threads=4').
    """
    if row["param"] is None:
        return None
    family, items = _spec_items(row["workload"])
    others = [item for item in items if item.partition("=")[0].strip() != row["param"]]
    base = family + (":" + ",".join(others) if others else "")
    return row["family"], row["param"], base


def _ordered_workloads(rows: Sequence[dict[str, Any]]) -> list[str]:
    family_rank: dict[str, int] = {}
    group_rank: dict[Any, int] = {}
    first: dict[str, tuple] = {}
    for index, row in enumerate(rows):
        family_rank.setdefault(row["family"], len(family_rank))
        group = sweep_group(row) or ("", "", row["workload"])
        group_rank.setdefault(group, len(group_rank))
        if row["workload"] not in first:
            value = row["param_value"] if row["param_value"] is not None else -math.inf
            first[row["workload"]] = (family_rank[row["family"]], group_rank[group], value, index)
    return sorted(first, key=first.__getitem__)


def _ordered_allocators(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    listed = meta.get("allocators")
    order = [str(spec) for spec in listed] if isinstance(listed, list) else []
    for row in rows:
        if row["allocator"] not in order:
            order.append(row["allocator"])
    return order


def _load_heapmap(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {key: data[key] for key in data.files}
    meta = out.get("meta")
    if meta is not None:
        try:
            out["meta"] = json.loads(str(meta.item() if meta.shape == () else meta.tobytes().decode()))
        except (ValueError, UnicodeDecodeError):
            out["meta"] = {}
    else:
        out["meta"] = {}
    return out


def load_report(results_dir: Path) -> ReportData:
    """Read OUT/results.json (leniently, `bench.results.load_results`) and OUT/heapmap.npz if present.

    Raises FileNotFoundError when results.json is missing and ValueError when it
    is not a results file (not JSON, no `rows` list).
    """
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    rows, meta = results.rows, results.meta
    heapmap, heapmap_error = None, ""
    heapmap_path = results_dir / "heapmap.npz"
    if heapmap_path.is_file():
        try:
            heapmap = _load_heapmap(heapmap_path)
        except (OSError, ValueError, KeyError) as error:
            heapmap_error = f"heapmap.npz could not be read: {error}"
    return ReportData(
        directory=results_dir, meta=meta, rows=rows, allocators=_ordered_allocators(rows, meta),
        workloads=_ordered_workloads(rows), heapmap=heapmap, heapmap_error=heapmap_error,
    )


def cell_values(results: ReportData, metric: str) -> dict[tuple[str, str], list[float]]:
    """{(allocator, workload): [metric of each ok seed]} (cells without a value are absent)."""
    values: dict[tuple[str, str], list[float]] = {}
    for row in results.ok_rows():
        value = number(row, metric)
        if value is not None:
            values.setdefault((row["allocator"], row["workload"]), []).append(value)
    return values


def cell_medians(results: ReportData, metric: str) -> dict[tuple[str, str], float]:
    """{(allocator, workload): median over seeds of `metric`} over the ok cells that have it."""
    return {key: statistics.median(values) for key, values in cell_values(results, metric).items()}


def failed_cells(results: ReportData) -> set[tuple[str, str]]:
    """(allocator, workload) pairs where no seed succeeded and at least one failed."""
    ok = {(row["allocator"], row["workload"]) for row in results.ok_rows()}
    return {(row["allocator"], row["workload"]) for row in results.rows if row["status"] != "ok"} - ok


# ------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str


def allocator_styles(allocators: Sequence[str]) -> dict[str, Style]:
    """One color/marker/line style per allocator spec, by position (distinct for the first 20)."""
    styles = {}
    for index, spec in enumerate(allocators):
        styles[spec] = Style(
            color=PALETTE[index % len(PALETTE)],
            marker=MARKERS[index % len(MARKERS)],
            linestyle=("-", "--", ":", "-.")[(index // len(PALETTE)) % 4],
        )
    return styles


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


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=DPI)
    os.replace(temporary, path)


def _binary_locator(top: float, ticks: int = 5) -> ticker.MultipleLocator:
    """Ticks every power of two bytes, between `ticks` and 2 x `ticks` of them up to `top`."""
    step = 2.0 ** max(0, math.floor(math.log2(max(top, 1.0) / ticks)))
    if top / step > 2 * ticks:
        step *= 2
    return ticker.MultipleLocator(step)


def _bytes_formatter() -> ticker.FuncFormatter:
    return ticker.FuncFormatter(lambda value, _: format_bytes(value).replace(".0 ", " ") if value > 0 else "0")


def _allocator_handles(specs: Iterable[str], styles: dict[str, Style], line: bool = False) -> list[Line2D]:
    return [
        Line2D([], [], color=styles[spec].color, marker=styles[spec].marker, markersize=6,
               linestyle=styles[spec].linestyle if line else "none", label=spec)
        for spec in specs
    ]


def _log_axis_readable(axis: Any) -> None:
    """Plain numbers (0.5, 1, 10, 100) on a log axis instead of 10^k; when the axis spans under a factor of 30,
    labels at 2 and 5 x each decade too, and under a factor of 3 evenly spaced ticks (1.2, 1.4, ...)."""
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(ticker.NullFormatter())
    low, high = axis.get_view_interval()
    if low <= 0 or high / low >= 30:
        return
    if high / low < 3:
        axis.set_major_locator(ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        return

    def two_and_five(value: float, _: Any) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if any(abs(mantissa - digit) < 1e-6 for digit in (2, 5)) else ""

    axis.set_minor_formatter(ticker.FuncFormatter(two_and_five))


def _legend_columns(count: int) -> int:
    return 1 if count <= 14 else 2


def _percent_text(value: float) -> str:
    percent = 100.0 * value
    if percent == 0:
        return "0"
    if abs(percent) < 0.1:
        return "<0.1"
    return f"{percent:.1f}" if abs(percent) < 10 else f"{percent:.0f}"


# ------------------------------------------------------------------ figure 1
def plot_throughput(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Dot plot: one band per workload, one dot per allocator at its median throughput (log x); returns a note."""
    values = cell_values(results, SPEED)
    if not values:
        raise SkipFigure(f"no successful cell has '{SPEED}'")
    failed = failed_cells(results)
    workloads = [w for w in results.workloads if any((a, w) in values or (a, w) in failed for a in results.allocators)]
    allocators = [a for a in results.allocators if any((a, w) in values or (a, w) in failed for w in workloads)]
    n_alloc = len(allocators)
    band = 0.8
    step = band / max(n_alloc, 1)
    height = max(3.2, 1.3 + len(workloads) * max(0.45, 0.07 * n_alloc), 0.9 + 0.2 * (n_alloc + 2))
    figure = _new_figure(10.5, height)
    ax = figure.add_subplot()
    all_values = [value for cell in values.values() for value in cell]
    low, high = min(all_values), max(all_values)
    left = 10 ** (math.log10(low) - 0.3) if low > 0 else 1e-3
    fail_x = left * 1.2
    multi_seed = False
    for band_index, workload in enumerate(workloads):
        if band_index % 2 == 0:
            ax.axhspan(band_index - 0.5, band_index + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
        for slot, spec in enumerate(allocators):
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
    _log_axis_readable(ax.xaxis)
    ax.grid(axis="x", which="major", color="#cccccc", linewidth=0.8)
    ax.grid(axis="x", which="minor", color="#eeeeee", linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_yticks(range(len(workloads)), workloads)
    ax.set_ylim(len(workloads) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("replay throughput (Mops/s, log scale; median over seeds)")
    seeds = results.seeds
    ax.set_title(f"Throughput per workload and allocator ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    handles = _allocator_handles(allocators, styles)
    if failed:
        handles.append(Line2D([], [], color=FAILED_COLOR, marker="x", linestyle="none", label="failed cell"))
    if multi_seed:
        handles.append(Line2D([], [], color=FAILED_COLOR, linewidth=1.2, label="range over seeds"))
    figure.legend(handles=handles, loc="outside right upper", ncols=_legend_columns(len(handles)),
                  title="allocator", frameon=False)
    _save(figure, path)
    n_failed = sum(1 for key in failed if key[0] in allocators and key[1] in workloads)
    return f"{len(values)} cells drawn" + (f", {n_failed} failed (crosses at the left edge)" if n_failed else "")


# ------------------------------------------------------------------ figure 2
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
    figure = _new_figure(max(7.5, 1.6 + 4.0 * n_cols), 0.8 + 2.7 * len(metrics) * n_blocks)
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
                _log_axis_readable(ax.yaxis)
            else:
                ax.set_ylim(bottom=0)
            if log_x:
                ax.set_xscale("log")
                _log_axis_readable(ax.xaxis)
            ax.grid(which="major", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.set_ylabel(label)
            if metric_index == 0:
                ax.set_title(f"{base}: {param} swept")
            if metric_index == len(metrics) - 1:
                ax.set_xlabel(param)
    figure.suptitle("Waste against the size-distribution parameter (median over seeds)")
    figure.legend(handles=_allocator_handles(drawn_allocators, styles, line=True), loc="outside right center",
                  ncols=_legend_columns(len(drawn_allocators)), title="allocator", frameon=False)
    _save(figure, path)
    return f"{len(group_keys)} swept parameter(s)" + (f"; {len(missing)} failed cells left out" if missing else "")


# ------------------------------------------------------------------ figure 3
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
    figure = _new_figure(width + 0.6, height + 0.4)
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
                    ax.text(j, i, _percent_text(value), ha="center", va="center", fontsize=7.5,
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
    _save(figure, path)
    return ", ".join(metric for metric, _, _ in metrics)


# ------------------------------------------------------------------ figure 4
def plot_pareto(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Speed (y, log) against overhead factor (x, log), one panel per workload, Pareto front marked and labelled."""
    speed = cell_medians(results, SPEED)
    overhead = cell_medians(results, OVERHEAD)
    points_by_workload = {}
    for workload in results.workloads:
        specs = [spec for spec in results.allocators if (spec, workload) in speed and (spec, workload) in overhead]
        if specs:
            points_by_workload[workload] = specs
    if not points_by_workload:
        raise SkipFigure(f"no successful cell has both '{SPEED}' and '{OVERHEAD}'")
    workloads = list(points_by_workload)
    n_cols = min(len(workloads), 4)
    n_rows = math.ceil(len(workloads) / n_cols)
    figure = _new_figure(max(9.0, 1.8 + 3.6 * n_cols), 0.9 + 3.1 * n_rows)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    on_front: dict[str, int] = {}
    labelled: list[tuple[Any, list[tuple[str, tuple[float, float]]]]] = []
    for index, workload in enumerate(workloads):
        ax = axes[index // n_cols][index % n_cols]
        specs = points_by_workload[workload]
        points = [(overhead[(spec, workload)], speed[(spec, workload)]) for spec in specs]
        front = pareto_front(points)
        for i, spec in enumerate(specs):
            style = styles[spec]
            is_front = i in front
            ax.plot([points[i][0]], [points[i][1]], marker=style.marker, color=style.color, linestyle="none",
                    markersize=7.5 if is_front else 5.5, alpha=1.0 if is_front else 0.75,
                    markeredgecolor="black" if is_front else style.color, markeredgewidth=1.0 if is_front else 0.3,
                    zorder=4 if is_front else 3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _pad_log_limits(ax, [p[0] for p in points], [p[1] for p in points])
        # the staircase bounds the dominated region: down from the leanest point, right from the fastest
        xs = [points[front[0]][0]] + [points[i][0] for i in front] + [ax.get_xlim()[1]]
        ys = [ax.get_ylim()[0]] + [points[i][1] for i in front] + [points[front[-1]][1]]
        ax.step(xs, ys, where="post", color="black", linewidth=1.0, linestyle="--", zorder=2)
        for i in front:
            on_front[specs[i]] = on_front.get(specs[i], 0) + 1
        labelled.append((ax, [(specs[i], points[i]) for i in front]))
        _log_axis_readable(ax.xaxis)
        _log_axis_readable(ax.yaxis)
        ax.grid(which="major", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(workload)
    for index in range(len(workloads), n_rows * n_cols):
        axes[index // n_cols][index % n_cols].set_axis_off()
    figure.supxlabel("overhead factor = peak footprint / peak live requested bytes (log; left is leaner)")
    figure.supylabel("throughput (Mops/s, log; up is faster)")
    figure.suptitle("Speed versus waste: Pareto front (dashed, labelled) per workload, median over seeds")
    drawn = [spec for spec in results.allocators if any(spec in specs for specs in points_by_workload.values())]
    handles = _allocator_handles(drawn, styles)
    handles.append(Line2D([], [], color="black", linestyle="--", label="Pareto front"))
    figure.legend(handles=handles, loc="outside right center", ncols=_legend_columns(len(handles)),
                  title="allocator", frameon=False)
    _label_fronts(figure, labelled)
    _save(figure, path)
    ranking = sorted(on_front.items(), key=lambda item: (-item[1], drawn.index(item[0])))
    return "on the front in most workloads: " + ", ".join(f"{spec} ({count}/{len(workloads)})"
                                                          for spec, count in ranking[:5])


def _label_fronts(figure: Figure, labelled: list[tuple[Any, list[tuple[str, tuple[float, float]]]]]) -> None:
    """Label each panel's front points up and to the left of them, where no point can be (it would dominate).

    Runs after a first draw, when the constrained layout has fixed the axes:
    widens each x range to the left so the labels fit inside the panel, then
    stacks labels that would collide (in pixels, lowest point first) and draws
    a thin leader to a label moved away from its point.  The labels stay out of
    the layout, so saving does not move the axes under them.
    """
    figure.draw_without_rendering()  # runs the constrained layout, rasterizes nothing
    renderer = figure.canvas.get_renderer()
    gap = 5.0  # pixels between a point and its label
    box_style = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
    for ax, entries in labelled:
        if not entries:
            continue
        sizes = []
        for spec, _ in entries:
            probe = ax.text(0, 0, spec, fontsize=7, bbox=box_style)
            extent = probe.get_window_extent(renderer)
            sizes.append((extent.width + 4.0, extent.height + 2.0))
            probe.remove()
        frame = ax.get_window_extent(renderer)
        low, high = (math.log10(value) for value in ax.get_xlim())
        for (_, (x, _)), (width, _) in zip(entries, sizes, strict=True):
            share = min((width + gap) / frame.width, 0.6)  # of the axes width the label needs left of its point
            low = min(low, (math.log10(x) - share * high) / (1.0 - share))
        ax.set_xlim(10 ** low, 10 ** high)
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


# ------------------------------------------------------------------ figure 5
def heapmap_occupancy(image: np.ndarray) -> np.ndarray:
    """The heap map image as float shares in [0, 1]: floats as they are, integers over their dtype's maximum
    (uint8 255 = fully covered); an integer image holding only 0 and 1 is read as 0/1 occupancy."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        top = image.max(initial=0)
        scale = 1.0 if top <= 1 else float(np.iinfo(image.dtype).max)
        return image.astype(np.float64) / scale
    return np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0)


def plot_heapmap(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Address x time occupancy image with the footprint curve; below it live bytes versus footprint."""
    del styles
    heapmap = results.heapmap
    if heapmap is None:
        if results.heapmap_error:
            raise SkipFigure(results.heapmap_error)
        raise SkipFigure("no heapmap.npz in the results directory (the sweep records one when "
                         "meta.heapmap_cell names a cell)")
    if "image" not in heapmap or np.asarray(heapmap["image"]).ndim != 2 or min(np.shape(heapmap["image"])) < 1:
        raise SkipFigure("heapmap.npz has no 2-D 'image' [time_bins, address_bins]")
    occupancy = heapmap_occupancy(heapmap["image"])
    time_bins, address_bins = occupancy.shape
    address_max = float(np.asarray(heapmap.get("address_max", address_bins)).item()) or float(address_bins)
    rows = float(np.asarray(heapmap.get("rows", time_bins)).item()) or float(time_bins)
    footprint = np.asarray(heapmap.get("footprint", np.full(time_bins, np.nan)), dtype=np.float64)
    if footprint.shape != (time_bins,):
        footprint = np.full(time_bins, np.nan)
    cell = {**(results.meta.get("heapmap_cell") or {}), **heapmap.get("meta", {})}
    label = " x ".join(str(cell[key]) for key in ("allocator", "workload") if key in cell)
    if "seed" in cell:
        label += f", seed {cell['seed']}"
    bin_bytes = address_max / address_bins
    live = occupancy.sum(axis=1) * bin_bytes
    times = (np.arange(time_bins) + 0.5) * rows / time_bins

    has_footprint = bool(np.isfinite(footprint).any())
    figure = _new_figure(11, 7.6)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3.2, 1.3))
    image = top.imshow(occupancy.T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                       extent=(0, rows, 0, address_max), interpolation="antialiased")
    address_top = address_max
    if has_footprint:
        top.plot(times, footprint, color="#d62728", linewidth=1.6, drawstyle="steps-mid")
        address_top = max(address_max, float(np.nanmax(footprint)))
        top.fill_between(times, footprint, address_top * 1.04, step="mid", color="#d62728", alpha=0.07, linewidth=0)
    top.set_ylim(0, address_top * 1.04)
    top.yaxis.set_major_locator(_binary_locator(address_top))
    top.yaxis.set_major_formatter(_bytes_formatter())
    top.set_ylabel("address (offset in the simulated address space)")
    title = f"Heap map: {label}" if label else "Heap map"
    if has_footprint:
        title += "\nred line: footprint (bytes taken from the OS); light pixels below it are holes"
    top.set_title(title)
    colorbar = figure.colorbar(image, ax=top, location="top", shrink=0.5, aspect=40, pad=0.02)
    colorbar.set_label("share of the address bin covered by live blocks (dark = full)")

    bottom.plot(times, live, color="#1f77b4", linewidth=1.3, label="live bytes (from the image)")
    note = f"{time_bins} time bins x {address_bins} address bins of {format_bytes(bin_bytes)}"
    if has_footprint:
        bottom.plot(times, footprint, color="#d62728", linewidth=1.3, drawstyle="steps-mid", label="footprint")
        bottom.fill_between(times, live, np.maximum(footprint, live), color="#d62728", alpha=0.15, step="mid",
                            label="free inside the footprint (holes + unused)")
        with np.errstate(divide="ignore", invalid="ignore"):
            free_share = np.where(footprint > 0, 1.0 - live / footprint, np.nan)
        if np.isfinite(free_share).any():
            worst = int(np.nanargmax(free_share))
            note += (f"; free inside the footprint: up to {100 * max(free_share[worst], 0.0):.0f}% "
                     f"(near row {times[worst]:.0f}), {100 * max(free_share[-1], 0.0):.0f}% at the end")
    highest = max(float(np.nanmax(footprint)) if has_footprint else 0.0, float(live.max(initial=0)), 1.0)
    bottom.set_ylim(0, highest * 1.08)
    bottom.yaxis.set_major_locator(_binary_locator(highest))
    bottom.yaxis.set_major_formatter(_bytes_formatter())
    bottom.set_ylabel("bytes")
    bottom.set_xlabel("time (trace row)")
    bottom.set_xlim(0, rows)
    bottom.grid(color="#dddddd", linewidth=0.6)
    bottom.legend(loc="best", fontsize=7.5, framealpha=0.9)
    _save(figure, path)
    return note


# ------------------------------------------------------------------ figure 6
def plot_go_sizeclasses(results: ReportData | None, styles: dict[str, Style] | None, path: Path) -> str:
    """Go's size classes: max waste % per class (top) and tail bytes left in each span (bottom, by span pages)."""
    del results, styles
    try:
        from allocators.shared.go_sizeclasses import GO_TABLE
    except ImportError as error:
        raise SkipFigure(f"allocators.shared.go_sizeclasses is not importable: {error}") from None
    table = GO_TABLE
    classes = np.arange(1, len(table.size))
    sizes = np.asarray(table.size[1:])
    max_waste = np.asarray(table.max_waste_pct[1:])
    tail = np.asarray(table.tail_waste[1:])
    pages = np.asarray(table.pages[1:])
    page_kinds = sorted(set(pages.tolist()))
    page_color = {count: PALETTE[index % len(PALETTE)] for index, count in enumerate(page_kinds)}

    figure = _new_figure(13, 7.0)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.bar(classes, max_waste, color="#4c72b0", width=0.8)
    worst = int(np.argmax(max_waste))
    top.annotate(f"{max_waste[worst]:.1f}% (class {classes[worst]}, {sizes[worst]} B)", (classes[worst],
                 max_waste[worst]), xytext=(8, -4), textcoords="offset points", fontsize=8)
    top.set_ylabel("max waste (% of span)")
    top.set_title("Worst case per class: every object is the smallest request rounding into it, plus the span tail")
    top.grid(axis="y", color="#dddddd", linewidth=0.6)
    top.set_axisbelow(True)
    top.set_ylim(0, max(max_waste) * 1.12)

    bottom.bar(classes, tail, color=[page_color[count] for count in pages], width=0.8)
    bottom.set_ylabel("tail waste per span (bytes)")
    bottom.set_title("Bytes left at the end of each span (span bytes mod object size), colored by pages per span")
    bottom.grid(axis="y", color="#dddddd", linewidth=0.6)
    bottom.set_axisbelow(True)
    handles = [Line2D([], [], color=page_color[count], marker="s", linestyle="none", markersize=7,
                      label=f"{count} page{'s' if count > 1 else ''} ({format_bytes(count * table.page_size)})")
               for count in page_kinds]
    bottom.legend(handles=handles, title="span", loc="upper left", ncols=5, fontsize=7.5, title_fontsize=8)
    bottom.set_ylim(0, max(tail.max(initial=0), 1) * 1.45)
    bottom.set_xticks(classes, [str(size) for size in sizes], rotation=90, fontsize=7)
    bottom.set_xlim(0.4, classes[-1] + 0.6)
    bottom.set_xlabel("size class (object size in bytes; classes 1.." f"{classes[-1]})")
    figure.suptitle(f"Go size classes: {len(classes)} classes up to {format_bytes(int(sizes[-1]))}, "
                    f"{format_bytes(table.page_size)} pages")
    _save(figure, path)
    return f"{len(classes)} classes; mean max waste {max_waste.mean():.1f}%, mean tail {tail.mean():.0f} B"


# ------------------------------------------------------------------ all figures
@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str  # what is plotted and how to read it
    draw: Callable[[ReportData, dict[str, Style], Path], str]

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "throughput", "Throughput per allocator and workload",
        "Replay throughput in millions of trace operations per second (kernel time only, log scale), one band per "
        "workload, one dot per allocator at the median over seeds; a horizontal whisker spans the seeds when there "
        "are several. Farther right is faster; a factor of 10 is one grid decade. A cross at the left edge marks "
        "a cell where the allocator failed (reason in the table below).",
        plot_throughput,
    ),
    FigureSpec(
        "waste_vs_param", "Waste against the size-distribution parameter",
        "For each swept workload parameter (one column of panels), the overhead factor (peak footprint / peak live "
        "requested bytes; 1 is perfect, log scale, dotted line at 1) and the internal fragmentation (share of live "
        "granted bytes that is rounding padding, at peak, in %), median over seeds, one line per allocator. A line "
        "that stops means the allocator failed at that parameter value.",
        plot_waste_vs_param,
    ),
    FigureSpec(
        "locality", "Locality heatmaps",
        "Allocators (rows) x workloads (columns). L1 miss rate: share of the simulated accesses (allocation touches, "
        "frees, ACCESS rows) missing a 32 KiB 8-way L1, lower is better. Hot-reuse rate: share of allocations served "
        "by a block freed in the last 64 frees, higher is better. The color scales are oriented so that the "
        "yellow end is the better one in both; values in %, median over seeds; 'failed' = the cell failed, "
        "'n/a' = the metric is missing for that cell.",
        plot_locality,
    ),
    FigureSpec(
        "pareto", "Speed versus waste (Pareto front)",
        "One panel per workload: each point is an allocator, x = overhead factor (log; left is leaner), "
        "y = throughput (log; up is faster), medians over seeds. Points with a black edge and a label are the "
        "Pareto front: no other allocator is both at least as fast and at least as lean; the dashed staircase "
        "joins them and everything below/right of it is dominated.",
        plot_pareto,
    ),
    FigureSpec(
        "heapmap", "Heap map of one cell",
        "Top: the simulated address space (y) over time in trace rows (x); each pixel is the share of an address "
        "bin covered by live blocks (black = full, white = empty). The red line is the footprint (bytes taken from "
        "the OS); light pixels below it are holes, i.e. memory taken but not holding live blocks (fragmentation "
        "and free lists). Bottom: live bytes (summed from the image) against the footprint; the shaded gap is the "
        "free memory inside the footprint.",
        plot_heapmap,
    ),
    FigureSpec(
        "go_sizeclasses", "Go size classes: waste per class",
        "Go's 67 small-object size classes (port of the runtime's generator). Top: the generator's 'max waste' "
        "column, the worst case share of a span lost when every object is the smallest request that rounds into "
        "the class, plus the span's tail. Bottom: the tail of each span (span bytes modulo object size, at most "
        "1/8 of the span by construction), colored by the span's page count. Independent of the sweep.",
        plot_go_sizeclasses,
    ),
)


def draw_all(results_dir: Path) -> list[Path]:
    """Draw every figure the results allow into OUT/plots/ and write OUT/plots/manifest.json; return the PNGs.

    Figures without data are skipped (reason in the manifest, any stale PNG of
    that name removed).  An unexpected error while drawing one figure is also
    recorded as its skip reason, so one broken figure never loses the others.
    """
    results_dir = Path(results_dir)
    results = load_report(results_dir)
    plots_dir = results_dir / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    styles = allocator_styles(results.allocators)
    written: list[Path] = []
    manifest = []
    with matplotlib.rc_context(RC):
        for spec in FIGURES:
            path = plots_dir / spec.filename
            entry: dict[str, Any] = {"name": spec.name, "title": spec.title, "caption": spec.caption,
                                     "file": None, "note": "", "skipped": None}
            try:
                entry["note"] = spec.draw(results, styles, path) or ""
            except SkipFigure as skip:
                entry["skipped"] = str(skip)
            except Exception as error:  # one broken figure must not lose the others
                entry["skipped"] = f"drawing failed: {type(error).__name__}: {error}"
            if entry["skipped"] is None:
                entry["file"] = f"{PLOTS_DIR}/{spec.filename}"
                written.append(path)
            elif path.exists():
                path.unlink()
            manifest.append(entry)
    (plots_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return written


def read_manifest(results_dir: Path) -> list[dict[str, Any]]:
    """The figure list draw_all wrote; without one, the known figures whose PNG exists (others: 'not drawn')."""
    path = Path(results_dir) / PLOTS_DIR / MANIFEST
    try:
        entries = json.loads(path.read_text())
        if isinstance(entries, list) and all(isinstance(entry, dict) for entry in entries):
            return entries
    except (OSError, ValueError):
        pass
    entries = []
    for spec in FIGURES:
        exists = (Path(results_dir) / PLOTS_DIR / spec.filename).is_file()
        entries.append({
            "name": spec.name, "title": spec.title, "caption": spec.caption, "note": "",
            "file": f"{PLOTS_DIR}/{spec.filename}" if exists else None,
            "skipped": None if exists else "not drawn yet (run `python -m bench plot DIR`)",
        })
    return entries
