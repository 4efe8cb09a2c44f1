"""Figure: the scalability proxies against the thread count.

A sweep with a thread-count family (`threads4:threads=1/2/4/8/16`,
`producer-consumer:threads=1/2/4/8/16`: any workload whose `threads` key is
swept) gets one column of panels per family and three rows, one line per model
allocator, median over seeds:

- shared-structure operations per 1000 rows (`shared_ops_per_kop`): what the
  allocator does under a lock shared by threads (a central free list, the page
  heap, an arena's lock after a tcache miss); a line that climbs with the
  threads is an allocator whose threads would queue on one structure;
- the remote-free rate (`remote_free_rate`, %): FREEs by a thread other than
  the block's owner, a property of the trace (the same for every allocator, so
  one line): every one of them is a block a per-thread cache must send back;
- false-shared lines (`false_sharing_lines_peak`): 64 B lines holding live
  blocks of two or more threads at the worst row, which cores would bounce
  between them.

A model allocator that declares no shared counters has no line in the first
row (NaN); real allocators are left out (their rows carry no proxies: their
scaling is measured on real threads, README "Real threads").  The thread axis
is log2-spaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plots.data import REAL, ReportData, SkipFigure, number, param_lines, sweep_group
from bench.plots.style import Style, allocator_handles, label_column_panel, legend_columns, new_figure, save_figure

THREADS = "threads"
#: (metric, axis label, scale): the three rows of panels.
PROXIES = (
    ("shared_ops_per_kop", "shared-structure ops\nper 1000 rows", 1.0),
    ("remote_free_rate", "remote frees\n(% of FREE rows)", 100.0),
    ("false_sharing_lines_peak", "false-shared 64 B lines\n(peak, count)", 1.0),
)


def plot_scalability(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """The three scalability proxies against the swept thread count, one column per thread family."""
    swept = [row for row in results.rows
             if row["param"] == THREADS and results.kind(row["allocator"]) != REAL]
    if not swept:
        raise SkipFigure("no workload with a swept thread count in these results (e.g. threads4:threads=1/2/4)")
    if not any(row["status"] == "ok" and number(row, metric) is not None for row in swept for metric, _, _ in PROXIES):
        raise SkipFigure("no successful thread-swept cell of a model has a scalability proxy")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in swept:
        groups.setdefault(sweep_group(row), []).append(row)
    figure = new_figure(max(7.5, 1.8 + 4.2 * len(groups)), 1.0 + 2.6 * len(PROXIES))
    grid = figure.add_gridspec(len(PROXIES), len(groups))
    drawn: list[str] = []
    failed: set[tuple[str, str]] = set()
    for column, (key, rows) in enumerate(groups.items()):
        _, _, base = key
        x_values = sorted({row["param_value"] for row in rows})
        for index, (metric, label, scale) in enumerate(PROXIES):
            ax = figure.add_subplot(grid[index, column])
            for spec in results.allocators:
                xs, ys, failed_here = param_lines(rows, spec, metric, scale)
                failed.update((spec, workload) for workload in failed_here)
                if not xs:
                    continue
                style = styles[spec]
                ax.plot(xs, ys, color=style.color, marker=style.marker, linestyle=style.linestyle, markersize=4.5,
                        linewidth=1.4)
                if spec not in drawn:
                    drawn.append(spec)
            ax.set_xscale("log", base=2)
            ax.set_xticks(x_values, [f"{value:g}" for value in x_values])
            ax.minorticks_off()
            if scale == 100.0:
                ax.set_ylim(0, 105)  # a share: always the whole 0..100 % scale
            else:
                ax.set_ylim(bottom=0)
            label_column_panel(ax, label, index, len(PROXIES), f"{base}: threads swept", "threads in the trace")
    figure.suptitle("Scalability proxies against the thread count (models, median over seeds)")
    kinds = {spec: results.kind(spec) for spec in drawn}
    figure.legend(handles=allocator_handles(drawn, styles, line=True, kinds=kinds), loc="outside right center",
                  ncols=legend_columns(len(drawn)), title="allocator", frameon=False)
    save_figure(figure, path)
    return f"{len(groups)} thread famil{'y' if len(groups) == 1 else 'ies'}" + (
        f"; {len(failed)} failed cells left out" if failed else "")
