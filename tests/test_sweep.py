"""Sweep plans and storage: presets, cells that do not apply, atomic cells, resume after a kill, determinism
across --jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import sweep
from bench.cli import main
from bench.sweep import Cell, SweepConfig, expand_workload, make_plan, run_cell

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


def test_default_plan_has_real_glibc_as_the_scale_and_ci_does_not():
    default = make_plan(SweepConfig())
    assert default.allocators.count("real:glibc") == 1 and default.allocators[-1] == "real:glibc"
    assert not any(spec.startswith("real:") for spec in make_plan(SweepConfig(preset="ci")).allocators)
    assert not any(spec.startswith("real:") for spec in make_plan(SweepConfig(preset="quick")).allocators)
    given = make_plan(SweepConfig(allocators=["pool"]))  # given allocators replace the preset's, real ones too
    assert given.allocators == ["pool"]
    assert make_plan(SweepConfig(allocators=["pool"], real=True)).allocators[:2] == ["pool", "real:glibc"]
    assert make_plan(SweepConfig(real=True)).allocators.count("real:glibc") == 1


def test_stack_is_skipped_where_it_does_not_apply_and_runs_on_lifo():
    skipped = run_cell(Cell("stack", "lognormal", 0, "lognormal"), 3000, 1)
    assert skipped.skipped and skipped.status_code == 6 and "newest-first" in skipped.reason
    assert skipped.rows == 3000 and not skipped.metrics and skipped.throughput_mops is None
    ran = run_cell(Cell("stack", "lifo", 0, "lifo"), 3000, 1)
    assert ran.ok and ran.throughput_mops > 0
    failed = run_cell(Cell("pool:block_size=16", "lognormal", 0, "lognormal"), 3000, 1)  # a failure stays one
    assert failed.status == "failed"


def test_a_real_allocator_that_is_not_installed_is_skipped(monkeypatch):
    from bench import real

    def missing(name):
        raise real.RealAllocatorMissing(f"real allocator '{name}': shared library not found; install the Debian "
                                        "package: apt-get install -y libfoo")

    monkeypatch.setattr(real, "library_path", missing)
    row = run_cell(Cell("real:jemalloc", "lifo", 0, "lifo"), 2000, 1)
    assert row.skipped and "apt-get install" in row.reason and row.allocator == "real:jemalloc"
    assert sweep.REAL_PREFIX == "real:"


def test_a_real_cell_measures_its_footprint_on_a_clean_heap():
    """The Python child's heap growth reads far too low on a small trace (Python's freed memory covers it); the
    cell takes the clean-heap C replayer's figure, which cannot be below the live requested bytes for glibc."""
    row = run_cell(Cell("real:glibc", "fifo", 0, "fifo"), 20_000, 1)
    assert row.ok and row.extra["real_measure"].startswith("clean-heap C replayer")
    assert 1.0 <= row.metrics["overhead_factor"] < 3.0 and row.peak_footprint >= row.peak_live_requested
