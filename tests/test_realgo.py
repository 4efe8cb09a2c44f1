"""The real Go runtime as a backend (bench.real.go, bench/real/goreplayer/main.go): a trace on the real Go heap."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bench.cli import main
from bench.real.go import replay_go
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE, from_rows

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="go not installed (apt-get install -y golang-go)")


def _peak_live_requested(trace) -> int:
    live = np.zeros(max(trace.n_slots, 1), np.int64)
    total = peak = 0
    for op, slot, size in zip(trace.op.tolist(), trace.slots.tolist(), trace.size.tolist(), strict=True):
        if op in (0, 2):
            total += size - live[slot]
            live[slot] = size
        elif op == 1:
            total -= live[slot]
            live[slot] = 0
        peak = max(peak, total)
    return peak


#: How far the metrics may lag: Go adds a cached span's allocations to the heap statistics when the P refills
#: it, so up to one span per size class (68 classes, spans of at most 64 KiB) is not counted yet.
METRICS_LAG = 68 * (64 << 10)


def test_the_heap_holds_the_live_bytes():
    trace = catalog.make("lognormal:live=50000", 100_000, 1)
    result = replay_go(trace, samples=1000)
    assert result["rows"] == 100_000 and result["sample_every"] == 100 and result["go_version"].startswith("go1.")
    assert result["gomaxprocs"] == 1 and result["gogc"] == "100"
    peak_live = _peak_live_requested(trace)
    # objects are rounded up to Go's size classes and unswept dead objects still count; the metrics may lag
    assert peak_live - METRICS_LAG <= result["peak_heap_objects_over_baseline"] <= 4 * peak_live
    assert result["peak_heap_inuse_bytes"] >= result["peak_heap_objects_bytes"]
    assert result["peak_heap_mapped_bytes"] >= result["peak_heap_inuse_bytes"]
    assert result["table_bytes"] == 8 * max(trace.n_slots, 1)
    assert len(result["samples"]) == 1000


def test_gogc_paces_the_collector():
    rows = [(OP_ALLOC, i, 4096, 0) for i in range(3000)] + [(OP_FREE, i, 0, 0) for i in range(3000)]
    rows += [(OP_ALLOC, 10_000 + i, 4096, 0) for i in range(3000)]
    trace = from_rows(rows)
    collected = replay_go(trace, gogc=100)
    assert collected["gc_cycles"] >= 2  # 12 MiB live at most, a 4 MiB first goal
    never = replay_go(trace, gogc="off")
    assert never["gc_cycles"] == 0
    assert never["peak_heap_inuse_bytes"] > collected["peak_heap_inuse_bytes"]  # nothing freed is ever reused


def test_bad_settings_are_refused():
    trace = catalog.make("lognormal", 100, 0)
    for bad in (0, -5, "sometimes", True):
        with pytest.raises(ValueError, match="GOGC"):
            replay_go(trace, gogc=bad)
    with pytest.raises(ValueError, match="GOMAXPROCS"):
        replay_go(trace, gomaxprocs=0)


def test_real_go_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "t.npz"
    catalog.make("lognormal", 2000, 0).save(path)
    assert main(["real", "--allocator", "go", "--trace", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 2000 and result["peak_heap_inuse_bytes"] > 0
    assert 0 <= result["mark_overruns"] <= result["gc_cycles"]
    assert main(["real", "--allocator", "go", "--trace", str(path)]) == 0
    out = capsys.readouterr().out
    assert "peak in-use heap" in out and "past its goal" in out
    assert main(["real", "--allocator", "go", "--trace", str(path), "--gogc", "x"]) == 2
    assert "--gogc" in capsys.readouterr().err


def test_repeated_runs_give_medians_and_the_roots_for_the_model():
    from bench.real.go import model_roots, replay_go_repeated

    trace = catalog.make("lognormal:live=20000", 60_000, 2)
    result = replay_go_repeated(trace, repeats=3)
    assert result["repeats"] == 3 and len(result["gc_cycles_runs"]) == 3
    assert len(result["mark_overruns_runs"]) == 3 and result["paced_runs"] == result["mark_overruns_runs"].count(0)
    if result["paced_runs"]:
        assert (result["peak_heap_inuse_over_baseline_min"] <= result["paced_peak_heap_inuse_over_baseline"]
                <= result["peak_heap_inuse_over_baseline_max"])
    else:
        assert result["paced_peak_heap_inuse_over_baseline"] is None
    assert (result["peak_heap_inuse_over_baseline_min"] <= result["peak_heap_inuse_over_baseline"]
            <= result["peak_heap_inuse_over_baseline_max"])
    # gcpacertrace's scan work of the last cycle: a goroutine stack or two and the binary's globals
    assert 0 < result["gc_stack_scan_bytes"] < 1 << 20 and 0 < result["gc_globals_scan_bytes"] < 4 << 20
    table = result["baseline"]["heap_objects_bytes"]
    assert table >= result["table_bytes"]
    assert model_roots(result) == result["gc_stack_scan_bytes"] + result["gc_globals_scan_bytes"] + 2 * table
    with pytest.raises(ValueError, match="repeats"):
        replay_go_repeated(trace, repeats=0)
