"""Scenarios: questions the lab answers with a designed experiment rather than one sweep cell.

A scenario builds its own traces (catalog workloads or a trace kind of its
own), runs them through the same harness as `sweep` (bench.harness), and
returns a typed report that the CLI prints and writes under `reports/<name>/`
(CSV and JSON of the figures, plots).  Each scenario is one module here with
a design docstring, a Python entry point that takes typed arguments (re-exported
by bench.api) and one `python -m bench NAME` subcommand, a thin layer over it.

`SCENARIOS` names each one with the one line `python -m bench list` prints; `programs` is listed with them
(a subcommand of the same kind) but lives in its own package, `bench.programs`: it measures real programs under
real allocators rather than models on traces.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: name -> one-line description (`python -m bench list --scenarios`); each name is also a subcommand.
SCENARIOS: dict[str, str] = {
    "escape": "Go escape analysis over the escape ratio 0..1, with and without it: heap allocations avoided, GC "
              "cycles, footprint, locality, speed (--check-go: the rules against the Go compiler)",
    "pools": "object pools, regions and arenas against the Go heap on request churn: heap allocations avoided, "
    "GC cycles, peak footprint, speed",
    "programs": "real programs (sqlite3, python3, cc1, xz, zstd, or -- CMD) under each real allocator: time and "
                "peak RSS normalised to glibc, the models' predictions beside (--record)",
    "safety": "fault classes x allocator modes (models and real allocators): detection rate, latency, cost",
    "scaling": "real allocators on 1 and T OS threads (throughput, scaling T/1 with its spread) beside the models' "
               "scalability proxies on the same traces",
    "stacks": "goroutine stacks, segmented (Go <= 1.2) vs contiguous (Go >= 1.3): hot splits, copies, real Go",
}


def save_report(out: str | Path, name: str, document: Mapping[str, Any],
                tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> Path:
    """A scenario's files: OUT/NAME.json (the document) and OUT/TABLE.csv per table (a header from its first
    row; an empty table gives an empty file).  Returns OUT."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=1, default=list))
    for table, rows in (tables or {}).items():
        with (out / f"{table}.csv").open("w", newline="") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
    return out
