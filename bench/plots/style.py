"""How the figures look: rc settings, one color and marker per allocator, the canvas, axis and legend helpers.

Every figure is a `matplotlib.figure.Figure` on an Agg canvas (`new_figure`;
no pyplot, no global backend switch) drawn inside `matplotlib.rc_context(RC)`
by `bench.plots.draw_all`, and saved atomically (`save_figure`).  Each
allocator spec keeps one `Style` (color, marker, line style) in every figure,
assigned by its position in the report's allocator order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.table import format_bytes

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
#: Real allocators (the scale): black first, then dark shades.
REAL_PALETTE = ("#000000", "#8b0000", "#00308f", "#5b5b5b", "#4b0082", "#006400")


# ------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str


def allocator_styles(allocators: Sequence[str]) -> dict[str, Style]:
    """One color/marker/line style per allocator spec, by position (distinct for the first 20); real allocators
    (`real:NAME`, drawn as bars and lines, the scale) take the dark colors of `REAL_PALETTE` in their order."""
    styles = {}
    models = [spec for spec in allocators if not spec.startswith("real:")]
    reals = [spec for spec in allocators if spec.startswith("real:")]
    for index, spec in enumerate(models):
        styles[spec] = Style(
            color=PALETTE[index % len(PALETTE)],
            marker=MARKERS[index % len(MARKERS)],
            linestyle=("-", "--", ":", "-.")[(index // len(PALETTE)) % 4],
        )
    for index, spec in enumerate(reals):
        styles[spec] = Style(color=REAL_PALETTE[index % len(REAL_PALETTE)], marker="|", linestyle=":")
    return styles


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=DPI)
    os.replace(temporary, path)


def binary_locator(top: float, ticks: int = 5) -> ticker.MultipleLocator:
    """Ticks every power of two bytes, between `ticks` and 2 x `ticks` of them up to `top`."""
    step = 2.0 ** max(0, math.floor(math.log2(max(top, 1.0) / ticks)))
    if top / step > 2 * ticks:
        step *= 2
    return ticker.MultipleLocator(step)


def bytes_formatter() -> ticker.FuncFormatter:
    return ticker.FuncFormatter(lambda value, _: format_bytes(value).replace(".0 ", " ") if value > 0 else "0")


#: Legend suffix per allocator kind (`bench.plots.data`: GENERAL, SPECIAL, REAL).
KIND_SUFFIX = {"special": " (special purpose)", "real": " (real, the scale)"}
#: How special-purpose models are drawn where they must not compete (the Pareto panels).
SPECIAL_COLOR = "#b0b0b0"


def allocator_handles(specs: Iterable[str], styles: dict[str, Style], line: bool = False,
                      kinds: dict[str, str] | None = None, grey_special: bool = False) -> list[Line2D]:
    """Legend entries, one per spec in its style; `kinds` (spec -> kind) adds ' (special purpose)' or ' (real,
    the scale)' to the label, `grey_special` draws special-purpose entries grey, as the Pareto panels do."""
    handles = []
    for spec in specs:
        kind = (kinds or {}).get(spec, "general")
        color = SPECIAL_COLOR if grey_special and kind == "special" else styles[spec].color
        if kind == "real":  # a bar (speed) or a dotted line (Pareto) in its own color
            handles.append(Line2D([], [], color=styles[spec].color, linestyle=":" if line else "none",
                                  marker=None if line else "|", markersize=10, markeredgewidth=2,
                                  label=spec + KIND_SUFFIX["real"]))
            continue
        handles.append(Line2D([], [], color=color, marker=styles[spec].marker, markersize=6,
                              linestyle=styles[spec].linestyle if line else "none",
                              label=spec + KIND_SUFFIX.get(kind, "")))
    return handles


def log_axis_readable(axis: Any) -> None:
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


def label_column_panel(ax: Any, ylabel: str, row: int, rows: int, title: str, xlabel: str) -> None:
    """A panel in a column of `rows` panels sharing an x quantity: a light grid, its y label, the column's title
    on the top panel and the x label on the bottom one."""
    ax.grid(which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_ylabel(ylabel)
    if row == 0:
        ax.set_title(title)
    if row == rows - 1:
        ax.set_xlabel(xlabel)


def legend_columns(count: int) -> int:
    return 1 if count <= 14 else 2


def percent_text(value: float) -> str:
    percent = 100.0 * value
    if percent == 0:
        return "0"
    if abs(percent) < 0.1:
        return "<0.1"
    return f"{percent:.1f}" if abs(percent) < 10 else f"{percent:.0f}"

