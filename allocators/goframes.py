"""goframes: a goroutine's stack frames, where the objects that do not escape live (bump in, freed at return).

What it models.  In Go an object that escape analysis keeps off the heap
lives in its function's stack frame: allocating it is moving the stack
pointer, and it is gone, with the whole frame, when the function returns
(the founding notes, "Детали аллокации на стеке").  This model replays a
program's *frame table* (workloads.escape: `stack_op`, `stack_size`) over a
simulated stack and reports what the stack side of the program costs; the
heap side is the program's heap trace, replayed by any heap allocator.

Design.  One stack pointer `sp` (an offset from the stack's base, growing
up), and one saved frame base per open frame:

- CALL(bytes): the frame starts at `sp` (its base is pushed), and its own
  locals take `bytes`, rounded up to `ALIGN` (8 B): `sp += bytes`;
- PUSH(bytes): a non-escaping object is bump-allocated at `sp` (its address),
  `sp += round_up(bytes, 8)`;
- RET: `sp` = the frame's base: every object of the frame is freed at once,
  whatever their number (one store).

It is not a heap allocator: it takes a frame table, not a trace, and has no
single-object free, so it is not in allocators' registry (the conformance
suite runs every registered heap allocator); `replay_frames` is its entry.
Go grows a goroutine's stack by copying it into one twice as large,
from `fixedStack` = 2 KiB on linux (shared/reference/go-allocator.md section
9); `reserved_bytes` is the smallest `STACK_START` x 2^k that holds the
peak, `grows` the k copies it took (Go's own guard bytes and the runtime's
frames are not modelled).  Stack growth and shrinking themselves, segmented
and contiguous, are another model's subject.

Figures (`FrameStats`): frames (CALLs), objects and bytes (PUSHes,
requested), bump_ops (every move of `sp` up: CALLs and PUSHes), peak_bytes
(the highest `sp`), reserved_bytes, grows, and a locality proxy comparable
with the heap's `alloc_same_line_rate`: pushes whose address is in the same
64 B line as the previous push's (same_line_rate), and the same for 4 KiB
pages (same_page_rate).

Costs: O(1) per event (a CALL or RET is a push or pop of the base stack).
State: `bases` (one int64 per open frame, the stack of frame bases) and the
scalar `sp`; addresses of the pushed objects come back in `addr`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from workloads.escape import S_CALL, S_PUSH, S_RET
from workloads.trace import MAX_REQUEST_SIZE, TraceError

holds_kernels(__file__)

#: Stack slot alignment (amd64).
ALIGN = 8
#: The stack a goroutine starts with (runtime/stack.go fixedStack on linux; doubled by copying while it is short).
STACK_START = 2048
#: Counter slots of the kernel's `counts` array.
(C_FRAMES, C_OBJECTS, C_BYTES, C_BUMPS, C_PEAK, C_SAME_LINE, C_SAME_PAGE, C_PAIRS) = range(8)
N_COUNTS = 8


@dataclass(frozen=True)
class FrameStats:
    frames: int
    objects: int
    bytes: int
    bump_ops: int
    peak_bytes: int
    reserved_bytes: int
    grows: int
    same_line_rate: float
    same_page_rate: float
    seconds: float  # the kernel's time (median of the repeats)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@njit(cache=True)
def _frames_kernel(stack_op, stack_size, max_depth, addr, counts):
    """Replay the frame table (module docstring); fill addr (PUSH rows; -1 elsewhere) and counts."""
    bases = np.zeros(max_depth + 1, np.int64)
    depth = 0
    sp = 0
    previous = -1
    for index in range(stack_op.shape[0]):
        code = stack_op[index]
        addr[index] = -1
        if code == 0:  # S_CALL
            bases[depth] = sp
            depth += 1
            sp += (stack_size[index] + 7) & ~np.int64(7)
            counts[0] += 1
            counts[3] += 1
        elif code == 1:  # S_RET: the frame and everything in it, at once
            depth -= 1
            sp = bases[depth]
        else:  # S_PUSH
            addr[index] = sp
            if previous >= 0:
                counts[7] += 1
                if (previous >> 6) == (sp >> 6):
                    counts[5] += 1
                if (previous >> 12) == (sp >> 12):
                    counts[6] += 1
            previous = sp
            sp += (stack_size[index] + 7) & ~np.int64(7)
            counts[1] += 1
            counts[2] += stack_size[index]
            counts[3] += 1
        if sp > counts[4]:
            counts[4] = sp


def check_frames(stack_op: np.ndarray, stack_size: np.ndarray) -> int:
    """Validate a frame table (the kernel trusts it); return its deepest nesting.  TraceError naming the first bad
    event: an unknown code, a size out of range, a RET or PUSH with no frame open, a frame left open at the end."""
    if not isinstance(stack_op, np.ndarray) or not isinstance(stack_size, np.ndarray):
        raise TraceError("a frame table is two numpy arrays (stack_op, stack_size)")
    if stack_op.ndim != 1 or stack_op.shape != stack_size.shape:
        raise TraceError(f"frame table: stack_op and stack_size must be 1-D of one length "
                         f"(got {stack_op.shape} and {stack_size.shape})")
    codes = stack_op.astype(np.int64)
    sizes = stack_size.astype(np.int64)
    bad = np.flatnonzero((codes < S_CALL) | (codes > S_PUSH))
    if bad.size:
        raise TraceError(f"frame table event {bad[0]}: unknown code {codes[bad[0]]}", int(bad[0]))
    bad = np.flatnonzero((sizes < 0) | (sizes > MAX_REQUEST_SIZE) | ((codes == S_RET) & (sizes != 0)))
    if bad.size:
        raise TraceError(f"frame table event {bad[0]}: size {sizes[bad[0]]} out of range for a "
                         f"{('call', 'ret', 'push')[codes[bad[0]]]}", int(bad[0]))
    depth = np.cumsum(np.where(codes == S_CALL, 1, np.where(codes == S_RET, -1, 0)))
    open_before = np.concatenate(([0], depth[:-1])) if depth.size else depth
    bad = np.flatnonzero((depth < 0) | ((codes == S_PUSH) & (open_before < 1)))
    if bad.size:
        raise TraceError(f"frame table event {bad[0]}: a {('call', 'ret', 'push')[codes[bad[0]]]} with no frame open",
                         int(bad[0]))
    if depth.size and depth[-1] != 0:
        raise TraceError(f"frame table: {depth[-1]} frame(s) still open at the end")
    return int(depth.max()) if depth.size else 0


def replay_frames(stack_op: np.ndarray, stack_size: np.ndarray, repeats: int = 1) -> tuple[FrameStats, np.ndarray]:
    """Replay a frame table `repeats` times (validated first); its figures and the PUSH events' addresses."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1 (got {repeats!r})")
    deepest = check_frames(stack_op, stack_size)
    stack_op = np.ascontiguousarray(stack_op, np.int8)
    stack_size = np.ascontiguousarray(stack_size, np.int64)
    addr = np.empty(stack_op.shape[0], np.int64)
    tiny = np.array([S_CALL, S_PUSH, S_RET], np.int8)  # compile or load the kernel outside the clock
    _frames_kernel(tiny, np.array([8, 8, 0], np.int64), 1, np.empty(3, np.int64), np.zeros(N_COUNTS, np.int64))
    times = []
    counts = np.zeros(N_COUNTS, np.int64)
    for _ in range(repeats):
        counts = np.zeros(N_COUNTS, np.int64)
        started = time.perf_counter()
        _frames_kernel(stack_op, stack_size, deepest, addr, counts)
        times.append(time.perf_counter() - started)
    peak = int(counts[C_PEAK])
    reserved, grows = STACK_START, 0
    while reserved < peak:
        reserved, grows = reserved * 2, grows + 1
    pairs = max(int(counts[C_PAIRS]), 1)
    stats = FrameStats(
        frames=int(counts[C_FRAMES]), objects=int(counts[C_OBJECTS]), bytes=int(counts[C_BYTES]),
        bump_ops=int(counts[C_BUMPS]), peak_bytes=peak, reserved_bytes=reserved, grows=grows,
        same_line_rate=int(counts[C_SAME_LINE]) / pairs if counts[C_PAIRS] else 0.0,
        same_page_rate=int(counts[C_SAME_PAGE]) / pairs if counts[C_PAIRS] else 0.0,
        seconds=float(np.median(times)))
    return stats, addr
