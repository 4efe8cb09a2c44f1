"""The replay driver: one jitted loop that runs a whole trace through one allocator.

Every allocator module provides four small kernels over its state (a tuple of
numpy arrays):

    alloc_block(state, size, thread) -> (addr, granted)      addr < 0 is a status
    free_block(state, addr, thread)  -> (status, granted)    status < 0 is an error
    heap_stats(state)                -> (footprint_bytes, metadata_bytes)
    realloc_in_place(state, addr, granted, new_size, thread) -> (addr, granted)
                                        addr < 0: cannot resize in place

The driver below does everything else once for all allocators: the object-id to
address map (`obj_addr`, `obj_granted`, `obj_requested`, one slot per dense
object id, allocated and touched by the caller before the clock starts, as are
the output arrays), ACCESS and REALLOC rows, live-byte accounting, exact peaks, and the
timeline sampled every `sample_every` rows.  `build_replay_kernel` makes one copy
of the driver per allocator whose globals point at that allocator's kernels, so
numba inlines them into the loop (no call through a function pointer) and can
cache the compiled loop on disk beside the allocator's module.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from numba import njit

from workloads.trace import OP_ACCESS, OP_FREE, OP_REALLOC

#: Columns of AllocLog.timeline.
TIMELINE_COLUMNS = ("row", "footprint", "live_requested", "live_granted", "metadata_bytes")

#: Per-object record the driver keeps in one flat array: address, granted, requested and padding, so one
#: object's record is 32 B in one cache line, and the index is a shift.
OBJECT_COLUMNS = 4

#: Slots of the `totals` array the driver fills.
T_PEAK_FOOTPRINT = 0
T_PEAK_LIVE_REQUESTED = 1
T_PEAK_LIVE_GRANTED = 2
T_SAMPLES = 3
T_FAILED_ROW = 4
T_STATUS = 5
T_FINAL_FOOTPRINT = 6
T_FINAL_METADATA = 7
T_PEAK_METADATA = 8
N_TOTALS = 9


@njit(cache=True, inline="always")
def resize_within_block(state, addr, granted, new_size, thread):
    """Default realloc_in_place: keep the block when it is already large enough."""
    if new_size <= granted:
        return addr, granted
    return -1, 0


def _replay_template(
    state, op, obj, size, thread, objects, sample_every,
    addr_out, granted_out, timeline, totals,
):
    live_requested = 0
    live_granted = 0
    peak_footprint = 0
    peak_requested = 0
    peak_granted = 0
    peak_metadata = 0
    samples = 0
    until_sample = 0
    n_rows = op.shape[0]
    for row in range(n_rows):
        code = op[row]
        slot = obj[row] << 2  # OBJECT_COLUMNS int64 words per object
        if code == OP_ACCESS:
            addr_out[row] = objects[slot]
            granted_out[row] = 0
        else:
            # alloc_block and free_block appear once each in the loop: every
            # extra inlined copy costs registers in the hot path.
            addr = -1
            granted = 0
            release = -1
            if code == OP_FREE:
                release = objects[slot]
            elif code == OP_REALLOC:
                addr, granted = realloc_in_place(  # noqa: F821
                    state, objects[slot], objects[slot + 1], size[row], thread[row]
                )
                if addr < 0:
                    release = objects[slot]
            status = 0
            if code != OP_FREE and addr < 0:
                addr, granted = alloc_block(state, size[row], thread[row])  # noqa: F821
                if addr < 0:
                    status = addr
            if release >= 0 and status == 0:
                status, _ = free_block(state, release, thread[row])  # noqa: F821
            if status < 0:  # one exit for every failure keeps the loop's registers free
                totals[T_FAILED_ROW] = row
                totals[T_STATUS] = status
                break
            live_requested -= objects[slot + 2]
            live_granted -= objects[slot + 1]
            if code == OP_FREE:
                objects[slot] = -1
                objects[slot + 1] = 0
                objects[slot + 2] = 0
                addr_out[row] = release
                granted_out[row] = 0
            else:
                live_requested += size[row]
                live_granted += granted
                objects[slot] = addr
                objects[slot + 1] = granted
                objects[slot + 2] = size[row]
                addr_out[row] = addr
                granted_out[row] = granted
        footprint, metadata = heap_stats(state)  # noqa: F821
        if footprint > peak_footprint:
            peak_footprint = footprint
        if metadata > peak_metadata:
            peak_metadata = metadata
        if live_requested > peak_requested:
            peak_requested = live_requested
        if live_granted > peak_granted:
            peak_granted = live_granted
        if until_sample == 0:
            until_sample = sample_every
            timeline[samples, 0] = row
            timeline[samples, 1] = footprint
            timeline[samples, 2] = live_requested
            timeline[samples, 3] = live_granted
            timeline[samples, 4] = metadata
            samples += 1
        until_sample -= 1
    footprint, metadata = heap_stats(state)  # noqa: F821
    totals[T_PEAK_FOOTPRINT] = peak_footprint
    totals[T_PEAK_LIVE_REQUESTED] = peak_requested
    totals[T_PEAK_LIVE_GRANTED] = peak_granted
    totals[T_PEAK_METADATA] = peak_metadata
    totals[T_FINAL_FOOTPRINT] = footprint
    totals[T_FINAL_METADATA] = metadata
    totals[T_SAMPLES] = samples
    return samples


def build_replay_kernel(
    name: str,
    module_file: str,
    alloc_block: Callable,
    free_block: Callable,
    heap_stats: Callable,
    realloc_in_place: Callable = resize_within_block,
) -> Callable:
    """Return a jitted copy of the replay driver bound to one allocator's kernels.

    The copy's code object is attributed to the allocator's own source file, so
    numba's on-disk cache lives beside that module and is invalidated when it
    changes; a change to the driver itself changes the bytecode, which numba
    also keys its cache on.
    """
    alloc_block, free_block, heap_stats, realloc_in_place = (
        getattr(kernel, "__func__", kernel) for kernel in (alloc_block, free_block, heap_stats, realloc_in_place)
    )  # accept the staticmethod objects of a class body
    kernel_name = f"replay_{name}"
    code = _replay_template.__code__.replace(co_filename=module_file, co_name=kernel_name)
    namespace = dict(_replay_template.__globals__)
    namespace.update(
        alloc_block=alloc_block, free_block=free_block, heap_stats=heap_stats, realloc_in_place=realloc_in_place
    )
    function = types.FunctionType(code, namespace, kernel_name)
    function.__qualname__ = kernel_name
    function.__module__ = _replay_template.__module__
    return _compile_without_refcounts(function)


def _compile_without_refcounts(function: Callable) -> Callable:
    """njit with numba's reference counting off for the driver (it allocates nothing).

    The kernels inlined into the loop pull arrays out of the state tuple and
    return early on failure; numba then emits atomic increments/decrements of
    the arrays' reference counts on every operation, which LLVM cannot always
    pair up and remove: measured 2-3x slower replays (pool 78 -> 160 Mops/s).
    The arrays are owned by the Python caller for the whole call, so no count
    is needed.  `_nrt` is a private numba option: if a numba release drops it,
    fall back to the plain (slower, equally correct) kernel.
    """
    try:
        return njit(cache=True, _nrt=False)(function)
    except (KeyError, TypeError, ValueError):
        return njit(cache=True)(function)
