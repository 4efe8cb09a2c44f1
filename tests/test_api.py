"""The Python API and the results schema: typed calls give what the CLI prints; rows round-trip."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.results import TIMING_FIELDS, ResultRow, StatusCode, load_results

ROOT = Path(__file__).resolve().parent.parent


def _non_timing(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in TIMING_FIELDS}


def test_run_cell_is_what_run_json_prints(capsys):
    row = api.run_cell("buddy", "fifo", ops=3000, seed=2, repeats=1)
    assert isinstance(row, ResultRow) and row.ok and row.status_code == StatusCode.OK
    assert main(["run", "-a", "buddy", "-w", "fifo", "--ops", "3000", "--seed", "2", "--repeats", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    ours = json.loads(json.dumps(row.as_dict(), default=str))
    printed.pop("trace")
    assert _non_timing(ours) == _non_timing(printed)
    assert row["l1_miss_rate"] == row.metrics["l1_miss_rate"] and row.counters == printed["counters"]


def test_a_failing_cell_is_a_row_not_an_exception():
    row = api.run_cell("stack", "lognormal", ops=2000, repeats=1)
    assert not row.ok and row.status_code == StatusCode.UNSUPPORTED and "LIFO" in row.reason
    with pytest.raises(ValueError, match="unknown allocator"):
        api.run_cell("nonsense", "lognormal", ops=100)


def test_sweep_returns_what_it_stores(tmp_path):
    config = api.SweepConfig(allocators=["pool", "stack"], workloads=["lifo", "fixed"], ops=2000, repeats=1,
                             seeds=[0, 3])
    results = api.sweep(config, out=tmp_path, draw_plots=False)
    assert len(results.rows) == 8 and len(results.ok_rows()) == 6  # stack does not apply to random frees
    stored = load_results(tmp_path, strict=True)
    assert [row.as_dict() for row in stored.rows] == [row.as_dict() for row in results.rows]
    skipped = [row for row in stored.rows if not row.ok]
    assert all(row.skipped and row.allocator == "stack" and row.workload == "fixed" for row in skipped)
    assert skipped[0].status_code == StatusCode.NOT_APPLICABLE and "newest-first" in skipped[0].reason


def test_rows_written_before_status_codes_get_them_from_the_reason():
    old = {"allocator": "stack", "workload": "fixed", "seed": 0, "status": "failed",
           "reason": "UnsupportedOperation: stack: trace row 3 ...: deallocation out of LIFO order"}
    row = ResultRow.from_dict(old, strict=True)
    assert row.status_code == StatusCode.UNSUPPORTED and row.as_dict()["status_code"] == 2
    assert ResultRow.from_dict({**old, "reason": "OutOfMemory: x"}).status_code == StatusCode.OUT_OF_MEMORY
    with pytest.raises(ValueError, match="no seed"):
        ResultRow.from_dict({"allocator": "a", "workload": "w", "status": "ok"}, strict=True)


def test_library_functions_take_no_argparse_namespace():
    offenders = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        if path.relative_to(ROOT).parts[:2] == ("bench", "cli"):  # the command line is where Namespaces live
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for argument in node.args.args + node.args.kwonlyargs:
                    if argument.annotation is not None and "Namespace" in ast.unparse(argument.annotation):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not offenders, offenders
