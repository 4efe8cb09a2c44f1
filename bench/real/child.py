"""The child side of `bench.real`: one real allocator, preloaded, replaying a trace in this process.

`python -m bench.real --child IN OUT` runs `run_child` in a fresh process whose
malloc is the allocator asked for (`bench.real.replay_real` starts it).

In the child.  `ctypes.CDLL(None)` looks up malloc, free, realloc and
malloc_usable_size in the process's global symbol scope, where a preloaded
library comes first.  The preload check (`SIGNATURE_SYMBOLS`): `dladdr` must
place both `malloc` and a symbol only that allocator exports (jemalloc
`mallctl`, tcmalloc `MallocExtension_GetNumericProperty`, mimalloc `mi_version`,
Scudo `__scudo_print_stats`; glibc `gnu_get_libc_version`) in the library asked
for (glibc: libc.so.6, no preload), else the child exits with an error and the
parent raises RealReplayFailed.  For Scudo this matters more than for the
others: its statistic, `mallinfo2`, also exists in glibc, so a preload that did
not take would otherwise report glibc's figures under Scudo's name.

The function addresses are passed as plain integers to a numba kernel, which
calls them through small LLVM intrinsics (`inttoptr` + an indirect call), so
no Python runs per operation and the compiled kernel holds no process-specific
address (it can be cached on disk).

What each row does:
- ALLOC: `malloc(size)`; REALLOC: `realloc(ptr, size)`; FREE: `free(ptr)`.
- ACCESS: writes one byte in every 64 B line of the named range (size bytes from
  the start, 0 = the whole object).
- `touch` (an option) decides what an ALLOC/REALLOC writes into its new block, so
  that RSS reflects use: "page" (default) one byte in every 4 KiB page plus the
  last byte, "first" only the first byte, "none" nothing (RSS then shows only
  what the allocator itself writes: headers, free-list links).

Timing.  The kernel is compiled (or loaded from cache) and warmed on a
two-row trace first.  Each repeat zeroes the pointer table (outside the clock),
times the kernel alone over the whole trace, then frees whatever the trace left
live (outside the clock) so the next repeat starts with no live blocks.  A real
allocator keeps state between repeats: memory it kept (glibc's top chunk and
bins, jemalloc's dirty pages until decay, tcmalloc's page heap and thread
caches, mimalloc's segments) is reused, so the first repeat pays page faults the
others may not.  The per-repeat times are all reported; throughput uses the
median.

Footprint.  Three views, all taken in the child:
- RSS: `/proc/self/status` VmHWM.  Before the first repeat the child resets the
  high-water mark to the current RSS (`echo 5 > /proc/self/clear_refs`), so
  `rss_growth_bytes` = VmHWM after the repeats - VmRSS before them: the resident
  memory the replay added (allocator memory + touched blocks; the trace arrays
  and the pointer table already exist before).  If the reset is not permitted,
  the growth is a lower bound (`hwm_reset` false).  `peak_rss_bytes` is the
  whole child's VmHWM (Python, numpy and numba included).
- The allocator's own statistics (see `allocator_stats`): glibc `mallinfo2()`,
  jemalloc `mallctl("stats.*")` after `epoch`, tcmalloc
  `MallocExtension_GetNumericProperty`, mimalloc `mi_process_info`, Scudo its
  own `mallinfo2()` (hblkhd = Scudo's StatMapped counter: bytes it has mapped
  for the primary's size-class regions, 256 KiB for each class at first, and
  for the secondary's large blocks; uordblks = StatAllocated, fordblks = StatFree).
  Scudo's other statistics entry point, `__scudo_print_stats`, only prints text
  to stderr, and `malloc_info` writes an XML size histogram, so neither is used.  They are
  snapshotted before the repeats ("baseline"), during one extra untimed pass at
  the row where the trace's live requested bytes peak ("at_peak_live"), at the
  end of the trace ("end") and after freeing everything ("after_free").
  `peak_heap_bytes` = max(at_peak_live, end) - baseline of the heap measure named
  in `peak_heap_measure` (bytes the allocator holds from the OS).  When that
  counter did not grow at all (mimalloc commits memory in large steps, and what
  it committed before the loop can cover a small replay), RSS growth is used
  instead and `peak_heap_measure` says so.
- The extra pass also calls `malloc_usable_size` after every ALLOC/REALLOC:
  live granted bytes, their peak, and internal fragmentation at that peak
  (1 - live requested / live granted).  `overhead_factor` = peak_heap_bytes /
  peak live requested (the trace's exact figure); `rss_overhead_factor` uses the
  RSS growth instead.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from bench.real import (
    _EXIT_OOM,
    _OP_ALLOC,
    _OP_FREE,
    _OP_REALLOC,
    READY_SUFFIX,
    SIGNATURE_SYMBOLS,
    TOUCH_MODES,
    RealAllocatorMissing,
    library_path,
    peak_live_requested,
)
from labcore.jitcache import holds_kernels

holds_kernels(__file__)


# ---------------------------------------------------------------- calls through raw function addresses
_I64 = ir.IntType(64)


@intrinsic
def _call_1(typingctx, function, arg):
    """int64 function(int64): malloc(size), malloc_usable_size(ptr)."""
    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.FunctionType(_I64, [_I64]).as_pointer())
        return builder.call(pointer, [args[1]])
    return types.int64(types.int64, types.int64), codegen


@intrinsic
def _call_2(typingctx, function, first, second):
    """int64 function(int64, int64): realloc(ptr, size)."""
    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.FunctionType(_I64, [_I64, _I64]).as_pointer())
        return builder.call(pointer, [args[1], args[2]])
    return types.int64(types.int64, types.int64, types.int64), codegen


@intrinsic
def _call_void(typingctx, function, arg):
    """void function(int64): free(ptr)."""
    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [_I64]).as_pointer())
        builder.call(pointer, [args[1]])
        return context.get_dummy_value()
    return types.none(types.int64, types.int64), codegen


@intrinsic
def _poke(typingctx, address, value):
    """Store one byte at a raw address."""
    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        builder.store(builder.trunc(args[1], ir.IntType(8)), pointer)
        return context.get_dummy_value()
    return types.none(types.int64, types.int64), codegen


# ---------------------------------------------------------------- kernels
@njit(cache=True, inline="always")
def _touch_block(pointer, size, touch):
    if touch == 2:
        for offset in range(0, size, 4096):
            _poke(pointer + offset, 1)
        _poke(pointer + size - 1, 1)
    elif touch == 1:
        _poke(pointer, 1)


@njit(cache=True)
def replay_kernel(op, obj, size, start, stop, pointers, current, functions, touch, granted, totals):
    """Run rows [start, stop) through the real allocator; return the row where malloc failed, or -1.

    pointers[obj] is the object's block (0 when not live), current[obj] its requested size.
    functions = [malloc, free, realloc, malloc_usable_size] addresses.  With `granted` true, also
    keeps totals = [live requested, live granted, peak live granted, live requested at that peak] and
    per-object granted sizes in current[n_ids + obj].
    """
    malloc_fn = functions[0]
    free_fn = functions[1]
    realloc_fn = functions[2]
    usable_fn = functions[3]
    n_ids = pointers.shape[0]
    for row in range(start, stop):
        code = op[row]
        ident = obj[row]
        if code == _OP_ALLOC:
            request = size[row]
            pointer = _call_1(malloc_fn, request)
            if pointer == 0:
                return row
            pointers[ident] = pointer
            current[ident] = request
            _touch_block(pointer, request, touch)
            if granted:
                got = _call_1(usable_fn, pointer)
                current[n_ids + ident] = got
                totals[0] += request
                totals[1] += got
        elif code == _OP_FREE:
            _call_void(free_fn, pointers[ident])
            pointers[ident] = 0
            if granted:
                totals[0] -= current[ident]
                totals[1] -= current[n_ids + ident]
        elif code == _OP_REALLOC:
            request = size[row]
            pointer = _call_2(realloc_fn, pointers[ident], request)
            if pointer == 0:
                return row
            if granted:
                got = _call_1(usable_fn, pointer)
                totals[0] += request - current[ident]
                totals[1] += got - current[n_ids + ident]
                current[n_ids + ident] = got
            pointers[ident] = pointer
            current[ident] = request
            _touch_block(pointer, request, touch)
        else:
            pointer = pointers[ident]
            length = size[row]
            if length == 0:
                length = current[ident]
            for offset in range(0, length, 64):
                _poke(pointer + offset, 2)
        if granted and totals[1] > totals[2]:
            totals[2] = totals[1]
            totals[3] = totals[0]
    return -1


@njit(cache=True)
def free_all(pointers, free_fn):
    """free() every block still live; return how many there were."""
    count = 0
    for ident in range(pointers.shape[0]):
        if pointers[ident] != 0:
            _call_void(free_fn, pointers[ident])
            pointers[ident] = 0
            count += 1
    return count


# ---------------------------------------------------------------- child side
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
    )]


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _address(process: ctypes.CDLL, name: str) -> int:
    return ctypes.cast(getattr(process, name), ctypes.c_void_p).value or 0


def _defining_library(address: int) -> str:
    info = _DlInfo()
    libdl = ctypes.CDLL("libc.so.6")
    libdl.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    if libdl.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) and info.dli_fname:
        return os.path.realpath(info.dli_fname.decode())
    return "?"


def preload_problem(process: ctypes.CDLL, allocator: str, malloc_from: str) -> str | None:
    """Why this process's malloc is not `allocator`'s (None when it is): the preload check of the module docstring.

    Both `malloc` (already resolved to `malloc_from`) and the allocator's SIGNATURE_SYMBOLS entry must be defined
    by its library: LD_PRELOAD's (which must be the library `library_path` finds), or libc.so.6 for glibc.
    """
    preloaded = os.environ.get("LD_PRELOAD")
    if allocator == "glibc":
        if preloaded:
            return f"glibc asked for, but LD_PRELOAD={preloaded}"
        expected = malloc_from if os.path.basename(malloc_from).startswith("libc.so") else "libc.so.6"
    else:
        if not preloaded:
            return f"{allocator} asked for, but nothing is preloaded (LD_PRELOAD unset): malloc is {malloc_from}'s"
        expected = os.path.realpath(preloaded)
        try:
            wanted = os.path.realpath(library_path(allocator) or "")
        except RealAllocatorMissing as error:
            return str(error)
        if expected != wanted:
            return f"{allocator} asked for, but LD_PRELOAD={preloaded} is not its library {wanted}"
    if malloc_from != expected:
        return f"{allocator} asked for, but malloc resolves to {malloc_from}, not {expected}"
    symbol = SIGNATURE_SYMBOLS[allocator]
    address = _address(process, symbol) if hasattr(process, symbol) else 0
    if not address:
        return f"{allocator} asked for, but its symbol {symbol} is not in the process (malloc is {malloc_from}'s)"
    if _defining_library(address) != expected:
        return f"{allocator} asked for, but {symbol} is defined by {_defining_library(address)}, not {expected}"
    return None


class _Stats:
    """Reads the allocator's own statistics; `measure` names the heap figure used for peak_heap_bytes."""

    def __init__(self, allocator: str, process: ctypes.CDLL) -> None:
        self.allocator = allocator
        self.process = process
        self.version: str | None = None
        self.measure = "none"
        self.available = True
        try:
            self._setup()
        except AttributeError:
            self.available = False

    def _setup(self) -> None:
        process = self.process
        if self.allocator == "glibc":
            process.mallinfo2.restype = _MallInfo2
            process.gnu_get_libc_version.restype = ctypes.c_char_p
            self.version = "glibc " + process.gnu_get_libc_version().decode()
            self.measure = "mallinfo2 arena + hblkhd (sbrk/mmap heap + mmapped chunks)"
        elif self.allocator == "jemalloc":
            process.mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                        ctypes.c_void_p, ctypes.c_size_t]
            text = ctypes.c_char_p()
            length = ctypes.c_size_t(ctypes.sizeof(text))
            if process.mallctl(b"version", ctypes.byref(text), ctypes.byref(length), None, 0) == 0:
                self.version = "jemalloc " + text.value.decode()
            self.measure = "mallctl stats.mapped (bytes in extents jemalloc has mapped and not returned)"
        elif self.allocator == "tcmalloc":
            process.MallocExtension_GetNumericProperty.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
            process.tc_version.restype = ctypes.c_char_p
            process.tc_version.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            self.version = process.tc_version(None, None, None).decode()
            self.measure = "generic.heap_size - tcmalloc.pageheap_unmapped_bytes (page heap mapped from the OS)"
        elif self.allocator == "mimalloc":
            process.mi_process_info.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 8
            number = process.mi_version()
            self.version = f"mimalloc {number // 100}.{number // 10 % 10}.{number % 10}"
            self.measure = "mi_process_info current_commit (memory mimalloc has committed)"
        elif self.allocator == "scudo":
            process.mallinfo2.restype = _MallInfo2
            library = _defining_library(_address(process, "malloc"))
            match = re.search(r"/clang/(\d+(?:\.\d+)*)/", library)
            self.version = f"Scudo standalone (LLVM {match.group(1)})" if match else "Scudo standalone"
            self.measure = ("Scudo mallinfo2 hblkhd (StatMapped: bytes mapped for the primary's size-class regions "
                            "and the secondary's large blocks)")

    def read(self) -> dict[str, int]:
        if not self.available:
            return {}
        process = self.process
        if self.allocator in ("glibc", "scudo"):
            info = process.mallinfo2()
            figures = {name: int(getattr(info, name)) for name, _ in _MallInfo2._fields_}
            # glibc: sbrk/mmap arenas + mmapped chunks; Scudo fills only hblkhd (mapped), uordblks, fordblks
            figures["heap"] = figures["hblkhd"] + (figures["arena"] if self.allocator == "glibc" else 0)
            return figures
        if self.allocator == "jemalloc":
            epoch = ctypes.c_uint64(1)
            process.mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
            figures = {}
            for name in ("allocated", "active", "metadata", "resident", "mapped", "retained"):
                value = ctypes.c_size_t(0)
                length = ctypes.c_size_t(ctypes.sizeof(value))
                if process.mallctl(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(length), None, 0) == 0:
                    figures[name] = int(value.value)
            if "mapped" in figures:
                figures["heap"] = figures["mapped"]
            return figures
        if self.allocator == "tcmalloc":
            figures = {}
            for name in ("generic.current_allocated_bytes", "generic.heap_size", "tcmalloc.pageheap_free_bytes",
                         "tcmalloc.pageheap_unmapped_bytes", "tcmalloc.central_cache_free_bytes",
                         "tcmalloc.transfer_cache_free_bytes", "tcmalloc.thread_cache_free_bytes"):
                value = ctypes.c_size_t(0)
                if process.MallocExtension_GetNumericProperty(name.encode(), ctypes.byref(value)):
                    figures[name] = int(value.value)
            if "generic.heap_size" in figures:
                figures["heap"] = figures["generic.heap_size"] - figures.get("tcmalloc.pageheap_unmapped_bytes", 0)
            return figures
        values = [ctypes.c_size_t(0) for _ in range(8)]
        process.mi_process_info(*[ctypes.byref(value) for value in values])
        names = ("elapsed_msecs", "user_msecs", "system_msecs", "current_rss", "peak_rss", "current_commit",
                 "peak_commit", "page_faults")
        figures = {name: int(value.value) for name, value in zip(names, values, strict=True)}
        figures["heap"] = figures["current_commit"]
        return figures


def _proc_status() -> dict[str, int]:
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                found[key] = int(rest.split()[0]) * 1024
    return found


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run_child(source: str, target: str, allocator: str, repeats: int, touch_name: str, limit: int | None) -> int:
    import resource

    with np.load(source) as archive:
        op, obj, size = archive["op"], archive["obj"].astype(np.int64), archive["size"].astype(np.int64)
        n_ids, n_threads = int(archive["n_ids"]), int(archive["n_threads"])
    process = ctypes.CDLL(None)
    functions = np.array([_address(process, name) for name in ("malloc", "free", "realloc", "malloc_usable_size")],
                         np.int64)
    malloc_from = _defining_library(int(functions[0]))
    problem = preload_problem(process, allocator, malloc_from)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    touch = TOUCH_MODES[touch_name]
    stats = _Stats(allocator, process)

    # Compile (or load) and warm up on a two-row trace.
    started = time.perf_counter()
    tiny_pointers = np.zeros(1, np.int64)
    tiny_current = np.zeros(2, np.int64)
    tiny_totals = np.zeros(4, np.int64)
    tiny = (np.array([0, 1], np.int8), np.zeros(2, np.int64), np.array([16, 0], np.int64))
    for granted in (False, True):
        replay_kernel(*tiny, 0, 2, tiny_pointers, tiny_current, functions, touch, granted, tiny_totals)
    free_all(tiny_pointers, functions[1])
    peak_live, peak_row = peak_live_requested(op, obj, size, n_ids)
    compile_s = time.perf_counter() - started

    rows = len(op)
    pointers = np.zeros(n_ids, np.int64)
    current = np.zeros(2 * n_ids, np.int64)
    totals = np.zeros(4, np.int64)
    pointers[:] = 1  # fault in the tables' pages now (np.zeros memory is untouched), so RSS growth is the heap's
    current[:] = 1
    pointers[:] = 0
    current[:] = 0
    if limit is not None:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = _proc_status()["VmSize"] + limit
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))

    def fail(row: int) -> int:
        name = ("alloc", "free", "realloc", "access")[int(op[row])]
        target_path.write_text(json.dumps({
            "error": "out_of_memory", "row": int(row), "op": name, "size": int(size[row]),
            "function": "malloc" if name == "alloc" else "realloc",
        }))
        free_all(pointers, functions[1])
        return _EXIT_OOM

    target_path = Path(target)
    target_path.with_name(target_path.name + READY_SUFFIX).touch()  # a crash from here on is the replay's
    baseline = stats.read()
    hwm_reset = _reset_hwm()
    rss_before = _proc_status()["VmRSS"]
    seconds = []
    for _ in range(repeats):
        pointers[:] = 0
        begin = time.perf_counter()
        failed = replay_kernel(op, obj, size, 0, rows, pointers, current, functions, touch, False, totals)
        seconds.append(time.perf_counter() - begin)
        if failed >= 0:
            return fail(failed)
        free_all(pointers, functions[1])
    after = _proc_status()

    # One untimed pass with malloc_usable_size, pausing at the peak of live requested bytes.
    pointers[:] = 0
    snapshots: dict[str, dict[str, int]] = {"baseline": baseline}
    split = peak_row + 1
    for start, stop, label in ((0, split, "at_peak_live"), (split, rows, "end")):
        failed = replay_kernel(op, obj, size, start, stop, pointers, current, functions, touch, True, totals)
        if failed >= 0:
            return fail(failed)
        snapshots[label] = stats.read()
    left_live = free_all(pointers, functions[1])
    snapshots["after_free"] = stats.read()

    median = statistics.median(seconds)
    result: dict[str, Any] = {
        "allocator": allocator,
        "version": stats.version,
        "malloc_from": malloc_from,
        "preload_check": f"malloc and {SIGNATURE_SYMBOLS[allocator]} defined by {malloc_from}",
        "rows": rows,
        "threads_in_trace": n_threads,
        "repeats": repeats,
        "touch": touch_name,
        "seconds": seconds,
        "seconds_median": median,
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "throughput_mops": rows / median / 1e6 if median > 0 else float("inf"),
        "ns_per_op": median * 1e9 / rows if rows else 0.0,
        "compile_s": compile_s,
        "peak_rss_bytes": after["VmHWM"],
        "rss_before_bytes": rss_before,
        "rss_growth_bytes": max(0, after["VmHWM"] - rss_before),
        "hwm_reset": hwm_reset,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_live_requested": int(peak_live),
        "peak_live_granted": int(totals[2]),
        "internal_fragmentation": 1.0 - totals[3] / totals[2] if totals[2] else 0.0,
        "live_at_end": int(left_live),
        "allocator_stats": snapshots,
        "peak_heap_measure": stats.measure,
    }
    result["peak_heap_bytes"] = None
    if stats.available and "heap" in baseline:
        peak_heap = max(snapshots["at_peak_live"]["heap"], snapshots["end"]["heap"]) - baseline["heap"]
        result["peak_heap_bytes"] = max(0, int(peak_heap))
    if not result["peak_heap_bytes"] and peak_live and result["rss_growth_bytes"]:
        # the allocator's counter did not move (mimalloc commits in large steps: what it had committed
        # before the loop covered the replay) or there is none: RSS growth is the best measure left
        result["peak_heap_bytes"] = result["rss_growth_bytes"]
        result["peak_heap_measure"] = (
            f"RSS growth (VmHWM - VmRSS before the loop); the allocator's own counter [{stats.measure}] "
            "did not grow during the replay"
        )
    heap = result["peak_heap_bytes"]
    result["overhead_factor"] = heap / peak_live if heap is not None and peak_live else None
    result["rss_overhead_factor"] = result["rss_growth_bytes"] / peak_live if peak_live else None
    target_path.write_text(json.dumps(result))
    return 0


