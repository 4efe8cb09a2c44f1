"""Lifetime models: which rows allocate and which live object each FREE releases.

A lifetime model decides, for one stream of operations, whether each row is an
ALLOC or a FREE and which live object a FREE releases.  Sizes, threads, ACCESS
and REALLOC rows are added later by `workloads.generator`.

Steady-state models (LIFO, FIFO, random) decide ALLOC or FREE with the
Ehrenfest urn: with `n` objects live, the next row allocates with probability
1 - n / (2 * live).  The working set climbs from 0 towards `live` (it is at
95 % after about 3 * live rows) and then fluctuates around `live` with a
standard deviation of sqrt(live / 2); it never exceeds 2 * live.  The models
differ only in which object a FREE releases:

| model | FREE releases | per row |
|---|---|---|
| `lifo` | the most recently allocated live object (a stack) | O(1) |
| `fifo` | the oldest live object (a queue) | O(1) |
| `random` | a uniformly random live object (live array, swap-remove) | O(1) |
| `exponential` | each object lives ~Exp(mean_lifetime) rows, freed in order of death | O(log live) (heap) |
| `phased` | allocate `batch` objects, then free the whole batch, repeat | O(1) |
| `longlived` | a fraction of the objects is never freed; the rest follow a base model | O(1) + base |

Randomness.  A model's schedule of `n` rows is a pure function of the numpy
Generator's state: `parts(n)` lists the bulk calls it makes, in order (e.g.
`random`: n step uniforms, then n pick uniforms), each a sub-stream
(`workloads.substreams`).  Streaming: `open(rows, starts)` returns the
model's `LifetimeStreams`, the resumable state of `len(rows)` independent
streams (one per thread), stream s being `rows[s]` rows long with its
sub-streams starting at `starts[s]`.  `run(labels, is_long, slots, ...)` then
produces any chunk of rows (row r belongs to stream `labels[r]`), reading each
stream's sub-streams chunk by chunk, through the kernels of
`workloads.lifetime_kernels`; live objects are slots of a shared `SlotStack`.
The state kept is bounded by the streams' live objects, never by their length.

`schedule(rng, n)` is the in-memory form (one stream, ids in allocation
order, rng left where the bulk calls would leave it), for tests and tools.
`drain_order` tells the generator in which order to free what is still live
at the end when draining: `oldest` (allocation order), `newest` (reverse) or
`random`.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads import lifetime_kernels as kernels
from workloads.sizes import json_value
from workloads.substreams import DOUBLE, Part, Reader, State, lay_out

#: Rows per kernel call in the in-memory helpers and pre-passes.
WORK_ROWS = 1 << 16


@dataclass
class Schedule:
    """One stream of ALLOC/FREE rows. ALLOC rows allocate ids 0, 1, 2, ... in order."""

    is_free: np.ndarray  # bool, one per row
    obj: np.ndarray  # int64, one per row
    #: ids of the objects that are never freed (LongLived only), else None
    long_lived: np.ndarray | None = None

    @property
    def n_alloc(self) -> int:
        return int(self.is_free.size - np.count_nonzero(self.is_free))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class SlotStack:
    """Slots of live objects: the most recently released slot is reused first, else the next unused one."""

    def __init__(self) -> None:
        self.free = np.empty(1024, np.int64)
        self.counts = np.zeros(2, np.int64)  # [released slots on the stack, slots ever used]

    @property
    def n_used(self) -> int:
        return int(self.counts[1])

    def reserve(self, rows: int) -> None:
        """Room for a chunk of `rows` rows (each may take a new slot or release one)."""
        need = self.n_used + rows
        if need > self.free.size:
            grown = np.empty(max(2 * self.free.size, need), np.int64)
            grown[: self.counts[0]] = self.free[: self.counts[0]]
            self.free = grown


def _grow_pool(pool: np.ndarray, n_streams: int, cap: int, new_cap: int,
               head: np.ndarray | None = None, n_live: np.ndarray | None = None) -> np.ndarray:
    """A pool with `new_cap` entries per stream; a ring (`head` given) is unrolled to start at 0."""
    grown = np.empty(n_streams * new_cap, pool.dtype)
    for stream in range(n_streams):
        old = pool[stream * cap:(stream + 1) * cap]
        if head is not None and n_live is not None:
            old = np.roll(old, -int(head[stream]))[: int(n_live[stream])]
            head[stream] = 0
        grown[stream * new_cap: stream * new_cap + old.size] = old
    return grown


class LifetimeStreams:
    """Resumable state of one lifetime model over independent streams; see the module docstring."""

    def __init__(self, rows: np.ndarray, readers: list[list[Reader]]) -> None:
        self.rows = np.asarray(rows, np.int64)
        self.n_streams = int(self.rows.size)
        self.readers = readers  # readers[s][i]: stream s's sub-stream i

    def run(self, labels: np.ndarray, is_long: np.ndarray | None, slots: SlotStack, out_free: np.ndarray,
            out_slot: np.ndarray) -> None:
        """Fill `out_free`/`out_slot` for the next rows; `labels` (int32) names each row's stream."""
        raise NotImplementedError

    def long_rows(self) -> np.ndarray | None:
        """Which rows of the last chunk allocated never-freed objects (LongLived only)."""
        return None

    def _counts(self, labels: np.ndarray, is_long: np.ndarray | None) -> np.ndarray:
        """Base rows per stream in this chunk."""
        rows = labels if is_long is None else labels[~is_long]
        if self.n_streams == 1:
            return np.array([rows.size], np.int64)
        return np.bincount(rows, minlength=self.n_streams).astype(np.int64)

    def _gather(self, part: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next counts[s] values of every stream's sub-stream `part`, grouped by stream, and the offsets."""
        if self.n_streams == 1:
            return self.readers[0][part].read(int(counts[0])), np.zeros(1, np.int64)
        pieces = [self.readers[s][part].read(int(count)) if count else np.empty(0)
                  for s, count in enumerate(counts.tolist())]
        offsets = np.zeros(self.n_streams, np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        return np.concatenate(pieces), offsets


_NO_LONG = np.empty(0, np.bool_)


class LifetimeModel:
    """Base class: subclasses are frozen dataclasses with a `name`, `drain_order`, `parts()` and `open()`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    drain_order: ClassVar[str] = "oldest"

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        """The bulk draws of a schedule of `n_rows` rows, in order: (kind, count)."""
        raise NotImplementedError

    def prepare(self, rows: np.ndarray, starts: list[list[State]]) -> Any:
        """What `open` needs from a pre-pass over the streams (computed once per plan; LongLived: rates)."""
        return None

    def open(self, rows: np.ndarray, starts: list[list[State]], prepared: Any = None) -> LifetimeStreams:
        """Streams of rows[s] rows each, stream s's sub-streams (`parts(rows[s])`) starting at starts[s]."""
        raise NotImplementedError

    def _readers(self, rows: np.ndarray, starts: list[list[State]]) -> list[list[Reader]]:
        return [[Reader(part, start) for (part, _), start in zip(self.parts(int(n)), stream, strict=True)]
                for n, stream in zip(rows.tolist(), starts, strict=True)]

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        """One stream of `n_rows` rows, in memory; `rng` ends where the bulk draws leave it."""
        starts, end = lay_out(rng.bit_generator.state, self.parts(n_rows))
        streams = self.open(np.array([n_rows], np.int64), [starts])
        slots = SlotStack()
        is_free = np.empty(n_rows, np.bool_)
        slot = np.empty(n_rows, np.int64)
        long_rows = []
        labels = np.zeros(min(n_rows, WORK_ROWS), np.int32)
        for first in range(0, n_rows, WORK_ROWS):
            count = min(WORK_ROWS, n_rows - first)
            slots.reserve(count)
            streams.run(labels[:count], None, slots, is_free[first:first + count], slot[first:first + count])
            marked = streams.long_rows()
            if marked is not None:
                long_rows.append(np.flatnonzero(marked) + first)
        rng.bit_generator.state = end
        obj = kernels.ids_of_slots(is_free, slot, slots.n_used)
        long_lived = None
        if isinstance(self, LongLived):
            rows = np.concatenate(long_rows) if long_rows else np.empty(0, np.int64)
            long_lived = obj[rows].astype(np.int64)
        return Schedule(is_free, obj, long_lived)

    def params(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            described[item.name] = json_value(getattr(self, item.name))
        return described


# --------------------------------------------------------------------------- Ehrenfest walk models
class _WalkStreams(LifetimeStreams):
    """LIFO stacks, FIFO rings or random-pick arrays of slots, one per stream."""

    def __init__(self, kind: int, live: int, rows: np.ndarray, readers: list[list[Reader]]) -> None:
        super().__init__(rows, readers)
        self.kind, self.live = kind, live
        self.cap = 1
        self.pool = np.empty(self.n_streams, np.int64)
        self.n_live = np.zeros(self.n_streams, np.int64)
        self.head = np.zeros(self.n_streams, np.int64)

    def run(self, labels, is_long, slots, out_free, out_slot):
        counts = self._counts(labels, is_long)
        need = int(min(2 * self.live, int((self.n_live + counts).max())))
        if need > self.cap:
            new_cap = min(max(2 * self.cap, need), 2 * self.live)
            self.pool = _grow_pool(self.pool, self.n_streams, self.cap, new_cap,
                                   self.head if self.kind == 1 else None, self.n_live)
            self.cap = new_cap
        u_step, offsets = self._gather(0, counts)
        u_pick = self._gather(1, counts)[0] if self.kind == 2 else u_step
        kernels.walk_run(self.kind, labels, _NO_LONG if is_long is None else is_long, u_step, u_pick, offsets,
                         self.pool, self.n_live, self.head, self.cap, self.live, slots.free, slots.counts, out_free,
                         out_slot)


def _check_live(live: int) -> None:
    _check(isinstance(live, int) and 1 <= live <= 1 << 30, f"live must be an integer in 1..2^30 (got {live})")


@dataclass(frozen=True)
class Lifo(LifetimeModel):
    """Stack discipline: every FREE releases the most recently allocated live object."""

    name: ClassVar[str] = "lifo"
    summary: ClassVar[str] = "stack: free the newest live object (working set ~live)"
    drain_order: ClassVar[str] = "newest"
    live: int = 1000

    def __post_init__(self) -> None:
        _check_live(self.live)

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        return [(DOUBLE, n_rows)]

    def open(self, rows, starts, prepared=None):
        return _WalkStreams(0, self.live, rows, self._readers(rows, starts))


@dataclass(frozen=True)
class Fifo(LifetimeModel):
    """Queue discipline: every FREE releases the oldest live object."""

    name: ClassVar[str] = "fifo"
    summary: ClassVar[str] = "queue: free the oldest live object (working set ~live)"
    drain_order: ClassVar[str] = "oldest"
    live: int = 1000

    def __post_init__(self) -> None:
        _check_live(self.live)

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        return [(DOUBLE, n_rows)]

    def open(self, rows, starts, prepared=None):
        return _WalkStreams(1, self.live, rows, self._readers(rows, starts))


@dataclass(frozen=True)
class RandomFrees(LifetimeModel):
    """Every FREE releases a uniformly random live object; the working set stays around `live`."""

    name: ClassVar[str] = "random"
    summary: ClassVar[str] = "free a uniformly random live object (working set ~live)"
    drain_order: ClassVar[str] = "random"
    live: int = 10_000

    def __post_init__(self) -> None:
        _check_live(self.live)

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        return [(DOUBLE, n_rows), (DOUBLE, n_rows)]  # step uniforms, then pick uniforms

    def open(self, rows, starts, prepared=None):
        return _WalkStreams(2, self.live, rows, self._readers(rows, starts))


# --------------------------------------------------------------------------- exponential lifetimes
class _ExponentialStreams(LifetimeStreams):
    """Per stream a min-heap of (death row, allocation order, slot) and the unused drawn lifetimes."""

    #: Bits of a packed heap key (death row and allocation serial, each below 2^(KEY_BITS // 2)).
    KEY_BITS = 62

    def __init__(self, rows: np.ndarray, readers: list[list[Reader]]) -> None:
        super().__init__(rows, readers)
        self.cap = 1
        self.key = np.empty(self.n_streams, np.int64)
        self.tie = np.empty(self.n_streams, np.int64)
        self.heap_slot = np.empty(self.n_streams, np.int64)
        # Pack (death row, allocation serial) into one key when both are below 2^shift (rows < 2^31).
        bits = max(1, int(self.rows.sum()).bit_length())
        self.shift = bits if 2 * bits <= self.KEY_BITS else 0
        self.size = np.zeros(self.n_streams, np.int64)
        self.row_of = np.zeros(self.n_streams, np.int64)
        self.serial = np.zeros(1, np.int64)
        self.spare = [np.empty(0) for _ in range(self.n_streams)]  # lifetimes drawn, not used yet

    def run(self, labels, is_long, slots, out_free, out_slot):
        counts = self._counts(labels, is_long)
        need = int((self.size + counts).max())
        if need > self.cap:
            new_cap = max(2 * self.cap, need)
            self.key, self.tie, self.heap_slot = (_grow_pool(pool, self.n_streams, self.cap, new_cap)
                                                  for pool in (self.key, self.tie, self.heap_slot))
            self.cap = new_cap
        # Every stream gets at least one lifetime per row of the chunk (an ALLOC uses one).
        pieces = []
        for stream, count in enumerate(counts.tolist()):
            spare = self.spare[stream]
            if count > spare.size:
                spare = np.concatenate([spare, self.readers[stream][0].read(count - spare.size)])
            pieces.append(spare)
        sizes = np.array([piece.size for piece in pieces], np.int64)
        offsets = np.zeros(self.n_streams, np.int64)
        np.cumsum(sizes[:-1], out=offsets[1:])
        flat = pieces[0] if self.n_streams == 1 else np.concatenate(pieces)
        used = np.zeros(self.n_streams, np.int64)
        kernels.exponential_run(labels, _NO_LONG if is_long is None else is_long, flat, offsets, used, self.row_of,
                                self.rows, self.key, self.tie, self.heap_slot, self.size, self.cap, self.serial,
                                self.shift, slots.free, slots.counts, out_free, out_slot)
        self.spare = [piece[taken:] for piece, taken in zip(pieces, used.tolist(), strict=True)]


@dataclass(frozen=True)
class ExponentialLifetimes(LifetimeModel):
    """Each object lives 1 + floor(Exp(mean_lifetime)) rows, then is freed (in order of death).

    Half the rows allocate in steady state, so about mean_lifetime / 2
    objects are live (Little's law).  Freeing order follows death times.
    """

    name: ClassVar[str] = "exponential"
    summary: ClassVar[str] = "each object lives ~Exp(mean_lifetime) rows (working set ~mean_lifetime/2)"
    drain_order: ClassVar[str] = "oldest"
    mean_lifetime: float = 2000.0

    def __post_init__(self) -> None:
        _check(1.0 <= self.mean_lifetime <= 1e12, f"mean_lifetime must be in 1..1e12 (got {self.mean_lifetime})")

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        mean = self.mean_lifetime
        return [(Part(lambda generator, count: generator.exponential(mean, count)), n_rows)]

    def open(self, rows, starts, prepared=None):
        return _ExponentialStreams(rows, self._readers(rows, starts))


# --------------------------------------------------------------------------- phases
PHASE_ORDERS = ("fifo", "lifo", "random", "halves")


class _PhasedStreams(LifetimeStreams):
    """Per stream its position in the phase cycle, the slots of the current batch and (random) the shuffle."""

    def __init__(self, batch: int, order_code: int, rows: np.ndarray, readers: list[list[Reader]]) -> None:
        super().__init__(rows, readers)
        self.batch, self.code = batch, order_code
        self.cap = max(1, min(batch, int(self.rows.max(initial=0))))
        self.batch_slots = np.empty(self.n_streams * self.cap, np.int64)
        self.perm = np.empty(self.n_streams * self.cap if order_code == 2 else 0, np.int64)
        self.row_of = np.zeros(self.n_streams, np.int64)

    def _shuffles_before(self, rows: np.ndarray) -> np.ndarray:
        """Phases whose first FREE row (p * 2 * batch + batch) comes before row `rows` of a stream."""
        batch = self.batch
        return np.where(rows > batch, (rows - batch - 1) // (2 * batch) + 1, 0)

    def run(self, labels, is_long, slots, out_free, out_slot):
        if self.code == 2:
            counts = self._counts(labels, is_long)
            shuffles = self._shuffles_before(self.row_of + counts) - self._shuffles_before(self.row_of)
            u_shuffle, offsets = self._gather(0, shuffles * self.batch)
        else:
            u_shuffle, offsets = np.empty(0), np.zeros(self.n_streams, np.int64)
        kernels.phased_run(labels, _NO_LONG if is_long is None else is_long, self.batch, self.code, u_shuffle,
                           offsets, self.row_of, self.batch_slots, self.perm, self.cap, slots.free, slots.counts,
                           out_free, out_slot)


@dataclass(frozen=True)
class Phased(LifetimeModel):
    """Allocate `batch` objects, then free the whole batch; repeat.

    `order` is the order of the frees inside a batch: `fifo` (oldest first),
    `lifo`, `random`, or `halves` (first half oldest-first, then the second
    half newest-first, as glibc's bench-malloc-simple does).
    """

    name: ClassVar[str] = "phased"
    summary: ClassVar[str] = "allocate a batch, then free the whole batch; repeat"
    batch: int = 1000
    order: str = "fifo"

    @property
    def drain_order(self) -> str:  # type: ignore[override]
        return {"fifo": "oldest", "lifo": "newest", "random": "random", "halves": "oldest"}[self.order]

    def __post_init__(self) -> None:
        _check(isinstance(self.batch, int) and 1 <= self.batch <= 1 << 30,
               f"batch must be an integer in 1..2^30 (got {self.batch})")
        _check(self.order in PHASE_ORDERS, f"order must be one of {', '.join(PHASE_ORDERS)} (got '{self.order}')")

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        # The bulk form drew n//2 + batch shuffle uniforms (more than it reads) for the random order.
        return [(DOUBLE, n_rows // 2 + self.batch)] if self.order == "random" else []

    def open(self, rows, starts, prepared=None):
        return _PhasedStreams(self.batch, PHASE_ORDERS.index(self.order), rows, self._readers(rows, starts))


# --------------------------------------------------------------------------- long-lived fraction
class _LongLivedStreams(LifetimeStreams):
    """Per stream Bernoulli long-lived rows (the rate set by the base's ALLOC share); the base does the rest."""

    def __init__(self, base: LifetimeStreams, rates: np.ndarray, rows: np.ndarray, readers: list[Reader]) -> None:
        super().__init__(rows, [[reader] for reader in readers])
        self.base, self.rates = base, rates
        self.last_long: np.ndarray | None = None

    def run(self, labels, is_long, slots, out_free, out_slot):
        counts = self._counts(labels, None)
        u_long, offsets = self._gather(0, counts)
        if self.n_streams == 1:
            marked = u_long < float(self.rates[0])
        else:
            marked = kernels.scatter_by_stream(labels, offsets, u_long) < self.rates[labels]
        self.last_long = marked
        self.base.run(labels, marked, slots, out_free, out_slot)

    def long_rows(self) -> np.ndarray | None:
        return self.last_long


@dataclass(frozen=True)
class LongLived(LifetimeModel):
    """A fraction `long_fraction` of all allocations is never freed (drained at the end only); the rest follow `base`.

    The base schedule is drawn first (for all n rows); then each row is
    long-lived with a Bernoulli probability that makes long-lived objects
    about `long_fraction` of all ALLOC rows (it depends on the base's ALLOC
    share over the n rows, found by a counting pre-pass of the base); the
    other rows take the base's rows in order.
    """

    name: ClassVar[str] = "longlived"
    summary: ClassVar[str] = "a fraction of objects is never freed, the rest follow a base model"
    long_fraction: float = 0.05
    base: LifetimeModel = dataclasses.field(default_factory=lambda: RandomFrees())

    def __post_init__(self) -> None:
        _check(0.0 <= self.long_fraction <= 1.0, f"long_fraction must be in 0..1 (got {self.long_fraction})")
        _check(isinstance(self.base, LifetimeModel) and not isinstance(self.base, LongLived),
               "base must be a lifetime model other than longlived")

    @property
    def drain_order(self) -> str:  # type: ignore[override]
        return self.base.drain_order

    def parts(self, n_rows: int) -> list[tuple[Part, int]]:
        return [*self.base.parts(n_rows), (DOUBLE, n_rows)]

    def _rate(self, n_rows: int, starts: list[State]) -> float:
        """The long-lived probability: from the base's ALLOC count over all `n_rows` rows (a pre-pass)."""
        if n_rows == 0:
            return 0.0
        p = self.long_fraction
        if p >= 1.0:
            return 1.0
        base = self.base.open(np.array([n_rows], np.int64), [starts])
        slots = SlotStack()
        labels = np.zeros(min(n_rows, WORK_ROWS), np.int32)
        is_free = np.empty(labels.size, np.bool_)
        slot = np.empty(labels.size, np.int64)
        n_alloc = 0
        for first in range(0, n_rows, WORK_ROWS):
            count = min(WORK_ROWS, n_rows - first)
            slots.reserve(count)
            base.run(labels[:count], None, slots, is_free[:count], slot[:count])
            n_alloc += count - int(np.count_nonzero(is_free[:count]))
        alloc_share = n_alloc / n_rows
        return p * alloc_share / (1.0 - p + p * alloc_share)

    def prepare(self, rows, starts):
        n_base = len(self.base.parts(0))
        return np.array([self._rate(int(n), stream[:n_base]) for n, stream in zip(rows.tolist(), starts,
                                                                                    strict=True)])

    def open(self, rows, starts, prepared=None):
        n_base = len(self.base.parts(0))
        rates = self.prepare(rows, starts) if prepared is None else prepared
        base = self.base.open(rows, [stream[:n_base] for stream in starts])
        return _LongLivedStreams(base, rates, rows, [Reader(DOUBLE, stream[n_base]) for stream in starts])


LIFETIME_MODELS: dict[str, type[LifetimeModel]] = {
    cls.name: cls for cls in (Lifo, Fifo, RandomFrees, ExponentialLifetimes, Phased, LongLived)
}
