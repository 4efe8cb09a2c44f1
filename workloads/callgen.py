"""Generators of call-depth traces (`workloads.calldepth`) and their catalog: `randomwalk`, `recursion`, `boundary`.

`CALLDEPTH` names each workload with its default parameters and one line
for `python -m bench list`; `make(spec, ops, seed)` builds one from a spec
`NAME` or `NAME:key=value,...` (integers take `_`, `0x` and K/KiB/M/MiB
units), e.g. `boundary:depth=61,callee=512` or `randomwalk:goroutines=8,gc_every=5000`.
What each generator does is in `workloads.calldepth`'s docstring.  These are
not heap workloads: `bench run`/`sweep` refuse them with a pointer to
`bench stacks`.

Determinism: every draw comes from one `numpy.random.Generator(PCG64(seed))`
in a fixed order (randomwalk: the goroutine per row, the call/return
uniforms, the frame sizes; boundary: the jitter per iteration); `meta`
records the generator, every parameter and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from labcore.units import parse_bytes
from workloads.calldepth import KIND, MAX_FRAME, MAX_GOROUTINES, OP_CALL, OP_GC, OP_RETURN, CallTrace
from workloads.trace import check_rows_fit

holds_kernels(__file__)

DEFAULT_OPS = 100_000
#: Longest descent a generator makes (a stack of MAX_DEPTH frames of MAX_FRAME bytes is far past any real limit).
MAX_DEPTH = 1 << 22


@dataclass(frozen=True)
class CallWorkload:
    name: str
    description: str
    params: dict[str, Any]


CALLDEPTH: dict[str, CallWorkload] = {workload.name: workload for workload in (
    CallWorkload("randomwalk", "call depth as a random walk (p_call), log-normal frames (median frame, sigma), "
                 "goroutines picked at random", {"frame": 96, "sigma": 0.7, "p_call": 0.5, "goroutines": 1,
                                                 "gc_every": 0}),
    CallWorkload("recursion", "descend depth calls of frame bytes and return, repeated (a fresh goroutine each "
                 "time)", {"depth": 100, "frame": 104, "gc_every": 0}),
    CallWorkload("boundary", "at a fixed depth, a loop that calls a callee and returns: a segment boundary "
                 "crossed twice per iteration (the hot split)", {"depth": 62, "frame": 128, "callee": 256,
                                                                "jitter": 0, "gc_every": 0}),
)}


def names() -> list[str]:
    return list(CALLDEPTH)


def is_calldepth(spec: str) -> bool:
    """Whether a workload spec names a call-depth workload."""
    return isinstance(spec, str) and spec.partition(":")[0].strip() in CALLDEPTH


def parameters(spec: str) -> tuple[str, dict[str, Any]]:
    """(name, parameters) of a spec, defaults filled in; ValueError naming a bad key or value."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty call-depth workload spec")
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in CALLDEPTH:
        raise ValueError(f"unknown call-depth workload '{name}' (known: {', '.join(CALLDEPTH)})")
    params = dict(CALLDEPTH[name].params)
    given: set[str] = set()
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ValueError(f"call-depth workload spec '{spec}': '{item}' is not key=value")
        if key not in params:
            raise ValueError(f"call-depth workload '{name}': unknown key '{key}' (valid: {', '.join(params)})")
        if key in given:
            raise ValueError(f"call-depth workload spec '{spec}': key '{key}' given twice")
        given.add(key)
        try:
            params[key] = float(text) if isinstance(params[key], float) else parse_bytes(text.strip())
        except ValueError:
            kind = "a number" if isinstance(params[key], float) else "an integer"
            raise ValueError(f"call-depth workload '{name}': key '{key}' expects {kind}, got '{text}'") from None
    _check(name, params)
    return name, params


def _check(name: str, params: dict[str, Any]) -> None:
    def bounded(key: str, low: float, high: float) -> None:
        value = params[key]
        if not (low <= value <= high) or (isinstance(value, float) and not np.isfinite(value)):
            raise ValueError(f"call-depth workload '{name}': {key}={value} outside {low:g}..{high:g}")

    for key in ("frame", "callee"):
        if key in params:
            bounded(key, 1, MAX_FRAME)
    for key, low, high in (("depth", 1 if name == "recursion" else 0, MAX_DEPTH), ("jitter", 0, 1 << 16),
                           ("goroutines", 1, MAX_GOROUTINES), ("gc_every", 0, 1 << 40)):
        if key in params:
            bounded(key, low, high)
    if "sigma" in params:
        bounded("sigma", 0.0, 4.0)
    if "p_call" in params:
        bounded("p_call", 0.0, 1.0)


def describe(name: str) -> str:
    workload = CALLDEPTH[name]
    defaults = ", ".join(f"{key}={value}" for key, value in workload.params.items())
    return f"{workload.description} [call-depth: bench stacks; {defaults}]"


def make(spec: str, ops: int = DEFAULT_OPS, seed: int = 0) -> CallTrace:
    """The call-depth trace of a spec (same spec, ops and seed: the same trace, bit for bit)."""
    name, params = parameters(spec)
    if isinstance(ops, bool) or not isinstance(ops, int) or ops < 1:
        raise ValueError(f"ops must be a positive integer, got {ops!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_rows_fit(2 * ops + 2 * params.get("depth", 0), f"generating {spec}", "ask for fewer --ops")
    rng = np.random.Generator(np.random.PCG64(seed))
    if name == "randomwalk":
        op, frame, goroutine = _randomwalk(rng, ops, params)
    elif name == "recursion":
        op, frame, goroutine = _recursion(ops, params)
    else:
        op, frame, goroutine = _boundary(rng, ops, params)
    op, frame, goroutine = _with_gc(op, frame, goroutine, int(params["gc_every"]))
    meta = {"kind": KIND, "generator": name, "params": params, "seed": seed, "ops": ops, "spec": spec}
    return CallTrace(op, frame, goroutine, meta=meta)


def _frames(rng: np.random.Generator, count: int, median: int, sigma: float) -> np.ndarray:
    """Log-normal frame sizes, rounded up to 8 B, in 16 B .. MAX_FRAME."""
    raw = rng.lognormal(np.log(median), sigma, count) if sigma > 0 else np.full(count, float(median))
    return np.clip(np.ceil(raw / 8.0) * 8, 16, MAX_FRAME).astype(np.int64)


@njit(cache=True)
def _walk_kernel(who, uniform, frames, p_call, n_goroutines, op, frame, goroutine):
    """Rows of the random walk then the drain; return the row count."""
    depth = np.zeros(n_goroutines, np.int64)
    row = 0
    for step in range(who.shape[0]):
        g = who[step]
        goroutine[row] = g
        if depth[g] <= 1 or uniform[step] < p_call:
            op[row] = OP_CALL
            frame[row] = frames[step]
            depth[g] += 1
        else:
            op[row] = OP_RETURN
            depth[g] -= 1
        row += 1
    for g in range(n_goroutines):
        for _ in range(depth[g]):
            op[row] = OP_RETURN
            goroutine[row] = g
            row += 1
    return row


def _randomwalk(rng: np.random.Generator, ops: int, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    count = int(params["goroutines"])
    who = rng.integers(0, count, ops).astype(np.int64) if count > 1 else np.zeros(ops, np.int64)
    uniform = rng.random(ops)
    frames = _frames(rng, ops, int(params["frame"]), float(params["sigma"]))
    op = np.zeros(2 * ops, np.int8)
    frame = np.zeros(2 * ops, np.int64)
    goroutine = np.zeros(2 * ops, np.int32)
    rows = _walk_kernel(who, uniform, frames, float(params["p_call"]), count, op, frame, goroutine)
    return op[:rows].copy(), frame[:rows].copy(), goroutine[:rows].copy()


def _recursion(ops: int, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    depth = int(params["depth"])
    repeats = max(1, ops // (2 * depth))
    one_op = np.concatenate([np.full(depth, OP_CALL, np.int8), np.full(depth, OP_RETURN, np.int8)])
    one_frame = np.concatenate([np.full(depth, int(params["frame"]), np.int64), np.zeros(depth, np.int64)])
    return np.tile(one_op, repeats), np.tile(one_frame, repeats), np.zeros(2 * depth * repeats, np.int32)


def _boundary(rng: np.random.Generator, ops: int, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    depth, frame_bytes, callee, jitter = (int(params[key]) for key in ("depth", "frame", "callee", "jitter"))
    loop_rows = max(2, ops - 2 * depth)
    extra = rng.integers(0, jitter + 1, loop_rows // 2) if jitter else np.zeros(loop_rows // 2, np.int64)
    per = 2 + 2 * extra  # rows per iteration
    iterations = max(1, int(np.searchsorted(np.cumsum(per), loop_rows, side="right")))
    extra = extra[:iterations]
    parts_op = [np.full(depth, OP_CALL, np.int8)]
    parts_frame = [np.full(depth, frame_bytes, np.int64)]
    ends = np.cumsum(2 + 2 * extra)
    starts = ends - (2 + 2 * extra)
    total = int(ends[-1])
    op = np.empty(total, np.int8)
    frame = np.zeros(total, np.int64)
    calls = 1 + extra  # per iteration: the callee, then `extra` nested frames, then as many returns
    index = np.arange(total) - np.repeat(starts, 2 + 2 * extra)  # position inside its iteration
    calls_of_row = np.repeat(calls, 2 + 2 * extra)
    is_call = index < calls_of_row
    op[:] = np.where(is_call, OP_CALL, OP_RETURN)
    frame[is_call] = np.where(index[is_call] == 0, callee, frame_bytes)
    parts_op += [op, np.full(depth, OP_RETURN, np.int8)]
    parts_frame += [frame, np.zeros(depth, np.int64)]
    op_all = np.concatenate(parts_op)
    return op_all, np.concatenate(parts_frame), np.zeros(op_all.size, np.int32)


def _with_gc(op: np.ndarray, frame: np.ndarray, goroutine: np.ndarray, every: int) -> tuple[np.ndarray, ...]:
    """A GC row after every `every` rows (0: none)."""
    if every <= 0 or op.size < every:
        return op, frame, goroutine
    at = np.arange(every, op.size + 1, every)
    return (np.insert(op, at, OP_GC).astype(np.int8), np.insert(frame, at, 0),
            np.insert(goroutine, at, 0).astype(np.int32))
