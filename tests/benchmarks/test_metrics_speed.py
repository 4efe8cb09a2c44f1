"""Speed of the metric passes on the 1M-operation benchmark trace replayed through freelist:glibc.

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-only -k metrics
"""

from __future__ import annotations

import os

import pytest

from bench.harness import build_for_trace
from bench.metrics import compute_metrics, locality, scalability, waste
from tests.benchmarks.conftest import record
from workloads import catalog

N_OPS = int(os.environ.get("ALLOCLAB_BENCH_OPS", 1_000_000))


@pytest.fixture(scope="module")
def replayed():
    trace = catalog.benchmark_trace(n_ops=N_OPS, seed=0)
    log = build_for_trace("freelist:glibc", trace).replay(trace)
    compute_metrics(trace, log)  # compile (or load) every pass before timing
    return trace, log


@pytest.mark.parametrize("name, function", [
    ("metrics: all", compute_metrics), ("metrics: waste", waste.compute),
    ("metrics: locality", locality.compute), ("metrics: scalability", scalability.compute),
])
def test_metric_pass_speed(benchmark, replayed, name, function):
    trace, log = replayed
    result = benchmark.pedantic(function, args=(trace, log), rounds=5, iterations=1)
    assert result
    if benchmark.stats is not None:
        record(name, len(trace), benchmark.stats.stats.median, benchmark.stats.stats.min)
