"""Chunked trace directories: a trace too large for memory, on disk, read chunk by chunk.

Layout of a directory `T/` (the `.npz` file stays the canonical small form):

    T/op.npy  T/obj.npy  T/size.npy  T/thread.npy   one NumPy .npy file per column
    T/meta.json                                      {"format", "version", "meta", "facts"}

Each column file is a plain, uncompressed `.npy` (int8, int64, int64, int32),
so `numpy.load(T / "size.npy", mmap_mode="r")` maps it without reading it.
`meta.json` holds the trace's meta (generator, parameters, seed, as in an
`.npz`) and its `TraceFacts` (`workloads.facts`: row counts, threads, peak live
objects, the request-size histogram), which an allocator is sized by before
the first row is read.

Writing (`ChunkedTraceWriter`, used by `trace gen -o DIR/` and `trace import
-o DIR/`): chunks are appended to the four files, every row is validated on
the way (`workloads.slots`) and the facts accumulate; `close()` writes the
final `.npy` headers and `meta.json`.  A directory is written under a
temporary name beside the target and renamed into place at the end, so a
killed writer never leaves a half-written trace that looks complete.

Reading (`ChunkedTrace`, a `TraceSource`): the header of every column is
checked (dtype, one dimension, the row count of `meta.json`), then
`chunks(chunk_rows)` reads each column's next rows with one `readinto` into
fresh arrays (memory stays that of the chunks in use, the file is never mapped
whole), assigns slots and validates every row as it goes.  The facts
come from a file and are checked too: a chunk with a thread or more live
objects than the facts say, or a file with other row counts, is a
`TraceError` naming the directory and the row.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy

from workloads.facts import FactsAccumulator, TraceFacts
from workloads.slots import SlotMap
from workloads.stream import DEFAULT_CHUNK_ROWS, TraceChunk, TraceSource, check_chunk_rows, check_columns
from workloads.trace import COLUMNS, NPY_HEADER_ERRORS, Trace, TraceError

FORMAT = "allocator-lab chunked trace"
VERSION = 1
META_FILE = "meta.json"
#: Bytes reserved for each .npy header (rewritten with the final shape at close).
HEADER_BYTES = 128


def is_chunked_path(path: str | Path) -> bool:
    """True for a path that names a chunked trace directory: an existing directory, or a name ending in '/'."""
    return str(path).endswith(os.sep) or Path(path).is_dir()


def _header(dtype: np.dtype, rows: int) -> bytes:
    """A version 1.0 .npy header padded to HEADER_BYTES (so the data starts at the same offset whatever `rows`)."""
    text = repr({"descr": npy.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (rows,)})
    magic = npy.magic(1, 0)
    body = text.encode("latin1")
    padding = HEADER_BYTES - len(magic) - 2 - len(body) - 1
    if padding < 0:
        raise ValueError(f"{rows} rows do not fit a {HEADER_BYTES}-byte .npy header")
    body += b" " * padding + b"\n"
    return magic + len(body).to_bytes(2, "little") + body


class ChunkedTraceWriter:
    """Append chunks of rows to a new chunked trace directory; `close()` (or the `with` block) finishes it."""

    def __init__(self, directory: str | Path, meta: dict[str, Any] | None = None) -> None:
        self.directory = Path(str(directory).rstrip(os.sep) or os.sep)
        if self.directory.exists() and not self.directory.is_dir():
            raise TraceError(f"{self.directory}: exists and is not a directory")
        if self.directory.is_dir() and any(self.directory.iterdir()) and not (self.directory / META_FILE).exists():
            raise TraceError(f"{self.directory}: a non-empty directory that is not a chunked trace; "
                             "refusing to write into it")
        self.meta = dict(meta or {})
        self.partial = self.directory.with_name(f".{self.directory.name}.partial-{os.getpid()}")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.files: dict[str, BinaryIO] = {}
        for name, dtype in COLUMNS:
            handle = open(self.partial / f"{name}.npy", "wb")  # noqa: SIM115  (closed in close())
            handle.write(_header(dtype, 0))
            self.files[name] = handle
        self.slot_map = SlotMap()
        self.facts = FactsAccumulator()
        self.rows = 0
        self.closed = False

    def write(self, op: np.ndarray, obj: np.ndarray, size: np.ndarray, thread: np.ndarray) -> None:
        """Append rows (validated against everything written before)."""
        check_columns(op, obj, size, thread, str(self.directory))
        self.slot_map.assign(op, obj, size, thread, validate=True, first_row=self.rows)
        self.facts.add(op, size, thread)
        for name, column in zip(("op", "obj", "size", "thread"), (op, obj, size, thread), strict=True):
            self.files[name].write(np.ascontiguousarray(column).tobytes())
        self.rows += op.shape[0]

    def close(self) -> Path:
        """Write the headers and meta.json, move the directory into place; return its path."""
        if self.closed:
            return self.directory
        for name, dtype in COLUMNS:
            handle = self.files[name]
            handle.seek(0)
            handle.write(_header(dtype, self.rows))
            handle.close()
        facts = self.facts.finish(self.slot_map.peak_live, self.slot_map.peak_live_bytes)
        document = {"format": FORMAT, "version": VERSION, "meta": self.meta, "facts": facts.to_json()}
        (self.partial / META_FILE).write_text(json.dumps(document, sort_keys=True))
        if self.directory.exists():
            shutil.rmtree(self.directory)
        os.replace(self.partial, self.directory)
        self.closed = True
        return self.directory

    def abort(self) -> None:
        for handle in self.files.values():
            handle.close()
        shutil.rmtree(self.partial, ignore_errors=True)
        self.closed = True

    def __enter__(self) -> ChunkedTraceWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def save_chunked(trace: Trace, directory: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Path:
    """Write an in-memory trace as a chunked directory."""
    with ChunkedTraceWriter(directory, trace.meta) as writer:
        for start in range(0, len(trace), chunk_rows):
            stop = start + chunk_rows
            writer.write(trace.op[start:stop], trace.obj[start:stop], trace.size[start:stop],
                         trace.thread[start:stop])
    return writer.directory


class ChunkedTrace(TraceSource):
    """A chunked trace directory, read chunk by chunk (see the module docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.label = str(directory)
        where = str(self.directory)
        if not self.directory.is_dir():
            raise TraceError(f"{where}: no such trace directory")
        try:
            document = json.loads((self.directory / META_FILE).read_text())
        except FileNotFoundError:
            raise TraceError(f"{where}: no {META_FILE} (not a chunked trace directory)") from None
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise TraceError(f"{where}/{META_FILE}: unreadable ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise TraceError(f"{where}/{META_FILE}: not a chunked trace (format is not '{FORMAT}')")
        if document.get("version") != VERSION:
            raise TraceError(f"{where}/{META_FILE}: version {document.get('version')!r}, this lab reads {VERSION}")
        try:
            self._facts = TraceFacts.from_json(document.get("facts") or {})
        except ValueError as error:
            raise TraceError(f"{where}/{META_FILE}: {error}") from None
        self._facts_have_peak_bytes = isinstance(document.get("facts"), dict) and "peak_live_bytes" in document["facts"]
        self._verified = False  # set once a complete read found the rows to agree with every fact
        self.meta = document.get("meta") if isinstance(document.get("meta"), dict) else {}
        self.offsets: dict[str, int] = {}
        for name, dtype in COLUMNS:
            self.offsets[name] = self._check_header(name, np.dtype(dtype))

    def _check_header(self, name: str, dtype: np.dtype) -> int:
        path = self.directory / f"{name}.npy"
        try:
            with warnings.catch_warnings(), open(path, "rb") as handle:
                warnings.simplefilter("ignore", UserWarning)  # numpy's note on a Python 2 header: not a 2nd line
                version = npy.read_magic(handle)
                if version == (1, 0):
                    shape, fortran, found = npy.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shape, fortran, found = npy.read_array_header_2_0(handle)
                else:
                    raise ValueError(f".npy format version {version}")
                offset = handle.tell()
        except FileNotFoundError:
            raise TraceError(f"{self.directory}: missing column file {name}.npy") from None
        except (OSError, *NPY_HEADER_ERRORS) as error:
            raise TraceError(f"{path}: not a .npy file ({type(error).__name__}: {error})") from None
        if found != dtype or fortran or len(shape) != 1:
            raise TraceError(f"{path}: {found} array of shape {shape}, expected one {dtype.name} column")
        if shape[0] != self._facts.rows:
            raise TraceError(f"{path}: {shape[0]} rows, {META_FILE} says {self._facts.rows}")
        expected = offset + shape[0] * dtype.itemsize
        if path.stat().st_size != expected:
            raise TraceError(f"{path}: {path.stat().st_size} bytes, expected {expected} (truncated?)")
        return offset

    def facts(self) -> TraceFacts:
        return self._facts

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[TraceChunk]:
        chunk_rows = check_chunk_rows(chunk_rows)
        facts, where = self._facts, str(self.directory)
        slot_map = SlotMap(facts.peak_live_objects)
        accumulator = None if self._verified else FactsAccumulator()
        handles = {name: open(self.directory / f"{name}.npy", "rb") for name, _ in COLUMNS}  # noqa: SIM115
        try:
            for name, handle in handles.items():
                handle.seek(self.offsets[name])
            for start in range(0, facts.rows, chunk_rows):
                rows = min(chunk_rows, facts.rows - start)
                columns = []
                for name, dtype in COLUMNS:
                    column = np.empty(rows, dtype)
                    if handles[name].readinto(memoryview(column).cast("B")) != column.nbytes:
                        raise TraceError(f"{where}/{name}.npy: ends before row {start + rows}")
                    columns.append(column)
                op, obj, size, thread = columns
                try:
                    slots = slot_map.assign(op, obj, size, thread, validate=True, first_row=start)
                except TraceError as error:
                    raise TraceError(f"{where}: {error}", row=error.row) from None
                if rows and int(thread.max()) >= facts.n_threads:
                    raise TraceError(f"{where}: rows {start}..{start + rows - 1} use thread {int(thread.max())}, "
                                     f"{META_FILE} says {facts.n_threads} threads")
                if slot_map.peak_live > facts.peak_live_objects:
                    raise TraceError(f"{where}: rows {start}..{start + rows - 1} hold {slot_map.peak_live} objects "
                                     f"live at once, {META_FILE} says at most {facts.peak_live_objects}")
                if slot_map.peak_live_bytes > facts.peak_live_bytes:
                    raise TraceError(f"{where}: rows {start}..{start + rows - 1} hold {slot_map.peak_live_bytes} B "
                                     f"live at once, {META_FILE} says at most {facts.peak_live_bytes}")
                if rows and int(size.max()) > facts.max_request:  # FREE is 0 and ACCESS <= its object's size
                    raise TraceError(f"{where}: rows {start}..{start + rows - 1} request {int(size.max())} B, "
                                     f"{META_FILE} says at most {facts.max_request}")
                if accumulator is not None:
                    accumulator.add(op, size, thread)
                yield TraceChunk(start, op, obj, size, thread, slots)
            if accumulator is not None:
                self._verify(accumulator.finish(slot_map.peak_live, slot_map.peak_live_bytes))
        finally:
            for handle in handles.values():
                handle.close()


    def _verify(self, found: TraceFacts) -> None:
        """After the first complete read: every fact of meta.json must be what the rows give (the bounds an
        allocator is sized by were checked chunk by chunk, before each chunk was handed on; the rest is
        checked here, so a meta.json that lies is an error, not a cell with wrong figures)."""
        declared, actual = self._facts.to_json(), found.to_json()
        if not self._facts_have_peak_bytes:  # facts written before peak_live_bytes existed: an upper bound
            declared.pop("peak_live_bytes")
            actual.pop("peak_live_bytes")
        for name, value in declared.items():
            if actual[name] != value:
                raise TraceError(f"{self.directory}/{META_FILE}: facts say {name} {_shown(value)}, "
                                 f"the rows give {_shown(actual[name])}")
        self._verified = True


def _shown(value: Any) -> Any:
    """A fact for a one-line message: a long list abridged."""
    return f"{value[:8]}..." if isinstance(value, list) and len(value) > 8 else value


def open_trace(path: str | Path) -> TraceSource:
    """A trace file (.npz, .csv: loaded into memory) or a chunked directory (read chunk by chunk) as a source."""
    from workloads.stream import MemorySource

    path = Path(path)
    if path.is_dir():
        return ChunkedTrace(path)
    return MemorySource(Trace.load(path), label=str(path))
