"""Bad or awkward input: one line on stderr and exit 2 (or a warning and a sane default), never a traceback."""

from __future__ import annotations

import fcntl
import json
import os

import numpy as np
import pytest

from bench.cli import main
from bench.compare import compare
from bench.sweep import LOCK_FILE
from labcore.units import parse_bytes

COMPILE_NOTICE = ("compiling kernels (first run only", "compiled in ")
QUICK = ["--ops", "2000", "--repeats", "1", "--no-progress", "--no-plots"]


def _one_line(capsys, *words: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    err = "\n".join(line for line in lines if not line.startswith(COMPILE_NOTICE))  # a cold cache says so first
    assert "Traceback" not in err and err.count("\n") == 0, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(5))
    (tmp_path / "fake.npz").write_bytes((tmp_path / "x.npy").read_bytes())
    (tmp_path / "garbage.csv").write_bytes(bytes(range(128, 256)) * 4)
    (tmp_path / "bom.csv").write_bytes("\ufeffop,obj,size,thread\nalloc,1,10,0\nfree,1,0,0\n".encode())
    (tmp_path / "empty.csv").write_text("op,obj,size,thread\n")
    return tmp_path


def test_files_that_are_not_traces_name_the_file(files, capsys):
    assert main(["replay", "--trace", str(files / "fake.npz"), "-a", "pool"]) == 2
    _one_line(capsys, "fake.npz", "not an npz archive")
    assert main(["replay", "--trace", str(files / "garbage.csv"), "-a", "pool"]) == 2
    _one_line(capsys, "garbage.csv", "not UTF-8 text")
    assert main(["replay", "--trace", str(files / "bom.csv"), "-a", "pool", "--repeats", "1"]) == 0


def test_an_empty_trace_is_refused_up_front(files, capsys):
    assert main(["replay", "--trace", str(files / "empty.csv"), "-a", "pool"]) == 2
    _one_line(capsys, "trace has no rows")
    assert main(["run", "-a", "pool", "--ops", "1"]) == 2
    _one_line(capsys, "trace has no rows")


def test_units_parse_up_to_the_documented_maximum(capsys):
    assert parse_bytes("1TiB") == 1 << 40 and parse_bytes("64KiB") == 65536 and parse_bytes("0x10") == 16
    with pytest.raises(ValueError, match="not a byte count"):
        parse_bytes("12 bananas")
    assert main(["run", "-a", "pool", "--capacity", "64MiB", "--ops", "500", "--repeats", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["capacity"] == 64 << 20
    assert main(["run", "-a", "pool", "--capacity", "lots", "--ops", "500"]) == 2
    _one_line(capsys, "--capacity", "not a byte count")
    assert main(["run", "-a", "pool", "-w", "fixed:size=1KiB,max_size=1TiB", "--ops", "500", "--repeats", "1"]) == 0
    capsys.readouterr()


def test_duplicate_and_empty_arguments(tmp_path, capsys):
    assert main(["run", "-a", "buddy:min_block=16,min_block=32", "--ops", "500"]) == 2
    _one_line(capsys, "min_block", "given twice")
    assert main(["run", "-a", "pool", "-w", "fixed:size=16,size=32", "--ops", "500"]) == 2
    _one_line(capsys, "size", "given twice")
    assert main(["sweep", "-a", "", *QUICK, "--out", str(tmp_path / "a")]) == 2
    _one_line(capsys, "--allocators is an empty list")
    assert main(["sweep", "--quick", "--preset", "ci", "--out", str(tmp_path / "b")]) == 2
    _one_line(capsys, "--quick", "--preset ci")
    assert main(["sweep", "-a", "buddy;buddy", "-w", "fifo", "--seeds", "0,0", *QUICK, "--json",
                 "--out", str(tmp_path / "c")]) == 0
    captured = capsys.readouterr()
    assert "duplicate specs dropped" in captured.err and "duplicate seeds dropped" in captured.err
    assert len(json.loads(captured.out)) == 1


def test_log_names(tmp_path, capsys):
    trace = str(tmp_path / "t.npz")
    assert main(["trace", "gen", "-w", "fixed", "--ops", "300", "-o", trace]) == 0
    assert main(["replay", "--trace", trace, "-a", "pool", "--log", str(tmp_path / "log.txt")]) == 2
    _one_line(capsys, "--log", ".npz")
    assert main(["replay", "--trace", trace, "-a", "pool", "--log", str(tmp_path / "missing" / "log.npz")]) == 2
    _one_line(capsys, "does not exist")
    target = tmp_path / "log.npz"
    assert main(["replay", "--trace", trace, "-a", "pool", "--repeats", "1", "--json", "--log", str(target)]) == 0
    assert target.exists() and str(target.resolve()) in capsys.readouterr().err


def test_a_histogram_path_with_slashes_is_one_workload(tmp_path, capsys):
    histogram = tmp_path / "sub" / "sizes.csv"
    histogram.parent.mkdir()
    histogram.write_text("size,weight\n16,1\n64,2\n")
    assert main(["sweep", "-a", "pool", "-w", f"empirical:histogram={histogram};empirical:values=16/32,"
                 "weights=1/3", *QUICK, "--json", "--out", str(tmp_path / "out")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(row["param"] is None for row in rows)


def test_fidelity_refuses_an_out_file_before_measuring(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    trace = str(tmp_path / "t.npz")
    assert main(["trace", "gen", "-w", "fixed", "--ops", "300", "-o", trace]) == 0
    capsys.readouterr()
    assert main(["fidelity", trace, "--out", str(tmp_path / "file")]) == 2
    _one_line(capsys, "not a directory")


def test_one_sweep_at_a_time_per_results_directory(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "a+") as held:  # another sweep holds the lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        assert main(["sweep", "-a", "pool", "-w", "fifo", *QUICK, "--out", str(out)]) == 2
        _one_line(capsys, "another sweep, pid 4242", str(out))
    assert main(["sweep", "-a", "pool", "-w", "fifo", *QUICK, "--out", str(out)]) == 0  # released: free again


def test_jobs_are_capped_recorded_and_gate_speed_only_alike(tmp_path, capsys):
    grid = ["-a", "pool;buddy", "-w", "fifo", *QUICK]
    assert main(["sweep", *grid, "--jobs", str(4 * (os.cpu_count() or 1)), "--out", str(tmp_path / "many")]) == 0
    assert "capped" in capsys.readouterr().err
    meta = json.loads((tmp_path / "many" / "results.json").read_text())["meta"]
    assert meta["jobs"] == (os.cpu_count() or 1) and meta["machine"]["cpus"] == os.cpu_count()
    assert main(["sweep", *grid, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    comparison = compare(tmp_path / "one", tmp_path / "many")
    if meta["jobs"] != 1:
        assert not comparison.speed and any("speed not gated" in warning for warning in comparison.warnings)
    assert comparison.ok and not comparison.differences


def test_an_import_without_allocation_calls_writes_nothing(tmp_path, capsys):
    log = tmp_path / "quiet.log"
    log.write_text("==7== Memcheck, a memory error detector\n==7== Command: true\n")
    assert main(["trace", "import", "-f", "valgrind", str(log), "-o", str(tmp_path / "t.npz")]) == 2
    _one_line(capsys, "quiet.log", "no allocation calls found")
    assert not (tmp_path / "t.npz").exists()


def test_a_failure_names_the_live_blocks_at_the_failing_row(capsys):
    assert main(["run", "-a", "linear", "-w", "fifo", "--ops", "4000", "--capacity", "64KiB", "--repeats", "1"]) == 1
    err = _one_line(capsys, "OutOfMemory", "live blocks")
    live = int(err.split(" live blocks")[0].rsplit(" ", 1)[1])
    assert 0 < live <= 1000  # fifo keeps about 1000 live (not the protocol's empty table)


def test_commands_that_would_not_fit_memory_are_refused_up_front(tmp_path, capsys, monkeypatch):
    assert main(["trace", "gen", "-w", "lognormal", "--ops", str(10**9), "-o", str(tmp_path / "t.npz")]) == 2
    _one_line(capsys, "1,000,000,000 rows in memory", "trace gen -o DIR/")
    assert not (tmp_path / "t.npz").exists()
    assert main(["run", "-a", "stack", "-w", "lifo", "--ops", "1000", "--capacity", "1TiB"]) == 2
    _one_line(capsys, "stack with capacity 1.0 TiB needs about", "smaller capacity")
    assert main(["run", "-a", "buddy", "-w", "lifo", "--ops", "1000", "--capacity", "256GiB"]) == 2
    _one_line(capsys, "buddy with capacity", "min_block")
    assert main(["trace", "gen", "-w", "lognormal", "--ops", "20000", "-o", str(tmp_path / "small.npz")]) == 0
    capsys.readouterr()
    monkeypatch.setenv("ALLOCLAB_MEMORY_LIMIT", "1MiB")  # a budget the 20 000 rows do not fit in
    assert main(["replay", "--trace", str(tmp_path / "small.npz"), "-a", "pool"]) == 2
    _one_line(capsys, "small.npz (20,000 rows in memory)", "1.0 MiB this machine has available")


def test_a_huge_request_is_served_or_an_allocator_failure(tmp_path, capsys):
    trace = tmp_path / "huge.csv"
    trace.write_text("op,obj,size,thread\nalloc,1,1TiB,0\nfree,1,0,0\n".replace("1TiB", str(1 << 40)))
    assert main(["replay", "--trace", str(trace), "-a", "pool", "--repeats", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distinct_pages"] == 1 << 28  # one interval, not 2^28 set entries
    assert main(["replay", "--trace", str(trace), "-a", "freelist:glibc", "--repeats", "1"]) == 1
    _one_line(capsys, "OutOfMemory", "trace row 0 (ALLOC of object 1, size 1099511627776")
