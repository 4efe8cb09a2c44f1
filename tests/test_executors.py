"""Executors: a sweep on a Dask cluster gives the local run's non-timing figures; clear errors without one."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import pytest

from bench import executors
from bench.cli import main
from bench.results import TIMING_FIELDS

GRID = ["--allocators", "pool;tcmalloc", "--workloads", "lognormal:sigma=0.5/1.5;producer-consumer",
        "--ops", "3000", "--repeats", "1", "--seeds", "0,1", "--no-progress", "--no-plots"]


def non_timing(directory: Path) -> list[dict]:
    rows = json.loads((directory / "results.json").read_text())["rows"]
    return [{key: value for key, value in row.items() if key not in TIMING_FIELDS} for row in rows]


def test_inline_executor_hands_back_exceptions():
    future = executors.InlineExecutor().submit(int, "not a number")
    assert isinstance(future.exception(), ValueError)
    assert executors.InlineExecutor().submit(max, 2, 3).result() == 3


@pytest.fixture
def saved_environment():
    """A Dask nanny sets MALLOC_TRIM_THRESHOLD_ (and *_NUM_THREADS) in its process's environment: undo it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_sweep_on_a_dask_cluster_gives_the_local_figures(tmp_path, capsys, saved_environment):
    distributed = pytest.importorskip("distributed")
    assert main(["sweep", *GRID, "--out", str(tmp_path / "local")]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        assert main(["sweep", *GRID, "--executor", "dask", "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path / "dask")]) == 0
    err = capsys.readouterr().err
    assert "2 Dask worker(s)" in err
    local, remote = non_timing(tmp_path / "local"), non_timing(tmp_path / "dask")
    assert len(local) == 12 and local == remote


def test_dask_options_are_checked(tmp_path, capsys):
    assert main(["sweep", *GRID, "--executor", "dask", "--out", str(tmp_path)]) == 2
    assert "--scheduler" in capsys.readouterr().err
    assert main(["sweep", *GRID, "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)]) == 2
    assert "--executor dask" in capsys.readouterr().err


def test_missing_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    code = main(["sweep", *GRID, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)])
    assert code == 2
    assert "pip install -e '.[dask]'" in capsys.readouterr().err


def test_real_replays_run_without_allocator_tunables(monkeypatch):
    from bench.real import allocator_environment

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
    monkeypatch.setenv("MALLOC_CONF", "narenas:1")
    environment = allocator_environment()
    assert not {"MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "MALLOC_CONF", "LD_PRELOAD"} & set(environment)
    assert environment["PATH"] == os.environ["PATH"]


def test_an_unreachable_scheduler_is_one_line(monkeypatch):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        executors.dask_client("tcp://127.0.0.1:9", timeout="1s")
