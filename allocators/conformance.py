"""Conformance checks every registered allocator must pass (cf. scikit-learn's check_estimator).

`HeapChecker` mirrors an allocator from outside: it records every live block
and checks, after each operation, the invariants any allocator owes its
users:

- no two live blocks overlap;
- every block lies inside the allocator's address space [0, capacity);
- granted >= requested;
- every address is aligned to the allocator's declared `alignment`.

`run_program` drives an allocator through a list of operations with the
per-call API (allocate / deallocate / free) and checks after each one, and
`check_replay` does the same for a whole-trace replay by walking its AllocLog.
`check_declarations` checks what a class declares about itself: its flags
(`supports_deallocate`, `lifo_only`, `general_purpose`) are bools, a spec's
`general_purpose_with` answer is one too, and a LIFO-only allocator does not
claim to be general purpose.
The property-based tests in tests/test_conformance.py feed both with programs
made by hypothesis, for every allocator in the registry.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from allocators.errors import OutOfMemory
from allocators.log import AllocLog
from allocators.protocol import Allocator
from workloads.trace import OP_ACCESS, OP_FREE, Trace


class ConformanceError(AssertionError):
    """An allocator broke one of the invariants; the message says which and where."""


def check_declarations(cls: type[Allocator], params: dict | None = None) -> None:
    """The class's declared flags are bools, and consistent (ConformanceError naming the flag)."""
    for flag in ("supports_deallocate", "lifo_only", "general_purpose"):
        if not isinstance(getattr(cls, flag), bool):
            raise ConformanceError(f"{cls.name}: {flag} must be a bool, got {getattr(cls, flag)!r}")
    answer = cls.general_purpose_with(dict(params or {}))
    if not isinstance(answer, bool):
        raise ConformanceError(f"{cls.name}: general_purpose_with({params}) must return a bool, got {answer!r}")
    if cls.lifo_only and answer:
        raise ConformanceError(f"{cls.name}: a LIFO-only allocator cannot be general purpose")


@dataclass
class HeapChecker:
    """The set of live blocks as the allocator's user sees it, with invariant checks."""

    capacity: int
    alignment: int
    starts: list[int] = field(default_factory=list)
    blocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # addr -> (granted, requested)

    def add(self, addr: int, granted: int, requested: int, where: str) -> None:
        if granted < requested:
            raise ConformanceError(f"{where}: granted {granted} < requested {requested} at {addr}")
        if addr < 0 or addr + max(granted, 1) > self.capacity:
            raise ConformanceError(f"{where}: block [{addr}, {addr + granted}) outside [0, {self.capacity})")
        if addr % self.alignment:
            raise ConformanceError(f"{where}: address {addr} not aligned to {self.alignment}")
        if addr in self.blocks:
            raise ConformanceError(f"{where}: address {addr} handed out while still live")
        position = bisect.bisect_left(self.starts, addr)
        if position > 0:
            before = self.starts[position - 1]
            if before + self.blocks[before][0] > addr:
                end = before + self.blocks[before][0]
                raise ConformanceError(
                    f"{where}: block [{addr}, {addr + granted}) overlaps live block [{before}, {end})"
                )
        if position < len(self.starts) and addr + granted > self.starts[position]:
            after = self.starts[position]
            end = after + self.blocks[after][0]
            raise ConformanceError(f"{where}: block [{addr}, {addr + granted}) overlaps live block [{after}, {end})")
        self.starts.insert(position, addr)
        self.blocks[addr] = (granted, requested)

    def remove(self, addr: int, where: str) -> None:
        if addr not in self.blocks:
            raise ConformanceError(f"{where}: address {addr} is not live")
        del self.blocks[addr]
        self.starts.pop(bisect.bisect_left(self.starts, addr))

    def clear(self) -> None:
        self.starts.clear()
        self.blocks.clear()


def run_program(allocator: Allocator, program: list[tuple[str, int, int]]) -> HeapChecker:
    """Run ('alloc', size, thread) / ('free', k, thread) / ('reset', 0, 0) steps, checking after each.

    For 'free', k picks the live block to free (k modulo the number of live
    blocks, in allocation order; allocators that only free in LIFO order always
    get the newest).  OutOfMemory is an allowed answer; it must leave the heap
    usable.  Also checks that a block freed and requested again at the same
    size does not grow the footprint when the free kept the memory (freed
    memory is reused), and that free() keeps the footprint and lets allocation
    start over.
    """
    checker = HeapChecker(allocator.capacity, allocator.alignment)
    order: list[int] = []
    for step, (action, value, thread) in enumerate(program):
        where = f"{allocator.name} step {step} ({action} {value} t{thread})"
        if action == "alloc":
            try:
                addr = allocator.allocate(value, thread)
            except OutOfMemory:
                continue
            checker.add(addr, allocator.live_blocks()[addr], value, where)
            order.append(addr)
        elif action == "free" and order and allocator.supports_deallocate:
            addr = order[-1] if allocator.lifo_only else order[value % len(order)]
            granted, requested = checker.blocks[addr]
            before = allocator.footprint
            allocator.deallocate(addr, thread)
            checker.remove(addr, where)
            order.remove(addr)
            footprint = allocator.footprint
            try:
                again = allocator.allocate(requested, thread)
            except OutOfMemory as error:
                raise ConformanceError(
                    f"{where}: freed {granted} B at {addr} but {requested} B no longer fit"
                ) from error
            # Memory the allocator kept must be reused.  Memory it handed back to its OS on
            # this free (munmap, trimming the top) owes no reuse: an adaptive allocator may
            # then serve the same request another way (glibc raises its mmap threshold).
            # An allocator that holds freed blocks back (a quarantine) owes no immediate reuse either.
            if footprint == before and allocator.footprint > footprint and not allocator.delays_reuse:
                raise ConformanceError(
                    f"{where}: re-allocating {requested} B right after freeing it grew the footprint "
                    f"{before} -> {footprint} -> {allocator.footprint} (freed memory not reused)"
                )
            checker.add(again, allocator.live_blocks()[again], requested, where + " (re-allocation)")
            order.append(again)
        elif action == "reset":
            footprint = allocator.footprint
            allocator.free()
            checker.clear()
            order.clear()
            if allocator.live_blocks():
                raise ConformanceError(f"{where}: free() left live blocks")
            if allocator.footprint < footprint:
                raise ConformanceError(f"{where}: free() gave memory back ({footprint} -> {allocator.footprint})")
    return checker


def check_replay(allocator: Allocator, trace: Trace, log: AllocLog) -> None:
    """Walk an AllocLog and check the invariants at every row of the trace."""
    checker = HeapChecker(allocator.capacity, allocator.alignment)
    current: dict[int, int] = {}
    for row in range(len(trace)):
        op, ident, size = int(trace.op[row]), int(trace.obj[row]), int(trace.size[row])
        addr, granted = int(log.addr[row]), int(log.granted[row])
        where = f"{allocator.name} replay row {row}"
        if op == OP_ACCESS:
            if addr != current[ident]:
                raise ConformanceError(f"{where}: ACCESS logged at {addr}, object lives at {current[ident]}")
            continue
        if ident in current:
            if op == OP_FREE and addr != current[ident]:
                raise ConformanceError(f"{where}: FREE logged at {addr}, object lives at {current[ident]}")
            checker.remove(current.pop(ident), where)
        if op != OP_FREE:
            checker.add(addr, granted, size, where)
            current[ident] = addr
