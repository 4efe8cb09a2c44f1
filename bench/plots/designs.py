"""Figure: the models of real allocators side by side on their locality and scalability proxies.

The models that imitate a real allocator (the fidelity pairs, `bench.fidelity.PAIRS`: `freelist:glibc`,
`tcmalloc:gperftools` or `tcmalloc` while that preset is not registered, `jemalloc`, `mimalloc`; those
the sweep measured) are where the designs differ: glibc's arenas and bins, tcmalloc's per-thread caches
over central free lists, jemalloc's arenas with thread caches, mimalloc's free lists sharded per page.
Small multiples, one panel per proxy, one bar per model (its color of every other figure, and a hatch of
its own, since two models may have close colors) for each workload, its value written at its end, the
median over seeds:

- top row, locality, over the workloads without threads: the hot-reuse rate (% of allocations served by
  a block among the last 64 frees), L2 misses per 1000 rows (the simulated 1 MiB L2 behind a 32 KiB L1)
  and the TLB miss rate (64 entries, 4 KiB pages), from `bench.metrics.locality`;
- bottom row, scalability, over the multi-thread workloads (a thread count above 1 in a swept `threads`
  family, or a workload with remote frees): shared-structure operations per 1000 rows (what the model
  does under a lock every thread shares), the own-thread hot-reuse rate (allocations served by a block the
  same thread freed among its last 64 frees: what a per-thread cache or a per-page free list keeps local)
  and the peak false-shared 64 B lines, from `bench.metrics.scalability`.

Counts (L2 misses, shared operations, lines) are on a symmetric log axis (linear below 1), since the
workloads differ by orders of magnitude; rates in %.  A model with no value (a failed cell, a model that
declares no shared counters) has no bar there.  The figure is skipped when the sweep has
none of these models.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from matplotlib.patches import Patch

from bench.plots.data import THREAD_PARAMS, ReportData, SkipFigure, number
from bench.plots.style import KIND_SUFFIX, Style, new_figure, save_figure

#: One hatch per model, so that two models of close colors still differ.
HATCHES = ("", "////", "....", "xxxx")

#: (metric, panel title, scale (100: a rate shown in %), a count on a symmetric log axis).
LOCALITY_PANELS = (
    ("hot_reuse_rate", "hot-reuse rate (%)\nhigher: freed blocks reused warm", 100.0, False),
    ("l2_misses_per_kop", "L2 misses per 1000 rows\nlower: fewer trips to memory", 1.0, True),
    ("tlb_miss_rate", "TLB miss rate (%)\nlower: blocks packed on fewer pages", 100.0, False),
)
SCALABILITY_PANELS = (
    ("shared_ops_per_kop", "shared-structure ops per 1000 rows\nlower: less under a shared lock", 1.0, True),
    ("hot_reuse_rate_thread", "own-thread hot reuse (%)\nhigher: a thread reuses its own frees", 100.0, False),
    ("false_sharing_lines_peak", "false-shared 64 B lines (peak)\nlower: threads' blocks apart", 1.0, True),
)


def imitating_models(allocators: list[str]) -> list[str]:
    """The sweep's specs that imitate a real allocator (`bench.pairs`, the lab's one pairing table), in its order."""
    from bench.pairs import paired

    return [model for _, model in paired() if model in allocators]


def _threaded(results: ReportData, workload: str) -> bool:
    rows = [row for row in results.rows if row["workload"] == workload]
    swept = any(row["param"] in THREAD_PARAMS and (row["param_value"] or 0) > 1 for row in rows)
    return swept or any((number(row, "remote_free_rate") or 0) > 0 for row in rows if row["status"] == "ok")


def _median(results: ReportData, spec: str, workload: str, metric: str) -> float | None:
    values = [number(row, metric) for row in results.rows
              if row["allocator"] == spec and row["workload"] == workload and row["status"] == "ok"]
    found = [value for value in values if value is not None]
    return statistics.median(found) if found else None


def _single_thread_family_member(results: ReportData, workload: str) -> bool:
    """A thread-swept family's 1-thread member (threads4:threads=1): in neither row (the bottom row has its peers)."""
    return any(row["workload"] == workload and row["param"] in THREAD_PARAMS for row in results.rows)


def plot_designs(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Locality proxies (top row) and scalability proxies (bottom row) of the models of real allocators."""
    models = imitating_models(results.allocators)
    if not models:
        raise SkipFigure("none of the models of a real allocator (freelist:glibc, tcmalloc, jemalloc, mimalloc) "
                         "is in these results")
    threaded = [workload for workload in results.workloads if _threaded(results, workload)]
    single = [workload for workload in results.workloads
              if workload not in threaded and not _single_thread_family_member(results, workload)]
    rows_of_panels = [(LOCALITY_PANELS, single, "Locality, on the workloads without threads")]
    if threaded:
        rows_of_panels.append((SCALABILITY_PANELS, threaded, "Scalability, on the multi-thread workloads"))
    heights = [1.3 + 0.22 * len(models) * max(len(workloads), 1) + 0.2 for _, workloads, _ in rows_of_panels]
    figure = new_figure(13.0, 1.0 + sum(heights))
    subfigures = figure.subfigures(len(rows_of_panels), 1, height_ratios=heights, squeeze=False)[:, 0]
    bar = 0.8 / len(models)
    drawn = 0
    for subfigure, (panels, workloads, row_title) in zip(subfigures, rows_of_panels, strict=True):
        axes = subfigure.subplots(1, len(panels), sharey=True)
        subfigure.suptitle(row_title, fontsize=10, fontweight="bold")
        for ax, (metric, title, scale, count) in zip(axes, panels, strict=True):
            top = 0.0
            for index, spec in enumerate(models):
                style = styles[spec]
                for position, workload in enumerate(workloads):
                    value = _median(results, spec, workload, metric)
                    if value is None:
                        continue
                    value *= scale
                    top = max(top, value)
                    y = position - 0.4 + bar * (index + 0.5)
                    ax.barh(y, value, height=bar * 0.9, color=style.color, hatch=HATCHES[index % len(HATCHES)],
                            edgecolor="white", linewidth=0.0)
                    text = f" {value:.0f}" if value >= 100 else f" {value:.3g}"
                    ax.text(value, y, text, va="center", ha="left", fontsize=6.5, color="#333333")
                    drawn += 1
            ax.set_yticks(range(len(workloads)), workloads)
            ax.set_ylim(len(workloads) - 0.5, -0.5)
            if count:
                ax.set_xscale("symlog", linthresh=1.0)
                ax.set_xlim(0, max(10.0, top) * 3.0)
            else:
                ax.set_xlim(0, max(5.0, top) * 1.25)
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.set_title(title, fontsize=9)
    if not drawn:
        raise SkipFigure("no successful cell of these models has a locality or scalability proxy")
    kinds: dict[str, Any] = {spec: results.kind(spec) for spec in models}
    handles = [Patch(facecolor=styles[spec].color, hatch=HATCHES[index % len(HATCHES)], edgecolor="white",
                     label=spec + KIND_SUFFIX.get(kinds[spec], "")) for index, spec in enumerate(models)]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(models), title="model of a real allocator",
                  frameon=False)
    figure.suptitle("Design differences: the models of real allocators on the locality and scalability proxies "
                    "(median over seeds)")
    save_figure(figure, path)
    return f"{len(models)} models ({', '.join(models)}); {len(single)} workloads without threads, " \
           f"{len(threaded)} multi-thread"
