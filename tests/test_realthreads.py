"""Real allocators on real threads (bench.real.threaded, bench/real/threadreplayer.c): order kept, inputs refused.

No timing assertions: the figures' values are the machine's, only their shape and the counts are tested.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bench import real
from bench.cli import main
from bench.real import RealReplayFailed, threaded
from workloads import catalog
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace, from_rows

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")


def _installed() -> list[str]:
    return list(real.available())


def _library_or_skip(name: str) -> None:
    try:
        real.library_path(name)
    except real.RealAllocatorMissing as error:
        pytest.skip(str(error))


def _remote_trace(blocks: int = 300, lag: int = 3) -> Trace:
    """Thread 0 allocates, thread 1 frees every block `lag` rows later (every free remote), a realloc and
    an access on the other thread in between: the frees must wait for their allocations."""
    rows = []
    for ident in range(blocks):
        rows.append((OP_ALLOC, ident, 24 + ident % 200, 0))
        if ident % 10 == 0:
            rows.append((OP_REALLOC, ident, 500, 1))
            rows.append((OP_ACCESS, ident, 0, 0))
        if ident >= lag:
            rows.append((OP_FREE, ident - lag, 0, 1))
    rows += [(OP_FREE, ident, 0, 1) for ident in range(blocks - lag, blocks)]
    return from_rows(rows)


# ------------------------------------------------------------------ the schedule (no gcc needed)
@pytest.mark.parametrize("spec", ["producer-consumer", "threads4", "xmalloc:batch=64", "realloc:threads=3"])
def test_schedule_cannot_deadlock(spec):
    """Each thread's rows are in trace order and each row depends only on an earlier trace row (its
    lifetime's previous row): the earliest row not done can always run."""
    trace = catalog.make(spec, n_ops=5000, seed=2)
    schedule = threaded.build_schedule(trace)
    assert schedule.os_threads == len(np.unique(trace.thread)) and schedule.thread_rows.sum() == len(trace)
    assert sorted(schedule.row.tolist()) == list(range(len(trace)))
    starts = np.concatenate(([0], np.cumsum(schedule.thread_rows)))
    for thread in range(schedule.os_threads):
        rows = schedule.row[starts[thread]:starts[thread + 1]]
        assert np.all(np.diff(rows) > 0)
        assert np.all(trace.thread[rows] == schedule.thread_ids[thread])
    by_row = np.empty(len(trace), np.int64)
    by_row[schedule.row] = np.arange(len(trace))
    last_row: dict[int, int] = {}
    for trace_row in range(len(trace)):
        at = by_row[trace_row]
        slot, seq = int(schedule.slot[at]), int(schedule.seq[at])
        assert 0 <= slot < schedule.n_slots
        if seq == 0:
            assert schedule.op[at] == OP_ALLOC and slot not in last_row
        else:
            assert last_row[slot] < trace_row  # the dependency is an earlier row
        last_row[slot] = trace_row


def test_schedule_gives_each_thread_its_own_table_lines():
    schedule = threaded.build_schedule(catalog.make("threads4", n_ops=4000, seed=1))
    allocs = schedule.op == OP_ALLOC
    starts = np.concatenate(([0], np.cumsum(schedule.thread_rows)))
    lines = [set((schedule.slot[starts[t]:starts[t + 1]][allocs[starts[t]:starts[t + 1]]]
                  // threaded.ENTRIES_PER_LINE).tolist()) for t in range(schedule.os_threads)]
    for first in range(len(lines)):
        for second in range(first + 1, len(lines)):
            assert not lines[first] & lines[second]


def test_bad_inputs_are_refused_with_a_message():
    many = from_rows([(OP_ALLOC, thread, 16, thread) for thread in range(threaded.MAX_OS_THREADS + 1)])
    with pytest.raises(ValueError, match="257 threads.*at most 256"):
        threaded.replay_threads(many, "glibc")
    small = _remote_trace(10)
    with pytest.raises(ValueError, match="repeats"):
        threaded.replay_threads(small, "glibc", repeats=0)
    with pytest.raises(ValueError, match="unknown real allocator"):
        threaded.replay_threads(small, "hoard")
    with pytest.raises(ValueError, match="touch"):
        threaded.replay_threads(small, "glibc", touch="all")
    with pytest.raises(ValueError, match="wait_timeout"):
        threaded.replay_threads(small, "glibc", wait_timeout=float("nan"))
    with pytest.raises(ValueError, match="no rows"):
        threaded.build_schedule(from_rows([]))
    with pytest.raises(TypeError, match="Trace"):
        threaded.build_schedule("trace.npz")


# ------------------------------------------------------------------ real replays
@needs_gcc
@pytest.mark.parametrize("allocator", real.ALLOCATORS)
def test_producer_consumer_on_two_os_threads(allocator):
    _library_or_skip(allocator)
    trace = catalog.make("producer-consumer:producers=1,consumers=1", n_ops=20_000, seed=0)
    result = threaded.replay_threads(trace, allocator, repeats=2)
    counts = trace.counts()
    assert result["os_threads"] == 2 and result["thread_ids"] == [0, 1]
    assert result["thread_rows"] == np.bincount(trace.thread).tolist() and sum(result["thread_rows"]) == len(trace)
    assert result["rows"] == len(trace) and result["repeats"] == 2 and len(result["seconds"]) == 2
    assert result["allocs"] == counts["alloc"] and result["frees"] == counts["free"]
    assert result["null_frees"] == 0 and result["live_end"] == 0
    assert result["throughput_min"] <= result["throughput_mops"] <= result["throughput_max"]
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["affinity_cores"] >= 1


@needs_gcc
@pytest.mark.parametrize("allocator", real.ALLOCATORS)
def test_remote_frees_free_every_block_once(allocator):
    """Every free is on the other thread, a few rows after its allocation: with the order broken a free
    would find no block (null_frees) and the block would stay live (live_end)."""
    _library_or_skip(allocator)
    trace = _remote_trace()
    result = threaded.replay_threads(trace, allocator, repeats=3)
    assert result["frees"] == 300 and result["allocs"] == 300
    assert result["null_frees"] == 0 and result["live_end_per_repeat"] == [0, 0, 0]


@needs_gcc
def test_blocks_left_live_are_counted_and_freed_between_repeats():
    rows = [(OP_ALLOC, ident, 64, ident % 2) for ident in range(50)]
    rows += [(OP_FREE, ident, 0, 1 - ident % 2) for ident in range(0, 50, 5)]
    result = threaded.replay_threads(from_rows(rows), "glibc", repeats=3)
    assert result["live_end_per_repeat"] == [40, 40, 40] and result["frees"] == 10


@needs_gcc
def test_serialised_trace_runs_on_one_thread_without_waits():
    trace = _remote_trace(100)
    result = threaded.replay_threads(threaded.serialised(trace), "glibc", repeats=2)
    assert result["os_threads"] == 1 and result["waits"] == 0 and result["frees"] == 100


@needs_gcc
def test_replayer_refuses_a_schedule_that_could_deadlock(tmp_path):
    schedule = threaded.build_schedule(_remote_trace(20))
    free = int(np.flatnonzero(schedule.op == OP_FREE)[0])
    bad = threaded.Schedule(**{**schedule.__dict__, "seq": schedule.seq.copy()})
    bad.seq[free] += 5  # would wait for a row that never comes
    binary = threaded.replayer_binary(threaded.SOURCE, ("-pthread",))
    with pytest.raises(RealReplayFailed, match="refused its input.*seq"):
        threaded.run_schedule(binary, bad, "glibc", None, 1, 1, 5.0, 60.0)


@needs_gcc
def test_watchdog_ends_a_wait_that_never_ends():
    trace = _remote_trace(20, lag=1)
    schedule = threaded.build_schedule(trace)
    binary = threaded.replayer_binary(threaded.SOURCE, ("-pthread",))
    with pytest.raises(RealReplayFailed, match="watchdog"):  # row 0 (the first ALLOC) never says it is done
        threaded.run_schedule(binary, schedule, "glibc", None, 1, 1, 0.2, 60.0, {threaded.DROP_HOOK: "0"})


@needs_gcc
def test_cli_real_threads_json_names_os_threads(tmp_path, capsys):
    path = tmp_path / "pc.npz"
    catalog.make("producer-consumer", n_ops=4000, seed=0).save(path)
    assert main(["real", "--trace", str(path), "--allocator", "glibc", "--threads", "--repeats", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["os_threads"] == 4 and result["touch"] == "first" and result["live_end"] == 0
    assert main(["real", "--trace", str(path), "--threads", "--repeats", "1"]) == 0
    assert "on 4 OS thread(s)" in capsys.readouterr().out
    assert main(["real", "--trace", str(path), "--allocator", "go", "--threads"]) == 2
    assert "--threads goes with a real malloc" in capsys.readouterr().err


@needs_gcc
def test_null_from_malloc_is_out_of_memory_at_its_row():
    trace = from_rows([(OP_ALLOC, 0, 64, 0), (OP_ALLOC, 1, 1 << 40, 0), (OP_FREE, 0, 0, 1), (OP_FREE, 1, 0, 1)])
    with pytest.raises(real.RealOutOfMemory, match="malloc returned NULL.*at row 1") as caught:
        threaded.replay_threads(trace, "glibc", repeats=1)  # 1 TiB: glibc's overcommit check refuses it
    assert caught.value.row == 1
