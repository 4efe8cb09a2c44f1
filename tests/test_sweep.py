"""Sweep storage: atomic cells, resume after a kill, determinism across --jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.sweep import expand_workload

ROOT = Path(__file__).resolve().parent.parent
TIMING = {"throughput_mops", "ns_per_op", "seconds_median", "seconds_min", "seconds_max", "compile_s"}
GRID = ["--allocators", "pool;buddy;freelist:glibc", "--workloads", "lognormal:sigma=0.5/1.5;fifo",
        "--ops", "4000", "--repeats", "1", "--seeds", "0,1", "--no-progress"]


def non_timing(directory: Path) -> list[dict]:
    rows = json.loads((directory / "results.json").read_text())["rows"]
    return [{key: value for key, value in row.items() if key not in TIMING} for row in rows]


def test_family_sweep_expands():
    assert expand_workload("lognormal:sigma=0.5/1,threads=2") == [
        ("lognormal:threads=2,sigma=0.5", "lognormal", "sigma", 0.5),
        ("lognormal:threads=2,sigma=1", "lognormal", "sigma", 1.0),
    ]
    assert expand_workload("fifo") == [("fifo", "fifo", None, None)]
    with pytest.raises(ValueError, match="not a number"):
        expand_workload("lognormal:sigma=a/b")


def test_jobs_do_not_change_non_timing_figures(tmp_path, capsys):
    assert main(["sweep", *GRID, "--out", str(tmp_path / "one")]) == 0
    assert main(["sweep", *GRID, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = non_timing(tmp_path / "one"), non_timing(tmp_path / "two")
    assert len(one) == 18
    assert one == two
    rows = json.loads((tmp_path / "one" / "results.json").read_text())["rows"]
    swept = [row for row in rows if row["family"] == "lognormal"]
    assert {row["param_value"] for row in swept} == {0.5, 1.5} and all(row["param"] == "sigma" for row in swept)


def test_killed_sweep_resumes_to_the_same_figures(tmp_path, capsys):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(["sweep", *GRID, "--out", str(reference)]) == 0
    command = [sys.executable, "-m", "bench", "sweep", *GRID, "--out", str(resumed)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    cells = resumed / "cells"
    while time.time() < deadline and process.poll() is None:
        if cells.exists() and len(list(cells.glob("*.json"))) >= 3:
            break
        time.sleep(0.02)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stored = len(list(cells.glob("*.json")))
    assert killed, "the sweep finished before it could be killed; make the grid larger"
    assert 3 <= stored < 18
    partial = json.loads((resumed / "results.json").read_text())["rows"]
    assert len(partial) >= stored - 1  # results.json is rewritten after every cell
    assert main(["sweep", *GRID, "--resume", "--out", str(resumed)]) == 0
    err = capsys.readouterr().err
    assert "already stored" in err
    assert non_timing(resumed) == non_timing(reference)
