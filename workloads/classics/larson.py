"""larson: Paul Larson's server benchmark (mimalloc-bench `larson 5 8 1000 5000 100 4141 P`), as a trace.

What the original is.  A test driver from Microsoft Research (Larson and
Krishnan, "Memory allocation for long-running server applications", 1998)
that models a server: each of P threads owns a slot array of `chperthread`
blocks and, in a loop, frees a random slot of its own and mallocs a new
block of a random size into it (uniform in [8, 1000)), writing its first two
bytes.  After `rounds x chperthread` such operations a thread exits and
spawns a new thread on the same slot array, so the new thread frees blocks
its predecessor allocated ("bleeding").  Before the threads start, the main
thread allocates every block of every array, permutes the arrays and
replaces each block 4 times on average (the warm-up), so the workers' first
frees are of blocks another thread allocated.  The metric is allocations per
second over 5 seconds.

What it stresses.  Frees of blocks allocated by another thread, at a rate
set by the thread lifetime; heaps and thread caches of threads that have
exited while their blocks live on; a random-replacement working set of P x
chperthread blocks.

How the trace reproduces it.  Thread 0 is the main thread: the warm-up
allocates the P x `slots` blocks (ALLOC rows), shuffles them over the slots
(Fisher-Yates, no rows) and replaces `warmup` x P x `slots` random blocks
(FREE + ALLOC rows on thread 0).  Then the workers run, interleaved at
random one operation at a time: worker w frees a random slot of its range
(FREE), allocates a new block (ALLOC) and writes 2 bytes (ACCESS of 2 bytes,
`write=true`).  After `rounds` x `slots` operations the worker is replaced by
a new thread, with a new thread id, on the same slots: worker w of
generation g is thread 1 + w + P x (g mod G), G = (MAX_THREADS - 1) // P
(ids come round again after G generations, like an OS reusing the ids of
threads long gone).  The length is the trace's row count: the workers run
until the budget is reached, then every slot is freed by its current worker.

What it leaves out.  Time: the original's 5 seconds and its threads' speeds
become the trace's length and a random interleaving; the trace has no
thread-exit row, so an allocator model sees a new thread id, not the end of
the old thread.  The defaults are scaled to a 200k-row trace (the original:
5000 slots per thread, 100 rounds; here 250 and 10, so that every worker is
replaced several times at P = 4 and about once at P = 16).  `larson-sized`'s
sized delete is not a trace operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.classics import steps
from workloads.classics.keys import flag, key
from workloads.classics.machine import Classic, Machine, machine
from workloads.trace import MAX_THREADS

holds_kernels(__file__)

#: The main thread (the warm-up).
MAIN = 0
#: Own registers: the phase, a counter within it.
PHASE, COUNT = steps.OWN, steps.OWN + 1
#: Phases: the warm-up's allocations, its shuffle, its replacements; the workers.
ALLOCATING, SHUFFLING, REPLACING, WORKING = range(4)
#: Constant parameters (`par`).
P_THREADS, P_SLOTS, P_OPS_PER_THREAD, P_LO, P_HI, P_WARMUP, P_WRITE, P_GENERATIONS = range(8)
#: The worker writes this many bytes of each block.
WRITTEN = 2


@dataclass(frozen=True)
class LarsonKeys:
    threads: int = key(4, 1, (MAX_THREADS - 1) // 2, "worker threads (P)")
    slots: int = key(250, 1, 1 << 20, "blocks per worker (the original's chperthread: 5000)")
    rounds: int = key(10, 1, 1 << 20, "a worker exits after rounds x slots operations (the original: 100)")
    lo: int = key(8, 1, 1 << 20, "smallest request")
    hi: int = key(1000, 1, 1 << 20, "requests are uniform in [lo, hi) (lo when hi == lo)")
    warmup: int = key(4, 0, 64, "the warm-up replaces warmup x (all blocks) random blocks on the main thread")
    write: bool = flag(True, "each worker writes 2 bytes of every block it allocates (ACCESS rows)")

    def check(self) -> None:
        if self.hi < self.lo:
            raise ValueError(f"key 'hi': must be >= lo ({self.lo}), got {self.hi}")
        if self.threads * self.slots > 1 << 22:
            raise ValueError(f"key 'slots': threads x slots must be at most {1 << 22}, got "
                             f"{self.threads * self.slots}")


@njit(cache=True)
def _size(reg, u, par):
    span = par[P_HI] - par[P_LO]
    return par[P_LO] + steps.below(reg, u, span) if span > 0 else par[P_LO]


@njit(cache=True)
def _worker_thread(worker, generation, par):
    return 1 + worker + par[P_THREADS] * (generation % par[P_GENERATIONS])


@njit(cache=True)
def _replace(reg, u, out, par, hold_obj, hold_thread, cell, thread, write):
    """Free the block of `cell` and allocate a new one into it on `thread`: False if that does not fit."""
    if not steps.drop(reg, out, hold_obj, cell, thread, False):
        return False
    size = _size(reg, u, par)
    return steps.put(reg, out, hold_obj, hold_thread, cell, size, thread, thread,
                     min(size, WRITTEN) if write else -1) != steps.EMPTY


@njit(cache=True)
def _kernel(u, out, stop_at, reg, par, ops_left, generation, hold_obj, hold_thread):
    threads, slots = par[P_THREADS], par[P_SLOTS]
    cells = threads * slots
    while True:
        status = steps.pause(reg, u, stop_at)
        if status >= 0:
            return status
        phase = reg[PHASE]
        if phase == ALLOCATING:
            if reg[COUNT] == cells:
                reg[PHASE], reg[COUNT] = SHUFFLING, cells
                continue
            if steps.put(reg, out, hold_obj, hold_thread, reg[COUNT], _size(reg, u, par), MAIN, MAIN,
                         -1) == steps.EMPTY:
                return steps.DRAIN
            reg[COUNT] += 1
        elif phase == SHUFFLING:  # Fisher-Yates over the slots, from the top
            remaining = reg[COUNT]
            if remaining == 0:
                reg[PHASE], reg[COUNT] = REPLACING, 0
                continue
            victim = steps.below(reg, u, remaining)
            hold_obj[victim], hold_obj[remaining - 1] = hold_obj[remaining - 1], hold_obj[victim]
            reg[COUNT] = remaining - 1
        elif phase == REPLACING:
            if reg[COUNT] == par[P_WARMUP] * cells:
                for worker in range(threads):
                    ops_left[worker] = par[P_OPS_PER_THREAD]
                    steps.hand_over(hold_thread, worker * slots, slots, _worker_thread(worker, 0, par))
                reg[PHASE] = WORKING
                continue
            if not _replace(reg, u, out, par, hold_obj, hold_thread, steps.below(reg, u, cells), MAIN, False):
                return steps.DRAIN
            reg[COUNT] += 1
        else:
            worker = steps.below(reg, u, threads)
            if ops_left[worker] == 0:  # the worker exits; a new thread takes over its slots
                generation[worker] += 1
                ops_left[worker] = par[P_OPS_PER_THREAD]
                steps.hand_over(hold_thread, worker * slots, slots, _worker_thread(worker, generation[worker], par))
                continue
            thread = _worker_thread(worker, generation[worker], par)
            cell = worker * slots + steps.below(reg, u, slots)
            if not _replace(reg, u, out, par, hold_obj, hold_thread, cell, thread, par[P_WRITE] != 0):
                return steps.DRAIN
            ops_left[worker] -= 1


def build(keys: LarsonKeys, n_ops: int) -> Machine:
    par = np.array([keys.threads, keys.slots, keys.rounds * keys.slots, keys.lo, keys.hi, keys.warmup,
                    int(keys.write), (MAX_THREADS - 1) // keys.threads], np.int64)
    ops_left = np.zeros(keys.threads, np.int64)
    generation = np.zeros(keys.threads, np.int64)
    return machine(_kernel, n_ops, 2, keys.threads * keys.slots, par, ops_left, generation)


LARSON = Classic("larson", LarsonKeys, build)
