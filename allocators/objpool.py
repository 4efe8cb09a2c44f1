"""objpool: a sync.Pool-like object pool in front of any other registered allocator.

Design.  Go programs keep freed objects of one type in a `sync.Pool` and take
them back instead of allocating.  Here a pool of pools sits in front of an
*inner* allocator (parameter `inner`: any registered allocator's spec string,
`freelist:glibc` by default).  Objects are pooled by size bucket, the request
rounded up to 16 B, for requests up to `max_pooled` bytes (32 KiB by default;
bucket b holds objects of b * 16 bytes).  Larger requests pass straight
through to the inner allocator (`bypasses`).  One bucket plays the role of one
sync.Pool of one type.  `round=pow2` rounds a pooled request up to a power of
two instead (16, 32, 64, ... B; a request whose power of two is above
`max_pooled` bypasses): the tiered buffer pools of Go servers (one sync.Pool
of []byte per power-of-two capacity), which reuse an object for any request
up to its size, at up to 2x internal fragmentation.

Per (thread, bucket) there is one *private slot* (Go's per-P `poolLocal.private`)
and per bucket one *shared list*, a LIFO stack bounded to `shared_limit`
objects (default 256).  Go keeps a shared chain per P and steals from the
other Ps' chains; one global list per bucket stands for all of them, and Go's
chain is unbounded: the bound is this model's knob.

- allocate(size): bucket b = ceil(size / 16) (round=pow2: the next power of two
  of that).  The thread's private slot of b
  if it holds an object (`hits_private`), else the top of b's shared list
  (`hits_shared`), else the victim list of b (below, `hits_victim`), else a
  *miss*: allocate b * 16 bytes from the inner allocator.  O(1) plus the inner
  allocation on a miss.  Granted = the bucket size b * 16 (the pool hands the
  object out as one of its bucket; the inner allocator's own rounding shows in
  its footprint); a bypassed request is granted what the inner allocator grants.
- deallocate(addr): a pooled object goes into the freeing thread's private
  slot of its bucket if that is empty, else onto the shared list if it is below
  `shared_limit`, else it is freed to the inner allocator (`overflows`).  Every
  pooled deallocate counts one `puts`.  O(1) plus the inner free on overflow.
  The hit rate is (hits_private + hits_shared + hits_victim) / (those + misses).
- "GC" (`clear_every` > 0): Go clears every sync.Pool at each garbage
  collection.  The model runs one after every `clear_every` bytes allocated from
  the inner allocator (misses and bypasses; default 4 MiB, Go's minimum heap
  goal), on the thread whose allocation crossed the line.  With `victim=true`
  (default, Go >= 1.13) it models the victim cache: the objects already in the
  victim lists are freed to the inner allocator, then every private slot and
  shared list moves to its bucket's victim list, where an allocation still
  finds it before missing (so an object survives one GC, and is freed at the
  second if nobody took it).  With `victim=false` (Go <= 1.12) every pooled
  object is freed to the inner allocator at once.  A GC costs O(active buckets
  x threads + pooled objects); `clears` counts them.  `clear_every=0`: never.
- free(): every private slot, shared and victim list is emptied and the inner
  allocator's free() releases every block, pooled or live.

Go's victim cache is per P (the previous poolLocal array); here it is one list
per bucket (bounded by shared_limit + threads, all the pool can hold), which
any thread takes from, as Go's getSlow does after its own P's victim slot.

Inner allocators.  `inner` is built through the registry with the pool's
capacity and max_threads.  On a command line, separate the inner allocator's
own parameters with '+' (a ',' ends the pool's parameter):
`objpool:inner=freelist:policy=best+order=lifo,shared_limit=64`.  Rejected
(BadParameter): unknown names, objpool itself, and LIFO-only allocators
(`stack`: the pool frees to it in any order).  An inner allocator without
single frees (`linear`, `region`) still works: the pool reuses objects and its
frees become whatever the inner replay does with a FREE.  `params_for_trace`
fills the inner allocator's trace-derived parameters (a `pool`'s block size)
into the `inner` spec; `capacity_for_trace` is twice what the inner allocator
asks for, since pooled objects stay allocated in it beside the live ones.

General purpose.  The pool itself takes any request size and any free order
(`general_purpose_with`): it is as general as the allocator behind it, so the
report counts `objpool` (default inner `freelist:glibc`) among the
general-purpose allocators and `objpool:inner=pool` among the special ones.

Knowing the bucket at deallocate.  A real program puts an object back into the
pool of its own type: it knows the size.  The protocol's free only passes the
address, so the pool keeps `bucket_tags`, one int16 per 16 B unit of the
address space (np.empty over the capacity; only units where blocks start are
ever touched), written at every inner allocation: the block's bucket, or 0 for
a bypassed block.  This stands for the caller's knowledge and is not counted
as metadata.

Composition.  The pool's kernels must call the inner allocator's kernels
(alloc_block, free_block, heap_stats, reset_state), and numba binds a kernel's
callees when it compiles it.  So the kernels here are written once as
templates (`_alloc_template`, ...) that call `inner_alloc_block` & co. as
globals; for each inner allocator class, `kernels_for` copies them with those
names bound to that class's kernels (`labcore.kernels.rebind`, as the replay
driver does), each under a name unique to the inner class (numba's on-disk
cache is keyed by name), jits them and builds the replay kernel from them.  They are cached per
inner class.  The state is the tuple (pool's own arrays..., inner_state): the
pool's kernels unpack their part and pass the last element to the inner ones.

State: `words` (counters hits_private, hits_shared, hits_victim, misses, puts,
overflows, clears, bypasses; then the number of buckets and of threads, the
shared and victim list bounds, clear_every, bytes allocated from the inner
allocator since the last GC, the pool's metadata bytes, the victim switch,
the number of active buckets and the fixed bytes of one, the power-of-two
rounding switch; then per bucket two
words, the shared list's length and the victim list's length), `private_slots`
(one address per bucket x thread, -1 = empty), `shared_items` (shared_limit
addresses per bucket), `victim_items` (shared_limit + threads per bucket),
`bucket_tags`, `active_flags` / `active_buckets` (which buckets were ever used,
so a GC and free() only visit those), and the inner allocator's state last.

footprint = the inner allocator's (the pool takes no address space of its
own).  metadata = the inner allocator's + the pool's own structures: per
bucket ever used, one 8 B private slot per thread and a 16 B shared-list
header (twice that with the victim cache, which keeps the previous set), plus
8 B per object in a shared or victim list.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit

from allocators import registry
from allocators.errors import ST_OK, BadParameter
from allocators.protocol import Allocator, default_capacity
from allocators.registry import register
from allocators.replay import Kernels, build_replay_kernel
from allocators.shared.bits import ceil_log2
from labcore.jitcache import holds_kernels
from labcore.kernels import rebind
from workloads.facts import TraceFacts
from workloads.trace import Trace

holds_kernels(__file__)

#: The inner allocator unless `inner` says otherwise: the glibc malloc model.
DEFAULT_INNER = "freelist:glibc"
BUCKET_BYTES = 16
BUCKET_SHIFT = 4
MAX_POOLED_LIMIT = 256 << 10
MAX_SHARED_LIMIT = 1 << 20
NO_OBJECT = -1
#: Modelled bytes: one private slot per thread, one shared-list header, one shared/victim list entry.
PRIVATE_SLOT_BYTES = 8
LIST_HEADER_BYTES = 16
LIST_ENTRY_BYTES = 8
#: Within a spec string on the command line, '+' separates the inner allocator's parameters
#: (a ',' would end the inner spec): "objpool:inner=freelist:policy=best+order=lifo".
INNER_PARAM_SEPARATOR = "+"

C_HITS_PRIVATE, C_HITS_SHARED, C_HITS_VICTIM, C_MISSES = 0, 1, 2, 3
C_PUTS, C_OVERFLOWS, C_CLEARS, C_BYPASSES = 4, 5, 6, 7
S_N_BUCKETS, S_N_THREADS, S_SHARED_LIMIT, S_VICTIM_LIMIT = 8, 9, 10, 11
S_CLEAR_EVERY, S_SINCE_CLEAR, S_METADATA, S_VICTIM_ON, S_N_ACTIVE, S_BUCKET_BYTES = 12, 13, 14, 15, 16, 17
S_ROUND_POW2 = 18
#: `round` values: buckets of 16 B, or powers of two.
ROUNDINGS = ("16", "pow2")
#: words[S_COUNTS + 2 * b] = length of bucket b's shared list, words[S_COUNTS + 2 * b + 1] of its victim list.
S_COUNTS = 24
#: clear_every=0 (never) is stored as this, so the hot path has one compare.
NEVER = 1 << 62


# ----------------------------------------------------- helpers (no inner calls)
@njit(cache=True, inline="always")
def activate_bucket(words, active_flags, active_buckets, bucket):
    """First object of `bucket`: its pool structures now exist (metadata) and GCs visit it."""
    active_flags[bucket] = 1
    active_buckets[words[S_N_ACTIVE]] = bucket
    words[S_N_ACTIVE] += 1
    words[S_METADATA] += words[S_BUCKET_BYTES]


@njit(cache=True, inline="always")
def move_to_victim(words, private_slots, shared_items, victim_items, bucket, victims):
    """Append every private slot and the shared list of `bucket` to its victim list; return the new length."""
    n_threads = words[S_N_THREADS]
    base = bucket * words[S_VICTIM_LIMIT]
    for slot in range(bucket * n_threads, (bucket + 1) * n_threads):
        if private_slots[slot] >= 0:
            victim_items[base + victims] = private_slots[slot]
            victims += 1
            private_slots[slot] = NO_OBJECT
    shared_base = bucket * words[S_SHARED_LIMIT]
    for index in range(words[S_COUNTS + 2 * bucket]):
        victim_items[base + victims] = shared_items[shared_base + index]
        victims += 1
    words[S_COUNTS + 2 * bucket] = 0
    return victims


# ------------------------------------------------------------------ templates
# The functions below are never called as they are: `kernels_for` copies them
# with `inner_alloc_block`, `inner_free_block`, `inner_heap_stats`,
# `inner_reset_state` and `collect_pool` bound to one inner allocator's kernels.
def _alloc_template(state, size, thread):
    words, private_slots, shared_items, victim_items, bucket_tags, active_flags, active_buckets, inner = state
    bucket = (size + BUCKET_BYTES - 1) >> BUCKET_SHIFT
    if words[S_ROUND_POW2] != 0 and bucket > 1:
        bucket = np.int64(1) << ceil_log2(bucket)
    request = size
    if bucket <= words[S_N_BUCKETS]:
        slot = bucket * words[S_N_THREADS] + thread
        addr = private_slots[slot]
        if addr >= 0:
            private_slots[slot] = NO_OBJECT
            words[C_HITS_PRIVATE] += 1
            return addr, bucket << BUCKET_SHIFT
        count_slot = S_COUNTS + 2 * bucket
        count = words[count_slot]
        if count > 0:
            words[count_slot] = count - 1
            words[C_HITS_SHARED] += 1
            words[S_METADATA] -= LIST_ENTRY_BYTES
            return shared_items[bucket * words[S_SHARED_LIMIT] + count - 1], bucket << BUCKET_SHIFT
        count = words[count_slot + 1]
        if count > 0:
            words[count_slot + 1] = count - 1
            words[C_HITS_VICTIM] += 1
            words[S_METADATA] -= LIST_ENTRY_BYTES
            return victim_items[bucket * words[S_VICTIM_LIMIT] + count - 1], bucket << BUCKET_SHIFT
        words[C_MISSES] += 1
        request = bucket << BUCKET_SHIFT
    else:
        bucket = 0
        words[C_BYPASSES] += 1
    addr, granted = inner_alloc_block(inner, request, thread)  # noqa: F821
    if addr >= 0:
        bucket_tags[addr >> BUCKET_SHIFT] = bucket
        words[S_SINCE_CLEAR] += granted
        if bucket > 0:
            granted = request
            if active_flags[bucket] == 0:
                activate_bucket(words, active_flags, active_buckets, bucket)
        if words[S_SINCE_CLEAR] >= words[S_CLEAR_EVERY]:
            collect_pool(state, thread)  # noqa: F821
    return addr, granted


def _free_template(state, addr, thread):
    words, private_slots, shared_items, victim_items, bucket_tags, active_flags, active_buckets, inner = state
    bucket = np.int64(bucket_tags[addr >> BUCKET_SHIFT])
    status = ST_OK
    granted = bucket << BUCKET_SHIFT
    to_inner = True
    if bucket > 0:
        words[C_PUTS] += 1
        slot = bucket * words[S_N_THREADS] + thread
        if private_slots[slot] < 0:
            private_slots[slot] = addr
            to_inner = False
        else:
            count_slot = S_COUNTS + 2 * bucket
            count = words[count_slot]
            if count < words[S_SHARED_LIMIT]:
                shared_items[bucket * words[S_SHARED_LIMIT] + count] = addr
                words[count_slot] = count + 1
                words[S_METADATA] += LIST_ENTRY_BYTES
                to_inner = False
            else:
                words[C_OVERFLOWS] += 1
    if to_inner:
        status, granted = inner_free_block(inner, addr, thread)  # noqa: F821
    return status, granted


def _heap_stats_template(state):
    footprint, metadata = inner_heap_stats(state[7])  # noqa: F821
    return footprint, metadata + state[0][S_METADATA]


def _collect_template(state, thread):
    """One GC: free the victim lists to the inner allocator, move the pools into them (or free them too)."""
    words, private_slots, shared_items, victim_items, bucket_tags, active_flags, active_buckets, inner = state
    words[C_CLEARS] += 1
    words[S_SINCE_CLEAR] = 0
    victim_on = words[S_VICTIM_ON]
    pooled = 0
    for index in range(words[S_N_ACTIVE]):
        bucket = active_buckets[index]
        victims = words[S_COUNTS + 2 * bucket + 1]
        if victim_on == 0:  # no victim cache: everything pooled goes to the inner allocator now
            victims = move_to_victim(words, private_slots, shared_items, victim_items, bucket, victims)
        base = bucket * words[S_VICTIM_LIMIT]
        for item in range(base, base + victims):
            inner_free_block(inner, victim_items[item], thread)  # noqa: F821
        victims = 0
        if victim_on != 0:
            victims = move_to_victim(words, private_slots, shared_items, victim_items, bucket, victims)
        words[S_COUNTS + 2 * bucket + 1] = victims
        pooled += victims
    words[S_METADATA] = words[S_N_ACTIVE] * words[S_BUCKET_BYTES] + pooled * LIST_ENTRY_BYTES


def _reset_template(state):
    """free(): empty every pool, then let the inner allocator release every block."""
    words, private_slots, shared_items, victim_items, bucket_tags, active_flags, active_buckets, inner = state
    n_threads = words[S_N_THREADS]
    for index in range(words[S_N_ACTIVE]):
        bucket = active_buckets[index]
        private_slots[bucket * n_threads : (bucket + 1) * n_threads] = NO_OBJECT
        words[S_COUNTS + 2 * bucket] = 0
        words[S_COUNTS + 2 * bucket + 1] = 0
    words[S_SINCE_CLEAR] = 0
    words[S_METADATA] = words[S_N_ACTIVE] * words[S_BUCKET_BYTES]
    inner_reset_state(inner)  # noqa: F821


# ------------------------------------------------------ per-inner kernels
class PoolKernels(NamedTuple):
    """The pool's kernels composed with one inner allocator class's, and the replay loop over them."""

    kernels: Kernels
    collect: Any
    replay_kernel: Any


_KERNELS: dict[type, PoolKernels] = {}


def kernels_for(inner_cls: type[Allocator]) -> PoolKernels:
    """The pool's kernels and replay kernel composed with `inner_cls`'s kernels (built once per class)."""
    found = _KERNELS.get(inner_cls)
    if found is not None:
        return found
    tag = f"{inner_cls.__module__}_{inner_cls.__qualname__}".replace(".", "_")
    inner = inner_cls.kernels
    bindings: dict[str, Any] = {
        "inner_alloc_block": inner.alloc_block,
        "inner_free_block": inner.free_block,
        "inner_heap_stats": inner.heap_stats,
        "inner_reset_state": inner.reset_state,
    }
    bindings["collect_pool"] = collect = njit(cache=True)(
        rebind(_collect_template, f"objpool_collect__{tag}", bindings)
    )
    inlined = njit(cache=True, inline="always")
    kernels = Kernels(
        alloc_block=inlined(rebind(_alloc_template, f"objpool_alloc_block__{tag}", bindings)),
        free_block=inlined(rebind(_free_template, f"objpool_free_block__{tag}", bindings)),
        heap_stats=inlined(rebind(_heap_stats_template, f"objpool_heap_stats__{tag}", bindings)),
        reset_state=njit(cache=True)(rebind(_reset_template, f"objpool_reset_state__{tag}", bindings)),
    )
    found = PoolKernels(kernels, collect, build_replay_kernel(f"objpool__{tag}", __file__, kernels))
    _KERNELS[inner_cls] = found
    return found


# ----------------------------------------------------------------- the shell
def _inner_spec(value: Any) -> tuple[str, dict[str, Any]]:
    """Parse the `inner` parameter into (name, params), with the pool's own checks."""
    if not isinstance(value, str) or not value.strip():
        raise BadParameter(f"objpool: inner must be an allocator spec string, got {value!r}")
    spec = value.strip().replace(INNER_PARAM_SEPARATOR, ",")
    try:
        name, params = registry.parse_spec(spec)
    except BadParameter as error:
        raise BadParameter(f"objpool: inner {value!r}: {error}") from None
    if name == ObjPool.name:
        raise BadParameter("objpool: inner cannot be objpool itself (a pool in front of a pool)")
    inner_cls = registry.get(name)
    if inner_cls.lifo_only:
        raise BadParameter(
            f"objpool: inner {name!r} only frees in LIFO order; the pool frees to it in any order"
        )
    return name, params


def _format_spec(name: str, params: dict[str, Any]) -> str:
    items = [f"{key}={value}" for key, value in params.items() if value is not None]
    return f"{name}:{','.join(items)}" if items else name


@register
class ObjPool(Allocator):
    name = "objpool"
    summary = "sync.Pool-like object pool (per-thread slot, shared list, GC clears) in front of another allocator"
    defaults = {
        "inner": DEFAULT_INNER,
        "max_pooled": 32 << 10,
        "shared_limit": 256,
        "clear_every": 4 << 20,
        "victim": True,
        "round": "16",
    }
    presets = {"nogc": {"clear_every": 0}}
    variants = (
        "inner=buddy,clear_every=64KiB",
        "inner=buddy,victim=false,shared_limit=1,clear_every=16KiB",
        "inner=buddy,max_pooled=256,shared_limit=0",
    )
    counter_names = (
        "hits_private", "hits_shared", "hits_victim", "misses", "puts", "overflows", "clears", "bypasses",
    )
    #: Private slots are per thread; the shared and victim lists and the inner allocator's shared
    #: structures are not (pushes onto the shared list are not counted apart from `puts`).
    shared_counters = ("hits_shared", "hits_victim", "overflows", "inner_shared_ops")

    @classmethod
    def general_purpose_with(cls, params: dict[str, Any]) -> bool:
        """As general as the inner allocator: the pool takes any size and any free order and passes what it
        cannot reuse to the inner one (so `objpool` over `freelist:glibc`, the default, is general purpose,
        over `pool` or `linear` it is not)."""
        name, inner_params = _inner_spec(params.get("inner", DEFAULT_INNER))
        return registry.get(name).general_purpose_with(inner_params)

    def check_params(self) -> None:
        params = self.params
        name, inner_params = _inner_spec(params["inner"])
        for key, low, high in (
            ("max_pooled", BUCKET_BYTES, MAX_POOLED_LIMIT),
            ("shared_limit", 0, MAX_SHARED_LIMIT),
            ("clear_every", 0, 1 << 48),
        ):
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise BadParameter(f"objpool: {key} must be an integer in {low}..{high}, got {value!r}")
            params[key] = int(value)
        params["max_pooled"] = (params["max_pooled"] + BUCKET_BYTES - 1) // BUCKET_BYTES * BUCKET_BYTES
        params["round"] = str(params["round"])
        if params["round"] not in ROUNDINGS:
            raise BadParameter(f"objpool: round must be one of {', '.join(ROUNDINGS)}, got {params['round']!r}")
        if not isinstance(params["victim"], bool):
            raise BadParameter(f"objpool: victim must be true or false, got {params['victim']!r}")
        try:
            self.inner = registry.get(name)(self.capacity, max_threads=self.max_threads, **inner_params)
        except BadParameter as error:
            raise BadParameter(f"objpool: inner {params['inner']!r}: {error}") from None
        if "kernels" in vars(self.inner):
            raise BadParameter(f"objpool: inner {name!r} has per-instance kernels; the pool needs class-level ones")
        composed = kernels_for(type(self.inner))
        self.kernels = composed.kernels
        self.replay_kernel = composed.replay_kernel
        self.alignment = max(self.inner.alignment, BUCKET_BYTES)

    def make_state(self) -> tuple:
        params = self.params
        n_buckets = params["max_pooled"] // BUCKET_BYTES
        n_threads = self.max_threads
        shared_limit = params["shared_limit"]
        victim_limit = shared_limit + n_threads
        words = np.zeros(S_COUNTS + 2 * (n_buckets + 1), np.int64)
        words[S_N_BUCKETS] = n_buckets
        words[S_N_THREADS] = n_threads
        words[S_SHARED_LIMIT] = shared_limit
        words[S_VICTIM_LIMIT] = victim_limit
        words[S_CLEAR_EVERY] = params["clear_every"] or NEVER
        words[S_VICTIM_ON] = int(params["victim"])
        words[S_ROUND_POW2] = int(params["round"] == "pow2")
        copies = 2 if params["victim"] else 1
        words[S_BUCKET_BYTES] = copies * (n_threads * PRIVATE_SLOT_BYTES + LIST_HEADER_BYTES)
        try:
            bucket_tags = np.empty(self.capacity >> BUCKET_SHIFT, np.int16)
        except MemoryError:
            raise BadParameter(
                f"objpool: cannot reserve the bucket table for capacity {self.capacity} (2 B per 16 B)"
            ) from None
        inner_state = self.inner.make_state()
        self.inner.state = inner_state  # so `self.inner` shows the live inner heap (footprint, counters)
        return (
            words,
            np.full((n_buckets + 1) * n_threads, NO_OBJECT, np.int64),
            np.empty((n_buckets + 1) * shared_limit, np.int64),
            np.empty((n_buckets + 1) * victim_limit, np.int64),
            bucket_tags,
            np.zeros(n_buckets + 1, np.int8),
            np.empty(n_buckets + 1, np.int64),
            inner_state,
        )

    def pooled_objects(self) -> int:
        """Objects held by the pool right now (private slots, shared and victim lists): allocated in the inner
        allocator, live for no user."""
        words, private_slots = self.state[0], self.state[1]
        counts = words[S_COUNTS : S_COUNTS + 2 * (int(words[S_N_BUCKETS]) + 1)]
        return int((private_slots >= 0).sum() + counts.sum())

    def counters(self) -> dict[str, int]:
        """The pool's counters, then the inner allocator's, prefixed `inner_`."""
        found = super().counters()
        inner_words = self.state[-1][0]
        found.update({f"inner_{name}": int(inner_words[i]) for i, name in enumerate(self.inner.counter_names)})
        inner_counters = self.inner.counters()  # the inner's own derived counters too
        found["inner_shared_ops"] = sum(inner_counters[name] for name in (self.inner.shared_counters or ()))
        return found

    @classmethod
    def params_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> dict[str, Any]:
        """The inner allocator's own trace-derived parameters (e.g. a pool's block size), folded into `inner`."""
        name, inner_params = _inner_spec(params.get("inner") or DEFAULT_INNER)
        extra = registry.get(name).params_for_trace(trace, inner_params)
        if not extra:
            return {}
        inner_params.update(extra)
        return {"inner": _format_spec(name, inner_params)}

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """Twice what the inner allocator asks for: pooled objects stay allocated in it beside the live ones."""
        name, inner_params = _inner_spec(params.get("inner") or DEFAULT_INNER)
        inner_capacity = registry.get(name).capacity_for_trace(trace, inner_params)
        return 2 * max(inner_capacity, default_capacity(trace))
