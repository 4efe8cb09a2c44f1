"""Fault traces: misuse of the allocator (double frees, overflows, ...) written down beside a trace's rows.

The safety criterion asks which misuse an allocator catches, how late, and
at what cost.  The misuse has to be part of the trace, so that it replays,
saves, loads and sweeps like any trace, and it must never reach a kernel that
does not expect it (numba does not bounds-check: a double free handed to an
unhardened model would corrupt the model's own arrays).  So a *fault trace*
is an ordinary, fully validated trace plus a **fault table**: one row per
injected fault, anchored between two trace rows.  An ordinary replay (`run`,
`replay`, `sweep`, every metric) replays the ordinary rows and ignores the
table, at no cost; a safety replay executes each fault at its anchor, through
the allocator's own checks.  A trace carries a table only when its meta says
`"fault_trace": true`: in any other trace a fault row is a `TraceError`.

A fault row is (at, kind, obj, param):

- `at`: the fault happens after trace row `at - 1` and before row `at`
  (0..rows; faults are kept sorted by `at`, then kind, then obj);
- `kind`, `obj`, `param`, per kind (`FAULT_KINDS`):

  - `double_free`: obj freed before `at`; param 0.  Its address is freed again.
  - `invalid_free`: obj live at `at`; param = offset > 0.  free(addr + offset):
    an interior pointer if the offset is a multiple of 16, else misaligned.
  - `foreign_free`: obj -1; param = offset into memory the heap never handed
    out (a stack or global buffer), which is freed.
  - `uaf_write`: obj freed before `at`; param = offset of the 8-byte word
    written into its old block (0: the first word).
  - `overflow`: obj live at `at`; param = k >= 1 bytes written just past its
    requested size.
  - `underflow`: obj live at `at`; param = k >= 1 bytes written just before
    its block.
  - `stale_free`: obj live at `at`; param 0.  The heap is released as a
    whole (a region's or a stack's `free()`; for an allocator with single
    frees, and for the real ones, every live block is freed in object
    order), then obj's old address is freed again.

"Freed before `at`" means the object's id was freed and not allocated again
before `at`: the fault names the block that id last had.  What happens
depends on the allocator, not on the trace: a double free *after reuse* is
one whose address another object holds again, an overflow *within the
slack* is one no longer than the allocator's granted minus requested bytes;
the safety replay classifies each fault that way when it executes it.

In files: `.npz` holds the table as four more arrays (`fault_at`,
`fault_kind`, `fault_obj`, `fault_param`); a `.csv` fault trace has the line
`# fault trace` before its first row, and each fault is a row at its place
whose op column is the kind (`double_free,17,0,0`: obj, param, thread).
Chunked directories hold no fault tables.

Injection (`inject`, `python -m bench trace inject IN -o OUT --faults
double_free=0.001,overflow:k=8=0.0005 --seed S`) turns any trace into a
fault trace: a rate is faults per trace row, and each fault picks a random
eligible anchor (seeded: same trace, spec and seed, same table):

- `double_free[:delay=K][:reuse=1]`: after a FREE row; at the row after it,
  or after K more FREE rows (`delay`), or after the next ALLOC of the same
  size rounded up to 16 B (`reuse=1`: where most allocators hand the block
  out again);
- `invalid_free[:offset=O]` (default 16), `overflow[:k=K]` (default 8),
  `underflow[:k=K]` (default 8), `stale_free`: right after an ALLOC (of more
  than O bytes for invalid_free);
- `uaf_write[:offset=O]` (default 0): right after a FREE of an object of
  more than O bytes;
- `foreign_free[:offset=O]` (default 0): after a random row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.slots import sizes_before
from workloads.trace import OP_ALLOC, OP_FREE, OP_REALLOC, Trace, TraceError

holds_kernels(__file__)

#: The fault kinds, in code order (the `kind` column holds the index).
FAULT_KINDS = ("double_free", "invalid_free", "foreign_free", "uaf_write", "overflow", "underflow", "stale_free")
(F_DOUBLE_FREE, F_INVALID_FREE, F_FOREIGN_FREE, F_UAF_WRITE, F_OVERFLOW, F_UNDERFLOW, F_STALE_FREE) = range(7)
#: What each kind's obj must be at its anchor: "dead" (freed, not allocated again), "live" or "none" (-1).
TARGET = ("dead", "live", "none", "dead", "live", "live", "live")
#: Largest overflow, underflow or foreign offset a fault may carry.
MAX_FAULT_BYTES = 1 << 20
#: The meta key that marks a fault trace.
META_KEY = "fault_trace"
#: The line that marks a CSV trace as a fault trace.
CSV_MARKER = "# fault trace"
#: Injection parameters and their defaults, per kind.
INJECT_PARAMS: dict[str, dict[str, int]] = {
    "double_free": {"delay": 0, "reuse": 0},
    "invalid_free": {"offset": 16},
    "foreign_free": {"offset": 0},
    "uaf_write": {"offset": 0},
    "overflow": {"k": 8},
    "underflow": {"k": 8},
    "stale_free": {},
}

#: What a fault is, once the allocator it hits is known (`fault_class`): "kind:variant".
FAULT_CLASSES = (
    "double_free:immediate", "double_free:delayed", "double_free:after_reuse",
    "invalid_free:interior", "invalid_free:misaligned", "foreign_free",
    "uaf_write:first_word", "uaf_write:later_word", "uaf_write:after_reuse",
    "overflow:slack", "overflow:past_usable", "overflow:long", "underflow", "stale_free",
)

#: Named fault mixes (`--faults` entries without their rates): the catalog's fault workloads (`faults=MIX`) and
#: `bench safety`'s default ("all": every fault class).
FAULT_MIXES: dict[str, tuple[str, ...]] = {
    "all": ("double_free", "double_free:delay=4", "double_free:reuse=1", "invalid_free:offset=16",
            "invalid_free:offset=1", "foreign_free", "uaf_write", "uaf_write:offset=8", "overflow:k=1",
            "overflow:k=8", "overflow:k=64", "underflow:k=8", "stale_free"),
    "frees": ("double_free", "double_free:delay=4", "double_free:reuse=1", "invalid_free:offset=16",
              "invalid_free:offset=1", "foreign_free", "stale_free"),
    "writes": ("uaf_write", "uaf_write:offset=8", "overflow:k=1", "overflow:k=8", "overflow:k=64", "underflow:k=8"),
}


def mix_spec(mix: str, rate: float) -> str:
    """The `--faults` spec of a named mix, every entry at `rate` faults per row (ValueError for an unknown mix)."""
    if mix not in FAULT_MIXES:
        raise ValueError(f"unknown fault mix '{mix}' (known: {', '.join(FAULT_MIXES)})")
    return ",".join(f"{entry}={rate:g}" for entry in FAULT_MIXES[mix])


# Fault validation errors.
_OK, _E_ORDER, _E_AT, _E_KIND, _E_UNKNOWN, _E_NOT_DEAD, _E_NOT_LIVE, _E_NONE, _E_PARAM = range(9)


@dataclass(frozen=True, eq=False)
class FaultTable:
    """The faults of a fault trace: four equal-length int64 columns, sorted by (at, kind, obj)."""

    at: np.ndarray
    kind: np.ndarray
    obj: np.ndarray
    param: np.ndarray

    def __len__(self) -> int:
        return int(self.at.shape[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultTable) and all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in ("at", "kind", "obj", "param"))

    @classmethod
    def empty(cls) -> FaultTable:
        return cls(*(np.zeros(0, np.int64) for _ in range(4)))

    @classmethod
    def of(cls, at: Any, kind: Any, obj: Any, param: Any) -> FaultTable:
        """A table from four sequences (int64 each; TraceError for other shapes or types), sorted."""
        columns = []
        for name, values in (("at", at), ("kind", kind), ("obj", obj), ("param", param)):
            array = np.asarray(values)
            if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
                raise TraceError(f"fault column '{name}' must be a 1-d integer array (got {array.dtype}, "
                                 f"{array.ndim} dimension(s))")
            columns.append(array.astype(np.int64))
        if len({column.shape[0] for column in columns}) != 1:
            raise TraceError("fault columns have different lengths")
        order = np.lexsort((columns[2], columns[1], columns[0]))
        return cls(*(column[order] for column in columns))

    def counts(self) -> dict[str, int]:
        """Faults per kind (every kind, 0 included)."""
        found = np.bincount(self.kind, minlength=len(FAULT_KINDS)) if len(self) else np.zeros(len(FAULT_KINDS))
        return {name: int(found[code]) for code, name in enumerate(FAULT_KINDS)}

    def arrays(self) -> dict[str, np.ndarray]:
        """The table as the `.npz` arrays of a fault trace."""
        return {"fault_at": self.at, "fault_kind": self.kind, "fault_obj": self.obj, "fault_param": self.param}


def fault_class(kind: int, param: int, requested: int, granted: int, immediate: bool, reused: bool) -> str:
    """The class of a fault (`FAULT_CLASSES`) as it hits one allocator.

    requested, granted: the target object's requested and usable bytes in that allocator (its last block, for a
    freed object); immediate: a double free right after the object's FREE row; reused: a freed object's old
    address is held by a live object again at the fault.  Overflows: within the slack (k <= granted -
    requested), 1-8 bytes past the usable size, or longer, into the neighbour.
    """
    if kind == F_DOUBLE_FREE:
        return "double_free:after_reuse" if reused else ("double_free:immediate" if immediate else
                                                         "double_free:delayed")
    if kind == F_INVALID_FREE:
        return "invalid_free:interior" if param % 16 == 0 else "invalid_free:misaligned"
    if kind == F_UAF_WRITE:
        return "uaf_write:after_reuse" if reused else ("uaf_write:first_word" if param < 8 else
                                                      "uaf_write:later_word")
    if kind == F_OVERFLOW:
        slack = granted - requested
        return "overflow:slack" if param <= slack else ("overflow:past_usable" if param <= slack + 8 else
                                                        "overflow:long")
    return FAULT_KINDS[kind]


def is_fault_trace(meta: dict[str, Any]) -> bool:
    return meta.get(META_KEY) is True


def kind_code(name: str) -> int:
    try:
        return FAULT_KINDS.index(name)
    except ValueError:
        raise TraceError(f"unknown fault kind '{name}' (known: {', '.join(FAULT_KINDS)})") from None


# ------------------------------------------------------------------ validation
@njit(cache=True)
def _validate_faults(op, dense, size, n_ids, at, kind, fault_dense, param, max_bytes):
    """(first bad fault or -1, error code): walk the rows, checking each fault against the objects at its anchor."""
    state = np.zeros(n_ids, np.int8)  # 0 never allocated, 1 live, 2 freed
    current = np.zeros(n_ids, np.int64)
    n_rows = op.shape[0]
    row = 0
    for index in range(at.shape[0]):
        if index > 0 and at[index] < at[index - 1]:
            return index, _E_ORDER
        if at[index] < 0 or at[index] > n_rows:
            return index, _E_AT
        while row < at[index]:
            ident = dense[row]
            code = op[row]
            if code == OP_ALLOC:
                state[ident] = 1
                current[ident] = size[row]
            elif code == OP_FREE:
                state[ident] = 2
            elif code == OP_REALLOC:
                current[ident] = size[row]
            row += 1
        what = kind[index]
        if what < 0 or what > F_STALE_FREE:
            return index, _E_KIND
        value = param[index]
        target = fault_dense[index]
        if what == F_FOREIGN_FREE:
            if target != -1:
                return index, _E_NONE
            if value < 0 or value > max_bytes:
                return index, _E_PARAM
            continue
        if target < 0:
            return index, _E_UNKNOWN
        if what == F_DOUBLE_FREE or what == F_UAF_WRITE:
            if state[target] != 2:
                return index, _E_NOT_DEAD
        elif state[target] != 1:
            return index, _E_NOT_LIVE
        if what == F_DOUBLE_FREE or what == F_STALE_FREE:
            if value != 0:
                return index, _E_PARAM
        elif what == F_INVALID_FREE:
            if value <= 0 or value >= current[target]:
                return index, _E_PARAM
        elif what == F_UAF_WRITE:
            if value < 0 or value >= current[target]:
                return index, _E_PARAM
        elif value < 1 or value > max_bytes:  # overflow, underflow
            return index, _E_PARAM
    return -1, _OK


@njit(cache=True)
def _last_block_rows(op, dense, at, fault_dense):
    """Per fault: the last ALLOC or REALLOC row of its target before its anchor (-1: no target)."""
    last = np.full(max(int(dense.max()) + 1, 1) if dense.shape[0] else 1, -1, np.int64)
    out = np.full(at.shape[0], -1, np.int64)
    row = 0
    for index in range(at.shape[0]):
        while row < at[index]:
            if op[row] != OP_FREE and op[row] <= OP_REALLOC:
                last[dense[row]] = row
            row += 1
        if fault_dense[index] >= 0:
            out[index] = last[fault_dense[index]]
    return out


def target_rows(trace: Trace, faults: FaultTable) -> tuple[np.ndarray, np.ndarray]:
    """(last_row, immediate) per fault: the row that made its target's block (its last ALLOC or REALLOC before
    the anchor; -1 for a foreign free), and whether the fault comes right after the target's FREE row."""
    if not len(faults):
        return np.zeros(0, np.int64), np.zeros(0, bool)
    targets = dense_targets(trace, faults.obj)
    last_row = _last_block_rows(trace.op, trace.dense_obj, faults.at, targets)
    before = np.maximum(faults.at - 1, 0)
    immediate = ((faults.at > 0) & (trace.op[before] == OP_FREE) & (trace.obj[before] == faults.obj)
                 if len(trace) else np.zeros(len(faults), bool))
    return last_row, immediate


def dense_targets(trace: Trace, obj: np.ndarray) -> np.ndarray:
    """The dense ids (`Trace.dense_obj`) of fault targets; -1 for -1 and for ids the trace never uses."""
    ids, first = np.unique(trace.obj, return_index=True)
    position = np.searchsorted(ids, obj)
    position = np.minimum(position, max(ids.size - 1, 0))
    dense = np.full(obj.shape[0], -1, np.int64)
    if ids.size:
        hit = ids[position] == obj
        dense[hit] = trace.dense_obj[first[position[hit]]]
    return dense


def validate_faults(trace: Trace, faults: FaultTable) -> None:
    """TraceError naming the first fault whose anchor, kind, target or parameter is wrong for this trace."""
    if not len(faults):
        return
    targets = dense_targets(trace, faults.obj)
    bad, code = _validate_faults(trace.op, trace.dense_obj, trace.size, max(trace.n_ids, 1), faults.at,
                                 faults.kind, targets, faults.param, MAX_FAULT_BYTES)
    if bad < 0:
        return
    bad = int(bad)
    name = FAULT_KINDS[int(faults.kind[bad])] if 0 <= faults.kind[bad] < len(FAULT_KINDS) else str(faults.kind[bad])
    at, ident, value = int(faults.at[bad]), int(faults.obj[bad]), int(faults.param[bad])
    reasons = {
        _E_ORDER: "faults are not sorted by their row",
        _E_AT: f"its row {at} is outside 0..{len(trace)}",
        _E_KIND: f"unknown fault kind code {name}",
        _E_UNKNOWN: f"object {ident} does not appear in the trace",
        _E_NOT_DEAD: f"object {ident} is not a freed object at row {at}",
        _E_NOT_LIVE: f"object {ident} is not live at row {at}",
        _E_NONE: f"a foreign free names no object (obj -1), not {ident}",
        _E_PARAM: f"parameter {value} is out of range for {name}",
    }
    raise TraceError(f"fault {bad} ({name} before row {at}): {reasons[int(code)]}")


def check_fault_trace(trace: Trace) -> FaultTable:
    """The trace's fault table, checked: faults only in a trace marked as a fault trace, each valid at its row
    (TraceError otherwise); an empty table for a marked trace without one."""
    faults = trace.faults
    if faults is not None and not isinstance(faults, FaultTable):
        raise TraceError(f"faults must be a workloads.faults.FaultTable, got {type(faults).__name__}")
    if not is_fault_trace(trace.meta):
        if faults is not None and len(faults):
            raise TraceError(f"{len(faults)} fault row(s) in a trace that is not a fault trace (its meta has no "
                             f'"{META_KEY}": true)')
        return faults
    if faults is None:
        return FaultTable.empty()
    validate_faults(trace, faults)
    return faults


# ------------------------------------------------------------------- injection
@dataclass(frozen=True)
class FaultRequest:
    """One entry of a `--faults` spec: a kind, its injection parameters and its rate (faults per trace row)."""

    kind: str
    params: dict[str, int]
    rate: float

    @property
    def label(self) -> str:
        given = ",".join(f"{key}={value}" for key, value in self.params.items()
                         if value != INJECT_PARAMS[self.kind][key])
        return f"{self.kind}:{given}" if given else self.kind


_ENTRY = re.compile(r"^\s*([a-z_]+)((?::[a-z_]+=[0-9]+)*)\s*=\s*([0-9.eE+-]+)\s*$")


def parse_faults(text: str) -> list[FaultRequest]:
    """'double_free=0.001,overflow:k=8=0.0005' -> requests (ValueError naming the bad entry)."""
    requests = []
    for entry in filter(str.strip, text.split(",")):
        match = _ENTRY.match(entry)
        if match is None:
            raise ValueError(f"--faults: '{entry}' is not KIND[:key=N...]=RATE (e.g. overflow:k=8=0.001)")
        kind, options, rate_text = match.groups()
        if kind not in INJECT_PARAMS:
            raise ValueError(f"--faults: unknown fault kind '{kind}' (known: {', '.join(FAULT_KINDS)})")
        params = dict(INJECT_PARAMS[kind])
        for option in filter(None, options.split(":")):
            key, _, value = option.partition("=")
            if key not in params:
                known = ", ".join(INJECT_PARAMS[kind]) or "none"
                raise ValueError(f"--faults: {kind} has no parameter '{key}' (known: {known})")
            params[key] = int(value)
        try:
            rate = float(rate_text)
        except ValueError:
            raise ValueError(f"--faults: rate '{rate_text}' of {kind} is not a number") from None
        if not 0 < rate <= 1:
            raise ValueError(f"--faults: rate {rate_text} of {kind} must be in (0, 1] (faults per trace row)")
        request = FaultRequest(kind, params, rate)
        if any(other.label == request.label for other in requests):
            raise ValueError(f"--faults: {request.label} is given twice")
        requests.append(request)
    if not requests:
        raise ValueError("--faults: no fault given (e.g. double_free=0.001)")
    return requests


@njit(cache=True)
def _double_free_anchor(op, obj, size, current, row, delay, reuse):
    """The anchor of a double free of the object freed at `row`: row + 1; or after `delay` more FREE rows; or
    (reuse) after the next ALLOC of the freed size rounded up to 16 B.  -1 when the id is allocated again
    first, or the trace ends."""
    if delay == 0 and not reuse:
        return row + 1
    ident = obj[row]
    granule = (current[row] + 15) >> 4
    frees = 0
    for at in range(row + 1, op.shape[0]):
        code = op[at]
        if code == OP_ALLOC:
            if obj[at] == ident:
                return -1
            if reuse and (size[at] + 15) >> 4 == granule:
                return at + 1
        elif code == OP_FREE and not reuse:
            frees += 1
            if frees == delay:
                return at + 1
    return -1


def inject(trace: Trace, requests: list[FaultRequest], seed: int, strict: bool = True) -> Trace:
    """`trace` as a fault trace with the requested faults added (seeded).  A request that gives no fault (its rate
    rounds to none, or no row can anchor it) is a ValueError, or with strict=False left out (meta "skipped")."""
    rng = np.random.default_rng([int(seed), 0xFA017])
    at_all, kind_all, obj_all, param_all = [], [], [], []
    rows = len(trace)
    current = sizes_before(trace.op, trace.slots, trace.size, trace.n_slots)
    alloc_rows = np.flatnonzero(trace.op == OP_ALLOC)
    free_rows = np.flatnonzero(trace.op == OP_FREE)
    skipped = []
    for request in requests:
        wanted = int(round(request.rate * rows))
        if wanted == 0 and not strict:
            skipped.append(request.label)
            continue
        if wanted == 0:
            raise ValueError(f"--faults: {request.label} at rate {request.rate} gives no fault in {rows:,} rows")
        code = kind_code(request.kind)
        params = request.params
        if code == F_FOREIGN_FREE:
            anchors = rng.choice(rows + 1, size=min(wanted, rows + 1), replace=False)
            for at in np.sort(anchors).tolist():
                at_all.append(at), kind_all.append(code), obj_all.append(-1), param_all.append(params["offset"])
            continue
        if code in (F_DOUBLE_FREE, F_UAF_WRITE):
            candidates = free_rows
            if code == F_UAF_WRITE:
                candidates = candidates[current[candidates] > params["offset"]]
        else:
            candidates = alloc_rows
            if code == F_INVALID_FREE:
                candidates = candidates[trace.size[candidates] > params["offset"]]
        chosen = []
        for row in rng.permutation(candidates).tolist():
            if len(chosen) == wanted:
                break
            if code == F_DOUBLE_FREE:
                at = int(_double_free_anchor(trace.op, trace.obj, trace.size, current, row, params["delay"],
                                             bool(params["reuse"])))
                if at < 0:
                    continue
            else:
                at = row + 1
            chosen.append((at, int(trace.obj[row])))
        if not chosen and not strict:
            skipped.append(request.label)
            continue
        if not chosen:
            raise ValueError(f"--faults: no row of this trace can anchor {request.label}")
        param = {F_DOUBLE_FREE: 0, F_STALE_FREE: 0, F_INVALID_FREE: params.get("offset", 0),
                 F_UAF_WRITE: params.get("offset", 0), F_OVERFLOW: params.get("k", 0),
                 F_UNDERFLOW: params.get("k", 0)}[code]
        for at, ident in chosen:
            at_all.append(at), kind_all.append(code), obj_all.append(ident), param_all.append(param)
    faults = FaultTable.of(at_all, kind_all, obj_all, param_all)
    meta = {**trace.meta, META_KEY: True,
            "faults": {"spec": ",".join(f"{r.label}={r.rate:g}" for r in requests), "seed": int(seed),
                       "counts": faults.counts(), **({"skipped": skipped} if skipped else {})}}
    return Trace(op=trace.op, obj=trace.obj, size=trace.size, thread=trace.thread, meta=meta, faults=faults)
