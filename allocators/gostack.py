"""gostack: goroutine stacks over call-depth traces, segmented (Go <= 1.2) and contiguous (Go >= 1.3), as numba kernels.

Not a heap allocator: the models replay a call-depth trace
(`workloads.calldepth`: CALL rows with the bytes a call puts on the stack,
RETURN rows, GC rows), so they are not in the heap allocator registry; the
entry point is `replay_stack(spec, trace) -> StackResult`.  Sources: Go 1.19's
`runtime/stack.go` (newstack, copystack, shrinkstack,
gcComputeStartingStackSize), `runtime/proc.go` (newproc1) and
`cmd/internal/obj/x86/obj6.go` (the prologue check); Go 1.2's
`src/pkg/runtime/stack.c` (newstack, oldstack, stackalloc) and `stack.h`
(StackMin 4096 before Go 1.2, 8192 in 1.2 per go1.2.md; StackExtra 1024,
StackGuard 256, StackSmall 128, StackBig 4096, StackTop 96); the numbers in
shared/reference/go-allocator.md section 9.

The prologue check (both models, amd64).  A CALL of `frame` bytes pushes the
8 B return address (`ret`); the callee's frame is F = frame - 8 (its TEXT $F,
saved frame pointer included).  At the callee's entry, with `room` = bytes
between the SP and the stack's (or segment's) low end, the prologue asks for
more stack when `room <= guard` if F <= StackSmall (128: a small frame may dip
128 B into the guard), else when `room - (F - 128) <= guard` (Go 1.2:
unconditionally when F >= StackBig).  Then the frame takes its F bytes.

Contiguous (Go 1.4+ sizes; Go 1.3 started at 8 KiB).  A goroutine's first CALL
allocates its stack, `start` = 2048 B (`fixedStack` on linux), with `base` =
32 B already used (newproc1's 4 words above the entry frame).  On a check
that fails, newstack doubles the size until `newsize - used >= F + guard`
(used = bytes above the callee's SP, its return address included; funcMaxSPDelta
= F; guard = stackGuard 928 on linux/amd64), and copystack allocates the new
stack, copies the `used` bytes and frees the old one: one copy, `used` bytes
copied, an alloc and a free.  Over `max_size` (maxstacksize, 1e9 B) the
goroutine dies of "stack overflow" (StackOverflow; exit 1 in the CLI).  At a
GC row every live goroutine is scanned: shrinkstack halves a stack when the
half is >= 2048 and `used + 800 < size / 4` (800 = StackLimit = stackGuard -
StackSmall: the room nosplit chains may take), copying the used bytes
(`shrink=0` turns it off, as GODEBUG=gcshrinkstackoff=1).  With `adaptive=1`
(Go 1.19's default, GODEBUG=adaptivestackstart) the GC then sets the starting
size of new goroutines to round2(average used bytes of the scanned stacks +
928), clamped to [2048, max_size].  A goroutine whose depth returns to 0
exits and its stack is freed (Go keeps a starting-size stack on the free G
list; not modelled).

Segmented (Go 1.2; `segment=4096` is Go 1.0-1.1).  A goroutine starts with one
`segment` (StackMin) = 8192 B segment whose top `top` = 96 B hold the Stktop
(the link to the previous segment).  When a call's check fails (the room is
measured to the current segment's low end, `guard` = 256) newstack allocates
a new segment of max(F + `extra`, `segment`) bytes (StackExtra 1024: "room
for more functions"; argument sizes are not in the trace, so no arguments are
copied and the bytes copied stay 0), the callee's frame starts below the new
Stktop (top + 8 B of lessstack's return address + F), and the return from
that callee (lessstack -> oldstack) frees the segment again.  A GC does not
touch segments.  Go 1.2 served segments of exactly StackMin from a per-M
cache of free segments (stackcacherefill, batches of 16) and other sizes
from malloc; both are counted as segment allocations, the others also as
`large_segments`.  `keep=1` is the remedy the segmented design lacked (not in
Go): a goroutine keeps the last segment it released and reuses it for its
next split when it is large enough, so a hot loop pays a split (the switch
through morestack and lessstack) but no allocation.

The hot split, precisely: a split is *hot* when the goroutine's newest stack
event was the release of a segment at the same call depth, i.e. the stack
steps over a boundary it just stepped back over.  A loop that calls across a
boundary N times makes N splits, N - 1 of them hot.  For the contiguous model
`hot_splits` counts its analogue: a growth of a goroutine whose last stack
event was a GC shrink (the shrink undone).

Costs (counters, `StackResult.counters`): calls, returns, gcs, goroutines
(started), seg_allocs / seg_frees (stack memory taken and given back: every
segment, every contiguous stack, old and new, of a copy), splits (segmented:
new segments entered; contiguous: growths), hot_splits, large_segments,
kept_reuses (keep=1), copies, bytes_copied, shrinks, peak_reserved (the most
stack bytes held at once by all goroutines, kept segments included; the old
and new stack of a copy are not counted together), peak_goroutine (the largest
stack one goroutine held: contiguous size, or its segments' sum),
final_reserved, start_size (the starting size at the end), max_depth.  Time
is the kernel's, measured by the caller (`replay_stack(repeats=...)`).

State: `params` (int64, slots P_*), `words` (int64 counters, slots W_*),
`gor` (per goroutine, fields G_*: live, size, used, depth, segments, last
release depth, shrunk flag, kept segment), the frame table `frames` (per
goroutine a run of its peak depth, at `offset[g]`: each frame's bytes) with
`split_used` beside it (the previous segment's used bytes when the frame
opened a segment, else -1), and `segs` (per goroutine its segment sizes, a
run of peak depth + 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from allocators.errors import AllocatorError, BadParameter
from allocators.registry import parse_value
from labcore.jitcache import holds_kernels
from workloads.calldepth import OP_CALL, OP_GC, OP_RETURN, CallTrace

holds_kernels(__file__)

# ---------------------------------------------------------------- parameter slots
P_START = 0  # contiguous: starting (and minimum) size; segmented: the StackMin segment
P_GUARD = 1
P_SMALL = 2
P_BIG = 3  # segmented: frames at least this big always split (StackBig); contiguous: unused
P_RET = 4
P_BASE = 5  # bytes used at a goroutine's start (contiguous: newproc1's 4 words; segmented: the Stktop)
P_MAX = 6
P_LIMIT = 7  # contiguous: StackLimit, added to used in the shrink test
P_SHRINK = 8
P_ADAPTIVE = 9
P_EXTRA = 10  # segmented: StackExtra
P_KEEP = 11
P_TIMELINE = 12
N_PARAMS = 13

# ---------------------------------------------------------------- counter slots
W_CALLS = 0
W_RETURNS = 1
W_GCS = 2
W_GOROUTINES = 3
W_SEG_ALLOCS = 4
W_SEG_FREES = 5
W_SPLITS = 6
W_HOT_SPLITS = 7
W_LARGE_SEGMENTS = 8
W_KEPT_REUSES = 9
W_COPIES = 10
W_BYTES_COPIED = 11
W_SHRINKS = 12
W_RESERVED = 13
W_PEAK_RESERVED = 14
W_PEAK_GOROUTINE = 15
W_START_SIZE = 16
W_MAX_DEPTH = 17
W_STATUS = 18  # 0, or ST_OVERFLOW
W_STATUS_ROW = 19
N_WORDS = 20
#: The counters' names, in slot order (W_CALLS .. W_MAX_DEPTH; W_RESERVED is reported as final_reserved).
COUNTER_NAMES = ("calls", "returns", "gcs", "goroutines", "seg_allocs", "seg_frees", "splits", "hot_splits",
                 "large_segments", "kept_reuses", "copies", "bytes_copied", "shrinks", "final_reserved",
                 "peak_reserved", "peak_goroutine", "start_size", "max_depth")

# ---------------------------------------------------------------- goroutine fields
G_LIVE = 0
G_SIZE = 1  # contiguous: stack size; segmented: the sum of its segments
G_USED = 2  # contiguous: bytes used; segmented: bytes used in the current segment
G_DEPTH = 3
G_SEGS = 4  # segmented: segments in the chain
G_LAST_RELEASE = 5  # segmented: depth of the last segment release, -1 after a split
G_SHRUNK = 6  # contiguous: last stack event was a shrink
G_KEPT = 7  # segmented: size of the kept segment (keep=1), 0 if none
N_G = 8

ST_OVERFLOW = 1


class StackOverflow(AllocatorError):
    """A goroutine's stack would pass the model's max_size (Go: "goroutine stack exceeds 1000000000-byte limit")."""


#: name -> (defaults, presets, one line).  Defaults are Go 1.19 linux/amd64 (contiguous) and Go 1.2 (segmented).
MODELS: dict[str, tuple[dict[str, int], dict[str, dict[str, int]], str]] = {
    "contiguous": (
        {"start": 2048, "guard": 928, "small": 128, "ret": 8, "base": 32, "max_size": 1_000_000_000,
         "limit": 800, "shrink": 1, "adaptive": 0},
        {"go1.4": {}, "go1.19": {"adaptive": 1}, "go1.3": {"start": 8192}},
        "Go >= 1.3: one stack per goroutine, doubled and copied on overflow, halved at GC under 1/4 used",
    ),
    "segmented": (
        {"segment": 8192, "guard": 256, "small": 128, "big": 4096, "ret": 8, "top": 96, "extra": 1024,
         "max_size": 1_000_000_000, "keep": 0},
        {"go1.2": {}, "go1.1": {"segment": 4096}},
        "Go <= 1.2: a linked list of segments, a new one on overflow, freed on return (the hot split)",
    ),
}


@dataclass
class StackResult:
    """One model over one call-depth trace: its counters (module docstring), the time, optionally the timeline."""

    model: str
    params: dict[str, int]
    rows: int
    counters: dict[str, int]
    seconds: float = float("nan")
    #: stack bytes reserved by all goroutines after each row (timeline=True), else None
    timeline: np.ndarray | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> int:
        return self.counters[name]

    @property
    def ns_per_row(self) -> float:
        return 1e9 * self.seconds / self.rows if self.rows else float("nan")


def parse_model(spec: str) -> tuple[str, dict[str, int]]:
    """`NAME`, `NAME:PRESET` or `NAME:key=value,...` -> (name, every parameter); BadParameter if bad."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadParameter("empty stack model spec (contiguous or segmented)")
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in MODELS:
        raise BadParameter(f"unknown stack model '{name}' (known: {', '.join(MODELS)})")
    defaults, presets, _ = MODELS[name]
    params = dict(defaults)
    given: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        if "=" not in item:
            if item not in presets:
                raise BadParameter(f"stack model spec '{spec}': '{item}' is neither key=value nor a preset of "
                                   f"{name} ({', '.join(presets)})")
            params.update(presets[item])
            continue
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise BadParameter(f"stack model {name}: unknown parameter '{key}' (valid: {', '.join(defaults)})")
        if key in given:
            raise BadParameter(f"stack model spec '{spec}': key '{key}' given twice")
        value = parse_value(text)
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise BadParameter(f"stack model {name}: {key} must be an integer, got '{text.strip()}'")
        given[key] = value
    params.update(given)
    _check(name, params)
    return name, params


def _check(name: str, params: dict[str, int]) -> None:
    def need(ok: bool, text: str) -> None:
        if not ok:
            raise BadParameter(f"stack model {name}: {text}")

    for key, value in params.items():
        need(0 <= value <= 1 << 40, f"{key}={value} outside 0..2^40")
    for flag in ("shrink", "adaptive", "keep"):
        if flag in params:
            need(params[flag] in (0, 1), f"{flag} must be 0 or 1, got {params[flag]}")
    first = params["start"] if name == "contiguous" else params["segment"]
    need(first >= 64, f"the first stack ({first} B) must be at least 64 B")
    need(params["max_size"] >= first, f"max_size={params['max_size']} is below the first stack ({first} B)")
    if name == "contiguous":
        need(first & (first - 1) == 0, f"start={first} must be a power of two (Go's stack sizes are)")
        need(params["base"] + params["ret"] < first - params["guard"],
             "base + ret must leave room above the guard of the first stack")
    else:
        need(params["top"] + params["ret"] < first - params["guard"],
             "top + ret must leave room above the guard of a segment")


def _param_array(name: str, params: dict[str, int], timeline: bool) -> np.ndarray:
    values = np.zeros(N_PARAMS, np.int64)
    contiguous = name == "contiguous"
    values[P_START] = params["start"] if contiguous else params["segment"]
    values[P_GUARD], values[P_SMALL], values[P_RET] = params["guard"], params["small"], params["ret"]
    values[P_BASE] = params["base"] if contiguous else params["top"]
    values[P_MAX] = params["max_size"]
    values[P_BIG] = 0 if contiguous else params["big"]
    values[P_LIMIT] = params.get("limit", 0)
    values[P_SHRINK] = params.get("shrink", 0)
    values[P_ADAPTIVE] = params.get("adaptive", 0)
    values[P_EXTRA] = params.get("extra", 0)
    values[P_KEEP] = params.get("keep", 0)
    values[P_TIMELINE] = int(timeline)
    return values


# ------------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def _check_fails(room, callee, p):
    """The callee's prologue: does it call morestack with `room` bytes below its entry SP?"""
    if p[P_BIG] > 0 and callee >= p[P_BIG]:
        return True
    if callee <= p[P_SMALL]:
        return room <= p[P_GUARD]
    return room - (callee - p[P_SMALL]) <= p[P_GUARD]


@njit(cache=True, inline="always")
def _note_peaks(w, g_size):
    if w[W_RESERVED] > w[W_PEAK_RESERVED]:
        w[W_PEAK_RESERVED] = w[W_RESERVED]
    if g_size > w[W_PEAK_GOROUTINE]:
        w[W_PEAK_GOROUTINE] = g_size


@njit(cache=True, inline="always")
def _start_goroutine(w, gor, g, size, used):
    """Goroutine g starts (its first CALL) on a stack (or first segment) of `size` bytes, `used` of them in use."""
    gor[g, G_LIVE] = 1
    gor[g, G_SIZE] = size
    gor[g, G_USED] = used
    gor[g, G_SEGS] = 1
    gor[g, G_LAST_RELEASE] = -1
    gor[g, G_SHRUNK] = 0
    w[W_GOROUTINES] += 1
    w[W_SEG_ALLOCS] += 1
    w[W_RESERVED] += size


@njit(cache=True, inline="always")
def _push(w, gor, g, frames, at, frame_bytes):
    """The callee's frame is on goroutine g's stack at frame-table index `at` (its depth is one more)."""
    frames[at] = frame_bytes
    gor[g, G_DEPTH] += 1
    w[W_CALLS] += 1
    if gor[g, G_DEPTH] > w[W_MAX_DEPTH]:
        w[W_MAX_DEPTH] = gor[g, G_DEPTH]


@njit(cache=True, inline="always")
def _round2(value):
    size = 1
    while size < value:
        size *= 2
    return size


@njit(cache=True)
def contiguous_kernel(op, frame, goroutine, offset, p, w, gor, frames, timeline):
    """Replay a call-depth trace on contiguous stacks; return the rows done (a row short on overflow)."""
    w[W_START_SIZE] = p[P_START]
    for row in range(op.shape[0]):
        code = op[row]
        g = goroutine[row]
        if code == OP_CALL:
            if gor[g, G_LIVE] == 0:
                _start_goroutine(w, gor, g, w[W_START_SIZE], p[P_BASE])
            size = gor[g, G_SIZE]
            entry = gor[g, G_USED] + p[P_RET]
            callee = max(frame[row] - p[P_RET], 0)
            if _check_fails(size - entry, callee, p):
                new_size = size * 2
                while new_size - entry < callee + p[P_GUARD]:
                    new_size *= 2
                if new_size > p[P_MAX]:
                    w[W_STATUS] = ST_OVERFLOW
                    w[W_STATUS_ROW] = row
                    return row
                w[W_SPLITS] += 1
                w[W_COPIES] += 1
                w[W_BYTES_COPIED] += entry
                w[W_SEG_ALLOCS] += 1
                w[W_SEG_FREES] += 1
                w[W_RESERVED] += new_size - size
                if gor[g, G_SHRUNK] != 0:
                    w[W_HOT_SPLITS] += 1
                gor[g, G_SHRUNK] = 0
                gor[g, G_SIZE] = new_size
            _push(w, gor, g, frames, offset[g] + gor[g, G_DEPTH], frame[row])
            gor[g, G_USED] += frame[row]
            _note_peaks(w, gor[g, G_SIZE])
        elif code == OP_RETURN:
            depth = gor[g, G_DEPTH] - 1
            gor[g, G_DEPTH] = depth
            gor[g, G_USED] -= frames[offset[g] + depth]
            w[W_RETURNS] += 1
            if depth == 0:  # the goroutine exits
                w[W_RESERVED] -= gor[g, G_SIZE]
                w[W_SEG_FREES] += 1
                gor[g, G_LIVE] = 0
        elif code == OP_GC:
            w[W_GCS] += 1
            scanned = 0
            stacks = 0
            for h in range(gor.shape[0]):
                if gor[h, G_LIVE] == 0:
                    continue
                used = gor[h, G_USED]
                scanned += used
                stacks += 1
                size = gor[h, G_SIZE]
                if p[P_SHRINK] != 0 and size // 2 >= p[P_START] and used + p[P_LIMIT] < size // 4:
                    gor[h, G_SIZE] = size // 2
                    gor[h, G_SHRUNK] = 1
                    w[W_RESERVED] -= size - size // 2
                    w[W_SHRINKS] += 1
                    w[W_COPIES] += 1
                    w[W_BYTES_COPIED] += used
                    w[W_SEG_ALLOCS] += 1
                    w[W_SEG_FREES] += 1
            if p[P_ADAPTIVE] != 0:
                start = p[P_START]
                if stacks > 0:
                    start = _round2(min(max(scanned // stacks + p[P_GUARD], p[P_START]), p[P_MAX]))
                    start = min(start, p[P_MAX])
                w[W_START_SIZE] = start
        if p[P_TIMELINE] != 0:
            timeline[row] = w[W_RESERVED]
    return op.shape[0]


@njit(cache=True, inline="always")
def _release(w, gor, g, size, keep):
    """A segment of `size` bytes leaves goroutine g's chain: kept (keep=1, none kept yet) or freed."""
    if keep != 0 and gor[g, G_KEPT] == 0:
        gor[g, G_KEPT] = size
    else:
        w[W_SEG_FREES] += 1
        w[W_RESERVED] -= size


@njit(cache=True)
def segmented_kernel(op, frame, goroutine, offset, p, w, gor, frames, split_used, segs, timeline):
    """Replay a call-depth trace on segmented stacks; return the rows done (a row short on overflow)."""
    w[W_START_SIZE] = p[P_START]
    for row in range(op.shape[0]):
        code = op[row]
        g = goroutine[row]
        if code == OP_CALL:
            if gor[g, G_LIVE] == 0:
                _start_goroutine(w, gor, g, p[P_START], p[P_BASE])
                segs[offset[g] + g] = p[P_START]
            depth = gor[g, G_DEPTH]
            current = segs[offset[g] + g + gor[g, G_SEGS] - 1]
            entry = gor[g, G_USED] + p[P_RET]
            callee = max(frame[row] - p[P_RET], 0)
            if _check_fails(current - entry, callee, p):
                need = max(callee + p[P_EXTRA], p[P_START])
                if gor[g, G_SIZE] + need > p[P_MAX]:
                    w[W_STATUS] = ST_OVERFLOW
                    w[W_STATUS_ROW] = row
                    return row
                kept = gor[g, G_KEPT]
                if kept >= need:
                    need = kept
                    gor[g, G_KEPT] = 0
                    w[W_KEPT_REUSES] += 1
                else:
                    if kept > 0:  # too small for this frame: given back
                        gor[g, G_KEPT] = 0
                        w[W_SEG_FREES] += 1
                        w[W_RESERVED] -= kept
                    w[W_SEG_ALLOCS] += 1
                    w[W_RESERVED] += need
                    if need != p[P_START]:
                        w[W_LARGE_SEGMENTS] += 1
                w[W_SPLITS] += 1
                if gor[g, G_LAST_RELEASE] == depth:
                    w[W_HOT_SPLITS] += 1
                gor[g, G_LAST_RELEASE] = -1
                split_used[offset[g] + depth] = gor[g, G_USED]
                segs[offset[g] + g + gor[g, G_SEGS]] = need
                gor[g, G_SEGS] += 1
                gor[g, G_SIZE] += need
                gor[g, G_USED] = p[P_BASE] + frame[row]
            else:
                split_used[offset[g] + depth] = -1
                gor[g, G_USED] += frame[row]
            _push(w, gor, g, frames, offset[g] + depth, frame[row])
            _note_peaks(w, gor[g, G_SIZE] + gor[g, G_KEPT])
        elif code == OP_RETURN:
            depth = gor[g, G_DEPTH] - 1
            gor[g, G_DEPTH] = depth
            w[W_RETURNS] += 1
            previous = split_used[offset[g] + depth]
            if previous >= 0:  # lessstack: back to the previous segment, this one released
                top = offset[g] + g + gor[g, G_SEGS] - 1
                gor[g, G_SEGS] -= 1
                gor[g, G_SIZE] -= segs[top]
                _release(w, gor, g, segs[top], p[P_KEEP])
                gor[g, G_USED] = previous
                gor[g, G_LAST_RELEASE] = depth
            else:
                gor[g, G_USED] -= frames[offset[g] + depth]
            if depth == 0:  # the goroutine exits: its first segment and any kept one are freed
                w[W_SEG_FREES] += 1
                w[W_RESERVED] -= gor[g, G_SIZE]
                if gor[g, G_KEPT] > 0:
                    w[W_SEG_FREES] += 1
                    w[W_RESERVED] -= gor[g, G_KEPT]
                    gor[g, G_KEPT] = 0
                gor[g, G_LIVE] = 0
                gor[g, G_SIZE] = 0
                gor[g, G_SEGS] = 0
        elif code == OP_GC:
            w[W_GCS] += 1
        if p[P_TIMELINE] != 0:
            timeline[row] = w[W_RESERVED]
    return op.shape[0]


# ------------------------------------------------------------------- Python shell
def _run(name: str, params: dict[str, int], trace: CallTrace, peak: np.ndarray,
         timeline: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """One replay on fresh state, its tables sized by `peak` (each goroutine's peak depth): (counter words,
    timeline, seconds in the kernel)."""
    p = _param_array(name, params, timeline)
    offset = np.zeros(max(peak.shape[0], 1), np.int64)
    if peak.shape[0] > 1:
        offset[1:] = np.cumsum(peak)[:-1]
    total = int(peak.sum())
    w = np.zeros(N_WORDS, np.int64)
    gor = np.zeros((max(peak.shape[0], 1), N_G), np.int64)
    frames = np.zeros(max(total, 1), np.int64)
    line = np.zeros(len(trace) if timeline else 1, np.int64)
    if name == "contiguous":
        started = time.perf_counter()
        contiguous_kernel(trace.op, trace.frame, trace.goroutine, offset, p, w, gor, frames, line)
    else:
        split_used = np.zeros(max(total, 1), np.int64)
        segs = np.zeros(total + gor.shape[0], np.int64)
        started = time.perf_counter()
        segmented_kernel(trace.op, trace.frame, trace.goroutine, offset, p, w, gor, frames, split_used, segs, line)
    return w, line, time.perf_counter() - started


def replay_stack(model: str, trace: CallTrace, repeats: int = 1, timeline: bool = False,
                 **params: Any) -> StackResult:
    """Replay `trace` on a stack model spec (`contiguous`, `segmented:go1.1`, `contiguous:adaptive=1`, ...);
    `params` override the spec's.  `repeats` timed runs (after one untimed run that compiles or loads the
    kernel): `seconds` is their median.  StackOverflow when a goroutine passes max_size."""
    if not isinstance(trace, CallTrace):
        raise TypeError(f"replay_stack() needs a CallTrace, got {type(trace).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
        raise BadParameter(f"repeats must be an integer >= 0, got {repeats!r}")
    name, resolved = parse_model(model)
    for key, value in params.items():
        if key not in resolved:
            raise BadParameter(f"stack model {name}: unknown parameter '{key}' (valid: {', '.join(resolved)})")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise BadParameter(f"stack model {name}: {key} must be an integer, got {value!r}")
        resolved[key] = value
    _check(name, resolved)
    peak = trace.validate()  # again: columns changed in place since construction must not reach the kernel
    w, line, _ = _run(name, resolved, trace, peak, timeline)
    if w[W_STATUS] == ST_OVERFLOW:
        row = int(w[W_STATUS_ROW])
        raise StackOverflow(f"{model}: row {row}: goroutine {int(trace.goroutine[row])}'s stack would exceed "
                            f"max_size={resolved['max_size']:,} B (CALL of {int(trace.frame[row])} B)")
    times = [_run(name, resolved, trace, peak, False)[2] for _ in range(repeats)]
    counters = {key: int(w[slot]) for slot, key in enumerate(COUNTER_NAMES)}
    counters["final_reserved"] = int(w[W_RESERVED])
    return StackResult(model=model, params=resolved, rows=len(trace), counters=counters,
                       seconds=float(np.median(times)) if times else float("nan"),
                       timeline=line if timeline else None)
