"""Streaming: chunked replays and metric passes equal in-memory ones; chunked trace directories; the CLI on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import allocators
from bench import api, harness
from bench.cli import main
from bench.heapmap import occupancy, occupancy_of_stream
from bench.results import TIMING_FIELDS
from tests.test_conformance import SPECS
from workloads import catalog
from workloads.chunked import ChunkedTrace, ChunkedTraceWriter, save_chunked
from workloads.stream import GeneratedTrace, MemorySource
from workloads.trace import TraceError, from_rows

WORKLOAD = "lognormal:realloc=0.1,threads=3,touch=true,scan_every=50,scan_count=10,live=300"


def figures(row) -> dict:
    """Non-timing figures of a row (NaN made comparable)."""
    flat = {key: value for key, value in row.as_dict().items() if key not in TIMING_FIELDS}
    return {key: "nan" if isinstance(value, float) and math.isnan(value) else value for key, value in flat.items()}


@pytest.fixture(scope="module")
def trace():
    return catalog.make(WORKLOAD, n_ops=6000, seed=2)


@pytest.mark.parametrize("spec", SPECS)
def test_a_streamed_cell_has_the_in_memory_figures(spec, trace):
    cls = allocators.get(allocators.parse_spec(spec)[0])
    cell = trace if not cls.lifo_only else catalog.make("lifo", n_ops=3000, seed=2)
    whole, _ = harness.measure(spec, cell, repeats=1)
    streamed = harness.measure_stream(spec, MemorySource(cell), repeats=1, chunk_rows=997)
    assert figures(streamed) == figures(whole)


def test_figures_do_not_depend_on_the_chunking_or_the_source(trace, tmp_path):
    directory = save_chunked(trace, tmp_path / "t", chunk_rows=500)
    whole, log = harness.measure("freelist:glibc", trace, repeats=1)
    for chunk_rows in (1, 7, 4096, 10**6):
        source = MemorySource(trace) if chunk_rows < 10 else ChunkedTrace(directory)
        row = harness.measure_stream("freelist:glibc", source, repeats=2, chunk_rows=chunk_rows)
        assert figures(row) == figures(whole), chunk_rows
    image, footprint, address_max = occupancy(trace, log)
    streamed = occupancy_of_stream("freelist:glibc", ChunkedTrace(directory), 333)
    assert np.array_equal(image, streamed[0]) and np.array_equal(footprint, streamed[1])
    assert address_max == streamed[2]


def test_a_streamed_failure_names_the_row():
    trace = catalog.make("lognormal", n_ops=3000, seed=1)
    whole, _ = harness.measure("stack", trace, repeats=1)
    streamed = harness.measure_stream("stack", MemorySource(trace), repeats=1, chunk_rows=100)
    assert not streamed.ok and streamed.reason == whole.reason and "trace row" in streamed.reason


def test_chunked_directories_round_trip(trace, tmp_path):
    directory = save_chunked(trace, tmp_path / "t", chunk_rows=777)
    source = ChunkedTrace(directory)
    assert source.facts() == trace.facts() and source.meta == trace.meta
    loaded = source.load()
    for column in ("op", "obj", "size", "thread"):
        assert np.array_equal(getattr(loaded, column), getattr(trace, column))
    assert np.load(directory / "size.npy", mmap_mode="r")[123] == trace.size[123]  # plain .npy, memory-mappable
    chunks = list(source.chunks(1000))
    assert [len(chunk) for chunk in chunks][:2] == [1000, 1000]
    assert np.array_equal(np.concatenate([chunk.slots for chunk in chunks]), trace.slots)


def _write(directory: Path, rows, meta=None) -> Path:
    table = np.asarray(rows, np.int64).reshape(-1, 4)
    with ChunkedTraceWriter(directory, meta) as writer:
        writer.write(table[:, 0].astype(np.int8), table[:, 1].copy(), table[:, 2].copy(),
                     table[:, 3].astype(np.int32))
    return directory


def test_bad_chunked_directories_are_one_trace_error(tmp_path):
    good = _write(tmp_path / "good", [(0, 1, 32, 0), (0, 2, 64, 1), (1, 1, 0, 0), (1, 2, 0, 1)])
    with pytest.raises(TraceError, match="not live"):
        _write(tmp_path / "bad", [(0, 1, 32, 0), (1, 3, 0, 0)])
    assert not (tmp_path / "bad").exists()  # an aborted writer leaves nothing behind
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(TraceError, match="refusing"):
        _write(tmp_path / "plain", [(0, 1, 32, 0)])

    def corrupted(name: str) -> Path:
        copy = tmp_path / name
        copy.mkdir()
        for path in good.iterdir():
            (copy / path.name).write_bytes(path.read_bytes())
        return copy

    lying = corrupted("lying")
    document = json.loads((lying / "meta.json").read_text())
    document["facts"]["n_threads"] = 1
    (lying / "meta.json").write_text(json.dumps(document))
    with pytest.raises(TraceError, match="thread 1"):
        list(ChunkedTrace(lying).chunks())
    truncated = corrupted("truncated")
    (truncated / "size.npy").write_bytes((truncated / "size.npy").read_bytes()[:-8])
    with pytest.raises(TraceError, match="truncated"):
        ChunkedTrace(truncated)
    missing = corrupted("missing")
    (missing / "thread.npy").unlink()
    with pytest.raises(TraceError, match="missing column"):
        ChunkedTrace(missing)
    not_a_trace = corrupted("other")
    (not_a_trace / "meta.json").write_text("{}")
    with pytest.raises(TraceError, match="not a chunked trace"):
        ChunkedTrace(not_a_trace)


def test_the_generated_source_is_the_catalog_trace():
    source = GeneratedTrace(WORKLOAD, 5000, 3)
    expected = catalog.make(WORKLOAD, n_ops=5000, seed=3)
    loaded = source.load()
    for column in ("op", "obj", "size", "thread"):
        assert np.array_equal(getattr(loaded, column), getattr(expected, column))
    assert source.facts() == expected.facts() and source.meta == expected.meta


def test_cli_replays_a_chunked_directory_like_its_npz(tmp_path, capsys):
    args = ["-w", "threads4", "--ops", "20000", "--seed", "4"]
    assert main(["trace", "gen", *args, "-o", f"{tmp_path}/dir/"]) == 0
    assert main(["trace", "gen", *args, "-o", str(tmp_path / "t.npz")]) == 0
    capsys.readouterr()
    printed = []
    for target, extra in ((tmp_path / "dir", []), (tmp_path / "t.npz", []), (tmp_path / "t.npz", ["--chunk-rows",
                                                                                                 "3000"])):
        assert main(["replay", "--trace", str(target), "-a", "go:gc", "--repeats", "1", "--json", *extra]) == 0
        row = json.loads(capsys.readouterr().out)
        printed.append({key: value for key, value in row.items() if key not in {*TIMING_FIELDS, "trace", "workload"}})
    assert printed[0] == printed[1] == printed[2]
    assert main(["trace", "info", str(tmp_path / "dir")]) == 0
    assert "chunked directory" in capsys.readouterr().out
    assert main(["replay", "--trace", str(tmp_path / "dir"), "-a", "pool", "--log", str(tmp_path / "x.npz")]) == 2
    assert "--log needs" in capsys.readouterr().err
    assert main(["trace", "gen", *args, "-o", str(tmp_path / "t.txt")]) == 2


def test_run_streams_long_traces_with_the_same_figures(capsys):
    args = ["run", "-a", "buddy", "-w", "fifo", "--ops", "5000", "--repeats", "1", "--json"]
    assert main(args) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert main([*args, "--chunk-rows", "512"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in in_memory.items() if k not in TIMING_FIELDS} == \
        {k: v for k, v in streamed.items() if k not in TIMING_FIELDS}
    row = api.run_cell("buddy", "fifo", ops=5000, repeats=1, chunk_rows=999)
    assert row.metrics == {k: v for k, v in in_memory.items() if k in row.metrics}


def test_stream_replay_refuses_rows_beyond_its_facts():
    trace = from_rows([(0, 1, 32, 0), (1, 1, 0, 0), (0, 2, 32, 0)])
    pool = allocators.create("pool", 1 << 20, block_size=32)
    wider = from_rows([(0, 1, 32, 0), (0, 2, 32, 0), (1, 1, 0, 0)])  # two objects live at once, not one
    with pytest.raises(ValueError, match="more objects live"):
        pool.prepare_stream_replay(trace.facts(), chunk_rows=4).run_chunk(next(MemorySource(wider).chunks(4)))
    longer = from_rows([(0, 1, 32, 0), (1, 1, 0, 0), (0, 2, 32, 0), (1, 2, 0, 0)])
    with pytest.raises(ValueError, match="more rows than its facts"):
        pool.prepare_stream_replay(trace.facts(), chunk_rows=4).run_chunk(next(MemorySource(longer).chunks(4)))


def test_a_sweep_replays_trace_files_and_chunked_directories(tmp_path, capsys):
    trace = catalog.make("phased", n_ops=4000, seed=1)
    trace.save(tmp_path / "t.npz")
    save_chunked(trace, tmp_path / "dir", chunk_rows=999)
    workloads = f"trace:{tmp_path / 't.npz'};trace:{tmp_path / 'dir'};fifo"
    assert main(["sweep", "-a", "buddy;tcmalloc", "-w", workloads, "--ops", "2000", "--repeats", "1",
                 "--seeds", "0,1", "--no-progress", "--no-plots", "--heapmap", f"buddy@trace:{tmp_path / 'dir'}",
                 "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert len(rows) == 2 * (1 + 1 + 2)  # a trace file is one trace: one seed
    by_workload = {}
    for row in rows:
        by_workload.setdefault((row["allocator"], row["family"], row["workload"].endswith("dir")), []).append(row)
    file_row = by_workload[("buddy", "trace", False)][0]
    dir_row = by_workload[("buddy", "trace", True)][0]
    assert figures_of(file_row) == figures_of(dir_row) and file_row["rows"] == 4000
    assert (tmp_path / "out" / "heapmap.npz").exists()
    assert main(["sweep", "-a", "buddy", "-w", "trace:/nonexistent.npz", "--out", str(tmp_path / "x")]) == 2


def figures_of(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in {*TIMING_FIELDS, "workload"}}
