"""Real allocators beside the models: `fidelity`, `real` and `sweep --real` end to end on small traces."""

from __future__ import annotations

import json
import re

from bench import fidelity, sweep
from bench import real as real_module
from bench.cli import main
from workloads import catalog


def test_fidelity_reports_pairs_and_time_ratio(tmp_path, capsys):
    path = tmp_path / "t.npz"
    catalog.make("lognormal:mu=9,live=3000", n_ops=20_000, seed=3).save(path)  # ~20 MiB live: a real heap
    assert main(["fidelity", str(path), "--repeats", "1", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[1:3] == ["glibc", "freelist:glibc"] for line in out.splitlines() if "t.npz" in line)
    assert "model / real" in out
    results = json.loads((tmp_path / "out" / "fidelity.json").read_text())
    pairs = {pair["real"]: pair for pair in results[0]["pairs"]}
    assert list(pairs) == [pair.real for pair in fidelity.PAIRS]  # every pair has its row, in the table's order
    glibc = pairs["glibc"]
    assert glibc["status"] == "ok" and glibc["model"] == "freelist:glibc"
    # a meaningful real peak: at least the live bytes, and close to the same replay's resident growth
    assert glibc["real_peak_heap"] >= glibc["peak_live_requested"] > 10 * 2**20
    assert abs(glibc["real_peak_heap"] - glibc["real_rss_anon_growth"]) < 0.1 * glibc["real_peak_heap"]
    assert isinstance(glibc["relative_error"], float) and glibc["model_peak_footprint"] > 0
    assert glibc["time_ratio"] == glibc["model_seconds"] / glibc["real_seconds"] > 0
    for name, pair in pairs.items():
        spec, _ = fidelity.model_spec(next(p for p in fidelity.PAIRS if p.real == name))
        if pair["status"].startswith("skipped"):  # the library is not installed
            continue
        assert pair["real_peak_heap"] >= pair["peak_live_requested"], name  # no statistic reads 0 growth
        assert pair["real_peak_heap"] < 2 * pair["peak_live_requested"], name
        assert (pair["status"] == "no model yet") == (spec is None), name
        assert ("relative_error" in pair) == (spec is not None), name
    go = results[0]["go"]
    if not go["status"].startswith("skipped"):  # Go installed (.ci/run installs it)
        assert go["real_peak_heap_mapped"] >= go["real_peak_heap_inuse"] > 0 and go["model_peak_footprint"] > 0
        assert isinstance(go["mapped_error"], float) and "GC cycles real / model" in out and "vs paced" in out
        assert len(go["real_mark_overruns_runs"]) == go["real_repeats"] >= 3
    assert (tmp_path / "out" / "fidelity.png").stat().st_size > 10_000


def test_unregistered_model_is_no_model_yet(tmp_path, monkeypatch):
    """A pair whose model is not registered still measures its real side and says why there is no model."""
    monkeypatch.setattr(fidelity, "PAIRS", (fidelity.Pair("glibc", "nosuchmodel"),
                                            fidelity.Pair("tcmalloc", "tcmalloc:nosuchpreset")))
    assert fidelity.model_spec(fidelity.PAIRS[0]) == (None, "no model yet: unknown allocator 'nosuchmodel'")
    spec, note = fidelity.model_spec(fidelity.PAIRS[1])
    assert spec is None and note.startswith("no model yet: ") and "nosuchpreset" in note
    path = tmp_path / "t.npz"
    catalog.make("lognormal:mu=8,live=2000", n_ops=8_000, seed=1).save(path)
    results = fidelity.measure_traces([path], repeats=1, reals=("glibc",))
    (pair,) = results[0]["pairs"]
    assert pair["status"] == "no model yet" and pair["real_peak_heap"] > 0 and "relative_error" not in pair
    text = fidelity.render_tables(results)
    assert re.search(r"glibc +nosuchmodel \(1\)", text) and "(1) no model yet: unknown allocator 'nosuchmodel'" in text


def test_a_failing_real_replay_is_its_row_only(tmp_path, monkeypatch):
    from bench.real import RealReplayFailed, cleanheap

    def fails(trace, allocator, environment=None):
        raise RealReplayFailed(f"clean-heap replay through {allocator} did not finish within 1 s")

    monkeypatch.setattr(cleanheap, "clean_heap_footprint", fails)
    path = tmp_path / "t.npz"
    catalog.make("fifo", n_ops=2_000, seed=0).save(path)
    results = fidelity.measure_traces([path], repeats=1, reals=("glibc", "tcmalloc"))
    assert [pair["status"] for pair in results[0]["pairs"]] == [
        f"real {name} failed: clean-heap replay through {name} did not finish within 1 s" for name in ("glibc",
                                                                                                    "tcmalloc")]
    assert re.search(r"glibc +freelist:glibc \(1\)", fidelity.render_tables(results))


def test_settings_pairs_set_the_real_option(tmp_path):
    """--settings: each setting pair runs the real allocator with its option and labels the row with it."""
    from bench import pairs

    path = tmp_path / "t.npz"
    catalog.make("lognormal:mu=9,live=3000", n_ops=20_000, seed=3).save(path)  # ~20 MiB live
    results = fidelity.measure_traces([path], repeats=1, reals=("jemalloc", "mimalloc"), settings=True)
    rows = results[0]["pairs"]
    expected = [(real, "", {}, model) for real, model in pairs.paired() if real in ("jemalloc", "mimalloc")]
    expected += [(real, setting, dict(environment), model) for real, setting, environment, model in pairs.SETTING_PAIRS]
    assert [(row["real"], row["real_label"].removeprefix(row["real"]).strip(" ()"), row["real_environment"],
             row["model"]) for row in rows] == expected
    if any(row["status"].startswith("skipped") for row in rows):
        return  # a library is not installed (.ci/run installs both)
    assert all(row["status"] == "ok" and row["real_peak_heap"] >= row["peak_live_requested"] for row in rows)
    text = fidelity.render_tables(results)
    assert re.search(r"jemalloc \(decay 0 ms\) +jemalloc:immediate", text) and "MIMALLOC_DECOMMIT_DELAY=0" in text


def test_the_option_reaches_the_real_allocator():
    """jemalloc with dirty_decay_ms:0 gives freed extents back at once: its mapped bytes at the end drop."""
    from bench.real import RealAllocatorMissing, cleanheap
    from workloads.trace import OP_ALLOC, OP_FREE, from_rows

    rows = [(OP_ALLOC, i, 8 << 20, 0) for i in range(4)] + [(OP_FREE, i, 0, 0) for i in range(4)]
    trace = from_rows(rows + [(OP_ALLOC, 9, 16, 0)])
    try:
        kept = cleanheap.clean_heap_footprint(trace, "jemalloc", environment={"MALLOC_CONF": "dirty_decay_ms:-1"})
    except RealAllocatorMissing:
        return
    purged = cleanheap.clean_heap_footprint(trace, "jemalloc", environment={"MALLOC_CONF": "dirty_decay_ms:0"})
    assert kept["heap_growth_at_end"] >= 32 << 20 > 8 * purged["heap_growth_at_end"]


def test_fidelity_reals_match_the_parser():
    from bench.cli.parser import FIDELITY_REALS

    assert FIDELITY_REALS == fidelity.REALS
    assert [pair.real for pair in fidelity.PAIRS] == ["glibc", "jemalloc", "tcmalloc", "mimalloc"]


def test_real_command_and_missing_trace(tmp_path, capsys):
    path = tmp_path / "t.npz"
    catalog.make("fifo", n_ops=5_000, seed=0).save(path)
    assert main(["real", "--trace", str(path), "--allocator", "glibc", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 5_000 and result["throughput_mops"] > 0
    assert main(["real", "--trace", str(tmp_path / "missing.npz")]) == 2
    assert main(["fidelity", str(tmp_path / "missing.npz")]) == 2


def test_sweep_with_real_allocators(tmp_path, capsys):
    code = main(["sweep", "-a", "freelist:glibc", "-w", "fifo", "--ops", "5000", "--repeats", "1", "--real",
                 "--out", str(tmp_path), "--no-progress", "--no-plots"])
    assert code == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    real = {row["allocator"]: row for row in rows if row["allocator"].startswith("real:")}
    assert "real:glibc" in real
    assert real["real:glibc"]["status"] == "ok" and real["real:glibc"]["throughput_mops"] > 0
    assert real["real:glibc"]["overhead_factor"] >= 0
    try:
        real_module.library_path("scudo")
    except real_module.RealAllocatorMissing:
        return
    assert real["real:scudo"]["status"] == "ok" and real["real:scudo"]["throughput_mops"] > 0
    assert real["real:scudo"]["peak_footprint"] > 0
    assert "Scudo" in real["real:scudo"]["real_measure"] or "RSS" in real["real:scudo"]["real_measure"]


def test_sweep_real_plans_scudo_or_says_why_not(monkeypatch, tmp_path):
    config = sweep.SweepConfig(preset="quick", allocators=["linear"], workloads=["fifo"], real=True)
    try:
        real_module.library_path("scudo")
        assert "real:scudo" in sweep.make_plan(config).allocators
    except real_module.RealAllocatorMissing:
        pass
    monkeypatch.setitem(real_module.LIBRARIES, "scudo", (("libclang_rt.scudo_standalone-nothere.so",),
                                                         "libclang-rt-14-dev"))
    plan = sweep.make_plan(config)
    assert "real:scudo" not in plan.allocators and "real:glibc" in plan.allocators
    assert any(note.startswith("sweep --real: real:scudo left out") and "apt-get install -y libclang-rt-14-dev" in note
               for note in plan.notes)
    # named explicitly, a missing real allocator is a skipped cell with the reason; --real's notes are said first
    said: list[str] = []
    named = sweep.make_plan(sweep.SweepConfig(preset="quick", allocators=["real:scudo"], workloads=["fifo"], ops=200,
                                              repeats=1))
    named.notes = plan.notes
    rows = sweep.run_sweep(named, tmp_path, say=said.append, draw_plots=False).rows
    assert [row.allocator for row in rows] == ["real:scudo"]
    assert rows[0].skipped and "libclang-rt-14-dev" in rows[0].reason
    assert said[:len(plan.notes)] == plan.notes
