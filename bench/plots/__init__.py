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

1. `throughput.png`: model replay speed (Mops/s, log axis) per workload and
   allocator, a dot plot; whiskers span the seeds; failed cells are crosses at
   the left edge; real allocators are dark bars (the scale).  Needs
   `throughput_mops`.
2. `waste_vs_param.png`: overhead factor (log) and internal fragmentation
   against a swept size-distribution parameter (not a thread count), one panel column per swept
   family/parameter, one line per allocator, and a zoomed row: the overhead
   factor of the general-purpose models only, on a linear scale.  Needs rows
   with `param` set.
3. `locality.png`: heatmaps allocators x workloads of the hot-reuse rate and
   the L2 misses per 1000 rows (the measures that separate allocators), values
   written in the cells.  Needs either metric.
4. `pareto.png`: speed versus waste, one panel per workload, panels of a row
   sharing their axes: x = overhead factor, y = model replay speed (both log);
   the Pareto front of the general-purpose models (no other one is both faster
   and leaner) is a staircase, its points labelled; special-purpose models
   grey; a real allocator's speed a dotted line.
5. `normalised.png`: time and peak memory over real glibc's on the same
   trace, per workload, real allocators (dark bars) and models (dots with
   the spread) side by side, log scale.  Needs a `real:glibc` cell.
6. `heapmap.png`: the heap map of `meta.heapmap_cell`: occupancy of each
   address bin over time (dark = live blocks, light below the footprint curve
   = holes), and below it live bytes against footprint.  Needs heapmap.npz.
7. `scalability.png`: the scalability proxies (shared-structure operations
   per 1000 rows, remote-free rate, false-shared lines) against a swept thread
   count (`WORKLOAD:threads=1/2/4/...`), one panel column per family, one line
   per model.  Needs rows with `param` = threads.
8. `designs.png`: the models of real allocators (the fidelity pairs' models: freelist:glibc, tcmalloc,
   jemalloc, mimalloc, those in the results) side by side, one panel per proxy: locality (hot-reuse rate,
   L2 misses per 1000 rows, TLB miss rate) over the workloads without threads, scalability
   (shared-structure operations, own-thread hot reuse, false-shared lines) over the multi-thread ones
   (`bench.plots.designs`).  Needs one of those models.
9. `go_sizeclasses.png`: Go's size classes (`allocators.shared.go_sizeclasses`):
   worst-case waste per class and the tail left over in each span.  Needs no
   results.

Each figure has a caption (what is plotted) and one paragraph saying what to
look at (`FigureSpec.look`), both in the manifest and on the page.

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

Layout: one module per concept, this one gathering them (and re-exporting
what callers use, `from bench.plots import draw_all, load_report, ...`):
`data` (loading, orders, medians), `style` (colors, canvas, axis helpers), one
module per figure (`speed`, `waste`, `locality`, `pareto`, `heapmap`,
`scalability`, `designs`, `normalised`, `sizeclasses`), and here the figure list `FIGURES`, `draw_all` and the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

from bench.plots.data import (
    ReportData,
    SkipFigure,
    cell_medians,
    cell_values,
    failed_cells,
    load_report,
    number,
    ordered_allocators,
    ordered_workloads,
    sweep_group,
)
from bench.plots.designs import plot_designs
from bench.plots.heapmap import heapmap_occupancy, plot_heapmap
from bench.plots.locality import LOCALITY_METRICS, plot_locality
from bench.plots.normalised import plot_normalised
from bench.plots.pareto import pareto_front, plot_pareto
from bench.plots.scalability import plot_scalability
from bench.plots.sizeclasses import plot_go_sizeclasses
from bench.plots.speed import plot_throughput
from bench.plots.style import RC, Style, allocator_styles
from bench.plots.waste import plot_waste_vs_param

PLOTS_DIR = "plots"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str  # what is plotted and how to read it
    look: str  # one paragraph: what to look at (shown under the caption)
    draw: Callable[[ReportData, dict[str, Style], Path], str]

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "throughput", "Model replay speed per allocator and workload",
        "Model replay speed: millions of trace rows per second replaying the model's kernels (kernel time only, "
        "log scale), one band per workload, one dot per allocator at the median over seeds; a horizontal whisker "
        "spans the seeds when there are several. Farther right is faster; a factor of 10 is one grid decade. A "
        "cross at the left edge marks a cell where the allocator failed (reason in the table below); a cell "
        "skipped as not applicable has no dot. A real allocator (real:NAME) is a dark bar (real:glibc black): the "
        "speed of the real malloc on the same trace.",
        "Compare the general-purpose models within a band (the fastest verdict reads them) and against the real "
        "allocator's dark bar, the scale: the bar says how far a model's replay is from a real malloc, not how "
        "fast the modelled allocator would be. Special-purpose models (marked in the legend) are fast because "
        "they do less per operation; do not read them as winners.",
        plot_throughput,
    ),
    FigureSpec(
        "waste_vs_param", "Waste against the size-distribution parameter",
        "For each swept workload parameter (one column of panels), the overhead factor (peak footprint / peak live "
        "requested bytes; 1 is perfect, log scale, dotted line at 1), the internal fragmentation (share of live "
        "granted bytes that is rounding padding, at peak, in %), and the overhead factor again on a linear scale "
        "without the special-purpose models (zoomed), median over seeds, one line per allocator. A line that "
        "stops means the allocator failed at that parameter value. Real allocators are left out (the figure "
        "compares the models; a real allocator's footprint, from the clean-heap replayer, is in the tables).",
        "Read the zoomed bottom row first: with the special-purpose models gone (a pool grants every request its "
        "largest block, so its factor is off any common scale) the general-purpose lines separate, and a line that "
        "climbs as the parameter widens the size spread has rounding (size classes, powers of two) that the spread "
        "hits. The internal-fragmentation row says how much of the overhead is that rounding.",
        plot_waste_vs_param,
    ),
    FigureSpec(
        "locality", "Locality heatmaps",
        "Allocators (rows) x workloads (columns). Hot-reuse rate: share of allocations served by a block freed in "
        "the last 64 frees (its lines are likely still cached), higher is better. L2 misses per 1000 rows: misses "
        "of the simulated 1 MiB 16-way L2 behind a 32 KiB L1 over the access stream (allocation touches, frees, "
        "ACCESS rows), per 1000 trace rows, i.e. accesses that would go to memory, lower is better, colored within "
        "each workload (column) from fewest to most, since workloads differ far more than allocators. The color "
        "scales are oriented so that the yellow end is the better one in both; median over seeds; 'failed' = the "
        "cell failed, 'n/a' = skipped or the metric is missing; special-purpose models have grey names.",
        "Look for allocators whose rows stay on the yellow end across workloads in both maps: they hand freed "
        "blocks out again while warm and keep their working set inside the L2. The L1 miss rate is only in the "
        "results table: on every default workload but lifo, every allocator misses L1 on half or more of its "
        "accesses (each allocation touches fresh lines), so it separates them little.",
        plot_locality,
    ),
    FigureSpec(
        "pareto", "Model replay speed versus waste (Pareto front)",
        "One panel per workload, panels of a row sharing their axes: each point is an allocator, x = overhead "
        "factor (log; left is leaner), y = model replay speed (log; up is faster), medians over seeds. Points with "
        "a black edge and a label are the Pareto front of the general-purpose models: no other one is both at "
        "least as fast and at least as lean; the dashed staircase joins them and everything below/right of it is "
        "dominated. Special-purpose models are grey and never on the front, nor is a model that failed on some "
        "seed (a hollow marker: the median of its other seeds). A dotted horizontal line is a real allocator's "
        "replay speed on the workload (the scale).",
        "Look at which allocators are on the front in most panels (the note below names them) and how far the "
        "others sit below or right of the staircase; an allocator alone on the front is both the fastest and the "
        "leanest model there. Compare panels of one row directly: they share their scales.",
        plot_pareto,
    ),
    FigureSpec(
        "normalised", "Time and peak memory normalised to real glibc",
        "For every workload with a real:glibc cell, two panels sharing the workload bands: replay time over real "
        "glibc's on the same trace (left) and peak footprint over real glibc's (right), log scale, 1 = glibc (the "
        "line). Real allocators (real:NAME) are dark bars across the band: their replay time in a child process and "
        "their heap footprint from the clean-heap C replayer. Models are dots at the median over seeds; a whisker "
        "spans the repeats and seeds (time) or the seeds (memory). A model's time is its simulation's replay time; "
        "its memory is the modelled allocator's footprint.",
        "Read the right panel to choose for memory: bars and dots left of the line use less than glibc on that "
        "workload, and a model's dot near its real allocator's bar is a model that predicts it. In the left panel, "
        "compare the real bars among themselves (which malloc is fastest on this trace); a model's dot says how far "
        "its simulation is from a real malloc's speed, not the modelled allocator's speed.",
        plot_normalised,
    ),
    FigureSpec(
        "heapmap", "Heap map of one cell",
        "Top: the simulated address space (y) over time in trace rows (x); each pixel is the share of an address "
        "bin covered by live blocks (black = full, white = empty). The red line is the footprint (bytes taken from "
        "the OS); light pixels below it are holes, i.e. memory taken but not holding live blocks (fragmentation "
        "and free lists). Bottom: live bytes (summed from the image) against the footprint; the shaded gap is the "
        "free memory inside the footprint.",
        "Look at the light areas under the red line: memory the allocator holds without live data. Holes that "
        "stay while the live bytes fall are memory kept rather than reused or returned, which is what the overhead "
        "factor counts at the peak.",
        plot_heapmap,
    ),
    FigureSpec(
        "scalability", "Scalability proxies against the thread count",
        "For each workload whose thread count is swept (one column), three proxies of multi-core behaviour against "
        "the threads in the trace (log2 axis), median over seeds, one line per model: shared-structure operations "
        "per 1000 rows (operations on a structure every thread shares under a lock: a central free list, the page "
        "heap, an arena after a tcache miss; models that declare none have no line), the remote-free rate (% of "
        "FREE rows done by a thread other than the block's owner: a property of the trace, the same for every "
        "model) and the peak number of 64 B lines holding live blocks of two or more threads (false sharing). "
        "Real allocators are left out: their scaling is measured on real threads (README, \"Real threads\").",
        "Read the top row: a line that climbs as threads are added belongs to a model whose threads all go to one "
        "shared structure, which is where real threads would queue; a flat low line is an allocator whose threads "
        "stay in their own caches. The middle row says how much cross-thread traffic the workload itself makes "
        "(producer-consumer: every free is remote beyond one thread). In the bottom row, fewer false-shared lines "
        "means an allocator that keeps different threads' blocks on different cache lines.",
        plot_scalability,
    ),
    FigureSpec(
        "designs", "Design differences: the models of real allocators side by side",
        "The models that imitate a real allocator (freelist:glibc for glibc's arenas and bins; tcmalloc for "
        "gperftools' per-thread caches over central free lists; jemalloc for its arenas with thread caches; "
        "mimalloc for its free lists sharded per page; the ones in this sweep), one bar per model (its "
        "color, and a hatch of its own) per workload, its value at its end, median over seeds. Top row, "
        "locality, on the workloads without threads: hot-reuse "
        "rate (% of allocations served by a block among the last 64 frees, whose lines are likely cached), L2 "
        "misses per 1000 rows (the simulated 1 MiB L2 behind a 32 KiB L1: accesses that would go to memory) and "
        "TLB miss rate (64-entry TLB, 4 KiB pages: how many pages the blocks spread over). Bottom row, "
        "scalability, on the multi-thread workloads: shared-structure operations per 1000 rows (operations on "
        "a structure every thread shares under a lock: a central list, the page heap, an arena after a cache "
        "miss), own-thread hot reuse (% of allocations served by a block the same thread freed among its last "
        "64 frees: what a thread cache or a per-page free list keeps local) and the peak number of 64 B lines "
        "holding live blocks of two or more threads (false sharing). Counts are on a log axis (linear below 1).",
        "Read each panel across its rows: a model whose bar is on the better side in most rows has the design "
        "that wins that proxy. The bottom row is where the designs should separate: a model with per-thread "
        "caches (tcmalloc) should go to a shared structure less often than one whose threads share an arena "
        "(freelist:glibc); own-thread reuse is high only where threads free their own blocks and is 0 under "
        "producer-consumer, where every free is remote, so there the shared-structure count says what each "
        "design does with blocks that come back from another thread.",
        plot_designs,
    ),
    FigureSpec(
        "go_sizeclasses", "Go size classes: waste per class",
        "Go's 67 small-object size classes (port of the runtime's generator). Top: the generator's 'max waste' "
        "column, the worst case share of a span lost when every object is the smallest request that rounds into "
        "the class, plus the span's tail. Bottom: the tail of each span (span bytes modulo object size, at most "
        "1/8 of the span by construction), colored by the span's page count. Independent of the sweep.",
        "Look at the tallest bars: requests just above those class boundaries waste the most; where the bottom "
        "panel's tail is large, the span's leftover, not the rounding, is the waste.",
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
                                     "look": spec.look, "file": None, "note": "", "skipped": None}
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
            "name": spec.name, "title": spec.title, "caption": spec.caption, "look": spec.look, "note": "",
            "file": f"{PLOTS_DIR}/{spec.filename}" if exists else None,
            "skipped": None if exists else "not drawn yet (run `python -m bench plot DIR`)",
        })
    return entries


__all__ = [
    "FIGURES", "LOCALITY_METRICS", "MANIFEST", "PLOTS_DIR", "FigureSpec", "ReportData", "SkipFigure", "Style",
    "allocator_styles", "cell_medians", "cell_values", "draw_all", "failed_cells", "heapmap_occupancy", "load_report",
    "number", "ordered_allocators", "ordered_workloads", "pareto_front", "plot_designs", "plot_go_sizeclasses",
    "plot_heapmap", "plot_locality", "plot_pareto", "plot_throughput", "plot_waste_vs_param", "read_manifest",
    "sweep_group",
]
