"""Resumable lifetime kernels: one chunk of rows over many streams, state carried between chunks.

`workloads.lifetimes` describes the models; this module holds their
`@njit(cache=True)` loops.  A call processes one chunk of rows in row order;
`labels[r]` is the stream (thread) row r belongs to, and every stream has its
own lifetime state in *pools*: flat arrays of `n_streams * cap` entries, where
stream s owns `[s * cap, (s + 1) * cap)`.  The caller (`lifetimes.*Streams`)
grows a pool before a chunk that could overflow it, so the kernels never
allocate; `cap` is bounded by a stream's live objects (plus one chunk at most).

Live objects are named by *slot*, not by id: an ALLOC takes a slot from the
shared `SlotStack` (`free_slots`, `counts` = [released slots on the stack,
slots ever used]): the most recently released one, else the next unused one.
A FREE names the slot its model picked and releases it.  Slots are thus
bounded by the peak number of live objects; the object *ids* (the k-th ALLOC
of the trace allocates id k) are given in row order by the consumer
(`workloads.access`), which keeps a slot -> id table.

Random inputs: per-row values (step and pick uniforms) come flat, grouped by
stream (`off[s]` = where stream s's values for this chunk start), in the
stream's row order; values consumed per ALLOC (exponential lifetimes) or per
batch (phased shuffles) likewise, with the consumption reported back.
`is_long` (non-empty only under `LongLived`) marks rows that allocate an
object that is never freed: they take a slot and leave the base model alone,
which sees only the other rows (so its draws are indexed by *base* row).

The models' freeing orders are exactly those of the original bulk kernels:
LIFO stack, FIFO ring, random pick with swap-remove, and for exponential
lifetimes a min-heap on (death row, allocation order) in place of buckets
indexed by death row: at row t the bulk kernel freed the oldest-queued object
with death row <= t, and objects were queued by death row, then in
allocation order, which is the heap's minimum.  The heap holds only objects
that die within the stream (the others are never freed), so its size is
bounded by the stream's live objects.
"""

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True, inline="always")
def new_slot(free_slots, counts):
    if counts[0] > 0:
        counts[0] -= 1
        return free_slots[counts[0]]
    slot = counts[1]
    counts[1] += 1
    return slot


@njit(cache=True, inline="always")
def release_slot(free_slots, counts, slot):
    free_slots[counts[0]] = slot
    counts[0] += 1


@njit(cache=True)
def scatter_by_stream(labels, off, flat):
    """Per row, the next value of its stream's group in `flat` (groups start at `off`)."""
    at = off.copy()
    out = np.empty(labels.shape[0], flat.dtype)
    for row in range(labels.shape[0]):
        stream = labels[row]
        out[row] = flat[at[stream]]
        at[stream] += 1
    return out


@njit(cache=True)
def ids_of_slots(is_free, slot, n_slots):
    """Object ids in allocation order (the k-th ALLOC gets id k; a FREE names its slot's object)."""
    id_of = np.empty(max(n_slots, 1), np.int64)
    out = np.empty(is_free.shape[0], np.int64)
    next_id = 0
    for row in range(is_free.shape[0]):
        if is_free[row]:
            out[row] = id_of[slot[row]]
        else:
            id_of[slot[row]] = next_id
            out[row] = next_id
            next_id += 1
    return out


# --------------------------------------------------------------------------- Ehrenfest walks
@njit(cache=True)
def walk_run(kind, labels, is_long, u_step, u_pick, off, pool, n_live, head, cap, live_target, free_slots, counts,
             out_free, out_slot):
    """kind 0 = LIFO (stack), 1 = FIFO (ring from head[s]), 2 = random pick with swap-remove."""
    if n_live.shape[0] == 1 and is_long.shape[0] == 0:
        _walk_one(kind, u_step, u_pick, off[0], labels.shape[0], pool, n_live, head, cap, live_target, free_slots,
                  counts, out_free, out_slot)
        return
    has_long = is_long.shape[0] > 0
    at = off.copy()
    for row in range(labels.shape[0]):
        if has_long and is_long[row]:
            out_free[row] = False
            out_slot[row] = new_slot(free_slots, counts)
            continue
        stream = labels[row]
        i = at[stream]
        at[stream] += 1
        base = stream * cap
        depth = n_live[stream]
        if u_step[i] * (2 * live_target) + depth < 2 * live_target:
            slot = new_slot(free_slots, counts)
            if kind == 1:
                pool[base + (head[stream] + depth) % cap] = slot
            else:
                pool[base + depth] = slot
            n_live[stream] = depth + 1
            out_free[row] = False
            out_slot[row] = slot
        else:
            if kind == 0:
                slot = pool[base + depth - 1]
            elif kind == 1:
                slot = pool[base + head[stream]]
                head[stream] = (head[stream] + 1) % cap
            else:
                pick = min(np.int64(u_pick[i] * depth), depth - 1)
                slot = pool[base + pick]
                pool[base + pick] = pool[base + depth - 1]
            n_live[stream] = depth - 1
            release_slot(free_slots, counts, slot)
            out_free[row] = True
            out_slot[row] = slot


@njit(cache=True)
def _walk_one(kind, u_step, u_pick, first, n_rows, pool, n_live, head, cap, live_target, free_slots, counts,
              out_free, out_slot):
    """`walk_run` for a single stream without long-lived rows: the same steps, the state in locals."""
    depth = n_live[0]
    oldest = head[0]
    n_free = counts[0]
    n_used = counts[1]
    for row in range(n_rows):
        i = first + row
        if u_step[i] * (2 * live_target) + depth < 2 * live_target:
            if n_free > 0:
                n_free -= 1
                slot = free_slots[n_free]
            else:
                slot = n_used
                n_used += 1
            if kind == 1:
                at = oldest + depth
                pool[at - cap if at >= cap else at] = slot
            else:
                pool[depth] = slot
            depth += 1
            out_free[row] = False
        else:
            if kind == 0:
                slot = pool[depth - 1]
            elif kind == 1:
                slot = pool[oldest]
                oldest = oldest + 1 if oldest + 1 < cap else 0
            else:
                pick = min(np.int64(u_pick[i] * depth), depth - 1)
                slot = pool[pick]
                pool[pick] = pool[depth - 1]
            depth -= 1
            free_slots[n_free] = slot
            n_free += 1
            out_free[row] = True
        out_slot[row] = slot
    n_live[0] = depth
    head[0] = oldest
    counts[0] = n_free
    counts[1] = n_used


# --------------------------------------------------------------------------- exponential lifetimes
@njit(cache=True, inline="always")
def _less(key, tie, a, b):
    """Heap order: (key, tie) lexicographic, without branches."""
    return (key[a] < key[b]) | ((key[a] == key[b]) & (tie[a] < tie[b]))


@njit(cache=True)
def exponential_run(labels, is_long, lifetimes, off, used, row_of, n_rows, key, tie, heap_slot, size, cap, serial,
                    shift, free_slots, counts, out_free, out_slot):
    """Row t of a stream frees the heap minimum if its death row is <= t, else allocates.

    The heap orders (death row, allocation serial): packed as
    `death << shift | serial` in `key` when both fit (`shift` > 0, `tie`
    unused), else `key` = death and `tie` = serial.  `lifetimes` holds, per
    stream from `off[s]`, the next lifetimes (one per ALLOC); `used[s]`
    counts those consumed.  `row_of[s]` is the stream's next base row,
    `n_rows[s]` its length: an object dying at or past it is never freed, so
    it is not queued.  `serial[0]` numbers allocations.
    """
    has_long = is_long.shape[0] > 0
    for row in range(labels.shape[0]):
        if has_long and is_long[row]:
            out_free[row] = False
            out_slot[row] = new_slot(free_slots, counts)
            continue
        stream = labels[row]
        t = row_of[stream]
        row_of[stream] = t + 1
        base = stream * cap
        n = size[stream]
        if n > 0 and (key[base] >> shift) <= t:
            out_free[row] = True
            out_slot[row] = heap_slot[base]
            release_slot(free_slots, counts, heap_slot[base])
            n -= 1
            size[stream] = n
            if n > 0:
                # Bottom-up sift-down: walk the hole to a leaf along the smaller children, then sift the last
                # element up from there (it came from the bottom, so it rarely climbs far).
                hole = 0
                child = 1
                while child < n:
                    child += (child + 1 < n) & _less(key, tie, base + child + 1, base + child)
                    key[base + hole], tie[base + hole], heap_slot[base + hole] = (
                        key[base + child], tie[base + child], heap_slot[base + child])
                    hole = child
                    child = 2 * hole + 1
                key[base + hole], tie[base + hole], heap_slot[base + hole] = key[base + n], tie[base + n], \
                    heap_slot[base + n]
                _sift_up(key, tie, heap_slot, base, hole)
            continue
        slot = new_slot(free_slots, counts)
        out_free[row] = False
        out_slot[row] = slot
        dies = t + 1 + np.int64(min(lifetimes[off[stream] + used[stream]], 1e15))
        used[stream] += 1
        if dies < n_rows[stream]:
            if shift > 0:
                key[base + n], tie[base + n] = (dies << shift) | serial[0], 0
            else:
                key[base + n], tie[base + n] = dies, serial[0]
            heap_slot[base + n] = slot
            _sift_up(key, tie, heap_slot, base, n)
            size[stream] = n + 1
        serial[0] += 1


@njit(cache=True, inline="always")
def _sift_up(key, tie, heap_slot, base, child):
    while child > 0:
        parent = (child - 1) // 2
        if not _less(key, tie, base + child, base + parent):
            break
        key[base + child], key[base + parent] = key[base + parent], key[base + child]
        tie[base + child], tie[base + parent] = tie[base + parent], tie[base + child]
        heap_slot[base + child], heap_slot[base + parent] = heap_slot[base + parent], heap_slot[base + child]
        child = parent


# --------------------------------------------------------------------------- phases
@njit(cache=True)
def phased_run(labels, is_long, batch, order_code, u_shuffle, off, row_of, batch_slots, perm, cap, free_slots,
               counts, out_free, out_slot):
    """Allocate `batch` objects, then free them (fifo, lifo, random = Fisher-Yates, halves); repeat.

    A random-order phase p shuffles with the stream's uniforms p*batch + i
    (i = batch-1 .. 1): the caller passes, per stream from `off[s]`,
    `batch` uniforms for each phase that starts freeing in this chunk.
    """
    has_long = is_long.shape[0] > 0
    at = off.copy()
    half = batch // 2
    for row in range(labels.shape[0]):
        if has_long and is_long[row]:
            out_free[row] = False
            out_slot[row] = new_slot(free_slots, counts)
            continue
        stream = labels[row]
        t = row_of[stream]
        row_of[stream] = t + 1
        base = stream * cap
        step = t % (2 * batch)
        if step < batch:
            slot = new_slot(free_slots, counts)
            batch_slots[base + step] = slot
            out_free[row] = False
            out_slot[row] = slot
            continue
        k = step - batch
        if k == 0 and order_code == 2:
            first = at[stream]
            at[stream] += batch
            for i in range(batch):
                perm[base + i] = i
            for i in range(batch - 1, 0, -1):  # Fisher-Yates with pre-drawn uniforms
                j = min(np.int64(u_shuffle[first + i] * (i + 1)), i)
                perm[base + i], perm[base + j] = perm[base + j], perm[base + i]
        if order_code == 0:
            index = k
        elif order_code == 1:
            index = batch - 1 - k
        elif order_code == 2:
            index = perm[base + k]
        else:  # halves: first half oldest-first, then the second half newest-first
            index = k if k < half else batch - 1 - (k - half)
        slot = batch_slots[base + index]
        release_slot(free_slots, counts, slot)
        out_free[row] = True
        out_slot[row] = slot
