"""The regression gate (`bench.compare`) on real sweep results, doctored; and the calibration kernel."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from bench import calibrate
from bench.cli import main
from bench.compare import CompareError, Thresholds, calibration_seconds, compare, main_compare

GRID = ["--allocators", "pool;stack", "--workloads", "lognormal;lifo", "--ops", "2000", "--repeats", "3",
        "--seeds", "0", "--no-plots", "--no-progress"]
# A fixed calibration, so that identical copies compare exactly whatever the sweep stores.
CALIBRATION = {"seconds_median": 0.025, "seconds_min": 0.024, "version": calibrate.CALIBRATION_VERSION, "drift": 1.0}
POOL = ("pool", "lognormal", 0)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """One tiny real sweep (4 cells: stack skipped on lognormal, which does not free newest-first), loaded."""
    out = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", *GRID, "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    data["meta"]["calibration"] = dict(CALIBRATION)
    statuses = {(row["allocator"], row["workload"]): row["status"] for row in data["rows"]}
    assert statuses == {("pool", "lognormal"): "ok", ("stack", "lognormal"): "skipped", ("pool", "lifo"): "ok",
                        ("stack", "lifo"): "ok"}
    return data


def row_of(data: dict, key: tuple[str, str, int]) -> dict:
    return next(row for row in data["rows"] if (row["allocator"], row["workload"], row["seed"]) == key)


def save(directory: Path, name: str, data: dict) -> Path:
    path = directory / name / "results.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def gate(tmp_path: Path, base: dict, new: dict, **options) -> int:
    return main_compare(save(tmp_path, "base", base), save(tmp_path, "new", new), **options)


def scale_times(data: dict, factor: float, key=POOL) -> None:
    row = row_of(data, key)
    for name in ("seconds_min", "seconds_median", "seconds_max"):
        row[name] *= factor


def test_identical_results_pass(results, tmp_path, capsys):
    assert gate(tmp_path, results, copy.deepcopy(results)) == 0
    out = capsys.readouterr().out
    assert "-> PASS" in out and "3 cells compared (0 failed on both sides with the same reason, 1 skipped" in out
    comparison = compare(results, copy.deepcopy(results))
    assert comparison.ok and comparison.normalised and len(comparison.speed) == 3
    assert {"peak_footprint", "overhead_factor", "status", "l1_miss_rate"} <= set(comparison.metrics)
    assert comparison.counters and comparison.values_compared > 3 * 25


def test_directories_are_accepted(results, tmp_path, capsys):
    base, new = save(tmp_path, "base", results), save(tmp_path, "new", results)
    assert main_compare(base.parent, new.parent) == 0


def test_more_memory_wasted_fails_naming_cell_and_metrics(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    row = row_of(new, POOL)
    row["peak_footprint"] += 1
    row["overhead_factor"] *= 1.01
    assert gate(tmp_path, results, new) == 1
    out = capsys.readouterr().out
    assert "CHANGED peak_footprint (1 cell)" in out and "CHANGED overhead_factor (1 cell)" in out
    assert "pool x lognormal seed 0" in out and "+1 " in out and "+1 %" in out
    assert "refresh the baseline in the same commit" in out and "-> FAIL" in out
    comparison = compare(results, new)
    assert [(d.cell, d.metric) for d in comparison.differences] == [(POOL, "peak_footprint"), (POOL, "overhead_factor")]


def test_counter_change_and_nan_equality(results, tmp_path, capsys):
    new, base = copy.deepcopy(results), copy.deepcopy(results)
    for data in (base, new):
        row_of(data, POOL)["l1_miss_rate"] = math.nan  # NaN on both sides is no change
    name = next(iter(row_of(new, POOL)["counters"]))
    row_of(new, POOL)["counters"][name] += 2
    comparison = compare(base, new)
    assert [(d.metric, d.base + 2 == d.new) for d in comparison.differences] == [(f"counters.{name}", True)]
    row_of(new, POOL)["counters"][name] -= 2
    assert compare(base, new).ok
    row_of(new, POOL)["l1_miss_rate"] = 0.5  # NaN -> number is a change
    assert [d.metric for d in compare(base, new).differences] == ["l1_miss_rate"]


def test_metric_on_one_side_only_is_a_change(results):
    new = copy.deepcopy(results)
    row_of(new, POOL)["brand_new_metric"] = 1.0
    differences = compare(results, new).differences
    assert [(d.metric, repr(d.base)) for d in differences] == [("brand_new_metric", "(absent)")]


def test_ok_to_failed_is_a_gate_failure_not_unusable_input(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    row = row_of(new, POOL)
    labels = ("allocator", "allocator_name", "workload", "family", "param", "param_value", "seed", "rows")
    new["rows"][new["rows"].index(row)] = {key: row[key] for key in labels} | {
        "status": "failed", "reason": "OutOfMemory: at row 7"}
    assert gate(tmp_path, results, new) == 1
    out = capsys.readouterr().out
    assert "CHANGED status" in out and "OutOfMemory: at row 7" in out and "pool x lognormal seed 0" in out
    assert [d.metric for d in compare(new, results).differences] == ["status"]  # failed -> ok: a change too
    other = copy.deepcopy(new)
    row_of(other, POOL)["reason"] = "OutOfMemory: at row 8"  # failed on both sides, for another reason
    assert [(d.metric, d.new) for d in compare(new, other).differences] == [("reason", "OutOfMemory: at row 8")]


def test_faster_passes(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    scale_times(new, 0.3)
    assert gate(tmp_path, results, new) == 0


def test_much_slower_fails(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    scale_times(new, 3.0)
    assert gate(tmp_path, results, new) == 1
    out = capsys.readouterr().out
    assert "SLOWER than 2.50x (1 cell" in out and "pool x lognormal seed 0" in out and "3.00x" in out
    assert gate(tmp_path, results, new, speed_threshold=3.5) == 0


def test_slower_on_a_slower_machine_passes(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    for row in new["rows"]:
        if row["status"] == "ok":
            scale_times(new, 3.0, (row["allocator"], row["workload"], row["seed"]))
    new["meta"]["calibration"] = {key: value * 3 if key.startswith("seconds") else value
                                  for key, value in CALIBRATION.items()}
    assert gate(tmp_path, results, new) == 0
    comparison = compare(results, new)
    assert all(result.ratio == pytest.approx(1.0) for result in comparison.speed)


def test_median_statistic_and_missing_calibration(results, capsys):
    new = copy.deepcopy(results)
    row_of(new, POOL)["seconds_median"] *= 3  # two disturbed repeats: only the median moves
    assert compare(results, new).ok
    assert not compare(results, new, Thresholds(statistic="median")).ok
    del new["meta"]["calibration"]
    comparison = compare(results, new, Thresholds(statistic="median"))
    assert not comparison.normalised and any("no calibration in new" in warning for warning in comparison.warnings)
    assert calibration_seconds({"calibration": {"start": {"seconds_min": 2.0}, "end": {"seconds_min": 1.0}}},
                               "min") == 1.0


def test_skipped_cells_are_neither_compared_nor_missing(results, tmp_path, capsys):
    stack = ("stack", "lognormal", 0)
    old = copy.deepcopy(results)  # a baseline from before cells were skipped: the same cell failed
    row_of(old, stack).update(status="failed", status_code=2, reason="UnsupportedOperation: stack: row 9: "
                              "deallocation out of LIFO order")
    assert gate(tmp_path, old, results) == 0
    assert "1 skipped as not applicable" in capsys.readouterr().out
    fewer = copy.deepcopy(results)
    fewer["rows"] = [row for row in fewer["rows"] if row["status"] != "skipped"]
    assert compare(results, fewer).ok and compare(fewer, results).ok
    assert compare(fewer, results).skipped == [stack]
    pool_skipped = copy.deepcopy(results)
    row = row_of(pool_skipped, POOL)
    pool_skipped["rows"][pool_skipped["rows"].index(row)] = {
        key: row[key] for key in ("allocator", "workload", "seed")} | {"status": "skipped", "reason": "n/a"}
    comparison = compare(results, pool_skipped)
    assert comparison.ok and any("ok in base, skipped in new" in warning for warning in comparison.warnings)


def test_real_allocator_cells_are_compared_by_status_only(results):
    base = copy.deepcopy(results)
    real = dict(row_of(base, POOL), allocator="real:glibc", allocator_name="real:glibc")
    base["rows"].append(real)
    new = copy.deepcopy(base)
    row_of(new, ("real:glibc", "lognormal", 0)).update(peak_live_granted=real["peak_live_granted"] + 96,
                                                        seconds_min=real["seconds_min"] * 10)
    comparison = compare(base, new)
    assert comparison.ok and comparison.real == [("real:glibc", "lognormal", 0)]
    row_of(new, ("real:glibc", "lognormal", 0)).update(status="failed", reason="RealReplayFailed: x")
    assert [d.metric for d in compare(base, new).differences] == ["status"]


def test_missing_cell_is_named(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    new["rows"] = [row for row in new["rows"] if (row["allocator"], row["workload"]) != ("stack", "lifo")]
    assert gate(tmp_path, results, new) == 2
    err = capsys.readouterr().err
    assert "1 cells missing in new: stack x lifo seed 0" in err
    with pytest.raises(CompareError, match="missing in base: stack x lifo seed 0"):
        compare(new, results)


@pytest.mark.parametrize("field, value", [("preset", "quick"), ("ops", 4000), ("repeats", 5), ("seeds", [0, 1])])
def test_differently_run_sweeps_are_unusable(results, tmp_path, capsys, field, value):
    new = copy.deepcopy(results)
    new["meta"][field] = value
    assert gate(tmp_path, results, new) == 2
    assert f"not run alike (meta): {field} " in capsys.readouterr().err


def test_malformed_or_missing_input_is_unusable(results, tmp_path, capsys):
    good = save(tmp_path, "good", results)
    broken = tmp_path / "broken.json"
    broken.write_text('{"meta": {"preset": "quick"}, "rows": [')
    assert main_compare(good, broken) == 2
    assert "new" in (err := capsys.readouterr().err) and "malformed JSON" in err and err.count("\n") == 1
    assert main_compare(tmp_path / "absent.json", good) == 2
    err = capsys.readouterr().err
    assert "base" in err and "absent.json: cannot read" in err
    broken.write_text('{"rows": []}')
    assert main_compare(good, broken) == 2
    assert "not a sweep results.json" in capsys.readouterr().err
    assert main_compare(good, good, speed_threshold=0.5) == 2
    assert ">= 1.0" in capsys.readouterr().err


def test_markdown_report(results, tmp_path, capsys):
    new = copy.deepcopy(results)
    row_of(new, POOL)["peak_footprint"] += 1
    scale_times(new, 3.0, ("pool", "lifo", 0))
    report = tmp_path / "gate.md"
    assert gate(tmp_path, results, new, markdown=report) == 1
    text = report.read_text()
    assert text.startswith("### allocator lab regression gate: FAIL")
    assert "| cell | metric | base | new | delta | relative |" in text
    assert "| pool x lognormal seed 0 | peak_footprint |" in text
    assert "| pool x lifo seed 0 |" in text and "3.00x |" in text
    assert gate(tmp_path, results, results, markdown=report) == 0
    assert "gate: PASS" in report.read_text()


def test_calibration_is_deterministic_and_reports_its_spread():
    buffers = calibrate._buffers()
    first = calibrate.calibration_kernel(*buffers, 100_000, calibrate.SEED)
    assert calibrate.calibration_kernel(*buffers, 100_000, calibrate.SEED) == first
    calibrate.calibration_kernel(*buffers, calibrate.STEPS, calibrate.SEED)
    assert 0 < buffers[0][calibrate.W_TOP] < buffers[3].size  # the heap the walk reaches fits its array
    result = calibrate.calibrate(repeats=2)
    assert result["repeats"] == 2 and 0 < result["seconds_min"] <= result["seconds_median"] <= result["seconds_max"]
    combined = calibrate.combine(result, result)
    assert combined["seconds_median"] == result["seconds_median"] and combined["drift"] == 1.0
    assert calibrate.combine(result)["seconds_min"] == result["seconds_min"]
    with pytest.raises(ValueError):
        calibrate.calibrate(repeats=0)
