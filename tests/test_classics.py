"""The mimalloc-bench classics (workloads/classics/): each one's defining pattern on a small trace, threads=,
determinism and streaming, bad keys, and a sweep over the classics preset's workloads."""

from __future__ import annotations

import json
import re
import tracemalloc

import numpy as np
import pytest

from bench.cli import main
from bench.plan import CLASSICS, PRESETS
from tests import trace_digests
from workloads import catalog, classics
from workloads.classics.alloctest import LEVELS, pareto_levels
from workloads.classics.keys import describe
from workloads.classics.rptest import scatter_steps
from workloads.trace import MAX_THREADS, OP_ACCESS, OP_ALLOC, OP_FREE, Trace

ROWS = 20_000
MiB = 1 << 20
#: The multi-thread classics whose thread ids do not change over time, with keys that fit a short trace, and the
#: ids of their workers for `threads=P` (the main thread, where it has rows, apart): what `threads=` must change.
#: (larson's and mstress's threads are replaced as they run: their own tests.)
WORKERS = {
    "alloc-test": ("", lambda p: set(range(p))),
    "rptest": ("", lambda p: set(range(p))),
    "sh6bench": ("", lambda p: set(range(p))),
    "cache-thrash": ("", lambda p: set(range(p))),
    "cache-scratch": ("", lambda p: set(range(1, p + 1))),
    "xmalloc-test": (",batch=100", lambda p: set(range(2 * p))),
    "glibc-thread": ("", lambda p: set(range(p))),
}


def make(spec: str, rows: int = ROWS, seed: int = 0) -> Trace:
    return catalog.make(spec, n_ops=rows, seed=seed)


def alloc_threads(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Per FREE row: (the thread that allocated its object, the thread that frees it)."""
    allocs = trace.op == OP_ALLOC
    owner = np.full(int(trace.obj.max()) + 1, -1, np.int64)
    owner[trace.obj[allocs]] = trace.thread[allocs]
    frees = trace.op == OP_FREE
    return owner[trace.obj[frees]], trace.thread[frees].astype(np.int64)


def live_after_each_row(trace: Trace) -> np.ndarray:
    return np.cumsum((trace.op == OP_ALLOC).astype(np.int64) - (trace.op == OP_FREE))


def alloc_sizes(trace: Trace) -> np.ndarray:
    return trace.size[trace.op == OP_ALLOC]


# --------------------------------------------------------------------------- the catalog
NAMES = tuple(spec.partition(":")[0] for spec in CLASSICS)  # malloc-large:iterations=200 in the preset


def test_the_preset_names_every_classic_and_the_catalog_describes_each():
    assert set(NAMES) == set(classics.CLASSICS) | {"glibc-thread"}
    assert PRESETS["classics"].workloads == CLASSICS and PRESETS["classics"].real
    for name in (*NAMES, "xmalloc"):
        line = catalog.describe(name)
        assert "\n" not in line and ("mimalloc-bench" in line or "glibc" in line or "alias" in line), name
    for classic in classics.CLASSICS.values():
        module = __import__(classic.build.__module__, fromlist=["__doc__"])
        for part in (r"What the originals? (is|are)\.", r"What (it stresses|they stress)\.",
                     r"How the traces? reproduces? (it|them)\.", r"What (it leaves|they leave) out\."):
            assert re.search(part, module.__doc__), (classic.name, part)
        assert all(meaning for _, _, meaning in describe(classic.keys))


def test_bench_list_shows_the_classics(capsys):
    assert main(["list", "--workloads"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert set(NAMES) | {"xmalloc"} <= listed


# --------------------------------------------------------------------------- each classic's pattern
def test_larson_warm_up_then_workers_free_main_and_predecessor_blocks():
    threads, slots = 3, 40
    trace = make(f"larson:threads={threads},slots={slots},rounds=2")
    first_worker_row = int(np.argmax(trace.thread != 0))
    warm_up = trace.op[:first_worker_row]
    assert np.count_nonzero(warm_up == OP_ALLOC) == threads * slots * (1 + 4)  # all blocks, then 4 passes
    owners, freers = alloc_threads(trace)
    on_workers = freers != 0
    remote = on_workers & (owners != freers)
    from_main, from_predecessor = remote & (owners == 0), remote & (owners != 0)
    assert from_main.any() and from_predecessor.any()
    # a predecessor works on the same slots: worker index (id - 1) mod threads
    assert np.all((owners[from_predecessor] - 1) % threads == (freers[from_predecessor] - 1) % threads)
    assert np.all(owners[from_predecessor] < freers[from_predecessor])
    for worker in range(1, threads + 1):  # the first free of every first-generation worker: a main-thread block
        assert owners[np.argmax(freers == worker)] == 0
    assert {(tid - 1) % threads for tid in np.unique(trace.thread[trace.thread > 0])} == set(range(threads))
    sizes = alloc_sizes(trace)
    assert sizes.min() >= 8 and sizes.max() < 1000
    writes = trace.op == OP_ACCESS
    assert np.all(trace.size[writes] == 2) and np.count_nonzero(writes) == np.count_nonzero(
        (trace.op == OP_ALLOC) & (trace.thread != 0))


def test_mstress_transfers_cross_threads_and_rounds_with_its_size_mix():
    threads = 2
    trace = make(f"mstress:threads={threads},scale=1", rows=60_000)
    owners, freers = alloc_threads(trace)
    remote = owners != freers
    assert remote.any()
    assert np.any(remote & (freers == 0))  # the main thread frees surviving transfers
    workers = remote & (freers > 0) & (owners > 0)
    rounds_of = lambda tid: (tid - 1) // threads  # noqa: E731
    assert np.any(rounds_of(owners[workers]) < rounds_of(freers[workers]))  # freed by a thread of a later round
    assert np.unique(trace.thread).size > threads + 1  # new threads every round
    objects = alloc_sizes(trace)
    objects = objects[objects < 800_000 // 8 * 8]  # not the threads' pointer arrays
    small = objects <= 512
    assert np.all(objects % 8 == 0) and small.mean() > 0.9 and (~small).any()
    assert objects.max() <= MiB


def test_rptest_hands_batches_to_other_threads():
    trace = make("rptest:threads=3,loops=20")
    owners, freers = alloc_threads(trace)
    assert np.any(owners != freers)
    for spec in ("rptest:cross_rate=0", "rptest:threads=1"):  # no hand-over, no other thread: only local frees
        assert np.all(np.equal(*alloc_threads(make(spec))))
    blocks = lambda spec: alloc_sizes(make(spec))  # noqa: E731
    linear, even = blocks("rptest:max_size=4000"), blocks("rptest:max_size=4000,size_mode=even")
    linear, even = linear[linear <= 4000], even[even <= 4000]  # the blocks, not the arrays and batch headers
    assert linear.min() >= 8 and even.max() <= 4000
    assert linear.mean() < even.mean()  # the linear drop-off
    assert scatter_steps(1000) == (7, 11) and scatter_steps(7 * 11 * 13) == (17, 19)


def test_alloc_test_is_independent_with_its_size_rule_and_80_20_levels():
    trace = make("alloc-test:threads=3")
    owners, freers = alloc_threads(trace)
    assert np.all(owners == freers)
    sizes = alloc_sizes(trace)
    blocks = sizes[sizes <= 1024]  # not the slot tables
    assert blocks.min() >= 5 and blocks.max() <= 1024
    share = lambda low, high: np.mean((blocks >= low) & (blocks <= high))  # noqa: E731
    assert abs(share(5, 8) - 1 / 2) < 0.05 and abs(share(9, 16) - 1 / 4) < 0.05
    cumulative, starts = pareto_levels(1 << 16)
    assert cumulative[-1] == pytest.approx(1.0) and starts[-1] == 1 << 16
    picks = np.diff(np.concatenate(([0.0], cumulative)))
    slots = np.diff(starts)
    assert picks[0] == pytest.approx(0.8 ** LEVELS) and slots[0] == int((1 << 16) * 0.2 ** LEVELS)
    assert np.all(np.diff(picks[2:]) < 0) and np.all(np.diff(slots[:4]) > 0)  # fewer slots, more picks
    assert np.all(np.diff(pareto_levels(7)[1]) >= 1)  # every level keeps a slot


def unimodal(ids: np.ndarray) -> bool:
    """Ascending, then descending (either part may be empty)."""
    steps = np.diff(ids)
    falling = np.flatnonzero(steps < 0)
    return falling.size == 0 or bool(np.all(steps[falling[0]:] < 0))


def test_sh6bench_rings_free_four_fifths_half_fifo_half_lifo():
    threads, calls = 2, 500
    ring = calls // threads
    window = ring // 5
    trace = make(f"sh6bench:threads={threads},calls={calls}")
    owners, freers = alloc_threads(trace)
    assert np.all(owners == freers)
    mine = trace.thread == 0
    op, obj, size = trace.op[mine], trace.obj[mine], trace.size[mine]
    sweep = size[op == OP_ALLOC][1:]  # after the pointer array: 250 x 1 B, 250 x 2 B, 250 x 1 B, 250 x 4 B, ...
    assert sweep[:1000].tolist() == [1] * 250 + [2] * 250 + [1] * 250 + [4] * 250
    is_free = (op == OP_FREE).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], is_free, [0]))))
    runs = list(zip(edges[::2], edges[1::2], strict=True))[:-1]  # the last run is the drain
    assert len(runs) >= 3
    previous_end = 0
    for number, (start, end) in enumerate(runs):
        assert end - start == ring - window  # a fifth of the ring survives each pass
        ids = obj[start:end]
        this_pass = np.isin(ids, obj[previous_end:start][op[previous_end:start] == OP_ALLOC])
        # the bottom part in allocation order, the top part in reverse, for this pass and the window it kept
        assert unimodal(ids[this_pass]) and unimodal(ids[~this_pass])
        assert np.count_nonzero(~this_pass) == (window if number else 0)  # last pass's window goes now
        previous_end = end


def test_xmalloc_test_every_object_is_freed_by_another_thread():
    threads = 2
    trace = make(f"xmalloc-test:threads={threads},batch=500")
    owners, freers = alloc_threads(trace)
    assert np.all(owners != freers)
    assert set(np.unique(trace.thread[trace.op == OP_ALLOC])) <= set(range(threads))
    assert set(np.unique(freers)) <= set(range(threads, 2 * threads + 1))  # consumers, the main thread at the end
    sizes = alloc_sizes(trace)
    assert set(np.unique(sizes)) == {64, 8 * 501}
    listed = alloc_sizes(make("xmalloc-test:size=0,batch=100"))
    assert len(set(listed.tolist())) > 10 and listed.min() >= 8
    alias = make(f"xmalloc:threads={threads},batch=500")
    assert all(np.array_equal(getattr(alias, column), getattr(trace, column)) for column in ("op", "obj", "size",
                                                                                                 "thread"))


@pytest.mark.parametrize("name", ["cache-scratch", "cache-thrash"])
def test_cache_scratch_hands_over_one_object_per_thread_and_thrash_does_not(name):
    threads, repetitions = 3, 30
    trace = make(f"{name}:threads={threads},repetitions={repetitions}")
    owners, freers = alloc_threads(trace)
    if name == "cache-scratch":
        assert trace.thread[:threads].tolist() == [0] * threads and np.all(trace.op[:threads] == OP_ALLOC)
        handed = trace.obj[:threads]
        for worker in range(1, threads + 1):  # each worker's first row frees the object it was given
            first = int(np.argmax(trace.thread == worker))
            assert trace.op[first] == OP_FREE and trace.obj[first] in handed
        assert sorted(freers[owners == 0].tolist()) == list(range(1, threads + 1))
        assert np.count_nonzero(owners != freers) == threads
    else:
        assert np.all(owners == freers) and 0 in trace.thread
    writes = trace.op == OP_ACCESS
    assert np.all(trace.size[writes] == 1) and set(np.unique(alloc_sizes(trace))) == {1}
    per_object = np.bincount(trace.obj[writes])
    assert np.max(per_object) == repetitions // threads


def test_glibc_simple_batches_fifo_then_lifo_on_two_threads():
    trace = make("glibc-simple", rows=200_000)
    owners, freers = alloc_threads(trace)
    assert np.all(owners == freers) and set(np.unique(trace.thread)) == {0, 1}
    assert set(np.unique(alloc_sizes(trace))) == {16, 32, 64, 8 * 1600}
    is_free = (trace.op == OP_FREE).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([1], is_free, [1]))))  # runs of ALLOC + ACCESS rows
    batch_sizes = set()
    for start, end in list(zip(edges[::2], edges[1::2], strict=True))[:-1]:  # the last batch: cut by the drain
        batch = (trace.op[start:end] == OP_ALLOC) & (trace.size[start:end] != 8 * 1600)  # not the pointer array
        block = trace.obj[start:end][batch]
        n = block.size
        batch_sizes.add(n)
        assert np.all(trace.op[start:end][~batch & (trace.size[start:end] != 8 * 1600)] == OP_ACCESS)
        assert trace.obj[end:end + n].tolist() == block[:n // 2].tolist() + block[n // 2:][::-1].tolist()
    assert batch_sizes == {25, 100, 400, 1600}


def test_glibc_thread_sizes_and_independent_threads():
    trace = make("glibc-thread:threads=3")
    sizes = alloc_sizes(trace)
    assert sizes.min() >= 4 and sizes.max() <= 32768 and np.median(sizes) < 16  # inverse square
    assert np.all(np.equal(*alloc_threads(trace)))


def test_malloc_large_replaces_one_of_its_buffers():
    buffers = 5
    trace = make(f"malloc-large:buffers={buffers}", rows=3000)
    sizes = alloc_sizes(trace)
    assert sizes.min() >= 5 * MiB and sizes.max() <= 25 * MiB and sizes.max() > 20 * MiB
    live = live_after_each_row(trace)
    assert live.max() == buffers + 1  # the new buffer exists before the old one is freed
    frees = np.flatnonzero(trace.op == OP_FREE)[:-buffers]  # not the drain
    full = np.argmax(live[frees] == buffers)  # every slot holds a buffer: from then on one is replaced at a time
    assert live[frees[full]] == buffers and np.all(live[frees[full:]] == buffers)
    assert trace.max_request() > catalog.DEFAULT_REQUEST_CAP
    assert catalog.CATALOG["malloc-large"].request_cap >= trace.max_request()


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_threads_sets_the_workers(name):
    keys, workers = WORKERS[name]
    for threads in (2, 3):
        trace = make(f"{name}:threads={threads}{keys}", rows=10_000)
        found = set(np.unique(trace.thread).tolist())
        assert workers(threads) <= found <= workers(threads) | {0, 2 * threads}


def test_respawned_thread_ids_come_round_within_the_thread_limit():
    trace = make("larson:threads=500,slots=1,rounds=1,warmup=0", rows=60_000)  # a new thread every operation
    assert np.unique(trace.thread).size == MAX_THREADS - 1 - (MAX_THREADS - 1) % 500 + 1
    with pytest.raises(ValueError, match="key 'threads'"):
        catalog.parameters(f"larson:threads={MAX_THREADS // 2}")
    assert np.unique(make("mstress:threads=2,scale=1", rows=30_000).thread).size > 3  # new threads every round


# --------------------------------------------------------------------------- determinism and streaming
@pytest.mark.parametrize("name", sorted(classics.CLASSICS))
def test_same_seed_same_bytes_and_chunks_are_the_trace(name):
    columns = ("op", "obj", "size", "thread")
    trace = make(name, rows=5000, seed=3)
    assert trace_digests.digest(trace) == trace_digests.digest(make(name, rows=5000, seed=3))
    other = make(name, rows=5000, seed=4)
    same_rows = all(np.array_equal(getattr(trace, column), getattr(other, column)) for column in columns)
    assert same_rows == (name == "glibc-simple")  # the one classic that draws nothing
    chunks = catalog.make_chunks(name, n_ops=5000, seed=3, chunk_rows=37)
    pieces = list(chunks)
    assert chunks.meta == trace.meta and max(piece[0].size for piece in pieces) <= 37
    for index, column in enumerate(columns):
        assert np.array_equal(np.concatenate([piece[index] for piece in pieces]), getattr(trace, column))
    assert len(trace) in (5000, 4999, 4998)
    assert trace.meta["generator"] == "workloads.classics" and trace.meta["params"] == catalog.parameters(name)
    with pytest.raises(RuntimeError, match="once"):
        iter(chunks)


def test_streaming_memory_is_bounded_by_the_chunk():
    def peak(spec: str, rows: int) -> int:
        tracemalloc.start()
        try:
            for _ in catalog.make_chunks(spec, n_ops=rows, chunk_rows=1 << 16):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    for spec in ("larson", "xmalloc-test"):
        peak(spec, 1000)
        assert peak(spec, 1_500_000) < peak(spec, 150_000) + (1 << 20)


# --------------------------------------------------------------------------- bad keys
@pytest.mark.parametrize("spec, key", [
    ("larson:threads=0", "threads"), ("larson:lo=100,hi=50", "hi"), ("larson:write=maybe", "write"),
    ("mstress:scale=126", "scale"), ("rptest:min_size=100,max_size=50", "max_size"),
    ("rptest:size_mode=cubic", "size_mode"), ("alloc-test:items=8,threads=4", "items"),
    ("alloc-test:max_exp=30", "max_exp"), ("sh6bench:calls=9,threads=4", "calls"), ("xmalloc-test:batch=0", "batch"),
    ("xmalloc:queue=60000,batch=60000", "batch"), ("cache-scratch:threads=x", "threads"),
    ("glibc-simple:allocs=0", "allocs"), ("malloc-large:min_size=30MiB", "max_size"),
])
def test_bad_keys_are_refused_naming_the_key(spec, key):
    with pytest.raises(ValueError, match=re.escape(f"workload spec '{spec}': key '{key}'")):
        catalog.make(spec, n_ops=100)


def test_unknown_keys_list_the_valid_ones_and_the_command_line_says_one_line(capsys):
    with pytest.raises(ValueError, match="unknown key 'live'; valid keys: hi, lo, rounds, slots, threads"):
        catalog.parameters("larson:live=30")
    assert main(["run", "-a", "pool", "-w", "rptest:threads=0", "--ops", "1000"]) == 2
    error = capsys.readouterr().err.strip()
    assert "key 'threads'" in error and len(error.splitlines()) == 1 and "Traceback" not in error


# --------------------------------------------------------------------------- the sweep
def test_a_sweep_over_the_classics_preset(tmp_path, capsys):
    out = tmp_path / "classics"
    assert main(["sweep", "--preset", "classics", "-a", "tcmalloc;go", "--ops", "3000", "--repeats", "1",
                 "--out", str(out), "--no-progress", "--no-plots"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(row["allocator"], row["workload"]) for row in rows} == {
        (allocator, workload) for allocator in ("tcmalloc", "go") for workload in CLASSICS}
    assert all(row["status"] == "ok" for row in rows)
    remote = {row["workload"]: row["remote_free_rate"] for row in rows if row["allocator"] == "tcmalloc"}
    assert remote["xmalloc-test"] == 1.0 and remote["alloc-test"] == 0.0 and remote["rptest"] > 0


def test_malloc_large_iterations_end_the_trace_first():
    short = catalog.make("malloc-large:iterations=7", 10_000, 0)
    assert int((short.op == OP_ALLOC).sum()) == 7 and len(short) == 3 * 7  # ALLOC, ACCESS, FREE (or drain) each
    whole = catalog.make("malloc-large", 600, 0)  # 0: as many as the rows allow
    assert int((whole.op == OP_ALLOC).sum()) == 200
    with pytest.raises(ValueError, match="iterations"):
        catalog.make("malloc-large:iterations=-1", 100, 0)
