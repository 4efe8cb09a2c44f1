"""goescape: a Go-like program run whose allocations carry an escape decision; its heap trace after escape analysis.

What it models.  One goroutine runs a program: it calls functions (each call
a stack frame with its own locals) and returns, and every function executes
allocation sites.  Each site is described by its features
(`workloads.escape_rules.Site`: how it allocates, how big, where the pointer
goes) and Go's escape analysis (`escape_rules.decide_codes`, checked against
the real compiler by bench.scenarios.escape_go) places its object:

- *stack*: the object lives in the current frame (bump-allocated there, and
  gone at once when the frame returns: allocators.goframes);
- *heap*: the object goes to the Go heap, an ALLOC row of the trace, and a
  FREE row when the program drops its last reference (the `go:gc` model
  turns that into garbage for its collector).

The catalog workload `goescape` (workloads.catalog) yields the HEAP trace
only (standard rows, thread 0), so any heap allocator replays it; the stack
side (`Program.stack_op`/`stack_size`, the *frame table*) stays beside it,
and its figures are in the trace's meta (`meta["escape"]`), so ordinary
replays never see it.  `escape_analysis=off` is the counterfactual: every
object on the heap (a non-escaping one freed when its frame returns), so the
heap allocations that escape analysis avoids are measured, not computed.

The program (one numba kernel, `_run_program`, over pre-drawn features):

- Steps.  Before each site, with probability 1/`sites` the goroutine calls
  a new function (a frame of 8..2x`frame` bytes of locals, a multiple of 8,
  up to `depth` frames) and with probability 1/`sites` it returns from the
  current one (never from the root frame), so a frame executes about
  `sites` allocations.
- Features.  Each site draws a target: escape with probability `escape`.
  Kind from `KIND_WEIGHTS`, size from the size model (`sizes=`, the
  catalog's distributions; an interface{} over 1 KiB becomes a new(T)), the
  element size of a make from `MAKE_ELEMS` (the size rounded down to a
  multiple of it), the part (`PART_WEIGHTS`; whole where the kind has no
  such part).  A site meant to stay gets a staying flow (local or call;
  make with a variable length becomes a constant one, an object over the
  implicit 64 KiB limit becomes an explicit var); one meant to escape gets
  an escaping flow (`ESCAPE_FLOW_WEIGHTS`).  `decide_codes` then decides:
  the ratio of sites it sends to the heap is `escape` in expectation (exactly
  its decisions are counted in `meta["escape"]["escape_ratio"]`).
- Lifetimes.  A stack object dies when its frame returns.  A heap object
  that escaped by being *returned* is held by the caller and dies when the
  caller returns (held by the root frame: lives to the end); one *stored to
  a global, leaked or stored in an escaping object* goes to one of `globals`
  package-level slots (drawn per site) and dies when the next such pointer
  replaces it; one on the heap only for its size (or every object with
  escape_analysis=off) dies when its own frame returns.  `init` package
  objects are allocated first and live to the end (they also keep an
  escape=0 trace from being empty).  At the end every frame returns, then
  the globals and the init objects are dropped (the trace is drained).
- Length.  `allocs=K` runs exactly K sites (a fixed program: what the
  escape scenario compares across ratios).  `allocs=0` (default) runs until
  the heap trace has `n_ops` rows (n_ops - 1 when odd), like every catalog
  workload, or until `MAX_SITES_PER_ROW` x n_ops / 2 sites have run (a ratio
  near 0 then gives a shorter trace).

The frame table (`Program.stack_op`, `stack_size`): one event per CALL (the
frame's locals' bytes), PUSH (a stack object's bytes) and RET, in program
order, starting with the root frame's CALL and ending with its RET.

Costs: the features are vectorised numpy draws and one pass of
`decide_codes`; the walk is one jitted pass, O(sites + rows).  Memory: about
40 B per site drawn plus the trace.
State: the kernel's per-depth lists of heap objects that die at that depth's
return (`frame_head`, linked through `next_obj`) and the global slots.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads import escape_rules as rules
from workloads import sizes as size_models
from workloads.programs import WholeChunks, check_chunk_rows
from workloads.sizes import LogNormal, SizeDistribution
from workloads.trace import OP_ALLOC, OP_FREE, Trace

holds_kernels(__file__)

GENERATOR_NAME = "goescape"
GENERATOR_VERSION = 1

#: Frame-table event codes.
S_CALL, S_RET, S_PUSH = 0, 1, 2
STACK_EVENTS = ("call", "ret", "push")
#: Where a site's object goes (the kernel's placement codes).
PLACE_STACK, PLACE_HEAP_FRAME, PLACE_HEAP_CALLER, PLACE_HEAP_GLOBAL = range(4)

#: How sites allocate: new, &T{}, make const, make var, var, interface{}.
KIND_WEIGHTS = (0.25, 0.2, 0.2, 0.05, 0.2, 0.1)
#: Element sizes of make sites.
MAKE_ELEMS = (1, 8, 16, 24, 32, 64)
#: whole, field, elem.
PART_WEIGHTS = (0.7, 0.15, 0.15)
#: returned, global, leak, stored (the escaping flows).
ESCAPE_FLOW_WEIGHTS = (0.4, 0.2, 0.2, 0.2)
#: With allocs=0, at most this many sites per two trace rows (an escape ratio of 1/16 still fills the trace).
MAX_SITES_PER_ROW = 16

#: The workload's own keys: (type, default, meaning).  The size model's keys (`sizes=`, its fields) come on top.
PARAMS: dict[str, tuple[type, Any, str]] = {
    "escape": (float, 0.5, "fraction of allocation sites whose features make them escape (0..1)"),
    "escape_analysis": (bool, True, "off: every object on the heap (the counterfactual)"),
    "allocs": (int, 0, "allocation sites the program runs (0: until the heap trace has n_ops rows)"),
    "sites": (float, 4.0, "mean allocations per call (a call and a return each with probability 1/sites)"),
    "depth": (int, 32, "deepest call stack, in frames"),
    "frame": (int, 128, "mean bytes of a frame's own locals (8..2 x frame)"),
    "globals": (int, 256, "package-level slots that escaping pointers are stored to"),
    "init": (int, 16, "package objects allocated at the start, live to the end"),
    "sizes": (str, "lognormal", "size model (workloads.sizes)"),
}
MAX_ALLOCS = 1 << 26


@dataclass(frozen=True)
class EscapeParams:
    """The program's parameters (PARAMS), validated."""

    escape: float = 0.5
    escape_analysis: bool = True
    allocs: int = 0
    sites: float = 4.0
    depth: int = 32
    frame: int = 128
    globals: int = 256
    init: int = 16
    sizes: SizeDistribution = field(default_factory=LogNormal)

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(math.isfinite(self.escape) and 0.0 <= self.escape <= 1.0, f"escape must be in 0..1 (got {self.escape})")
        check(0 <= self.allocs <= MAX_ALLOCS, f"allocs must be in 0..{MAX_ALLOCS} (got {self.allocs})")
        check(math.isfinite(self.sites) and 1.0 <= self.sites <= 1e6, f"sites must be in 1..1e6 (got {self.sites})")
        check(1 <= self.depth <= 1 << 16, f"depth must be in 1..65536 frames (got {self.depth})")
        check(8 <= self.frame <= 1 << 20, f"frame must be in 8..1MiB bytes (got {self.frame})")
        check(1 <= self.globals <= 1 << 20, f"globals must be in 1..2^20 (got {self.globals})")
        check(0 <= self.init <= 1 << 20, f"init must be in 0..2^20 (got {self.init})")
        check(isinstance(self.sizes, SizeDistribution), "sizes must be a size distribution")

    def params(self) -> dict[str, Any]:
        """JSON-able, as recorded in the trace's meta."""
        described = {key: getattr(self, key) for key in PARAMS if key != "sizes"}
        return {**described, "sizes": self.sizes.params()}


def resolve(given: dict[str, str], defaults: dict[str, Any], convert: Any) -> tuple[dict[str, Any], EscapeParams]:
    """A catalog spec's keys (text values) -> (flat params in force, EscapeParams); ValueError naming a bad key.

    `convert(key, type, text)` parses one value (the catalog's parser); `defaults` are the catalog entry's.
    """
    merged: dict[str, Any] = {key: default for key, (_, default, _) in PARAMS.items()}
    merged.update({key: value for key, value in defaults.items() if key in PARAMS})
    if "sizes" in given:
        merged["sizes"] = given["sizes"].strip()
    known = size_models.SIZE_DISTRIBUTIONS  # not imported by name: no kernel reads it
    if merged["sizes"] not in known:
        raise ValueError(f"key 'sizes': unknown size distribution '{merged['sizes']}' (known: {', '.join(known)})")
    sizes_cls = known[merged["sizes"]]
    size_fields = {item.name: item.type for item in dataclasses.fields(sizes_cls)}
    valid = {key: kind for key, (kind, _, _) in PARAMS.items()} | size_fields
    unknown = [key for key in given if key not in valid]
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' for goescape with sizes={sizes_cls.name}; valid keys: "
                         f"{', '.join(sorted(valid))}")
    size_values = {key: value for key, value in defaults.items() if key in size_fields}
    for key, text in given.items():
        if key == "sizes":
            continue
        value = convert(key, valid[key], text)
        if key in size_fields:
            size_values[key] = value
        else:
            merged[key] = value
    sizes = sizes_cls(**size_values)
    program = EscapeParams(**{key: merged[key] for key in PARAMS if key != "sizes"}, sizes=sizes)
    flat = {key: merged[key] for key in PARAMS}
    flat.update({key: value for key, value in sizes.params().items() if key != "name"})
    return flat, program


@dataclass
class Program:
    """A program run: the heap trace (after escape analysis), the frame table, the sites and their figures."""

    trace: Trace
    stack_op: np.ndarray  # int8 S_CALL / S_RET / S_PUSH
    stack_size: np.ndarray  # int64 bytes (0 for S_RET)
    kind: np.ndarray  # per site run: escape_rules codes
    size: np.ndarray
    flow: np.ndarray
    part: np.ndarray
    escapes: np.ndarray  # bool: decide's answer
    reason: np.ndarray  # int8: escape_rules.REASONS
    figures: dict[str, Any]


def draw_sites(params: EscapeParams, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` sites' features drawn for the target ratio, and decide's answers (module docstring)."""
    target = rng.random(count) < params.escape
    kind = rng.choice(len(rules.KINDS), size=count, p=np.asarray(KIND_WEIGHTS) / sum(KIND_WEIGHTS)).astype(np.int8)
    size = params.sizes.sample(rng, count).astype(np.int64)
    elem = np.asarray(MAKE_ELEMS, np.int64)[rng.integers(0, len(MAKE_ELEMS), count)]
    part = rng.choice(3, size=count, p=np.asarray(PART_WEIGHTS) / sum(PART_WEIGHTS)).astype(np.int8)
    stay_flow = rng.choice((rules.F_LOCAL, rules.F_CALL), size=count).astype(np.int8)
    escape_flow = rng.choice(np.asarray(rules.ESCAPING_FLOWS), size=count,
                             p=np.asarray(ESCAPE_FLOW_WEIGHTS) / sum(ESCAPE_FLOW_WEIGHTS)).astype(np.int8)
    kind[(kind == rules.K_IFACE) & (size > rules.MAX_STACK_IFACE_VALUE)] = rules.K_NEW
    kind[~target & (kind == rules.K_MAKE_VAR)] = rules.K_MAKE_CONST
    is_make = (kind == rules.K_MAKE_CONST) | (kind == rules.K_MAKE_VAR)
    elem = np.where(is_make, elem, 1)
    size = np.where(is_make, np.maximum(size // elem, 1) * elem, size)
    implicit = (kind == rules.K_NEW) | (kind == rules.K_PTRLIT) | (kind == rules.K_MAKE_CONST)
    kind[~target & implicit & (size > rules.MAX_IMPLICIT_STACK_VAR_SIZE)] = rules.K_VAR
    elem = np.where((kind == rules.K_MAKE_CONST) | (kind == rules.K_MAKE_VAR), elem, 1)
    no_field = (kind == rules.K_IFACE) | (kind == rules.K_MAKE_CONST) | (kind == rules.K_MAKE_VAR) | (
        size < rules.MIN_STRUCT_SIZE)
    part[(part == rules.P_FIELD) & no_field] = rules.P_WHOLE
    part[(part == rules.P_ELEM) & (kind == rules.K_IFACE)] = rules.P_WHOLE
    flow = np.where(target, escape_flow, stay_flow).astype(np.int8)
    escapes, reason = rules.decide_codes(kind, size, elem, flow)
    return {"kind": kind, "size": size, "elem": elem, "flow": flow, "part": part, "escapes": escapes,
            "reason": reason}


def placement(escapes: np.ndarray, flow: np.ndarray, analysis: bool) -> np.ndarray:
    """Each site's place (PLACE_*): stack, or the heap with the lifetime its flow gives (module docstring)."""
    returned = flow == rules.F_RETURNED
    stored = (flow == rules.F_GLOBAL) | (flow == rules.F_LEAK) | (flow == rules.F_STORED)
    place = np.where(escapes & returned, PLACE_HEAP_CALLER,
                     np.where(escapes & stored, PLACE_HEAP_GLOBAL, PLACE_HEAP_FRAME))
    if analysis:
        place = np.where(escapes, place, PLACE_STACK)
    return place.astype(np.int8)


@njit(cache=True)
def _free_row(ident, rows, op, obj, size):
    """Write the FREE row of `ident` at `rows`; return the next row."""
    op[rows] = OP_FREE
    obj[rows] = ident
    size[rows] = 0
    return rows + 1


@njit(cache=True)
def _free_list(head, next_obj, rows, op, obj, size, live):
    """Emit a FREE row for every object of one frame's list; return (rows, live)."""
    current = head
    while current >= 0:
        rows = _free_row(current, rows, op, obj, size)
        live -= 1
        current = next_obj[current]
    return rows, live


@njit(cache=True)
def _run_program(place, site_size, step_u, frame_bytes, slot, init_sizes, n_globals, max_depth, p_step, row_target,
                 op, obj, size, stack_op, stack_size):
    """Walk the program (module docstring); return (rows, stack events, sites run, calls, deepest depth)."""
    n_sites = place.shape[0]
    n_objects = init_sizes.shape[0] + n_sites
    next_obj = np.full(n_objects, -1, np.int64)
    frame_head = np.full(max_depth + 1, -1, np.int64)
    globals_ = np.full(n_globals, -1, np.int64)
    rows = 0
    live = 0
    events = 0
    next_id = 0
    for index in range(init_sizes.shape[0]):
        op[rows] = OP_ALLOC
        obj[rows] = next_id
        size[rows] = init_sizes[index]
        rows += 1
        live += 1
        next_id += 1
    stack_op[events] = 0  # S_CALL: the root frame
    stack_size[events] = frame_bytes[0] if n_sites > 0 else 8
    events += 1
    depth = 1
    deepest = 1
    calls = 0
    done = 0
    for site in range(n_sites):
        if row_target >= 0 and rows + live + 2 > row_target:
            break
        u = step_u[site]
        if u < p_step and depth < max_depth:
            depth += 1
            calls += 1
            deepest = max(deepest, depth)
            stack_op[events] = 0
            stack_size[events] = frame_bytes[site]
            events += 1
        elif u < 2.0 * p_step and depth > 1:
            rows, live = _free_list(frame_head[depth], next_obj, rows, op, obj, size, live)
            frame_head[depth] = -1
            stack_op[events] = 1
            stack_size[events] = 0
            events += 1
            depth -= 1
        where = place[site]
        done += 1
        if where == 0:  # PLACE_STACK
            stack_op[events] = 2
            stack_size[events] = site_size[site]
            events += 1
            continue
        ident = next_id
        next_id += 1
        op[rows] = OP_ALLOC
        obj[rows] = ident
        size[rows] = site_size[site]
        rows += 1
        live += 1
        if where == 1:  # PLACE_HEAP_FRAME: dies when its own frame returns
            next_obj[ident] = frame_head[depth]
            frame_head[depth] = ident
        elif where == 2:  # PLACE_HEAP_CALLER: held by the caller (depth 0: the root's caller, to the end)
            next_obj[ident] = frame_head[depth - 1]
            frame_head[depth - 1] = ident
        else:  # PLACE_HEAP_GLOBAL: replaces the slot's previous object, which dies
            previous = globals_[slot[site]]
            if previous >= 0:
                rows = _free_row(previous, rows, op, obj, size)
                live -= 1
            globals_[slot[site]] = ident
    while depth >= 1:
        rows, live = _free_list(frame_head[depth], next_obj, rows, op, obj, size, live)
        frame_head[depth] = -1
        stack_op[events] = 1
        stack_size[events] = 0
        events += 1
        depth -= 1
    rows, live = _free_list(frame_head[0], next_obj, rows, op, obj, size, live)
    for index in range(n_globals):
        if globals_[index] >= 0:
            rows = _free_row(globals_[index], rows, op, obj, size)
            live -= 1
    for index in range(init_sizes.shape[0]):
        rows = _free_row(index, rows, op, obj, size)
        live -= 1
    return rows, events, done, calls, deepest


def program(params: EscapeParams, n_ops: int, seed: int, meta: dict[str, Any] | None = None) -> Program:
    """Run the program of `params` (module docstring): its heap trace, frame table, sites and figures."""
    if isinstance(n_ops, bool) or not isinstance(n_ops, int | np.integer) or not 0 <= n_ops <= 1 << 40:
        raise ValueError(f"n_ops must be an integer in 0..2^40 (got {n_ops})")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed})")
    n_ops, seed = int(n_ops), int(seed)
    rng = np.random.default_rng([seed, 0x6E5C])
    if params.allocs:
        count, row_target, n_init = params.allocs, -1, params.init
    else:
        n_init = min(params.init, n_ops // 2)
        wanted = n_ops // 2 - n_init
        share = 1.0 if not params.escape_analysis else max(params.escape, 1.0 / MAX_SITES_PER_ROW)
        count = min(int(wanted / share * 1.25) + 64, MAX_SITES_PER_ROW * wanted + 64) if wanted > 0 else 0
        row_target = n_ops
    init_sizes = params.sizes.sample(rng, n_init).astype(np.int64)
    sites = draw_sites(params, count, rng)
    step_u = rng.random(count)
    frame_bytes = rng.integers(1, max(2, params.frame // 4) + 1, count).astype(np.int64) * 8
    slot = rng.integers(0, params.globals, count).astype(np.int64)
    place = placement(sites["escapes"], sites["flow"], params.escape_analysis)
    capacity = 2 * (n_init + count)
    op, obj, size = np.zeros(capacity, np.int8), np.zeros(capacity, np.int64), np.zeros(capacity, np.int64)
    stack_op, stack_size = np.zeros(3 * count + params.depth + 2, np.int8), np.zeros(3 * count + params.depth + 2,
                                                                                      np.int64)
    rows, events, done, calls, deepest = _run_program(
        place, sites["size"], step_u, frame_bytes, slot, init_sizes, params.globals, params.depth,
        1.0 / params.sites, row_target, op, obj, size, stack_op, stack_size)
    run = {key: value[:done] for key, value in sites.items()}
    on_stack = place[:done] == PLACE_STACK
    figures = {
        "sites": int(done), "escaping_sites": int(run["escapes"].sum()),
        "escape_ratio": float(run["escapes"].mean()) if done else 0.0,
        "heap_objects": int((~on_stack).sum()), "heap_bytes": int(run["size"][~on_stack].sum()),
        "stack_objects": int(on_stack.sum()), "stack_bytes": int(run["size"][on_stack].sum()),
        "init_objects": int(n_init), "init_bytes": int(init_sizes.sum()), "calls": int(calls),
        "deepest_frame": int(deepest),
        "reasons": {text: int(count) for text, count in zip(rules.REASONS, np.bincount(
            run["reason"].astype(np.int64), minlength=len(rules.REASONS)).tolist(), strict=True)},
    }
    trace_meta = {"generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "seed": seed, "n_ops": n_ops,
                  "program": params.params(), "escape": figures, **(meta or {})}
    trace = Trace(op[:rows].copy(), obj[:rows].copy(), size[:rows].copy(), np.zeros(rows, np.int32), meta=trace_meta)
    return Program(trace, stack_op[:events].copy(), stack_size[:events].copy(), run["kind"], run["size"],
                   run["flow"], run["part"], run["escapes"], run["reason"], figures)


class GoEscape:
    """The catalog's program hook for `goescape` (`workloads.programs.Program`): the walk needs the whole program,
    so `make_chunks` generates the trace whole and hands it out in chunks (`programs.WholeChunks`)."""

    def resolve(self, given: dict[str, str], defaults: dict[str, Any], convert: Any) -> tuple[dict[str, Any],
                                                                                             EscapeParams]:
        return resolve(given, defaults, convert)

    def rows(self, parsed: EscapeParams, n_ops: int) -> int:
        return 2 * (parsed.allocs + parsed.init) if parsed.allocs else int(n_ops)

    def run(self, parsed: EscapeParams, n_ops: int, seed: int, meta: dict[str, Any]) -> Program:
        return program(parsed, n_ops, seed, meta)

    def make(self, parsed: EscapeParams, n_ops: int, seed: int, meta: dict[str, Any]) -> Trace:
        return program(parsed, n_ops, seed, meta).trace

    def make_chunks(self, parsed: EscapeParams, n_ops: int, seed: int, meta: dict[str, Any],
                    chunk_rows: int) -> WholeChunks:
        check_chunk_rows(chunk_rows)
        return WholeChunks(self.make(parsed, n_ops, seed, meta), chunk_rows)


GOESCAPE = GoEscape()
