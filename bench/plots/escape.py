"""Figures of the escape scenario (`python -m bench escape --out OUT`): OUT/plots/escape.png.

One figure, six panels against the escape ratio (the share of allocation
sites whose pointer outlives its frame, 0..1), one line per allocator, solid
with escape analysis and dashed without it (every object on the heap, the
counterfactual); each point is the mean over the seeds:

1. heap allocations avoided: the share of the counterfactual's heap
   allocations that escape analysis kept on the stack;
2. GC cycles of the heap replay (`gc_cycles`, the go models' counter; a
   model without a collector has none and is left out of this panel);
3. peak footprint: heap (the allocator's peak) + the goroutine's stack
   reserved for its peak, MiB;
4. the locality proxy `alloc_same_page_rate` of the heap (consecutive
   allocations in one 4 KiB page), with the stack's own rate for consecutive
   stack objects (dotted, one line: the stack does not depend on the
   allocator);
5. L1 miss rate of the heap's access stream (bench/metrics/locality.py);
6. time per program allocation: (heap replay + stack frames) / sites, ns.

The heap's locality proxies (panels 4, 5) are drawn only for runs with at
least `MIN_HEAP_ALLOCS` heap allocations: at ratio 0 the heap holds only the
program's few package objects, whose rates say nothing.  `go` (explicit
frees, no collector) has 0 GC cycles.

What to look at: panel 1 falls as 1 - ratio (measured, not drawn from a
formula); panels 2-6 show what the heap allocations that are not made are
worth, and at ratio 1 both lines meet (nothing is kept off the heap).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D

from bench.plots.style import allocator_styles, new_figure, save_figure

#: Heap locality proxies are drawn for runs with at least this many heap allocations.
MIN_HEAP_ALLOCS = 1000
_LOCALITY = ("alloc_same_page_rate", "l1_miss_rate")
_PANELS = (
    ("heap_allocs_avoided_share", "heap allocations avoided (%)", 100.0, False),
    ("gc_cycles", "GC cycles (per program run)", 1.0, True),
    ("peak_footprint", "peak footprint, heap + stack (MiB)", 1.0 / 2**20, True),
    ("alloc_same_page_rate", "consecutive allocations in one 4 KiB page (%)", 100.0, True),
    ("l1_miss_rate", "L1 miss rate of the heap's accesses (%)", 100.0, True),
    ("ns_per_site", "time per program allocation (ns)", 1.0, True),
)


def _means(rows: list[dict[str, Any]], allocator: str, analysis: str, name: str) -> tuple[list[float], list[float]]:
    ratios = sorted({row["ratio"] for row in rows})
    xs, ys = [], []
    for ratio in ratios:
        values = [row[name] for row in rows if row["allocator"] == allocator and row["analysis"] == analysis
                  and row["ratio"] == ratio and row["status"] == "ok" and row[name] is not None
                  and (name not in _LOCALITY or row["heap_allocs"] >= MIN_HEAP_ALLOCS)]
        if values:
            xs.append(ratio)
            ys.append(sum(values) / len(values))
    return xs, ys


def draw_escape(out: str | Path) -> list[Path]:
    """Draw OUT/plots/escape.png from OUT/escape.json; return the files written."""
    out = Path(out)
    document = json.loads((out / "escape.json").read_text())
    rows = document["rows"]
    allocators = list(dict.fromkeys(row["allocator"] for row in rows))
    styles = allocator_styles(allocators)
    figure = new_figure(12.0, 7.2)
    axes = figure.subplots(2, 3)
    for ax, (name, label, scale, with_off) in zip(axes.flat, _PANELS, strict=True):
        for allocator in allocators:
            style = styles[allocator]
            for analysis, linestyle in (("on", "-"), ("off", "--")):
                if analysis == "off" and not with_off:
                    continue
                xs, ys = _means(rows, allocator, analysis, name)
                if not xs:
                    continue
                ax.plot(xs, [y * scale for y in ys], color=style.color, marker=style.marker, markersize=4,
                        linestyle=linestyle)
        if name == "alloc_same_page_rate":
            xs, ys = _means(rows, allocators[0], "on", "stack_same_page_rate")
            shown = [(x, y) for x, y in zip(xs, ys, strict=True) if x < 1.0]  # no stack objects at ratio 1
            if shown:
                ax.plot([x for x, _ in shown], [y * 100 for _, y in shown], color="#000000", linestyle=":",
                        marker="x", markersize=4)
        ax.set_xlabel("escape ratio (share of sites whose object escapes)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(label.split(" (")[0], fontsize=9)
    handles = [Line2D([], [], color=styles[allocator].color, marker=styles[allocator].marker, markersize=4,
                      linestyle=linestyle, label=f"{allocator}, escape analysis {analysis}")
               for allocator in allocators for analysis, linestyle in (("on", "-"), ("off", "--"))]
    handles.append(Line2D([], [], color="#000000", linestyle=":", marker="x", markersize=4,
                          label="stack objects in their frames (allocators.goframes)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False,
                  fontsize=8)
    config = document["config"]
    figure.suptitle(f"Escape analysis: one Go-like program of {config['allocs']:,} allocation sites per ratio "
                    f"(goescape{',' + config['program'] if config['program'] else ''}; "
                    f"mean of {len(config['seeds'])} seed(s)); dashed: every object on the heap")
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    path = plots / "escape.png"
    save_figure(figure, path)
    return [path]
