"""Safety replays through the real allocators (bench.real.safety): faults carried out in forked children of the
C fault replayer (bench/real/faultreplayer.c), each outcome pinned with the allocator's own message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from allocators.faultreplay import DETECTED, NOT_DETECTED, SKIPPED
from bench import real
from bench.real import cleanheap
from bench.real import safety as realsafety
from tests.faultrows import alloc, fault_trace, free
from workloads import catalog
from workloads.faults import FAULT_CLASSES, FaultTable, inject, kind_code, parse_faults
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, Trace, TraceError, from_rows

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")

TCACHE_DOUBLE_FREE = "free(): double free detected in tcache 2"


def _library_or_skip(name: str) -> None:
    try:
        real.library_path(name)
    except real.RealAllocatorMissing as error:
        pytest.skip(str(error))


#: Two 32-byte blocks freed (glibc's tcache: 0 on top of 1), three more 32-byte mallocs and their frees.
SMALL_ROWS = [alloc(0, 32), alloc(1, 32), free(1), free(0), alloc(2, 32), alloc(3, 32), alloc(4, 32),
              (OP_ACCESS, 4, 0, 0), free(2), free(3), free(4)]


def test_glibc_immediate_double_free_is_caught_by_the_tcache_key():
    trace = fault_trace(SMALL_ROWS, [(4, "double_free", 0, 0)])
    (outcome,) = realsafety.replay_faults_real(trace, "glibc")
    assert (outcome.fault_class, outcome.outcome, outcome.message) == ("double_free:immediate", DETECTED,
                                                                        TCACHE_DOUBLE_FREE)
    assert (outcome.mechanism, outcome.latency, outcome.row) == ("SIGABRT", 0, 3)
    assert (outcome.index, outcome.kind, outcome.at, outcome.obj, outcome.param) == (0, "double_free", 4, 0, 0)


def test_glibc_misaligned_and_foreign_frees():
    trace = fault_trace(SMALL_ROWS, [(1, "invalid_free", 0, 1), (5, "foreign_free", -1, 0)])
    misaligned, foreign = realsafety.replay_faults_real(trace, "glibc")
    assert (misaligned.fault_class, misaligned.outcome, misaligned.message) == (
        "invalid_free:misaligned", DETECTED, "free(): invalid pointer")
    assert foreign.fault_class == "foreign_free" and foreign.outcome == DETECTED and foreign.latency == 0


def test_glibc_overflow_within_the_slack_goes_unnoticed():
    # 20 requested bytes: a 32-byte chunk, 24 usable; 4 bytes past the request stay inside the block
    rows = [alloc(0, 20), alloc(1, 20), free(0), free(1), alloc(2, 20), free(2)]
    trace = fault_trace(rows, [(1, "overflow", 0, 4), (1, "overflow", 0, 12)])
    slack, past = realsafety.replay_faults_real(trace, "glibc")
    assert slack.fault_class == "overflow:slack" and slack.outcome == NOT_DETECTED
    assert slack.message == "no abort or crash in the 5 rows after the fault"
    assert past.fault_class == "overflow:past_usable"  # 12 > 24 - 20: classified with glibc's usable size


def test_glibc_write_after_free_of_the_first_word_is_caught_later_by_safe_linking():
    # 0 is on top of the tcache bin with 1 below it: the write overwrites 0's encoded next pointer; malloc(2)
    # pops 0 and makes the garbage the bin's head, malloc(3) finds it misaligned (15/16 of heap addresses; with
    # ASLR off the address, and so the outcome, is the same every run)
    trace = fault_trace(SMALL_ROWS, [(4, "uaf_write", 0, 0)])
    first, details = realsafety.replay_faults_real_details(trace, "glibc")
    second = realsafety.replay_faults_real(trace, "glibc")
    (outcome,) = first
    assert outcome.fault_class == "uaf_write:first_word" and outcome.outcome == DETECTED
    assert outcome.latency == 2 and outcome.row == 5  # the second malloc after the fault
    if details["aslr_disabled"]:
        assert outcome.message == "malloc(): unaligned tcache chunk detected"
        assert second == first
    else:
        assert outcome.message in ("malloc(): unaligned tcache chunk detected", "SIGSEGV")


def test_glibc_double_free_after_reuse_is_caught_at_the_new_owners_free():
    # 1 gets 0's old block back from the tcache: freeing 0 again frees 1's block (unnoticed), 1's own FREE is
    # then the double free
    rows = [alloc(0, 32), free(0), alloc(1, 32), (OP_ACCESS, 1, 0, 0), free(1)]
    trace = fault_trace(rows, [(3, "double_free", 0, 0)])
    (outcome,) = realsafety.replay_faults_real(trace, "glibc")
    assert outcome.fault_class == "double_free:after_reuse"
    assert (outcome.outcome, outcome.message, outcome.row, outcome.latency) == (DETECTED, TCACHE_DOUBLE_FREE, 4, 2)


def test_one_abort_does_not_stop_later_faults():
    # the same immediate double free twice over, an undetected overflow between them: each child starts from
    # the parent's clean heap, so the second double free is detected exactly like the first
    rows = [*SMALL_ROWS, alloc(5, 32), free(5), alloc(6, 48)]
    trace = fault_trace(rows, [(4, "double_free", 0, 0), (5, "overflow", 2, 1), (13, "double_free", 5, 0),
                                (14, "invalid_free", 6, 1)])
    outcomes = realsafety.replay_faults_real(trace, "glibc", window=3)
    assert [outcome.index for outcome in outcomes] == [0, 1, 2, 3]
    assert [outcome.outcome for outcome in outcomes] == [DETECTED, NOT_DETECTED, DETECTED, DETECTED]
    assert outcomes[0].message == outcomes[2].message == TCACHE_DOUBLE_FREE
    assert outcomes[1].message == "no abort or crash in the 3 rows after the fault"  # the window
    assert outcomes[3].message == "free(): invalid pointer" and outcomes[3].row == 13


def test_a_hanging_child_is_killed(monkeypatch):
    trace = fault_trace(SMALL_ROWS, [(4, "double_free", 0, 0), (5, "overflow", 2, 1), (9, "double_free", 2, 0)])
    # test hook of bench/real/faultreplayer.c: the child of fault 1 sleeps forever after carrying out its fault
    monkeypatch.setenv(realsafety.HANG_HOOK, "1")
    outcomes, details = realsafety.replay_faults_real_details(trace, "glibc", timeout=0.25)
    hung = outcomes[1]
    assert (hung.outcome, hung.message, hung.row) == (NOT_DETECTED, "hang (killed after 0.25 s)", 4)
    assert 0.2 < details["elapsed_s"][1] < 5
    assert outcomes[0].outcome == outcomes[2].outcome == DETECTED  # the others are unaffected
    monkeypatch.delenv(realsafety.HANG_HOOK)
    assert realsafety.replay_faults_real(trace, "glibc", timeout=0.25)[1].message.startswith("no abort")


def test_faults_after_a_failed_clean_replay_are_skipped():
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1":
        pytest.skip("vm.overcommit_memory=1: a 1 TiB malloc may succeed")
    rows = [alloc(0, 32), free(0), alloc(1, 1 << 40), alloc(2, 32)]
    trace = fault_trace(rows, [(2, "double_free", 0, 0), (4, "overflow", 2, 8)])
    first, second = realsafety.replay_faults_real(trace, "glibc")
    assert first.outcome == DETECTED
    assert second.outcome == SKIPPED
    assert second.message == f"the clean replay failed at row 2 (malloc returned NULL for {1 << 40} bytes)"


def test_scudo_double_and_misaligned_frees():
    _library_or_skip("scudo")
    trace = fault_trace(SMALL_ROWS, [(1, "invalid_free", 0, 1), (4, "double_free", 0, 0)])
    misaligned, double = realsafety.replay_faults_real(trace, "scudo")
    assert misaligned.outcome == double.outcome == DETECTED and misaligned.latency == double.latency == 0
    assert misaligned.message == "Scudo ERROR: misaligned pointer when deallocating address 0x<addr>"
    assert double.message == "Scudo ERROR: invalid chunk state when deallocating address 0x<addr>"
    assert double.mechanism == "SIGABRT"


@pytest.mark.parametrize("allocator", ("jemalloc", "tcmalloc", "mimalloc"))
def test_other_allocators_give_an_outcome_per_fault(allocator):
    _library_or_skip(allocator)
    rows = [alloc(0, 20), alloc(1, 32), free(1), free(0)]
    trace = fault_trace(rows, [(1, "invalid_free", 0, 1), (1, "foreign_free", -1, 0), (1, "overflow", 0, 1),
                                (3, "double_free", 1, 0)])
    outcomes = realsafety.replay_faults_real(trace, allocator)
    assert [outcome.index for outcome in outcomes] == [0, 1, 2, 3]
    assert outcomes[1].outcome == DETECTED  # free() of a pointer into zeroed static memory: none survives it
    # 20 bytes: a 24- or 32-byte size class in each, 1 byte past the request is inside it
    assert outcomes[2].fault_class == "overflow:slack" and outcomes[2].outcome == NOT_DETECTED
    assert outcomes[3].fault_class == "double_free:immediate"


@pytest.mark.parametrize("allocator", ("glibc", "scudo"))
def test_every_fault_kind_on_an_injected_trace(allocator):
    _library_or_skip(allocator)
    spec = ",".join(f"{kind}=0.002" for kind in ("double_free", "double_free:reuse=1", "invalid_free",
                                                 "invalid_free:offset=1", "foreign_free", "uaf_write",
                                                 "uaf_write:offset=8", "overflow", "overflow:k=64", "underflow",
                                                 "stale_free"))
    trace = inject(catalog.make("lognormal", n_ops=3000, seed=1), parse_faults(spec), seed=2)
    outcomes = realsafety.replay_faults_real(trace, allocator, window=200)
    assert len(outcomes) == len(trace.faults) and [outcome.index for outcome in outcomes] == list(range(len(outcomes)))
    for outcome in outcomes:
        assert outcome.fault_class in FAULT_CLASSES and outcome.outcome in (DETECTED, NOT_DETECTED)
        if outcome.outcome == DETECTED:
            assert outcome.latency >= 0 and outcome.row == outcome.at - 1 + outcome.latency
            assert outcome.mechanism.startswith("SIG") and "0x" not in outcome.message.replace("0x<addr>", "")
    detected = {outcome.kind for outcome in outcomes if outcome.outcome == DETECTED}
    assert {"double_free", "invalid_free", "foreign_free", "stale_free"} <= detected


# ------------------------------------------------------------------ the boundaries
def test_bad_arguments_are_refused_before_any_c_runs():
    trace = fault_trace(SMALL_ROWS, [(4, "double_free", 0, 0)])
    with pytest.raises(ValueError, match="window"):
        realsafety.replay_faults_real(trace, "glibc", window=-1)
    with pytest.raises(ValueError, match="unknown real allocator"):
        realsafety.replay_faults_real(trace, "ptmalloc")
    with pytest.raises(ValueError, match="timeout"):
        realsafety.replay_faults_real(trace, "glibc", timeout=float("nan"))
    with pytest.raises(TypeError):
        realsafety.replay_faults_real(SMALL_ROWS, "glibc")  # type: ignore[arg-type]
    assert realsafety.replay_faults_real(from_rows(SMALL_ROWS), "glibc") == []  # not a fault trace: no faults


def test_a_bad_fault_table_is_a_trace_error():
    base = from_rows(SMALL_ROWS)
    # a double free of an object that is still live at the anchor, in a trace built without validation
    trace = Trace(op=base.op, obj=base.obj, size=base.size, thread=base.thread, meta={"fault_trace": True},
                  faults=FaultTable.of([1], [kind_code("double_free")], [0], [0]), validate_on_init=False)
    with pytest.raises(TraceError, match="not a freed object"):
        realsafety.replay_faults_real(trace, "glibc")


def test_a_missing_library_names_its_package(monkeypatch):
    monkeypatch.setattr(real, "LIBRARY_DIRS", ())
    monkeypatch.setattr(real, "LIBRARY_GLOBS", {})
    trace = fault_trace(SMALL_ROWS, [(4, "double_free", 0, 0)])
    with pytest.raises(real.RealAllocatorMissing, match="apt-get install -y libclang-rt-14-dev"):
        realsafety.replay_faults_real(trace, "scudo")


def _run_replayer(tmp_path: Path, columns: dict[str, np.ndarray], n_ids: int) -> subprocess.CompletedProcess:
    for name, values in columns.items():
        values.tofile(tmp_path / f"{name}.bin")
    binary = cleanheap.replayer_binary(realsafety.FAULT_REPLAYER_SOURCE)
    return subprocess.run([str(binary), "glibc", str(tmp_path), str(n_ids), "10", "1000"], capture_output=True,
                          text=True, timeout=60)


def _columns(**changes: np.ndarray) -> dict[str, np.ndarray]:
    columns = {"op": np.array([OP_ALLOC, OP_FREE], np.int8), "obj": np.array([0, 0], np.int64),
               "size": np.array([32, 0], np.int64), "fault_at": np.array([2], np.int64),
               "fault_kind": np.array([kind_code("double_free")], np.int64), "fault_obj": np.array([0], np.int64),
               "fault_param": np.array([0], np.int64)}
    return {**columns, **changes}


@pytest.mark.parametrize(("changes", "n_ids", "message"), [
    ({}, 1, None),
    ({"obj": np.array([0, 7], np.int64)}, 1, "object id out of range"),
    ({"size": np.array([32], np.int64)}, 1, "trace column lengths differ"),
    ({"fault_obj": np.array([0, 0], np.int64)}, 1, "fault column lengths differ"),
    ({"op": np.array([OP_ALLOC, 9], np.int8)}, 1, "unknown op code"),
    ({"fault_at": np.array([1], np.int64)}, 1, "target in the wrong state"),
    ({"fault_at": np.array([3], np.int64)}, 1, "fault anchor outside the trace"),
    ({"fault_kind": np.array([kind_code("overflow")], np.int64), "fault_at": np.array([1], np.int64),
      "fault_param": np.array([1 << 30], np.int64)}, 1, "fault parameter out of range"),
    ({"fault_kind": np.array([42], np.int64)}, 1, "unknown fault kind"),
])
def test_the_c_replayer_checks_its_inputs(tmp_path, changes, n_ids, message):
    completed = _run_replayer(tmp_path, _columns(**changes), n_ids)
    if message is None:
        assert completed.returncode == 0 and '"end": "signal"' in completed.stdout  # the well-formed baseline
    else:
        assert completed.returncode == 2 and message in completed.stderr and completed.stdout == ""


def test_the_fault_replayer_is_cached_beside_the_clean_heap_replayer():
    binary = cleanheap.replayer_binary(realsafety.FAULT_REPLAYER_SOURCE)
    assert binary.name == "faultreplayer" and binary.parent.parent == cleanheap.CACHE_ROOT
    assert cleanheap.replayer_binary(realsafety.FAULT_REPLAYER_SOURCE) == binary
    assert cleanheap.replayer_binary().name == "replayer"
