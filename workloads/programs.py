"""Program workloads: catalog entries that bring a generator of their own instead of sizes x lifetime x threads.

Most catalog workloads compose a size distribution, a lifetime model and a
thread model (`workloads.generator`).  A *program* workload models a whole
program instead: `goescape` (a Go-like program after escape analysis,
workloads/escape.py) and the classic allocator benchmarks of mimalloc-bench
(workloads/classics/).  Its catalog entry (`catalog.Workload.program`) names
a `Program`, and the catalog asks it for what it asks the composed workloads:

- `resolve(given, defaults, convert)`: the spec's keys (text values) and the
  catalog entry's defaults -> (every flat parameter in force, JSON-able; the
  parsed parameters the other methods take).  A bad key or value is a
  ValueError naming the key; the catalog prefixes the spec;
- `rows(parsed, n_ops)`: the rows `make` holds in memory (the catalog refuses
  a trace this machine cannot hold, `workloads.trace.check_rows_fit`);
- `make(parsed, n_ops, seed, meta)`: the Trace, `meta` (the catalog's
  `workload`, `spec`, `params`) merged into its own;
- `make_chunks(parsed, n_ops, seed, meta, chunk_rows)`: the same rows in
  chunks of at most `chunk_rows`, with `.meta` up front, iterated once.  A
  program that streams does so in memory bounded by its own state; one that
  cannot (goescape's walk needs the whole program) generates the trace whole
  and hands it out with `WholeChunks`.

A program may also have `run(parsed, n_ops, seed, meta)`, the program's run
beyond its heap trace (goescape's frame table and sites: `catalog.program`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from workloads.trace import Trace

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Program(Protocol):
    """What the catalog asks of a program workload (module docstring)."""

    def resolve(self, given: dict[str, str], defaults: dict[str, Any], convert: Any) -> tuple[dict[str, Any], Any]:
        ...

    def rows(self, parsed: Any, n_ops: int) -> int:
        ...

    def make(self, parsed: Any, n_ops: int, seed: int, meta: dict[str, Any]) -> Trace:
        ...

    def make_chunks(self, parsed: Any, n_ops: int, seed: int, meta: dict[str, Any], chunk_rows: int) -> Any:
        ...


def check_chunk_rows(chunk_rows: Any) -> int:
    """`chunk_rows` as an int >= 1 (ValueError naming it)."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1 (got {chunk_rows})")
    return int(chunk_rows)


class WholeChunks:
    """A trace generated whole, handed out as (op, obj, size, thread) tuples of at most `chunk_rows` rows, once:
    `make_chunks` of a program that cannot stream."""

    def __init__(self, trace: Trace, chunk_rows: int) -> None:
        self.chunk_rows = check_chunk_rows(chunk_rows)
        self.meta = trace.meta
        self._trace: Trace | None = trace

    def __iter__(self) -> Iterator[Columns]:
        if self._trace is None:
            raise RuntimeError("a WholeChunks can be iterated only once")
        trace, self._trace = self._trace, None
        return self._pieces(trace)

    def _pieces(self, trace: Trace) -> Iterator[Columns]:
        for start in range(0, len(trace), self.chunk_rows):
            end = start + self.chunk_rows
            yield trace.op[start:end], trace.obj[start:end], trace.size[start:end], trace.thread[start:end]
