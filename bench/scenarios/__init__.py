"""Scenarios: questions the lab answers with a designed experiment rather than one sweep cell.

A scenario builds its own traces (catalog workloads or a trace kind of its
own), runs them through the same harness as `sweep` (bench.harness), and
returns a typed report that the CLI prints and writes under `reports/<name>/`
(CSV and JSON of the figures, plots).  Each scenario is one module here with
a design docstring, a Python entry point that takes typed arguments (re-exported
by bench.api) and one `python -m bench NAME` subcommand, a thin layer over it.

`SCENARIOS` names each one with the one line `python -m bench list` prints.
"""

from __future__ import annotations

#: name -> one-line description (`python -m bench list --scenarios`); each name is also a subcommand.
SCENARIOS: dict[str, str] = {
    "escape": "Go escape analysis over the escape ratio 0..1, with and without it: heap allocations avoided, GC "
              "cycles, footprint, locality, speed (--check-go: the rules against the Go compiler)",
    "pools": "object pools, regions and arenas against the Go heap on request churn: heap allocations avoided, "
    "GC cycles, peak footprint, speed",
    "safety": "fault classes x allocator modes (models and real allocators): detection rate, latency, cost",
    "stacks": "goroutine stacks, segmented (Go <= 1.2) vs contiguous (Go >= 1.3): hot splits, copies, real Go",
}
