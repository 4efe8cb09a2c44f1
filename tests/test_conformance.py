"""The conformance suite, run on every registered allocator (and each of its presets and variants)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import allocators
from allocators.conformance import ConformanceError, check_declarations, check_replay, run_program
from allocators.protocol import default_capacity, state_nbytes
from bench.harness import build_for_trace
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, Trace, from_rows

CAPACITY = 8 << 20
THREADS = 4


def all_specs() -> list[str]:
    specs = []
    for name in allocators.names():
        cls = allocators.get(name)
        specs.append(name)
        specs.extend(f"{name}:{preset}" for preset in cls.presets)
        specs.extend(f"{name}:{variant}" for variant in cls.variants)
    return specs


SPECS = all_specs()

sizes = st.one_of(
    st.integers(1, 64), st.integers(1, 1100), st.integers(1, 9000), st.integers(100_000, 300_000)
)
steps = st.one_of(
    st.tuples(st.just("alloc"), sizes, st.integers(0, THREADS - 1)),
    st.tuples(st.just("free"), st.integers(0, 1000), st.integers(0, THREADS - 1)),
    st.tuples(st.just("reset"), st.just(0), st.just(0)),
)
programs = st.lists(steps, min_size=1, max_size=80)


def build(spec: str, trace: Trace | None = None) -> allocators.Allocator:
    name, params = allocators.parse_spec(spec)
    cls = allocators.get(name)
    if trace is not None:
        params.update(cls.params_for_trace(trace, params))
    elif "block_size" in cls.defaults and params.get("block_size") is None:
        params["block_size"] = 300_000
    return cls(CAPACITY, max_threads=THREADS, **params)


def test_registry_has_the_foundation_allocators():
    assert {"linear", "pool", "stack", "freelist", "buddy"} <= set(allocators.names())
    for name in allocators.names():
        cls = allocators.get(name)
        assert cls.summary and cls.__module__.startswith("allocators.")
        module_doc = sys.modules[cls.__module__].__doc__ or ""
        assert "Design" in module_doc or len(module_doc) > 400, f"{name}: the module docstring explains the design"


@pytest.mark.parametrize("spec", SPECS)
@given(program=programs)
def test_per_call_invariants(spec, program):
    run_program(build(spec), program)


@st.composite
def trace_programs(draw, lifo: bool):
    """A valid trace: allocs, frees (LIFO-only if asked), reallocs and accesses."""
    rows = []
    live: list[tuple[int, int]] = []  # (obj, size)
    next_id = 0
    for _ in range(draw(st.integers(1, 120))):
        choice = draw(st.integers(0, 9))
        thread = draw(st.integers(0, THREADS - 1))
        if choice < 5 or not live:
            size = draw(sizes)
            rows.append((OP_ALLOC, next_id, size, thread))
            live.append((next_id, size))
            next_id += 1
        elif choice < 8:
            index = len(live) - 1 if lifo else draw(st.integers(0, len(live) - 1))
            ident, _ = live.pop(index)
            rows.append((OP_FREE, ident, 0, thread))
        elif choice == 8:
            index = len(live) - 1 if lifo else draw(st.integers(0, len(live) - 1))
            ident, _ = live[index]
            size = draw(sizes)
            live[index] = (ident, size)
            rows.append((OP_REALLOC, ident, size, thread))
        else:
            ident, size = live[draw(st.integers(0, len(live) - 1))]
            rows.append((OP_ACCESS, ident, draw(st.integers(0, size)), thread))
    return from_rows(rows)


@pytest.mark.parametrize("spec", SPECS)
@given(data=st.data())
def test_replay_invariants(spec, data):
    cls = allocators.get(allocators.parse_spec(spec)[0])
    trace = data.draw(trace_programs(lifo=cls.lifo_only))
    allocator = build(spec, trace)
    try:
        log = allocator.replay(trace)
    except allocators.OutOfMemory:
        return
    check_replay(allocator, trace, log)
    assert log.peak_live_requested <= log.peak_live_granted or allocator.name == "linear"


@pytest.mark.parametrize("spec", SPECS)
def test_replay_matches_per_call_api(spec):
    """replay() and a Python loop over allocate/deallocate give the same addresses."""
    rows = [(OP_ALLOC, i, 24 + 40 * (i % 7), 0) for i in range(40)]
    rows += [(OP_FREE, i, 0, 0) for i in range(39, 19, -1)]
    rows += [(OP_ALLOC, 100 + i, 16 + 8 * i, 0) for i in range(10)]
    trace = from_rows(rows)
    allocator = build(spec, trace)
    log = allocator.replay(trace)
    fresh = build(spec, trace)
    by_object = {}
    for row, (op, ident, size, thread) in enumerate(rows):
        if op == OP_ALLOC:
            by_object[ident] = fresh.allocate(size, thread)
            assert by_object[ident] == log.addr[row], f"row {row}"
        elif fresh.supports_deallocate:
            fresh.deallocate(by_object.pop(ident), thread)


@pytest.mark.parametrize("spec", SPECS)
def test_free_resets_and_memory_is_reused(spec):
    allocator = build(spec)
    first = [allocator.allocate(48) for _ in range(20)]
    footprint = allocator.footprint
    allocator.free()
    assert allocator.live_blocks() == {}
    assert allocator.footprint == footprint
    second = [allocator.allocate(48) for _ in range(20)]
    assert allocator.footprint == footprint, "allocating the same blocks after free() took new memory"
    assert set(first) & set(second), "free() did not make any memory reusable"


@pytest.mark.parametrize("spec", SPECS)
def test_bad_arguments_raise_clear_errors(spec):
    allocator = build(spec)
    for bad_size in (0, -5, 1 << 41, 1.5, "8"):
        with pytest.raises(allocators.BadParameter, match="size"):
            allocator.allocate(bad_size)
    with pytest.raises(allocators.BadParameter, match="thread"):
        allocator.allocate(16, thread=THREADS)
    if allocator.supports_deallocate:
        with pytest.raises(allocators.InvalidAddress):
            allocator.deallocate(12345 * 16)
        with pytest.raises(allocators.BadParameter, match="addr"):
            allocator.deallocate(-16)
    else:
        with pytest.raises(allocators.UnsupportedOperation):
            allocator.deallocate(allocator.allocate(16))


@pytest.mark.parametrize("spec", SPECS)
def test_exhaustion_raises_out_of_memory(spec):
    name, params = allocators.parse_spec(spec)
    cls = allocators.get(name)
    if "block_size" in cls.defaults:
        params.setdefault("block_size", 1024)
    allocator = cls(1 << 16, **params)
    with pytest.raises(allocators.OutOfMemory, match="out of memory"):
        for _ in range(10_000):
            allocator.allocate(1000)


def test_default_capacity_fits_a_linear_replay():
    rows = [(OP_ALLOC, i, 1000 + i, 0) for i in range(500)]
    trace = from_rows(rows)
    allocator = allocators.create("linear", default_capacity(trace))
    allocator.replay(trace)


@pytest.mark.parametrize("spec", SPECS)
def test_state_estimate_bounds_the_state(spec):
    """The estimate checked before a large capacity's tables are reserved is an upper bound, and a tight one."""
    name, params = allocators.parse_spec(spec)
    cls = allocators.get(name)
    for capacity in (1 << 25, 1 << 27):
        actual = state_nbytes(cls(capacity, **params).state)
        estimate = cls.estimate_state_bytes(capacity, **params)
        assert actual <= estimate <= 1.25 * actual + (1 << 20), (capacity, actual, estimate)


@pytest.mark.parametrize("spec", SPECS)
def test_a_request_beyond_the_model_is_an_allocator_failure(spec):
    """A valid 1 TiB request gets the trace's default capacity (its tables within the fixed limit): the model
    serves it or fails with an allocator error (exit 1), never a parameter error or a machine brought down."""
    trace = from_rows([(OP_ALLOC, 1, 1 << 40, 0), (OP_FREE, 1, 0, 0)])
    allocator = build_for_trace(spec, trace)
    assert cls_state_bytes(allocator) <= allocators.protocol.DEFAULT_STATE_LIMIT
    try:
        allocator.replay(trace)
    except allocators.AllocatorError as error:
        assert not isinstance(error, allocators.BadParameter), error


def cls_state_bytes(allocator: allocators.Allocator) -> int:
    return state_nbytes(allocator.state)


@pytest.mark.parametrize("spec", SPECS)
def test_default_capacity_follows_the_live_bytes(spec):
    """A long realloc chain with 1 MB live gets an address space sized by what is live, and replays."""
    rows = [(OP_ALLOC, 1, 1_000_000, 0)] + [(OP_REALLOC, 1, 1_000_000 + (i % 2) * 48_576, 0) for i in range(3000)]
    trace = from_rows(rows + [(OP_FREE, 1, 0, 0)])
    allocator = build_for_trace(spec, trace)
    if allocator.reuses_freed_memory and allocator.name != "region":  # region keeps room for every request
        assert allocator.capacity <= 2 * max(64 << 20, allocator.capacity_for_trace(
            from_rows([(OP_ALLOC, 1, 1 << 20, 0)]), {})), allocator.capacity
    allocator.replay(trace)


@pytest.mark.parametrize("spec", SPECS)
def test_declared_flags_are_bools(spec):
    name, params = allocators.parse_spec(spec)
    check_declarations(allocators.get(name), params)
    assert allocators.registry.general_purpose(spec) is (name not in ("linear", "pool", "stack", "region"))


def test_general_purpose_declarations():
    assert allocators.registry.general_purpose("objpool:inner=pool") is False  # as general as its inner allocator
    assert allocators.registry.general_purpose("objpool:inner=buddy") is True

    class Vague(allocators.get("buddy")):
        name = "vague"
        general_purpose = 1  # not a bool

    with pytest.raises(ConformanceError, match="general_purpose must be a bool"):
        check_declarations(Vague)


@pytest.mark.parametrize("spec", SPECS)
def test_shared_counters_are_declared(spec):
    """Every allocator says which of its counters are shared-structure (locked) operations."""
    from bench.metrics import compute_metrics

    rows = [(OP_ALLOC, i, 40 + i, 0) for i in range(30)] + [(OP_FREE, i, 0, 0) for i in range(29, -1, -1)]
    trace = from_rows(rows)
    allocator = build(spec, trace)
    log = allocator.replay(trace)
    assert allocator.shared_counters is not None
    assert set(allocator.shared_counters) <= set(log.counters)
    assert compute_metrics(trace, log)["shared_ops_per_kop"] >= 0


def _replay_in_chunks(allocator: allocators.Allocator, trace: Trace, bounds: list[int]):
    job = allocator.prepare_replay(trace)
    for start, stop in zip(bounds, bounds[1:], strict=False):
        job.run(start, stop)
    return job.finish()


def _same_log(one, other) -> None:
    assert np.array_equal(one.addr, other.addr)
    assert np.array_equal(one.granted, other.granted)
    assert np.array_equal(one.timeline, other.timeline)
    assert one.summary() == other.summary()


@pytest.mark.parametrize("spec", SPECS)
@given(data=st.data())
def test_chunked_replay_is_identical(spec, data):
    """Rows replayed in any chunking give the log, peaks, counters and metrics of one call, bit for bit."""
    from bench.metrics import compute_metrics

    cls = allocators.get(allocators.parse_spec(spec)[0])
    trace = data.draw(trace_programs(lifo=cls.lifo_only))
    n_rows = len(trace)
    cuts = sorted(data.draw(st.lists(st.integers(0, n_rows), max_size=8)))
    try:
        whole = build(spec, trace).replay(trace)
    except allocators.OutOfMemory:
        return
    metrics = compute_metrics(trace, whole)
    for bounds in ([0, *cuts, n_rows], list(range(n_rows + 1))):  # arbitrary cuts; then one row at a time
        chunked = _replay_in_chunks(build(spec, trace), trace, bounds)
        _same_log(whole, chunked)
        assert compute_metrics(trace, chunked) == metrics
