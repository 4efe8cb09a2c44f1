"""Tests of the churn workload and the pools scenario (pools, regions and arenas against go:gc)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from allocators.errors import BadParameter
from bench import api
from bench.cli import main
from bench.scenarios import SCENARIOS
from bench.scenarios.pools import PoolsConfig, run_pools, summarise
from bench.sweep import PRESETS, SweepConfig, make_plan
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE

KiB = 1 << 10
#: The figures that must not change between runs (everything but the speed).
FIXED = ("heap_allocations", "baseline_heap_allocations", "avoided", "avoided_fraction", "gc_cycles",
         "pool_clears", "peak_footprint", "peak_live_requested", "overhead_factor", "status")


def requests_of(trace, temps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(allocated ids, freed ids) per request of a one-thread churn trace."""
    op, obj = trace.op, trace.obj
    out = []
    for start in range(0, len(trace), 2 * temps):
        block_op, block_obj = op[start:start + 2 * temps], obj[start:start + 2 * temps]
        out.append((block_obj[block_op == OP_ALLOC], block_obj[block_op == OP_FREE]))
        assert (block_op[:temps] == OP_ALLOC).all() and (block_op[temps:] == OP_FREE).all()
    return out


def test_churn_requests_allocate_temps_then_free_them_newest_first():
    trace = catalog.make("churn:request_bytes=4KiB,temps=10", n_ops=2000, seed=3)
    assert len(trace) == 2000 and trace.meta["params"]["request_bytes"] == 4096
    assert trace.meta["params"]["temps"] == 10 and trace.meta["params"]["batch"] == 10
    requests = requests_of(trace, 10)
    assert len(requests) == 100
    for allocated, freed in requests:
        assert list(freed) == list(allocated[::-1])  # order=lifo: the request's newest temporary first
    totals = np.array([trace.size[np.isin(trace.obj, allocated) & (trace.op == OP_ALLOC)].sum()
                       for allocated, _ in requests])
    assert abs(totals.mean() - 4096) < 0.1 * 4096  # about request_bytes per request, on average
    assert totals.std() > 0  # log-normal sizes vary


def test_churn_random_order_threads_and_long_lived():
    shuffled = catalog.make("churn:request_bytes=2KiB,temps=8,order=random", n_ops=800, seed=0)
    orders = [list(freed) == list(allocated[::-1]) for allocated, freed in requests_of(shuffled, 8)]
    assert not all(orders)
    for allocated, freed in requests_of(shuffled, 8):
        assert sorted(freed) == sorted(allocated)
    threaded = catalog.make("churn:temps=5,threads=3", n_ops=3000, seed=1)
    assert set(np.unique(threaded.thread)) == {0, 1, 2}
    for thread in range(3):  # each thread is its own request stream
        mine = threaded.op[threaded.thread == thread]
        live = np.cumsum(np.where(mine == OP_ALLOC, 1, -1))
        assert live.max() == 5
    kept = catalog.make("churn:temps=5,lifetime=longlived,long_fraction=0.2", n_ops=4000, seed=2)
    drained_from = int(np.flatnonzero(kept.op == OP_ALLOC)[-1])
    assert (kept.op[drained_from + 1:] == OP_FREE).sum() > 5 + 50  # long-lived objects live to the drain


def test_churn_deterministic_and_streamed_alike():
    spec = "churn:request_bytes=8KiB,temps=30,threads=2"
    first, second = catalog.make(spec, 5000, 7), catalog.make(spec, 5000, 7)
    assert all(np.array_equal(getattr(first, c), getattr(second, c)) for c in ("op", "obj", "size", "thread"))
    chunks = list(catalog.make_chunks(spec, 5000, 7, chunk_rows=777))
    for index, column in enumerate(("op", "obj", "size", "thread")):
        assert np.array_equal(np.concatenate([chunk[index] for chunk in chunks]), getattr(first, column))
    other = catalog.make(spec, 5000, 8)
    assert not np.array_equal(first.size, other.size)


@pytest.mark.parametrize(("spec", "message"), [
    ("churn:mu=3", "key 'mu' is set by request_bytes/temps"),
    ("churn:batch=3", "key 'batch' is set by"),
    ("churn:temps=0", "temps must be an integer in 1.."),
    ("churn:temps=10,request_bytes=19", "request_bytes must be an integer in 20.."),
    ("churn:sizes=fixed", "churn sizes must stay lognormal"),
    ("churn:lifetime=fifo", "churn requests are a phased lifetime"),
    ("churn:temps=ten", "key 'temps': expected an integer"),
])
def test_churn_bad_keys_are_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        catalog.parameters(spec)


def tiny_config(**changes) -> PoolsConfig:
    """Requests of 4 temporaries of exactly 256 B (sigma=0), 3 requests: every figure can be counted by hand."""
    config = PoolsConfig(temps=[4], request_bytes=[1024], seeds=[0], ops=24, repeats=1, sigma=0.0)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_avoided_allocations_counted_by_hand():
    report = run_pools(tiny_config())
    cells = {cell.setup: cell for cell in report.cells}
    assert set(cells) == {"heap", "pool", "pool-pow2", "arena"} and all(cell.status == "ok" for cell in cells.values())
    assert cells["heap"].allocations == 12
    # go:gc: all 12 temporaries are heap allocations; 1 KiB live at most, far below the 4 MiB goal: no cycle.
    assert (cells["heap"].heap_allocations, cells["heap"].avoided, cells["heap"].gc_cycles) == (12, 0, 0)
    # the pool: request 1 misses 4 times; its frees fill the private slot and 3 shared entries of the 256 B
    # bucket; requests 2 and 3 are served from them (1 private + 3 shared hits each).
    pool = cells["pool"]
    assert (pool.heap_allocations, pool.baseline_heap_allocations, pool.avoided) == (4, 12, 8)
    assert pool.avoided_fraction == pytest.approx(8 / 12) and pool.gc_cycles == 0 and pool.pool_clears == 0
    pool_row = next(row for row in report.rows if row.extra["setup"] == "pool")
    counters = pool_row.counters
    assert (counters["misses"], counters["hits_private"], counters["hits_shared"]) == (4, 2, 6)
    assert counters["inner_allocs"] == counters["misses"] + counters["bypasses"]
    # the arena: one 8 MiB chunk taken once, bumped through by all three requests; no collector modelled.
    # power-of-two pools: 256 B is its own power of two, so the same counts.
    assert (cells["pool-pow2"].heap_allocations, cells["pool-pow2"].avoided) == (4, 8)
    arena = cells["arena"]
    assert (arena.heap_allocations, arena.avoided, arena.gc_cycles) == (1, 11, None)
    assert arena.peak_footprint == 8 << 20


def test_every_setup_runs_and_the_figures_repeat(tmp_path):
    config = PoolsConfig(temps=[10, 100], request_bytes=[64 * KiB], seeds=[0, 1], ops=20_000, repeats=1)
    first, second = run_pools(config), run_pools(config)
    assert len(first.cells) == 2 * 2 * 4 and all(cell.status == "ok" for cell in first.cells)
    for one, two in zip(first.cells, second.cells, strict=True):
        assert [getattr(one, key) for key in FIXED] == [getattr(two, key) for key in FIXED]
        assert one.throughput_mops > 0
    heap = [cell for cell in first.cells if cell.setup == "heap"]
    assert all(cell.heap_allocations == cell.allocations for cell in heap)
    assert max(cell.gc_cycles for cell in heap) > 1  # 10 temporaries of ~6.5 KiB: ~65 MB allocated, cycles run
    for cell in first.cells:
        if cell.setup != "heap":
            assert 0 < cell.avoided <= cell.baseline_heap_allocations
    points = summarise(first.cells)
    assert len(points) == 2 * 4 and all(point.failed == 0 for point in points)
    saved = first.save(tmp_path / "out")
    document = json.loads((saved / "pools.json").read_text())
    assert len(document["cells"]) == 16 and document["meta"]["baseline"] == "heap"
    rows = json.loads((saved / "results.json").read_text())["rows"]
    assert {row["allocator"] for row in rows} == set(config.setups.values())


@pytest.mark.parametrize(("changes", "message"), [
    ({"temps": []}, "temps must be a non-empty list"),
    ({"temps": [4, 4]}, "without repeats"),
    ({"ops": 7}, "holds no whole request"),
    ({"order": "sideways"}, "order must be one of"),
    ({"sigma": float("nan")}, "sigma must be a number"),
    ({"setups": {"heap": "nosuch"}}, "nosuch"),
    ({"setups": {"pool": "objpool:inner=go:gc,shared_limit=-1"}}, "shared_limit"),
    ({"request_bytes": [5]}, "request_bytes must be an integer in 8.."),
])
def test_bad_config_is_bad_parameter(changes, message):
    with pytest.raises(ValueError, match=message):
        run_pools(tiny_config(**changes))


def test_cli_run_files_and_bad_input(tmp_path, capsys):
    out = tmp_path / "pools"
    code = main(["pools", "--temps", "4,8", "--request-bytes", "2KiB", "--ops", "400", "--seeds", "0",
                 "--repeats", "1", "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "avoided" in captured.out and "arena" in captured.out
    for name in ("pools.json", "pools.csv", "results.json", "results.csv", "plots/pools.png"):
        assert (out / name).is_file(), name
    assert main(["pools", "--help"]) == 0
    capsys.readouterr()
    for argv in (["--temps", "0"], ["--temps", "abc"], ["--setups", "heap=nosuch"], ["--ops", "10"],
                 ["--seeds", "-1"], ["--request-bytes", "10", "--temps", "10"], ["--setups", "a=go:gc;a=region"]):
        code = main(["pools", "--no-plots", "--out", str(tmp_path / "bad"), *argv])
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err


def test_reachable_from_list_sweep_and_api(capsys):
    assert "pools" in SCENARIOS and "pools" in api.__all__ and "PoolsConfig" in api.__all__
    assert main(["list", "--scenarios"]) == 0 and "pools" in capsys.readouterr().out
    assert main(["list", "--workloads"]) == 0 and "churn" in capsys.readouterr().out
    plan = make_plan(SweepConfig(preset="pools", ops=2000, seeds=[0]))
    assert len(plan.cells) == 4 * 3 == len(PRESETS["pools"].allocators) * 3
    report = api.pools(tiny_config(setups={"heap": "go:gc", "arena": "region"}))
    assert [cell.setup for cell in report.cells] == ["heap", "arena"]
    with pytest.raises(BadParameter):
        api.pools(tiny_config(repeats=0))
