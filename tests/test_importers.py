"""Importers of real allocation logs: every format from small fixtures written here."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from workloads.importers import FORMATS, guess_format, import_trace
from workloads.trace import MAX_THREADS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace, TraceError

A, F, R = OP_ALLOC, OP_FREE, OP_REALLOC


def rows(trace: Trace) -> list[tuple[int, int, int, int]]:
    return list(zip(trace.op.tolist(), trace.obj.tolist(), trace.size.tolist(), trace.thread.tolist(), strict=True))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ valgrind
# Exactly what valgrind 3.19 prints for each call (checked by running it on a C++ test program).
VALGRIND_LOG = """\
==5370== Memcheck, a memory error detector
==5370== Command: ./t
==5370==
--5370-- malloc(32) = 0x4D6DC80
--5370-- calloc(4,8) = 0x4D6DCE0
--5370-- malloc(0) = 0x4D6DD40
--5370-- realloc(0x4D6DC80,64) = 0x4D6DD80
--5370-- realloc(0x4D6DD80,16) = 0x4D6DD80
--5370-- realloc(0x0,100)malloc(100) = 0x4D6DE50
--5370-- realloc(0x4D6DE50,0)free(0x4D6DE50)
--5370--  = 0
--5370-- free(0x4D6DCE0)
--5370-- free(0x4D6DD40)
--5370-- free(0x4D6DD80)
--5370-- free(0x0)
--5370-- _Znwm(4) = 0x4D6DF00
--5370-- _ZdlPv(0x4D6DF00)
--5370-- _Znwm(4) = 0x4D6DF00
--5370-- _ZdlPvm(0x4D6DF00)
--5370-- _Znam(40) = 0x4D6DF50
--5370-- _ZdaPv(0x4D6DF50)
--5370-- _Znam(100) = 0x4D6DFC0
--5370-- _ZdaPvm(0x4D6DFC0)
--5370-- _ZnwmRKSt9nothrow_t(4) = 0x4D6E1F0
--5370-- _ZdlPvm(0x4D6E1F0)
--5370-- memalign(al 64, size 100) = 0x4D6E100
--5370-- free(0x4D6E100)
--5370-- _ZnwmSt11align_val_t(size 64, al 64) = 0x4D6E5C0
--5370-- _ZdlPvmSt11align_val_t(0x4D6E5C0)
--5370-- _ZnamSt11align_val_t(size 128, al 64) = 0x4D6E6C0
--5370-- _ZdaPvSt11align_val_t(0x4D6E6C0)
--5370-- free(0x1234)
--5370-- malloc_usable_size(0x4D6E6C0)
--5370-- malloc(999) = 0x0
some program output
==5370== HEAP SUMMARY:
"""


def test_valgrind_every_call_form(tmp_path: Path) -> None:
    trace, report = import_trace(write(tmp_path, "vg.log", VALGRIND_LOG), "valgrind")
    assert rows(trace) == [
        (A, 0, 32, 0), (A, 1, 32, 0), (A, 2, 1, 0),           # malloc, calloc(4,8), malloc(0) -> size 1
        (R, 0, 64, 0), (R, 0, 16, 0),                          # realloc moving, then in place
        (A, 3, 100, 0), (F, 3, 0, 0),                          # realloc(0x0,n) = malloc; realloc(p,0) = free
        (F, 1, 0, 0), (F, 2, 0, 0), (F, 0, 0, 0),              # frees; free(0x0) gives no row
        (A, 4, 4, 0), (F, 4, 0, 0), (A, 5, 4, 0), (F, 5, 0, 0),  # new / delete / sized delete
        (A, 6, 40, 0), (F, 6, 0, 0), (A, 7, 100, 0), (F, 7, 0, 0),  # new[] / delete[] / sized delete[]
        (A, 8, 4, 0), (F, 8, 0, 0),                            # nothrow new
        (A, 9, 100, 0), (F, 9, 0, 0),                          # memalign (also posix_memalign, aligned_alloc)
        (A, 10, 64, 0), (F, 10, 0, 0), (A, 11, 128, 0), (F, 11, 0, 0),  # aligned new / delete
    ]
    assert report.rows == len(trace) == 26
    assert (report.allocs, report.frees, report.reallocs) == (12, 12, 2)
    assert report.free_null == 1
    assert report.unknown_frees == 1
    assert report.realloc_null == 1
    assert report.realloc_to_zero == 1
    assert report.zero_size == 1
    assert report.failed_allocs == 1
    assert report.ignored_calls == {"malloc_usable_size": 1}
    assert report.ignored_lines == 6  # 3 "==" lines, " = 0", program output, HEAP SUMMARY
    assert report.live_at_end == 0
    assert trace.meta["format"] == "valgrind" and trace.meta["import"]["unknown_frees"] == 1


def test_valgrind_processes_have_separate_address_maps(tmp_path: Path) -> None:
    log = "--10-- malloc(8) = 0x100\n--11-- malloc(16) = 0x100\n--10-- free(0x100)\n--11-- free(0x100)\n"
    trace, report = import_trace(write(tmp_path, "vg.log", log), "valgrind")
    assert rows(trace) == [(A, 0, 8, 0), (A, 1, 16, 0), (F, 0, 0, 0), (F, 1, 0, 0)]
    assert report.address_reused == 0


def test_valgrind_reused_live_address_frees_the_old_object(tmp_path: Path) -> None:
    log = "--1-- malloc(8) = 0x100\n--1-- malloc(24) = 0x100\n--1-- realloc(0x999,40) = 0x200\n"
    trace, report = import_trace(write(tmp_path, "vg.log", log), "valgrind")
    assert rows(trace) == [(A, 0, 8, 0), (F, 0, 0, 0), (A, 1, 24, 0), (A, 2, 40, 0)]
    assert report.address_reused == 1 and report.unknown_reallocs == 1 and report.live_at_end == 2


def test_valgrind_failed_realloc_keeps_the_block(tmp_path: Path) -> None:
    log = "--1-- malloc(8) = 0x100\n--1-- realloc(0x100,99999) = 0x0\n--1-- free(0x100)\n"
    trace, report = import_trace(write(tmp_path, "vg.log", log), "valgrind")
    assert rows(trace) == [(A, 0, 8, 0), (F, 0, 0, 0)]
    assert report.failed_reallocs == 1


@pytest.mark.parametrize("line", [
    "--1-- malloc(abc) = 0x10",
    "--1-- malloc(8)",
    "--1-- malloc(8) = banana",
    "--1-- calloc(8) = 0x10",
    "--1-- realloc(0x10) = 0x20",
    "--1-- free(zz)",
    "--1-- free(0x10) trailing",
])
def test_valgrind_malformed_lines_name_file_and_line(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "bad.log", "--1-- malloc(8) = 0x100\n" + line + "\n")
    with pytest.raises(TraceError, match=r"bad\.log: line 2: "):
        import_trace(path, "valgrind")


# ----------------------------------------------------------------- heaptrack
# heaptrack 1.4 raw data (`heaptrack --raw`), as recorded from a small C++ program, cut down.
HEAPTRACK_RAW = """\
v 10400 3
x a /tmp/imp/t
X ./t
I 1000 5e298f
m 1 -
m 1f /lib/x86_64-linux-gnu/libc.so.6 7f22ba41e000 0 25388 26000 1550fc
t 7f22ba906b9f 0
t 7f22ba8f0b03 1
+ 20 1 5579b8e2a1d0
+ 20 2 5579b8e2a2c0
+ 0 2 5579b8e2a350
- 5579b8e2a1d0
+ 40 2 5579b8e2a420
- 5579b8e2a420
+ 10 2 5579b8e2a420
+ 64 2 5579b8e2a5c0
- 5579b8e2a2c0
- 5579b8e2a8c0
+ 64 2 5579b8e2a5c0
c 5
R 3e7
"""


def test_heaptrack_raw(tmp_path: Path) -> None:
    trace, report = import_trace(write(tmp_path, "h.raw", HEAPTRACK_RAW), "heaptrack")
    assert rows(trace) == [
        (A, 0, 0x20, 0), (A, 1, 0x20, 0), (A, 2, 1, 0), (F, 0, 0, 0),
        (A, 3, 0x40, 0), (F, 3, 0, 0), (A, 4, 0x10, 0),          # a realloc: logged as free + alloc
        (A, 5, 0x64, 0), (F, 1, 0, 0),
        (F, 5, 0, 0), (A, 6, 0x64, 0),                           # live address reused: implicit free
    ]
    assert report.unknown_frees == 1 and report.zero_size == 1 and report.address_reused == 1
    assert report.ignored_lines == 10 and report.live_at_end == 3


@pytest.mark.parametrize("suffix", [".raw.gz", ".raw.zst"])
def test_heaptrack_compressed(tmp_path: Path, suffix: str) -> None:
    plain = write(tmp_path, "h.raw", HEAPTRACK_RAW)
    packed = tmp_path / ("h" + suffix)
    if suffix == ".raw.gz":
        packed.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        if shutil.which("zstd") is None:
            pytest.skip("zstd is not installed (Debian package zstd)")
        subprocess.run(["zstd", "-q", "-o", str(packed), str(plain)], check=True)
    assert rows(import_trace(packed, "heaptrack")[0]) == rows(import_trace(plain, "heaptrack")[0])


@pytest.mark.parametrize("text, message", [
    ("v 10400 3\n+ 5\n", "interpreted heaptrack data"),
    ("v 10400 3\n+ 20 1\n", r"line 2: expected '\+ SIZE TRACE PTR'"),
    ("v 10400 3\n+ 20 1 zz\n", "line 2: bad pointer"),
    ("v 10400 3\n- 10 20\n", "line 2: expected '- PTR'"),
    ("+ 20 1 10\n", "line 1: not heaptrack raw data"),
    ("v 10400 3\n?? what\n", "line 2: not a heaptrack raw line"),
])
def test_heaptrack_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        import_trace(write(tmp_path, "h.raw", text), "heaptrack")


# ----------------------------------------------------------------------- cmu
CMU_REP = """\
20000
4
9
1
a 0 512
a 1 128
r 0 640
f 1
a 1 0
r 2 64
r 2 0
f 3
f 0
"""


def test_cmu_rep(tmp_path: Path) -> None:
    trace, report = import_trace(write(tmp_path, "t.rep", CMU_REP), "cmu")
    assert rows(trace) == [
        (A, 0, 512, 0), (A, 1, 128, 0), (R, 0, 640, 0), (F, 1, 0, 0),
        (A, 2, 1, 0),                    # a 1 0: zero size -> 1 (id 1 reused after its free: a fresh object)
        (A, 3, 64, 0), (F, 3, 0, 0),     # r of a dead id = malloc; r ID 0 = free
        (F, 0, 0, 0),
    ]
    assert report.unknown_frees == 1 and report.realloc_null == 1 and report.realloc_to_zero == 1
    assert report.zero_size == 1 and report.live_at_end == 1


@pytest.mark.parametrize("text, message", [
    ("20000\n4\n", "truncated header"),
    ("20000\n4\n2\n1\na 0 5\n", "the header says 2 ops, the file has 1"),
    ("20000\n4\n1\n1\nx 0 5\n", "line 5: unknown op 'x'"),
    ("20000\n4\n1\n1\na 9 5\n", "line 5: id 9 outside 0..3"),
    ("20000\n4\n1\n1\na 0\n", "line 5: 'a' takes 2 number"),
    ("20000\n4\n1\n1\na 0 big\n", "line 5: bad size"),
    ("20000 4\n", "line 1: expected the header"),
])
def test_cmu_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        import_trace(write(tmp_path, "t.rep", text), "cmu")


# ------------------------------------------------------------------- android
ANDROID_DUMP = """\
186: malloc 0xb6038060 20
200: calloc 0xb609ba40 4 8
186: realloc 0xb6038100 0xb6038060 40
300: memalign 0x85423660 16 104
200: free 0xb609ba40
186: realloc 0xb6039000 0x0 12
186: realloc 0x0 0xb6039000 0
300: free 0x0
300: free 0xdeadbeef
200: thread_done 0x0
186: malloc 0xb6040000 0 123 456
300: free 0x85423660 123 456
"""


def test_android_memory_replay(tmp_path: Path) -> None:
    trace, report = import_trace(write(tmp_path, "dump.txt", ANDROID_DUMP), "android")
    assert rows(trace) == [
        (A, 0, 20, 0), (A, 1, 32, 1), (R, 0, 40, 0), (A, 2, 104, 2), (F, 1, 0, 1),
        (A, 3, 12, 0), (F, 3, 0, 0),     # realloc NEW 0x0 = malloc; realloc 0x0 OLD 0 = free
        (A, 4, 1, 0), (F, 2, 0, 2),      # timestamps accepted
    ]
    assert report.threads == 3 and report.thread_done == 1
    assert report.free_null == 1 and report.unknown_frees == 1
    assert report.realloc_null == 1 and report.realloc_to_zero == 1 and report.zero_size == 1


def test_android_threads_recycled_past_the_maximum(tmp_path: Path) -> None:
    lines = [f"{1000 + t}: malloc 0x{(t + 1) * 0x100:x} 8\n{1000 + t}: thread_done 0x0\n" for t in range(MAX_THREADS)]
    lines.append("5: malloc 0x999000 8\n")
    trace, report = import_trace(write(tmp_path, "dump.txt", "".join(lines)), "android")
    assert report.threads_recycled == 1 and int(trace.thread[-1]) == 0 and trace.n_threads == MAX_THREADS


def test_android_too_many_live_threads(tmp_path: Path) -> None:
    lines = [f"{1000 + t}: malloc 0x{(t + 1) * 0x100:x} 8\n" for t in range(MAX_THREADS + 1)]
    with pytest.raises(TraceError, match=f"line {MAX_THREADS + 1}: more than {MAX_THREADS} threads"):
        import_trace(write(tmp_path, "dump.txt", "".join(lines)), "android")


@pytest.mark.parametrize("text, message", [
    ("186 malloc 0x10 8\n", "line 1: expected 'TID: OP"),
    ("186: mallok 0x10 8\n", "line 1: unknown op 'mallok'"),
    ("186: malloc 0x10\n", "line 1: 'malloc' takes 2 argument"),
    ("186: malloc 16 8\n", "line 1: bad pointer '16'"),
    ("abc: malloc 0x10 8\n", "line 1: bad thread id"),
    ("1: malloc 0x10 -8\n", "line 1: negative size"),
])
def test_android_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        import_trace(write(tmp_path, "dump.txt", text), "android")


# --------------------------------------------------------------------- common
@pytest.mark.parametrize("format", FORMATS)
def test_missing_file_and_unknown_format(tmp_path: Path, format: str) -> None:
    with pytest.raises(TraceError, match="no such file"):
        import_trace(tmp_path / "absent.log", format)
    with pytest.raises(TraceError, match="unknown trace format 'bogus'"):
        import_trace(tmp_path / "absent.log", "bogus")


def test_imported_trace_round_trips_through_npz(tmp_path: Path) -> None:
    trace, _ = import_trace(write(tmp_path, "vg.log", VALGRIND_LOG), "valgrind")
    trace.save(tmp_path / "t.npz")
    loaded = Trace.load(tmp_path / "t.npz")
    assert rows(loaded) == rows(trace)
    assert loaded.meta["import"]["free_null"] == 1
    assert np.all(loaded.size[loaded.op != F] > 0)


def test_valgrind_line_after_program_output_on_the_same_line(tmp_path: Path) -> None:
    log = "--1-- malloc(8) = 0x100\npartial output--1-- free(0x100)\n"
    trace, report = import_trace(write(tmp_path, "vg.log", log), "valgrind")
    assert rows(trace) == [(A, 0, 8, 0), (F, 0, 0, 0)] and report.ignored_lines == 0


@pytest.mark.parametrize("name, text, expected", [
    ("vg.log", VALGRIND_LOG, "valgrind"),
    ("h.raw", HEAPTRACK_RAW, "heaptrack"),
    ("t.rep", CMU_REP, "cmu"),
    ("t.txt", CMU_REP, "cmu"),
    ("dump.txt", ANDROID_DUMP, "android"),
])
def test_guess_format(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)
    assert guess_format(path) == expected
    assert import_trace(path)[1].format == expected


def test_guess_format_refuses_unknown_text(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot tell its format"):
        import_trace(write(tmp_path, "x.txt", "hello\nworld\n"))
