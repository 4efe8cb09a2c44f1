"""The command-line contract: every command works, bad input is exit 2 with one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from allocators.log import AllocLog
from bench.cli import main
from workloads.trace import Trace, from_rows

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_allocators_and_workloads(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name in ("linear", "pool", "stack", "freelist", "buddy", "go", "region", "objpool", "lognormal",
                 "l1_miss_rate", "shared_ops_per_kop"):
        assert name in out


def test_run_prints_figures_and_json(capsys):
    code, out, _ = run_cli(capsys, "run", "--allocator", "freelist", "--workload", "lognormal", "--ops", "5000",
                           "--repeats", "1")
    assert code == 0
    assert "Mops/s" in out and "overhead_factor" in out
    from bench.metrics import METRICS

    assert all(name in out for name in METRICS), "run prints every metric"
    code, out, _ = run_cli(capsys, "run", "-a", "pool", "-w", "fixed", "--ops", "3000", "--repeats", "1", "--json")
    row = json.loads(out)
    assert code == 0 and row["status"] == "ok" and row["rows"] > 0 and row["peak_footprint"] > 0


def test_trace_gen_info_and_replay_with_log(capsys, tmp_path):
    trace_path, log_path = tmp_path / "t.npz", tmp_path / "log.npz"
    code, out, _ = run_cli(capsys, "trace", "gen", "-w", "lognormal", "--ops", "4000", "--seed", "7", "-o",
                           str(trace_path))
    assert code == 0 and trace_path.exists()
    code, out, _ = run_cli(capsys, "trace", "info", str(trace_path), "--json")
    info = json.loads(out)
    assert code == 0 and info["rows"] == len(Trace.load(trace_path))
    code, out, _ = run_cli(capsys, "replay", "--trace", str(trace_path), "--allocator", "buddy", "--log",
                           str(log_path), "--repeats", "1")
    assert code == 0, out
    trace = Trace.load(trace_path)
    with np.load(log_path) as archive:
        assert archive["addr"].dtype == np.int64 and archive["granted"].dtype == np.int64
        assert archive["addr"].shape == (len(trace),) == archive["granted"].shape
        frees = trace.op == 1
        assert (archive["granted"][frees] == 0).all()
        assert (archive["addr"][frees] >= 0).all()
    log = AllocLog.load(log_path)
    assert log.allocator == "buddy" and log.peak_footprint > 0


def test_replay_csv_trace(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("op,obj,size,thread\nalloc,1,100,0\nalloc,2,30,0\nfree,1,0,0\naccess,2,0,0\n")
    code, out, _ = run_cli(capsys, "replay", "--trace", str(path), "--allocator", "freelist:glibc", "--json",
                           "--repeats", "1")
    assert code == 0 and json.loads(out)["peak_live_requested"] == 130


@pytest.mark.parametrize("argv, words", [
    (["run", "--allocator", "nosuch"], "unknown allocator 'nosuch'"),
    (["run", "--allocator", "freelist:policy=worst"], "policy"),
    (["run", "--allocator", "pool", "--workload", "nosuch"], "nosuch"),
    (["run", "--allocator", "pool", "--ops", "0"], "must be >= 1"),
    (["replay", "--trace", "missing.npz", "--allocator", "pool"], "no such file"),
    (["trace", "info", "missing.csv"], "no such file"),
    (["sweep", "--allocators", "nosuch"], "unknown allocator"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_exit_2_with_one_line(capsys, argv, words):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert words in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_trace_file_is_exit_2(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("op,obj,size,thread\nalloc,1,100,0\nfree,1,0,0\nfree,1,0,0\n")
    code, _, err = run_cli(capsys, "replay", "--trace", str(path), "--allocator", "linear")
    assert code == 2 and "double free" in err and "line 4" in err


def test_allocator_failure_is_exit_1(capsys, tmp_path):
    path = tmp_path / "t.npz"
    from_rows([(0, 0, 64, 0), (0, 1, 64, 0), (1, 0, 0, 0)]).save(path)
    code, _, err = run_cli(capsys, "replay", "--trace", str(path), "--allocator", "stack")
    assert code == 1 and "LIFO" in err


def test_help_everywhere():
    for argv in (["--help"], ["list", "--help"], ["run", "--help"], ["replay", "--help"], ["trace", "--help"],
                 ["trace", "gen", "--help"], ["trace", "info", "--help"], ["sweep", "--help"]):
        result = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), argv


def test_quick_sweep_writes_results(capsys, tmp_path):
    code, out, err = run_cli(capsys, "sweep", "--quick", "--ops", "3000", "--allocators", "linear;pool;stack",
                             "--workloads", "lognormal;lifo", "--out", str(tmp_path))
    assert code == 0
    assert "Mops/s" in out and "peak footprint" in out
    document = json.loads((tmp_path / "results.json").read_text())
    cells = {(row["allocator"], row["workload"]): row for row in document["rows"]}
    assert len(cells) == 6
    assert cells[("stack", "lognormal")]["status"] == "skipped"  # not applicable: lognormal frees in random order
    assert "newest-first" in cells[("stack", "lognormal")]["reason"]
    assert cells[("stack", "lognormal")]["status_code"] == 6
    assert cells[("stack", "lifo")]["status"] == "ok"
    assert document["meta"]["versions"]["numba"]
    assert (tmp_path / "results.csv").read_text().startswith("allocator,workload,seed")
    assert "6/6" in err


def test_sizeclasses_go_matches_reference(capsys):
    code, out, _ = run_cli(capsys, "sizeclasses", "go")
    assert code == 0
    reference = (ROOT / "tests" / "data" / "go_sizeclasses.csv").read_text()
    assert out == reference
    code, out, _ = run_cli(capsys, "sizeclasses", "tcmalloc", "--table", "legacy")
    assert code == 0 and len(out.strip().splitlines()) == 86
    code, out, _ = run_cli(capsys, "sizeclasses", "tcmalloc", "--table", "gperftools")
    assert code == 0 and out.splitlines()[3].startswith("3,32,1,8192,256,32,") and len(out.splitlines()) == 86


def test_perf_table(capsys):
    code, out, _ = run_cli(capsys, "perf", "-a", "linear;stack", "--ops", "3000", "--repeats", "1", "--no-compile")
    assert code == 0
    assert "linear" in out and "stack" in out and "lifo" in out and "trace B/row" in out


def test_perf_vs_real(capsys):
    code, out, _ = run_cli(capsys, "perf", "--vs-real", "glibc", "-a", "pool;linear", "-w", "lognormal:live=100",
                           "--ops", "2000", "--rounds", "2", "--repeats", "1")
    assert code == 0
    lines = {line.split()[0] + (" " + line.split()[1] if line.startswith("real") else ""): line.split()
             for line in out.splitlines() if line.strip()}
    assert "pool" in lines and "linear" in lines and "real glibc" in lines and "x glibc (median)" in out
    assert "2,000 rows" in out and "2 interleaved rounds of 1 replays" in out
    code, _, err = run_cli(capsys, "perf", "-w", "lognormal")
    assert code == 2 and "--vs-real" in err


def test_trace_import_and_record(capsys, tmp_path):
    rep = tmp_path / "t.rep"
    rep.write_text("1000\n2\n5\n1\na 0 100\na 1 20\nr 0 300\nf 1\nf 0\n")
    out_path = tmp_path / "t.npz"
    code, out, _ = run_cli(capsys, "trace", "import", str(rep), "--format", "cmu", "-o", str(out_path))
    assert code == 0 and Trace.load(out_path).counts() == {"alloc": 2, "free": 2, "realloc": 1, "access": 0}
    code, _, err = run_cli(capsys, "trace", "record", "-o", str(tmp_path / "x.npz"))
    assert code == 2 and "no command" in err
    bad = tmp_path / "bad.rep"
    bad.write_text("1000\n2\n1\n1\nq 0 100\n")
    code, _, err = run_cli(capsys, "trace", "import", str(bad), "--format", "cmu", "-o", str(out_path))
    assert code == 2 and "line 5" in err
