"""Console output: tables at most 100 columns wide, medians and spreads over seeds, the sweep's cost-weighted
progress and its ETA, lines that fit."""

from __future__ import annotations

import itertools

import pytest

from bench import console, progress, sweep
from bench.cli import main
from bench.table import WIDTH, abbreviate, render, wrap_text


def synthetic_rows(specs, workloads, seeds, value=lambda spec, workload, seed: 10.0 + seed):
    rows = []
    for spec, workload, seed in itertools.product(specs, workloads, seeds):
        failed = spec == "stack" and workload != "lifo"
        rows.append({
            "allocator": spec, "workload": workload, "seed": seed, "status": "failed" if failed else "ok",
            "reason": "UnsupportedOperation: deallocation out of LIFO order" if failed else None,
            "throughput_mops": 1234.5 * value(spec, workload, seed), "peak_footprint": 1023 * 2**20 + seed,
            "overhead_factor": 123.45 + seed,
        })
    return rows


def default_grid() -> tuple[list[str], list[str]]:
    plan = sweep.make_plan(sweep.SweepConfig(preset="default", real=False))
    return plan.allocators + ["real:glibc", "real:jemalloc", "objpool:inner=buddy"], [w for w, *_ in plan.workloads]


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
def test_sweep_tables_of_the_default_grid_fit_100_columns(seeds):
    specs, workloads = default_grid()
    workloads = workloads + ["lognormal:threads=4,lifetime=fifo,realloc=0.05,sigma=1.5,touch=true"]
    text = sweep.tables(synthetic_rows(specs, workloads, seeds), specs, workloads)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    for spec in specs:  # every allocator has a column somewhere (its name on the first header line)
        assert any(spec.partition(":")[0] in line.split() for line in lines)
    assert "not LIFO" in text and text.count("Mops/s") == 1
    assert len(lines) > 3 * len(workloads)  # wrapped into blocks, each with every workload


def test_several_seeds_show_median_and_spread_not_seed_0():
    values = {0: 10.0, 1: 30.0, 2: 12.0}  # median 12, range 10..30: half the range is 10 = 83 % of 12
    rows = synthetic_rows(["pool"], ["fifo"], [0, 1, 2], lambda spec, workload, seed: values[seed] / 1234.5)
    text = console.grid(rows, ["pool"], ["fifo"], "throughput_mops")
    assert "median of seeds 0,1,2" in text
    assert "12.0 ±83%" in text and "10.0" not in text
    rows[1]["status"], rows[1]["reason"] = "failed", "OutOfMemory: at row 3"  # seed 1 failed: median of 10, 12
    assert "11.0 ±9.1% 2/3" in console.grid(rows, ["pool"], ["fifo"], "throughput_mops")
    for row in rows:
        row["status"], row["reason"] = "failed", "OutOfMemory: out of memory at row 3"
    assert "OOM" in console.grid(rows, ["pool"], ["fifo"], "throughput_mops")
    one = console.grid(rows[:1], ["pool", "buddy"], ["fifo"], "overhead_factor")
    assert "(seed 0)" in one and "±" not in one and " -" in one  # one seed: no spread; no row: '-'


def test_median_and_spread():
    assert console.median_and_spread([2.0]) == (2.0, 0.0)
    assert console.median_and_spread([1.0, 3.0, 2.0]) == (2.0, 50.0)
    assert console.median_and_spread([0.0, 0.0]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        console.median_and_spread([])


def test_render_wraps_columns_into_blocks_and_abbreviates_long_labels():
    headers = ["workload"] + [f"alloc{i}\n:preset" for i in range(30)]
    text = render(headers, [["w" * 80] + ["123.4 ±5.6%"] * 30])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    blocks = text.split("\n\n")
    assert len(blocks) > 1 and all(block.splitlines()[1].startswith("workload") for block in blocks)
    assert sum(block.count("alloc") for block in blocks) == 30
    assert abbreviate("lognormal:sigma=1.5", 10) == "logno~=1.5" and abbreviate("short", 10) == "short"
    narrow = render(["a", "b"], [["x", "1"]])
    assert narrow.splitlines() == ["a  b", "-  -", "x  1"]


def test_wrap_text():
    line = "word " * 40
    wrapped = wrap_text(line.strip())
    assert all(len(part) <= WIDTH for part in wrapped.splitlines()) and wrapped.count("\n") >= 1
    assert wrap_text("short\nlines") == "short\nlines"


def test_cell_cost_weights_slow_allocators_and_real_cells():
    ops, repeats = 200_000, 3
    linear, first_fit = progress.cell_cost("linear", ops, repeats), progress.cell_cost("freelist", ops, repeats)
    glibc = progress.cell_cost("freelist:glibc", ops, repeats)
    assert first_fit > 4 * linear and linear < glibc < first_fit
    assert progress.cell_cost("objpool:inner=buddy", ops, repeats) == progress.cell_cost("objpool", ops, repeats)
    assert progress.cell_cost("unknown-model", ops, repeats) > 0
    assert progress.cell_cost("real:glibc", 20_000, repeats) > progress.cell_cost("freelist", 20_000, repeats)
    assert progress.cell_cost("pool", 2 * ops, repeats) == 2 * progress.cell_cost("pool", ops, repeats)


def test_eta_from_the_first_cells_is_the_cost_left_at_the_rate_so_far():
    specs = ["linear", "pool", "stack"] + ["freelist", "buddy", "go"] * 10  # fast cells first, slow ones later
    costs = [progress.cell_cost(spec, 200_000, 3) for spec in specs]
    seconds = [cost * 1.3e-9 for cost in costs]  # a machine where cells take what they are expected to
    assert progress.eta_seconds(costs[0], sum(costs), seconds[0], 1) is None  # too early: no ETA yet
    eta = progress.eta_seconds(sum(costs[:3]), sum(costs), sum(seconds[:3]), 3)
    assert eta == pytest.approx(sum(seconds[3:]))
    by_cells = sum(seconds[:3]) / 3 * (len(specs) - 3)  # counted in cells, the first ETA would be far too short
    assert by_cells < eta / 2
    assert progress.eta_seconds(sum(costs), sum(costs), 5.0, 40) == 0.0


def test_progress_bar_counts_cells_and_shows_eta_after_a_few(capsys):
    bar = progress.SweepBar([1.0] * 5, [1.0], enabled=True)
    assert "1/6 cells" in bar.bar.desc and "ETA after 3 cells" in bar.bar.desc
    for _ in range(3):
        bar.advance(1.0, "pool x fifo: 1.0 Mops/s")
    assert "4/6 cells" in bar.bar.desc and "ETA 00:" in bar.bar.desc and "pool x fifo" in bar.bar.desc
    bar.close()


def test_list_and_fields_fit_100_columns(capsys):
    for argv in (["list"], ["list", "--fields"]):
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)


def test_run_output_fits_100_columns(capsys):
    assert main(["run", "-a", "freelist:glibc", "-w", "threads4", "--ops", "2000", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["allocator", "freelist:glibc"]
    assert max(len(line) for line in lines) <= WIDTH


def test_trace_info_fits_100_columns(capsys, tmp_path):
    path = tmp_path / "t.npz"
    assert main(["trace", "gen", "-w", "lognormal:threads=4,realloc=0.05,touch=true", "--ops", "2000",
                 "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["trace", "info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= WIDTH and lines[1].split()[0] == "rows"
    assert any(line.startswith("meta ") for line in lines) and any(line.startswith(" " * 18 + "'") for line in lines)
