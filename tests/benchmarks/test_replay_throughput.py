"""Replay throughput of every allocator on the 1M-operation benchmark trace (pytest-benchmark).

Run the measurement (the normal test run only executes each benchmark once, untimed):

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-only

Only the kernel is timed: each round gets a fresh heap and fresh buffers in
pytest-benchmark's `setup`, outside the clock; compile time is paid in a
warm-up before.  Throughput (Mops/s, from the median round) is stored in each
benchmark's `extra_info`.

The trace is log-normal sizes with random lifetimes.  `stack` cannot free out
of order, so it replays the same sizes with LIFO lifetimes (`lifo` workload).
"""

from __future__ import annotations

import os

import pytest

import allocators
from bench.harness import build_for_trace, warm_up
from tests.benchmarks.conftest import record
from workloads import catalog

N_OPS = int(os.environ.get("ALLOCLAB_BENCH_OPS", 1_000_000))
SPECS = [spec for name in allocators.names() for spec in
         [name] + [f"{name}:{preset}" for preset in allocators.get(name).presets]]


@pytest.fixture(scope="module")
def traces():
    return {
        "random": catalog.benchmark_trace(n_ops=N_OPS, seed=0),
        "lifo": catalog.make("lifo", n_ops=N_OPS, seed=0),
    }


@pytest.mark.parametrize("spec", SPECS)
def test_replay_throughput(benchmark, traces, spec):
    trace = traces["lifo"] if allocators.get(allocators.parse_spec(spec)[0]).lifo_only else traces["random"]
    warm_up(spec)
    allocator = build_for_trace(spec, trace)
    jobs = []

    def setup():
        jobs.append(allocator.prepare_replay(trace))
        return (jobs[-1],), {}

    benchmark.pedantic(lambda job: job.run(), setup=setup, rounds=7, iterations=1)
    log = jobs[-1].finish()
    assert log.peak_live_requested > 0
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["rows"] = len(trace)
        benchmark.extra_info["mops"] = round(len(trace) / median / 1e6, 2)
        record(spec, len(trace), median, benchmark.stats.stats.min)
