"""The classics' driver: a step machine run into trace rows, whole or chunk by chunk, the same rows either way.

A classic (`Classic`) is a catalog program workload (workloads/programs.py):
its keys (a dataclass, workloads/classics/keys.py) and `build(keys, n_ops)`,
which lays out its `Machine`: the kernel (workloads/classics/steps.py says
what a kernel is), the registers, the classic's own arrays and its holding
table.

`run(machine, rng, chunk_rows)` calls the kernel with an output buffer of
`chunk_rows + MAX_STEP_ROWS` rows and `stop_at = chunk_rows`:

- FULL: the first `chunk_rows` rows are a chunk (copied out), the rest move
  to the front of the buffer;
- NEED_DRAWS: the unread uniforms are kept and `DRAW_BLOCK` fresh ones
  appended (`Generator.random` calls in a row read one stream, so where the
  buffer is refilled changes no uniform);
- DRAIN: the drain (`steps.drain`) takes over until DONE; what the buffer
  then holds is the last chunk.

The kernel pauses only between steps and keeps all its state in its arrays,
so the rows are the same whatever `chunk_rows` is: `make` is `run` with one
chunk as large as the trace, `make_chunks` streams in memory bounded by the
classic's state (sized by its keys: slots, batches, threads) and one chunk,
whatever `n_ops`.

Seeds: `numpy.random.Generator(PCG64([seed, tag]))`, the tag a CRC-32 of the
classic's name, so no two classics share a stream.  `meta` records the
generator, its version, the classic, `n_ops`, the seed and (from the
catalog) the workload, the spec and every key in force.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.classics import keys as classic_keys
from workloads.classics.steps import (
    AT,
    DONE,
    DRAIN,
    DRAW,
    EMPTY,
    FULL,
    MAX_STEP_ROWS,
    N_OPS,
    NEED_DRAWS,
    OWN,
    drain,
)
from workloads.generator import MAX_OPS
from workloads.programs import Columns, check_chunk_rows
from workloads.trace import COLUMNS, Trace

GENERATOR_NAME = "workloads.classics"
GENERATOR_VERSION = 1
#: Uniforms drawn at a time.
DRAW_BLOCK = 1 << 16


@dataclass
class Machine:
    """A classic's kernel and its state: `kernel(u, out, stop_at, reg, *arrays)` -> status (steps.py)."""

    kernel: Any
    reg: np.ndarray
    arrays: tuple[np.ndarray, ...]
    hold_obj: np.ndarray
    hold_thread: np.ndarray


def machine(kernel: Any, n_ops: int, own_registers: int, cells: int, *arrays: np.ndarray) -> Machine:
    """A Machine with zeroed registers (`own_registers` of the classic's own after `OWN`), `n_ops` as its budget
    and an empty holding table of `cells` cells; `arrays` are the classic's own, passed to the kernel after the
    registers and before the holding table."""
    reg = np.zeros(OWN + own_registers, np.int64)
    reg[N_OPS] = n_ops
    return Machine(kernel, reg, arrays, np.full(cells, EMPTY, np.int64), np.zeros(cells, np.int32))


def _buffer(rows: int) -> Columns:
    return tuple(np.empty(rows, dtype) for _, dtype in COLUMNS)  # type: ignore[return-value]


def run(state: Machine, rng: np.random.Generator, chunk_rows: int) -> Iterator[Columns]:
    """The machine's rows in chunks of 1..chunk_rows rows (module docstring)."""
    out = _buffer(chunk_rows + MAX_STEP_ROWS)
    reg = state.reg
    u = rng.random(DRAW_BLOCK)
    draining = False
    while True:
        if draining:
            status = drain(reg, out, chunk_rows, state.hold_obj, state.hold_thread)
        else:
            status = state.kernel(u, out, chunk_rows, reg, *state.arrays, state.hold_obj, state.hold_thread)
        if status == NEED_DRAWS:
            u = np.concatenate((u[reg[DRAW]:], rng.random(DRAW_BLOCK)))
            reg[DRAW] = 0
        elif status == DRAIN:
            draining = True
        elif status == FULL:
            while reg[AT] >= chunk_rows:  # a chunk_rows below MAX_STEP_ROWS may hold several chunks
                yield tuple(column[:chunk_rows].copy() for column in out)  # type: ignore[misc]
                rest = int(reg[AT]) - chunk_rows
                for column in out:
                    column[:rest] = column[chunk_rows:chunk_rows + rest]
                reg[AT] = rest
        else:
            assert status == DONE
            if reg[AT]:
                yield tuple(column[:reg[AT]].copy() for column in out)  # type: ignore[misc]
            return


class ClassicChunks:
    """A classic's trace in chunks: `meta` up front; iterating (once) yields (op, obj, size, thread) tuples."""

    def __init__(self, state: Machine, rng: np.random.Generator, chunk_rows: int, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.chunk_rows = chunk_rows
        self._pending: tuple[Machine, np.random.Generator] | None = (state, rng)

    def __iter__(self) -> Iterator[Columns]:
        if self._pending is None:
            raise RuntimeError("a ClassicChunks can be iterated only once")
        state, rng = self._pending
        self._pending = None
        return run(state, rng, self.chunk_rows)


@dataclass(frozen=True)
class Classic:
    """A classic benchmark as a catalog program workload (`workloads.programs.Program`)."""

    name: str
    keys: type
    build: Callable[[Any, int], Machine]

    def resolve(self, given: dict[str, str], defaults: dict[str, Any], convert: Any) -> tuple[dict[str, Any], Any]:
        parsed = classic_keys.parse(self.keys, given, defaults, convert)
        return dataclasses.asdict(parsed), parsed

    def rows(self, parsed: Any, n_ops: int) -> int:
        return int(n_ops)

    def _start(self, parsed: Any, n_ops: int, seed: int, meta: dict[str, Any]) -> tuple[Machine, Any, dict]:
        if isinstance(n_ops, bool) or not isinstance(n_ops, int | np.integer) or not 0 <= n_ops <= MAX_OPS:
            raise ValueError(f"n_ops must be an integer in 0..{MAX_OPS} (got {n_ops})")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer (got {seed})")
        n_ops, seed = int(n_ops), int(seed)
        tag = zlib.crc32(self.name.encode())
        rng = np.random.Generator(np.random.PCG64([seed, tag]))
        full_meta = {"generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "classic": self.name,
                     "seed": seed, "n_ops": n_ops, **meta}
        return self.build(parsed, n_ops), rng, full_meta

    def make(self, parsed: Any, n_ops: int, seed: int, meta: dict[str, Any]) -> Trace:
        state, rng, full_meta = self._start(parsed, n_ops, seed, meta)
        pieces = list(run(state, rng, max(int(n_ops), 1)))
        if not pieces:
            columns = _buffer(0)
        elif len(pieces) == 1:
            columns = pieces[0]
        else:
            columns = tuple(np.concatenate(column) for column in zip(*pieces, strict=True))  # type: ignore
        return Trace(*columns, meta=full_meta)

    def make_chunks(self, parsed: Any, n_ops: int, seed: int, meta: dict[str, Any],
                    chunk_rows: int) -> ClassicChunks:
        chunk_rows = check_chunk_rows(chunk_rows)
        state, rng, full_meta = self._start(parsed, n_ops, seed, meta)
        return ClassicChunks(state, rng, chunk_rows, full_meta)
