"""Workload generators: determinism, size distributions, lifetime models, threads, access rows, catalog."""

import json

import numpy as np
import pytest

from workloads import catalog
from workloads.access import Access
from workloads.generator import generate
from workloads.lifetimes import (
    LIFETIME_MODELS,
    ExponentialLifetimes,
    Fifo,
    Lifo,
    LongLived,
    Phased,
    RandomFrees,
)
from workloads.sizes import (
    DEFAULT_MAX_SIZE,
    SIZE_DISTRIBUTIONS,
    Adversarial,
    Bimodal,
    Empirical,
    Exponential,
    Fixed,
    LogNormal,
    Pareto,
    Uniform,
    load_histogram,
)
from workloads.threads import Independent, ProducerConsumer
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace

N = 20_000


def rng(seed: int = 1) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def columns(trace: Trace) -> tuple[np.ndarray, ...]:
    return trace.op, trace.obj, trace.size, trace.thread


def alloc_row_of(trace: Trace) -> dict[int, int]:
    rows = np.flatnonzero(trace.op == OP_ALLOC)
    return dict(zip(trace.obj[rows].tolist(), rows.tolist(), strict=True))


# --------------------------------------------------------------------------- determinism and meta
DETERMINISM_CASES = [
    {},
    {"threads": 4},
    {"threads": ProducerConsumer(2, 3), "lifetime": Fifo(live=300)},
    {"lifetime": LongLived(0.1, Phased(batch=50, order="random")), "realloc_fraction": 0.05},
    {"lifetime": ExponentialLifetimes(500.0), "access": Access(touch=True, scan_every=100, scan_count=20)},
    {"sizes": Adversarial(), "lifetime": Lifo(live=100), "drain": False},
]


@pytest.mark.parametrize("kwargs", DETERMINISM_CASES)
def test_same_seed_same_trace_different_seed_different(kwargs):
    first = generate(n_ops=N, seed=7, **kwargs)
    second = generate(n_ops=N, seed=7, **kwargs)
    other = generate(n_ops=N, seed=8, **kwargs)
    for a, b in zip(columns(first), columns(second), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert first.meta == second.meta
    assert any(a.shape != c.shape or not np.array_equal(a, c) for a, c in zip(columns(first), columns(other),
                                                                                strict=True))


def test_meta_records_generator_parameters_and_seed(tmp_path):
    trace = generate(sizes=Pareto(alpha=1.5, minimum=32), lifetime=LongLived(0.2, Lifo(live=50)), threads=2,
                     n_ops=N, seed=11, access=Access(touch=True), realloc_fraction=0.1, drain=False)
    meta = json.loads(json.dumps(trace.meta))
    assert meta["seed"] == 11 and meta["n_ops"] == N and meta["drain"] is False
    assert meta["generator"] == "workloads.generate"
    assert meta["sizes"] == {"name": "pareto", "alpha": 1.5, "minimum": 32, "max_size": DEFAULT_MAX_SIZE}
    assert meta["lifetime"] == {"name": "longlived", "long_fraction": 0.2, "base": {"name": "lifo", "live": 50}}
    assert meta["threads"] == {"name": "independent", "threads": 2}
    assert meta["access"]["touch"] is True and meta["realloc_fraction"] == 0.1
    trace.save(tmp_path / "t.npz")
    loaded = Trace.load(tmp_path / "t.npz")
    assert loaded.meta == meta and np.array_equal(loaded.obj, trace.obj)


def test_n_ops_counts_all_rows():
    assert len(generate(n_ops=N, drain=False)) == N
    assert len(generate(n_ops=N, drain=True)) in (N, N - 1)
    assert len(generate(n_ops=N, threads=3, lifetime=Phased(batch=64), drain=True)) in (N, N - 1)
    with_extras = generate(n_ops=N, access=Access(touch=True, scan_every=50, scan_count=40), realloc_fraction=0.2)
    assert len(with_extras) in (N, N - 1, N - 2)
    assert len(generate(n_ops=0)) == 0
    small = generate(n_ops=7, seed=3)
    assert len(small) in (6, 7) and small.counts()["alloc"] == small.counts()["free"]


def test_drain_frees_everything_and_no_drain_leaves_objects_live():
    drained = generate(n_ops=N, lifetime=RandomFrees(live=2000), drain=True)
    counts = drained.counts()
    assert counts["alloc"] == counts["free"]
    open_ended = generate(n_ops=N, lifetime=RandomFrees(live=2000), drain=False)
    counts = open_ended.counts()
    assert counts["alloc"] - counts["free"] > 1000


def test_ids_are_dense_in_allocation_order():
    trace = generate(n_ops=N, threads=3, lifetime=LongLived(0.1, RandomFrees(live=500)))
    allocated = trace.obj[trace.op == OP_ALLOC]
    assert np.array_equal(allocated, np.arange(allocated.size))


def test_bad_arguments_raise_value_error():
    for kwargs in ({"n_ops": -1}, {"seed": -3}, {"realloc_fraction": 1.0}, {"realloc_growth": (0.5, 2.0)},
                   {"sizes": "lognormal"}, {"threads": 0}, {"threads": 5000}):
        with pytest.raises(ValueError):
            generate(**kwargs)


# --------------------------------------------------------------------------- size distributions
def test_every_size_distribution_gives_int64_within_one_and_max():
    for name, cls in SIZE_DISTRIBUTIONS.items():
        sizes = cls().sample(rng(), 50_000)
        assert sizes.dtype == np.int64, name
        assert sizes.min() >= 1 and sizes.max() <= DEFAULT_MAX_SIZE, name
        assert cls().params()["name"] == name


def test_fixed_and_uniform():
    assert np.all(Fixed(size=48).sample(rng(), 1000) == 48)
    sizes = Uniform(lo=10, hi=20).sample(rng(), 100_000)
    assert sizes.min() == 10 and sizes.max() == 20
    assert abs(sizes.mean() - 15.0) < 0.1
    assert len(np.unique(sizes)) == 11


def test_lognormal_median_and_mean():
    mu, sigma = 4.0, 1.0
    sizes = LogNormal(mu, sigma).sample(rng(), 200_000)
    assert abs(np.median(sizes) / (np.exp(mu) + 0.5) - 1) < 0.03
    assert abs(sizes.mean() / (np.exp(mu + sigma**2 / 2) + 0.5) - 1) < 0.03


def test_lognormal_cap():
    sizes = LogNormal(mu=15, sigma=2, max_size=4096).sample(rng(), 10_000)
    assert sizes.max() == 4096 and sizes.min() >= 1


def test_pareto_minimum_median_and_tail():
    alpha, minimum = 1.5, 16
    sizes = Pareto(alpha, minimum).sample(rng(), 200_000)
    assert sizes.min() == minimum
    assert abs(np.median(sizes) / (minimum * 2 ** (1 / alpha)) - 1) < 0.05
    tail = np.mean(sizes >= 16 * minimum)  # P(X >= 16) = 16^-alpha
    assert abs(tail / 16.0**-alpha - 1) < 0.1


def test_bimodal_modes_and_weight():
    exact = Bimodal(small=32, large=4096, large_fraction=0.25, spread=0.0).sample(rng(), 100_000)
    assert set(np.unique(exact).tolist()) == {32, 4096}
    assert abs(np.mean(exact == 4096) - 0.25) < 0.01
    spread = Bimodal(small=32, large=4096, large_fraction=0.25, spread=0.1).sample(rng(), 100_000)
    assert abs(np.mean(spread > 1000) - 0.25) < 0.01
    assert abs(np.median(spread[spread < 1000]) - 32) <= 1


def test_exponential_mean():
    sizes = Exponential(mean=256.0).sample(rng(), 200_000)
    assert sizes.min() >= 1
    assert abs(sizes.mean() / 256.5 - 1) < 0.02


def test_adversarial_sizes_sit_just_above_boundaries():
    dist = Adversarial(min_exp=4, max_exp=12, granule=16, granule_limit=512, pow2_fraction=0.5)
    sizes = dist.sample(rng(), 50_000)
    below = sizes - 1
    is_power = (below & (below - 1)) == 0
    assert np.all(is_power | (below % 16 == 0))
    assert sizes.min() >= 17 and sizes.max() == (1 << 12) + 1
    assert abs(np.mean(sizes > 512) - 0.5 * 4 / 9) < 0.02  # 2^9+1..2^12+1: 4 of the 9 powers exceed 512


def test_empirical_frequencies_and_csv(tmp_path):
    dist = Empirical(values=(16, 64, 1000), weights=(1.0, 2.0, 1.0))
    sizes = dist.sample(rng(), 100_000)
    assert set(np.unique(sizes).tolist()) == {16, 64, 1000}
    assert abs(np.mean(sizes == 64) - 0.5) < 0.01
    path = tmp_path / "hist.csv"
    path.write_text("size,weight\n# comment\n24,3\n512,1\n")
    loaded = load_histogram(path)
    assert loaded.values == (24, 512) and loaded.weights == (3.0, 1.0)
    assert abs(np.mean(loaded.sample(rng(), 100_000) == 24) - 0.75) < 0.01


@pytest.mark.parametrize("make", [
    lambda: Fixed(size=0), lambda: Uniform(lo=5, hi=4), lambda: LogNormal(sigma=-1), lambda: Pareto(alpha=0),
    lambda: Bimodal(large_fraction=1.5), lambda: Exponential(mean=0), lambda: Adversarial(max_exp=40),
    lambda: Empirical(values=(1, 2), weights=(1.0,)), lambda: Empirical(values=(0,), weights=(1.0,)),
    lambda: Fixed(size=10, max_size=0), lambda: Lifo(live=0), lambda: Phased(order="sideways"),
    lambda: ExponentialLifetimes(0.5), lambda: LongLived(long_fraction=2.0), lambda: ProducerConsumer(0, 1),
    lambda: Access(scan_every=-1),
])
def test_bad_component_parameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


# --------------------------------------------------------------------------- lifetime models
@pytest.mark.parametrize("name", sorted(LIFETIME_MODELS))
def test_schedules_allocate_ids_in_order_and_free_only_live(name):
    schedule = LIFETIME_MODELS[name]().schedule(rng(), N)
    allocated = schedule.obj[~schedule.is_free]
    assert np.array_equal(allocated, np.arange(allocated.size))
    assert schedule.n_alloc == allocated.size
    trace = Trace(op=schedule.is_free.astype(np.int8), obj=schedule.obj, size=(~schedule.is_free).astype(np.int64),
                  thread=np.zeros(N, np.int32))  # validates: frees name live objects, no double free
    assert trace.counts()["free"] > 0


def _check_stack_or_queue(trace: Trace, newest: bool) -> None:
    live: list[int] = []
    head = 0
    for op, ident in zip(trace.op.tolist(), trace.obj.tolist(), strict=True):
        if op == OP_ALLOC:
            live.append(ident)
        elif op == OP_FREE:
            expected = live.pop() if newest else live[head]
            if not newest:
                head += 1
            assert ident == expected


def test_lifo_frees_the_most_recent_live_object():
    trace = generate(lifetime=Lifo(live=200), n_ops=N, seed=3)
    _check_stack_or_queue(trace, newest=True)  # drain included (drain_order newest)
    assert trace.counts()["free"] == trace.counts()["alloc"]


def test_fifo_frees_the_oldest_live_object():
    trace = generate(lifetime=Fifo(live=200), n_ops=N, seed=3)
    _check_stack_or_queue(trace, newest=False)


def _live_counts(trace: Trace) -> np.ndarray:
    return np.cumsum(np.where(trace.op == OP_ALLOC, 1, np.where(trace.op == OP_FREE, -1, 0)))


@pytest.mark.parametrize("model", [Lifo(live=500), Fifo(live=500), RandomFrees(live=500)])
def test_walk_models_hold_the_working_set_near_live(model):
    live = _live_counts(generate(lifetime=model, n_ops=N, drain=False))
    assert live.max() <= 2 * 500
    assert abs(live[N // 2:].mean() / 500 - 1) < 0.1


def test_random_frees_are_not_lifo_or_fifo():
    trace = generate(lifetime=RandomFrees(live=300), n_ops=N, drain=False)
    with pytest.raises(AssertionError):
        _check_stack_or_queue(trace, newest=True)
    with pytest.raises(AssertionError):
        _check_stack_or_queue(trace, newest=False)


def test_exponential_lifetimes_mean_and_working_set():
    mean = 400.0
    trace = generate(lifetime=ExponentialLifetimes(mean), n_ops=100_000, drain=False)
    born = alloc_row_of(trace)
    frees = np.flatnonzero(trace.op == OP_FREE)
    ages = frees - np.array([born[i] for i in trace.obj[frees].tolist()])
    assert ages.min() >= 1
    assert abs(ages.mean() / (mean + 0.5) - 1) < 0.1
    assert abs(_live_counts(trace)[50_000:].mean() / (mean / 2) - 1) < 0.1


@pytest.mark.parametrize("order", ["fifo", "lifo", "random", "halves"])
def test_phased_frees_whole_batches(order):
    batch = 64
    trace = generate(lifetime=Phased(batch=batch, order=order), n_ops=N, drain=False)
    op, obj = trace.op, trace.obj
    edges = np.flatnonzero(np.diff(op.astype(np.int64))) + 1
    runs = np.split(np.arange(op.size), edges)
    assert all(run.size == batch for run in runs[:-1])
    for allocs, frees in zip(runs[0::2], runs[1::2], strict=False):
        assert np.all(op[allocs] == OP_ALLOC) and np.all(op[frees] == OP_FREE)
        assert sorted(obj[frees].tolist()) == sorted(obj[allocs].tolist())[: frees.size] or frees.size < batch
        if frees.size == batch:
            assert set(obj[frees].tolist()) == set(obj[allocs].tolist())
    first_frees = obj[runs[1]] - obj[runs[0]][0]
    expected = {"fifo": list(range(batch)), "lifo": list(range(batch - 1, -1, -1)),
                "halves": list(range(batch // 2)) + list(range(batch - 1, batch // 2 - 1, -1))}
    if order in expected:
        assert first_frees.tolist() == expected[order]
    else:
        assert first_frees.tolist() != list(range(batch))


def test_long_lived_objects_are_never_freed():
    model = LongLived(long_fraction=0.2, base=RandomFrees(live=300))
    schedule = model.schedule(rng(), N)
    freed = set(schedule.obj[schedule.is_free].tolist())
    assert schedule.long_lived is not None and not freed & set(schedule.long_lived.tolist())
    assert abs(schedule.long_lived.size / schedule.n_alloc - 0.2) < 0.02

    trace = generate(lifetime=model, n_ops=N, drain=False)
    counts = trace.counts()
    never_freed = counts["alloc"] - counts["free"]
    assert never_freed >= 0.18 * counts["alloc"]
    drained = generate(lifetime=model, n_ops=N, drain=True)
    assert drained.counts()["alloc"] == drained.counts()["free"]


# --------------------------------------------------------------------------- threads
def test_independent_threads_free_locally():
    trace = generate(threads=Independent(4), lifetime=RandomFrees(live=200), n_ops=N)
    assert trace.n_threads == 4
    assert np.all(np.bincount(trace.thread) > N // 8)
    born = alloc_row_of(trace)
    frees = np.flatnonzero(trace.op == OP_FREE)
    assert np.array_equal(trace.thread[frees], trace.thread[[born[i] for i in trace.obj[frees].tolist()]])


def test_independent_threads_keep_their_own_discipline():
    trace = generate(threads=3, lifetime=Lifo(live=50), n_ops=N)
    for thread in range(3):
        rows = trace.thread == thread
        sub = Trace(op=trace.op[rows], obj=trace.obj[rows], size=trace.size[rows], thread=trace.thread[rows])
        _check_stack_or_queue(sub, newest=True)


def test_producer_consumer_frees_remotely_in_fifo_order():
    trace = generate(threads=ProducerConsumer(producers=2, consumers=3), lifetime=Fifo(live=100), n_ops=N,
                     access=Access(touch=True), realloc_fraction=0.05)
    born = alloc_row_of(trace)
    frees = np.flatnonzero(trace.op == OP_FREE)
    alloc_threads = trace.thread[[born[i] for i in trace.obj[frees].tolist()]]
    assert np.all(trace.thread[frees] != alloc_threads)
    assert set(np.unique(trace.thread[trace.op == OP_ALLOC]).tolist()) == {0, 1}
    assert set(np.unique(trace.thread[frees]).tolist()) == {2, 3, 4}
    _check_stack_or_queue(trace, newest=False)


# --------------------------------------------------------------------------- access and realloc rows
def test_touch_follows_every_alloc():
    trace = generate(access=Access(touch=True), n_ops=N)
    allocs = np.flatnonzero(trace.op == OP_ALLOC)
    assert allocs.size > 0 and allocs[-1] + 1 < len(trace)
    after = allocs + 1
    assert np.all(trace.op[after] == OP_ACCESS)
    assert np.array_equal(trace.obj[after], trace.obj[allocs])
    assert np.all(trace.size[after] == 0) and np.array_equal(trace.thread[after], trace.thread[allocs])


def test_scans_touch_live_objects():
    trace = generate(access=Access(scan_every=100, scan_count=30, scan_bytes=8), lifetime=RandomFrees(live=1000),
                     n_ops=N)  # Trace validation: every ACCESS names a live object within its size
    accesses = trace.op == OP_ACCESS
    assert accesses.sum() > 0.1 * N
    assert trace.size[accesses].max() <= 8 and trace.size[accesses].min() >= 1
    assert len(np.unique(trace.obj[accesses])) > 1000
    none = generate(n_ops=N)
    assert none.counts()["access"] == 0


def test_realloc_rows_grow_live_objects():
    trace = generate(realloc_fraction=0.1, sizes=LogNormal(max_size=4096), n_ops=N, drain=False)
    counts = trace.counts()
    assert abs(counts["realloc"] / len(trace) - 0.1) < 0.02
    current: dict[int, int] = {}
    for op, ident, size in zip(trace.op.tolist(), trace.obj.tolist(), trace.size.tolist(), strict=True):
        if op == OP_ALLOC:
            current[ident] = size
        elif op == OP_REALLOC:
            previous = current[ident]
            assert size <= 4096 and (size > previous or previous == 4096)
            assert size <= 2 * previous or size == previous + 1
            current[ident] = size


# --------------------------------------------------------------------------- catalog
REQUIRED = ["fixed", "uniform", "lognormal", "pareto", "bimodal", "exponential", "adversarial", "empirical", "lifo",
            "fifo", "explifetime", "phased", "longlived", "producer-consumer", "threads4", "scan"]


def test_catalog_has_the_required_workloads():
    assert set(REQUIRED) <= set(catalog.names())
    for name in catalog.names():
        line = catalog.describe(name)
        assert line and "\n" not in line


@pytest.mark.parametrize("name", catalog.names())
def test_every_catalog_workload_makes_a_valid_modest_trace(name):
    trace = catalog.make(name, n_ops=N, seed=1)  # Trace() validates on construction
    assert len(trace) in (N, N - 1, N - 2)
    assert 0 < trace.max_request() <= catalog.CATALOG[name].request_cap  # 1 MiB but for malloc-large
    assert trace.meta["workload"] == name and trace.meta["seed"] == 1
    json.dumps(trace.meta)
    counts = trace.counts()
    assert counts["alloc"] == counts["free"]  # catalog traces are drained


def test_catalog_overrides():
    trace = catalog.make("lognormal:threads=4,lifetime=fifo", n_ops=N)
    assert trace.meta["threads"] == {"name": "independent", "threads": 4}
    assert trace.meta["lifetime"]["name"] == "fifo" and trace.meta["lifetime"]["live"] == 10_000
    trace = catalog.make("pareto:alpha=2.5,max_size=64KiB,drain=false,touch=yes", n_ops=N)
    assert trace.meta["sizes"]["alpha"] == 2.5 and trace.max_request() <= 65536
    assert trace.meta["drain"] is False and trace.counts()["access"] > 0
    trace = catalog.make("empirical:values=16/32,weights=1/3", n_ops=N)
    assert set(np.unique(trace.size[trace.op == OP_ALLOC]).tolist()) == {16, 32}
    trace = catalog.make("longlived:base=lifo,live=100,long_fraction=0.5", n_ops=N)
    assert trace.meta["lifetime"] == {"name": "longlived", "long_fraction": 0.5, "base": {"name": "lifo", "live": 100}}
    assert catalog.parameters("producer-consumer")["producers"] == 2


def test_catalog_histogram_file(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("size,weight\n100,1\n200,1\n")
    trace = catalog.make(f"empirical:histogram={path}", n_ops=N)
    assert set(np.unique(trace.size[trace.op == OP_ALLOC]).tolist()) == {100, 200}


@pytest.mark.parametrize("spec, word", [
    ("nosuch", "nosuch"),
    ("lognormal:colour=red", "colour"),
    ("lognormal:sigma=abc", "sigma"),
    ("lognormal:sigma=-2", "sigma"),
    ("lognormal:live=2.5", "live"),
    ("lognormal:sizes=uniform,mu=3", "mu"),
    ("lognormal:sizes=gaussian", "gaussian"),
    ("lognormal:lifetime=forever", "forever"),
    ("producer-consumer:threads=-3", "threads"),  # threads=T is valid there (T // 2 producers), not negative
    ("lognormal:threads", "threads"),
    ("lognormal:realloc=1.5", "realloc"),
    ("empirical:histogram=/no/such/file.csv", "file.csv"),
])
def test_catalog_bad_specs_raise_value_error_naming_the_problem(spec, word):
    with pytest.raises(ValueError, match=word):
        catalog.make(spec, n_ops=100)


def test_benchmark_trace():
    trace = catalog.benchmark_trace(n_ops=50_000, seed=2)
    assert len(trace) in (50_000, 49_999)
    assert trace.meta["sizes"]["name"] == "lognormal" and trace.meta["lifetime"]["name"] == "random"
    again = catalog.benchmark_trace(n_ops=50_000, seed=2)
    assert np.array_equal(trace.size, again.size) and np.array_equal(trace.obj, again.obj)
