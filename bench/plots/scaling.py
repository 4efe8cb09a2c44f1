"""The figure of a scaling report (`python -m bench scaling --out OUT`): OUT/scaling.png.

One column per point (a workload at T threads), three rows, each against OS threads (1: the trace
serialised on one thread; T: one OS thread per trace thread, the same rows):

- real allocators: throughput in Mops/s (trace rows per microsecond), the median of the repeats with error
  bars from the slowest to the fastest repeat, one line per real allocator (its scaling T/1 in the legend);
- models: shared-structure operations per 1000 rows (what would take a lock), one line per model, log axis;
- models: cache lines holding live blocks of two threads at the peak (false sharing), one line per model, and
  the trace's remote-free rate (a property of the trace, the same for every allocator) on the right axis.

The real row has a legend per panel (it gives each allocator's scaling T/1 there); the models' legend is
one, under the figure.

The title names the machine's cores, the affinity mask and the load average, since every real figure is the
machine's.  What to look at: real lines that rise from 1 to T scale; a model whose shared operations and
shared lines grow from 1 to T predicts an allocator that does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from bench.plots.style import MARKERS, PALETTE, RC, REAL_PALETTE, log_axis_readable, new_figure, save_figure
from bench.scenarios.scaling import ScalingReport, load_report


def draw_scaling(report: ScalingReport | str | Path, path: Path | None = None) -> Path:
    """Draw the figure of `report` (a report, or the OUT directory holding scaling.json) into `path` (default
    OUT/scaling.png); return the path written."""
    if isinstance(report, ScalingReport):
        document = report.document()
        if path is None:
            raise ValueError("draw_scaling: a report in memory needs the path to draw into")
    else:
        document = load_report(report)
        path = path or Path(report) / "scaling.png"
    points = document["points"]
    with matplotlib.rc_context(RC):
        figure = new_figure(max(5.0, 3.6 * len(points)), 9.8)
        axes = figure.subplots(3, max(1, len(points)), squeeze=False)
        for column, point in enumerate(points):
            _real_panel(axes[0][column], point)
            _shared_panel(axes[1][column], point)
            _lines_panel(axes[2][column], point)
        handles: dict[str, Any] = {}
        for axis in (*axes[1], *axes[2], *(axis for axis in figure.axes if axis not in axes.ravel())):
            for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                          ncols=min(len(handles), 6), title="models (rows 2 and 3)", fontsize=8, title_fontsize=8)
        host, config = document["machine"], document["config"]
        figure.suptitle(
            f"Real allocators on real threads beside the models' proxies: {host['cpu_count']} cores (affinity "
            f"{host['affinity_cores']}), load average {host['loadavg_start'][0]:.2f} at the start, "
            f"{host['loadavg_end'][0]:.2f} at the end\n"
            f"{config['ops']:,} rows per trace; median of {config['repeats']} repeats, bars min..max; "
            f"1 thread = the same trace serialised", fontsize=10)
        save_figure(figure, path)
    return path


def _threads_axis(axis: Any, point: dict[str, Any]) -> None:
    axis.set_xticks([1, point["threads"]])
    axis.set_xlim(0.5, point["threads"] + 0.5)
    axis.set_xlabel("OS threads")


def _real_panel(axis: Any, point: dict[str, Any]) -> None:
    x = [1, point["threads"]]
    for index, entry in enumerate(point["reals"]):
        if entry["status"] != "ok":
            continue
        sides = (entry["one"], entry["many"])
        y = [side["throughput_mops"] for side in sides]
        errors = [[y[i] - side["throughput_min"] for i, side in enumerate(sides)],
                  [side["throughput_max"] - y[i] for i, side in enumerate(sides)]]
        axis.errorbar(x, y, yerr=errors, color=REAL_PALETTE[index % len(REAL_PALETTE)],
                      marker=MARKERS[index % len(MARKERS)], capsize=3, linewidth=1.2,
                      label=f"{entry['allocator']} (x{entry['scaling']:.2f})")
    axis.set_title(f"{point['spec']}\nreal allocators", fontsize=9)
    axis.set_ylabel("throughput, Mops/s (rows per µs)")
    axis.set_ylim(bottom=0)
    _threads_axis(axis, point)
    if axis.lines:
        axis.legend(fontsize=7, title="real (scaling T/1)", title_fontsize=7, framealpha=0.6)


def _model_lines(axis: Any, point: dict[str, Any], key: str) -> None:
    x = [1, point["threads"]]
    for index, model in enumerate(point["models"]):
        if model["status"] != "ok":
            continue
        axis.plot(x, [model["one"][key], model["many"][key]], color=PALETTE[index % len(PALETTE)],
                  marker=MARKERS[index % len(MARKERS)], linewidth=1.2, label=model["model"])


def _shared_panel(axis: Any, point: dict[str, Any]) -> None:
    _model_lines(axis, point, "shared_ops_per_kop")
    axis.set_title("models: shared-structure operations", fontsize=9)
    axis.set_ylabel("shared ops per 1000 rows (log)")
    if axis.lines and all(value > 0 for line in axis.lines for value in line.get_ydata()):
        axis.set_yscale("log")
        log_axis_readable(axis.yaxis)
    _threads_axis(axis, point)


def _lines_panel(axis: Any, point: dict[str, Any]) -> None:
    _model_lines(axis, point, "false_sharing_lines_peak")
    axis.set_title("models: false sharing; trace: remote frees", fontsize=9)
    axis.set_ylabel("64 B lines shared by 2+ threads (peak)")
    axis.set_ylim(bottom=0, top=max(1.0, axis.get_ylim()[1]))
    _threads_axis(axis, point)
    remote = next((model for model in point["models"] if model["status"] == "ok"), None)
    if remote is not None:
        right = axis.twinx()
        right.plot([1, point["threads"]], [100 * remote["one"]["remote_free_rate"],
                                           100 * remote["many"]["remote_free_rate"]],
                   color="#000000", linestyle="--", linewidth=1, label="remote-free rate (trace)")
        right.set_ylim(0, 105)
        right.set_ylabel("remote frees, % of frees")
