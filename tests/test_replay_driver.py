"""The replay driver's resumable runs and its keep-going mode (record a failing row, go on)."""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from allocators.errors import ST_OUT_OF_MEMORY, ST_OUT_OF_ORDER
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

OUT_OF_ORDER = from_rows([
    (OP_ALLOC, 0, 32, 0), (OP_ALLOC, 1, 32, 0),
    (OP_FREE, 0, 0, 0),  # not the newest block: a stack refuses it
    (OP_ALLOC, 2, 64, 0),
    (OP_FREE, 2, 0, 0), (OP_FREE, 1, 0, 0),
])


def test_a_stopping_failure_names_the_row_and_ends_the_replay():
    job = allocators.create("stack", 1 << 20).prepare_replay(OUT_OF_ORDER)
    job.run()
    assert job.stopped and job.rows_done == 2
    assert job.run() == 0  # nothing more happens after a stop
    with pytest.raises(allocators.UnsupportedOperation, match="trace row 2"):
        job.finish()


def test_keep_going_records_the_failing_row_and_goes_on():
    stack = allocators.create("stack", 1 << 20)
    job = stack.prepare_replay(OUT_OF_ORDER, keep_going=True)
    job.run()
    log = job.finish()
    assert job.rows_done == len(OUT_OF_ORDER)
    assert log.failures.tolist() == [[2, ST_OUT_OF_ORDER]] and log.n_failures == 1
    # The refused FREE left block 0 allocated: object 2 lands above block 1, and the later frees succeed.
    assert log.addr[3] > log.addr[1]
    assert log.addr[5] == log.addr[1]
    assert log.peak_live_requested == 64 + 32  # the driver's accounting follows the trace: object 0 died at row 2
    assert stack.footprint > 0


def test_keep_going_after_out_of_memory_leaves_the_object_not_live():
    rows = [(OP_ALLOC, 0, 3000, 0), (OP_ALLOC, 1, 3000, 0), (OP_REALLOC, 1, 100, 0), (OP_FREE, 1, 0, 0),
            (OP_ALLOC, 2, 500, 0), (OP_FREE, 0, 0, 0)]
    trace = from_rows(rows)
    job = allocators.create("linear", 4096).prepare_replay(trace, keep_going=True)
    job.run()
    log = job.finish()
    assert log.failures[:, 0].tolist() == [1] and log.failures[0, 1] == ST_OUT_OF_MEMORY
    assert log.addr[1] == -1  # not allocated
    assert log.addr[2] >= 0  # the REALLOC of the object that never got a block allocates it afresh
    assert log.addr[4] >= 0


def test_failures_beyond_the_record_are_counted():
    rows = [(OP_ALLOC, i, 2000, 0) for i in range(8)]
    job = allocators.create("linear", 4096).prepare_replay(from_rows(rows), keep_going=True, max_failures=2)
    job.run()
    log = job.finish()
    assert log.n_failures == 6 and log.failures.shape == (2, 2)
    assert log.failures[:, 0].tolist() == [2, 3]


def test_runs_continue_where_they_stopped_and_only_there():
    trace = catalog.make("lognormal:realloc=0.1", n_ops=3000, seed=4)
    whole = allocators.create("tcmalloc", 1 << 26).replay(trace)
    job = allocators.create("tcmalloc", 1 << 26).prepare_replay(trace)
    with pytest.raises(ValueError, match="stands at row 0"):
        job.run(10, 20)
    job.run(0, 1234)
    assert job.rows_done == 1234
    with pytest.raises(ValueError, match="replay the rest first"):
        job.finish()
    job.run()
    log = job.finish()
    assert np.array_equal(log.addr, whole.addr) and np.array_equal(log.timeline, whole.timeline)
    assert log.summary() == whole.summary()


def test_keep_going_log_round_trips(tmp_path):
    job = allocators.create("stack", 1 << 20).prepare_replay(OUT_OF_ORDER, keep_going=True)
    job.run()
    log = job.finish()
    log.save(tmp_path / "log.npz")
    loaded = allocators.AllocLog.load(tmp_path / "log.npz")
    assert loaded.failures.tolist() == log.failures.tolist() and loaded.n_failures == 1
