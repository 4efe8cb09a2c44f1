"""Write the malformed-input corpus: small files that every loader, importer and the CLI must refuse.

Each file (or chunked trace directory) is named for what is wrong with it, and
`expected.json` maps it to the command that reads it (`replay`, `info` for
`trace info`, `import` for `trace import -f FORMAT`) and a substring the one
line on stderr must contain.  `tests/test_malformed_corpus.py` replays every
entry through `bench.cli.main` and checks exit 2, one line naming the file, no
traceback, no output written.

The files are committed; this script makes them reproducible (run it from
anywhere: `python tests/data/malformed/make_corpus.py`).  Zip members carry a
fixed timestamp and gzip files mtime 0, so the same script writes the same
bytes; the `.zst` file needs the `zstd` program (kept as committed when it is
missing).  Kinds of damage:

- truncated, empty or binary files, and files of another format under a trace suffix;
- corrupt containers: a zip member flagged encrypted, an unknown compression
  method, corrupt deflate data, a CRC mismatch, a `.npy` header claiming a huge shape;
- wrong columns: missing, float (with NaN), object (pickled: refused unread), 2-D,
  wrong length, big-endian, unsigned, wrong width;
- bad values: negative or huge sizes and ids, int64/int32 overflow, NaN, unknown ops;
- misuse traces, valid in form and wrong in meaning (double free, free of an
  unknown object, ACCESS past the object, REALLOC of a dead object, a thread out
  of range): refused by validation before any kernel runs, even for an
  unhardened allocator (`freelist`);
- chunked directories whose `meta.json` is corrupt or lies (rows, peak live
  objects or bytes, threads, the largest request, the size histogram), or whose
  `.npy` files are shorter than it says.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workloads.trace import from_rows  # noqa: E402

A, F, R, X = 0, 1, 2, 3
#: A small valid trace: two threads, every op kind.
GOOD_ROWS = [(A, 0, 24, 0), (A, 1, 100, 1), (X, 1, 50, 1), (R, 0, 200, 0), (F, 1, 0, 1), (F, 0, 0, 0)]
EPOCH = (1980, 1, 1, 0, 0, 0)

EXPECTED: dict[str, dict[str, Any]] = {}


def expect(name: str, command: str, substring: str, **extra: Any) -> Path:
    """Record a corpus entry; return its path.  `after_replay`: the refusal comes after the rows were replayed
    (a fact only the whole trace shows); every other entry is refused before any of its rows reaches a kernel."""
    assert name not in EXPECTED, name
    EXPECTED[name] = {"command": command, "expect": substring, **extra}
    return HERE / name.rstrip("/")


def columns(rows: list[tuple[int, int, int, int]] = GOOD_ROWS) -> dict[str, np.ndarray]:
    table = np.asarray(rows, np.int64).reshape(-1, 4)
    return {"op": table[:, 0].astype(np.int8), "obj": table[:, 1].copy(), "size": table[:, 2].copy(),
            "thread": table[:, 3].astype(np.int32)}


def npy_bytes(array: np.ndarray, header: dict[str, Any] | None = None) -> bytes:
    out = io.BytesIO()
    if header is None:
        np.lib.format.write_array(out, array, allow_pickle=True)
    else:  # a hand-made header in front of the array's bytes
        np.lib.format.write_array_header_1_0(out, header)
        out.write(array.tobytes())
    return out.getvalue()


def unparsable_npy(array: np.ndarray) -> bytes:
    """A .npy whose header is cut inside the shape's parenthesis, same length: numpy's parser raises
    SyntaxError, then (retrying it as a Python 2 header) tokenize.TokenError."""
    good = npy_bytes(array)
    return good.replace(b"'shape': (", b"'shape': ((", 1).replace(b", }", b" }", 1)


def write_npz(path: Path, members: dict[str, bytes | np.ndarray], compress: bool = True) -> bytes:
    """A zip of `.npy` members (arrays, or raw bytes), reproducible byte for byte."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, member in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            archive.writestr(info, member if isinstance(member, bytes) else npy_bytes(member))
    return path.read_bytes()


def trace_npz(path: Path, changes: dict[str, Any] | None = None, rows=GOOD_ROWS, meta: Any = "{}",
              compress: bool = True) -> bytes:
    members: dict[str, Any] = {**columns(rows), **(changes or {})}
    members = {name: value for name, value in members.items() if value is not None}
    if meta is not None:
        members["meta"] = np.array(meta)
    return write_npz(path, members, compress)


def csv(name: str, body: str, substring: str, command: str = "replay", **extra: Any) -> None:
    expect(name, command, substring, **extra).write_text("op,obj,size,thread\n" + body)


def make_npz() -> None:
    good = trace_npz(HERE / "_good.npz")
    (HERE / "_good.npz").unlink()
    expect("npz_truncated.npz", "replay", "truncated or corrupt npz").write_bytes(good[: len(good) // 2])
    expect("npz_truncated_header.npz", "info", "truncated or corrupt npz").write_bytes(good[:40])
    expect("npz_empty.npz", "replay", "not an npz archive").write_bytes(b"")
    expect("npz_is_npy.npz", "info", "not an npz archive").write_bytes(npy_bytes(np.arange(6)))
    expect("npz_binary_garbage.npz", "replay", "not an npz archive").write_bytes(bytes(range(256)) * 2)
    trace_npz(expect("npz_missing_column.npz", "replay", "missing column(s) thread"), {"thread": None})
    trace_npz(expect("npz_obj_float.npz", "replay", "column 'obj' has dtype float64"),
              {"obj": np.array([0, 1, 1, 0, 1, 0], np.float64)})
    trace_npz(expect("npz_nan_size.npz", "replay", "column 'size' has dtype float64"),
              {"size": np.array([24, np.nan, 50, 200, 0, 0])})
    trace_npz(expect("npz_object_dtype.npz", "replay", "column 'obj' is an object array (pickled data, refused"),
              {"obj": np.array([0, 1, 1, 0, 1, "not a number"], dtype=object)})
    trace_npz(expect("npz_size_negative.npz", "replay", "row 0: ALLOC of object 0 with size -24 (must be > 0)"),
              {"size": np.array([-24, 100, 50, 200, 0, 0], np.int64)})
    trace_npz(expect("npz_size_huge.npz", "replay", "size 2199023255552 above the maximum"),
              {"size": np.array([1 << 41, 100, 50, 200, 0, 0], np.int64)})
    trace_npz(expect("npz_wrong_length.npz", "replay", "column 'size' has 5 rows, column 'op' has 6"),
              {"size": np.array([24, 100, 50, 200, 0], np.int64)})
    trace_npz(expect("npz_2d_column.npz", "info", "column 'op' has 2 dimensions, expected 1"),
              {"op": np.zeros((6, 1), np.int8)})
    trace_npz(expect("npz_0d_column.npz", "replay", "column 'thread' has 0 dimensions, expected 1"),
              {"thread": np.array(0, np.int32)})
    huge = {"descr": "<i8", "fortran_order": False, "shape": (1 << 40,)}
    trace_npz(expect("npz_zip_bomb_header.npz", "replay", "column 'size' has 1099511627776 rows"),
              {"size": npy_bytes(columns()["size"], huge)})
    every = {name: npy_bytes(array, {"descr": array.dtype.str, "fortran_order": False, "shape": (1 << 40,)})
             for name, array in columns().items()}
    trace_npz(expect("npz_huge_shape.npz", "replay", "1,099,511,627,776 rows in memory"), every)
    trace_npz(expect("npz_big_endian.npz", "replay", "column 'size' has dtype >i8"),
              {"size": columns()["size"].astype(">i8")})
    trace_npz(expect("npz_obj_uint64.npz", "replay", "column 'obj' has dtype uint64"),
              {"obj": np.array([0, 1, 1, 0, 1, (1 << 64) - 1], np.uint64)})
    trace_npz(expect("npz_op_int64.npz", "replay", "column 'op' has dtype int64"),
              {"op": columns()["op"].astype(np.int64)})
    trace_npz(expect("npz_op_unknown.npz", "replay", "unknown op code 7"),
              {"op": np.array([0, 0, 7, 2, 1, 1], np.int8)})
    trace_npz(expect("npz_obj_negative.npz", "replay", "negative object id -1"),
              {"obj": np.array([0, -1, 1, 0, 1, 0], np.int64)})
    trace_npz(expect("npz_meta_not_json.npz", "info", "meta is not valid JSON"), meta="{'seed': 1")
    trace_npz(expect("npz_meta_deep.npz", "info", "meta is not valid JSON (RecursionError)"), meta="[" * 100_000)
    trace_npz(expect("npz_meta_list.npz", "info", "meta is JSON list, expected an object"), meta="[1, 2]")
    trace_npz(expect("npz_meta_array.npz", "info", "meta is an array of dtype int64 and shape (3,)"),
              {"meta": np.arange(3)}, meta=None)
    trace_npz(expect("npz_meta_pickled.npz", "info", "meta is an array of dtype object"),
              {"meta": np.array({"seed": 1}, dtype=object)}, meta=None)
    trace_npz(expect("npz_meta_huge_string.npz", "info", "meta is an array of dtype <U100000000"),
              {"meta": npy_bytes(np.array("{}"), {"descr": "<U100000000", "fortran_order": False, "shape": ()})},
              meta=None)
    # Container damage.  Offsets come from the zip's own records, so the damage lands where it is meant to.
    flagged = bytearray(good)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = flagged.find(signature)
        while at >= 0:
            flagged[at + flag_at] |= 1  # "encrypted"
            at = flagged.find(signature, at + 1)
    expect("npz_encrypted_member.npz", "replay", "is encrypted").write_bytes(bytes(flagged))
    method = bytearray(good)
    for signature, method_at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = method.find(signature)
        while at >= 0:
            method[at + method_at] = 99  # no such compression method
            at = method.find(signature, at + 1)
    expect("npz_unknown_compression.npz", "replay", "compression method is not supported").write_bytes(bytes(method))
    deflate = bytearray(good)
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        first = archive.infolist()[0]
    data_at = first.header_offset + 30 + len(first.filename)
    for index in range(data_at, data_at + 12):
        deflate[index] ^= 0xFF
    expect("npz_corrupt_deflate.npz", "replay", "truncated or corrupt npz").write_bytes(bytes(deflate))
    stored = bytearray(trace_npz(HERE / "_stored.npz", compress=False))
    (HERE / "_stored.npz").unlink()
    with zipfile.ZipFile(io.BytesIO(bytes(stored))) as archive:
        first = archive.infolist()[0]
    stored[first.header_offset + 30 + len(first.filename) + first.file_size - 1] ^= 0x01  # last data byte
    expect("npz_crc_mismatch.npz", "replay", "Bad CRC-32").write_bytes(bytes(stored))
    trace_npz(expect("npz_header_unparsable.npz", "replay", "truncated or corrupt npz file (('EOF in multi-line"),
              {"op": unparsable_npy(columns()["op"])}, compress=False)
    python2 = npy_bytes(columns()["op"]).replace(b"'shape': (6,)", b"'shape': (6L) ", 1)  # numpy warns, then fails
    trace_npz(expect("npz_python2_header.npz", "replay", "truncated or corrupt npz file (shape is not valid: 6)"),
              {"op": python2}, compress=False)
    # Misuse traces: well-formed columns, wrong meaning; refused before an unhardened allocator runs them.
    misuse = {
        "npz_double_free.npz": ([(A, 0, 8, 0), (F, 0, 0, 0), (F, 0, 0, 0)], "row 2: double free of object 0"),
        "npz_free_unknown.npz": ([(A, 0, 8, 0), (F, 9, 0, 0)], "row 1: FREE of object 9, which is not live"),
        "npz_access_past_size.npz": ([(A, 0, 8, 0), (X, 0, 9, 0)], "touches 9 bytes, outside 0..object size"),
        "npz_realloc_dead.npz": ([(A, 0, 8, 0), (F, 0, 0, 0), (R, 0, 16, 0)], "REALLOC of object 0, which is not live"),
        "npz_thread_out_of_range.npz": ([(A, 0, 8, 1024)], "thread 1024 outside 0..1023"),
        "npz_free_with_size.npz": ([(A, 0, 8, 0), (F, 0, 8, 0)], "FREE of object 0 with size 8 (must be 0)"),
        "npz_alloc_live.npz": ([(A, 0, 8, 0), (A, 0, 8, 0)], "ALLOC reuses object id 0 while it is still live"),
    }
    for name, (rows, substring) in misuse.items():
        trace_npz(expect(name, "replay", substring, allocator="freelist"), rows=rows)


def make_csv() -> None:
    expect("csv_empty.csv", "replay", "line 1: expected header").write_bytes(b"")
    csv("csv_header_only.csv", "", "trace has no rows")
    expect("csv_bom_binary.csv", "replay", "not UTF-8 text").write_bytes(
        "\ufeffop,obj,size,thread\n".encode() + bytes(range(128, 256)) * 2)
    expect("csv_binary_garbage.csv", "info", "expected header").write_bytes(bytes(range(1, 128)) * 3)
    expect("csv_bad_header.csv", "replay", "expected header 'op,obj,size,thread'").write_text("op,id,bytes\n")
    csv("csv_huge_size.csv", f"alloc,1,{(1 << 40) + 1},0\nfree,1,0,0\n", "above the maximum 1099511627776 (line 2)")
    csv("csv_int64_overflow.csv", f"alloc,1,{1 << 63},0\n", "line 2: value out of int64 range")
    csv("csv_thread_int32_overflow.csv", f"alloc,1,8,{1 << 31}\n", "line 2: thread out of int32 range")
    csv("csv_negative_id.csv", "alloc,-3,8,0\n", "negative object id -3 (line 2)")
    csv("csv_negative_size.csv", "alloc,1,-8,0\n", "with size -8 (must be > 0) (line 2)")
    csv("csv_free_unknown.csv", "alloc,1,8,0\nfree,2,0,0\n", "FREE of object 2, which is not live (line 3)",
        allocator="freelist")
    csv("csv_double_alloc.csv", "alloc,1,8,0\nalloc,1,16,0\n", "object id 1 while it is still live (line 3)",
        allocator="freelist")
    csv("csv_double_free.csv", "alloc,1,8,0\nfree,1,0,0\n# a comment\nfree,1,0,0\n", "double free of object 1 (line 5)",
        allocator="freelist")
    csv("csv_access_past_size.csv", "alloc,1,8,0\naccess,1,64,0\n", "touches 64 bytes, outside 0..object size",
        allocator="freelist")
    csv("csv_realloc_dead.csv", "alloc,1,8,0\nfree,1,0,0\nrealloc,1,16,0\n", "REALLOC of object 1, which is not live",
        allocator="freelist")
    csv("csv_thread_out_of_range.csv", "alloc,1,8,5000\n", "thread 5000 outside 0..1023", allocator="freelist")
    csv("csv_nan.csv", "alloc,1,nan,0\n", "line 2: obj, size and thread must be integers")
    csv("csv_float_size.csv", "alloc,1,1.5,0\n", "line 2: obj, size and thread must be integers", command="info")
    csv("csv_missing_field.csv", "alloc,1,8,0\nfree,1,0\n", "line 3: expected 4 fields, got 3")
    csv("csv_unknown_op.csv", "malloc,1,8,0\n", "line 2: unknown op 'malloc'")
    csv("csv_control_chars.csv", "\x1b[2J\x1cmal\u2028loc,1,8,0\n", "unknown op '\\x1b[2J\\x1cmal\\u2028loc'")
    csv("csv_nul_bytes.csv", "alloc,1,8\x00,0\n", "line 2: obj, size and thread must be integers")


def make_logs() -> None:
    valgrind = "==5== Memcheck, a memory error detector\n--5-- malloc(32) = 0x4D6DC80\n"
    expect("valgrind_empty.log", "import", "no allocation calls found", format="valgrind").write_bytes(b"")
    expect("valgrind_truncated.log", "import", "line 3: truncated or malformed call 'malloc(4'",
           format="valgrind").write_text(valgrind + "--5-- malloc(4")
    expect("valgrind_truncated_result.log", "import", "line 3: expected ' = ADDRESS'",
           format="valgrind").write_text(valgrind + "--5-- malloc(4) =")
    expect("valgrind_garbage_numbers.log", "import", "line 3: bad size 'x1f'",
           format="valgrind").write_text(valgrind + "--5-- malloc(x1f) = 0x4D6DD00\n")
    expect("valgrind_negative_size.log", "import", "line 3: negative size -16",
           format="valgrind").write_text(valgrind + "--5-- malloc(-16) = 0x4D6DD00\n")
    expect("valgrind_huge_size.log", "import", "above the trace maximum",
           format="valgrind").write_text(valgrind + f"--5-- malloc({1 << 50}) = 0x4D6DD00\n")
    expect("valgrind_calloc_negative.log", "import", "calloc with a negative argument (-1, -16)",
           format="valgrind").write_text(valgrind + "--5-- calloc(-1,-16) = 0x4D6DD00\n")
    expect("valgrind_bad_pointer.log", "import", "line 3: bad pointer 'zz'",
           format="valgrind").write_text(valgrind + "--5-- free(zz)\n")
    expect("valgrind_pointer_overflow.log", "import", "line 3: bad pointer '0x1000000000000000000' (not a 64-bit",
           format="valgrind").write_text(valgrind + "--5-- malloc(8) = 0x1000000000000000000\n")
    expect("valgrind_negative_pointer.log", "import", "line 3: bad pointer '0x-10'",
           format="valgrind").write_text(valgrind + "--5-- free(0x-10)\n")
    expect("heaptrack_negative_pointer.raw", "import", "line 2: bad pointer '-7f0010'",
           format="heaptrack").write_text("v 10000 2\n+ 20 1 -7f0010\n")
    expect("valgrind_size_5000_digits.log", "import", "line 3: bad size '999", format="valgrind").write_text(
        valgrind + "--5-- memalign(al 64, size " + "9" * 5000 + ") = 0x4D6DD00\n")
    expect("valgrind_pid_5000_digits.log", "import", "line 3: bad PID '999", format="valgrind").write_text(
        valgrind + "--" + "9" * 5000 + "-- malloc(8) = 0x4D6DD00\n")
    expect("valgrind_binary.log", "import", "no allocation calls found",
           format="valgrind").write_bytes(bytes(range(256)) * 4)
    raw = "v 10000 2\nx a.out\n+ 20 1 7f0010\n+ 40 1 7f0040\n- 7f0010\n- 7f0040\n"
    expect("heaptrack_empty.raw", "import", "no allocation calls found", format="heaptrack").write_bytes(b"")
    expect("heaptrack_empty.raw.gz", "import", "no allocation calls found",
           format="heaptrack").write_bytes(b"")
    zipped = gzip.compress(raw.encode() * 4, mtime=0)
    expect("heaptrack_truncated.raw.gz", "import", "truncated or corrupt gzip",
           format="heaptrack").write_bytes(zipped[: len(zipped) // 2])
    corrupt = bytearray(zipped)
    for index in range(12, 20):  # the deflate stream after the 10-byte gzip header
        corrupt[index] ^= 0x5A
    expect("heaptrack_corrupt.raw.gz", "import", "truncated or corrupt gzip", format="heaptrack").write_bytes(
        bytes(corrupt))
    expect("heaptrack_not_gzip.raw.gz", "import", "Not a gzipped file", format="heaptrack").write_text(raw)
    zst = expect("heaptrack_truncated.raw.zst", "import", "zstd could not decompress", format="heaptrack")
    if shutil.which("zstd"):
        packed = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=raw.encode() * 40, capture_output=True,
                                check=True).stdout
        zst.write_bytes(packed[: len(packed) // 2])
    empty_zst = expect("heaptrack_empty.raw.zst", "import", "zstd could not decompress it (", format="heaptrack")
    empty_zst.write_bytes(b"")
    expect("heaptrack_bad_index.raw", "import", "interpreted heaptrack data",
           format="heaptrack").write_text("v 10000 2\n+ 3\n")
    expect("heaptrack_bad_hex.raw", "import", "line 3: bad size 'zz'", format="heaptrack").write_text(
        "v 10000 2\nx a.out\n+ zz 1 7f0010\n")
    expect("heaptrack_no_version.raw", "import", "not heaptrack raw data", format="heaptrack").write_text(raw[10:])
    expect("heaptrack_bad_line.raw", "import", "line 3: expected '- PTR'", format="heaptrack").write_text(
        "v 10000 2\n+ 20 1 7f0010\n- 7f0010 7f0020\n")
    header = "0\n2\n4\n1\n"
    expect("rep_empty.rep", "import", "truncated header", format="cmu").write_bytes(b"")
    expect("rep_bad_header.rep", "import", "line 2: bad header number 'two'", format="cmu").write_text(
        "0\ntwo\n4\n1\na 0 8\n")
    expect("rep_negative_size.rep", "import", "line 5: negative size -8", format="cmu").write_text(
        header + "a 0 -8\n")
    expect("rep_truncated.rep", "import", "the header says 4 ops, the file has 2", format="cmu").write_text(
        header + "a 0 8\na 1 16\n")
    expect("rep_id_out_of_range.rep", "import", "line 5: id 7 outside 0..1", format="cmu").write_text(
        header + "a 7 8\n")
    expect("rep_unknown_op.rep", "import", "line 5: unknown op 'm'", format="cmu").write_text(header + "m 0 8\n")
    expect("android_empty.txt", "import", "no allocation calls found", format="android").write_bytes(b"")
    expect("android_bad_line.txt", "import", "line 2: expected 'TID: OP ...'", format="android").write_text(
        "100: malloc 0x7000 16\nmalloc 0x7010 16\n")
    expect("android_calloc_negative.txt", "import", "calloc with a negative argument (-2, -8)",
           format="android").write_text("100: calloc 0x7000 -2 -8\n")
    expect("android_unknown_op.txt", "import", "line 1: unknown op 'mmap'", format="android").write_text(
        "100: mmap 0x7000 4096\n")


def make_directories() -> None:
    good = HERE / "_good_dir"
    shutil.rmtree(good, ignore_errors=True)
    from_rows(GOOD_ROWS).save(str(good) + "/")

    def variant(name: str, command: str, substring: str, facts: dict[str, Any] | None = None) -> Path:
        path = expect(name, command, substring)
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(good, path)
        if facts:
            document = json.loads((path / "meta.json").read_text())
            document["facts"].update(facts)
            (path / "meta.json").write_text(json.dumps(document, sort_keys=True))
        return path

    (variant("dir_meta_corrupt/", "info", "meta.json: unreadable") / "meta.json").write_bytes(b"{\x00\xff\"facts")
    (variant("dir_meta_missing/", "replay", "no meta.json") / "meta.json").unlink()
    (variant("dir_meta_not_a_trace/", "info", "not a chunked trace") / "meta.json").write_text('{"format": "zip"}')
    variant("dir_meta_count_string/", "info", "rows is '6', expected an integer", {"rows": "6"})
    variant("dir_meta_threads_huge/", "replay", "n_threads 5000 outside 1..1024", {"n_threads": 5000})
    variant("dir_meta_peak_live_huge/", "replay", "peak_live_objects 1000000000000000 above the 2 allocations",
            {"peak_live_objects": 10**15})
    variant("dir_meta_peak_live_lie/", "replay", "2 objects live at once, meta.json says at most 1",
            {"peak_live_objects": 1})
    variant("dir_meta_peak_bytes_lie/", "replay", "300 B live at once, meta.json says at most 10",
            {"peak_live_bytes": 10})
    variant("dir_meta_threads_lie/", "replay", "use thread 1, meta.json says 1 threads", {"n_threads": 1})
    variant("dir_meta_max_request_lie/", "replay", "request 200 B, meta.json says at most 199", {"max_request": 199})
    variant("dir_meta_histogram_lie/", "replay", "facts say request_sizes [32, 112, 192]",
            {"request_sizes": [32, 112, 192]})
    EXPECTED["dir_meta_histogram_lie/"]["after_replay"] = True  # known only once every row was read
    variant("dir_meta_rows_lie/", "replay", "op.npy: 6 rows, meta.json says 7", {"rows": 7, "accesses": 2})
    path = variant("dir_npy_short/", "replay", "size.npy: 168 bytes, expected 176 (truncated?)")
    (path / "size.npy").write_bytes((path / "size.npy").read_bytes()[:-8])
    path = variant("dir_npy_wrong_dtype/", "info", "size.npy: float64 array of shape (6,), expected one int64")
    (path / "size.npy").write_bytes(npy_bytes(np.zeros(6)))
    path = variant("dir_npy_header_unparsable/", "info", "size.npy: not a .npy file (TokenError")
    (path / "size.npy").write_bytes(unparsable_npy(np.load(path / "size.npy")))
    path = variant("dir_double_free/", "replay", "row 5: FREE of object 0, which is not live")
    obj = np.load(path / "obj.npy")
    obj[4] = 0  # rows 4 and 5 both free object 0
    (path / "obj.npy").write_bytes(npy_bytes(obj, {"descr": "<i8", "fortran_order": False, "shape": (6,)}))
    shutil.rmtree(good)


def make_faults() -> None:
    """Fault traces (workloads.faults) that are not what they claim, and inputs `trace inject` must refuse."""
    csv("csv_fault_unmarked.csv", "alloc,1,8,0\nfree,1,0,0\ndouble_free,1,0,0\n",
        "line 4: fault row 'double_free' in a trace that is not a fault trace")
    csv("csv_fault_live_target.csv", "# fault trace\nalloc,1,8,0\ndouble_free,1,0,0\nfree,1,0,0\n",
        "object 1 is not a freed object at row 1")
    csv("csv_fault_bad_param.csv", "# fault trace\nalloc,1,8,0\noverflow,1,0,0\nfree,1,0,0\n",
        "parameter 0 is out of range for overflow")
    fault = {"fault_at": np.array([5]), "fault_kind": np.array([0]), "fault_obj": np.array([1]),
             "fault_param": np.array([0])}
    trace_npz(expect("npz_fault_unmarked.npz", "replay", "1 fault row(s) in a trace that is not a fault trace"),
              fault)
    marked = '{"fault_trace": true}'
    trace_npz(expect("npz_fault_float.npz", "replay", "'fault_at' has dtype float64"),
              {**fault, "fault_at": np.array([5.0])}, meta=marked)
    trace_npz(expect("npz_fault_incomplete.npz", "replay", "fault table incomplete: missing fault_kind"),
              {"fault_at": np.array([5])}, meta=marked)
    huge = {"descr": "<i8", "fortran_order": False, "shape": (1 << 40,)}
    trace_npz(expect("npz_fault_huge_header.npz", "info", "loading the faults of"),
              {name: npy_bytes(np.zeros(1, np.int64), huge) for name in fault}, meta=marked)
    trace_npz(expect("inject_into_fault_trace.npz", "inject", "the trace is a fault trace already"), fault,
              meta=marked)
    expect("inject_garbage.npz", "inject", "not an npz archive").write_bytes(bytes(range(256)))


def main() -> None:
    for old in HERE.iterdir():
        if old.name in ("make_corpus.py", "__pycache__"):
            continue
        if old.is_dir():
            shutil.rmtree(old)
        elif old.name != "heaptrack_truncated.raw.zst" or shutil.which("zstd"):
            old.unlink()
    make_npz()
    make_csv()
    make_logs()
    make_directories()
    make_faults()
    (HERE / "expected.json").write_text(json.dumps(EXPECTED, indent=1, sort_keys=True) + "\n")
    total = sum(path.stat().st_size for path in HERE.rglob("*") if path.is_file())
    print(f"{len(EXPECTED)} corpus entries, {total:,} bytes, in {HERE}")


if __name__ == "__main__":
    main()
