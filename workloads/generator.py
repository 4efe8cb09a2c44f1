"""`generate()` / `generate_chunks()`: sizes x lifetimes x threads x access (+ realloc) into trace rows.

The trace, row by row:
1. the thread model and the lifetime model give the ALLOC/FREE skeleton of
   `skeleton_rows` rows (`workloads.threads.Skeleton`): per row FREE or
   ALLOC, the live object (as a slot) and the thread;
2. ids in allocation order: the k-th ALLOC row of the trace allocates object
   k; FREE rows name their object;
3. one size per object from the size distribution;
4. ACCESS and REALLOC rows are woven in (`workloads.access.Weaver`);
5. the trace is cut to `n_ops` rows: with `drain=True` it is cut where
   rows so far + objects still live <= n_ops, and one FREE per live object
   is appended (in the lifetime model's `drain_order`, on the thread the
   thread model chooses), so every object is freed by the end.

`n_ops` counts every row, drain included.  It is exact without drain; with
drain the trace has n_ops or n_ops - 1 rows (an ALLOC adds a row and a live
object at once), and with touch-on-allocation one row fewer may be cut so
that an ALLOC keeps its ACCESS.  With ACCESS/REALLOC rows the skeleton length
is estimated from the expected expansion; in the rare case that falls short
the skeleton is regenerated, longer, from the same seed, and if even that is
short the trace is shorter than n_ops.

Determinism: the trace is the one the original in-memory generator drew
from one `numpy.random.Generator(PCG64(seed))` with bulk calls in a fixed
order: the skeleton's draws (labels, each thread's lifetime draws, producer
and consumer draws), then one size per ALLOC row of the whole skeleton (also
those past the cut), then S REALLOC uniforms, k victim and k growth uniforms
(k = REALLOC rows of the skeleton), then the drain's permutation and threads.
No global RNG, no set/dict iteration order dependence; `meta` records the
generator, every parameter and the seed (JSON-able).

Streaming.  `generate_chunks()` yields the rows in chunks of at most
`chunk_rows`, in memory bounded by the chunk, the live objects and the
threads' lifetime state, whatever `n_ops`: every bulk call above is a
sub-stream (`workloads.substreams`) read chunk by chunk from its own
Generator, positioned where the bulk call started.  A `_Plan` finds those
positions before the first row, with pre-passes that keep only counters:
- the skeleton's own (label counts per thread, long-lived rates, dry passes
  over variable-length draws; `Skeleton`);
- the number of ALLOC rows of the whole skeleton, when a later draw starts
  after one size per object (a second part of the size distribution, or the
  REALLOC uniforms): one counting pass of the skeleton;
- the number of REALLOC rows (a pass over the REALLOC uniforms);
- whether the skeleton is long enough (ACCESS/REALLOC only): a pass of the
  skeleton and the weave that writes nothing (`_Plan.decide`), which fixes
  the attempt (and so the retry) before any row is yielded.
Then one pass writes the rows; the cut is found on the way (`Weaver`), and
the drain lists the survivors from the weaver's per-slot tables.  The state
the drain draws from (after all the sizes) is known from the plan, or found
at the end: the skeleton is run on to its last row to count its ALLOC rows
and the sizes not used are dry-drawn.  `generate()` is the concatenation of
`generate_chunks()`.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.access import CUT, FULL, Access, Weaver, split_survivors
from workloads.lifetimes import LifetimeModel, RandomFrees
from workloads.sizes import LogNormal, SizeDistribution, SizeStream
from workloads.substreams import DOUBLE, Reader, State, advanced, fresh_state, generator_at
from workloads.threads import Independent, Skeleton, SkeletonRun, ThreadModel
from workloads.trace import COLUMNS, OP_FREE, Trace

GENERATOR_NAME = "workloads.generate"
GENERATOR_VERSION = 1
#: Largest n_ops accepted (1e9 rows; a trace row costs 21 bytes).
MAX_OPS = 1_000_000_000
#: Rows of a generated chunk unless asked otherwise.
DEFAULT_CHUNK_ROWS = 1 << 20
#: Skeleton rows per step (at most): bounds the work buffers whatever the chunk size.
WORK_ROWS = 1 << 16

DRAIN_ORDERS = ("oldest", "newest", "random")

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _skeleton_rows(n_ops: int, access: Access, realloc_fraction: float) -> int:
    if not access.enabled and realloc_fraction <= 0:
        return n_ops
    expansion = (1.0 + access.rows_per_skeleton_row()) / (1.0 - realloc_fraction)
    return int(np.ceil(n_ops / expansion * 1.01)) + 256


@dataclass(frozen=True)
class _Setup:
    sizes: SizeDistribution
    lifetime: LifetimeModel
    threads: ThreadModel
    access: Access
    n_ops: int
    seed: int
    realloc_fraction: float
    growth: tuple[float, float]
    drain: bool
    meta: dict[str, Any]

    def weaver(self) -> Weaver:
        return Weaver(self.access, self.realloc_fraction, self.growth, self.sizes.max_size, self.n_ops, self.drain)


def _setup(sizes: SizeDistribution | None = None, lifetime: LifetimeModel | None = None,
           threads: ThreadModel | int = 1, n_ops: int = 200_000, seed: int = 0, access: Access | None = None,
           realloc_fraction: float = 0.0, realloc_growth: tuple[float, float] = (1.5, 2.0), drain: bool = True,
           extra_meta: dict[str, Any] | None = None) -> _Setup:
    """The validated arguments of `generate()` (same defaults, same ValueErrors) and the trace's meta."""
    sizes = sizes if sizes is not None else LogNormal()
    lifetime = lifetime if lifetime is not None else RandomFrees()
    thread_model = Independent(int(threads)) if isinstance(threads, int | np.integer) else threads
    access = access if access is not None else Access()
    if not isinstance(sizes, SizeDistribution):
        raise ValueError(f"sizes must be a SizeDistribution (got {type(sizes).__name__})")
    if not isinstance(lifetime, LifetimeModel):
        raise ValueError(f"lifetime must be a LifetimeModel (got {type(lifetime).__name__})")
    if not isinstance(thread_model, ThreadModel):
        raise ValueError(f"threads must be a ThreadModel or an int (got {type(threads).__name__})")
    if not isinstance(n_ops, int | np.integer) or not 0 <= n_ops <= MAX_OPS:
        raise ValueError(f"n_ops must be an integer in 0..{MAX_OPS} (got {n_ops})")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed})")
    if not 0.0 <= realloc_fraction < 1.0:
        raise ValueError(f"realloc_fraction must be in [0, 1) (got {realloc_fraction})")
    grow_min, grow_max = (float(value) for value in realloc_growth)
    if not 1.0 <= grow_min <= grow_max <= 1e6:
        raise ValueError(f"realloc_growth must be (min, max) with 1 <= min <= max (got {realloc_growth})")
    if lifetime.drain_order not in DRAIN_ORDERS:
        raise ValueError(f"lifetime model '{lifetime.name}' has unknown drain_order '{lifetime.drain_order}'")
    n_ops, seed = int(n_ops), int(seed)
    meta: dict[str, Any] = {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_ops": n_ops,
        "sizes": sizes.params(),
        "lifetime": lifetime.params(),
        "threads": thread_model.params(),
        "access": access.params(),
        "realloc_fraction": float(realloc_fraction),
        "realloc_growth": [grow_min, grow_max],
        "drain": bool(drain),
    }
    meta.update(extra_meta or {})
    return _Setup(sizes, lifetime, thread_model, access, n_ops, seed, float(realloc_fraction), (grow_min, grow_max),
                  bool(drain), meta)


class _Plan:
    """One attempt (a skeleton of `skeleton_rows` rows): where every sub-stream starts, counted by pre-passes."""

    def __init__(self, setup: _Setup, skeleton_rows: int, work_rows: int) -> None:
        self.setup, self.skeleton_rows, self.work_rows = setup, skeleton_rows, work_rows
        self.skeleton = Skeleton(setup.threads, setup.lifetime, skeleton_rows, fresh_state(setup.seed))
        self.rate = setup.realloc_fraction / (1.0 - setup.realloc_fraction)
        #: ALLOC rows of the whole skeleton, when a draw after the sizes must be placed up front.
        self.n_ids: int | None = None
        if setup.realloc_fraction > 0 or len(setup.sizes.parts()) > 1:
            run = self.skeleton.open()
            while run.done < skeleton_rows:
                run.next(work_rows)
            self.n_ids = run.n_alloc
        #: starts of the REALLOC, victim and growth uniforms; the drain's state after them.
        self.realloc_starts: tuple[State, State, State] | None = None
        self.final: State | None = None
        if setup.realloc_fraction > 0:
            sizes_end = SizeStream(setup.sizes, self.skeleton.end, self.n_ids).end()
            reader = Reader(DOUBLE, sizes_end)
            k = 0
            for first in range(0, skeleton_rows, work_rows):
                k += int(np.count_nonzero(reader.read(min(work_rows, skeleton_rows - first)) < self.rate))
            self.realloc_starts = (sizes_end, advanced(sizes_end, skeleton_rows),
                                   advanced(sizes_end, skeleton_rows + k))
            self.final = advanced(sizes_end, skeleton_rows + 2 * k)

    def weave(self, weaver: Weaver, run: SkeletonRun, out_rows: int, sizes: SizeStream | None,
              realloc: list[Reader] | None, keep_output: bool = True) -> Iterator[Columns]:
        """Skeleton rows through `weaver` until the cut or the skeleton's end; yields full output buffers.

        Returns (as the generator's value) the last buffer and the rows in it.
        Without `sizes` every size is 1 and without victim/growth readers
        their uniforms are 0 (a counting pass: neither changes a row count).
        """
        out, at = _buffer(out_rows), 0
        while True:
            if weaver.needs_rows:
                if run.done == run.n_rows:
                    weaver.finish()
                    break
                is_free, slot, thread = run.next(self.work_rows)
                weaver.reserve(run.slots.n_used)
                n_alloc = is_free.size - int(np.count_nonzero(is_free))
                size = sizes.read(n_alloc) if sizes is not None else np.ones(n_alloc, np.int64)
                u_realloc = u_pick = u_grow = _NONE
                if realloc is not None:
                    u_realloc = realloc[0].read(is_free.size)
                    k = int(np.count_nonzero(u_realloc < self.rate))
                    u_pick, u_grow = (reader.read(k) if keep_output else np.zeros(k) for reader in realloc[1:])
                weaver.feed(is_free, slot, thread, size, u_realloc, u_pick, u_grow)
            at, reason = weaver.emit(out, at)
            if reason == FULL:
                if keep_output:
                    yield out
                    out = _buffer(out_rows)
                at = 0
            elif reason == CUT:
                break
        return out, at

    def decide(self) -> tuple[int, int]:
        """(rows kept, objects live after them) as the cut finds them: a pass that writes nothing."""
        weaver = self.setup.weaver()
        realloc = [Reader(DOUBLE, start) for start in self.realloc_starts] if self.realloc_starts else None
        for _ in self.weave(weaver, self.skeleton.open(), self.work_rows, None, realloc, keep_output=False):
            pass
        return weaver.rows_before_touch_rule

    def final_state(self, run: SkeletonRun, sizes: SizeStream) -> State:
        """The Generator's state after every draw before the drain's."""
        if self.final is not None:
            return self.final
        n_ids = self.n_ids
        if n_ids is None:  # the skeleton past the cut: its ALLOC rows drew sizes too
            while run.done < run.n_rows:
                run.next(self.work_rows)
            n_ids = run.n_alloc
        return sizes.end(n_ids)


_NONE = np.empty(0)


def _buffer(rows: int) -> Columns:
    return tuple(np.empty(rows, dtype) for _, dtype in COLUMNS)  # type: ignore[return-value]


def _plan(setup: _Setup, work_rows: int) -> _Plan:
    """The attempt the in-memory generator would keep (regenerating once, longer, if the skeleton is short)."""
    skeleton_rows = _skeleton_rows(setup.n_ops, setup.access, setup.realloc_fraction)
    plan = _Plan(setup, skeleton_rows, work_rows)
    if skeleton_rows != setup.n_ops:  # ACCESS/REALLOC rows: the length was estimated
        keep, n_live = plan.decide()
        if keep + n_live < setup.n_ops - 1:
            skeleton_rows = int(skeleton_rows * (setup.n_ops / max(keep + n_live, 1)) * 1.05) + 1024
            plan = _Plan(setup, skeleton_rows, work_rows)
    return plan


def _rows(setup: _Setup, chunk_rows: int) -> Iterator[Columns]:
    chunk_rows = min(chunk_rows, max(setup.n_ops, 1))  # a trace never has more than n_ops rows
    plan = _plan(setup, min(chunk_rows, WORK_ROWS))
    run = plan.skeleton.open()
    sizes = SizeStream(setup.sizes, plan.skeleton.end, plan.n_ids)
    realloc = [Reader(DOUBLE, start) for start in plan.realloc_starts] if plan.realloc_starts else None
    weaver = setup.weaver()
    out, at = yield from plan.weave(weaver, run, chunk_rows, sizes, realloc)
    if setup.drain and weaver.n_live:
        keys = weaver.survivors()  # oldest first; the permutation depends only on how many there are
        order = setup.lifetime.drain_order
        rng = None
        if order == "random" or setup.threads.drain_draws:
            rng = generator_at(plan.final_state(run, sizes))
        if order == "newest":
            keys = keys[::-1]
        elif order == "random":
            assert rng is not None
            keys = rng.permutation(keys)
        survivors, owners = split_survivors(keys)
        threads = setup.threads.drain_threads(rng, owners)  # type: ignore[arg-type]
        done = 0
        while done < survivors.size:
            if at == chunk_rows:
                yield out
                out, at = _buffer(chunk_rows), 0
            take = min(survivors.size - done, chunk_rows - at)
            out[0][at:at + take] = OP_FREE
            out[1][at:at + take] = survivors[done:done + take]
            out[2][at:at + take] = 0
            out[3][at:at + take] = threads[done:done + take]
            at += take
            done += take
    if at:
        yield tuple(column[:at] for column in out)  # type: ignore[misc]


class GeneratedChunks:
    """A generated trace in chunks: `meta` up front; iterating (once) yields (op, obj, size, thread) tuples.

    Each chunk has 1..chunk_rows rows; their concatenation is `generate()`'s
    trace with the same arguments, bit for bit.
    """

    def __init__(self, setup: _Setup, chunk_rows: int) -> None:
        self.meta = setup.meta
        self.chunk_rows = chunk_rows
        self._setup = setup
        self._started = False

    def __iter__(self) -> Iterator[Columns]:
        if self._started:
            raise RuntimeError("a GeneratedChunks can be iterated only once")
        self._started = True
        return _rows(self._setup, self.chunk_rows)


def generate_chunks(sizes: SizeDistribution | None = None, lifetime: LifetimeModel | None = None,
                    threads: ThreadModel | int = 1, n_ops: int = 200_000, seed: int = 0, access: Access | None = None,
                    realloc_fraction: float = 0.0, realloc_growth: tuple[float, float] = (1.5, 2.0),
                    drain: bool = True, extra_meta: dict[str, Any] | None = None,
                    chunk_rows: int = DEFAULT_CHUNK_ROWS) -> GeneratedChunks:
    """`generate()`'s trace as chunks of at most `chunk_rows` rows, in bounded memory (see the module docstring)."""
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1 (got {chunk_rows})")
    setup = _setup(sizes, lifetime, threads, n_ops, seed, access, realloc_fraction, realloc_growth, drain,
                   extra_meta)
    return GeneratedChunks(setup, int(chunk_rows))


def generate(sizes: SizeDistribution | None = None, lifetime: LifetimeModel | None = None,
             threads: ThreadModel | int = 1, n_ops: int = 200_000, seed: int = 0, access: Access | None = None,
             realloc_fraction: float = 0.0, realloc_growth: tuple[float, float] = (1.5, 2.0), drain: bool = True,
             extra_meta: dict[str, Any] | None = None) -> Trace:
    """Build a validated Trace of about `n_ops` rows (see the module docstring for the exact count).

    sizes: a size distribution (default LogNormal()); lifetime: a lifetime model
    (default RandomFrees()); threads: a thread model or a thread count for
    `Independent`; access: optional ACCESS rows; realloc_fraction: share of
    REALLOC rows among ALLOC/FREE/REALLOC rows, each growing a random live
    object by a factor in `realloc_growth`; drain: free every live object at
    the end; extra_meta: merged into meta (e.g. the catalog's workload name).
    """
    setup = _setup(sizes, lifetime, threads, n_ops, seed, access, realloc_fraction, realloc_growth, drain,
                   extra_meta)
    # One chunk as large as the trace can be (it never has more than n_ops rows): the rows are written in place.
    pieces = list(GeneratedChunks(setup, max(setup.n_ops, 1)))
    if not pieces:
        columns = _buffer(0)
    elif len(pieces) == 1:
        columns = pieces[0]
    else:
        columns = tuple(np.concatenate(column) for column in zip(*pieces, strict=True))  # type: ignore[assignment]
    return Trace(*columns, meta=setup.meta)
