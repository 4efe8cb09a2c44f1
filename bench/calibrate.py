"""How fast is this machine, right now, for code like the replay kernels?  A fixed calibration workload.

Why.  Replay times measured on a shared CI machine move with the machine (a
slower runner, a busy neighbour, frequency scaling), not only with the code.
`python -m bench compare` therefore divides every cell's kernel time by the time
of one fixed workload measured in the same sweep: a cell's *normalised time* is
`seconds_median / calibration seconds_median`.  When the machine is 2x slower,
both grow 2x and the ratio stays put; when the code is 2x slower, only the cell
grows.

What the workload is.  `calibration_kernel` is a small segregated free-list
allocator driven by a fixed pseudo-random walk, so it does what the replay
kernels do, in the same proportions: integer arithmetic, loads of a table
indexed by a random slot, a data-dependent branch (allocate or free, list empty
or not), pops and pushes of intrusive free lists whose next pointers live in the
"freed blocks" of a heap array (a dependent load at a random heap address), a
bump pointer, live-byte and peak bookkeeping, all hot scalars in one int64
`words` array.  The shape:

- `live_addr[slot]` / `live_class[slot]`: 2^15 object slots (256 KiB each);
  a step picks a slot from the generator: empty -> allocate, live -> free;
- 32 size classes of (class + 1) x 16 bytes, drawn as the sum of two uniform
  4-bit numbers (a triangular distribution, mostly mid-sized classes);
- `heap`: int64 words; a block's first word is its header (the slot) while live
  and the next pointer of its class's free list while free; a free list that is
  empty takes a new block from the bump pointer.  About half the slots are live
  at a time, so the heap grows to about 4 MiB: the working set spans L1, L2 and
  the last-level cache like a replay of a ~10^4-live-object trace.

Everything is fixed (seed, step count, sizes): the same work, the same result
(`CALIBRATION_CHECKSUM`), every time; only its duration varies.  A run takes
about 20-50 ms on the lab's 2-core EPYC VM.  The kernel is compiled (or loaded
from the on-disk cache) and run once before anything is timed.

Changing the workload changes every normalised time: bump `CALIBRATION_VERSION`
then (the compare tool warns when the two sides' versions differ) and refresh
the baselines.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

CALIBRATION_VERSION = 1
STEPS = 4_000_000
SLOTS_LOG2 = 15
N_CLASSES = 32
GRANULE_WORDS = 2  # 16 bytes
SEED = 0x5EED

# words layout: [0] bump pointer (in heap words), [1] live bytes, [2] peak live bytes, [3] allocations,
# [4] frees, [5] list pops; then one free-list head per size class (-1 = empty).
W_TOP, W_LIVE, W_PEAK, W_ALLOCS, W_FREES, W_POPS, W_HEADS = 0, 1, 2, 3, 4, 5, 6
N_WORDS = W_HEADS + N_CLASSES


@njit(cache=True)
def calibration_kernel(words: np.ndarray, live_addr: np.ndarray, live_class: np.ndarray, heap: np.ndarray,
                       steps: int, seed: int) -> int:
    """Run the fixed allocator-like walk for `steps` steps on fresh state; return a checksum of what it did."""
    for i in range(words.size):
        words[i] = 0
    for c in range(N_CLASSES):
        words[W_HEADS + c] = -1
    for s in range(live_addr.size):
        live_addr[s] = -1
    slot_mask = live_addr.size - 1
    state = np.int64(seed)
    checksum = np.int64(0)
    for _ in range(steps):
        state = state * np.int64(6364136223846793005) + np.int64(1442695040888963407)  # LCG, wraps
        r = (state >> 17) & np.int64(0x7FFFFFFFFFFF)
        slot = r & slot_mask
        addr = live_addr[slot]
        if addr < 0:  # allocate
            size_class = ((r >> 20) & 15) + ((r >> 24) & 15)
            head = words[W_HEADS + size_class]
            if head >= 0:
                addr = head
                words[W_HEADS + size_class] = heap[head]  # the next pointer lives in the free block
                words[W_POPS] += 1
            else:
                addr = words[W_TOP]
                words[W_TOP] = addr + (size_class + 1) * GRANULE_WORDS
            heap[addr] = slot  # header
            live_addr[slot] = addr
            live_class[slot] = size_class
            words[W_LIVE] += (size_class + 1) * 16
            if words[W_LIVE] > words[W_PEAK]:
                words[W_PEAK] = words[W_LIVE]
            words[W_ALLOCS] += 1
        else:  # free: push on its class's list
            size_class = live_class[slot]
            heap[addr] = words[W_HEADS + size_class]
            words[W_HEADS + size_class] = addr
            live_addr[slot] = -1
            words[W_LIVE] -= (size_class + 1) * 16
            words[W_FREES] += 1
        checksum = checksum * np.int64(31) + addr
    return checksum ^ words[W_PEAK] ^ (words[W_TOP] << 20)


def _buffers() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    slots = 1 << SLOTS_LOG2
    # Worst case every slot live with the largest class; np.zeros pages are taken lazily, ~4 MiB get touched.
    heap = np.zeros(slots * N_CLASSES * GRANULE_WORDS, np.int64)
    return (np.zeros(N_WORDS, np.int64), np.empty(slots, np.int64), np.empty(slots, np.int64), heap)


def calibrate(repeats: int = 5) -> dict[str, Any]:
    """Time the calibration workload `repeats` times (after an untimed warm-up run that also compiles or loads it).

    Returns `seconds_median`, `seconds_min`, `seconds_max` (of the timed runs), `repeats`, and, to tell
    calibrations apart, `version` (`CALIBRATION_VERSION`) and `steps`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    buffers = _buffers()
    expected = calibration_kernel(*buffers, STEPS, SEED)  # compile/load + first touch of the heap pages
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        checksum = calibration_kernel(*buffers, STEPS, SEED)
        times.append(time.perf_counter() - started)
        if checksum != expected:  # cannot happen unless the kernel is broken; a wrong workload must not pass
            raise RuntimeError(f"calibration kernel is not deterministic: checksum {checksum} != {expected}")
    return {
        "seconds_median": statistics.median(times),
        "seconds_min": min(times),
        "seconds_max": max(times),
        "repeats": repeats,
        "version": CALIBRATION_VERSION,
        "steps": STEPS,
    }


def combine(start: dict[str, Any], end: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sweep's `meta["calibration"]`: the runs before and after the cells, and the figures compare divides by.

    `seconds_median` is the mean of the two medians (the machine's speed over the sweep), `seconds_min` the
    fastest of all the timed runs (what compare divides a cell's fastest repeat by); `drift` is
    end / start (far from 1.0: the machine's speed changed during the sweep, timings are suspect).
    Without `end` (a sweep still running or killed) the start run stands alone.
    """
    combined: dict[str, Any] = {"start": start, "end": end, "version": start.get("version")}
    if end is None:
        combined.update(seconds_median=start["seconds_median"], seconds_min=start["seconds_min"], drift=None)
    else:
        combined.update(seconds_median=(start["seconds_median"] + end["seconds_median"]) / 2,
                        seconds_min=min(start["seconds_min"], end["seconds_min"]),
                        drift=end["seconds_median"] / start["seconds_median"])
    return combined


__all__ = ["CALIBRATION_VERSION", "calibrate", "calibration_kernel", "combine"]
