"""Trace validation and file formats: every malformed trace class is a TraceError naming the row."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from workloads.trace import MAX_REQUEST_SIZE, MAX_THREADS, Trace, TraceError, from_rows

A, F, R, X = 0, 1, 2, 3
GOOD = [(A, 0, 24, 0), (A, 1, 100, 1), (X, 1, 50, 1), (R, 0, 200, 0), (F, 1, 0, 1), (A, 1, 8, 0), (F, 0, 0, 0)]


def test_good_trace_round_trips_npz_and_csv(tmp_path):
    trace = from_rows(GOOD, meta={"generator": "hand", "seed": 3})
    for name in ("t.npz", "t.csv"):
        trace.save(tmp_path / name)
        loaded = Trace.load(tmp_path / name)
        for column in ("op", "obj", "size", "thread"):
            assert np.array_equal(getattr(loaded, column), getattr(trace, column))
            assert getattr(loaded, column).dtype == getattr(trace, column).dtype
    assert Trace.load(tmp_path / "t.npz").meta == {"generator": "hand", "seed": 3}
    assert trace.counts() == {"alloc": 3, "free": 2, "realloc": 1, "access": 1}
    assert trace.n_threads == 2


@pytest.mark.parametrize(
    "rows, bad_row, words",
    [
        ([(A, 0, 8, 0), (7, 0, 0, 0)], 1, "unknown op code 7"),
        ([(A, 0, 8, 0), (F, 1, 0, 0)], 1, "not live"),
        ([(A, 0, 8, 0), (A, 0, 8, 0)], 1, "still live"),
        ([(A, 0, 8, 0), (A, 1, 0, 0)], 1, "must be > 0"),
        ([(A, 0, -3, 0)], 0, "must be > 0"),
        ([(A, 0, MAX_REQUEST_SIZE + 1, 0)], 0, "above the maximum"),
        ([(A, 0, 8, 0), (F, 0, 0, 0), (F, 0, 0, 0)], 2, "double free"),
        ([(A, 0, 8, 0), (F, 0, 0, 0), (X, 0, 0, 0)], 2, "not live"),
        ([(A, 0, 8, 0), (F, 0, 0, 0), (R, 0, 8, 0)], 2, "not live"),
        ([(A, 0, 8, 0), (F, 0, 5, 0)], 1, "must be 0"),
        ([(A, 0, 8, 0), (X, 0, 9, 0)], 1, "outside 0..object size"),
        ([(A, 0, 8, 0), (A, -4, 8, 0)], 1, "negative object id"),
        ([(A, 0, 8, MAX_THREADS)], 0, "thread"),
        ([(A, 0, 8, -1)], 0, "thread"),
    ],
)
def test_bad_rows_are_named(rows, bad_row, words):
    with pytest.raises(TraceError, match=f"row {bad_row}:.*{words}") as caught:
        from_rows(rows)
    assert caught.value.row == bad_row


def test_reuse_of_an_id_after_free_is_allowed():
    trace = from_rows([(A, 5, 8, 0), (F, 5, 0, 0), (A, 5, 16, 0)])
    assert trace.n_ids >= 1


def test_sparse_ids_are_densified():
    trace = from_rows([(A, 1 << 45, 8, 0), (A, 7, 8, 0), (F, 1 << 45, 0, 0)])
    assert trace.n_ids == 2
    assert sorted(trace.dense_obj.tolist()) == [0, 1, 1]


def test_wrong_dtype_and_length():
    good = from_rows(GOOD)
    with pytest.raises(TraceError, match="'op' has dtype int64"):
        Trace(good.op.astype(np.int64), good.obj, good.size, good.thread)
    with pytest.raises(TraceError, match="'size' has 6 rows"):
        Trace(good.op, good.obj, good.size[:-1], good.thread)
    with pytest.raises(TraceError, match="numpy array"):
        Trace(list(good.op), good.obj, good.size, good.thread)


def test_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "t.npz"
    from_rows(GOOD).save(path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated or corrupt"):
        Trace.load(tmp_path / "cut.npz")
    with zipfile.ZipFile(tmp_path / "missing.npz", "w") as archive:
        archive.writestr("op.npy", b"")
    with pytest.raises(TraceError, match="missing column"):
        Trace.load(tmp_path / "missing.npz")
    with pytest.raises(TraceError, match="no such file"):
        Trace.load(tmp_path / "absent.npz")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(TraceError, match="unknown trace suffix"):
        Trace.load(tmp_path / "t.txt")
    np.savez(tmp_path / "badtype.npz", op=np.zeros(2, np.int64), obj=np.zeros(2, np.int64),
             size=np.ones(2, np.int64), thread=np.zeros(2, np.int32), meta=np.array(json.dumps({})))
    with pytest.raises(TraceError, match="badtype.npz: column 'op' has dtype int64"):
        Trace.load(tmp_path / "badtype.npz")


def test_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("op,obj,size,thread\nalloc,1,16,0\n\nfree,1,0,0\nfree,1,0,0\n")
    with pytest.raises(TraceError, match=r"row 2: double free.*\(line 5\)"):
        Trace.load(path)
    path.write_text("op,obj,size,thread\nmalloc,1,16,0\n")
    with pytest.raises(TraceError, match="line 2: unknown op 'malloc'"):
        Trace.load(path)
    path.write_text("op,obj,size\n")
    with pytest.raises(TraceError, match="line 1: expected header"):
        Trace.load(path)
    path.write_text("op,obj,size,thread\nalloc,1,sixteen,0\n")
    with pytest.raises(TraceError, match="line 2: .*integers"):
        Trace.load(path)


def test_empty_trace_is_valid():
    trace = from_rows([])
    assert len(trace) == 0
