"""Hand-built fault traces for the safety tests: rows and faults written out, one tuple each."""

from __future__ import annotations

from workloads.faults import FaultTable, kind_code
from workloads.trace import OP_ALLOC, OP_FREE, Trace, from_rows

Row = tuple[int, int, int, int]


def fault_trace(rows: list[Row], faults: list[tuple[int, str, int, int]]) -> Trace:
    """A fault trace from (op, obj, size, thread) rows and (at, kind name, obj, param) faults."""
    base = from_rows(rows)
    at, kind, obj, param = zip(*[(at, kind_code(name), ident, value) for at, name, ident, value in faults],
                               strict=True)
    return Trace(op=base.op, obj=base.obj, size=base.size, thread=base.thread, meta={"fault_trace": True},
                 faults=FaultTable.of(at, kind, obj, param))


def alloc(ident: int, size: int) -> Row:
    return (OP_ALLOC, ident, size, 0)


def free(ident: int) -> Row:
    return (OP_FREE, ident, 0, 0)
