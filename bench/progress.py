"""The sweep's progress bar: progress weighted by what each cell is expected to cost, and a sane ETA.

Cells differ a lot in cost: on the default preset (200 000 rows, 3 repeats,
warm cache, measured with `--jobs 1`) a `linear` cell takes about 40 ms, a
`freelist` (first fit) cell about 210 ms (up to 630 ms), a `real:` cell about
1.6 s whatever its size (a child process that loads its kernels), and a
`stack` cell on a workload that is not LIFO stops at its first out-of-order
free.  Counted in cells, the bar and its ETA would jump with the order of the
cells, so the bar counts *expected cost* instead (`cell_cost`):

    cost = rows x (PER_ROW_NS + repeats x replay ns per row of the allocator)  [+ REAL_CELL_NS]

PER_ROW_NS (trace generation, slots, validation, metric passes) and the replay
costs per row (`REPLAY_NS`, by allocator spec, then by name) are the means
measured per cell on that sweep; an allocator not in the table counts as
`DEFAULT_REPLAY_NS`.  The kernels are compiled before the bar starts (the
sweep's warm-up), so the first cells are not slowed by compiling.

ETA (`eta_seconds`): the cost still to do at the average rate since the bar
started (cost done in this run / its elapsed time: cells resumed from disk do
not count), shown once `MIN_CELLS_FOR_ETA` cells are done; before that the
bar says "ETA after 3 cells".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

#: ns per trace row of a cell beside the replays: generation, slots, validation, metric passes.
PER_ROW_NS = 170.0
#: ns per row of one timed replay, by spec or allocator name (measured means of the default preset's cells).
REPLAY_NS: dict[str, float] = {
    "linear": 8.0, "pool": 10.0, "stack": 9.0, "region": 12.0, "buddy": 29.0, "tcmalloc": 27.0,
    "tcmalloc:legacy": 24.0, "go": 33.0, "go:gc": 27.0, "objpool": 40.0, "freelist:glibc": 48.0, "freelist": 266.0,
}
DEFAULT_REPLAY_NS = 40.0
#: The fixed cost of a real allocator's cell (`real:NAME`): a child process that loads its kernels.
REAL_CELL_NS = 1.6e9
MIN_CELLS_FOR_ETA = 3


def cell_cost(allocator: str, ops: int, repeats: int) -> float:
    """The expected cost of one cell, in ns (a weight: only ratios between cells matter)."""
    if allocator.startswith("real:"):
        return REAL_CELL_NS + ops * (PER_ROW_NS + repeats * DEFAULT_REPLAY_NS)
    name = allocator.partition(":")[0]
    replay = REPLAY_NS.get(allocator, REPLAY_NS.get(name, DEFAULT_REPLAY_NS))
    return ops * (PER_ROW_NS + max(1, repeats) * replay)


def eta_seconds(cost_done: float, cost_total: float, elapsed: float, cells_done: int) -> float | None:
    """Seconds left at the average rate so far (cost done in `elapsed` seconds); None before
    `MIN_CELLS_FOR_ETA` cells or any cost is done."""
    if cells_done < MIN_CELLS_FOR_ETA or cost_done <= 0 or elapsed <= 0:
        return None
    return max(0.0, cost_total - cost_done) * elapsed / cost_done


class SweepBar:
    """A tqdm bar on stderr over the sweep's cells, filled by expected cost, with the cells count and the ETA."""

    def __init__(self, costs: Sequence[float], done_costs: Sequence[float], enabled: bool) -> None:
        self.cells, self.done = len(costs) + len(done_costs), len(done_costs)
        self.total, self.resumed = float(sum(costs) + sum(done_costs)), float(sum(done_costs))
        self.run_cost, self.run_cells, self.started = 0.0, 0, time.perf_counter()
        self.bar = tqdm(total=max(self.total, 1.0), initial=self.resumed, file=sys.stderr, dynamic_ncols=True,
                        disable=not enabled, bar_format="{percentage:3.0f}%|{bar}| {desc}")
        self.note("")
        self.bar.refresh()

    def advance(self, cost: float, last: str) -> None:
        """One cell done (its expected `cost`); `last` says which and how it went."""
        self.done, self.run_cells, self.run_cost = self.done + 1, self.run_cells + 1, self.run_cost + cost
        self.note(last)
        self.bar.update(cost)

    def note(self, last: str) -> None:
        elapsed = time.perf_counter() - self.started
        eta = eta_seconds(self.run_cost, self.total - self.resumed, elapsed, self.run_cells)
        eta_text = (f"ETA {tqdm.format_interval(eta)}" if eta is not None
                    else f"ETA after {MIN_CELLS_FOR_ETA} cells")
        text = f"{self.done}/{self.cells} cells [{tqdm.format_interval(elapsed)}, {eta_text}]"
        self.bar.set_description_str(f"{text} {last}" if last else text, refresh=False)

    def close(self) -> None:
        self.bar.close()
