"""workloads.order: which traces free newest-first (what a LIFO-only allocator can replay)."""

from __future__ import annotations

import pytest

import allocators
from allocators import UnsupportedOperation
from workloads import catalog
from workloads.order import first_out_of_order_row, frees_newest_first
from workloads.stream import GeneratedTrace, MemorySource
from workloads.trace import from_rows

A, F, R, X = 0, 1, 2, 3


def test_hand_made_traces():
    lifo = [(A, 0, 8, 0), (A, 1, 8, 1), (X, 0, 0, 0), (F, 1, 0, 1), (F, 0, 0, 0)]
    assert first_out_of_order_row(from_rows(lifo)) == -1
    assert first_out_of_order_row(from_rows([(A, 0, 8, 0), (A, 1, 8, 0), (F, 0, 0, 0), (F, 1, 0, 0)])) == 2
    assert first_out_of_order_row(from_rows([(A, 0, 8, 0), (A, 1, 8, 0), (R, 1, 64, 0), (R, 0, 64, 0)])) == 3
    assert frees_newest_first(from_rows([(A, 0, 8, 0)]))  # nothing freed


@pytest.mark.parametrize("spec", ["lifo", "lognormal", "fifo", "phased", "producer-consumer", "threads4", "realloc"])
def test_agrees_with_the_stack_allocator_and_with_streaming(spec):
    trace = catalog.make(spec, n_ops=3000, seed=1)
    newest_first = frees_newest_first(trace)
    assert newest_first is (spec == "lifo")
    allocator = allocators.create("stack", 64 << 20, max_threads=max(trace.n_threads, 1))
    if newest_first:
        allocator.replay(trace)
    else:
        with pytest.raises(UnsupportedOperation):
            allocator.replay(trace)
    streamed = GeneratedTrace(spec, 3000, seed=1)
    assert first_out_of_order_row(streamed) == first_out_of_order_row(trace)
    assert first_out_of_order_row(MemorySource(trace)) == first_out_of_order_row(trace)


@pytest.mark.parametrize("spec", ["lifo", "fifo"])
def test_chunk_by_chunk_is_the_same(spec):
    from workloads.order import NewestFirstCheck

    trace = catalog.make(spec, n_ops=3000, seed=2)
    check = NewestFirstCheck(trace.facts().peak_live_objects)
    for chunk in MemorySource(trace).chunks(97):
        check.update(chunk)
    assert check.first_bad_row == first_out_of_order_row(trace)
