"""Call-depth traces: one row per CALL or RETURN of a goroutine, plus GC points (the goroutine-stack workloads).

A heap trace (`workloads.trace`) says which blocks a program allocates; a
call-depth trace says how deep its goroutines' stacks go, which is what a
goroutine-stack model (`allocators.gostack`) replays.  Three columns:

| column      | dtype | meaning                                                               |
|-------------|-------|-----------------------------------------------------------------------|
| `op`        | int8  | 0 CALL, 1 RETURN, 2 GC                                                |
| `frame`     | int64 | CALL: bytes the call puts on the stack, 1..MAX_FRAME; RETURN, GC: 0    |
| `goroutine` | int32 | goroutine making the call or return, 0..MAX_GOROUTINES-1; GC: 0        |

plus `meta` (JSON: `kind: "calldepth"`, the generator, its parameters, the seed).

A CALL's `frame` is the whole stack cost of the call: on amd64 the 8 B return
address the CALL instruction pushes plus the callee's frame, the `$F` of
`TEXT f(SB), ABIInternal, $F-A` in `go build -gcflags=-S` output (locals,
spill space for the callees' register arguments and the saved frame pointer).
A RETURN pops the goroutine's newest frame.  A goroutine exists from its first
CALL until its depth is back to 0: that RETURN ends it (its stack is freed),
and a later CALL with the same id starts a new goroutine.  A GC row is a
garbage collection: the stack models scan every live goroutine there (and the
contiguous one may shrink it).

Validation (`CallTrace.validate`, a jitted pass, once at construction or load)
raises one `TraceError` naming the first bad row: an unknown op, a frame out
of range, a RETURN at depth 0, a GC row with a frame or a goroutine, a
goroutine id out of range; and the columns' dtypes and lengths.  It also
returns each goroutine's peak depth, which the models size their frame tables
by, so a kernel never indexes past them.

Files: `.npz` (the three columns and `meta`; headers are checked before any
data is read, as for heap traces) or `.csv` (`op,frame,goroutine`, op as
`call|return|gc`) for hand-written traces.

Generators (seeded with `numpy.random.Generator(PCG64(seed))`, `CALLDEPTH`
names them for `bench list` and `bench stacks -w`):

- `randomwalk`: each row, a goroutine picked at random calls (probability
  `p_call`) or returns; a goroutine at depth 1 always calls, so it lives to the
  end, where every goroutine returns to depth 0.  Frame sizes are log-normal
  with median `frame` and `sigma`, rounded up to 8 B, at least 16 B.
- `recursion`: descend `depth` calls of `frame` bytes, return all the way up,
  repeat (each descent is a fresh goroutine): the doubling sequence of a
  contiguous stack, once per repeat.
- `boundary`: descend `depth` calls of `frame` bytes, then a loop that calls a
  function of `callee` bytes (plus `jitter` further nested calls of `frame`
  bytes, a random number from 0 to `jitter` each iteration) and returns, until
  `ops` rows, then return up.  At the depth where the callee's call crosses a
  segment boundary every iteration splits the stack: the hot split.  With the
  defaults (frame 128, callee 256, depth 62) that is the end of Go 1.2's
  first 8 KiB segment.

`gc_every=K` (every generator) puts a GC row after every K rows.
"""

from __future__ import annotations

import csv
import json
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.trace import (
    NPY_HEADER_ERRORS,
    TraceError,
    _npz_header,
    _npz_meta,
    check_columns,
    check_rows_fit,
)

holds_kernels(__file__)

OP_CALL = 0
OP_RETURN = 1
OP_GC = 2
OP_NAMES = ("call", "return", "gc")
#: Largest frame a CALL may carry (16 MiB; the Go compiler moves locals over 10 MiB to the heap).
MAX_FRAME = 1 << 24
#: Goroutines are numbered 0 .. MAX_GOROUTINES-1.
MAX_GOROUTINES = 1 << 16
KIND = "calldepth"
COLUMNS = (("op", np.int8), ("frame", np.int64), ("goroutine", np.int32))

_E_OK = 0
_E_OP = 1
_E_FRAME = 2
_E_RETURN_EMPTY = 3
_E_NOT_ZERO = 4
_E_GOROUTINE = 5
_E_GC_GOROUTINE = 6


@njit(cache=True)
def _validate_kernel(op, frame, goroutine, max_frame, max_goroutines, peak):
    """Check every row; fill `peak` (per goroutine, its largest depth).  Return (first bad row or -1, code)."""
    depth = np.zeros(peak.shape[0], np.int64)
    for row in range(op.shape[0]):
        code = op[row]
        g = goroutine[row]
        if code < 0 or code > 2:
            return row, _E_OP
        if g < 0 or g >= max_goroutines:
            return row, _E_GOROUTINE
        if code == OP_CALL:
            if frame[row] < 1 or frame[row] > max_frame:
                return row, _E_FRAME
            depth[g] += 1
            if depth[g] > peak[g]:
                peak[g] = depth[g]
        elif frame[row] != 0:
            return row, _E_NOT_ZERO
        elif code == OP_RETURN:
            if depth[g] == 0:
                return row, _E_RETURN_EMPTY
            depth[g] -= 1
        elif g != 0:
            return row, _E_GC_GOROUTINE
    return -1, _E_OK


def _describe(row: int, code: int, op: int, frame: int, goroutine: int) -> str:
    name = OP_NAMES[op].upper() if 0 <= op < 3 else str(op)
    reasons = {
        _E_OP: f"unknown op code {op} (expected 0 call, 1 return, 2 gc)",
        _E_FRAME: f"CALL frame {frame} outside 1..{MAX_FRAME} bytes",
        _E_RETURN_EMPTY: f"RETURN on goroutine {goroutine} at depth 0 (no frame to return from)",
        _E_NOT_ZERO: f"{name} carries frame {frame} (only a CALL has a frame; expected 0)",
        _E_GOROUTINE: f"goroutine {goroutine} outside 0..{MAX_GOROUTINES - 1}",
        _E_GC_GOROUTINE: f"GC row names goroutine {goroutine} (a GC scans every goroutine; expected 0)",
    }
    return f"row {row}: {reasons.get(code, f'error {code}')}"


@dataclass(eq=False)
class CallTrace:
    """Three equal-length columns and a metadata dict; construction validates (`TraceError` at the first bad row)."""

    op: np.ndarray
    frame: np.ndarray
    goroutine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.peak_depth = self.validate()

    def __len__(self) -> int:
        return int(self.op.shape[0])

    @property
    def n_goroutines(self) -> int:
        """Goroutine ids the trace uses: the largest + 1."""
        return int(self.peak_depth.shape[0])

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.op, minlength=3) if len(self) else np.zeros(3, np.int64)
        return {name: int(found[code]) for code, name in enumerate(OP_NAMES)}

    def validate(self) -> np.ndarray:
        """Check the columns and every row; return each goroutine's peak depth (int64)."""
        check_columns(self, COLUMNS)
        if not isinstance(self.meta, dict):
            raise TraceError("meta must be a dict")
        top = int(self.goroutine.max()) if len(self) else 0
        peak = np.zeros(min(max(top, 0), MAX_GOROUTINES - 1) + 1, np.int64)
        row, code = _validate_kernel(self.op, self.frame, self.goroutine, MAX_FRAME, MAX_GOROUTINES, peak)
        if row >= 0:
            raise TraceError(_describe(int(row), int(code), int(self.op[row]), int(self.frame[row]),
                                       int(self.goroutine[row])), row=int(row))
        return peak

    # --------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> None:
        """Write `.npz` (canonical) or `.csv`, chosen by the suffix."""
        path = Path(path)
        meta = {**self.meta, "kind": KIND}
        if path.suffix == ".npz":
            np.savez_compressed(path, op=self.op, frame=self.frame, goroutine=self.goroutine,
                                meta=np.array(json.dumps(meta, sort_keys=True)))
        elif path.suffix == ".csv":
            with path.open("w", newline="") as handle:
                handle.write("op,frame,goroutine\n")
                for op, frame, goroutine in zip(self.op.tolist(), self.frame.tolist(), self.goroutine.tolist(),
                                                strict=True):
                    handle.write(f"{OP_NAMES[op]},{frame},{goroutine}\n")
        else:
            raise TraceError(f"{path}: unknown call-depth trace suffix '{path.suffix}' (use .npz or .csv)")

    @classmethod
    def load(cls, path: str | Path) -> CallTrace:
        """Read and validate a `.npz` or `.csv` call-depth trace; any problem is a TraceError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"{path}: no such file")
        if path.suffix == ".csv":
            return _load_csv(path)
        if path.suffix != ".npz":
            raise TraceError(f"{path}: unknown call-depth trace suffix '{path.suffix}' (use .npz or .csv)")
        try:
            with warnings.catch_warnings(), np.load(path, allow_pickle=False) as archive:
                warnings.simplefilter("ignore", UserWarning)
                missing = [name for name, _ in COLUMNS if name not in archive.files]
                if missing:
                    hint = " (a heap trace: replay it with bench replay)" if "obj" in archive.files else ""
                    raise TraceError(f"{path}: missing column(s) {', '.join(missing)}{hint}")
                rows = _check_headers(archive, path)
                check_rows_fit(rows, f"loading {path}", "generate a shorter call-depth trace")
                columns = {name: archive[name] for name, _ in COLUMNS}
                meta = _npz_meta(archive, path)
        except TraceError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, RuntimeError, NotImplementedError,
                *NPY_HEADER_ERRORS) as error:
            raise TraceError(f"{path}: truncated or corrupt npz file ({error})") from None
        try:
            return cls(**columns, meta=meta)
        except TraceError as error:
            raise TraceError(f"{path}: {error}") from None


def _check_headers(archive: Any, path: Path) -> int:
    """Rows of an npz call-depth trace from its columns' headers (dtype, one dimension, equal lengths), unread."""
    length = -1
    for name, dtype in COLUMNS:
        shape, fortran, found = _npz_header(archive, name, path)
        if found != dtype:
            raise TraceError(f"{path}: column '{name}' has dtype {found}, expected {np.dtype(dtype).name}")
        if len(shape) != 1 or fortran:
            raise TraceError(f"{path}: column '{name}' has {len(shape)} dimensions, expected 1")
        if length < 0:
            length = int(shape[0])
        elif shape[0] != length:
            raise TraceError(f"{path}: column '{name}' has {shape[0]} rows, column 'op' has {length}")
    return length


def _load_csv(path: Path) -> CallTrace:
    ops: list[int] = []
    frames: list[int] = []
    goroutines: list[int] = []
    check_rows_fit(path.stat().st_size // 7, f"loading {path}", "write the trace as .npz")
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [cell.strip() for cell in header] != ["op", "frame", "goroutine"]:
                raise TraceError(f"{path}: line 1: expected the header op,frame,goroutine")
            for line, cells in enumerate(reader, start=2):
                if len(cells) != 3:
                    raise TraceError(f"{path}: line {line}: expected 3 fields op,frame,goroutine")
                name = cells[0].strip().lower()
                if name not in OP_NAMES:
                    raise TraceError(f"{path}: line {line}: unknown op '{cells[0]}' (call, return or gc)")
                try:
                    frame, goroutine = int(cells[1]), int(cells[2])
                except ValueError:
                    raise TraceError(f"{path}: line {line}: frame and goroutine must be integers") from None
                if not (-(1 << 62) < frame < 1 << 62 and -(1 << 30) < goroutine < 1 << 30):
                    raise TraceError(f"{path}: line {line}: frame or goroutine out of range")
                ops.append(OP_NAMES.index(name))
                frames.append(frame)
                goroutines.append(goroutine)
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text file") from None
    try:
        return CallTrace(np.array(ops, np.int8), np.array(frames, np.int64), np.array(goroutines, np.int32),
                         meta={"kind": KIND, "source": str(path)})
    except TraceError as error:
        raise TraceError(f"{path}: {error}") from None


def from_rows(rows: list[tuple[int, int, int]], meta: dict[str, Any] | None = None) -> CallTrace:
    """A validated call-depth trace from (op, frame, goroutine) tuples (tests, hand-made examples)."""
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return CallTrace(table[:, 0].astype(np.int8), table[:, 1].copy(), table[:, 2].astype(np.int32),
                     meta={"kind": KIND, **(meta or {})})


def descend(frames: list[int] | np.ndarray, meta: dict[str, Any] | None = None) -> CallTrace:
    """One goroutine calling through `frames` (outermost first) and returning all the way up."""
    frames = np.asarray(frames, np.int64)
    op = np.concatenate([np.full(frames.size, OP_CALL, np.int8), np.full(frames.size, OP_RETURN, np.int8)])
    frame = np.concatenate([frames, np.zeros(frames.size, np.int64)])
    return CallTrace(op, frame, np.zeros(op.size, np.int32), meta={"kind": KIND, **(meta or {})})
