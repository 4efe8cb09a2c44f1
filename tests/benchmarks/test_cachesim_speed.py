"""Speed of the cache simulator (bench.metrics.cachesim), in line accesses per second (pytest-benchmark).

    python -m pytest tests/benchmarks/test_cachesim_speed.py --benchmark-enable --benchmark-only -s

Streams of 2M line numbers: a sequential scan (8 accesses per line), uniformly
random lines within 16 KiB (L1 hits), 512 KiB (L1 misses, L2 hits) and
64 MiB (misses everywhere), and an allocator-like stream (blocks of 1-3 lines
at random 16 B-aligned addresses of a 1.5 MiB heap).  Each goes through one
L1 cache (32 KiB 8-way) and through the whole L1 + L2 + TLB hierarchy; every
round starts from empty caches made in `setup`, outside the clock.  The
accesses per second (from the median round) are stored in each benchmark's
`extra_info` and printed at the end (visible with `-s`).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import cachesim

N_ACCESSES = 2_000_000
RESULTS: dict[str, float] = {}


def _allocator_like(rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, (3 << 19) // 16, N_ACCESSES) * 16
    sizes = np.minimum(rng.lognormal(4.0, 1.0, N_ACCESSES).astype(np.int64) + 1, 192)
    first, last = starts >> 6, (starts + sizes - 1) >> 6
    counts = last - first + 1
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return (np.repeat(first, counts) + offsets)[:N_ACCESSES].astype(np.int64)


def _streams() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "sequential": np.arange(N_ACCESSES, dtype=np.int64) // 8,
        "random_16KiB": rng.integers(0, (16 << 10) // 64, N_ACCESSES).astype(np.int64),
        "random_512KiB": rng.integers(0, (512 << 10) // 64, N_ACCESSES).astype(np.int64),
        "random_64MiB": rng.integers(0, (64 << 20) // 64, N_ACCESSES).astype(np.int64),
        "allocator_like": _allocator_like(rng),
    }


STREAMS = _streams()


@pytest.mark.parametrize("target", ["l1", "hierarchy"])
@pytest.mark.parametrize("pattern", list(STREAMS))
def test_cachesim_speed(benchmark, pattern, target):
    lines = STREAMS[pattern]
    if target == "l1":
        make, run = (lambda: cachesim.make_cache(cachesim.L1_BYTES, cachesim.L1_WAYS)), cachesim.access_stream
    else:
        make, run = cachesim.make_hierarchy, cachesim.access_lines
    run(make(), lines[:16])  # compile (or load) outside the clock
    benchmark.pedantic(run, setup=lambda: ((make(), lines), {}), rounds=5, iterations=1)
    if benchmark.stats is not None:
        rate = len(lines) / benchmark.stats.stats.median / 1e6
        benchmark.extra_info["m_accesses_per_s"] = round(rate, 1)
        RESULTS[f"{pattern:<16} {target}"] = rate


def teardown_module(module):
    if RESULTS:
        print("\ncache simulator (M line accesses/s, median round):")
        for name, rate in RESULTS.items():
            print(f"  {name:<28} {rate:8.1f}")
