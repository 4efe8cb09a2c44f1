"""Free order of a trace: does every FREE (and REALLOC) name the newest live object?

Some allocators only free newest-first (`stack`, whose class declares
`lifo_only = True`); on a trace that frees any other way they fail at the first
out-of-order FREE.  A sweep asks this module first and records such a cell as
*skipped* (not applicable) instead of running it to a failure.

Definition.  Keep the live objects in a stack, in allocation order: an ALLOC
pushes its object; a FREE must name the object on top, which it pops; a
REALLOC must name the object on top (a REALLOC of an older object may move it,
and the move frees the old block out of order; a stack allocator resizes only
its newest block in place).  ACCESS rows do not matter.  The trace frees
newest-first when no row breaks this; `first_out_of_order_row` returns the first
row that does (-1 if none).  Threads share the one stack: a LIFO-only allocator
has one heap for all of them.  This is a property of the trace alone, slightly
stricter than what `stack` can replay (it also shrinks an older block in place).

Cost.  One jitted pass over the op and obj columns, O(rows), with a stack of
at most `peak_live_objects` ids; a trace streamed chunk by chunk carries the
stack from one chunk to the next (`NewestFirstCheck`), so the answer is the
same for any chunking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.stream import TraceChunk, TraceSource
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, Trace

holds_kernels(__file__)


@njit(cache=True)
def _newest_first_pass(op, obj, live, depth):
    """Advance the live stack `live[:depth[0]]` over the rows; the index of the first row out of order, or -1."""
    top = depth[0]
    for row in range(op.shape[0]):
        kind = op[row]
        if kind == OP_ALLOC:
            live[top] = obj[row]
            top += 1
        elif kind == OP_FREE or kind == OP_REALLOC:
            if top == 0 or live[top - 1] != obj[row]:
                depth[0] = top
                return row
            if kind == OP_FREE:
                top -= 1
    depth[0] = top
    return -1


class NewestFirstCheck:
    """The check over a trace's chunks, in order: `update(chunk)` per chunk, then `first_bad_row`."""

    def __init__(self, peak_live_objects: int) -> None:
        self.live = np.zeros(max(int(peak_live_objects), 1), np.int64)
        self.depth = np.zeros(1, np.int64)
        self.first_bad_row = -1

    def update(self, chunk: TraceChunk) -> None:
        if self.first_bad_row >= 0 or not len(chunk):
            return
        row = _newest_first_pass(chunk.op, chunk.obj, self.live, self.depth)
        if row >= 0:
            self.first_bad_row = chunk.start + int(row)


def first_out_of_order_row(trace: Trace | TraceSource) -> int:
    """The first row whose FREE or REALLOC names an object other than the newest live one; -1 if none."""
    if isinstance(trace, Trace):  # the columns as they are (no slots needed); at most one live object per row
        return int(_newest_first_pass(trace.op, trace.obj, np.zeros(max(len(trace), 1), np.int64),
                                      np.zeros(1, np.int64)))
    check = NewestFirstCheck(trace.facts().peak_live_objects)
    for chunk in trace.chunks():
        check.update(chunk)
        if check.first_bad_row >= 0:
            break
    return check.first_bad_row


def frees_newest_first(trace: Trace | TraceSource) -> bool:
    """Whether every FREE and REALLOC of the trace names the newest live object (module docstring)."""
    return first_out_of_order_row(trace) < 0
