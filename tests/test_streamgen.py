"""Streaming generation: chunks concatenate to exactly the recorded traces, in memory bounded by the chunk.

References: tests/data/trace_digests.json (every spec at the small sizes, recorded before streaming
generation) and tests/data/streamgen_digests.json (every spec at 200_003 rows, seed 3, recorded from
the in-memory generator before streaming generation too: large enough to cross the generator's
65536-row work steps and to grow every per-stream pool).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tests import trace_digests
from workloads import catalog, generator
from workloads.access import Access, weave
from workloads.generator import generate, generate_chunks
from workloads.lifetimes import ExponentialLifetimes, Fifo, LongLived, Phased, RandomFrees, _ExponentialStreams
from workloads.sizes import Bimodal, LogNormal, Uniform
from workloads.threads import Independent, ProducerConsumer
from workloads.trace import Trace

SMALL = json.loads(trace_digests.PATH.read_text())
LARGE_PATH = Path(__file__).resolve().parent / "data" / "streamgen_digests.json"
LARGE = json.loads(LARGE_PATH.read_text())
LARGE_N, LARGE_SEED = 200_003, 3


def concatenated(chunks, chunk_rows: int) -> Trace:
    """The chunks as one Trace (validated), checking every chunk's length and dtypes on the way."""
    pieces = list(chunks)
    dtypes = (np.int8, np.int64, np.int64, np.int32)
    for piece in pieces:
        assert 1 <= piece[0].size <= chunk_rows
        assert all(column.size == piece[0].size and column.dtype == dtype
                   for column, dtype in zip(piece, dtypes, strict=True))
    columns = [np.concatenate([piece[i] for piece in pieces]) if pieces else np.empty(0, dtypes[i])
               for i in range(4)]
    return Trace(*columns, meta=chunks.meta)


def chunk_sizes(n_ops: int) -> list[int]:
    sizes = [7, 1000, max(n_ops, 1), n_ops + 3]
    return [1, *sizes] if n_ops <= 1000 else sizes


@pytest.mark.parametrize("spec", trace_digests.stream_specs())
def test_chunks_are_the_recorded_small_traces(spec):
    for n_ops in trace_digests.SIZES:
        seed = trace_digests.SEEDS[n_ops % 2]
        expected = SMALL[trace_digests.key(spec, n_ops, seed)]
        for chunk_rows in chunk_sizes(n_ops):
            chunks = catalog.make_chunks(spec, n_ops=n_ops, seed=seed, chunk_rows=chunk_rows)
            assert trace_digests.digest(concatenated(chunks, chunk_rows)) == expected, (spec, n_ops, chunk_rows)


@pytest.mark.parametrize("spec", trace_digests.stream_specs())
def test_chunks_are_the_recorded_large_traces(spec):
    expected = LARGE[trace_digests.key(spec, LARGE_N, LARGE_SEED)]
    assert trace_digests.digest(catalog.make(spec, n_ops=LARGE_N, seed=LARGE_SEED)) == expected
    for chunk_rows in (4099, 65_537):
        chunks = catalog.make_chunks(spec, n_ops=LARGE_N, seed=LARGE_SEED, chunk_rows=chunk_rows)
        assert trace_digests.digest(concatenated(chunks, chunk_rows)) == expected, (spec, chunk_rows)


def test_the_reference_cases_take_the_retry_and_touch_paths():
    """The recorded specs include skeletons that are regenerated longer and cuts that keep an ALLOC's touch."""
    retried, touch_cut = set(), set()
    for spec in trace_digests.generator_specs():
        for n_ops in (1000, 30_000):
            arguments = catalog._arguments(spec, n_ops, 0)
            setup = generator._setup(**arguments)
            estimate = generator._skeleton_rows(n_ops, setup.access, setup.realloc_fraction)
            if generator._plan(setup, generator.WORK_ROWS).skeleton_rows != estimate:
                retried.add(spec)
            trace = catalog.make(spec, n_ops=n_ops)
            if setup.access.touch and setup.drain and len(trace) < n_ops - 1:
                touch_cut.add(spec)
    assert "lognormal:scan_every=3,scan_count=500,live=20" in retried
    assert touch_cut


def test_chunks_of_a_retried_skeleton_with_touch_and_scans():
    spec = "lognormal:scan_every=2,scan_count=64,live=5,touch=true,realloc=0.3"
    setup = generator._setup(**catalog._arguments(spec, 9000, 4))
    plan = generator._plan(setup, generator.WORK_ROWS)
    assert plan.skeleton_rows != generator._skeleton_rows(9000, setup.access, setup.realloc_fraction)
    reference = catalog.make(spec, n_ops=9000, seed=4)
    for chunk_rows in (1, 13, 4096):
        chunks = concatenated(catalog.make_chunks(spec, n_ops=9000, seed=4, chunk_rows=chunk_rows), chunk_rows)
        assert trace_digests.digest(chunks) == trace_digests.digest(reference)


def test_the_exponential_heap_without_packed_keys(monkeypatch):
    """Skeletons of 2^31 rows or more order the heap by two arrays; the order is the same."""
    monkeypatch.setattr(_ExponentialStreams, "KEY_BITS", 0)
    for spec in ("lognormal:lifetime=exponential,threads=3", "bimodal:lifetime=longlived,base=exponential",
                 "empirical:lifetime=exponential,mean_lifetime=50,realloc=0.2"):
        expected = SMALL[trace_digests.key(spec, 30_000, 0)]
        assert trace_digests.digest(catalog.make(spec, n_ops=30_000, seed=0)) == expected


def test_meta_comes_first_and_the_chunks_are_read_once():
    chunks = catalog.make_chunks("threads4", n_ops=5000, seed=2, chunk_rows=512)
    assert chunks.meta == catalog.make("threads4", n_ops=5000, seed=2).meta
    assert sum(piece[0].size for piece in chunks) in (4999, 5000)
    with pytest.raises(RuntimeError, match="once"):
        iter(chunks)
    assert list(catalog.make_chunks("lognormal", n_ops=0)) == []


@pytest.mark.parametrize("kwargs", [{"n_ops": -1}, {"seed": -3}, {"realloc_fraction": 1.0},
                                    {"realloc_growth": (0.5, 2.0)}, {"sizes": "lognormal"}, {"threads": 0},
                                    {"threads": 5000}, {"lifetime": 3}])
def test_arguments_are_checked_as_generate_checks_them(kwargs):
    with pytest.raises(ValueError) as in_memory:
        generate(**kwargs)
    with pytest.raises(ValueError) as streamed:
        generate_chunks(**kwargs)  # at the call, before any chunk
    assert str(in_memory.value) == str(streamed.value)
    with pytest.raises(ValueError, match="chunk_rows"):
        generate_chunks(chunk_rows=0)


def test_the_in_memory_helpers_are_the_streaming_code():
    """assemble + sample + weave, in memory, give generate()'s rows (no drain, no cut before n_ops)."""
    lifetime, threads, sizes = LongLived(0.1, Fifo(live=40)), Independent(3), Bimodal()
    access = Access(touch=True, scan_every=9, scan_count=4)
    rng = np.random.Generator(np.random.PCG64(6))
    skeleton_rows = generator._skeleton_rows(4000, access, 0.1)
    is_free, obj, thread = threads.assemble(rng, lifetime, skeleton_rows)
    size_of = sizes.sample(rng, int(np.count_nonzero(~is_free)))
    columns = weave(rng, is_free, obj, thread, size_of, access, 0.1, (1.5, 2.0), sizes.max_size)
    trace = generate(sizes=sizes, lifetime=lifetime, threads=threads, n_ops=4000, seed=6, access=access,
                     realloc_fraction=0.1, drain=False)
    assert len(trace) == 4000
    for column, expected in zip(columns, (trace.op, trace.obj, trace.size, trace.thread), strict=True):
        assert np.array_equal(column[:4000], expected)
    schedule = RandomFrees(live=50).schedule(np.random.Generator(np.random.PCG64(1)), 1000)
    assert schedule.n_alloc == int(np.count_nonzero(~schedule.is_free))


def _peak_traced_bytes(spec: str, n_ops: int, chunk_rows: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        rows = sum(piece[0].size for piece in catalog.make_chunks(spec, n_ops=n_ops, chunk_rows=chunk_rows))
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_not_the_trace():
    """3M rows of `lognormal` (63 MB of columns) in 65536-row chunks: the peak is that of a 10x shorter trace."""
    chunk_rows = 65_536
    _peak_traced_bytes("lognormal", 1000, chunk_rows)  # compile and warm up outside the measurement
    rows, peak = _peak_traced_bytes("lognormal", 3_000_000, chunk_rows)
    short_rows, short_peak = _peak_traced_bytes("lognormal", 300_000, chunk_rows)
    assert rows in (3_000_000, 2_999_999) and short_rows in (300_000, 299_999)
    assert peak < 3_000_000 * 21 / 5  # a chunk is 1.4 MB; work buffers and the live tables a few more
    assert peak < short_peak + (1 << 20)


@pytest.mark.parametrize("spec", ["threads4", "explifetime", "realloc", "scan", "producer-consumer",
                                  "phased:order=random,threads=3", "bimodal"])
def test_memory_is_bounded_for_every_pipeline_stage(spec):
    _peak_traced_bytes(spec, 1000, 65_536)
    rows, peak = _peak_traced_bytes(spec, 1_000_000, 65_536)
    _, short_peak = _peak_traced_bytes(spec, 300_000, 65_536)
    assert rows > 990_000
    assert peak < short_peak + (1 << 20), (peak, short_peak)


def test_generate_chunks_with_components():
    kwargs = {"sizes": Uniform(lo=8, hi=100), "lifetime": ExponentialLifetimes(40.0),
              "threads": ProducerConsumer(2, 3), "access": Access(touch=True), "realloc_fraction": 0.05}
    trace = generate(n_ops=20_000, seed=9, **kwargs)
    chunks = concatenated(generate_chunks(n_ops=20_000, seed=9, chunk_rows=999, **kwargs), 999)
    assert trace_digests.digest(chunks) == trace_digests.digest(trace)
    phased = {"lifetime": Phased(batch=33, order="random"), "threads": 5, "sizes": LogNormal(max_size=4096)}
    trace = generate(n_ops=20_000, seed=9, **phased)
    chunks = concatenated(generate_chunks(n_ops=20_000, seed=9, chunk_rows=4096, **phased), 4096)
    assert trace_digests.digest(chunks) == trace_digests.digest(trace)
