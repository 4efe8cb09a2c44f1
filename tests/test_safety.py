"""Safety replays of the models (allocators.faultreplay): glibc's checks in freelist:glibc, pinned with glibc's
messages and checked against real glibc fault class by fault class; the `bench safety` command and its files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocators.detections import FAULT_BYTE, ST_CORRUPTED, ST_DETECTED_BASE, is_detection
from allocators.errors import MisuseDetected
from allocators.faultreplay import DETECTED, NOT_DETECTED, replay_faults
from allocators.registry import create
from bench.cli import main
from bench.harness import build_for_trace
from bench.scenarios import safety
from tests.faultrows import alloc, fault_trace, free
from workloads import catalog
from workloads.faults import FAULT_CLASSES
from workloads.trace import OP_REALLOC, Trace

MiB = 1 << 20


def _glibc(trace: Trace) -> list:
    return replay_faults(build_for_trace("freelist:glibc", trace), trace)


# ---------------------------------------------------------------- each check, with glibc's message
def test_immediate_double_free_is_caught_by_the_tcache_key_at_the_call():
    trace = fault_trace([alloc(0, 32), alloc(1, 32), free(0), alloc(2, 32), free(1), free(2)],
                         [(3, "double_free", 0, 0)])
    (outcome,) = _glibc(trace)
    assert (outcome.fault_class, outcome.outcome, outcome.latency) == ("double_free:immediate", DETECTED, 0)
    assert (outcome.message, outcome.mechanism) == ("free(): double free detected in tcache 2", "tcache key")


def test_double_free_with_a_full_tcache_is_fasttop():
    rows = [alloc(i, 24) for i in range(9)] + [free(i) for i in range(8)] + [free(8)]
    trace = fault_trace(rows, [(17, "double_free", 7, 0)])  # 0..6 fill the tcache, 7 goes to the fastbin's top
    (outcome,) = _glibc(trace)
    assert (outcome.outcome, outcome.latency, outcome.message) == (DETECTED, 0, "double free or corruption (fasttop)")


def test_a_double_free_after_reuse_frees_the_new_owner_undetected():
    rows = [alloc(0, 40), alloc(1, 40), free(0), alloc(2, 40), free(2), free(1)]
    trace = fault_trace(rows, [(4, "double_free", 0, 0)])  # object 2 holds object 0's old block
    (outcome,) = _glibc(trace)
    assert outcome.fault_class == "double_free:after_reuse"
    # glibc frees object 2's block; the trace's own free of 2 right after is the second free of that block, which
    # the tcache key catches: the fault itself went unnoticed, its consequence did not
    assert (outcome.outcome, outcome.latency, outcome.message) == (DETECTED, 1,
                                                                   "free(): double free detected in tcache 2")


@pytest.mark.parametrize(("offset", "klass", "message"), [
    (1, "invalid_free:misaligned", "free(): invalid pointer"),
    (16, "invalid_free:interior", "free(): invalid size"),  # the 'header' read inside the block is zero
])
def test_invalid_frees(offset, klass, message):
    trace = fault_trace([alloc(0, 100), alloc(1, 32), free(0), free(1)], [(2, "invalid_free", 0, offset)])
    (outcome,) = _glibc(trace)
    assert (outcome.fault_class, outcome.outcome, outcome.latency, outcome.message) == (klass, DETECTED, 0, message)


def test_a_foreign_free_reads_a_zero_size():
    trace = fault_trace([alloc(0, 100), free(0)], [(1, "foreign_free", -1, 0)])
    (outcome,) = _glibc(trace)
    assert (outcome.fault_class, outcome.message) == ("foreign_free", "free(): invalid size")


def test_an_overflow_within_the_slack_is_absorbed_and_one_into_top_corrupts_its_size():
    rows = [alloc(0, 20), alloc(1, 20), alloc(2, 5000), free(0), free(1), free(2)]
    slack = fault_trace(rows, [(2, "overflow", 1, 4)])  # 20 B requested, 24 usable
    (absorbed,) = _glibc(slack)
    assert (absorbed.fault_class, absorbed.outcome) == ("overflow:slack", NOT_DETECTED)
    into_top = fault_trace(rows, [(2, "overflow", 1, 64)])  # object 1 is the chunk before top
    (caught,) = _glibc(into_top)
    assert (caught.fault_class, caught.outcome, caught.message) == ("overflow:long", DETECTED,
                                                                    "malloc(): corrupted top size")
    assert caught.latency == 1  # at the next malloc that uses top, not at the write


def test_a_write_after_free_into_a_tcache_link_is_caught_when_the_list_is_walked():
    # 0 on top of 1 in the tcache; the write corrupts 0's safe-linked next; the second malloc pops the garbage
    rows = [alloc(0, 32), alloc(1, 32), free(1), free(0), alloc(2, 32), alloc(3, 32), free(2), free(3)]
    trace = fault_trace(rows, [(4, "uaf_write", 0, 0)])
    (outcome,) = _glibc(trace)
    assert (outcome.fault_class, outcome.outcome, outcome.latency) == ("uaf_write:first_word", DETECTED, 2)
    assert outcome.message in ("malloc(): unaligned tcache chunk detected", "SIGSEGV: access to a guard page")


def test_faults_at_one_row_never_see_each_other():
    rows = [alloc(0, 32), alloc(1, 32), free(0), free(1)]
    key_written = fault_trace(rows, [(3, "uaf_write", 0, 8), (3, "double_free", 0, 0)])
    outcomes = _glibc(key_written)  # in table order: the double free, then the write over its tcache key
    assert [(o.kind, o.outcome) for o in outcomes] == [("double_free", DETECTED), ("uaf_write", NOT_DETECTED)]


def test_a_realloc_of_a_block_whose_header_an_underflow_smashed():
    rows = [alloc(0, 200), alloc(1, 200), (OP_REALLOC, 1, 300, 0), free(0), free(1)]
    trace = fault_trace(rows, [(2, "underflow", 1, 8)])
    (outcome,) = _glibc(trace)
    # the size word reads 0x4141414141414140: no wrap-around, so not 'invalid pointer' but more than the arena has
    assert (outcome.outcome, outcome.latency, outcome.message) == (DETECTED, 1, "realloc(): invalid old size")


def test_an_allocator_without_checks_runs_no_fault():
    trace = fault_trace([alloc(0, 32), free(0)], [(2, "double_free", 0, 0)])
    (outcome,) = replay_faults(build_for_trace("pool", trace), trace)
    assert (outcome.outcome, outcome.message) == (NOT_DETECTED, "the allocator has no checks")
    with pytest.raises(Exception, match="checks"):
        create("freelist:policy=best,checks=true", 4 * MiB)


# ---------------------------------------------------------------- never on valid traces, never out of bounds
@pytest.mark.parametrize("workload", ["lognormal", "realloc", "bimodal", "phased", "threads4", "pareto"])
def test_no_check_fires_on_a_valid_trace(workload):
    trace = catalog.make(workload, 20_000, 3)
    try:
        build_for_trace("freelist:glibc", trace).replay(trace)
    except MisuseDetected as error:  # pragma: no cover - the failure's message says where
        pytest.fail(f"a check fired on a valid trace: {error}")


@settings(max_examples=60, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 3 << 20), st.integers(1, 4096))
def test_any_address_any_write_stays_inside_the_model(addr, where, nbytes):
    heap = create("freelist:glibc", 4 * MiB, max_threads=2)
    blocks = [heap.allocate(size) for size in (24, 100, 5000, 200_000)]
    heap.deallocate(blocks[1])
    kernels = heap.safety_kernels
    status = int(kernels.write_bytes(heap.state, where, nbytes, FAULT_BYTE))
    assert status == 0 or is_detection(status)
    status = int(kernels.free_checked(heap.state, addr, 0)[0])
    assert status in (0, ST_CORRUPTED) or is_detection(status)
    assert status <= 0 and (status >= ST_CORRUPTED or status <= ST_DETECTED_BASE or status == 0)


# ---------------------------------------------------------------- the model against real glibc
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")
def test_freelist_glibc_gives_real_glibcs_verdict_on_every_fault_class():
    config = safety.SafetyConfig(allocators=["freelist:glibc"], real=["glibc"], ops=6000, seeds=[5],
                                 faults=safety.mix_spec("all", 0.0017), costs=False, window=500)
    report = safety.run_safety(config)
    verdicts = {(v.allocator, v.fault_class): v for v in report.verdicts}
    classes = {klass for _, klass in verdicts}
    assert len(classes) >= 12
    for klass in classes:
        model, real = verdicts.get(("freelist:glibc", klass)), verdicts.get(("real:glibc", klass))
        assert model is not None and real is not None, klass
        assert (model.faults, model.detected) == (real.faults, real.detected), klass
    assert verdicts[("real:glibc", "double_free:immediate")].rate == 1.0
    assert verdicts[("real:glibc", "overflow:slack")].detected == 0


# ---------------------------------------------------------------- the report and the command
def test_wilson_interval():
    low, high = safety.wilson(10, 10)
    assert 0.69 < low < 0.73 and high == pytest.approx(1.0)
    low, high = safety.wilson(0, 30)
    assert low == 0.0 and 0.10 < high < 0.12


def test_unhardened_spec_switches_the_checks_off():
    assert safety.unhardened_spec("freelist:glibc") == "freelist:glibc,checks=0"
    assert safety.unhardened_spec("pool") == "pool"


def test_safety_command_writes_its_files(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["safety", "-w", "misuse", "--ops", "4000", "--seeds", "0,1", "--cost-ops", "5000",
                 "--repeats", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "double_free:immediate" in printed and "slower than freelist:glibc,checks=0" in printed
    document = json.loads((out / "safety.json").read_text())
    assert {o["seed"] for o in document["outcomes"]} == {0, 1}
    assert {v["fault_class"] for v in document["verdicts"]} <= set(FAULT_CLASSES)
    assert (out / "plots" / "safety_heatmap.png").stat().st_size > 10_000
    assert (out / "verdicts.csv").read_text().startswith("allocator,source,fault_class")


@pytest.mark.parametrize(("argv", "message"), [
    (["--faults", "double_free=2"], "must be in (0, 1]"),
    (["-a", "nosuch"], "nosuch"),
    (["--window", "-1"], "window"),
])
def test_safety_command_refuses_bad_input(argv, message, tmp_path, capsys):
    code = main(["safety", "--ops", "2000", "--no-costs", "--no-plots", "--out", str(tmp_path / "x"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_normal_trace_is_not_a_fault_trace(tmp_path, capsys):
    path = tmp_path / "t.npz"
    catalog.make("lognormal", 1000, 0).save(path)
    assert main(["safety", "--trace", str(path), "--no-costs", "--out", str(tmp_path / "x")]) == 2
    assert "not a fault trace" in capsys.readouterr().err


def test_fault_workloads_are_fault_traces():
    trace = catalog.make("misuse", 20_000, 2)
    assert trace.meta["fault_trace"] is True
    assert set(np.unique(trace.faults.kind)) == set(range(7))
    assert np.array_equal(catalog.make("misuse", 20_000, 2).faults.at, trace.faults.at)
    with pytest.raises(ValueError, match="generated in memory"):
        catalog.make_chunks("misuse", 20_000, 2)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["lognormal", "realloc", "bimodal", "pareto:max_size=300000"]), st.integers(0, 10_000))
def test_random_faults_never_take_the_model_outside_its_arrays(workload, seed):
    """Every fault class at 20x the default rate, on traces with reallocs and mmapped chunks: every outcome is
    one of the three, and (NUMBA_BOUNDSCHECK=1 in CI) no kernel indexes outside its arrays."""
    trace = catalog.make(workload, 3000, seed)
    from workloads.faults import inject, parse_faults

    faulty = inject(trace, parse_faults(safety.mix_spec("all", 0.01)), seed, strict=False)
    outcomes = replay_faults(build_for_trace("freelist:glibc", faulty), faulty, window=300)
    assert len(outcomes) == len(faulty.faults)
    assert {o.outcome for o in outcomes} <= {DETECTED, NOT_DETECTED, "skipped"}


def test_every_detection_has_its_named_code():
    from allocators import detections

    for code, (name, message, mechanism) in enumerate(detections.DETECTIONS):
        assert getattr(detections, f"D_{name.upper()}") == code, name
        assert message and mechanism
        assert detections.detection_of(detections.ST_DETECTED_BASE - code)[0] == name
