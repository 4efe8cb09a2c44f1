"""The sweep's tables on the console: one grid per figure, workloads x allocators, medians over seeds.

A sweep prints three grids (`python -m bench sweep`, `bench.sweep.tables`):
the model replay speed (Mops/s), peak footprint and overhead factor.  Each has one row per
workload and one column per allocator spec, wrapped into blocks of columns so
that no line is longer than 100 characters (`bench.table.render`; a spec's
preset goes on a second header line: `freelist` over `:glibc`), whatever the
number of allocators and workloads.

Seeds.  With several seeds a cell is not seed 0's figure but the median over
the seeds whose replay succeeded, followed by the spread: half the range
(max - min) over the median, in percent (`12.3 ±4.1%`), so a figure whose
seeds disagree shows it, and `±0.0%` says the seeds agree.  A cell where some
seeds failed shows how many succeeded (`12.3 ±4.1% 2/3`); one where every seed
failed shows why, abbreviated (`OOM`, `not LIFO`, ...); a cell with no row is
`-`.  The HTML report and the plots take the same medians (`bench.plots`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.table import format_bytes, render, wrap_text

#: (title, how a value is written) of each grid, by the row field it shows.
FIGURES: dict[str, tuple[str, Callable[[float], str]]] = {
    "throughput_mops": ("model replay speed, Mops/s", lambda value: f"{value:.1f}"),
    "peak_footprint": ("peak footprint", format_bytes),
    "overhead_factor": ("overhead factor", lambda value: f"{value:.2f}"),
}


def median_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """(median, half the range in percent of the median) of one cell's values over seeds; spread 0 for one value
    or a zero median."""
    if not values:
        raise ValueError("no values")
    median = statistics.median(values)
    spread = (max(values) - min(values)) / 2
    return median, (100 * spread / abs(median) if median else 0.0)


def format_cell(values: Sequence[float], seeds: int, write: Callable[[float], str]) -> str:
    """One grid cell: the median over the successful seeds' values, then (several seeds) the spread and, when
    some seeds failed, how many succeeded."""
    median, spread = median_and_spread(values)
    text = write(median)
    if seeds > 1:
        text += f" ±{spread:.0f}%" if spread >= 10 else f" ±{spread:.1f}%"
        if len(values) < seeds:
            text += f" {len(values)}/{seeds}"
    return text


def short_header(spec: str) -> str:
    """An allocator spec as a column header: its preset or parameters on a second line (`freelist\\n:glibc`)."""
    name, colon, rest = spec.partition(":")
    return f"{name}\n:{rest}" if colon else name


def _outcome(row: Mapping[str, Any] | Any) -> str:
    from bench.sweep import _short_reason

    status = row["status"]
    return _short_reason(row["reason"] or "") if status == "failed" else str(status)


def grid(rows: Sequence[Any], specs: Sequence[str], workloads: Sequence[str], field: str) -> str:
    """The grid of one figure: a row per workload, a column per allocator spec (blocks of at most 100 columns)."""
    title, write = FIGURES[field]
    seeds = sorted({row["seed"] for row in rows})
    by_cell: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        by_cell.setdefault((row["allocator"], row["workload"]), []).append(row)
    lines = []
    for workload in workloads:
        line = [workload.replace(":", " ")]
        for spec in specs:
            cell = by_cell.get((spec, workload), [])
            values = [float(row[field]) for row in cell if row["status"] == "ok"]
            if values:
                line.append(format_cell(values, len(cell), write))
            else:
                line.append(_outcome(cell[0]) if cell else "-")
        lines.append(line)
    if len(seeds) > 1:
        caption = f"{title}, median of seeds {','.join(map(str, seeds))} ±half their range in % (n/m: seeds ok)"
    else:
        caption = f"{title} (seed {seeds[0]})"
    if field == "throughput_mops" and any(spec.startswith("real:") for spec in specs):
        caption += "; a real:NAME column is the real allocator replaying the same trace, the scale"
    return wrap_text(caption) + "\n" + render(["workload", *(short_header(spec) for spec in specs)], lines)


def tables(rows: Sequence[Any], specs: Sequence[str], workloads: Sequence[str]) -> str:
    """Throughput, peak footprint and overhead factor grids (rows: dicts or `ResultRow`s of every seed)."""
    if not rows:
        return "(no cells)"
    return "\n\n".join(grid(rows, specs, workloads, field) for field in FIGURES)
