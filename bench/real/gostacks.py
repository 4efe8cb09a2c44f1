"""Real Go's goroutine stacks beside the contiguous model: a recursion to depth D, stack bytes real and modelled.

`measure_real_stacks(depths)` builds bench/real/gostack/main.go (its header
says how it finds a goroutine's stack) with `go build -gcflags=-S` on first
use (`bench.real.go.build_go`, cached under ~/.cache/allocator-lab/gostack/),
reads the frame size of each recursive function and of its goroutine's entry
function from the compiler's `TEXT main.recSmall(SB), ABIInternal, $F-8`
lines, and runs it with GOGC=off (no GC: no shrinking, the adaptive starting
size stays 2 KiB; GODEBUG=adaptivestackstart=0 besides) and GOMAXPROCS=1.

For each variant (a small, a medium and a large frame) and depth D the
goroutine's call-depth trace is: CALL entry (8 + its $F bytes), then D + 1
CALLs of rec (8 + $F each), which `allocators.gostack`'s contiguous model
replays (Go 1.19 defaults).  Each row of the result has the real stack size
(the goroutine's [lo, hi) from the runtime), the model's (`peak_goroutine`),
the StackInuse delta (equal to the stack size from 32 KiB up, where a stack
has a span of its own), the real used bytes at the probe against the trace's
(the bytes the model accounts: 32 B of newproc1 + the frames; the probe adds
its own call, 8 + its $F), and `match`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from allocators.gostack import replay_stack
from bench.real import RealReplayFailed
from bench.real.go import build_go, build_log
from workloads.calldepth import descend

SOURCE = Path(__file__).with_name("gostack") / "main.go"
VARIANTS = {"small": "recSmall", "medium": "recMedium", "large": "recLarge"}
ENTRIES = {"small": "entrySmall", "medium": "entryMedium", "large": "entryLarge"}
#: Depths measured by default per variant (from a 2 KiB stack up to 32 MiB).
DEFAULT_DEPTHS = (0, 1, 10, 11, 30, 100, 1000, 3000)
#: The return address a CALL pushes on amd64.
RET = 8
_TEXT = re.compile(r"TEXT\s+main\.(\w+)\(SB\),\s*([\w|]+),\s*\$(\d+)-(\d+)")
MAX_DEPTH = 100_000


def frames_of(log: str) -> dict[str, int]:
    """Function name -> its frame size ($F) from `-gcflags=-S` output."""
    return {match.group(1): int(match.group(3)) for match in _TEXT.finditer(log)}


def gostack_binary() -> tuple[Path, dict[str, int]]:
    """The built program and its functions' frame sizes."""
    binary = build_go(SOURCE, "gostack", gcflags="-S")
    frames = frames_of(build_log(binary))
    missing = [name for name in (*VARIANTS.values(), *ENTRIES.values(), "probe") if name not in frames]
    if missing:
        raise RealReplayFailed(f"real Go: no TEXT line for {', '.join(missing)} in the -S output of {SOURCE}")
    return binary, frames


def measure_real_stacks(depths: tuple[int, ...] | list[int] = DEFAULT_DEPTHS,
                        variants: tuple[str, ...] | list[str] = tuple(VARIANTS),
                        timeout: float = 120.0) -> list[dict[str, Any]]:
    """One row per variant x depth: real Go's stack bytes beside the contiguous model's (module docstring)."""
    for depth in depths:
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
            raise ValueError(f"real Go stacks: depth must be an integer in 0..{MAX_DEPTH}, got {depth!r}")
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"real Go stacks: unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    binary, frames = gostack_binary()
    env = {**os.environ, "GOGC": "off", "GOMAXPROCS": "1", "GODEBUG": "adaptivestackstart=0"}
    rows = []
    for variant in variants:
        try:
            done = subprocess.run([str(binary), variant, *map(str, depths)], env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RealReplayFailed(f"real Go stacks: {variant} did not finish within {timeout} s") from None
        if done.returncode != 0:
            raise RealReplayFailed(f"real Go stacks: the program failed (exit {done.returncode}): "
                                   f"{done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout)
        entry, rec = RET + frames[ENTRIES[variant]], RET + frames[VARIANTS[variant]]
        for run in result["runs"]:
            trace = descend([entry] + [rec] * (run["depth"] + 1), meta={"real": "gostack", "variant": variant})
            model = replay_stack("contiguous", trace)
            model_used = 32 + entry + rec * (run["depth"] + 1)
            rows.append({
                "variant": variant, "frame": frames[VARIANTS[variant]], "entry_frame": frames[ENTRIES[variant]],
                "depth": run["depth"], "real_stack_bytes": run["stack_bytes"],
                "model_stack_bytes": model["peak_goroutine"], "match": run["stack_bytes"] == model["peak_goroutine"],
                "model_grows": model["splits"], "model_bytes_copied": model["bytes_copied"],
                "stackinuse_delta": run["stackinuse_delta"], "real_used_at_probe": run["probe_used"],
                "model_used_at_probe": model_used + RET + frames["probe"], "go_version": result["go_version"],
            })
    return rows


def first_growth_depths(limit: int = 10_000) -> dict[str, int]:
    """Per variant, the smallest depth at which the contiguous model grows the goroutine's 2 KiB stack (the real
    check then measures it and the depth before it); a variant whose depth 0 already grows is left out."""
    _, frames = gostack_binary()
    edges = {}
    for variant in VARIANTS:
        entry, rec = RET + frames[ENTRIES[variant]], RET + frames[VARIANTS[variant]]
        for depth in range(limit):
            if replay_stack("contiguous", descend([entry] + [rec] * (depth + 1)))["splits"]:
                if depth > 0:
                    edges[variant] = depth
                break
    return edges


def model_steps(variant: str, max_depth: int) -> list[tuple[int, int]]:
    """(depth, stack bytes) where the contiguous model's stack size changes as `variant` recurses to `max_depth`
    (from one replay with a timeline: the size after the k-th CALL is the size at depth k - 2)."""
    _, frames = gostack_binary()
    entry, rec = RET + frames[ENTRIES[variant]], RET + frames[VARIANTS[variant]]
    result = replay_stack("contiguous", descend([entry] + [rec] * (max_depth + 1)), timeline=True)
    assert result.timeline is not None
    sizes = result.timeline[1:max_depth + 2].tolist()  # after the CALL of rec at depth 0, 1, ..., max_depth
    return [(depth, size) for depth, size in enumerate(sizes) if depth == 0 or size != sizes[depth - 1]]
