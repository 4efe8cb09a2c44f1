"""Runs to figures: per program and allocator the median and the min..max of each measure, and the same
normalised to glibc.

Only runs whose status is "ok" count (`bench.real.measured.Run`); the others are counted and their reasons kept,
never averaged in.  Normalised figures divide each ok run of an allocator by the median of glibc's ok runs of the
same program and measure: the bar is the median of those ratios (= the allocator's median over glibc's), the
spread their min..max, so glibc's own bar shows how much glibc's runs vary around 1.0 and every allocator's spread
is its own repeats' (not the spread of a ratio of two spreads, which would double count glibc's noise).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.real.measured import Run

#: The measures of a run: attribute of `Run`, its header, its unit.
MEASURES = {"wall_s": ("wall", "s"), "user_s": ("user", "s"), "sys_s": ("sys", "s"), "cpu_s": ("user + sys", "s"),
            "max_rss_bytes": ("peak RSS", "bytes")}
REFERENCE = "glibc"


@dataclass(frozen=True)
class Spread:
    """Median and min..max of a measure over the ok runs."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        return cls(statistics.median(values), min(values), max(values)) if values else None


@dataclass
class Cell:
    """One program under one allocator: how many runs, how many ok, the spreads, and why the others were not."""

    allocator: str
    runs: int
    ok: int
    spreads: dict[str, Spread] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def median(self, measure: str) -> float | None:
        spread = self.spreads.get(measure)
        return None if spread is None else spread.median


def summarise(allocator: str, runs: Sequence[Run]) -> Cell:
    """The cell of `allocator`'s runs (of one program)."""
    ok = [run for run in runs if run.ok]
    cell = Cell(allocator, len(runs), len(ok))
    for measure in MEASURES:
        spread = Spread.of([float(getattr(run, measure)) for run in ok])
        if spread is not None:
            cell.spreads[measure] = spread
    cell.reasons = list(dict.fromkeys(f"{run.status}: {run.reason}" for run in runs if not run.ok))
    return cell


def normalised(runs: Sequence[Run], reference: Sequence[Run], measure: str) -> Spread | None:
    """`runs`' ok values of `measure` over the median of `reference`'s ok values (None without both)."""
    base = Spread.of([float(getattr(run, measure)) for run in reference if run.ok])
    if base is None or base.median <= 0:
        return None
    return Spread.of([float(getattr(run, measure)) / base.median for run in runs if run.ok])
