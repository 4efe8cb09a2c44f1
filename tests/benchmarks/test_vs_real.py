"""The go and tcmalloc models beside real glibc on one 2M-row trace (pytest-benchmark), as `perf --vs-real glibc`.

    python -m pytest tests/benchmarks/test_vs_real.py --benchmark-enable --benchmark-only -s

The trace is `bench.perf.VS_REAL_WORKLOAD` (log-normal sizes, random lifetimes, ~100k objects live) at
`VS_REAL_OPS` rows (ALLOCLAB_VS_REAL_OPS overrides).  pytest-benchmark times the model's kernel (a fresh
heap and buffers per round in `setup`, outside the clock); right after, real glibc replays the same trace
in a child (`bench.real.replay_real`, touch none, as many repeats as rounds) and the ratio of the medians is
stored in `extra_info` and printed.  The issue's target is a ratio of at most 0.8; on a shared machine one
run can be far off, so this records the figure and asserts nothing about it (`perf --vs-real` interleaves
rounds for a figure with a spread).  The normal test run (benchmarks disabled) replays a 20 000-row trace
once, untimed, and starts no child.
"""

from __future__ import annotations

import os

import pytest

from bench.harness import build_for_trace, warm_up
from bench.perf import VS_REAL_OPS, VS_REAL_WORKLOAD
from workloads import catalog

ROUNDS = 5
RATIOS: dict[str, tuple[float, float, float]] = {}


@pytest.fixture(scope="module")
def trace(request):
    options = request.config.getoption
    enabled = options("benchmark_enable", default=False) or not options("benchmark_disable", default=False)
    rows = int(os.environ.get("ALLOCLAB_VS_REAL_OPS", VS_REAL_OPS)) if enabled else 20_000
    return catalog.make(VS_REAL_WORKLOAD, n_ops=rows, seed=0)


@pytest.mark.parametrize("spec", ["go", "tcmalloc"])
def test_model_vs_real_glibc(benchmark, trace, spec):
    warm_up(spec, metrics=False)
    allocator = build_for_trace(spec, trace)
    jobs = []

    def setup():
        jobs.append(allocator.prepare_replay(trace))
        return (jobs[-1],), {}

    benchmark.pedantic(lambda job: job.run(), setup=setup, rounds=ROUNDS, iterations=1)
    assert jobs[-1].finish().peak_live_requested > 0
    if benchmark.stats is None:  # benchmarks disabled: the untimed run only
        return
    from bench.real import replay_real

    real = replay_real(trace, "glibc", repeats=ROUNDS, touch="none")
    model_s = benchmark.stats.stats.median
    ratio = model_s / real["seconds_median"]
    benchmark.extra_info.update(rows=len(trace), glibc_median_s=real["seconds_median"], ratio_to_glibc=round(ratio, 3))
    RATIOS[spec] = (model_s, real["seconds_median"], ratio)


def teardown_module(module):
    if RATIOS:
        print(f"\nmodel / real glibc on {VS_REAL_WORKLOAD} (median of {ROUNDS} each; target <= 0.8):")
        for spec, (model_s, real_s, ratio) in RATIOS.items():
            print(f"  {spec:<10} {model_s * 1e3:7.1f} ms   glibc {real_s * 1e3:7.1f} ms   ratio {ratio:.2f}")
