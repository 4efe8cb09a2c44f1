"""Fault traces (workloads.faults): the table beside a trace's rows, its validation, files and injection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import api
from bench.cli import main
from workloads import catalog
from workloads.faults import (
    F_DOUBLE_FREE,
    F_FOREIGN_FREE,
    F_INVALID_FREE,
    F_OVERFLOW,
    F_UAF_WRITE,
    FAULT_KINDS,
    FaultTable,
    inject,
    parse_faults,
)
from workloads.trace import OP_ALLOC, OP_FREE, Trace, TraceError, from_rows

SPEC = ("double_free=0.002,double_free:delay=3=0.002,double_free:reuse=1=0.002,invalid_free=0.001,"
        "invalid_free:offset=1=0.001,foreign_free=0.0005,uaf_write=0.001,uaf_write:offset=8=0.001,"
        "overflow=0.001,overflow:k=1=0.001,underflow=0.001,stale_free=0.0005")


@pytest.fixture(scope="module")
def base() -> Trace:
    return catalog.make("lognormal", n_ops=6000, seed=4)


@pytest.fixture(scope="module")
def faulty(base) -> Trace:
    return inject(base, parse_faults(SPEC), seed=9)


def _marked(trace: Trace, faults: FaultTable) -> Trace:
    return Trace(op=trace.op, obj=trace.obj, size=trace.size, thread=trace.thread,
                 meta={**trace.meta, "fault_trace": True}, faults=faults)


def test_injection_is_seeded_and_counts_every_kind(base, faulty):
    assert inject(base, parse_faults(SPEC), seed=9).faults == faulty.faults
    assert inject(base, parse_faults(SPEC), seed=10).faults != faulty.faults
    counts = faulty.faults.counts()
    assert counts["double_free"] == 3 * 12 and counts["overflow"] == 2 * 6 and counts["foreign_free"] == 3
    assert set(counts) == set(FAULT_KINDS) and all(counts.values())
    assert faulty.meta["fault_trace"] is True and faulty.meta["faults"]["seed"] == 9


def test_faults_sit_where_their_kind_says(base, faulty):
    op, obj, size = base.op, base.obj, base.size
    table = faulty.faults
    assert np.all(np.diff(table.at) >= 0)
    delays = []
    for at, kind, ident, param in zip(table.at.tolist(), table.kind.tolist(), table.obj.tolist(),
                                      table.param.tolist(), strict=True):
        if kind == F_DOUBLE_FREE:
            freed = np.flatnonzero((op[:at] == OP_FREE) & (obj[:at] == ident))[-1]
            assert not np.any((op[freed:at] == OP_ALLOC) & (obj[freed:at] == ident))  # still dead
            delays.append(int(np.sum(op[freed + 1:at] == OP_FREE)))
        elif kind in (F_INVALID_FREE, F_OVERFLOW):
            assert op[at - 1] == OP_ALLOC and obj[at - 1] == ident
            assert kind != F_INVALID_FREE or 0 < param < size[at - 1]
        elif kind == F_FOREIGN_FREE:
            assert ident == -1
        elif kind == F_UAF_WRITE:
            assert op[at - 1] == OP_FREE and obj[at - 1] == ident
    assert 0 in delays and 3 in delays  # immediate and delayed by 3 frees (reuse ones: any number)


def test_files_round_trip_and_ordinary_replays_ignore_the_faults(base, faulty, tmp_path):
    for name in ("f.npz", "f.csv"):
        faulty.save(tmp_path / name)
        loaded = Trace.load(tmp_path / name)
        assert loaded.faults == faulty.faults and np.array_equal(loaded.obj, base.obj)
    plain = api.replay("tcmalloc", base, repeats=1).as_dict()
    with_faults = api.replay("tcmalloc", Trace.load(tmp_path / "f.npz"), repeats=1).as_dict()
    for key in ("peak_footprint", "overhead_factor", "l1_miss_rate", "hot_reuse_rate", "counters"):
        assert with_faults[key] == plain[key], key
    with pytest.raises(TraceError, match="chunked directory"):
        faulty.save(str(tmp_path / "dir") + "/")


def test_a_fault_row_in_a_normal_trace_is_refused(base, faulty, tmp_path):
    with pytest.raises(TraceError, match="not a fault trace"):
        Trace(op=base.op, obj=base.obj, size=base.size, thread=base.thread, meta={}, faults=faulty.faults)
    (tmp_path / "plain.csv").write_text("op,obj,size,thread\nalloc,1,32,0\nfree,1,0,0\ndouble_free,1,0,0\n")
    with pytest.raises(TraceError, match="line 4: fault row 'double_free' in a trace that is not a fault trace"):
        Trace.load(tmp_path / "plain.csv")
    (tmp_path / "marked.csv").write_text("op,obj,size,thread\n# fault trace\nalloc,1,32,0\nfree,1,0,0\n"
                                         "double_free,1,0,0\n")
    assert Trace.load(tmp_path / "marked.csv").faults.counts()["double_free"] == 1
    faulty.save(tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["meta"] = np.array("{}")
    np.savez(tmp_path / "unmarked.npz", **arrays)
    with pytest.raises(TraceError, match="not a fault trace"):
        Trace.load(tmp_path / "unmarked.npz")


@pytest.mark.parametrize("fault, message", [
    ((2, "double_free", 1, 0), "object 1 is not a freed object at row 2"),   # 1 is live at row 2
    ((4, "overflow", 1, 8), "object 1 is not live at row 4"),                 # freed at row 3
    ((2, "invalid_free", 1, 100), "parameter 100 is out of range"),            # offset past its 100 B
    ((2, "overflow", 7, 8), "object 7 does not appear in the trace"),
    ((9, "overflow", 1, 8), "its row 9 is outside 0..5"),
    ((2, "foreign_free", 1, 0), "a foreign free names no object"),
    ((2, "underflow", 1, 0), "parameter 0 is out of range"),
    ((4, "uaf_write", 1, 100), "parameter 100 is out of range"),              # the word must lie in its block
])
def test_invalid_faults_name_what_is_wrong(fault, message):
    trace = from_rows([(OP_ALLOC, 1, 100, 0), (OP_ALLOC, 2, 50, 0), (OP_FREE, 2, 0, 0), (OP_FREE, 1, 0, 0),
                       (OP_ALLOC, 3, 10, 0)])
    at, kind, ident, param = fault
    table = FaultTable.of([at], [FAULT_KINDS.index(kind)], [ident], [param])
    with pytest.raises(TraceError, match=message):
        _marked(trace, table)
    with pytest.raises(TraceError, match="1-d integer"):
        FaultTable.of([1.5], [0], [1], [0])


def test_trace_inject_on_the_command_line(tmp_path, capsys):
    source = tmp_path / "t.npz"
    assert main(["trace", "gen", "-w", "fifo", "--ops", "4000", "-o", str(source)]) == 0
    out = tmp_path / "f.csv"
    assert main(["trace", "inject", str(source), "-o", str(out), "--faults", "double_free=0.001,overflow:k=16=0.001",
                 "--seed", "3"]) == 0
    assert "8 faults (4 double_free, 4 overflow), seed 3" in capsys.readouterr().out
    assert Trace.load(out).faults.counts()["overflow"] == 4
    for faults, message in (("double_fre=0.1", "unknown fault kind 'double_fre'"),
                            ("overflow:q=1=0.1", "overflow has no parameter 'q'"),
                            ("overflow=2", "must be in (0, 1]"), ("overflow=0.00001", "gives no fault"),
                            ("overflow=0.1,overflow=0.2", "overflow is given twice")):
        assert main(["trace", "inject", str(source), "-o", str(out), "--faults", faults]) == 2
        assert message in capsys.readouterr().err
    assert main(["trace", "inject", str(out), "-o", str(tmp_path / "g.npz"), "--faults", "overflow=0.01"]) == 2
    assert "a fault trace already" in capsys.readouterr().err
    assert main(["trace", "inject", str(source), "-o", str(tmp_path) + "/d/", "--faults", "overflow=0.01"]) == 2


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["lognormal", "fifo", "lifo", "realloc", "threads4", "phased"]), st.integers(0, 1000),
       st.lists(st.sampled_from(["double_free", "double_free:delay=2", "double_free:reuse=1", "invalid_free",
                                 "invalid_free:offset=1", "foreign_free:offset=64", "uaf_write",
                                 "uaf_write:offset=16", "overflow:k=3", "underflow:k=16", "stale_free"]),
                min_size=1, max_size=4, unique=True))
def test_injected_faults_always_validate(workload, seed, kinds):
    trace = catalog.make(workload, n_ops=3000, seed=seed)
    try:
        faulty = inject(trace, parse_faults(",".join(f"{kind}=0.003" for kind in kinds)), seed)
    except ValueError as error:  # a kind this trace cannot anchor (no realloc-free object large enough, ...)
        assert "can anchor" in str(error)
        return
    again = _marked(trace, faulty.faults)  # validated from scratch
    assert len(again.faults) == len(faulty.faults) > 0
