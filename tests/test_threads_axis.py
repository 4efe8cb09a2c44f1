"""The thread-count axis: `WORKLOAD:threads=1/2/4/...` for independent threads and for producer-consumer."""

from __future__ import annotations

import numpy as np
import pytest

from bench import plan
from workloads import catalog


def _remote_frees(trace) -> int:
    owner = {}
    remote = 0
    for op, obj, thread in zip(trace.op.tolist(), trace.obj.tolist(), trace.thread.tolist(), strict=True):
        if op == 0:
            owner[obj] = thread
        elif op == 1:
            remote += owner[obj] != thread
    return remote


@pytest.mark.parametrize("threads, producers, consumers", [(2, 1, 1), (3, 1, 2), (8, 4, 4)])
def test_producer_consumer_threads_split_into_producers_and_consumers(threads, producers, consumers):
    trace = catalog.make(f"producer-consumer:threads={threads}", 6000, 1)
    params = trace.meta["params"]
    assert (params["producers"], params["consumers"], params["threads"]) == (producers, consumers, threads)
    assert trace.n_threads == threads and np.unique(trace.thread).size == threads
    allocating = np.unique(trace.thread[trace.op == 0])
    freeing = np.unique(trace.thread[trace.op == 1])
    assert allocating.tolist() == list(range(producers))
    assert freeing.tolist() == list(range(producers, threads))
    assert _remote_frees(trace) == int((trace.op == 1).sum())


def test_one_thread_is_the_same_stream_without_remote_frees():
    one = catalog.make("producer-consumer:threads=1", 6000, 1)
    two = catalog.make("producer-consumer:threads=2", 6000, 1)
    assert one.n_threads == 1 and not one.thread.any() and _remote_frees(one) == 0
    # the same lifetime stream: the rows differ only in their threads
    assert np.array_equal(one.op, two.op) and np.array_equal(one.size, two.size)


def test_producer_consumer_without_threads_keeps_its_meta_and_trace():
    trace = catalog.make("producer-consumer", 6000, 1)
    assert "threads" not in trace.meta["params"] and trace.n_threads == 4
    same = catalog.make("producer-consumer:producers=2,consumers=2", 6000, 1)
    assert np.array_equal(trace.thread, same.thread)


def test_bad_thread_counts_are_refused():
    for spec in ("producer-consumer:threads=-1", "producer-consumer:threads=5000", "threads4:threads=0"):
        with pytest.raises(ValueError, match="threads"):
            catalog.make(spec, 1000, 0)


def test_the_sweep_expands_thread_families():
    for family in ("threads4", "producer-consumer", "lognormal"):
        cells = plan.expand_workload(f"{family}:threads=1/2/4/8/16")
        assert [cell[3] for cell in cells] == [1, 2, 4, 8, 16] and {cell[2] for cell in cells} == {"threads"}
    default = plan.PRESETS["default"].workloads
    assert "threads4:threads=1/2/4/8/16" in default and "producer-consumer:threads=1/2/4/8/16" in default
