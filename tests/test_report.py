"""The report that answers the question: verdicts per workload (bench.verdicts) and the page that leads with them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import plots, report
from bench.plots.data import GENERAL, REAL, SPECIAL, allocator_kind
from bench.verdicts import CRITERIA, verdicts, workload_threads

# Per allocator: (speed Mops/s, overhead factor, L2 misses per 1000 rows, hot reuse, shared ops per 1000 rows).
FIGURES = {
    "linear": (500.0, 1.01, 10.0, 0.9, 0.0),  # special purpose: would win everything
    "pool": (400.0, 1.02, 12.0, 0.9, 0.0),  # special purpose
    "tcmalloc": (60.0, 2.0, 300.0, 0.5, 20.0),
    "buddy": (70.0, 1.9, 300.0, 0.6, 1000.0),  # ties tcmalloc on L2 misses, more hot reuse: wins the tie-break
    "freelist:glibc": (30.0, 1.3, 400.0, 0.4, 800.0),
    "go": (90.0, 1.2, 100.0, 0.1, 5.0),  # fastest, leanest, best cache, best scaling: but it fails on seed 1
    "real:glibc": (200.0, 0.9, None, None, None),  # the scale, never a verdict
}
WORKLOADS = ("lognormal", "threads4")


def _row(spec: str, workload: str, seed: int) -> dict:
    speed, overhead, l2, hot, shared = FIGURES[spec]
    row = {"allocator": spec, "workload": workload, "family": workload, "seed": seed, "status": "ok", "reason": "",
           "throughput_mops": speed * (1 + 0.01 * seed), "overhead_factor": overhead, "seconds_min": 0.01,
           "seconds_median": 0.01, "seconds_max": 0.01, "peak_footprint": 1 << 20}
    if l2 is not None:
        row.update(l2_misses_per_kop=l2, hot_reuse_rate=hot, shared_ops_per_kop=shared, false_sharing_lines_peak=3,
                   l1_miss_rate=0.9, internal_fragmentation=0.1)
    if spec == "go" and seed == 1:
        row = {key: row[key] for key in ("allocator", "workload", "family", "seed")}
        row.update(status="failed", reason="OutOfMemory: go: out of arena")
    return row


@pytest.fixture()
def synthetic(tmp_path: Path) -> Path:
    rows = [_row(spec, workload, seed) for seed in (0, 1, 2) for workload in WORKLOADS for spec in FIGURES]
    rows.append({"allocator": "stack", "workload": "lognormal", "family": "lognormal", "seed": 0,
                 "status": "skipped", "reason": "not applicable: stack frees newest-first only"})
    meta = {"allocators": list(FIGURES) + ["stack"], "workloads": list(WORKLOADS), "seeds": [0, 1, 2]}
    (tmp_path / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    return tmp_path


def test_kinds():
    assert [allocator_kind(spec) for spec in ("tcmalloc", "objpool", "pool", "stack", "linear", "region",
                                              "real:glibc", "no-such-allocator")] == [
        GENERAL, GENERAL, SPECIAL, SPECIAL, SPECIAL, SPECIAL, REAL, GENERAL]
    assert workload_threads("lognormal") == 1 and workload_threads("threads4") == 4
    assert workload_threads("producer-consumer") > 1


def test_verdicts_pick_general_purpose_models_that_never_failed(synthetic):
    results = plots.load_report(synthetic)
    table = {entry.workload: entry for entry in verdicts(results)}
    assert [criterion.key for criterion in CRITERIA] == ["fastest", "leanest", "cache", "scaling"]
    single = {verdict.criterion.key: verdict for verdict in table["lognormal"].verdicts}
    # go would win every criterion, linear and pool and real:glibc too: none of them may
    assert (single["fastest"].winner.allocator, single["fastest"].runner_up.allocator) == ("buddy", "tcmalloc")
    assert single["fastest"].winner.value == pytest.approx(70.0 * 1.01)  # the median over seeds
    assert (single["leanest"].winner.allocator, single["leanest"].runner_up.allocator) == ("freelist:glibc", "buddy")
    assert single["cache"].winner.allocator == "buddy" and single["cache"].runner_up.allocator == "tcmalloc"
    assert not single["cache"].tied  # the tie on L2 misses is broken by the hot-reuse rate
    assert single["scaling"].winner is None and single["scaling"].note == "one thread"
    multi = {verdict.criterion.key: verdict for verdict in table["threads4"].verdicts}
    assert (multi["scaling"].winner.allocator, multi["scaling"].runner_up.allocator) == ("tcmalloc",
                                                                                          "freelist:glibc")
    assert table["threads4"].threads == 4
    assert table["lognormal"].scale["real:glibc"].value == pytest.approx(202.0)
    for entry in table.values():
        for verdict in entry.verdicts:
            for pick in (verdict.winner, verdict.runner_up):
                assert pick is None or pick.allocator not in ("go", "linear", "pool", "real:glibc", "stack")


def test_a_tie_is_shown_as_one(tmp_path):
    rows = [{"allocator": spec, "workload": "lognormal", "seed": 0, "status": "ok", "throughput_mops": 10.0,
             "overhead_factor": 1.5} for spec in ("tcmalloc", "buddy")]
    (tmp_path / "results.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    fastest = verdicts(plots.load_report(tmp_path))[0].verdicts[0]
    assert fastest.tied and fastest.winner.allocator == "tcmalloc"  # ties keep the sweep's order
    assert "(tie)" in report.render_index(plots.load_report(tmp_path), [])


def test_pareto_front_leaves_special_purpose_models_out(synthetic):
    plots.draw_all(synthetic)
    manifest = {entry["name"]: entry for entry in json.loads((synthetic / "plots" / "manifest.json").read_text())}
    assert manifest["pareto"]["skipped"] is None
    note = manifest["pareto"]["note"]
    assert note.startswith("on the front in most workloads: ")
    assert "linear" not in note and "pool" not in note and "real:glibc" not in note  # they would dominate
    assert "freelist:glibc" in note and "buddy" in note
    assert all(entry.get("look") for entry in manifest.values())  # one paragraph each: what to look at


def test_page_leads_with_verdicts_and_collapses_the_full_table(synthetic):
    plots.draw_all(synthetic)
    page = report.write_index(synthetic).read_text()
    verdicts_at, figures_at, details_at = page.index('id="verdicts"'), page.index('id="figures"'), page.index(
        "<details>")
    assert verdicts_at < figures_at < details_at
    first_table = page.index("<table")
    assert first_table > verdicts_at and 'class="verdicts"' in page[first_table:first_table + 40]
    full_table = page.index("<th>allocator</th><th>workload</th><th>seed</th>")
    assert details_at < full_table < page.index("</details>")
    assert page.count('<div class="scroll"><table') == page.count("<table")  # every table scrolls in its box
    assert page.count("<p class=\"look\"><b>What to look at.</b>") == page.count("<figure ") == 6  # drawn ones
    assert "model replay speed" in page and "Throughput" not in page
    assert "Special purpose, kept out of the verdicts" in page and "linear, pool, stack" in page
    assert "scale: real allocators" in page and "real:glibc <span class=fig>202</span>" in page
    assert re.search(r"<b>buddy <span class=fig>70\.7</span></b>", page)  # fastest on both workloads
    assert 'class="na" title="not applicable: stack' in page  # skipped, not failed
    assert "43 cells (40 ok, 2 failed, 1 skipped as not applicable)" in page
