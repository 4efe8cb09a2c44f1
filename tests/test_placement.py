"""Placement (bench/real/placement.py): every block where the real allocator puts it, on the same trace."""

from __future__ import annotations

import numpy as np
import pytest

from bench.real import RealAllocatorMissing
from bench.real.placement import WARM_UP_ROWS, compare_placement, main, with_warm_up
from workloads import catalog
from workloads.trace import OP_ALLOC, OP_FREE

MMAP_THRESHOLD = 128 << 10  # glibc's initial M_MMAP_THRESHOLD: no smaller chunk is ever mmapped


def compared(trace, allocator, environment=None):
    try:
        return compare_placement(trace, allocator, environment=environment, shown=100)
    except RealAllocatorMissing as error:  # .ci/run installs the libraries
        pytest.skip(str(error))


def test_with_warm_up_puts_the_replayers_malloc_16_and_free_in_front():
    trace = catalog.make("fifo", n_ops=100, seed=0)
    warmed = with_warm_up(trace)
    assert len(warmed) == len(trace) + WARM_UP_ROWS
    assert list(warmed.op[:2]) == [OP_ALLOC, OP_FREE] and list(warmed.size[:2]) == [16, 0]
    assert warmed.obj[0] == warmed.obj[1] not in set(trace.obj.tolist())
    assert np.array_equal(warmed.op[2:], trace.op) and np.array_equal(warmed.size[2:], trace.size)


@pytest.mark.parametrize("workload", ["lognormal:mu=6,sigma=2,live=2000", "realloc"])
def test_mimalloc_puts_every_block_where_libmimalloc_does(workload):
    # sizes from 1 B to 1 MiB (small, medium and large pages), or reallocs in place and moved
    trace = catalog.make(workload, n_ops=30_000, seed=1)
    result = compared(trace, "mimalloc")
    assert result["model"] == "mimalloc" and result["allocations"] >= 15_000
    assert result["differ"] == 0, result["first_differences"]


@pytest.mark.parametrize("workload", ["lognormal:mu=5,sigma=1,live=1000", "fifo", "realloc"])
def test_jemalloc_puts_every_block_of_its_first_chunk_where_libjemalloc_does(workload):
    # small sizes only (real large extents start at a random cache line of their pad page) and a peak
    # within arena 0's first 2 MiB chunk (the kernel places the next chunks among the process's mappings)
    trace = catalog.make(workload, n_ops=30_000, seed=1)
    result = compared(trace, "jemalloc", environment={"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"})
    assert result["model"] == "jemalloc" and result["allocations"] >= 15_000
    assert result["differ"] == 0, result["first_differences"]


def test_freelist_glibc_differs_from_glibc_only_where_the_kernel_places_mmapped_chunks():
    trace = catalog.make("lognormal:mu=6,sigma=2,live=2000", n_ops=30_000, seed=1)
    result = compared(trace, "glibc")
    assert result["model"] == "freelist:glibc"
    assert 0 < result["differ"] < 50  # the few mmapped chunks
    assert all(size >= MMAP_THRESHOLD for _, size, _, _ in result["first_differences"])
    assert compared(catalog.make("bimodal", n_ops=30_000, seed=1), "glibc")["differ"] == 0  # nothing mmapped


def test_the_command_line_says_what_it_cannot_compare(tmp_path, capsys):
    path = tmp_path / "t.npz"
    catalog.make("fifo", n_ops=2_000, seed=0).save(path)
    assert main([str(path), "--allocator", "scudo"]) == 2
    assert "no model of real 'scudo'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.npz")]) == 2
