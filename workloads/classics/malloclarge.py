"""malloc-large: large buffers replaced at random (mimalloc-bench `malloc-large`), as a trace.

What the original is.  A test from mimalloc's issue 447 (Leonid Stolyarov,
changed by Daan Leijen): 20 buffer slots (`std::unique_ptr<char[]>`), and
2000 times: pick a random slot, make a buffer of a size uniform in 5..25 MiB
(`std::make_unique<char[]>`, which zero-fills it) and assign it to the slot.
The assignment frees the slot's old buffer after the new one exists, so up
to 21 buffers (about 525 MiB) are live at once.  One thread.

What it stresses.  Requests far above every small-object path: the
allocator's large-object path and how it gets memory from the OS and gives
it back (mmap thresholds, huge spans, segment reuse); zero-filling costs.

How the trace reproduces it.  Each step: ALLOC of the new buffer (a uniform
integer size in min_size..max_size), an ACCESS of all of it (the zero-fill,
`touch=true`), then the FREE of the slot's old buffer, if it had one.  The
trace's length is its rows (`--ops`), or `iterations` replacements when that
is given and comes first (`iterations=2000`: the original's count; the
`classics` sweep preset uses 200, since a real allocator's replay writes
every page of every new buffer, about 15 MiB per iteration).

What it leaves out.  Nothing of the pattern.  Its requests exceed the
catalog's 1 MiB cap on purpose: the allocator models built for small objects
(`pool`'s fixed blocks, a `region` chunk, `objpool`'s buckets) either carry
such requests to their large-object path or fail the cell cleanly, out of
memory (the README section on the classics lists which).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import flag, key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_REQUEST_SIZE

holds_kernels(__file__)

MiB = 1 << 20
THREAD = 0
#: Constant parameters (`par`).
P_BUFFERS, P_MIN, P_MAX, P_TOUCH, P_ITERATIONS = range(5)
#: The classic's own register: replacements made so far.
DONE = steps.OWN


@dataclass(frozen=True)
class MallocLargeKeys:
    buffers: int = key(20, 1, 1 << 16, "buffer slots (live buffers: at most buffers + 1, during a replacement)")
    min_size: int = key(5 * MiB, 1, MAX_REQUEST_SIZE, "smallest buffer")
    max_size: int = key(25 * MiB, 1, MAX_REQUEST_SIZE, "largest buffer (sizes uniform in min_size..max_size)")
    touch: bool = flag(True, "every buffer is written whole when made (the zero-fill: an ACCESS row)")
    iterations: int = key(0, 0, 1 << 40, "buffers made before the trace ends (0: as many as the rows allow; "
                          "the original: 2000)")

    def check(self) -> None:
        if self.max_size < self.min_size:
            raise ValueError(f"key 'max_size': must be >= min_size ({self.min_size}), got {self.max_size}")


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, hold_obj, hold_thread):
    touch = par[P_TOUCH] != 0
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        if par[P_ITERATIONS] and reg[DONE] >= par[P_ITERATIONS]:
            return steps.DRAIN
        cell = steps.below(reg, u, par[P_BUFFERS])
        size = par[P_MIN] + steps.below(reg, u, par[P_MAX] - par[P_MIN] + 1)
        replaces = hold_obj[cell] != steps.EMPTY
        if not steps.fits(reg, (2 if touch else 1) + (1 if replaces else 0), 0 if replaces else 1):
            return steps.DRAIN
        old = steps.take(hold_obj, cell)  # the new buffer first, then the old one's free (unique_ptr's assignment)
        ident = steps.alloc(reg, out, size, THREAD)
        if touch:
            steps.access(reg, out, ident, 0, THREAD)
        if replaces:
            steps.free(reg, out, old, THREAD)
        steps.hold(hold_obj, hold_thread, cell, ident, THREAD)
        reg[DONE] += 1


def build(keys: MallocLargeKeys, n_ops: int) -> Machine:
    par = np.array([keys.buffers, keys.min_size, keys.max_size, int(keys.touch), keys.iterations], np.int64)
    return machine(_kernel, n_ops, 1, keys.buffers, par)


MALLOC_LARGE = Classic("malloc-large", MallocLargeKeys, build)
