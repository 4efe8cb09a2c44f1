"""What an allocator says when it catches misuse: detection statuses, their messages, and the safety kernels.

A real allocator that catches misuse aborts with a message ("free(): double
free detected in tcache 2", "Scudo ERROR: invalid chunk state") or dies of a
SIGSEGV on a guard page.  A model does the same through its kernels' status:
a check that fires returns `detected(code)`, a status below
`ST_DETECTED_BASE`, in the slot where an address or ST_OK would go.  The
replay driver treats it like any failing row (it stops there, or records the
row in keep-going mode), and the safety replay (`allocators.faultreplay`)
reads the code back as the detection, with its message and mechanism.

The checks run on every replay, as in the real allocator (glibc's are always
on): on a valid trace none may fire, which the conformance suite checks for
every allocator and preset.

Detection never comes from the fault table: the checks read the model's own
state (chunk headers and links in a simulated memory, a slot bitmap, a
canary word) and fire only when the misuse has left a trace there.  A check
may also find the state too damaged to go on without reading or writing
outside the model's arrays, where the real allocator would carry on with a
corrupted heap: `ST_CORRUPTED` stops the replay there, undetected.

`SafetyKernels` are the two entry points a safety replay needs beyond the
replay kernels, for allocators that have checks:

    free_checked(state, addr, thread) -> (status, granted)
        free() of whatever address the program passes: a block start, an
        interior or misaligned pointer, a freed block, an address outside
        the heap (`FOREIGN` memory, which reads as zeros).  ST_OK, a
        detection, or ST_CORRUPTED; never touches memory outside its arrays.
    write_bytes(state, addr, nbytes, byte) -> status
        the program writes `nbytes` copies of `byte` at addr.. (an overflow,
        an underflow, a write after free) into the model's simulated memory
        words where it keeps any (elsewhere the write changes nothing the
        model reads); detected(SEGV) when it touches a guard page.

An allocator without them (`Allocator.safety_kernels` None) has no check at
all: it detects nothing, and running misuse through it would corrupt its own
arrays as it corrupts a real heap, so a safety replay records every fault as
not detected without running it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: Statuses below this are detections: ST_DETECTED_BASE - code.
ST_DETECTED_BASE = -100
#: The model's heap is corrupted past what its checks can see: the replay stops, the fault undetected.
ST_CORRUPTED = -99

#: Every detection: (name, the allocator's message, the mechanism).  The code is the index.
DETECTIONS: tuple[tuple[str, str, str], ...] = (
    ("segv", "SIGSEGV: access to a guard page", "guard pages"),
    # glibc 2.36 (malloc/malloc.c): messages exactly as malloc_printerr prints them
    ("tcache_double_free", "free(): double free detected in tcache 2", "tcache key"),
    ("tcache_unaligned_free", "free(): unaligned chunk detected in tcache 2", "tcache key"),
    ("tcache_unaligned", "malloc(): unaligned tcache chunk detected", "safe-linking"),
    ("invalid_pointer", "free(): invalid pointer", "chunk header"),
    ("invalid_size", "free(): invalid size", "chunk header"),
    ("fasttop", "double free or corruption (fasttop)", "fastbin top"),
    ("invalid_next_size_fast", "free(): invalid next size (fast)", "chunk header"),
    ("double_free_top", "double free or corruption (top)", "chunk header"),
    ("double_free_out", "double free or corruption (out)", "chunk header"),
    ("double_free_prev", "double free or corruption (!prev)", "chunk header"),
    ("invalid_next_size_normal", "free(): invalid next size (normal)", "chunk header"),
    ("corrupted_prev_size_consolidating", "corrupted size vs. prev_size while consolidating", "chunk header"),
    ("corrupted_size_vs_prev_size", "corrupted size vs. prev_size", "chunk header"),
    ("corrupted_list", "corrupted double-linked list", "free-list links"),
    ("top_size", "malloc(): corrupted top size", "chunk header"),
    ("munmap_invalid", "munmap_chunk(): invalid pointer", "chunk header"),
    ("fastbin_unaligned", "malloc(): unaligned fastbin chunk detected 2", "safe-linking"),
    ("fastbin_corruption", "malloc(): memory corruption (fast)", "chunk header"),
    ("unsorted_invalid_size", "malloc(): invalid size (unsorted)", "chunk header"),
    ("unsorted_invalid_next_size", "malloc(): invalid next size (unsorted)", "chunk header"),
    ("unsorted_prev_size", "malloc(): mismatching next->prev_size (unsorted)", "chunk header"),
    ("unsorted_list", "malloc(): unsorted double linked list corrupted", "free-list links"),
    ("unsorted_prev_inuse", "malloc(): invalid next->prev_inuse (unsorted)", "chunk header"),
    ("smallbin_list", "malloc(): smallbin double linked list corrupted", "free-list links"),
    ("fastbin_entry_free", "invalid fastbin entry (free)", "chunk header"),
    ("tcache_too_many", "free(): too many chunks detected in tcache", "tcache key"),
    ("free_unsorted", "free(): corrupted unsorted chunks", "free-list links"),
    ("consolidate_unaligned", "malloc_consolidate(): unaligned fastbin chunk detected", "safe-linking"),
    ("consolidate_size", "malloc_consolidate(): invalid chunk size", "chunk header"),
    ("fastbins_prev_size", "corrupted size vs. prev_size in fastbins", "chunk header"),
    ("realloc_pointer", "realloc(): invalid pointer", "chunk header"),
    ("realloc_old_size", "realloc(): invalid old size", "chunk header"),
    ("realloc_next_size", "realloc(): invalid next size", "chunk header"),
    ("largebin_nextsize", "malloc(): largebin double linked list corrupted (nextsize)", "free-list links"),
    ("largebin_bk", "malloc(): largebin double linked list corrupted (bk)", "free-list links"),
    ("fastbin_stash_unaligned", "malloc(): unaligned fastbin chunk detected 3", "safe-linking"),
    ("sysmalloc_assert", "Fatal glibc error: malloc assertion failure in sysmalloc: (old_top == initial_top (av) && "
     "old_size == 0) || ((unsigned long) (old_size) >= MINSIZE && prev_inuse (old_top) && "
     "((unsigned long) old_end & (pagesize - 1)) == 0)", "chunk header"),
    # hardening mechanisms (allocators.hardening)
    ("slot_double_free", "double free (slot state)", "out-of-line slot state"),
    ("slot_invalid_free", "invalid free (slot state)", "out-of-line slot state"),
    ("misaligned", "misaligned pointer", "header checksum"),
    ("header_checksum", "corrupted chunk header", "header checksum"),
    ("header_state", "invalid chunk state", "header checksum"),
    ("canary", "canary corrupted", "canary"),
    ("write_after_free", "detected write after free", "zero on free"),
    ("free_list_entry", "corrupted free list entry", "encoded links"),
)
DETECTION_CODES = {name: code for code, (name, _, _) in enumerate(DETECTIONS)}
(D_SEGV, D_TCACHE_DOUBLE_FREE, D_TCACHE_UNALIGNED_FREE, D_TCACHE_UNALIGNED, D_INVALID_POINTER, D_INVALID_SIZE,
 D_FASTTOP, D_INVALID_NEXT_SIZE_FAST, D_DOUBLE_FREE_TOP, D_DOUBLE_FREE_OUT, D_DOUBLE_FREE_PREV,
 D_INVALID_NEXT_SIZE_NORMAL, D_CORRUPTED_PREV_SIZE_CONSOLIDATING, D_CORRUPTED_SIZE_VS_PREV_SIZE, D_CORRUPTED_LIST,
 D_TOP_SIZE, D_MUNMAP_INVALID, D_FASTBIN_UNALIGNED, D_FASTBIN_CORRUPTION, D_UNSORTED_INVALID_SIZE,
 D_UNSORTED_INVALID_NEXT_SIZE, D_UNSORTED_PREV_SIZE, D_UNSORTED_LIST, D_UNSORTED_PREV_INUSE, D_SMALLBIN_LIST,
 D_FASTBIN_ENTRY_FREE, D_TCACHE_TOO_MANY, D_FREE_UNSORTED, D_CONSOLIDATE_UNALIGNED, D_CONSOLIDATE_SIZE,
 D_FASTBINS_PREV_SIZE, D_REALLOC_POINTER, D_REALLOC_OLD_SIZE, D_REALLOC_NEXT_SIZE, D_LARGEBIN_NEXTSIZE, D_LARGEBIN_BK,
 D_FASTBIN_STASH_UNALIGNED, D_SYSMALLOC_ASSERT, D_SLOT_DOUBLE_FREE, D_SLOT_INVALID_FREE, D_MISALIGNED,
 D_HEADER_CHECKSUM, D_HEADER_STATE, D_CANARY, D_WRITE_AFTER_FREE, D_FREE_LIST_ENTRY) = range(len(DETECTIONS))

#: The byte every injected write stores (overflow, underflow, write after free), in models and real replays:
#: 0x41 ('A') leaves glibc's IS_MMAPPED and NON_MAIN_ARENA bits clear and sets PREV_INUSE.
FAULT_BYTE = 0x41
#: Where a foreign free points in a model: this many bytes past the model's capacity (its heap, its arena and
#: its tables never reach there), plus the fault's offset; FOREIGN_BYTES from there read as zeros, like the
#: zeroed global buffer a real replay frees into.
FOREIGN_GAP = 1 << 16
FOREIGN_BYTES = (1 << 20) + (1 << 16)


@njit(cache=True, inline="always")
def detected(code):
    """The status of detection `code` (D_*)."""
    return ST_DETECTED_BASE - code


def is_detection(status: int) -> bool:
    return status <= ST_DETECTED_BASE and ST_DETECTED_BASE - status < len(DETECTIONS)


def detection_of(status: int) -> tuple[str, str, str]:
    """(name, message, mechanism) of a detection status."""
    return DETECTIONS[ST_DETECTED_BASE - status]


def status_text(status: int) -> str | None:
    """The message of a detection status or of ST_CORRUPTED; None for other statuses."""
    if is_detection(status):
        return f"misuse detected: {detection_of(status)[1]}"
    if status == ST_CORRUPTED:
        return "heap metadata corrupted beyond the model's checks (a real allocator would go on corrupted)"
    return None


class SafetyKernels(NamedTuple):
    """The entry points of a safety replay beyond the replay kernels (see the module docstring)."""

    free_checked: Callable
    write_bytes: Callable
