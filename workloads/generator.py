"""`generate()`: compose sizes x lifetimes x threads x access (+ realloc) into one validated Trace.

Steps, each vectorized numpy or one `@njit(cache=True)` pass:
1. the thread model asks the lifetime model for the ALLOC/FREE skeleton
   (`is_free`, `obj`, `thread`);
2. object ids are renumbered in global allocation order (the k-th ALLOC row
   of the trace allocates object k), so ids are dense and deterministic;
3. one size per object from the size distribution;
4. ACCESS and REALLOC rows are woven in (`workloads.access.weave`);
5. the trace is cut to `n_ops` rows: with `drain=True` it is cut where
   rows so far + objects still live <= n_ops, and one FREE per live object
   is appended (in the lifetime model's `drain_order`, on the thread the
   thread model chooses), so every object is freed by the end.

`n_ops` counts every row, drain included.  It is exact without drain; with
drain the trace has n_ops or n_ops - 1 rows (an ALLOC adds a row and a live
object at once), and with touch-on-allocation one row fewer may be cut so
that an ALLOC keeps its ACCESS.  With ACCESS/REALLOC rows the skeleton length is estimated
from the expected expansion; in the rare case that falls short the skeleton
is regenerated, longer, from the same seed, and if even that is short the
trace is shorter than n_ops.

Determinism: one `numpy.random.Generator(PCG64(seed))` drives everything, in
a fixed order; no global RNG, no set/dict iteration order dependence.  The
same arguments give the same arrays bit for bit.  `meta` records the
generator, every parameter and the seed (JSON-able).
"""

from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.access import Access, weave
from workloads.lifetimes import LifetimeModel, RandomFrees
from workloads.sizes import LogNormal, SizeDistribution
from workloads.threads import Independent, ThreadModel
from workloads.trace import OP_ALLOC, OP_FREE, Trace

holds_kernels(__file__)

GENERATOR_NAME = "workloads.generate"
GENERATOR_VERSION = 1
#: Largest n_ops accepted (1e9 rows; a trace row costs 21 bytes, intermediates a few times that).
MAX_OPS = 1_000_000_000

DRAIN_ORDERS = ("oldest", "newest", "random")


@njit(cache=True)
def _renumber_kernel(is_free, obj, n_ids):
    """Give ids in allocation order: the k-th ALLOC row gets id k; FREE rows follow their object."""
    new_id = np.empty(n_ids, np.int64)
    out = np.empty(obj.shape[0], np.int64)
    next_id = 0
    for row in range(obj.shape[0]):
        if is_free[row]:
            out[row] = new_id[obj[row]]
        else:
            new_id[obj[row]] = next_id
            out[row] = next_id
            next_id += 1
    return out


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _skeleton_rows(n_ops: int, access: Access, realloc_fraction: float) -> int:
    if not access.enabled and realloc_fraction <= 0:
        return n_ops
    expansion = (1.0 + access.rows_per_skeleton_row()) / (1.0 - realloc_fraction)
    return int(np.ceil(n_ops / expansion * 1.01)) + 256


def _cut(op: np.ndarray, n_ops: int, drain: bool) -> tuple[int, int]:
    """Rows to keep (and objects live after them) so that kept rows (+ drain FREEs) fit in n_ops."""
    if not drain:
        return min(n_ops, op.size), 0
    change = np.zeros(op.size, np.int64)
    change[op == OP_ALLOC] = 1
    change[op == OP_FREE] = -1
    live_after = np.cumsum(change)
    total_if_cut = np.arange(1, op.size + 1) + live_after  # non-decreasing: an ALLOC adds 2, FREE 0, others 1
    keep = int(np.searchsorted(total_if_cut, n_ops, side="right"))
    return keep, int(live_after[keep - 1]) if keep else 0


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

    skeleton_rows = _skeleton_rows(n_ops, access, realloc_fraction)
    for _attempt in range(2):
        rng = _rng(seed)
        is_free, obj, thread = thread_model.assemble(rng, lifetime, skeleton_rows)
        n_ids = int(skeleton_rows - np.count_nonzero(is_free))
        if obj.size:
            obj = _renumber_kernel(is_free, obj, int(obj.max()) + 1)
        size_of = sizes.sample(rng, n_ids)
        op, obj, size, thread = weave(rng, is_free, obj, thread, size_of, access, realloc_fraction,
                                      (grow_min, grow_max), sizes.max_size)
        keep, n_live = _cut(op, n_ops, drain)
        if keep + n_live >= n_ops - 1 or skeleton_rows == n_ops:
            break
        # Expansion was overestimated: regenerate a longer skeleton from the same seed.
        skeleton_rows = int(skeleton_rows * (n_ops / max(keep + n_live, 1)) * 1.05) + 1024

    if access.touch and 0 < keep < op.size and op[keep - 1] == OP_ALLOC:
        keep -= 1  # do not separate an ALLOC from its touch
        n_live -= 1 if drain else 0
    op, obj, size, thread = op[:keep], obj[:keep], size[:keep], thread[:keep]
    if drain and n_live:
        alive = np.zeros(n_ids, np.bool_)
        alive[obj[op == OP_ALLOC]] = True
        alive[obj[op == OP_FREE]] = False
        survivors = np.flatnonzero(alive).astype(np.int64)  # oldest first
        if lifetime.drain_order == "newest":
            survivors = survivors[::-1].copy()
        elif lifetime.drain_order == "random":
            survivors = rng.permutation(survivors)
        owner = np.zeros(n_ids, np.int32)
        allocs = op == OP_ALLOC
        owner[obj[allocs]] = thread[allocs]
        op = np.concatenate([op, np.full(survivors.size, OP_FREE, np.int8)])
        obj = np.concatenate([obj, survivors])
        size = np.concatenate([size, np.zeros(survivors.size, np.int64)])
        thread = np.concatenate([thread, thread_model.drain_threads(rng, owner[survivors])])
    else:
        op, obj, size, thread = op.copy(), obj.copy(), size.copy(), thread.copy()

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
    return Trace(op=op, obj=obj, size=size, thread=thread, meta=meta)
