"""Workloads: the trace format and the generators that produce traces."""

from workloads.trace import (
    MAX_REQUEST_SIZE,
    MAX_THREADS,
    OP_ACCESS,
    OP_ALLOC,
    OP_FREE,
    OP_REALLOC,
    Trace,
    TraceError,
    from_rows,
)

__all__ = [
    "MAX_REQUEST_SIZE", "MAX_THREADS", "OP_ACCESS", "OP_ALLOC", "OP_FREE", "OP_REALLOC",
    "Trace", "TraceError", "from_rows",
]
