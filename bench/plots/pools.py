"""The figure of a pools report (`python -m bench pools --out OUT`): OUT/plots/pools.png.

Four panels against temporaries per request (log axis): allocations that
reached the Go heap (log axis; the arena's are the 8 MiB chunks it took), GC
cycles of the Go heap (symlog axis, so 0 shows; the arena model has no
collector and draws no line), peak footprint (log2 axis, bytes) and replay
speed (Mops/s; linear).  One color per set-up; one line style per request size.
Each point is the mean over the report's seeds; a point whose cells failed is
left out.

What to look at: the gap between the heap's line and the others in the
first panel (allocations avoided), whether fewer heap allocations also mean
fewer GC cycles, and what the saving costs in footprint.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

from bench.plots.style import PALETTE, RC, bytes_formatter, log_axis_readable, new_figure, save_figure
from bench.scenarios.pools import load_report, summarise
from bench.table import format_bytes

LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")


def draw_pools(out: str | Path) -> list[Path]:
    """Draw OUT/plots/pools.png from OUT/pools.json; return the files written."""
    out = Path(out)
    document = load_report(out)
    points = summarise(document["cells"])
    setups = list(document["config"]["setups"])
    specs = document["config"]["setups"]
    requests = sorted({point.request_bytes for point in points})
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    path = plots / "pools.png"
    panels = (
        ("heap_allocations", "allocations reaching the Go heap", "allocations (log)", "log"),
        ("gc_cycles", "GC cycles of the Go heap (the arena model has none)", "cycles (symlog)", "symlog"),
        ("peak_footprint", "peak footprint", "bytes from the OS (log)", "log"),
        ("throughput_mops", "replay speed", "Mops/s (trace rows per µs)", "linear"),
    )
    with matplotlib.rc_context(RC):
        figure = new_figure(11.0, 7.6)
        axes = figure.subplots(2, 2, sharex=True).ravel()
        for axis, (key, title, label, scale) in zip(axes, panels, strict=True):
            for index, setup in enumerate(setups):
                for style_index, request in enumerate(requests):
                    line = sorted((p.temps, getattr(p, key)) for p in points
                                  if p.setup == setup and p.request_bytes == request and getattr(p, key) is not None)
                    if not line:
                        continue
                    axis.plot([x for x, _ in line], [y for _, y in line], color=PALETTE[index % len(PALETTE)],
                              linestyle=LINESTYLES[style_index % len(LINESTYLES)],
                              marker=MARKERS[index % len(MARKERS)], markersize=5,
                              label=f"{setup} ({specs[setup]}), {format_bytes(request)} requests")
            axis.set_xscale("log")
            if scale == "symlog":
                axis.set_yscale("symlog", linthresh=1.0)
                axis.set_ylim(bottom=0)
                axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            elif key == "peak_footprint":
                axis.set_yscale("log", base=2)
            elif scale == "log":
                axis.set_yscale("log")
            axis.set_title(title)
            axis.set_ylabel(label)
            axis.grid(True, which="major", alpha=0.3)
            if key == "peak_footprint":
                axis.yaxis.set_major_formatter(bytes_formatter())
                axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            elif scale == "log":
                log_axis_readable(axis.yaxis)
        for axis in axes[2:]:
            axis.set_xlabel("temporaries per request (log)")
            log_axis_readable(axis.xaxis)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        seeds = ",".join(map(str, document["config"]["seeds"]))
        figure.suptitle(f"Pools, regions and arenas against the Go heap on request churn "
                        f"({document['config']['ops']:,} rows per trace, mean of seeds {seeds})")
        save_figure(figure, path)
    return [path]
