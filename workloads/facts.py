"""TraceFacts: what must be known about a whole trace before replaying it, in a few numbers.

An allocator is sized and parameterised for a trace before its first row
(`Allocator.capacity_for_trace`, `params_for_trace`), and the replay's tables
and timeline are allocated up front.  For a trace in memory these come from
its arrays; for a trace streamed from a generator or read chunk by chunk from
disk, from one pass over its chunks (`FactsAccumulator`), or from the
`meta.json` of a chunked trace directory that recorded them when it was
written.  So the facts hold only aggregates, never a per-row array:

- `rows`, the row count of each op (`allocs`, `frees`, `reallocs`, `accesses`);
- `n_threads` (highest thread + 1), `peak_live_objects` (= the slots the
  replay's per-object tables need, `workloads.slots`), `peak_live_bytes`
  (the largest sum of requested sizes live at once, which the default
  capacity is sized from; facts written before it existed read it as
  `requested_bytes`, an upper bound);
- `max_request` and `requested_bytes` (sum over ALLOC and REALLOC rows);
- `request_sizes`, `request_counts`: the histogram of ALLOC and REALLOC
  request sizes rounded up to 16 B (sorted distinct values and their counts),
  from which any per-request sum over 16 B-granular sizes is exact
  (`default_capacity`, the region allocator's chunk count).  It has at most one
  entry per distinct 16 B size class present (65 536 for sizes up to 1 MiB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workloads.trace import OP_ALLOC, OP_REALLOC

#: Request sizes are histogrammed rounded up to this granule.
GRANULE = 16


@dataclass(frozen=True, eq=False)
class TraceFacts:
    rows: int = 0
    allocs: int = 0
    frees: int = 0
    reallocs: int = 0
    accesses: int = 0
    n_threads: int = 1
    peak_live_objects: int = 0
    peak_live_bytes: int = 0
    max_request: int = 0
    requested_bytes: int = 0
    request_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    request_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraceFacts) and self.to_json() == other.to_json()

    @property
    def requests(self) -> int:
        """ALLOC and REALLOC rows."""
        return self.allocs + self.reallocs

    def granule_sum(self, per_request: int = 0) -> int:
        """Sum over ALLOC and REALLOC rows of (size rounded up to 16 B + `per_request`), exactly."""
        return int((self.request_counts * (self.request_sizes + per_request)).sum())

    def to_json(self) -> dict[str, Any]:
        out = {name: int(getattr(self, name)) for name in (
            "rows", "allocs", "frees", "reallocs", "accesses", "n_threads", "peak_live_objects", "peak_live_bytes",
            "max_request", "requested_bytes")}
        out["request_sizes"] = self.request_sizes.tolist()
        out["request_counts"] = self.request_counts.tolist()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TraceFacts:
        """Read facts back (ValueError when fields are missing or not integers)."""
        def integer(name: str, value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):  # 6.5, "6", true: not a count
                raise ValueError(f"trace facts: {name} is {value!r}, expected an integer")
            if not 0 <= value < 1 << 63:
                raise ValueError(f"trace facts: {name} is {value}, outside 0..2^63-1")
            return value

        try:
            scalars = {name: integer(name, data[name]) for name in (
                "rows", "allocs", "frees", "reallocs", "accesses", "n_threads", "peak_live_objects",
                "max_request", "requested_bytes")}
            scalars["peak_live_bytes"] = integer("peak_live_bytes",
                                                 data.get("peak_live_bytes", scalars["requested_bytes"]))
            lists = {name: data[name] for name in ("request_sizes", "request_counts")}
            for name, values in lists.items():
                if not isinstance(values, list):
                    raise ValueError(f"trace facts: {name} is not a list")
                for value in values:
                    integer(name, value)
            sizes = np.asarray(lists["request_sizes"], np.int64)
            counts = np.asarray(lists["request_counts"], np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"trace facts are incomplete or malformed ({error})") from None
        if sizes.shape != counts.shape:
            raise ValueError("trace facts are malformed (request_sizes and request_counts differ in length)")
        facts = cls(**scalars, request_sizes=sizes, request_counts=counts)
        facts.check()
        return facts

    def check(self) -> None:
        """ValueError naming the first inconsistency between the facts (of a file: they may lie), before
        anything is sized by them: op counts that do not add up to the rows, a thread count, a peak or a
        request size out of range, a histogram that does not match the request count."""
        from workloads.trace import MAX_REQUEST_SIZE, MAX_THREADS

        requests = self.allocs + self.reallocs
        problems = [
            (self.allocs + self.frees + self.reallocs + self.accesses != self.rows,
             f"op counts add up to {self.allocs + self.frees + self.reallocs + self.accesses}, rows is {self.rows}"),
            (not 1 <= self.n_threads <= MAX_THREADS, f"n_threads {self.n_threads} outside 1..{MAX_THREADS}"),
            (self.peak_live_objects > self.allocs,
             f"peak_live_objects {self.peak_live_objects} above the {self.allocs} allocations"),
            (self.max_request > MAX_REQUEST_SIZE, f"max_request {self.max_request} above {MAX_REQUEST_SIZE}"),
            (self.requested_bytes > requests * self.max_request,
             f"requested_bytes {self.requested_bytes} above {requests} requests of at most {self.max_request} B"),
            (self.peak_live_bytes > self.requested_bytes,
             f"peak_live_bytes {self.peak_live_bytes} above requested_bytes {self.requested_bytes}"),
            (int(self.request_counts.sum()) != requests or bool((self.request_counts <= 0).any()),
             f"request_counts do not add up to the {requests} requests"),
            (bool((np.diff(self.request_sizes) <= 0).any() or (self.request_sizes % GRANULE).any()
                  or (self.request_sizes.size and (self.request_sizes[0] <= 0
                      or self.request_sizes[-1] > -(-self.max_request // GRANULE) * GRANULE))),
             f"request_sizes are not increasing multiples of {GRANULE} up to max_request"),
        ]
        for wrong, message in problems:
            if wrong:
                raise ValueError(f"trace facts are inconsistent: {message}")


class FactsAccumulator:
    """Facts of a trace seen chunk by chunk; `finish(peak_live_objects)` once every chunk was added."""

    def __init__(self) -> None:
        self.rows = 0
        self.op_counts = np.zeros(4, np.int64)
        self.max_thread = -1
        self.max_request = 0
        self.requested_bytes = 0
        self.histogram: dict[int, int] = {}

    def add(self, op: np.ndarray, size: np.ndarray, thread: np.ndarray) -> None:
        if not op.shape[0]:
            return
        self.rows += op.shape[0]
        self.op_counts += np.bincount(op, minlength=4)[:4]
        self.max_thread = max(self.max_thread, int(thread.max()))
        requests = size[(op == OP_ALLOC) | (op == OP_REALLOC)]
        if requests.size:
            self.max_request = max(self.max_request, int(requests.max()))
            self.requested_bytes += int(requests.sum())
            sizes, counts = np.unique((requests + GRANULE - 1) // GRANULE * GRANULE, return_counts=True)
            for value, count in zip(sizes.tolist(), counts.tolist(), strict=True):
                self.histogram[value] = self.histogram.get(value, 0) + count

    def finish(self, peak_live_objects: int, peak_live_bytes: int) -> TraceFacts:
        sizes = np.array(sorted(self.histogram), np.int64)
        counts = np.array([self.histogram[value] for value in sizes.tolist()], np.int64)
        allocs, frees, reallocs, accesses = (int(count) for count in self.op_counts)
        return TraceFacts(
            rows=self.rows, allocs=allocs, frees=frees, reallocs=reallocs, accesses=accesses,
            n_threads=self.max_thread + 1 if self.rows else 1, peak_live_objects=int(peak_live_objects),
            peak_live_bytes=int(peak_live_bytes),
            max_request=self.max_request, requested_bytes=self.requested_bytes,
            request_sizes=sizes, request_counts=counts,
        )


def as_facts(trace_or_facts: Any) -> TraceFacts:
    """The facts of a Trace (or of anything with `facts()`), or the TraceFacts given."""
    if isinstance(trace_or_facts, TraceFacts):
        return trace_or_facts
    facts = getattr(trace_or_facts, "facts", None)
    if callable(facts):
        return facts()
    raise TypeError(f"expected a Trace or TraceFacts, got {type(trace_or_facts).__name__}")
