"""Hostile input, fuzzed: corrupted trace files and logs, and arrays of any dtype, shape and value.

Each test starts from a valid small input (an `.npz`, a CSV, a valgrind log, a
heaptrack raw file plain and gzipped, a CMU `.rep`, an android dump), corrupts
it with hypothesis (bytes flipped, set, inserted, deleted, duplicated, the file
cut short; for text also lines duplicated, dropped or swapped and numbers
replaced by hostile ones: negative, zero, 2^40 + 1, 2^63, NaN, inf, hex,
garbage) and loads or imports it.  Only two outcomes are allowed:

- a `TraceError` with a one-line message (the CLI: exit 2, one line on stderr);
- a trace that is valid, and that replays through a few allocators with
  consistent figures (the driver's exact peak of live requested bytes equals
  the trace's own, every allocator agrees, every block is at least its request).

Any other exception, a crash, a hang or a warning fails the test; a refusal
must name the file.  Besides corrupted seeds: a chunked directory with one file
corrupted (loading it and streaming it must agree), logs written from each
format's grammar with hostile numbers and pointers (the import report must add
up), arrays of wrong dtypes, shapes and values (in memory, in `.npz` files, and
in a Trace built with `validate_on_init=False` that is handed to a replay), any
valid trace round-tripped through `.npz`, CSV and a chunked directory, and the
CLI on every entry point of tests/test_malformed_corpus.py.  Example counts
come from the hypothesis profile (tests/conftest.py: `ci` is derandomized, 40
examples); the CLI test runs half as many.  A new entry point (`trace inject`)
is one more `ENTRY_POINTS` function in tests/test_malformed_corpus.py (and a
`CLI_CASES` row here), a new file format one more loader in `LOADERS`.
"""

from __future__ import annotations

import gzip
import io
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allocators.errors import AllocatorError
from bench import api, harness
from bench.cli import main
from tests.test_malformed_corpus import ENTRY_POINTS
from workloads.chunked import ChunkedTrace
from workloads.importers import import_trace
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_REALLOC, Trace, TraceError, from_rows

#: A warning on the way (numpy's note on an odd .npy header) would be a second line on the CLI's stderr.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

A, F, R, X = 0, 1, 2, 3
GOOD_ROWS = [(A, 0, 24, 0), (A, 1, 100, 1), (X, 1, 50, 1), (R, 0, 200, 0), (A, 2, 8, 0), (F, 1, 0, 1),
             (X, 2, 0, 0), (F, 0, 0, 0), (F, 2, 0, 0)]
CSV = "op,obj,size,thread\n" + "".join(
    f"{('alloc', 'free', 'realloc', 'access')[op]},{obj},{size},{thread}\n" for op, obj, size, thread in GOOD_ROWS)
VALGRIND = """==7== Memcheck, a memory error detector
--7-- malloc(32) = 0x4D6DC80
--7-- calloc(4,8) = 0x4D6DCE0
--7-- realloc(0x4D6DC80,64) = 0x4D6DD80
--7-- realloc(0x0,100)malloc(100) = 0x4D6DE50
--7-- realloc(0x4D6DE50,0)free(0x4D6DE50)
--7--  = 0
--7-- _Znwm(4) = 0x4D6DF00
--7-- memalign(al 64, size 100) = 0x4D6E100
--7-- free(0x4D6DCE0)
--7-- _ZdlPv(0x4D6DF00)
--7-- free(0x4D6DD80)
--7-- free(0x0)
"""
HEAPTRACK = "v 10000 2\nx a.out\n+ 20 1 7f0010\n+ 40 1 7f0040\n- 7f0010\n+ 10 2 7f0010\n- 7f0040\n- 7f0010\n"
CMU = "0\n3\n6\n1\na 0 8\na 1 16\nr 0 64\nf 1\na 2 24\nf 0\n"
ANDROID = ("100: malloc 0x7000 16\n200: calloc 0x7100 4 8\n100: realloc 0x7200 0x7000 64\n200: free 0x7100\n"
           "100: memalign 0x7400 64 100\n200: thread_done 0x0\n100: free 0x7200\n")
HOSTILE_NUMBERS = ["-1", "0", "-0", str((1 << 40) + 1), str(1 << 63), str(1 << 64), str(-(1 << 63) - 1),
                   "nan", "inf", "1e9", "0x", "0x-1", "ffffffffffffffffff", "", " ", "1_0", "\x00", "ﾠ9",
                   "9" * 5000]  # more digits than Python's int() converts (4300)
#: Allocators a loaded trace is replayed through (their state does not grow with a huge request's capacity).
REPLAY_SPECS = ("pool", "linear", "freelist")


def _npz_bytes() -> bytes:
    out = io.BytesIO()
    trace = from_rows(GOOD_ROWS, meta={"generator": "hand"})
    np.savez_compressed(out, op=trace.op, obj=trace.obj, size=trace.size, thread=trace.thread,
                        meta=np.array('{"generator": "hand"}'))
    return out.getvalue()


NPZ = _npz_bytes()


# ---------------------------------------------------------------- strategies
@st.composite
def corrupted_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to four byte-level corruptions."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "set", "truncate", "insert", "delete", "duplicate")))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[at: at + draw(st.integers(1, 16))]
        else:
            out[at:at] = out[at: at + draw(st.integers(1, 32))]
    return bytes(out)


@st.composite
def corrupted_text(draw: st.DrawFn, text: str) -> bytes:
    """`text` with lines duplicated, dropped or swapped and numbers replaced by hostile ones."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        kind = draw(st.sampled_from(("duplicate", "drop", "swap", "number", "number")))
        at = draw(st.integers(0, len(lines) - 1))
        if kind == "duplicate":
            lines.insert(at, lines[at])
        elif kind == "drop":
            del lines[at]
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        else:
            parts = _numbers(lines[at])
            if parts:
                start, stop = draw(st.sampled_from(parts))
                value = draw(st.sampled_from(HOSTILE_NUMBERS) | st.integers(-(1 << 70), 1 << 70).map(str))
                lines[at] = lines[at][:start] + value + lines[at][stop:]
    return "".join(lines).encode("utf-8", "surrogatepass")


def _numbers(line: str) -> list[tuple[int, int]]:
    """(start, stop) of every run of hex digits in a line (the numbers, addresses and ids of every format)."""
    spans, start = [], None
    for index, char in enumerate(line + " "):
        if char in "0123456789abcdefABCDEFx" and start is None:
            start = index
        elif char not in "0123456789abcdefABCDEFx" and start is not None:
            spans.append((start, index))
            start = None
    return spans


def corruptions(text: str) -> st.SearchStrategy[bytes]:
    return corrupted_text(text) | corrupted_bytes(text.encode())


# ------------------------------------------------------------------ checks
def check_replays(trace: Trace) -> None:
    """A trace that loaded is valid and replays with consistent figures through every REPLAY_SPECS allocator."""
    trace.validate()
    if not len(trace):
        return
    facts = trace.facts()
    grows = (trace.op == OP_ALLOC) | (trace.op == OP_REALLOC)
    for spec in REPLAY_SPECS:
        allocator = harness.build_for_trace(spec, trace)
        try:
            log = allocator.replay(trace)
        except AllocatorError:  # out of memory, an unsupported order: an allocator failure, exit 1
            continue
        assert log.peak_live_requested == facts.peak_live_bytes, spec
        assert (log.granted[grows] >= trace.size[grows]).all(), spec
        assert (log.addr[grows | (trace.op == OP_ACCESS)] >= 0).all(), spec


def load_or_refuse(load: Callable[[], Trace], source: Path | None = None) -> None:
    """`load()` gives a valid trace (replayed) or a one-line TraceError (naming `source`, a file); anything else
    fails the test."""
    try:
        trace = load()
    except TraceError as error:
        assert str(error) and "\n" not in str(error), repr(str(error))
        assert source is None or str(source) in str(error), str(error)
        event("refused")  # --hypothesis-show-statistics: how often each outcome is reached
        return
    event("loaded")
    check_replays(trace)


def with_file(name: str, data: bytes, use: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        use(path)


#: file name and loader of each format: what the fuzz tests feed (add an entry point here).
LOADERS: dict[str, tuple[str, Callable[[Path], Trace]]] = {
    "npz": ("t.npz", Trace.load),
    "csv": ("t.csv", Trace.load),
    "valgrind": ("t.log", lambda path: import_trace(path, "valgrind")[0]),
    "heaptrack": ("t.raw", lambda path: import_trace(path, "heaptrack")[0]),
    "heaptrack.gz": ("t.raw.gz", lambda path: import_trace(path, "heaptrack")[0]),
    "cmu": ("t.rep", lambda path: import_trace(path, "cmu")[0]),
    "android": ("t.txt", lambda path: import_trace(path, "android")[0]),
    "auto": ("t.log", lambda path: import_trace(path, "auto")[0]),
}


def fuzz(format_name: str, data: bytes) -> None:
    name, loader = LOADERS[format_name]
    with_file(name, data, lambda path: load_or_refuse(lambda: loader(path), path))


def test_the_seeds_are_valid() -> None:
    """Every uncorrupted input loads: the fuzzing starts from inputs that work."""
    seeds = {"npz": NPZ, "csv": CSV.encode(), "valgrind": VALGRIND.encode(), "heaptrack": HEAPTRACK.encode(),
             "heaptrack.gz": gzip.compress(HEAPTRACK.encode(), mtime=0), "cmu": CMU.encode(),
             "android": ANDROID.encode(), "auto": VALGRIND.encode()}
    for format_name, data in seeds.items():
        name, loader = LOADERS[format_name]
        with_file(name, data, lambda path, loader=loader: check_replays(loader(path)))


# ------------------------------------------------------------------- files
@given(corrupted_bytes(NPZ))
def test_corrupted_npz(data: bytes) -> None:
    fuzz("npz", data)


@given(corruptions(CSV))
def test_corrupted_csv(data: bytes) -> None:
    fuzz("csv", data)


@given(corruptions(VALGRIND))
def test_corrupted_valgrind_log(data: bytes) -> None:
    fuzz("valgrind", data)
    fuzz("auto", data)


@given(corruptions(HEAPTRACK), st.booleans())
def test_corrupted_heaptrack_raw(data: bytes, compress: bool) -> None:
    fuzz("heaptrack", data)
    if compress:
        fuzz("heaptrack.gz", gzip.compress(data, mtime=0))


@given(corrupted_bytes(gzip.compress(HEAPTRACK.encode() * 3, mtime=0)))
def test_corrupted_heaptrack_gzip(data: bytes) -> None:
    fuzz("heaptrack.gz", data)


@given(corruptions(CMU))
def test_corrupted_cmu_rep(data: bytes) -> None:
    fuzz("cmu", data)


@given(corruptions(ANDROID))
def test_corrupted_android_dump(data: bytes) -> None:
    fuzz("android", data)


def _chunked_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "t"
        from_rows(GOOD_ROWS).save(str(target) + "/")
        return {path.name: path.read_bytes() for path in sorted(target.iterdir())}


CHUNKED = _chunked_files()


@given(st.sampled_from(sorted(CHUNKED)).flatmap(lambda name: st.tuples(st.just(name), corrupted_bytes(CHUNKED[name]))))
def test_corrupted_chunked_directory(case: tuple[str, bytes]) -> None:
    """One file of a chunked directory corrupted: loading it and streaming it agree, refused or replayed alike,
    and a streamed replay gives the figures of the same rows in memory."""
    name, data = case
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "t"
        path.mkdir()
        for member, content in CHUNKED.items():
            (path / member).write_bytes(data if member == name else content)
        try:
            trace = Trace.load(path)
        except TraceError as error:
            assert "\n" not in str(error) and str(path) in str(error), str(error)
            event("refused")
            with pytest.raises(TraceError):
                api.replay("freelist", ChunkedTrace(path), repeats=1)
            return
        event("loaded")
        check_replays(trace)
        streamed, in_memory = api.replay("freelist", ChunkedTrace(path), repeats=1), api.replay("freelist", trace,
                                                                                                  repeats=1)
        for figure in ("status", "peak_footprint", "peak_live_requested", "overhead_factor"):
            assert streamed[figure] == in_memory[figure], figure


# ------------------------------------------------------------------ arrays
DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64, np.float32, np.float64, np.bool_)
NAMES = ("op", "obj", "size", "thread")
EXPECTED_DTYPES = dict(zip(NAMES, (np.int8, np.int64, np.int64, np.int32), strict=True))


@st.composite
def hostile_columns(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Four columns, each mostly right and sometimes not: another dtype or shape, hostile values."""
    rows = draw(st.integers(0, 12))
    base = np.asarray(GOOD_ROWS * 2, np.int64)[:rows].reshape(-1, 4)
    out = {}
    for index, name in enumerate(NAMES):
        column = base[:, index].astype(np.float64)
        if draw(st.booleans()):  # hostile values in some rows
            for row in draw(st.lists(st.integers(0, max(rows - 1, 0)), max_size=3)) if rows else []:
                column[row] = draw(st.sampled_from((-1.0, 0.0, 2.0**40 + 1, 2.0**62, -(2.0**63), 1024.0, 7.0,
                                                    float("nan"), float("inf"), -float("inf"))))
        dtype = draw(st.sampled_from(DTYPES)) if draw(st.integers(0, 5)) == 0 else EXPECTED_DTYPES[name]
        with np.errstate(invalid="ignore", over="ignore"):
            array = column.astype(dtype) if np.dtype(dtype).kind == "f" else np.nan_to_num(
                column, nan=0, posinf=2.0**62, neginf=-(2.0**62)).astype(np.int64).astype(dtype)
        shape = draw(st.sampled_from(("1d",) * 8 + ("2d", "0d", "short", "strided")))
        if shape == "2d":
            array = array.reshape(-1, 1)
        elif shape == "0d":
            array = np.array(array[0] if rows else 0, dtype)
        elif shape == "short" and rows:
            array = array[:-1]
        elif shape == "strided":
            array = np.repeat(array, 2)[::2]
        out[name] = array
    return out


@given(hostile_columns())
def test_hostile_arrays_in_memory(columns: dict[str, np.ndarray]) -> None:
    load_or_refuse(lambda: Trace(**columns))


@given(hostile_columns())
def test_hostile_arrays_never_reach_a_kernel_unvalidated(columns: dict[str, np.ndarray]) -> None:
    """A Trace built with validate_on_init=False is validated before its slots or a replay touch a kernel."""
    unchecked = Trace(**columns, validate_on_init=False)
    try:
        Trace(**{name: np.copy(column) for name, column in columns.items()})
        valid = True
    except TraceError:
        valid = False
    allocator = harness.build_for_trace("freelist", from_rows(GOOD_ROWS))  # sized without the unchecked trace
    if valid:
        allocator.replay(unchecked)
        return
    with pytest.raises(TraceError):
        allocator.replay(Trace(**columns, validate_on_init=False))
    with pytest.raises(TraceError):
        unchecked.slots  # noqa: B018


@given(hostile_columns(), st.booleans())
def test_hostile_arrays_in_npz_files(columns: dict[str, np.ndarray], compressed: bool) -> None:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, **columns)
    fuzz("npz", out.getvalue())


# ------------------------------------------------------- logs from a grammar
POINTERS = st.sampled_from(("0x0", "0x10", "0x20", "0x30", "0x40", "0xFFFFFFFFFFFFFFFF", "0x1" + "0" * 20))
LOG_SIZES = st.sampled_from(("0", "1", "16", "4096", "-1", str(1 << 40), str((1 << 40) + 1), "99999999999999999999",
                             "x", "", "9" * 5000)) | st.integers(0, 1 << 12).map(str)


@st.composite
def valgrind_logs(draw: st.DrawFn) -> str:
    calls = {
        "malloc": lambda: f"malloc({draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "calloc": lambda: f"calloc({draw(LOG_SIZES)},{draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "realloc": lambda: f"realloc({draw(POINTERS)},{draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "realloc0": lambda: f"realloc({draw(POINTERS)},0)free({draw(POINTERS)})",
        "reallocnull": lambda: f"realloc(0x0,{draw(LOG_SIZES)})malloc({draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "free": lambda: f"free({draw(POINTERS)})",
        "new": lambda: f"_Znwm({draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "delete": lambda: f"_ZdlPv({draw(POINTERS)})",
        "memalign": lambda: f"memalign(al 64, size {draw(LOG_SIZES)}) = {draw(POINTERS)}",
        "other": lambda: f"malloc_usable_size({draw(POINTERS)})",
        "result": lambda: " = 0",
    }
    pids = st.sampled_from(("7", "8", "99999999999999999999", "9" * 5000))
    return "".join(f"--{draw(pids)}-- {calls[draw(st.sampled_from(sorted(calls)))]()}\n"
                   for _ in range(draw(st.integers(0, 16))))


@st.composite
def android_dumps(draw: st.DrawFn) -> str:
    tids = st.sampled_from(("1", "2", "300", "-1", "99999999999999999999"))
    calls = {
        "malloc": lambda: f"malloc {draw(POINTERS)} {draw(LOG_SIZES)}",
        "calloc": lambda: f"calloc {draw(POINTERS)} {draw(LOG_SIZES)} {draw(LOG_SIZES)}",
        "realloc": lambda: f"realloc {draw(POINTERS)} {draw(POINTERS)} {draw(LOG_SIZES)}",
        "memalign": lambda: f"memalign {draw(POINTERS)} 64 {draw(LOG_SIZES)}",
        "free": lambda: f"free {draw(POINTERS)}",
        "thread_done": lambda: "thread_done 0x0",
    }
    return "".join(f"{draw(tids)}: {calls[draw(st.sampled_from(sorted(calls)))]()}\n"
                   for _ in range(draw(st.integers(0, 16))))


@st.composite
def heaptrack_raws(draw: st.DrawFn) -> str:
    hex_numbers = (st.integers(0, 0x100).map(lambda value: format(value, "x"))
                   | st.sampled_from(("0", "-10", "10000000000", "10000000001", "zz")))
    lines = ["v 10000 2\n"]
    for _ in range(draw(st.integers(0, 16))):
        if draw(st.booleans()):
            lines.append(f"+ {draw(hex_numbers)} 1 {draw(hex_numbers)}\n")
        else:
            lines.append(f"- {draw(hex_numbers)}\n")
    return "".join(lines)


@st.composite
def cmu_reps(draw: st.DrawFn) -> str:
    ops = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from("afr"))
        ident = draw(st.sampled_from(("0", "1", "2", "0", "1", "2", "-1", "3")))
        size = draw(st.integers(0, 64).map(str) | LOG_SIZES)
        ops.append(f"{kind} {ident}" + ("" if kind == "f" else f" {size}"))
    count = draw(st.sampled_from((len(ops), len(ops), len(ops), len(ops) + 1)))
    return f"0\n3\n{count}\n1\n" + "".join(f"{op}\n" for op in ops)


def check_import(format_name: str, text: str) -> None:
    """The import is refused with one line, or gives a valid trace whose report adds up."""
    name, _ = LOADERS[format_name]

    def use(path: Path) -> None:
        try:
            trace, report = import_trace(path, format_name)
        except TraceError as error:
            assert "\n" not in str(error) and str(path) in str(error), str(error)
            event("refused")
            return
        event("loaded")
        counts = trace.counts()
        assert (counts["alloc"], counts["free"], counts["realloc"]) == (report.allocs, report.frees, report.reallocs)
        assert report.rows == len(trace) and report.live_at_end == report.allocs - report.frees
        assert int((trace.size[(trace.op == OP_ALLOC) | (trace.op == OP_REALLOC)] <= 0).sum()) == 0
        check_replays(trace)

    with_file(name, text.encode(), use)


@given(valgrind_logs())
def test_valgrind_logs_from_a_grammar(text: str) -> None:
    check_import("valgrind", text)


@given(android_dumps())
def test_android_dumps_from_a_grammar(text: str) -> None:
    check_import("android", text)


@given(heaptrack_raws())
def test_heaptrack_raws_from_a_grammar(text: str) -> None:
    check_import("heaptrack", text)


@given(cmu_reps())
def test_cmu_reps_from_a_grammar(text: str) -> None:
    check_import("cmu", text)


# --------------------------------------------------------------- round trips
@st.composite
def valid_traces(draw: st.DrawFn) -> Trace:
    """Any valid trace: every op kind, ids dense, sparse or near 2^63, sizes 1 B .. 1 TiB, threads 0..1023."""
    ids = draw(st.sampled_from(("dense", "sparse", "huge")))
    id_values = {"dense": st.integers(0, 40), "sparse": st.integers(0, 1 << 40),
                 "huge": st.integers((1 << 63) - 64, (1 << 63) - 1)}[ids]
    sizes = st.sampled_from((1, 15, 16, 17, 4096, 1 << 20, 1 << 40)) | st.integers(1, 1 << 40)
    threads = st.sampled_from((0, 1, 63, 1023))
    live: dict[int, int] = {}
    rows = []
    for _ in range(draw(st.integers(0, 24))):
        kind = draw(st.sampled_from((A, F, R, X))) if live else A
        if kind == A:
            ident = draw(id_values.filter(lambda value: value not in live))
            live[ident] = draw(sizes)
            rows.append((A, ident, live[ident], draw(threads)))
            continue
        ident = draw(st.sampled_from(sorted(live)))
        if kind == F:
            del live[ident]
            rows.append((F, ident, 0, draw(threads)))
        elif kind == R:
            live[ident] = draw(sizes)
            rows.append((R, ident, live[ident], draw(threads)))
        else:
            rows.append((X, ident, draw(st.integers(0, live[ident])), draw(threads)))
    return from_rows(rows, meta={"ids": ids})


@given(valid_traces())
def test_every_valid_trace_round_trips_every_format(trace: Trace) -> None:
    """No silently wrong figures from a file: a valid trace saved as .npz, .csv or a chunked directory loads
    back as the same rows, and a directory's facts are the trace's own."""
    with tempfile.TemporaryDirectory() as directory:
        for name in ("t.npz", "t.csv", "t/"):
            target = Path(directory) / name
            trace.save(f"{directory}/{name}")  # 't/': a chunked directory (Path would drop the '/')
            loaded = Trace.load(target)
            for column in NAMES:
                assert np.array_equal(getattr(loaded, column), getattr(trace, column)), (name, column)
                assert getattr(loaded, column).dtype == getattr(trace, column).dtype
            assert loaded.facts() == trace.facts(), name
            if name == "t/":
                assert ChunkedTrace(target).facts() == trace.facts()
                streamed = [chunk.slots for chunk in ChunkedTrace(target).chunks(chunk_rows=5)]
                joined = np.concatenate(streamed) if streamed else np.zeros(0, np.int64)
                assert np.array_equal(joined, trace.slots)


# --------------------------------------------------------------------- CLI
#: (file name, seed contents, entry point of tests/test_malformed_corpus.py, its entry) fed to the CLI corrupted.
CLI_CASES = [
    ("t.npz", NPZ, "replay", {"allocator": "freelist"}), ("t.npz", NPZ, "info", {}),
    ("t.csv", CSV.encode(), "replay", {"allocator": "freelist"}), ("t.csv", CSV.encode(), "info", {}),
    ("t.log", VALGRIND.encode(), "import", {"format": "valgrind"}),
    ("t.raw", HEAPTRACK.encode(), "import", {"format": "heaptrack"}),
    ("t.rep", CMU.encode(), "import", {"format": "cmu"}),
    ("t.txt", ANDROID.encode(), "import", {"format": "android"}),
    ("t.log", VALGRIND.encode(), "import", {"format": "auto"}),
]


@settings(max_examples=max(10, settings.default.max_examples // 2),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(range(len(CLI_CASES))).flatmap(
    lambda index: st.tuples(st.just(index), corrupted_bytes(CLI_CASES[index][1])
                            | corrupted_text(CLI_CASES[index][1].decode("latin-1")))))
def test_the_cli_exits_0_1_or_2_with_one_line(case: tuple[int, bytes]) -> None:
    """Every entry point of the corpus test, on corrupted input: 0 and nothing on stderr, 1 (the allocator
    failed on a valid trace) or 2 with one line naming the file, and no output file after a refusal."""
    index, data = case
    name, _, command, entry = CLI_CASES[index]

    def run(path: Path) -> None:
        out = path.parent / "out.npz"
        argv = ENTRY_POINTS[command](path, entry, out)
        err, stdout = io.StringIO(), io.StringIO()
        with redirect_stderr(err), redirect_stdout(stdout):
            code = main(argv)
        lines = [line for line in err.getvalue().splitlines()
                 if line.strip() and not line.startswith(("compiling kernels", "compiled in "))]
        assert "Traceback" not in err.getvalue()
        assert code in (0, 1, 2), (argv, code, err.getvalue())
        if code == 0:  # nothing on stderr: no warning either (numpy's, on a Python 2 .npy header)
            assert not lines, lines
        elif code == 1:  # the allocator failed on a valid trace: one line naming it
            assert len(lines) == 1 and command == "replay", lines
        else:
            assert len(lines) == 1 and str(path) in lines[0], lines
            assert not out.exists()
        event(f"{command} exit {code}")

    with_file(name, data, run)
