"""The trace: one row per allocator operation, four numpy columns.

A trace is what every workload generator produces, what every importer
produces and what every allocator replays.  It is a plain struct of arrays:

| column   | dtype | meaning                                                        |
|----------|-------|----------------------------------------------------------------|
| `op`     | int8  | 0 ALLOC, 1 FREE, 2 REALLOC, 3 ACCESS                           |
| `obj`    | int64 | object id; ALLOC takes an id that is not live, the others name a live one |
| `size`   | int64 | bytes requested (ALLOC, REALLOC), bytes touched from the start (ACCESS, 0 = whole), 0 (FREE) |
| `thread` | int32 | simulated thread performing the operation                      |

plus `meta`, a JSON-able dict (generator, parameters, seed).

Validation happens once, when a trace is built or loaded: `validate()` runs a
jitted pass that keeps one state byte per object id and stops at the first bad
row, raising `TraceError` with the row number and the reason.  Kernels that
replay a trace afterwards trust the arrays and do no checks of their own.

Object ids may be any non-negative int64 (an importer may use addresses; a
generator numbers objects in allocation order), unique while the object is
live.  For replay each row gets a *slot* (`slots`, `workloads.slots`): a dense
per-object table index that is reused after a free, so the replay's
per-object tables hold `n_slots` = the peak number of live objects, however
many objects the trace allocates.  `facts()` gives the aggregates an allocator
is sized by (`workloads.facts.TraceFacts`).

Files: `.npz` (numpy `savez_compressed` of the four columns plus `meta` as a
JSON string) is canonical; `.csv` with header `op,obj,size,thread` and ops
written as `alloc|free|realloc|access` is for hand-written traces.

Call-depth traces, the other trace kind, are the goroutine-stack models'
input (`workloads.calldepth`, generators in `workloads.callgen`): per row a
CALL (with the bytes the call puts on the stack), a RETURN or a GC, and the
goroutine; columns `op` (int8: 0 call, 1 return, 2 gc), `frame` (int64) and
`goroutine` (int32), `meta` with `kind: "calldepth"`, in `.npz` or `.csv`
(`op,frame,goroutine`).  They have their own op codes and columns, so no heap
trace file changes meaning; loading one as a heap trace says what it is.
"""

from __future__ import annotations

import json
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from labcore.memory import NotEnoughMemory, check_fits

holds_kernels(__file__)

OP_ALLOC = 0
OP_FREE = 1
OP_REALLOC = 2
OP_ACCESS = 3
OP_NAMES = ("alloc", "free", "realloc", "access")

#: Largest request a trace may carry (1 TiB); larger sizes are a TraceError.
MAX_REQUEST_SIZE = 1 << 40
#: Bytes a row costs a command that holds a whole trace in memory: its columns (21 B), the dense ids and slots,
#: the replay's log (16 B) and the metric passes' buffers.  Measured peak RSS slopes on lognormal, 1M -> 4M rows:
#: `bench run` 57 B, `bench replay --log` 64 B, `bench trace gen -o X.npz` 25 B; this is their upper bound with
#: a margin.  Loading or generating more rows than the machine's memory holds at this rate is refused up front.
IN_MEMORY_BYTES_PER_ROW = 96
#: A CSV row is at least 11 bytes ("free,1,0,0\n") and costs its Python parse ~200 B: bytes of memory per byte.
CSV_BYTES_PER_FILE_BYTE = 20
#: Simulated threads are numbered 0 .. MAX_THREADS-1.
MAX_THREADS = 1024

COLUMNS = (("op", np.int8), ("obj", np.int64), ("size", np.int64), ("thread", np.int32))


class TraceError(ValueError):
    """A trace (in memory or in a file) is malformed; the message names the first bad row."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


# Error codes returned by the validation kernel.
_E_OK = 0
_E_OP = 1
_E_OBJ_NEGATIVE = 2
_E_THREAD = 3
_E_ALLOC_LIVE = 4
_E_SIZE_NONPOSITIVE = 5
_E_SIZE_TOO_LARGE = 6
_E_NOT_LIVE = 7
_E_DOUBLE_FREE = 8
_E_FREE_SIZE = 9
_E_ACCESS_SIZE = 10

_OBJ_NEVER = 0
_OBJ_LIVE = 1
_OBJ_FREED = 2


@njit(cache=True)
def _validate_kernel(op, obj, dense, size, thread, n_ids, max_size, max_threads):
    """Return (first bad row or -1, error code). One state byte per object id."""
    state = np.zeros(n_ids, np.int8)
    current_size = np.zeros(n_ids, np.int64)
    for row in range(op.shape[0]):
        code = op[row]
        if code < 0 or code > 3:
            return row, _E_OP
        if obj[row] < 0:
            return row, _E_OBJ_NEGATIVE
        if thread[row] < 0 or thread[row] >= max_threads:
            return row, _E_THREAD
        ident = dense[row]
        request = size[row]
        if code == OP_ALLOC:
            if state[ident] == _OBJ_LIVE:
                return row, _E_ALLOC_LIVE
            if request <= 0:
                return row, _E_SIZE_NONPOSITIVE
            if request > max_size:
                return row, _E_SIZE_TOO_LARGE
            state[ident] = _OBJ_LIVE
            current_size[ident] = request
        elif code == OP_FREE:
            if state[ident] == _OBJ_FREED:
                return row, _E_DOUBLE_FREE
            if state[ident] == _OBJ_NEVER:
                return row, _E_NOT_LIVE
            if request != 0:
                return row, _E_FREE_SIZE
            state[ident] = _OBJ_FREED
        elif code == OP_REALLOC:
            if state[ident] != _OBJ_LIVE:
                return row, _E_NOT_LIVE
            if request <= 0:
                return row, _E_SIZE_NONPOSITIVE
            if request > max_size:
                return row, _E_SIZE_TOO_LARGE
            current_size[ident] = request
        else:
            if state[ident] != _OBJ_LIVE:
                return row, _E_NOT_LIVE
            if request < 0 or request > current_size[ident]:
                return row, _E_ACCESS_SIZE
    return -1, _E_OK


def _dense_ids(obj: np.ndarray) -> tuple[np.ndarray, int]:
    """Map object ids to 0..n_ids-1; ids that are already small are kept as they are."""
    if obj.size == 0:
        return obj, 0
    low, high = int(obj.min()), int(obj.max())
    if low >= 0 and high < 2 * obj.size + 1024:
        return obj, high + 1
    uniques, inverse = np.unique(obj, return_inverse=True)
    return inverse.astype(np.int64), int(uniques.size)


@dataclass(eq=False)
class Trace:
    """Four equal-length columns and a metadata dict. Construction validates."""

    op: np.ndarray
    obj: np.ndarray
    size: np.ndarray
    thread: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    validate_on_init: bool = field(default=True, repr=False)
    #: A fault trace's injected faults (`workloads.faults.FaultTable`); only with meta "fault_trace": true.
    faults: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._dense: tuple[np.ndarray, int] | None = None
        self._slots: tuple[np.ndarray, int] | None = None
        self._facts: Any = None
        self._validated = False
        if self.validate_on_init:
            self.validate()

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.op.shape[0])

    @property
    def n_threads(self) -> int:
        return int(self.thread.max()) + 1 if len(self) else 1

    @property
    def dense_obj(self) -> np.ndarray:
        """Object ids remapped to 0..n_ids-1 (the form kernels index with)."""
        if self._dense is None:
            self._dense = _dense_ids(self.obj)
        return self._dense[0]

    @property
    def n_ids(self) -> int:
        if self._dense is None:
            self._dense = _dense_ids(self.obj)
        return self._dense[1]

    @property
    def slots(self) -> np.ndarray:
        """Per row, the object's slot: a table index reused after a free (`workloads.slots`)."""
        if self._slots is None:
            from workloads.slots import assign_slots

            self.require_valid()  # the slot kernel trusts the rows: a trace built unvalidated is validated here
            self._slots = assign_slots(self.op, self.dense_obj, self.n_ids)
        return self._slots[0]

    @property
    def n_slots(self) -> int:
        """Slots the trace uses: the largest number of objects live at once."""
        self.slots  # noqa: B018  (computes both)
        assert self._slots is not None
        return self._slots[1]

    def facts(self):  # -> workloads.facts.TraceFacts (imported lazily: facts imports this module)
        """The aggregates an allocator is sized and parameterised by (`workloads.facts.TraceFacts`)."""
        if self._facts is None:
            from workloads.facts import FactsAccumulator
            from workloads.slots import peak_live_bytes

            accumulator = FactsAccumulator()
            accumulator.add(self.op, self.size, self.thread)
            live_bytes = peak_live_bytes(self.op, self.slots, self.size, self.n_slots)
            self._facts = accumulator.finish(self.n_slots, live_bytes)
        return self._facts

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.op, minlength=4) if len(self) else np.zeros(4, np.int64)
        return {name: int(found[code]) for code, name in enumerate(OP_NAMES)}

    def requested_bytes(self) -> int:
        """Sum of bytes requested by ALLOC and REALLOC rows."""
        grows = (self.op == OP_ALLOC) | (self.op == OP_REALLOC)
        return int(self.size[grows].sum())

    def peak_live_objects(self) -> int:
        """Largest number of objects live at once."""
        return self.n_slots if len(self) else 0

    def max_request(self) -> int:
        grows = (self.op == OP_ALLOC) | (self.op == OP_REALLOC)
        return int(self.size[grows].max()) if grows.any() else 0

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check dtypes, lengths, op codes, ids, sizes and threads; raise TraceError at the first bad row."""
        length = check_columns(self, COLUMNS)
        if not isinstance(self.meta, dict):
            raise TraceError("meta must be a dict")
        if length == 0:
            self._check_faults()
            self._validated = True
            return
        dense, n_ids = _dense_ids(self.obj)  # also handles negative ids, which the kernel reports
        row, code = _validate_kernel(
            self.op, self.obj, dense, self.size, self.thread, n_ids, MAX_REQUEST_SIZE, MAX_THREADS
        )
        if row >= 0:
            raise TraceError(self._describe(int(row), int(code)), row=int(row))
        self._dense = (dense, n_ids)
        self._check_faults()
        self._validated = True

    def _check_faults(self) -> None:
        """A fault table only in a trace marked as a fault trace, and every fault valid at its row."""
        if self.faults is None and not self.meta.get("fault_trace"):
            return
        from workloads.faults import check_fault_trace

        self.faults = check_fault_trace(self)

    def require_valid(self) -> None:
        """validate() unless it passed already: what every path to a kernel calls first (slots, a replay), so a
        Trace built with `validate_on_init=False` is validated before any kernel reads it.  Columns changed in
        place after validation are the caller's to re-validate (`validate()`)."""
        if not self._validated:
            self.validate()

    def _describe(self, row: int, code: int) -> str:
        return describe_error(row, code, int(self.op[row]), int(self.obj[row]), int(self.size[row]),
                              int(self.thread[row]))

    # --------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> None:
        """Write `.npz` (canonical) or `.csv`, chosen by the suffix, or a chunked directory (a path ending in '/')."""
        from workloads.chunked import is_chunked_path, save_chunked

        if is_chunked_path(path):
            if self.faults is not None:
                raise TraceError(f"{path}: a fault trace is saved as .npz or .csv, not as a chunked directory")
            save_chunked(self, path)
            return
        path = Path(path)
        if path.suffix == ".csv":
            save_csv(self, path)
        elif path.suffix == ".npz":
            np.savez_compressed(
                path, op=self.op, obj=self.obj, size=self.size, thread=self.thread,
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
                **(self.faults.arrays() if self.faults is not None else {}),
            )
        else:
            raise TraceError(f"{path}: unknown trace suffix '{path.suffix}' (use .npz, .csv or DIR/)")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read and validate a `.npz` or `.csv` trace, or a chunked directory, into memory; any problem is a
        TraceError naming the file (a chunked directory too large for memory is read with `open_trace`)."""
        path = Path(path)
        if not path.exists():
            raise TraceError(f"{path}: no such file")
        if path.is_dir():
            from workloads.chunked import ChunkedTrace

            return ChunkedTrace(path).load()
        if path.suffix == ".csv":
            csv_bytes = path.stat().st_size
            check_fits(f"loading {path} ({csv_bytes:,} B of CSV)", csv_bytes * CSV_BYTES_PER_FILE_BYTE,
                       "write the trace as .npz, or as a chunked directory (DIR/) read chunk by chunk")
            return load_csv(path)
        if path.suffix != ".npz":
            raise TraceError(f"{path}: unknown trace suffix '{path.suffix}' (use .npz, .csv or DIR/)")
        with open(path, "rb") as handle:
            starts_like_a_zip = handle.read(4) == b"PK\x03\x04"
        if not starts_like_a_zip:
            raise TraceError(f"{path}: not an npz archive (a .npy or another file renamed .npz?)")
        try:
            with warnings.catch_warnings(), np.load(path, allow_pickle=False) as archive:
                warnings.simplefilter("ignore", UserWarning)  # numpy's note on a Python 2 header: not a 2nd line
                missing = [name for name, _ in COLUMNS if name not in archive.files]
                if missing and "frame" in archive.files:
                    raise TraceError(f"{path}: a call-depth trace (workloads.calldepth), not a heap trace: run it "
                                     f"on the stack models with python -m bench stacks --trace {path}")
                if missing:
                    raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
                check_rows_fit(_npz_check_headers(archive, path), f"loading {path}",
                               "write the trace as a chunked directory (DIR/), which is read chunk by chunk")
                columns = {name: archive[name] for name, _ in COLUMNS}
                meta = _npz_meta(archive, path)
                faults = _npz_faults(archive, path)
        except (TraceError, NotEnoughMemory):
            raise
        # zipfile raises RuntimeError for an encrypted member, NotImplementedError for an unknown compression
        # method, zlib.error for corrupt deflate data: every one a corrupt file, never a traceback.
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, RuntimeError, NotImplementedError,
                *NPY_HEADER_ERRORS) as error:
            raise TraceError(f"{path}: truncated or corrupt npz file ({error})") from None
        try:
            return cls(**columns, meta=meta, faults=faults)
        except TraceError as error:
            raise TraceError(f"{path}: {error}") from None


def check_columns(table: Any, columns: tuple[tuple[str, Any], ...]) -> int:
    """The columns of a struct of arrays (attribute name, dtype) are 1-d numpy arrays of their dtypes and one
    length (TraceError naming the first that is not); made C-contiguous in place.  Returns the length."""
    length = None
    for name, dtype in columns:
        column = getattr(table, name)
        if not isinstance(column, np.ndarray):
            raise TraceError(f"column '{name}' is {type(column).__name__}, expected a numpy array")
        if column.dtype != dtype:
            raise TraceError(f"column '{name}' has dtype {column.dtype}, expected {np.dtype(dtype).name}")
        if column.ndim != 1:
            raise TraceError(f"column '{name}' has {column.ndim} dimensions, expected 1")
        if length is None:
            length = column.shape[0]
        elif column.shape[0] != length:
            raise TraceError(f"column '{name}' has {column.shape[0]} rows, column '{columns[0][0]}' has {length}")
    for name, _ in columns:
        if not getattr(table, name).flags.c_contiguous:
            setattr(table, name, np.ascontiguousarray(getattr(table, name)))
    return int(length or 0)


def check_rows_fit(rows: int, what: str, fix: str) -> None:
    """NotEnoughMemory (a ValueError, exit 2) when `rows` rows held in memory would not fit this machine."""
    check_fits(f"{what} ({rows:,} rows in memory)", rows * IN_MEMORY_BYTES_PER_ROW, fix)


def _npz_check_headers(archive: Any, path: Path) -> int:
    """The row count of an npz trace, from its columns' `.npy` headers, which are checked before any data is
    read: dtype (an object array, i.e. pickled data, is refused unread), one dimension, equal lengths.  So a
    header claiming a huge shape is refused, not allocated."""
    length = 0
    for name, dtype in COLUMNS:
        shape, fortran, found = _npz_header(archive, name, path)
        if found != dtype:
            what = "is an object array (pickled data, refused unread)" if found.hasobject else f"has dtype {found}"
            raise TraceError(f"{path}: column '{name}' {what}, expected {np.dtype(dtype).name}")
        if len(shape) != 1 or fortran:
            raise TraceError(f"{path}: column '{name}' has {len(shape)} dimensions, expected 1")
        if name == "op":
            length = int(shape[0])
        elif shape[0] != length:
            raise TraceError(f"{path}: column '{name}' has {shape[0]} rows, column 'op' has {length}")
    return length


#: What numpy's `.npy` header parser raises on a corrupt header besides ValueError: it evaluates the header
#: with `ast.literal_eval` (SyntaxError, RecursionError when nested deep) and retries old headers through
#: `tokenize` (TokenError).
NPY_HEADER_ERRORS = (ValueError, SyntaxError, tokenize.TokenError, RecursionError)


def _npz_header(archive: Any, name: str, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of member `name` of an npz archive, from its header alone."""
    with archive.zip.open(f"{name}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(member)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(member)
    raise TraceError(f"{path}: '{name}' has .npy format version {version}")


#: Largest `meta` string an npz trace may carry (a generator's meta is a few hundred bytes).
MAX_META_CHARS = 1 << 20


def _npz_meta(archive: Any, path: Path) -> dict[str, Any]:
    """The JSON `meta` of an npz trace ({} without one); a meta that is not a JSON object is a TraceError."""
    if "meta" not in archive.files:
        return {}
    shape, _, dtype = _npz_header(archive, "meta", path)  # checked before it is read: no pickle, no huge string
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_META_CHARS:
        raise TraceError(f"{path}: meta is an array of dtype {dtype} and shape {shape}, expected a JSON string")
    try:
        meta = json.loads(str(archive["meta"]))
    except (ValueError, RecursionError) as error:  # RecursionError: '[[[[...' nested beyond Python's stack
        raise TraceError(f"{path}: meta is not valid JSON ({type(error).__name__})") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{path}: meta is JSON {type(meta).__name__}, expected an object")
    return meta


def _npz_faults(archive: Any, path: Path) -> Any:
    """The fault table stored in an npz trace (`fault_*` arrays), or None; each array's header is checked before
    it is read (one dimension of int64, equal lengths, no huge allocation from a lying header)."""
    names = ("fault_at", "fault_kind", "fault_obj", "fault_param")
    present = [name in archive.files for name in names]
    if not any(present):
        return None
    if not all(present):
        missing = [name for name, found in zip(names, present, strict=True) if not found]
        raise TraceError(f"{path}: fault table incomplete: missing {', '.join(missing)}")
    lengths = set()
    for name in names:
        shape, fortran, dtype = _npz_header(archive, name, path)
        if dtype != np.int64 or len(shape) != 1 or fortran:
            raise TraceError(f"{path}: '{name}' has dtype {dtype} and shape {shape}, expected a 1-d int64 array")
        lengths.add(int(shape[0]))
    if len(lengths) != 1:
        raise TraceError(f"{path}: the fault arrays have different lengths")
    check_rows_fit(lengths.pop(), f"loading the faults of {path}", "inject fewer faults")
    from workloads.faults import FaultTable

    return FaultTable.of(*(archive[name] for name in names))


def describe_error(row: int, code: int, op: int, ident: int, request: int, thread: int) -> str:
    """The message of a validation error `code` at `row` (whose op, obj, size and thread are given)."""
    op_name = OP_NAMES[op].upper() if 0 <= op < 4 else str(op)
    reasons = {
        _E_OP: f"unknown op code {op} (expected 0 alloc, 1 free, 2 realloc, 3 access)",
        _E_OBJ_NEGATIVE: f"negative object id {ident}",
        _E_THREAD: f"thread {thread} outside 0..{MAX_THREADS - 1}",
        _E_ALLOC_LIVE: f"ALLOC reuses object id {ident} while it is still live",
        _E_SIZE_NONPOSITIVE: f"{op_name} of object {ident} with size {request} (must be > 0)",
        _E_SIZE_TOO_LARGE: f"{op_name} of object {ident} with size {request} above the maximum {MAX_REQUEST_SIZE}",
        _E_NOT_LIVE: f"{op_name} of object {ident}, which is not live",
        _E_DOUBLE_FREE: f"double free of object {ident}",
        _E_FREE_SIZE: f"FREE of object {ident} with size {request} (must be 0)",
        _E_ACCESS_SIZE: f"ACCESS of object {ident} touches {request} bytes, outside 0..object size",
    }
    return f"row {row}: {reasons.get(code, f'error code {code}')}"


def from_rows(rows: list[tuple[int, int, int, int]], meta: dict[str, Any] | None = None) -> Trace:
    """Build a validated trace from (op, obj, size, thread) tuples (tests, small examples)."""
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return Trace(
        op=table[:, 0].astype(np.int8), obj=table[:, 1].copy(), size=table[:, 2].copy(),
        thread=table[:, 3].astype(np.int32), meta=dict(meta or {}),
    )


def save_csv(trace: Trace, path: Path) -> None:
    """Rows as `op,obj,size,thread` lines; a fault trace's faults as lines at their place (`workloads.faults`)."""
    faults: list[tuple[int, str]] = []
    if trace.faults is not None:
        from workloads.faults import CSV_MARKER, FAULT_KINDS

        faults = [(at, f"{FAULT_KINDS[kind]},{ident},{param},0\n") for at, kind, ident, param in zip(
            trace.faults.at.tolist(), trace.faults.kind.tolist(), trace.faults.obj.tolist(),
            trace.faults.param.tolist(), strict=True)]
    next_fault = 0
    with open(path, "w") as out:
        out.write("op,obj,size,thread\n")
        if trace.faults is not None:
            out.write(CSV_MARKER + "\n")
        for row, (op, ident, request, thread) in enumerate(zip(
            trace.op.tolist(), trace.obj.tolist(), trace.size.tolist(), trace.thread.tolist(), strict=True
        )):
            while next_fault < len(faults) and faults[next_fault][0] == row:
                out.write(faults[next_fault][1])
                next_fault += 1
            out.write(f"{OP_NAMES[op]},{ident},{request},{thread}\n")
        for _, line in faults[next_fault:]:
            out.write(line)


def _csv_faults(rows: list[tuple[int, int, int, int]]) -> Any:
    from workloads.faults import FaultTable

    return FaultTable.of(*(np.array([row[index] for row in rows], np.int64) for index in range(4)))


def load_csv(path: Path) -> Trace:
    names = {name: code for code, name in enumerate(OP_NAMES)}
    ops: list[int] = []
    line_of_row: list[int] = []
    objs: list[int] = []
    sizes: list[int] = []
    threads: list[int] = []
    from workloads.faults import CSV_MARKER, FAULT_KINDS

    fault_trace = False
    fault_rows: list[tuple[int, int, int, int]] = []  # (at, kind, obj, param)
    try:
        with open(path, encoding="utf-8-sig") as source:  # a UTF-8 byte-order mark is skipped
            header = source.readline().strip().replace(" ", "")
            if header != "op,obj,size,thread":
                raise TraceError(f"{path}: line 1: expected header 'op,obj,size,thread', got '{header}'")
            for line_number, line in enumerate(source, start=2):
                line = line.strip()
                if line == CSV_MARKER and not ops:
                    fault_trace = True
                if not line or line.startswith("#"):
                    continue
                fields = [part.strip() for part in line.split(",")]
                if len(fields) != 4:
                    raise TraceError(f"{path}: line {line_number}: expected 4 fields, got {len(fields)}")
                op_text = fields[0].lower()
                if op_text in FAULT_KINDS:
                    if not fault_trace:
                        raise TraceError(f"{path}: line {line_number}: fault row '{op_text}' in a trace that is not "
                                         f"a fault trace (a fault trace has the line '{CSV_MARKER}' first)")
                    try:
                        ident, param = int(fields[1]), int(fields[2])
                    except ValueError:
                        raise TraceError(f"{path}: line {line_number}: obj and param must be integers") from None
                    fault_rows.append((len(ops), FAULT_KINDS.index(op_text), ident, param))
                    continue
                if op_text not in names:
                    raise TraceError(
                        f"{path}: line {line_number}: unknown op '{fields[0]}' (alloc|free|realloc|access)"
                    )
                try:
                    numbers = [int(part) for part in fields[1:]]
                except ValueError:
                    raise TraceError(f"{path}: line {line_number}: obj, size and thread must be integers") from None
                if not (-(1 << 63) <= numbers[0] < (1 << 63)) or not (-(1 << 63) <= numbers[1] < (1 << 63)):
                    raise TraceError(f"{path}: line {line_number}: value out of int64 range")
                if not (-(1 << 31) <= numbers[2] < (1 << 31)):
                    raise TraceError(f"{path}: line {line_number}: thread out of int32 range")
                line_of_row.append(line_number)
                ops.append(names[op_text])
                objs.append(numbers[0])
                sizes.append(numbers[1])
                threads.append(numbers[2])
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not UTF-8 text (a CSV trace is text: op,obj,size,thread)") from None
    try:
        return Trace(
            op=np.array(ops, np.int8), obj=np.array(objs, np.int64), size=np.array(sizes, np.int64),
            thread=np.array(threads, np.int32),
            meta={"source": str(path), **({"fault_trace": True} if fault_trace else {})},
            faults=_csv_faults(fault_rows) if fault_trace else None,
        )
    except TraceError as error:
        line = f" (line {line_of_row[error.row]})" if error.row is not None else ""
        raise TraceError(f"{path}: {error}{line}", row=error.row) from None
