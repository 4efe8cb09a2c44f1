"""AllocLog: what one replay produced, per operation and over time.

- `addr[i]`, `granted[i]` for trace row i: the block's address and granted size
  (ALLOC and REALLOC: the new block; FREE: the freed block's address and 0;
  ACCESS: the object's address and 0).
- `timeline`: int64 rows sampled every `sample_every` trace rows, columns
  `row, footprint, live_requested, live_granted, metadata_bytes`.
- exact peaks (footprint, live requested, live granted, metadata), the final
  footprint, and the allocator's event counters;
- `failures`: (row, status) of the rows a keep-going replay recorded as failed
  and skipped (int64 [k, 2]; `n_failures` counts them all), empty otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from allocators.replay import TIMELINE_COLUMNS


@dataclass(eq=False)
class AllocLog:
    allocator: str
    params: dict[str, Any]
    capacity: int
    addr: np.ndarray
    granted: np.ndarray
    timeline: np.ndarray
    sample_every: int
    peak_footprint: int
    peak_live_requested: int
    peak_live_granted: int
    peak_metadata_bytes: int
    final_footprint: int
    final_metadata_bytes: int
    counters: dict[str, int] = field(default_factory=dict)
    failures: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    n_failures: int = 0
    #: A replay fed chunk by chunk keeps no per-row arrays (addr and granted are empty).
    streamed: bool = False

    def summary(self) -> dict[str, Any]:
        """Scalar facts of the replay (no arrays)."""
        facts = {key: value for key, value in asdict(self).items() if not isinstance(value, np.ndarray)}
        facts["timeline_columns"] = list(TIMELINE_COLUMNS)
        return facts

    def save(self, path: str | Path) -> None:
        """Write an `.npz` with int64 arrays `addr`, `granted`, `timeline`, `failures` and a JSON `meta`."""
        np.savez_compressed(
            Path(path), addr=self.addr, granted=self.granted, timeline=self.timeline, failures=self.failures,
            meta=np.array(json.dumps(self.summary(), sort_keys=True, default=str)),
        )

    @classmethod
    def load(cls, path: str | Path) -> AllocLog:
        with np.load(Path(path), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            meta.pop("timeline_columns", None)
            failures = archive["failures"] if "failures" in archive.files else np.zeros((0, 2), np.int64)
            return cls(addr=archive["addr"], granted=archive["granted"], timeline=archive["timeline"],
                       failures=failures, **meta)
