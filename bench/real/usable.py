"""Usable sizes: for every request size, what a real allocator grants beside what its model grants.

The claim tested (tests/test_usable_sizes.py): for every request size from 1 B
to 4 MiB, each model grants what its real counterpart reports as the usable
size in the same situation.  The real answer comes from the library itself, in
a child process running the small C helper bench/real/usable.c (compiled with
gcc into the lab's build cache by `bench.real.cleanheap.replayer_binary`, the
library LD_PRELOADed as for `bench.real`, the functions found with
dlsym(RTLD_DEFAULT, ...)):

    glibc      malloc_usable_size(malloc(size)), then free
    tcmalloc   tc_nallocx(size, 0)          (gperftools 2.10)
    jemalloc   nallocx(size, 0)
    mimalloc   mi_usable_size(malloc(size)), then free

"The same situation": the model replays the trace the helper runs, every size
malloc'ed and freed at once, in ascending order, from a fresh heap
(`usable_trace`), and its granted size for each ALLOC row is read from the
replay's AllocLog (`granted`).  mimalloc is asked after a malloc, not with
mi_good_size: up to 128 KiB (MI_MEDIUM_OBJ_SIZE_MAX) both are the bin's block
size, but above it mi_good_size only rounds the request up to the OS page,
while the block malloc returns is a large page of 64 KiB slices, and its
usable size is that page (mi_good_size is asked too, `good=True`, and the
test checks the two agree up to 128 KiB).  For tcmalloc and jemalloc the answer
is a function of the size alone; for glibc it is not: a request of at least
the mmap threshold that top cannot serve is mmapped (usable size: the mapping
less 16 B), and freeing a mapped chunk raises the threshold to its size, so
which sizes are mapped depends on what came before.  Replaying the same
sequence puts the model in the same state.

Sizes (`request_sizes`): every size 1 .. 64 KiB, then every multiple of 8 and
the size after it up to 4 MiB.  Above 64 KiB no allocator here changes its
answer between two such sizes: glibc's chunk sizes step at n = 16k + 9
(request2size: (n + 23) & ~15) and its mappings at pages, tcmalloc's classes
and pages, jemalloc's and mimalloc's size classes all at multiples of 8, so
every step is between a size of the grid and the next one on it.

One child process per library, one replay per model: the whole comparison of
one pair takes about a second once compiled.  `PAIRS` (real allocator, model
spec or None) comes from the lab's one pairing table (`bench.pairs`).
`python -m bench.real.usable` prints, per pair, how many sizes were compared
and the sizes that differ.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.pairs import MODEL_OF_REAL

SOURCE = Path(__file__).with_name("usable.c")
#: Real allocator -> the library function the helper asks.
USABLE_FUNCTIONS = {"glibc": "malloc_usable_size", "tcmalloc": "tc_nallocx", "jemalloc": "nallocx",
                    "mimalloc": "mi_usable_size"}
#: mimalloc's mi_good_size is its bin's block size up to here (MI_MEDIUM_OBJ_SIZE_MAX), a page rounding above.
MIMALLOC_GOOD_SIZE_EXACT_UP_TO = 128 << 10
#: (real allocator, model spec or None while it has no model), in the order of USABLE_FUNCTIONS.
PAIRS = tuple((real, MODEL_OF_REAL[real]) for real in USABLE_FUNCTIONS)
DENSE_UP_TO = 64 << 10
MAX_REQUEST = 4 << 20
TIMEOUT_S = 300.0


def request_sizes(max_size: int = MAX_REQUEST, dense_up_to: int = DENSE_UP_TO) -> np.ndarray:
    """Ascending int64 request sizes: all of 1..dense_up_to, then 8k and 8k + 1 up to max_size (module docstring)."""
    if not 1 <= dense_up_to <= max_size:
        raise ValueError(f"request_sizes: need 1 <= dense_up_to ({dense_up_to}) <= max_size ({max_size})")
    dense = np.arange(1, dense_up_to + 1, dtype=np.int64)
    steps = np.arange((dense_up_to // 8 + 1) * 8, max_size + 1, 8, dtype=np.int64)
    sparse = np.stack([steps, steps + 1], axis=1).ravel()
    return np.concatenate([dense, sparse[sparse <= max_size]])


def usable_trace(sizes: np.ndarray):  # -> workloads.trace.Trace
    """The helper's sequence as a trace: ALLOC size, FREE, for each size in order (one object id, reused)."""
    from workloads.trace import OP_ALLOC, OP_FREE, Trace

    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    n = len(sizes)
    op = np.empty(2 * n, np.int8)
    op[0::2], op[1::2] = OP_ALLOC, OP_FREE
    size = np.zeros(2 * n, np.int64)
    size[0::2] = sizes
    return Trace(op=op, obj=np.zeros(2 * n, np.int64), size=size, thread=np.zeros(2 * n, np.int32),
                 meta={"generator": "bench.real.usable", "sizes": n})


def real_usable_sizes(allocator: str, sizes: np.ndarray, good: bool = False) -> np.ndarray:
    """The real library's usable size for each of `sizes`, in order (int64), from bench/real/usable.c.

    good: ask mimalloc's mi_good_size instead of mi_usable_size after malloc (mimalloc only).

    Raises ValueError (no usable-size function for that allocator), RealAllocatorMissing (library not
    installed), CompilerMissing (no gcc), RealReplayFailed (the helper failed).
    """
    from bench.real import RealReplayFailed, library_path
    from bench.real.cleanheap import replayer_binary, run_replayer

    if allocator not in USABLE_FUNCTIONS:
        raise ValueError(f"no usable-size function for {allocator!r} (known: {', '.join(USABLE_FUNCTIONS)})")
    if good and allocator != "mimalloc":
        raise ValueError("good=True asks mimalloc's mi_good_size; other allocators have no such function")
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if len(sizes) and int(sizes.min()) < 0:
        raise ValueError("request sizes must be >= 0")
    library = library_path(allocator)
    binary = replayer_binary(SOURCE)
    with tempfile.TemporaryDirectory(prefix="usable-") as scratch:
        request, answer = Path(scratch) / "sizes.bin", Path(scratch) / "usable.bin"
        sizes.tofile(request)
        command = [str(binary), allocator, str(request), str(answer), *(["good"] if good else [])]
        completed, figures = run_replayer(command, library, TIMEOUT_S,
                                          f"usable sizes of {allocator}")
        if completed.returncode != 0 or not isinstance(figures, dict) or figures.get("sizes") != len(sizes):
            raise RealReplayFailed(f"usable sizes of {allocator} failed (exit status {completed.returncode}): "
                                   f"{completed.stderr.strip()[-2000:]}")
        return np.fromfile(answer, dtype=np.int64)


def model_granted_sizes(spec: str, sizes: np.ndarray) -> np.ndarray:
    """The model's granted size for each of `sizes`, replaying `usable_trace(sizes)` once (int64, in order)."""
    from bench.harness import build_for_trace

    trace = usable_trace(sizes)
    log = build_for_trace(spec, trace).replay(trace)
    return np.ascontiguousarray(log.granted[0::2], dtype=np.int64)


def differences(real: np.ndarray, model: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int, int]]:
    """(size, real answer, model answer) for every size where they differ."""
    where = np.flatnonzero(real != model)
    return [(int(sizes[i]), int(real[i]), int(model[i])) for i in where]


def main(argv: list[str] | None = None) -> int:
    """Print, per pair with a model, the sizes compared and the ones that differ (at most 20 listed)."""
    from bench.real import RealAllocatorMissing
    from bench.real.cleanheap import CompilerMissing

    sizes = request_sizes()
    for real, spec in PAIRS:
        if spec is None:
            print(f"{real}: no model yet")
            continue
        try:
            got = real_usable_sizes(real, sizes)
        except (RealAllocatorMissing, CompilerMissing) as error:
            print(f"{real}: skipped: {error}")
            continue
        diff = differences(got, model_granted_sizes(spec, sizes), sizes)
        print(f"{real} ({USABLE_FUNCTIONS[real]}) vs {spec}: {len(sizes)} sizes 1 B .. {int(sizes[-1])} B, "
              f"{len(diff)} differ")
        for size, real_answer, model_answer in diff[:20]:
            print(f"  size {size}: real {real_answer}, model {model_answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
