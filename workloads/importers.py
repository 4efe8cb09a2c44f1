"""Importers: allocation logs of real programs -> a validated `Trace` plus an `ImportReport`.

`import_trace(path, format)` reads one log and returns `(trace, report)`.  Every
format goes through one builder that keeps a live map `address -> object id`
(object ids are handed out 0, 1, 2, ... in order of allocation, never reused):

- an allocation takes a fresh id; an allocation at an address that is still
  live (the log missed a free, e.g. heaptrack's `realloc(p, 0)`) first emits an
  implicit FREE of the old object (counted: `address_reused`);
- a free of an address that is not live is *counted* (`unknown_frees`) and
  emits no row; `free(NULL)` is counted (`free_null`) and emits no row;
- a realloc keeps the object id (REALLOC row) and moves it to the new address;
  `realloc(NULL, n)` is an ALLOC (`realloc_null`), `realloc(p, 0)` that returns
  NULL is a FREE (`realloc_to_zero`; glibc and bionic free the block), a realloc
  of an unknown pointer is an ALLOC of the new block (`unknown_reallocs`), a
  realloc that failed (NULL back, size > 0) emits nothing (`failed_reallocs`);
- a zero-size request that returned a block becomes size 1 (a trace size must
  be > 0; real mallocs hand out a minimum chunk anyway), counted in `zero_size`;
- an allocation that returned NULL emits nothing (`failed_allocs`).

Formats (`FORMATS`):

`valgrind`  -- `valgrind --trace-malloc=yes` logs.  valgrind 3.19 prints, each
    line prefixed `--PID-- ` (no thread id is printed, so every row is thread 0;
    different PIDs, from `--trace-children=yes`, get separate address maps):
    `malloc(32) = 0x4D6DC80`, `calloc(4,8) = 0x4D6DCE0`, `free(0x4D6DCE0)`,
    `free(0x0)`, `realloc(0x4D6DC80,64) = 0x4D6DD80`,
    `realloc(0x0,100)malloc(100) = 0x4D6DE50` (realloc of NULL calls malloc),
    `realloc(0x4D6DE50,0)free(0x4D6DE50)` followed by a line `--PID--  = 0`,
    `memalign(al 64, size 100) = 0x...` (also printed for posix_memalign,
    aligned_alloc and valloc), `_Znwm(4) = 0x...`, `_Znam(40) = 0x...`,
    `_ZnwmRKSt9nothrow_t(4) = 0x...`, `_ZnwmSt11align_val_t(size 64, al 64) = 0x...`,
    `_ZdlPv(0x...)`, `_ZdlPvm(0x...)` (sized delete), `_ZdaPv(0x...)`,
    `_ZdaPvm(0x...)`, `_ZdlPvmSt11align_val_t(0x...)`, `_ZdaPvSt11align_val_t(0x...)`.
    Any `_Znw*`/`_Zna*`/`__builtin_new`/`__builtin_vec_new` is an allocation and any
    `_Zdl*`/`_Zda*`/`__builtin_delete`/`__builtin_vec_delete`/`cfree` a free.
    Other `--PID-- name(...)` calls (`malloc_usable_size`, ...) are counted in
    `ignored_calls`; lines without the `--PID--` prefix (valgrind's `==PID==`
    messages, program output) are counted in `ignored_lines`.
`heaptrack` -- heaptrack's *raw* data (`heaptrack --raw`, `*.raw.zst`/`*.raw.gz`
    or plain text), before `heaptrack_interpret`.  Lines are `TYPE fields...` in
    hex: `+ SIZE TRACE PTR` (allocation), `- PTR` (free); `v x X I m t c R A`
    and other types (version, executable, modules, backtrace nodes, timestamps,
    RSS) are skipped.  heaptrack logs a realloc as `- OLD` then `+ SIZE TRACE NEW`,
    so realloc appears as FREE + ALLOC; `realloc(p, 0)` is not logged at all
    (the block is freed implicitly when its address is reused).  No thread ids
    are recorded: thread 0.  Interpreted files (`+ INDEX`) are refused with a
    TraceError saying to record with `--raw`.  `.zst` needs the `zstd` program.
`cmu`       -- CMU malloc-lab `.rep`: four header numbers (suggested heap size,
    number of ids, number of ops, weight), then `a ID SIZE`, `f ID`, `r ID SIZE`.
    ids must be < the number of ids and the op count must match the header.
    `r` of an id that is not live is an allocation (the driver reallocs NULL),
    `r ID 0` a free (CS:APP semantics).
`android`   -- bionic malloc_debug `record_allocs` dumps replayed by AOSP's
    `memory_replay`: `TID: malloc PTR SIZE`, `TID: free PTR`,
    `TID: calloc PTR NMEMB SIZE`, `TID: realloc NEWPTR OLDPTR SIZE`,
    `TID: memalign PTR ALIGN SIZE`, `TID: thread_done 0x0`; two trailing
    timestamps (newer dumps) are accepted and ignored.  TIDs map to trace threads
    0, 1, ... in order of first appearance; once 1024 (`MAX_THREADS`) are taken,
    a new TID reuses the number of a thread that logged `thread_done`
    (`threads_recycled`).

`format="auto"` guesses from the suffix (`.rep` cmu, `.zst`/`.gz` heaptrack) or the
first lines (`guess_format`).  Malformed lines raise `TraceError` naming the file
and the line number.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labcore.memory import check_fits
from workloads.trace import (
    IN_MEMORY_BYTES_PER_ROW,
    MAX_REQUEST_SIZE,
    MAX_THREADS,
    OP_ALLOC,
    OP_FREE,
    OP_REALLOC,
    Trace,
    TraceError,
)

FORMATS = ("valgrind", "heaptrack", "cmu", "android")
#: Bytes a row costs while a log is parsed: five Python list entries and three int objects (~130 B), then the
#: Trace built from them (`IN_MEMORY_BYTES_PER_ROW`); an upper bound: `trace import -f valgrind` of a 0.5M- and
#: a 2M-row log peaked at 205 and 371 MB (/usr/bin/time), 111 B a row.  Every `ROWS_PER_MEMORY_CHECK` rows the
#: import checks that the rows so far fit this machine's memory, so a huge (or decompressed-bomb) log is refused,
#: not swapped.
IMPORT_BYTES_PER_ROW = 130 + IN_MEMORY_BYTES_PER_ROW
ROWS_PER_MEMORY_CHECK = 1 << 20


class NoAllocations(TraceError):
    """The log holds no allocation call at all: there is nothing to make a trace of."""


@dataclass
class ImportReport:
    """What an import (or a recording) saw; every skipped event is counted here."""

    format: str
    source: str
    lines: int = 0                 # lines read
    rows: int = 0                  # trace rows emitted
    allocs: int = 0                # ALLOC rows
    frees: int = 0                 # FREE rows (including implicit ones)
    reallocs: int = 0              # REALLOC rows
    unknown_frees: int = 0         # free of an address that was not live: no row
    unknown_reallocs: int = 0      # realloc of an address that was not live: ALLOC of the new block
    free_null: int = 0             # free(NULL): no row
    realloc_null: int = 0          # realloc(NULL, n): ALLOC
    realloc_to_zero: int = 0       # realloc(p, 0) returning NULL: FREE
    zero_size: int = 0             # zero-size requests that returned a block: size 1 in the trace
    failed_allocs: int = 0         # allocation returned NULL: no row
    failed_reallocs: int = 0       # realloc returned NULL with size > 0: no row, block unchanged
    address_reused: int = 0        # allocation at a live address: implicit FREE of the old object first
    live_at_end: int = 0           # objects never freed
    threads: int = 1               # trace threads used
    threads_recycled: int = 0      # android: new TIDs given the number of a finished thread
    thread_done: int = 0           # android: thread_done lines
    ignored_lines: int = 0         # lines that carry no allocation event
    ignored_calls: dict[str, int] = field(default_factory=dict)  # valgrind: other traced calls, by name
    # filled by workloads.record.record():
    tool: str | None = None
    command: list[str] | None = None
    exit_code: int | None = None
    output: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a terminal."""
        skipped = {
            name: getattr(self, name)
            for name in ("unknown_frees", "unknown_reallocs", "free_null", "realloc_null", "realloc_to_zero",
                         "zero_size", "failed_allocs", "failed_reallocs", "address_reused", "ignored_lines")
            if getattr(self, name)
        }
        lines = [
            f"{self.source} ({self.format}): {self.lines:,} lines -> {self.rows:,} rows "
            f"({self.allocs:,} alloc, {self.frees:,} free, {self.reallocs:,} realloc), "
            f"{self.threads} thread(s), {self.live_at_end:,} live at end",
        ]
        if skipped:
            lines.append("  " + ", ".join(f"{name} {count:,}" for name, count in skipped.items()))
        if self.ignored_calls:
            lines.append("  ignored calls: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.ignored_calls.items())))
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class _Builder:
    """Turns address-level events into trace rows; keeps the live map and the report's counts."""

    def __init__(self, path: Path, report: ImportReport) -> None:
        self.path = path
        self.report = report
        self.op: list[int] = []
        self.obj: list[int] = []
        self.size: list[int] = []
        self.thread: list[int] = []
        self.line_of_row: list[int] = []
        self.live: dict[int, int] = {}
        self.next_id = 0
        self.line = 0

    def fail(self, message: str) -> TraceError:
        return TraceError(f"{self.path}: line {self.line}: {message}")

    def _row(self, op: int, ident: int, size: int, thread: int) -> None:
        if len(self.op) % ROWS_PER_MEMORY_CHECK == ROWS_PER_MEMORY_CHECK - 1:  # a log (or a gzip bomb) too big
            check_fits(f"importing {self.path} ({len(self.op) + 1:,} rows so far)",
                       (len(self.op) + 1) * IMPORT_BYTES_PER_ROW,
                       "import it into a chunked trace directory (-o DIR/) in parts, or record fewer calls")
        self.op.append(op)
        self.obj.append(ident)
        self.size.append(size)
        self.thread.append(thread)
        self.line_of_row.append(self.line)

    def _request(self, size: int) -> int:
        if size < 0:
            raise self.fail(f"negative size {size}")
        if size > MAX_REQUEST_SIZE:
            raise self.fail(f"request of {size} bytes above the trace maximum {MAX_REQUEST_SIZE}")
        if size == 0:
            self.report.zero_size += 1
            return 1
        return size

    def _free_live(self, key: int, thread: int) -> None:
        self._row(OP_FREE, self.live.pop(key), 0, thread)
        self.report.frees += 1

    def alloc(self, key: int, size: int, thread: int, null: bool = False) -> None:
        """An allocation of `size` bytes that returned `key` (`null`: it returned NULL)."""
        if null:
            self.report.failed_allocs += 1
            return
        size = self._request(size)
        if key in self.live:
            self.report.address_reused += 1
            self._free_live(key, thread)
        ident = self.next_id
        self.next_id += 1
        self.live[key] = ident
        self._row(OP_ALLOC, ident, size, thread)
        self.report.allocs += 1

    def free(self, key: int, thread: int, null: bool = False) -> None:
        if null:
            self.report.free_null += 1
        elif key not in self.live:
            self.report.unknown_frees += 1
        else:
            self._free_live(key, thread)

    def realloc(self, old: int, old_null: bool, new: int, new_null: bool, size: int, thread: int) -> None:
        """realloc(old, size) returned new."""
        if old_null:
            self.report.realloc_null += 1
            self.alloc(new, size, thread, null=new_null)
            return
        if new_null:
            if size == 0:
                self.report.realloc_to_zero += 1
                self.free(old, thread)
            else:
                self.report.failed_reallocs += 1
            return
        if old not in self.live:
            self.report.unknown_reallocs += 1
            self.alloc(new, size, thread)
            return
        size = self._request(size)
        ident = self.live.pop(old)
        if new in self.live:
            self.report.address_reused += 1
            self._free_live(new, thread)
        self.live[new] = ident
        self._row(OP_REALLOC, ident, size, thread)
        self.report.reallocs += 1

    def finish(self, meta: dict[str, Any]) -> Trace:
        self.report.rows = len(self.op)
        self.report.live_at_end = len(self.live)
        self.report.threads = (max(self.thread) + 1) if self.thread else 1
        meta = {**meta, "source": str(self.path), "format": self.report.format, "import": self.report.as_dict()}
        try:
            return Trace(
                op=np.array(self.op, np.int8), obj=np.array(self.obj, np.int64),
                size=np.array(self.size, np.int64), thread=np.array(self.thread, np.int32), meta=meta,
            )
        except TraceError as error:  # a builder bug rather than a bad file; still name the line
            line = f" (line {self.line_of_row[error.row]})" if error.row is not None else ""
            raise TraceError(f"{self.path}: {error}{line}", row=error.row) from None


# ------------------------------------------------------------------ reading
def _open_lines(path: Path) -> Iterator[str]:
    """Lines of a text file, a `.gz` file or a `.zst` file (through the `zstd` program)."""
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory")
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rt", errors="replace") as source:
                yield from source
        except (OSError, EOFError, zlib.error) as error:  # zlib.error: corrupt deflate data
            raise TraceError(f"{path}: truncated or corrupt gzip file ({error})") from None
        return
    if path.suffix == ".zst":
        zstd = shutil.which("zstd")
        if zstd is None:
            raise TraceError(f"{path}: reading .zst needs the zstd program (Debian package zstd)")
        with subprocess.Popen([zstd, "-dc", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, errors="replace") as process:
            assert process.stdout is not None
            yield from process.stdout
            error_text = process.stderr.read() if process.stderr else ""
        if process.returncode != 0:
            last = (error_text.strip().splitlines() or [f"exit code {process.returncode}"])[-1]
            raise TraceError(f"{path}: zstd could not decompress it ({last.strip()})")
        return
    with open(path, errors="replace") as source:
        yield from source


def _int(builder: _Builder, text: str, base: int = 10, what: str = "number") -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise builder.fail(f"bad {what} '{text}'") from None
    return value


def _product(builder: _Builder, count: int, size: int) -> int:
    """calloc's nmemb x size; a negative factor is refused (two of them would make a plausible positive size)."""
    if count < 0 or size < 0:
        raise builder.fail(f"calloc with a negative argument ({count}, {size})")
    return count * size


def _pointer(builder: _Builder, text: str) -> int:
    """A pointer written as 0x..., (nil), NULL or 0."""
    text = text.strip()
    if text in ("(nil)", "NULL", "0"):
        return 0
    if not text.lower().startswith("0x"):
        raise builder.fail(f"bad pointer '{text}' (expected 0x...)")
    return _address(builder, _int(builder, text[2:], 16, "pointer"), text)


def _address(builder: _Builder, value: int, text: str) -> int:
    """A pointer's value, which must fit 64 bits unsigned: '0x-10' or 2^80 is a bad line, not an address that
    could collide with another process's map (valgrind keys addresses by PID above bit 64)."""
    if not 0 <= value < 1 << 64:
        raise builder.fail(f"bad pointer '{text}' (not a 64-bit address)")
    return value


# ----------------------------------------------------------------- valgrind
_VG_LINE = re.compile(r"--(\d+)-- (.*)")  # searched: program output may precede it
_VG_CALL = re.compile(r"([A-Za-z_]\w*)\(([^()]*)\)(.*)")
_VG_RESULT = re.compile(r" = (0x[0-9A-Fa-f]+|0|\(nil\))")
_VG_NAMED = re.compile(r"(al|size)\s+(\d+)")
_VG_OPENED = re.compile(r"([A-Za-z_]\w*)\(")


def _vg_is_alloc(name: str) -> bool:
    return name in ("malloc", "calloc", "memalign", "posix_memalign", "aligned_alloc", "valloc", "pvalloc",
                    "__builtin_new", "__builtin_vec_new") or name.startswith(("_Znw", "_Zna"))


def _vg_is_free(name: str) -> bool:
    return name in ("free", "cfree", "__builtin_delete", "__builtin_vec_delete") or name.startswith(("_Zdl", "_Zda"))


def _vg_size(builder: _Builder, name: str, args: str) -> int:
    named = dict(_VG_NAMED.findall(args))
    if "size" in named:
        return _int(builder, named["size"], what="size")  # not int(): 5000 digits is a bad line, not a ValueError
    parts = [part.strip() for part in args.split(",")]
    if name == "calloc":
        if len(parts) != 2:
            raise builder.fail(f"calloc needs 2 arguments, got '{args}'")
        return _product(builder, _int(builder, parts[0], what="nmemb"), _int(builder, parts[1], what="size"))
    if not parts or not parts[0]:
        raise builder.fail(f"{name}() without a size")
    return _int(builder, parts[0], what="size")


def _vg_result(builder: _Builder, rest: str) -> tuple[int, bool]:
    match = _VG_RESULT.fullmatch(rest.rstrip())
    if match is None:
        raise builder.fail(f"expected ' = ADDRESS' after the call, got '{rest.strip()}'")
    address = _pointer(builder, match.group(1))
    return address, address == 0


def _import_valgrind(builder: _Builder, lines: Iterator[str]) -> None:
    report = builder.report
    for builder.line, raw in enumerate(lines, start=1):
        report.lines += 1
        line = raw.rstrip("\r\n")
        match = _VG_LINE.search(line)
        if match is None:
            report.ignored_lines += 1
            continue
        process = _int(builder, match.group(1), what="PID") << 64  # separate address maps per process
        body = match.group(2)
        call = _VG_CALL.fullmatch(body)
        if call is None:  # " = 0" closing a realloc(p,0), or another valgrind message
            opened = _VG_OPENED.match(body)
            if opened and (opened.group(1) == "realloc" or _vg_is_alloc(opened.group(1))
                           or _vg_is_free(opened.group(1))):  # 'malloc(4': a call cut short, not a message
                raise builder.fail(f"truncated or malformed call '{body.strip()[:80]}'")
            report.ignored_lines += 1
            continue
        name, args, rest = call.groups()
        if name == "realloc":
            parts = args.split(",")
            if len(parts) != 2:
                raise builder.fail(f"realloc needs 2 arguments, got '{args}'")
            old = _pointer(builder, parts[0])
            size = _int(builder, parts[1].strip(), what="size")
            if old == 0:  # realloc(0x0,n)malloc(n) = 0x...
                inner = _VG_CALL.fullmatch(rest)
                new, new_null = _vg_result(builder, inner.group(3) if inner else rest)
            elif size == 0 and (rest.startswith("free(") or rest.strip() in ("", "= 0")):
                new, new_null = 0, True  # realloc(p,0)free(p), then a line " = 0"
            else:
                new, new_null = _vg_result(builder, rest)
            builder.realloc(process | old, old == 0, process | new, new_null, size, 0)
        elif _vg_is_alloc(name):
            size = _vg_size(builder, name, args)
            address, null = _vg_result(builder, rest)
            builder.alloc(process | address, size, 0, null=null)
        elif _vg_is_free(name):
            if rest.strip():
                raise builder.fail(f"unexpected text after {name}(): '{rest.strip()}'")
            address = _pointer(builder, args.split(",")[0])
            builder.free(process | address, 0, null=address == 0)
        else:
            report.ignored_calls[name] = report.ignored_calls.get(name, 0) + 1


# ---------------------------------------------------------------- heaptrack
_HEAPTRACK_SKIPPED = set("vxXImtcRAs#")


def _import_heaptrack(builder: _Builder, lines: Iterator[str]) -> None:
    report = builder.report
    for builder.line, raw in enumerate(lines, start=1):
        report.lines += 1
        fields = raw.split()
        if not fields:
            report.ignored_lines += 1
            continue
        kind = fields[0]
        if builder.line == 1 and kind != "v":
            raise builder.fail("not heaptrack raw data (the first line should be 'v VERSION FILEVERSION')")
        if kind == "+":
            if len(fields) == 2:
                raise builder.fail("this is interpreted heaptrack data ('+ INDEX'); record with `heaptrack --raw` "
                                   "and import the .raw file")
            if len(fields) != 4:
                raise builder.fail(f"expected '+ SIZE TRACE PTR', got '{raw.strip()}'")
            size = _int(builder, fields[1], 16, "size")
            address = _address(builder, _int(builder, fields[3], 16, "pointer"), fields[3])
            builder.alloc(address, size, 0, null=address == 0)
        elif kind == "-":
            if len(fields) != 2:
                raise builder.fail(f"expected '- PTR', got '{raw.strip()}'")
            address = _address(builder, _int(builder, fields[1], 16, "pointer"), fields[1])
            builder.free(address, 0, null=address == 0)
        elif len(kind) == 1 and (kind in _HEAPTRACK_SKIPPED or kind.isalpha()):
            report.ignored_lines += 1
        else:
            raise builder.fail(f"not a heaptrack raw line: '{raw.strip()[:80]}'")


# ---------------------------------------------------------------------- cmu
def _import_cmu(builder: _Builder, lines: Iterator[str]) -> None:
    report = builder.report
    header: list[int] = []
    n_ops = n_ids = expected_ops = 0
    for builder.line, raw in enumerate(lines, start=1):
        report.lines += 1
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            report.ignored_lines += 1
            continue
        if len(header) < 4:
            if len(fields) != 1:
                raise builder.fail("expected the header: heap size, number of ids, number of ops, weight "
                                   "(one number a line)")
            header.append(_int(builder, fields[0], what="header number"))
            report.ignored_lines += 1
            if len(header) == 4:
                n_ids, expected_ops = header[1], header[2]
            continue
        kind = fields[0]
        expected = {"a": 3, "f": 2, "r": 3}.get(kind)
        if expected is None:
            raise builder.fail(f"unknown op '{kind}' (expected a, f or r)")
        if len(fields) != expected:
            raise builder.fail(f"'{kind}' takes {expected - 1} number(s), got '{raw.strip()}'")
        ident = _int(builder, fields[1], what="id")
        if not 0 <= ident < n_ids:
            raise builder.fail(f"id {ident} outside 0..{n_ids - 1} (the header says {n_ids} ids)")
        n_ops += 1
        if kind == "a":
            builder.alloc(ident, _int(builder, fields[2], what="size"), 0)
        elif kind == "f":
            builder.free(ident, 0)
        else:
            size = _int(builder, fields[2], what="size")
            live = ident in builder.live
            if size == 0 and live:
                builder.realloc(ident, False, 0, True, 0, 0)
            else:
                builder.realloc(ident, not live, ident, False, size, 0)
    if len(header) < 4:
        raise TraceError(f"{builder.path}: truncated header (expected heap size, ids, ops, weight)")
    if n_ops != expected_ops:
        raise TraceError(f"{builder.path}: the header says {expected_ops} ops, the file has {n_ops}")


# ------------------------------------------------------------------ android
_ANDROID_ARGS = {"malloc": 2, "free": 1, "calloc": 3, "realloc": 3, "memalign": 3, "thread_done": 1}


def _import_android(builder: _Builder, lines: Iterator[str]) -> None:
    report = builder.report
    thread_of: dict[str, int] = {}   # live TID -> trace thread
    owner: dict[int, str] = {}       # trace thread -> TID
    done: list[int] = []             # trace threads whose TID logged thread_done, oldest first
    next_thread = 0
    for builder.line, raw in enumerate(lines, start=1):
        report.lines += 1
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            report.ignored_lines += 1
            continue
        if len(fields) < 2 or not fields[0].endswith(":"):
            raise builder.fail(f"expected 'TID: OP ...', got '{raw.strip()[:80]}'")
        tid, kind, args = fields[0][:-1], fields[1], fields[2:]
        _int(builder, tid, what="thread id")
        want = _ANDROID_ARGS.get(kind)
        if want is None:
            raise builder.fail(f"unknown op '{kind}' (expected {', '.join(_ANDROID_ARGS)})")
        if len(args) not in (want, want + 2):  # + start/end timestamps in newer dumps
            raise builder.fail(f"'{kind}' takes {want} argument(s), got {len(args)}")
        if tid in thread_of:
            if thread_of[tid] in done and kind != "thread_done":  # the TID came back: same number
                done.remove(thread_of[tid])
        elif next_thread < MAX_THREADS:
            thread_of[tid] = next_thread
            owner[next_thread] = tid
            next_thread += 1
        elif done:
            number = done.pop(0)
            del thread_of[owner[number]]
            thread_of[tid] = number
            owner[number] = tid
            report.threads_recycled += 1
        else:
            raise builder.fail(f"more than {MAX_THREADS} threads alive at once (the trace maximum)")
        thread = thread_of[tid]
        if kind == "malloc":
            address = _pointer(builder, args[0])
            builder.alloc(address, _int(builder, args[1], what="size"), thread, null=address == 0)
        elif kind == "free":
            address = _pointer(builder, args[0])
            builder.free(address, thread, null=address == 0)
        elif kind == "calloc":
            address = _pointer(builder, args[0])
            size = _product(builder, _int(builder, args[1], what="nmemb"), _int(builder, args[2], what="size"))
            builder.alloc(address, size, thread, null=address == 0)
        elif kind == "realloc":
            new, old = _pointer(builder, args[0]), _pointer(builder, args[1])
            builder.realloc(old, old == 0, new, new == 0, _int(builder, args[2], what="size"), thread)
        elif kind == "memalign":
            address = _pointer(builder, args[0])
            _int(builder, args[1], what="alignment")
            builder.alloc(address, _int(builder, args[2], what="size"), thread, null=address == 0)
        else:
            report.thread_done += 1
            if thread not in done:
                done.append(thread)


_IMPORTERS = {"valgrind": _import_valgrind, "heaptrack": _import_heaptrack, "cmu": _import_cmu,
              "android": _import_android}


def guess_format(path: str | Path) -> str:
    """The format of a log from its suffix or its first lines; TraceError when it is none of `FORMATS`."""
    path = Path(path)
    if path.suffix == ".rep":
        return "cmu"
    if path.suffix in (".zst", ".gz"):
        return "heaptrack"
    head: list[str] = []
    for line in _open_lines(path):
        if line.strip():
            head.append(line.strip())
        if len(head) == 4:
            break
    if head and re.fullmatch(r"v [0-9a-f]+ [0-9a-f]+", head[0]):
        return "heaptrack"
    if head and re.match(r"\d+: [a-z_]+ ", head[0]):
        return "android"
    if any(re.search(r"(==|--)\d+(==|--)", line) for line in head):
        return "valgrind"
    if len(head) == 4 and all(re.fullmatch(r"\d+", line) for line in head):
        return "cmu"
    raise TraceError(f"{path}: cannot tell its format from the first lines; give it ({', '.join(FORMATS)})")


def import_trace(path: str | Path, format: str = "auto",
                 meta: dict[str, Any] | None = None) -> tuple[Trace, ImportReport]:
    """Read an allocation log of format `format` (one of `FORMATS`, or "auto": `guess_format`) into a
    validated Trace (meta: source, format, the report's counts, plus `meta`) and its ImportReport."""
    path = Path(path)
    if format == "auto":
        format = guess_format(path)
    if format not in _IMPORTERS:
        raise TraceError(f"unknown trace format '{format}' (known: {', '.join(FORMATS)}, auto)")
    report = ImportReport(format=format, source=str(path))
    builder = _Builder(path, report)
    _IMPORTERS[format](builder, _open_lines(path))
    trace = builder.finish(meta or {})
    if not report.allocs and not report.reallocs:
        raise NoAllocations(f"{path}: no allocation calls found ({format}, {report.lines:,} lines read, "
                         f"{report.ignored_lines:,} without an allocation event); nothing to import")
    return trace, report
