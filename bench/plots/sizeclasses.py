"""Figure: Go's size classes, waste per class (independent of the sweep)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from bench.plots.data import ReportData, SkipFigure
from bench.plots.style import PALETTE, Style, new_figure, save_figure
from bench.table import format_bytes


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

    figure = new_figure(13, 7.0)
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
    save_figure(figure, path)
    return f"{len(classes)} classes; mean max waste {max_waste.mean():.1f}%, mean tail {tail.mean():.0f} B"

