"""What the figures and the page read: a sweep's results loaded once, with the orders and aggregates they share.

`load_report(OUT)` reads `OUT/results.json` (leniently, through
`bench.results.load_results`) and `OUT/heapmap.npz` when present, and orders
the allocators (the sweep's order, `meta.allocators`, then first appearance)
and the workloads (by family in order of first appearance, then by swept
parameter value).  Aggregates: `cell_values` / `cell_medians` (a metric per
allocator x workload over the ok seeds, the median is what every figure
shows), `failed_cells` (no seed ok, at least one failed; skipped cells are
not failures, `skipped_cells` lists them), `number` (a row's value as a
finite float or None).

Kinds of allocator (`allocator_kind`, `ReportData.kind`): a general-purpose
model (`GENERAL`, the allocator class declares `general_purpose`), a
special-purpose model (`SPECIAL`: `linear`, `pool`, `stack`, `region`: shown
greyed, kept out of the verdicts and the Pareto front) or a real allocator
(`REAL`, `real:NAME`: the scale the models are seen against).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.results import ResultRow, load_results

GENERAL, SPECIAL, REAL = "general", "special", "real"
REAL_PREFIX = "real:"


def allocator_kind(spec: str) -> str:
    """GENERAL, SPECIAL or REAL for an allocator spec of the results (an unknown model name counts as general:
    results may name an allocator this checkout does not have, and nothing says it is special)."""
    if spec.startswith(REAL_PREFIX):
        return REAL
    from allocators import registry
    from allocators.errors import BadParameter

    try:
        return GENERAL if registry.general_purpose(spec) else SPECIAL
    except (BadParameter, ValueError):
        return GENERAL


class SkipFigure(Exception):
    """A figure cannot be drawn from these results; the message says why (shown on the page)."""


# ------------------------------------------------------------------ results
@dataclass
class ReportData:
    """What the figures read: a sweep's results (`bench.results`), the allocator and workload orders, the heap map."""

    directory: Path
    meta: dict[str, Any]
    rows: list[ResultRow]
    allocators: list[str]
    workloads: list[str]
    heapmap: dict[str, Any] | None  # arrays of heapmap.npz (+ "meta" dict), None when absent
    heapmap_error: str = ""  # why heapmap.npz could not be read ("" when absent or fine)
    kinds: dict[str, str] = field(default_factory=dict)  # allocator spec -> GENERAL, SPECIAL or REAL

    def kind(self, spec: str) -> str:
        """GENERAL, SPECIAL or REAL (`allocator_kind`, remembered per spec)."""
        if spec not in self.kinds:
            self.kinds[spec] = allocator_kind(spec)
        return self.kinds[spec]

    def ok_rows(self) -> list[ResultRow]:
        return [row for row in self.rows if row.ok]

    def has_metric(self, metric: str) -> bool:
        """True when at least one ok cell has a finite value of `metric`."""
        return any(number(row, metric) is not None for row in self.ok_rows())

    @property
    def seeds(self) -> list[int]:
        return sorted({row["seed"] for row in self.rows})


def number(row: Mapping[str, Any], key: str) -> float | None:
    """row[key] as a finite float, or None (absent, null, not a number, NaN, infinite)."""
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _spec_items(spec: str) -> tuple[str, list[str]]:
    name, _, rest = spec.partition(":")
    return name, [item.strip() for item in rest.split(",") if item.strip()]


def sweep_group(row: dict[str, Any]) -> tuple[str, str, str] | None:
    """(family, param, the workload spec without the swept item) of a swept row, None if not swept.

    Rows of `lognormal:sigma=0.5` and `lognormal:sigma=2` share the group
    ('lognormal', 'sigma', 'lognormal'); `lognormal:threads=4,sigma=1` belongs
    to ('lognormal', 'sigma', 'lognormal:threads=4').
    """
    if row["param"] is None:
        return None
    family, items = _spec_items(row["workload"])
    others = [item for item in items if item.partition("=")[0].strip() != row["param"]]
    base = family + (":" + ",".join(others) if others else "")
    return row["family"], row["param"], base


#: Swept parameters that count threads: their families are the scalability figure's, not the waste figure's.
THREAD_PARAMS = ("threads", "producers", "consumers")


def param_lines(rows: Sequence[dict[str, Any]], spec: str, metric: str,
                scale: float = 1.0) -> tuple[list[float], list[float], set[str]]:
    """One allocator's line over a swept group's rows: the parameter values, the median of `metric` (times
    `scale`) over the seeds at each, and the workloads where its cells failed (left out of the line)."""
    per_x: dict[float, list[float]] = {}
    failed: set[str] = set()
    for row in rows:
        if row["allocator"] != spec:
            continue
        value = number(row, metric) if row["status"] == "ok" else None
        if value is not None:
            per_x.setdefault(row["param_value"], []).append(value * scale)
        elif row["status"] == "failed":
            failed.add(row["workload"])
    xs = sorted(per_x)
    return xs, [statistics.median(per_x[x]) for x in xs], failed


def ordered_workloads(rows: Sequence[dict[str, Any]]) -> list[str]:
    family_rank: dict[str, int] = {}
    group_rank: dict[Any, int] = {}
    first: dict[str, tuple] = {}
    for index, row in enumerate(rows):
        family_rank.setdefault(row["family"], len(family_rank))
        group = sweep_group(row) or ("", "", row["workload"])
        group_rank.setdefault(group, len(group_rank))
        if row["workload"] not in first:
            value = row["param_value"] if row["param_value"] is not None else -math.inf
            first[row["workload"]] = (family_rank[row["family"]], group_rank[group], value, index)
    return sorted(first, key=first.__getitem__)


def ordered_allocators(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    listed = meta.get("allocators")
    order = [str(spec) for spec in listed] if isinstance(listed, list) else []
    for row in rows:
        if row["allocator"] not in order:
            order.append(row["allocator"])
    return order


def _load_heapmap(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {key: data[key] for key in data.files}
    meta = out.get("meta")
    if meta is not None:
        try:
            out["meta"] = json.loads(str(meta.item() if meta.shape == () else meta.tobytes().decode()))
        except (ValueError, UnicodeDecodeError):
            out["meta"] = {}
    else:
        out["meta"] = {}
    return out


def load_report(results_dir: Path) -> ReportData:
    """Read OUT/results.json (leniently, `bench.results.load_results`) and OUT/heapmap.npz if present.

    Raises FileNotFoundError when results.json is missing and ValueError when it
    is not a results file (not JSON, no `rows` list).
    """
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    rows, meta = results.rows, results.meta
    heapmap, heapmap_error = None, ""
    heapmap_path = results_dir / "heapmap.npz"
    if heapmap_path.is_file():
        try:
            heapmap = _load_heapmap(heapmap_path)
        except (OSError, ValueError, KeyError) as error:
            heapmap_error = f"heapmap.npz could not be read: {error}"
    return ReportData(
        directory=results_dir, meta=meta, rows=rows, allocators=ordered_allocators(rows, meta),
        workloads=ordered_workloads(rows), heapmap=heapmap, heapmap_error=heapmap_error,
    )


def cell_values(results: ReportData, metric: str) -> dict[tuple[str, str], list[float]]:
    """{(allocator, workload): [metric of each ok seed]} (cells without a value are absent)."""
    values: dict[tuple[str, str], list[float]] = {}
    for row in results.ok_rows():
        value = number(row, metric)
        if value is not None:
            values.setdefault((row["allocator"], row["workload"]), []).append(value)
    return values


def cell_medians(results: ReportData, metric: str) -> dict[tuple[str, str], float]:
    """{(allocator, workload): median over seeds of `metric`} over the ok cells that have it."""
    return {key: statistics.median(values) for key, values in cell_values(results, metric).items()}


def failed_cells(results: ReportData) -> set[tuple[str, str]]:
    """(allocator, workload) pairs where no seed succeeded and at least one failed (skipped is not failed)."""
    ok = {(row["allocator"], row["workload"]) for row in results.ok_rows()}
    return {(row["allocator"], row["workload"]) for row in results.rows if row["status"] == "failed"} - ok


def skipped_cells(results: ReportData) -> set[tuple[str, str]]:
    """(allocator, workload) pairs skipped as not applicable on every seed."""
    other = {(row["allocator"], row["workload"]) for row in results.rows if not row.skipped}
    return {(row["allocator"], row["workload"]) for row in results.rows if row.skipped} - other

