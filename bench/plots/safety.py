"""Figures of a safety report (`python -m bench safety --out OUT`): OUT/plots/safety_heatmap.png and safety_cost.png.

1. `safety_heatmap.png`: detection rate per allocator (rows: the models, then
   the real allocators, each real one right under the model that claims to
   follow it when there is one) and fault class (columns, in
   `workloads.faults.FAULT_CLASSES` order), one color scale from 0 % (white)
   to 100 % (dark); each cell says detected/faults and the median latency in
   rows (`@0` = at the faulty call itself).  A class that did not occur for an
   allocator is blank.
2. `safety_cost.png`: detection (the mean of the allocator's per-class rates)
   against slowdown over the same allocator unhardened (real ones: over real
   glibc; log axis), one point per allocator, named in the legend with its
   slowdown.  Needs costs.

What to look at: rows that differ where the mechanisms say they should
(double free after reuse is blank for everyone; a canary catches overflows
only past the slack), and model rows that match their real allocator's row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from bench.plots.style import REAL_PALETTE, new_figure, save_figure
from workloads.faults import FAULT_CLASSES

#: Which real allocator a model spec follows (its row goes right under the model's).
FOLLOWS = {"freelist:glibc": "real:glibc"}


def _row_order(names: list[str]) -> list[str]:
    models = [name for name in names if not name.startswith("real:")]
    order: list[str] = []
    for name in models:
        order.append(name)
        partner = FOLLOWS.get(name)
        if partner in names and partner not in order:
            order.append(partner)
    return order + [name for name in names if name not in order]


def draw_safety(out: str | Path) -> list[Path]:
    """Draw the safety figures of a saved report into OUT/plots; return the files written."""
    out = Path(out)
    document = json.loads((out / "safety.json").read_text())
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = [_heatmap(document["verdicts"], plots / "safety_heatmap.png")]
    if document.get("costs"):
        written.append(_cost(document["verdicts"], document["costs"], plots / "safety_cost.png"))
    return written


def _heatmap(verdicts: list[dict[str, Any]], path: Path) -> Path:
    names = _row_order(list(dict.fromkeys(v["allocator"] for v in verdicts)))
    classes = [klass for klass in FAULT_CLASSES if any(v["fault_class"] == klass for v in verdicts)]
    cells = {(v["allocator"], v["fault_class"]): v for v in verdicts}
    rates = np.full((len(names), len(classes)), np.nan)
    for (name, klass), verdict in cells.items():
        if name in names and klass in classes:
            rates[names.index(name), classes.index(klass)] = verdict["rate"]
    figure = new_figure(1.1 * len(classes) + 2.6, 0.55 * len(names) + 2.0)
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(rates), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for row, name in enumerate(names):
        for column, klass in enumerate(classes):
            verdict = cells.get((name, klass))
            if verdict is None:
                continue
            latency = "" if verdict["median_latency"] is None else f"\n@{verdict['median_latency']:g}"
            ax.text(column, row, f"{verdict['detected']}/{verdict['faults']}{latency}", ha="center", va="center",
                    fontsize=7, color="white" if verdict["rate"] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), [klass.replace(":", "\n") for klass in classes], fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for label, name in zip(ax.get_yticklabels(), names, strict=True):
        label.set_fontweight("bold" if name.startswith("real:") else "normal")
    ax.set_title("faults detected / faults (median latency in rows after the fault; @0 = at the faulty call)",
                 fontsize=9)
    figure.colorbar(image, ax=ax, label="detection rate", shrink=0.8)
    save_figure(figure, path)
    return path


def _cost(verdicts: list[dict[str, Any]], costs: list[dict[str, Any]], path: Path) -> Path:
    by_allocator: dict[str, list[float]] = {}
    for verdict in verdicts:
        by_allocator.setdefault(verdict["allocator"], []).append(verdict["rate"])
    points = [(cost, 100 * float(np.mean(by_allocator[cost["allocator"]]))) for cost in costs
              if cost["slowdown"] is not None and by_allocator.get(cost["allocator"])]
    figure = new_figure(8.5, 4.8)
    ax = figure.add_subplot()
    colors = matplotlib.colormaps["tab20"]
    reals = [cost["allocator"] for cost, _ in points if cost["source"] == "real"]
    for index, (cost, rate) in enumerate(points):
        real = cost["source"] == "real"
        color = REAL_PALETTE[reals.index(cost["allocator"]) % len(REAL_PALETTE)] if real else colors(index % 20)
        ax.scatter(max(cost["slowdown"], 0.5), rate, marker="s" if real else "o", s=48, zorder=3,
                   color=color, edgecolor="white", linewidth=0.5,
                   label=f"{cost['allocator']} ({cost['slowdown']:.2f}x)")
    ax.set_xscale("log")
    ax.axvline(1.0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("slowdown on the clean trace (log; against the same allocator unhardened, real: against glibc)")
    ax.set_ylabel("mean detection rate over fault classes (%)")
    ax.set_ylim(-5, 105)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("what catching misuse costs: models (circles), real allocators (squares)", fontsize=9)
    save_figure(figure, path)
    return path
