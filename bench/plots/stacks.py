"""Figures of a stacks report (`python -m bench stacks --out OUT`): OUT/plots/hot_split.png, stacks_memory.png and,
with real Go, real_vs_model.png.

1. `hot_split.png`: the boundary loop (a call of 256 B and its return,
   repeated, below `depth` frames of 128 B) at every loop depth of the sweep.
   Top: segment allocations per 1000 calls, one line per model: a segmented
   stack spikes to ~1000 (one allocation per iteration) at the depths where the
   loop's call crosses a segment boundary, the contiguous stack stays near 0
   (its doublings happen once).  Middle: splits (segmented: a new segment
   entered, through morestack and lessstack) or growths (contiguous) per 1000
   calls: `keep=1` avoids the allocations but not the splits.  Bottom: the
   model kernel's time per call (median of the repeats; timings vary from run
   to run, and a model's time is not the runtime's).
2. `stacks_memory.png`: per workload, each model's peak stack bytes (all
   goroutines) and the bytes it copied (log axis) (contiguous stacks copy on
   growth and shrink; segmented ones copy only arguments, which the traces do
   not carry), averaged over the seeds.
3. `real_vs_model.png`: stack bytes against recursion depth, real Go's
   (markers) and the contiguous model's (lines), one color per frame size.

What to look at: the spikes of the segmented lines (where, and that they are
absent from the contiguous line), and the real markers sitting on the model
lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import ticker

from bench.plots.style import RC, allocator_styles, binary_locator, bytes_formatter, new_figure, save_figure


def draw_stacks(out: str | Path) -> list[Path]:
    """Draw the stacks figures of a saved report into OUT/plots; return the files written."""
    out = Path(out)
    document = json.loads((out / "stacks.json").read_text())
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(row["model"] for row in document["cells"] + document["hot"]))
    styles = allocator_styles(models)
    written = []
    with matplotlib.rc_context(RC):
        if document["hot"]:
            written.append(_hot_split(document["hot"], models, styles, plots / "hot_split.png"))
        if document["cells"]:
            written.append(_memory(document["cells"], models, styles, plots / "stacks_memory.png"))
        if document["real"]:
            written.append(_real(document["real"], document.get("real_steps", {}), plots / "real_vs_model.png"))
    return written


def _hot_split(hot: list[dict[str, Any]], models: list[str], styles: dict[str, Any], path: Path) -> Path:
    figure = new_figure(9.0, 7.4)
    axes = figure.subplots(3, 1, sharex=True, height_ratios=(3, 2, 2))
    panels = (("seg_allocs_per_kcall", "segment allocations\nper 1000 calls"),
              ("splits_per_kcall", "splits or growths\nper 1000 calls"),
              ("ns_per_call", "model time\nper call (ns)"))
    for model in models:
        points = sorted((row["depth"], *(row[key] for key, _ in panels)) for row in hot if row["model"] == model)
        if not points:
            continue
        depths, *series = zip(*points, strict=True)
        style = styles[model]
        for ax, values in zip(axes, series, strict=True):
            ax.plot(depths, values, color=style.color, marker=style.marker, markersize=3, linewidth=1.2,
                    linestyle=style.linestyle, label=model)
    for ax, (_, label) in zip(axes, panels, strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title("The hot split: a loop that calls a 256 B function and returns, below N frames of 128 B")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title="stack model")
    axes[-1].set_xlabel("loop depth N (frames of 128 B below the loop: N x 128 B of stack in use)")
    save_figure(figure, path)
    return path


def _memory(cells: list[dict[str, Any]], models: list[str], styles: dict[str, Any], path: Path) -> Path:
    workloads = list(dict.fromkeys(cell["workload"] for cell in cells))
    means: dict[tuple[str, str], dict[str, float]] = {}
    for workload in workloads:
        for model in models:
            members = [c for c in cells if c["workload"] == workload and c["model"] == model]
            if members:
                means[workload, model] = {key: sum(m[key] for m in members) / len(members)
                                          for key in ("peak_reserved", "bytes_copied")}
    figure = new_figure(max(7.0, 1.5 * len(workloads) + 3), 6.4)
    axes = figure.subplots(2, 1, sharex=True)
    width = 0.8 / max(len(models), 1)
    for ax, key, label in ((axes[0], "peak_reserved", "peak stack bytes\n(all goroutines)"),
                           (axes[1], "bytes_copied", "bytes copied")):
        for index, model in enumerate(models):
            xs = [w + (index - (len(models) - 1) / 2) * width for w in range(len(workloads))]
            values = [means.get((workload, model), {}).get(key, 0.0) for workload in workloads]
            floor = 0.5 if key == "bytes_copied" else 0.0
            ax.bar(xs, [max(v, floor) for v in values], width=width, color=styles[model].color, label=model)
        if key == "bytes_copied":  # from none (the 1 B floor) to megabytes
            ax.set_yscale("log", base=16)
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        else:
            ax.yaxis.set_major_locator(binary_locator(max((m[key] for m in means.values()), default=1.0)))
        ax.yaxis.set_major_formatter(bytes_formatter())
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("Stack memory and copying per workload (mean over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=7, title="stack model")
    axes[1].set_xticks(range(len(workloads)), [w.replace(":", "\n").replace(",", "\n") for w in workloads],
                       fontsize=7)
    axes[1].set_xlabel("call-depth workload (bars at the bottom: none copied)")
    save_figure(figure, path)
    return path


def _real(rows: list[dict[str, Any]], steps: dict[str, list[list[int]]], path: Path) -> Path:
    figure = new_figure(7.5, 4.8)
    ax = figure.add_subplot()
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for index, variant in enumerate(dict.fromkeys(row["variant"] for row in rows)):
        points = sorted((row["depth"], row["real_stack_bytes"], row["frame"]) for row in rows
                        if row["variant"] == variant)
        color = colors[index % len(colors)]
        line = steps.get(variant) or [[d, size] for d, size, _ in points]
        deepest = points[-1][0]
        ax.plot([max(d, 0.3) for d, _ in line] + [max(deepest, 0.3)], [s for _, s in line] + [line[-1][1]],
                color=color, linewidth=1.2, drawstyle="steps-post", label=f"model, frame {points[0][2]} B")
        ax.plot([max(d, 0.3) for d, *_ in points], [p[1] for p in points], color=color, marker="o",
                linestyle="none", markersize=6, markerfacecolor="none",
                label=f"real {rows[0]['go_version']}, frame {points[0][2]} B")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(bytes_formatter())
    ax.set_xlabel("recursion depth (calls below the goroutine's entry function; 0 drawn at 0.3)")
    ax.set_ylabel("goroutine stack size")
    ax.set_title("Contiguous stack model vs the real Go runtime (GOGC=off, GOMAXPROCS=1)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    save_figure(figure, path)
    return path
