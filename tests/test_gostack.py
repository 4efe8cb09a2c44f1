"""Goroutine stacks: call-depth traces (workloads.calldepth, callgen), the segmented and contiguous models
(allocators.gostack) with hand-computed cases, and the `bench stacks` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from allocators.errors import BadParameter
from allocators.gostack import StackOverflow, parse_model, replay_stack
from bench.cli import main
from bench.scenarios.stacks import boundary_depths
from workloads import callgen
from workloads.calldepth import OP_CALL, OP_GC, OP_RETURN, CallTrace, descend, from_rows
from workloads.trace import TraceError

CALL, RETURN, GC = OP_CALL, OP_RETURN, OP_GC


# ------------------------------------------------------------------ the trace
@pytest.mark.parametrize(("rows", "message"), [
    ([(CALL, 64, 0), (RETURN, 0, 0), (RETURN, 0, 0)], "row 2: RETURN on goroutine 0 at depth 0"),
    ([(CALL, 0, 0)], "row 0: CALL frame 0 outside"),
    ([(CALL, 1 << 25, 0)], "row 0: CALL frame 33554432 outside"),
    ([(CALL, 64, 0), (RETURN, 8, 0)], "row 1: RETURN carries frame 8"),
    ([(CALL, 64, 3), (GC, 0, 3)], "row 1: GC row names goroutine 3"),
    ([(CALL, 64, 0), (7, 0, 0)], "row 1: unknown op code 7"),
    ([(CALL, 64, -1)], "row 0: goroutine -1 outside"),
    ([(CALL, 64, 1 << 20)], "row 0: goroutine 1048576 outside"),
])
def test_bad_rows_name_the_first_bad_row(rows, message):
    with pytest.raises(TraceError, match=message):
        from_rows(rows)


def test_bad_columns_are_refused():
    with pytest.raises(TraceError, match="dtype int64, expected int8"):
        CallTrace(np.zeros(2, np.int64), np.ones(2, np.int64), np.zeros(2, np.int32))
    with pytest.raises(TraceError, match="has 1 rows"):
        CallTrace(np.zeros(2, np.int8), np.ones(1, np.int64), np.zeros(2, np.int32))


def test_files_round_trip_and_bad_files_are_trace_errors(tmp_path):
    trace = callgen.make("randomwalk:goroutines=3,gc_every=50", 400, 7)
    for suffix in (".npz", ".csv"):
        trace.save(tmp_path / f"t{suffix}")
        back = CallTrace.load(tmp_path / f"t{suffix}")
        assert all(np.array_equal(getattr(back, c), getattr(trace, c)) for c in ("op", "frame", "goroutine"))
    assert CallTrace.load(tmp_path / "t.npz").meta["seed"] == 7
    (tmp_path / "bad.csv").write_text("op,frame,goroutine\ncall,64,0\nreturn,0,0\nreturn,0,0\n")
    with pytest.raises(TraceError, match="bad.csv: row 2: RETURN on goroutine 0 at depth 0"):
        CallTrace.load(tmp_path / "bad.csv")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(TraceError, match="junk.npz"):
        CallTrace.load(tmp_path / "junk.npz")
    from workloads import catalog

    catalog.make("lognormal", 200, 0).save(tmp_path / "heap.npz")
    with pytest.raises(TraceError, match="a heap trace"):
        CallTrace.load(tmp_path / "heap.npz")


def test_generators_are_deterministic_and_end_at_depth_zero():
    for spec in ("randomwalk:goroutines=4,gc_every=100", "recursion:depth=7", "boundary:jitter=3"):
        first, again = callgen.make(spec, 3000, 5), callgen.make(spec, 3000, 5)
        assert np.array_equal(first.op, again.op) and np.array_equal(first.frame, again.frame)
        assert np.array_equal(first.goroutine, again.goroutine)
        calls, returns = (first.op == CALL).sum(), (first.op == RETURN).sum()
        assert calls == returns  # every goroutine returns to depth 0
    assert not np.array_equal(callgen.make("randomwalk", 3000, 1).frame, callgen.make("randomwalk", 3000, 2).frame)
    assert callgen.make("randomwalk:gc_every=100", 1000, 0).counts()["gc"] >= 10
    with pytest.raises(ValueError, match="unknown key 'deep'"):
        callgen.make("recursion:deep=3")
    with pytest.raises(ValueError, match="p_call=2.0 outside"):
        callgen.make("randomwalk:p_call=2")


# ---------------------------------------------------------- contiguous, by hand
# Frames of 100 B: the callee's F = 92 <= StackSmall, so the call at depth k (k frames above it, 32 B of
# newproc1 on top) grows a stack of S bytes when S - (32 + 100 k + 8) <= 928: k = 11 for 2048, 32 for 4096,
# 73 for 8192, 155 for 16384.  The copy moves the used bytes at the callee's entry, 40 + 100 k.
@pytest.mark.parametrize(("depth", "size"), [(11, 2048), (12, 4096), (32, 4096), (33, 8192), (73, 8192),
                                             (74, 16384), (155, 16384), (156, 32768)])
def test_contiguous_doubles_at_the_hand_computed_depths(depth, size):
    result = replay_stack("contiguous", descend([100] * depth))
    assert result["peak_goroutine"] == size
    assert result["final_reserved"] == 0 and result["seg_allocs"] == result["seg_frees"]


def test_contiguous_copies_the_used_bytes_and_shrinks_at_gc():
    grown = replay_stack("contiguous", descend([100] * 200))
    assert grown["copies"] == grown["splits"] == 4
    assert grown["bytes_copied"] == (40 + 1100) + (40 + 3200) + (40 + 7300) + (40 + 15500)
    # back to depth 1 (132 B used), then GCs: each halves while 132 + 800 < size / 4 and the half >= 2048
    rows = [(CALL, 100, 0)] * 200 + [(RETURN, 0, 0)] * 199 + [(GC, 0, 0)] * 5 + [(CALL, 100, 0)] * 199
    result = replay_stack("contiguous", from_rows(rows), timeline=True)
    assert result["shrinks"] == 4
    assert result.timeline[399 + 4] == 2048  # 32 KiB -> 2 KiB in four GCs, the fifth leaves it
    assert result["hot_splits"] == 1  # the regrowth after the shrink
    assert replay_stack("contiguous:shrink=0", from_rows(rows))["shrinks"] == 0


def test_adaptive_start_follows_the_scanned_stacks():
    # goroutine 0 holds 40 frames (32 + 4000 B used) at a GC: new goroutines start at round2(4032 + 928) = 8 KiB
    rows = [(CALL, 100, 0)] * 40 + [(GC, 0, 0)] + [(CALL, 100, 1)] + [(RETURN, 0, 1)] + [(RETURN, 0, 0)] * 40
    adaptive = replay_stack("contiguous:go1.19", from_rows(rows), timeline=True)
    assert adaptive["start_size"] == 8192
    assert adaptive.timeline[41] - adaptive.timeline[40] == 8192
    fixed = replay_stack("contiguous", from_rows(rows), timeline=True)
    assert fixed.timeline[41] - fixed.timeline[40] == 2048


def test_overflow_is_an_allocator_error():
    # F = 992 > 128: the call at depth k grows S when S - (40 + 1000 k) - (992 - 128) <= 928: k = 1 (to 4096),
    # then k = 3, where 8192 > max_size
    with pytest.raises(StackOverflow, match="row 3: goroutine 0's stack would exceed max_size=4,096 B"):
        replay_stack("contiguous:max_size=4096", descend([1000] * 5))
    with pytest.raises(StackOverflow):
        replay_stack("segmented:max_size=16384", descend([1000] * 40))


# ----------------------------------------------------------- segmented, by hand
def test_the_boundary_loop_splits_every_iteration_on_segments_only():
    # 8 KiB segments, 96 B Stktop: frames of 128 B (F = 120) split the first segment at the 63rd call
    # (8192 - (104 + 128 k) <= 256 for k >= 62); a 256 B callee (F = 248) below 61 or 62 of them crosses it.
    assert boundary_depths("segmented", up_to=100) == [61, 62]
    iterations = 500
    trace = callgen.make("boundary:depth=62", 2 * 62 + 2 * iterations, 0)
    segmented = replay_stack("segmented", trace)
    assert segmented["splits"] == iterations and segmented["hot_splits"] == iterations - 1
    assert segmented["seg_allocs"] == iterations + 1 == segmented["seg_frees"]
    kept = replay_stack("segmented:keep=1", trace)
    assert kept["splits"] == iterations and kept["seg_allocs"] == 2 and kept["kept_reuses"] == iterations - 1
    contiguous = replay_stack("contiguous", trace)
    before_loop = replay_stack("contiguous", descend([128] * 62 + [256]))
    assert contiguous["copies"] == before_loop["copies"] and contiguous["hot_splits"] == 0
    away = replay_stack("segmented", callgen.make("boundary:depth=64", 2 * 64 + 2 * iterations, 0))
    assert away["splits"] == 1 and away["hot_splits"] == 0


def test_large_frames_always_split_and_get_their_own_size():
    big = replay_stack("segmented", descend([4096 + 8]))  # F = 4096 >= StackBig: morestack unconditionally
    assert big["splits"] == 1 and big["large_segments"] == 0 and big["peak_goroutine"] == 2 * 8192
    huge = replay_stack("segmented", descend([9000]))  # F + StackExtra = 10016 B > StackMin
    assert huge["large_segments"] == 1 and huge["peak_goroutine"] == 8192 + 8992 + 1024


def test_model_specs_are_checked():
    assert parse_model("segmented:go1.1")[1]["segment"] == 4096
    for spec, message in (("bogus", "unknown stack model"), ("contiguous:start=3000", "power of two"),
                          ("segmented:keep=2", "keep must be 0 or 1"), ("contiguous:nope=1", "unknown parameter"),
                          ("contiguous:go9", "neither key=value nor a preset")):
        with pytest.raises(BadParameter, match=message):
            parse_model(spec)


# --------------------------------------------------------------- the command
def test_stacks_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "stacks"
    code = main(["stacks", "-w", "boundary;randomwalk:goroutines=2,gc_every=300", "--ops", "3000", "--seeds", "0,1",
                 "-m", "segmented;contiguous", "--repeats", "1", "--no-real", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "boundary (mean of 2 seed(s))" in printed and "segmented            61, 62\n" in printed
    document = json.loads((out / "stacks.json").read_text())
    assert len(document["cells"]) == 2 * 2 * 2
    spikes = {row["depth"] for row in document["hot"] if row["model"] == "segmented"
              and row["seg_allocs_per_kcall"] > 900}
    assert spikes == {61, 62}
    for name in ("hot_split.png", "stacks_memory.png"):
        assert (out / "plots" / name).stat().st_size > 10_000


@pytest.mark.parametrize(("argv", "message"), [
    (["stacks", "-m", "bogus"], "unknown stack model 'bogus'"),
    (["stacks", "-w", "boundary:nope=1"], "unknown key 'nope'"),
    (["stacks", "-w", "lognormal"], "unknown call-depth workload 'lognormal'"),
    (["stacks", "--trace", "missing.npz"], "no such file"),
    (["run", "-a", "pool", "-w", "boundary"], "python -m bench stacks -w boundary"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, *(["--no-real", "--no-plots"] if argv[0] == "stacks" else [])]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error


def test_list_shows_the_call_depth_workloads_and_the_scenario(capsys):
    assert main(["list", "--workloads"]) == 0
    printed = capsys.readouterr().out
    assert "call-depth workloads" in printed and "boundary" in printed
    assert main(["list", "--scenarios"]) == 0
    assert "stacks" in capsys.readouterr().out


def test_a_call_depth_file_given_as_a_heap_trace_says_what_it_is(tmp_path, capsys):
    callgen.make("recursion", 400, 0).save(tmp_path / "calls.npz")
    assert main(["replay", "-a", "pool", "--trace", str(tmp_path / "calls.npz")]) == 2
    assert "a call-depth trace" in capsys.readouterr().err
    assert main(["stacks", "--trace", str(tmp_path / "calls.npz"), "--no-real", "--no-plots", "--repeats", "1",
                 "--out", str(tmp_path / "out")]) == 0


def test_api_entry_points(tmp_path):
    from bench import api
    from bench.scenarios.stacks import StacksConfig

    trace = api.make_calltrace("boundary:depth=61", 1000, 0)
    trace.save(tmp_path / "b.csv")
    assert api.replay_stack("segmented", tmp_path / "b.csv")["hot_splits"] > 400
    report = api.stacks(StacksConfig(models=["contiguous"], workloads=["recursion:depth=20"], ops=400, seeds=[0],
                                     repeats=1, hot_depths=[10, 60], real=False), out=tmp_path / "s", plots=False)
    assert [row["depth"] for row in report.hot] == [10, 60] and (tmp_path / "s" / "cells.csv").exists()
    with pytest.raises(ValueError, match="hot depths"):
        api.stacks(StacksConfig(hot_depths=[10**6], real=False), out=None)
