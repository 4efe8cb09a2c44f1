"""Hardening options (allocators.hardening): each mechanism's verdict on hand-built fault traces, as security.md
states it; no check fires on a valid trace; no address reaches the base allocator or leaves the layer's arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocators
from allocators.detections import ST_CORRUPTED, detection_of, is_detection
from allocators.errors import ST_OUT_OF_MEMORY
from allocators.faultreplay import DETECTED, NOT_DETECTED, replay_faults
from allocators.hardening import HARDENING_PRESETS
from bench.harness import build_for_trace
from workloads import catalog
from workloads.faults import (
    F_DOUBLE_FREE,
    F_FOREIGN_FREE,
    F_INVALID_FREE,
    F_OVERFLOW,
    F_UAF_WRITE,
    F_UNDERFLOW,
    FAULT_KINDS,
    FaultTable,
)
from workloads.trace import OP_ALLOC, OP_FREE, Trace, from_rows

BASES = ("pool", "tcmalloc", "go", "freelist")
PRESET_SPECS = [f"{base}:{preset}" for base in BASES for preset in HARDENING_PRESETS]

# Five 64 B objects; pool (LIFO) hands block 2 out again to object 4 at row 5.  Objects 4 and 5 stay live.
ROWS = [
    (OP_ALLOC, 1, 64, 0), (OP_ALLOC, 2, 64, 0), (OP_ALLOC, 3, 64, 0),  # rows 0-2
    (OP_FREE, 1, 0, 0), (OP_FREE, 2, 0, 0),  # rows 3-4
    (OP_ALLOC, 4, 64, 0),  # row 5
    (OP_FREE, 3, 0, 0),  # row 6
    (OP_ALLOC, 5, 64, 0), (OP_ALLOC, 6, 64, 0), (OP_FREE, 6, 0, 0),  # rows 7-9
]
# One large object (guard pages): 100 000 B, a multiple of 16, so there is no slack; freed at row 2.
LARGE_ROWS = [(OP_ALLOC, 1, 100_000, 0), (OP_ALLOC, 2, 64, 0), (OP_FREE, 1, 0, 0), (OP_FREE, 2, 0, 0)]


def fault_trace(rows, *faults) -> Trace:
    """A trace of `rows` carrying the faults (at, kind, obj, param)."""
    base = from_rows(rows)
    at, kind, obj, param = zip(*faults, strict=True)
    return Trace(op=base.op, obj=base.obj, size=base.size, thread=base.thread, meta={"fault_trace": True},
                 faults=FaultTable.of(at, kind, obj, param))


def run(spec: str, rows, *faults, window: int = 100):
    """The outcome of each fault, in the order given (the table itself is sorted by row)."""
    trace = fault_trace(rows, *faults)
    found = {(o.at, o.kind, o.obj, o.param): o for o in replay_faults(build_for_trace(spec, trace), trace, window)}
    return [found[(at, FAULT_KINDS[kind], obj, param)] for at, kind, obj, param in faults]


def verdict(outcome) -> tuple:
    """(outcome, message, latency) of one fault."""
    return outcome.outcome, outcome.message if outcome.outcome == DETECTED else "", outcome.latency


def message(code_name: str) -> str:
    return next(text for name, text, _ in allocators.detections.DETECTIONS if name == code_name)


# ------------------------------------------------------------ zero cost
@pytest.mark.parametrize("base", BASES)
def test_no_option_keeps_the_allocators_own_kernels(base):
    cls = allocators.get(base)
    plain = allocators.create(base, 8 << 20)
    assert plain.kernels is cls.kernels and plain.replay_kernel is cls.replay_kernel
    assert plain.safety_kernels is None and len(plain.state) == len(allocators.create(base, 8 << 20).state)
    hardened = allocators.create(f"{base}:hardened", 8 << 20)
    assert hardened.kernels is not cls.kernels and hardened.safety_kernels is not None
    assert cls.kernels is allocators.get(base).kernels and cls.safety_kernels is None  # the class is untouched


def test_options_are_validated():
    with pytest.raises(allocators.BadParameter, match="pool: canary must be an integer in 0..1"):
        allocators.create("pool:canary=2", 1 << 20, block_size=64)
    with pytest.raises(allocators.BadParameter, match="quarantine"):
        allocators.create("tcmalloc:quarantine=-1", 1 << 20)
    assert allocators.create("go:shuffle=1", 8 << 20).hardening.shuffle == 16


# ------------------------------------------------------------ slot state
def test_slot_state_catches_double_and_invalid_frees_deterministically_but_not_after_reuse():
    spec = "pool:slot_state=1"
    immediate, delayed, after_reuse, interior, misaligned, foreign = run(
        spec, ROWS,
        (4, F_DOUBLE_FREE, 1, 0),  # right after obj 1's free
        (5, F_DOUBLE_FREE, 1, 0),  # after obj 2's free too; block 1 not reused yet
        (6, F_DOUBLE_FREE, 2, 0),  # block 2 is obj 4's now
        (3, F_INVALID_FREE, 3, 16),
        (3, F_INVALID_FREE, 3, 1),
        (3, F_FOREIGN_FREE, -1, 0),
    )
    double, invalid = message("slot_double_free"), message("slot_invalid_free")
    assert (immediate.fault_class, verdict(immediate)) == ("double_free:immediate", (DETECTED, double, 0))
    assert (delayed.fault_class, verdict(delayed)) == ("double_free:delayed", (DETECTED, double, 0))
    assert after_reuse.fault_class == "double_free:after_reuse" and after_reuse.outcome == NOT_DETECTED
    assert (interior.fault_class, verdict(interior)) == ("invalid_free:interior", (DETECTED, invalid, 0))
    assert (misaligned.fault_class, verdict(misaligned)) == ("invalid_free:misaligned", (DETECTED, invalid, 0))
    assert verdict(foreign) == (DETECTED, invalid, 0)


def test_without_slot_state_or_checksum_a_bad_free_stops_the_model_undetected():
    """Nothing reaches the base: the model stops (ST_CORRUPTED), where the real allocator would corrupt itself."""
    for outcome in run("pool:canary=1", ROWS, (4, F_DOUBLE_FREE, 1, 0), (3, F_INVALID_FREE, 3, 16)):
        assert outcome.outcome == NOT_DETECTED and "heap corrupted undetected" in outcome.message


# ------------------------------------------------------------ quarantine
def test_a_quarantine_alone_detects_nothing_but_lengthens_the_slot_states_window():
    double_free_of_2 = (6, F_DOUBLE_FREE, 2, 0)  # after obj 4's allocation, which reuses block 2 in a LIFO pool
    (alone,) = run("pool:quarantine=4", ROWS, double_free_of_2)
    assert alone.outcome == NOT_DETECTED
    (without,) = run("pool:slot_state=1", ROWS, double_free_of_2)
    assert without.fault_class == "double_free:after_reuse" and without.outcome == NOT_DETECTED
    (with_quarantine,) = run("pool:slot_state=1,quarantine=4", ROWS, double_free_of_2)
    # block 2 is still in the quarantine (nothing is handed out from it), so the double free is seen
    assert with_quarantine.fault_class == "double_free:delayed"
    assert verdict(with_quarantine) == (DETECTED, message("slot_double_free"), 0)


def test_a_full_quarantine_pushes_its_oldest_block_back_to_the_base():
    allocator = allocators.create("pool:quarantine=2", 1 << 20, block_size=64)
    blocks = [allocator.allocate(64) for _ in range(4)]
    for addr in blocks[:3]:
        allocator.deallocate(addr)
    hw = allocator.state[2]
    assert hw[allocators.hardening.layout.H_HELD] == 2 and hw[allocators.hardening.layout.H_RECYCLED] == 1
    assert allocator.allocate(64) == blocks[0]  # the base reuses the block the quarantine gave back ...
    fresh = allocator.allocate(64)
    assert fresh not in blocks  # ... and the held ones stay out of reach: the next block is a new one
    assert allocator.footprint > 4 * 64


# ------------------------------------------------------------ canary
def test_the_canary_catches_an_overflow_past_the_usable_size_at_free_not_one_within_the_slack():
    outcomes = run("pool:canary=1", ROWS, *((3, F_OVERFLOW, 3, k) for k in (1, 8, 9, 16, 17)))
    # pool: 64 B requests in blocks of 80 B with the canary: 72 usable bytes, 8 of them slack
    within, at_slack_end, first_byte, last_byte, beyond = outcomes
    for outcome in (within, at_slack_end):
        assert outcome.fault_class == "overflow:slack" and outcome.outcome == NOT_DETECTED
    for outcome in (first_byte, last_byte):
        assert outcome.fault_class == "overflow:past_usable"
        assert verdict(outcome) == (DETECTED, message("canary"), 4)  # at obj 3's free, row 6
    assert beyond.fault_class == "overflow:long" and verdict(beyond) == (DETECTED, message("canary"), 4)


# ------------------------------------------------------------ zero on free
def test_zero_on_free_catches_a_write_after_free_when_the_block_is_reused():
    (outcome,) = run("pool:zero_on_free=1", ROWS, (5, F_UAF_WRITE, 2, 8))
    assert verdict(outcome) == (DETECTED, message("write_after_free"), 1)  # obj 4 takes block 2 at row 5
    (plain,) = run("pool:slot_state=1", ROWS, (5, F_UAF_WRITE, 2, 8))
    assert plain.outcome == NOT_DETECTED


def test_zero_on_free_with_a_quarantine_checks_at_recycling():
    (outcome,) = run("pool:zero_on_free=1,quarantine=1", ROWS, (4, F_UAF_WRITE, 1, 16))
    # block 1 waits in the one-entry quarantine; obj 2's free (row 4) pushes it out, and the recycle check reads it
    assert verdict(outcome) == (DETECTED, message("write_after_free"), 1)


# ------------------------------------------------------------ encoded links
def test_encoded_links_catch_a_write_to_the_first_word_when_the_block_is_reused():
    first_word, later_word = run("pool:encode_links=1", ROWS, (5, F_UAF_WRITE, 2, 0), (5, F_UAF_WRITE, 2, 16))
    assert first_word.fault_class == "uaf_write:first_word"
    assert verdict(first_word) == (DETECTED, message("free_list_entry"), 1)
    assert later_word.fault_class == "uaf_write:later_word" and later_word.outcome == NOT_DETECTED


# ------------------------------------------------------------ guard pages
@pytest.mark.parametrize("spec", ["pool:guard_pages=1", "tcmalloc:guard_pages=1"])
def test_guard_pages_catch_a_large_blocks_overflow_and_underflow_immediately(spec):
    overflow, underflow, small = run(spec, LARGE_ROWS, (1, F_OVERFLOW, 1, 1), (1, F_UNDERFLOW, 1, 8),
                                     (2, F_OVERFLOW, 2, 64))
    assert overflow.fault_class == "overflow:past_usable"  # right-aligned at 16 B: no slack
    assert verdict(overflow) == (DETECTED, "SIGSEGV: access to a guard page", 0)
    assert verdict(underflow) == (DETECTED, "SIGSEGV: access to a guard page", 0)
    assert small.outcome == NOT_DETECTED  # below the threshold: no guard page


# ------------------------------------------------------------ checksum
def test_the_header_checksum_catches_foreign_frees_double_frees_and_underflows():
    spec = "pool:checksum=1"
    offsets = (0, 8, 16, 24, 4096)
    foreign = run(spec, ROWS, *((3, F_FOREIGN_FREE, -1, offset) for offset in offsets))
    for offset, outcome in zip(offsets, foreign, strict=True):  # each would pass the checksum with p = 2^-16
        expected = "header_checksum" if offset % 16 == 0 else "misaligned"  # Scudo checks alignment first
        assert verdict(outcome) == (DETECTED, message(expected), 0)
    double, interior, underflow = run(spec, ROWS, (4, F_DOUBLE_FREE, 1, 0), (3, F_INVALID_FREE, 3, 32),
                                      (3, F_UNDERFLOW, 3, 8))
    assert verdict(double) == (DETECTED, message("header_state"), 0)  # the header says freed
    assert verdict(interior) == (DETECTED, message("header_checksum"), 0)
    assert verdict(underflow) == (DETECTED, message("header_checksum"), 4)  # at obj 3's free


def test_the_checksum_is_keyed():
    """Another seed, other header words: a header copied from another heap fails."""
    words = []
    for seed in (0, 1):
        allocator = allocators.create(f"pool:checksum=1,seed={seed}", 1 << 20, block_size=64)
        addr = allocator.allocate(64)
        words.append(int(allocator.state[4][(addr - 8) >> 3]))
    assert words[0] != words[1]


# ------------------------------------------------------------ presets
@pytest.mark.parametrize("spec", PRESET_SPECS)
def test_presets_replay_every_catalog_workload_without_a_detection(spec):
    """No detection on any catalog trace; over the 1 MiB cap (malloc-large), running out of memory is allowed (a
    quarantine holds freed 5..25 MiB buffers; 300 rows: hardening costs per byte of such buffers)."""
    for name in catalog.names():
        over_cap = catalog.CATALOG[name].request_cap > catalog.DEFAULT_REQUEST_CAP
        trace = catalog.make(name, 300 if over_cap else 3000, 1)
        allocator = build_for_trace(spec, trace)
        job = allocator.prepare_replay(trace, keep_going=True)
        job.run()
        log = job.finish()
        if over_cap:
            assert set(log.failures[:, 1].tolist()) <= {ST_OUT_OF_MEMORY}, (spec, name, log.failures[:3])
        else:
            assert log.n_failures == 0, (spec, name, log.failures[:3])


@pytest.mark.parametrize("base", BASES)
def test_each_option_costs_footprint_or_metadata(base):
    trace = catalog.make("lognormal", 3000, 1)
    plain = build_for_trace(base, trace)
    plain_log = plain.replay(trace)
    for option in ("checksum=1", "canary=1", "slot_state=1", "quarantine=64"):
        log = build_for_trace(f"{base}:{option}", trace).replay(trace)
        assert log.peak_footprint >= plain_log.peak_footprint, option
        assert log.peak_metadata_bytes > plain_log.peak_metadata_bytes, option  # the layer's per-block words


# ------------------------------------------------------------ any address
addresses = st.one_of(
    st.integers(-(1 << 20), (1 << 21) + (1 << 20)),
    st.sampled_from([-1, 0, 8, 16, (1 << 21) - 8, 1 << 21, (1 << 21) + 4096, -(1 << 62), 1 << 62]),
)


@pytest.mark.parametrize("spec", ["pool:hardened", "tcmalloc:hardened"])
@settings(max_examples=60, deadline=None)
@given(calls=st.lists(st.tuples(st.booleans(), addresses, st.integers(1, 5000)), min_size=1, max_size=12),
       offsets=st.lists(st.integers(-64, 200), min_size=1, max_size=6))
def test_any_address_stays_inside_the_arrays_and_away_from_the_base(spec, calls, offsets):
    """free_checked and write_bytes take any address: a non-live one never reaches the base, no array is left."""
    allocator = allocators.create(spec, 1 << 21, **({"block_size": 4096} if spec.startswith("pool") else {}))
    blocks = [allocator.allocate(size) for size in (40, 3000, 100, 70_000)[: 3 if spec.startswith("pool") else 4]]
    allocator.deallocate(blocks[1])
    state = allocator.state
    base_len = len(state) - 8
    calls = calls + [(True, blocks[index % len(blocks)] + offset, 8) for index, offset in enumerate(offsets)]
    live_blocks = set(blocks) - {blocks[1]}
    for free, addr, nbytes in calls:
        live = addr in live_blocks
        before = [array.copy() for array in state[:base_len]]
        if free:
            status, _ = allocator.safety_kernels.free_checked(state, addr, 0)
        else:
            status = allocator.safety_kernels.write_bytes(state, addr, nbytes, 0x41)
        assert status == 0 or is_detection(int(status)) or status == ST_CORRUPTED, status
        if free and not live:
            assert status < 0, (addr, status)
            assert all(np.array_equal(a, b) for a, b in zip(before, state[:base_len], strict=True)), addr
        if free and live and status == 0:
            live_blocks.discard(addr)
        if is_detection(int(status)):
            assert detection_of(int(status))[2]  # a named mechanism
