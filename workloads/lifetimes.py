"""Lifetime models: which rows allocate and which live object each FREE releases.

A lifetime model turns a row count into a *schedule* for one stream of
operations: a boolean column `is_free` (False = ALLOC, True = FREE) and an
int64 column `obj`.  Allocations get the ids 0, 1, 2, ... in row order (the
k-th ALLOC row allocates object k); a FREE row names a live object.  Sizes,
threads, ACCESS and REALLOC rows are added later by `workloads.generator`.

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
| `random` | a uniformly random live object (live-id array, swap-remove) | O(1) |
| `exponential` | each object lives ~Exp(mean_lifetime) rows, freed in order of death | O(1) (buckets) |
| `phased` | allocate `batch` objects, then free the whole batch, repeat | O(1) |
| `longlived` | a fraction of the objects is never freed; the rest follow a base model | O(1) |

All random numbers are drawn up front from the numpy Generator in vectorized
calls and handed to `@njit(cache=True)` loops, so a schedule is a pure
function of the Generator's state.  `drain_order` tells the generator in
which order to free what is still live at the end when draining: `oldest`
(allocation order), `newest` (reverse) or `random`.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.sizes import json_value

holds_kernels(__file__)


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


class LifetimeModel:
    """Base class: subclasses are frozen dataclasses with a `name`, `drain_order` and `schedule()`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    drain_order: ClassVar[str] = "oldest"

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            described[item.name] = json_value(getattr(self, item.name))
        return described


# --------------------------------------------------------------------------- Ehrenfest walk models
@njit(cache=True)
def _lifo_kernel(u_step, live_target):
    n = u_step.shape[0]
    is_free = np.empty(n, np.bool_)
    obj = np.empty(n, np.int64)
    stack = np.empty(min(n, 2 * live_target) + 1, np.int64)
    depth = 0
    next_id = 0
    for row in range(n):
        if u_step[row] * (2 * live_target) + depth < 2 * live_target:
            is_free[row] = False
            obj[row] = next_id
            stack[depth] = next_id
            depth += 1
            next_id += 1
        else:
            depth -= 1
            is_free[row] = True
            obj[row] = stack[depth]
    return is_free, obj


@njit(cache=True)
def _fifo_kernel(u_step, live_target):
    n = u_step.shape[0]
    is_free = np.empty(n, np.bool_)
    obj = np.empty(n, np.int64)
    oldest = 0  # ids are allocated in order and freed in order: live ids are oldest..next_id-1
    next_id = 0
    for row in range(n):
        if u_step[row] * (2 * live_target) + (next_id - oldest) < 2 * live_target:
            is_free[row] = False
            obj[row] = next_id
            next_id += 1
        else:
            is_free[row] = True
            obj[row] = oldest
            oldest += 1
    return is_free, obj


@njit(cache=True)
def _random_kernel(u_step, u_pick, live_target):
    n = u_step.shape[0]
    is_free = np.empty(n, np.bool_)
    obj = np.empty(n, np.int64)
    live = np.empty(min(n, 2 * live_target) + 1, np.int64)
    n_live = 0
    next_id = 0
    for row in range(n):
        if u_step[row] * (2 * live_target) + n_live < 2 * live_target:
            is_free[row] = False
            obj[row] = next_id
            live[n_live] = next_id
            n_live += 1
            next_id += 1
        else:
            slot = min(np.int64(u_pick[row] * n_live), n_live - 1)
            is_free[row] = True
            obj[row] = live[slot]
            n_live -= 1
            live[slot] = live[n_live]  # swap-remove
    return is_free, obj


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

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        return Schedule(*_lifo_kernel(rng.random(n_rows), self.live))


@dataclass(frozen=True)
class Fifo(LifetimeModel):
    """Queue discipline: every FREE releases the oldest live object."""

    name: ClassVar[str] = "fifo"
    summary: ClassVar[str] = "queue: free the oldest live object (working set ~live)"
    drain_order: ClassVar[str] = "oldest"
    live: int = 1000

    def __post_init__(self) -> None:
        _check_live(self.live)

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        return Schedule(*_fifo_kernel(rng.random(n_rows), self.live))


@dataclass(frozen=True)
class RandomFrees(LifetimeModel):
    """Every FREE releases a uniformly random live object; the working set stays around `live`."""

    name: ClassVar[str] = "random"
    summary: ClassVar[str] = "free a uniformly random live object (working set ~live)"
    drain_order: ClassVar[str] = "random"
    live: int = 10_000

    def __post_init__(self) -> None:
        _check_live(self.live)

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        u_step = rng.random(n_rows)
        u_pick = rng.random(n_rows)
        return Schedule(*_random_kernel(u_step, u_pick, self.live))


# --------------------------------------------------------------------------- exponential lifetimes
@njit(cache=True)
def _exponential_kernel(lifetimes):
    """Row t: if some object's death row has come, free the one that died first; else allocate.

    Death rows are bucketed (a counting sort of death times: `bucket_head[row]`
    is a linked list through `next_in_bucket`); when row t starts, bucket t
    moves to the back of the `due` queue, and FREE rows drain that queue in
    order, so an object is freed at its death row or as soon after as the
    rows allow.  Objects whose death row lies past the end stay live.
    """
    n = lifetimes.shape[0]
    is_free = np.empty(n, np.bool_)
    obj = np.empty(n, np.int64)
    bucket_head = np.full(n + 1, -1, np.int64)
    bucket_tail = np.full(n + 1, -1, np.int64)
    next_in_bucket = np.empty(n, np.int64)
    due = np.empty(n, np.int64)
    due_head = 0
    due_tail = 0
    next_id = 0
    for row in range(n):
        ident = bucket_head[row]
        while ident >= 0:
            due[due_tail] = ident
            due_tail += 1
            ident = next_in_bucket[ident]
        if due_head < due_tail:
            is_free[row] = True
            obj[row] = due[due_head]
            due_head += 1
        else:
            is_free[row] = False
            obj[row] = next_id
            death = row + 1 + np.int64(min(lifetimes[next_id], 1e15))
            if death < n:
                next_in_bucket[next_id] = -1
                if bucket_head[death] < 0:
                    bucket_head[death] = next_id
                else:
                    next_in_bucket[bucket_tail[death]] = next_id
                bucket_tail[death] = next_id
            next_id += 1
    return is_free, obj


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

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        return Schedule(*_exponential_kernel(rng.exponential(self.mean_lifetime, n_rows)))


# --------------------------------------------------------------------------- phases
PHASE_ORDERS = ("fifo", "lifo", "random", "halves")


@njit(cache=True)
def _phased_kernel(n, batch, order_code, u_shuffle):
    is_free = np.empty(n, np.bool_)
    obj = np.empty(n, np.int64)
    perm = np.empty(batch, np.int64)
    half = batch // 2
    for row in range(n):
        phase, step = divmod(row, 2 * batch)
        first = phase * batch
        if step < batch:
            is_free[row] = False
            obj[row] = first + step
            continue
        k = step - batch
        if k == 0 and order_code == 2:
            for i in range(batch):
                perm[i] = i
            for i in range(batch - 1, 0, -1):  # Fisher-Yates with pre-drawn uniforms
                j = min(np.int64(u_shuffle[first + i] * (i + 1)), i)
                perm[i], perm[j] = perm[j], perm[i]
        is_free[row] = True
        if order_code == 0:
            obj[row] = first + k
        elif order_code == 1:
            obj[row] = first + batch - 1 - k
        elif order_code == 2:
            obj[row] = first + perm[k]
        else:  # halves: first half oldest-first, then the second half newest-first
            obj[row] = first + k if k < half else first + batch - 1 - (k - half)
    return is_free, obj


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

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        code = PHASE_ORDERS.index(self.order)
        u_shuffle = rng.random(n_rows // 2 + self.batch) if code == 2 else np.empty(0)
        return Schedule(*_phased_kernel(n_rows, self.batch, code, u_shuffle))


# --------------------------------------------------------------------------- long-lived fraction
@dataclass(frozen=True)
class LongLived(LifetimeModel):
    """A fraction `long_fraction` of all allocations is never freed (drained at the end only); the rest follow `base`.

    The base schedule is generated first; ALLOC rows of long-lived objects are
    then inserted at Bernoulli-chosen rows, at a rate that makes them about
    `long_fraction` of all ALLOC rows, and ids are renumbered in allocation order.
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

    def schedule(self, rng: np.random.Generator, n_rows: int) -> Schedule:
        base = self.base.schedule(rng, n_rows)
        if n_rows == 0:
            return Schedule(base.is_free, base.obj, np.empty(0, np.int64))
        alloc_share = base.n_alloc / n_rows
        p = self.long_fraction
        rate = 1.0 if p >= 1.0 else p * alloc_share / (1.0 - p + p * alloc_share)
        is_long = rng.random(n_rows) < rate
        keep = ~is_long
        n_base = int(np.count_nonzero(keep))
        base_free = base.is_free[:n_base]
        is_free = np.zeros(n_rows, np.bool_)
        is_free[keep] = base_free
        rank = np.cumsum(~is_free) - 1  # allocation rank of each ALLOC row
        obj = np.empty(n_rows, np.int64)
        obj[~is_free] = rank[~is_free]
        new_id_of_base = rank[keep][~base_free]  # the k-th base allocation's new id
        obj[is_free] = new_id_of_base[base.obj[:n_base][base_free]]
        return Schedule(is_free, obj, rank[is_long].astype(np.int64))


LIFETIME_MODELS: dict[str, type[LifetimeModel]] = {
    cls.name: cls for cls in (Lifo, Fifo, RandomFrees, ExponentialLifetimes, Phased, LongLived)
}
