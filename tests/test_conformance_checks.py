"""The conformance suite must be able to fail: deliberately broken allocators are caught."""

from __future__ import annotations

import pytest
from numba import njit

from allocators import linear, pool
from allocators.conformance import ConformanceError, check_replay, run_program
from workloads.trace import from_rows


@njit
def overlapping_alloc(state, size, thread):
    addr, granted = linear.alloc_block(state, size, thread)
    return max(addr - 16, 0), granted


@njit
def short_alloc(state, size, thread):
    addr, granted = linear.alloc_block(state, size, thread)
    return addr, size - 1


@njit
def misaligned_alloc(state, size, thread):
    addr, granted = linear.alloc_block(state, size, thread)
    return addr + 8, granted


@njit
def escaping_alloc(state, size, thread):
    addr, granted = linear.alloc_block(state, size, thread)
    return addr + state[0][linear.S_CAPACITY], granted


@njit
def leaky_free(state, addr, thread):
    return 0, 0  # pool block never goes back on the free list


def broken_linear(alloc):
    class Broken(linear.Linear):
        name = "broken"
        kernels = linear.Linear.kernels._replace(alloc_block=alloc)
    return Broken(1 << 20)


TRACE = from_rows([(0, 0, 40, 0), (0, 1, 40, 0), (0, 2, 40, 0)])


@pytest.mark.parametrize("alloc, words", [
    (overlapping_alloc, "overlaps"), (short_alloc, "granted"), (misaligned_alloc, "not aligned"),
    (escaping_alloc, "outside"),
])
def test_broken_allocators_fail_conformance(alloc, words):
    with pytest.raises(ConformanceError, match=words):
        run_program(broken_linear(alloc), [("alloc", 40, 0)] * 3)
    allocator = broken_linear(alloc)
    with pytest.raises(ConformanceError, match=words):
        check_replay(allocator, TRACE, allocator.replay(TRACE))


def test_an_allocator_that_never_reuses_memory_fails():
    class Leaky(pool.Pool):
        name = "leaky"
        kernels = pool.Pool.kernels._replace(free_block=leaky_free)
    allocator = Leaky(1 << 20, block_size=64)
    with pytest.raises(ConformanceError, match="not reused"):
        run_program(allocator, [("alloc", 40, 0), ("alloc", 40, 0), ("free", 0, 0)])
