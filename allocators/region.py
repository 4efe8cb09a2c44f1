"""region: region (arena) allocation in whole chunks, bump allocation inside a chunk, whole-chunk release.

Design.  The address space `[0, capacity)` is cut into chunks of `chunk_size`
bytes (a power of two; 8 MiB by default, the chunk of Go's arena experiment,
GOEXPERIMENT=arenas).  Each thread bumps through its own *current chunk*:
allocating rounds the request up to 16 B, hands out `[top, top + granted)`
and moves the thread's `top`, one add and one compare as in `linear`.  A
request that does not fit in the rest of the current chunk retires that chunk
and takes another one: first from the free-chunk list, else a fresh chunk from
the "OS" (the next never-used chunk).  `reserve` bytes at the end of every
chunk are never handed out (default 0; Go's arena keeps 131120 B of an 8 MiB
chunk for its heap bitmap and type pointer, go-allocator.md section 8: spec
`region:chunk_size=8MiB,reserve=131120`), so a thread bumps through
chunk_size - reserve usable bytes.  The tail of a retired chunk is wasted;
the waste is smaller than the request that caused the retirement, so at most
half the bytes bumped.

Objects are never reused one by one.  Regions are freed all at once: in a real
program by `free()` (Go's `Arena.Free()`); in a trace replay, where objects die
one by one, each chunk counts its live objects and a FREE only decrements the
count.  When a chunk that is no thread's current chunk reaches 0 live objects,
the whole chunk (the region of objects it held) is released to the free-chunk
list at once and reused later as anybody's current chunk.  A thread's current
chunk holds one extra "pin" count, so it is never released under the thread;
retiring it drops the pin.  If all objects of a thread's current chunk have
died when the thread finds it full, the chunk is rewound in place (`top` back
to its start) instead of taking a new one; that counts as one release and one
reuse.

Large requests.  A request larger than a chunk's usable bytes gets a dedicated run of whole
contiguous chunks (granted = the run's bytes, so its rounding shows as internal
fragmentation).  The run is found by a first-fit scan over the chunk records
for that many free chunks in a row; when there are none, the free chunks at the
top of the used range are extended with fresh ones.  When its object dies (or
at `free()`) the run is released as that many single free chunks.  (Go's arena
sends objects larger than a quarter chunk to the ordinary heap instead; here
they stay in the region so the whole model is one allocator; a run has no
reserve.)

Costs.
- allocate: O(1): bump in the current chunk and increment its count; when the
  chunk is full, O(1) more to retire it and pop a free chunk (or take a fresh
  one).  A large request costs O(chunks taken so far) for the scan: rare, and a
  1 GiB region has only 128 chunks of 8 MiB.
- deallocate (a FREE row of a replay): O(1): decrement the count of the chunk
  `addr >> log2(chunk_size)`; when it reaches 0, push the chunk on the free list
  (O(k) for a run of k chunks).
- free(): O(chunks taken): every chunk goes back on the free list (in address
  order, so allocation starts over at the lowest chunk), every thread loses its
  current chunk.  The footprint stays.

`deallocate()` of the per-call API raises UnsupportedOperation, as for
`linear` and as in Go's arena API: a region has no single free, objects die
with the region.  Replays model the trace's FREE rows as liveness counting, as
described above.  (The per-call deallocate could do the same, but then freed
memory is generally not reusable at once, which the conformance suite demands
of any allocator that offers deallocate.)

REALLOC: kept in place while the new size fits the granted bytes; a block that
ends at its thread's `top` grows in place while the chunk has room (the
classic bump-allocator trick); otherwise the driver allocates anew and frees.

State: `words` (counters allocs, frees, chunks_taken, chunks_released,
chunk_reuses, large_allocs; then log2(chunk_size), the number of chunks the
capacity holds, chunks taken from the OS so far (the next fresh chunk), the
footprint and metadata in bytes, chunks in use, the free-list head, the usable
bytes of a chunk (chunk_size - reserve); then two
words per thread: its `top` and the end of its current chunk, 0 for none) and
`records`, four int64 per chunk: live objects (+1 pin while current; -1 free,
-2 inside a large run), run length in chunks (1 for an ordinary chunk), and the
free list's next / previous chunk (doubly linked, so the large-run scan can
unlink any chunk in O(1)).  `records` is np.empty over every chunk the
capacity holds; only chunks taken are touched.

Counters: chunks_taken = chunks taken from the OS; chunks_released = chunks
whose objects all died (or freed by `free()`); chunk_reuses = chunks taken again
from the free list or rewound; large_allocs = requests given a run.
footprint = chunks ever taken from the OS x chunk_size (the high-water mark;
chunks are never returned).  metadata = 32 B per chunk record in use (live
count, run length and the two links; a free chunk's links would live inside
the free chunk itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from allocators.errors import ST_OK, ST_OUT_OF_MEMORY, BadParameter
from allocators.protocol import Allocator
from allocators.registry import register
from allocators.replay import Kernels
from allocators.shared.align import align_up, is_power_of_two
from labcore.jitcache import holds_kernels
from workloads.facts import TraceFacts, as_facts
from workloads.trace import Trace

holds_kernels(__file__)

ALIGNMENT = 16
DEFAULT_CHUNK_SIZE = 8 << 20
MIN_CHUNK_SIZE = 4096
MAX_CHUNK_SIZE = 1 << 40
#: Modelled bytes of one chunk record (live count, run length, two free-list links).
CHUNK_RECORD_BYTES = 32
RECORD_WORDS = 4
R_LIVE, R_RUN, R_NEXT, R_PREV = 0, 1, 2, 3
#: `records[R_LIVE]` of a chunk on the free list, and of the chunks of a run after its first.
FREE_CHUNK = -1
RUN_TAIL = -2
NO_CHUNK = -1

C_ALLOCS, C_FREES, C_CHUNKS_TAKEN, C_CHUNKS_RELEASED, C_CHUNK_REUSES, C_LARGE_ALLOCS = 0, 1, 2, 3, 4, 5
S_SHIFT, S_N_CHUNKS, S_HIGH_WATER, S_FOOTPRINT, S_METADATA, S_IN_USE, S_FREE_HEAD = 6, 7, 8, 9, 10, 11, 12
S_USABLE = 13
#: words[S_THREADS + 2 * t] is thread t's top, words[S_THREADS + 2 * t + 1] the end of its current chunk.
S_THREADS = 16


# ------------------------------------------------------------ chunk records
@njit(cache=True, inline="always")
def push_free_chunk(words, records, chunk):
    """Put `chunk` on the front of the free-chunk list: O(1)."""
    head = words[S_FREE_HEAD]
    base = chunk * RECORD_WORDS
    records[base + R_LIVE] = FREE_CHUNK
    records[base + R_RUN] = 1
    records[base + R_NEXT] = head
    records[base + R_PREV] = NO_CHUNK
    if head != NO_CHUNK:
        records[head * RECORD_WORDS + R_PREV] = chunk
    words[S_FREE_HEAD] = chunk


@njit(cache=True, inline="always")
def unlink_free_chunk(words, records, chunk):
    """Remove `chunk` from the free-chunk list, wherever it is: O(1)."""
    base = chunk * RECORD_WORDS
    after = records[base + R_NEXT]
    before = records[base + R_PREV]
    if before != NO_CHUNK:
        records[before * RECORD_WORDS + R_NEXT] = after
    else:
        words[S_FREE_HEAD] = after
    if after != NO_CHUNK:
        records[after * RECORD_WORDS + R_PREV] = before


@njit(cache=True)
def release_chunks(words, records, chunk):
    """The last object of `chunk` (or of the run it starts) died: every chunk of it goes on the free list."""
    run = records[chunk * RECORD_WORDS + R_RUN]
    for member in range(chunk, chunk + run):
        push_free_chunk(words, records, member)
    words[C_CHUNKS_RELEASED] += run
    words[S_IN_USE] -= run
    words[S_METADATA] -= run * CHUNK_RECORD_BYTES


@njit(cache=True)
def alloc_large(words, records, granted):
    """A dedicated run of whole chunks for a request larger than a chunk: first fit over the records."""
    shift = words[S_SHIFT]
    run = (granted + (1 << shift) - 1) >> shift
    high_water = words[S_HIGH_WATER]
    start = NO_CHUNK
    free_in_row = 0
    for chunk in range(high_water):
        if records[chunk * RECORD_WORDS + R_LIVE] == FREE_CHUNK:
            free_in_row += 1
            if free_in_row == run:
                start = chunk + 1 - run
                break
        else:
            free_in_row = 0
    if start == NO_CHUNK:
        # `free_in_row` free chunks end the used range: extend them with fresh chunks from the OS.
        fresh = run - free_in_row
        if high_water + fresh > words[S_N_CHUNKS]:
            return ST_OUT_OF_MEMORY, 0
        start = high_water - free_in_row
        words[S_HIGH_WATER] = high_water + fresh
        words[C_CHUNKS_TAKEN] += fresh
        words[S_FOOTPRINT] += fresh << shift
    for chunk in range(start, min(start + run, high_water)):
        unlink_free_chunk(words, records, chunk)
        words[C_CHUNK_REUSES] += 1
    for chunk in range(start + 1, start + run):
        records[chunk * RECORD_WORDS + R_LIVE] = RUN_TAIL
    records[start * RECORD_WORDS + R_LIVE] = 1
    records[start * RECORD_WORDS + R_RUN] = run
    words[S_IN_USE] += run
    words[S_METADATA] += run * CHUNK_RECORD_BYTES
    words[C_LARGE_ALLOCS] += 1
    words[C_ALLOCS] += 1
    return start << shift, run << shift


@njit(cache=True)
def refill_and_alloc(words, records, cursor, granted):
    """The current chunk of the thread at `cursor` cannot hold `granted` bytes: rewind it, or take another."""
    shift = words[S_SHIFT]
    if granted > words[S_USABLE]:
        return alloc_large(words, records, granted)
    end = words[cursor + 1]
    current = (end - 1) >> shift  # meaningless when end == 0 (no current chunk)
    if end > 0 and records[current * RECORD_WORDS + R_LIVE] == 1:
        # Only the pin is left: every object of the current chunk died.  Rewind it in place.
        start = current << shift
        records[current * RECORD_WORDS + R_LIVE] = 2
        words[cursor] = start + granted
        words[C_CHUNKS_RELEASED] += 1
        words[C_CHUNK_REUSES] += 1
        words[C_ALLOCS] += 1
        return start, granted
    chunk = words[S_FREE_HEAD]
    if chunk != NO_CHUNK:
        unlink_free_chunk(words, records, chunk)
        words[C_CHUNK_REUSES] += 1
    else:
        chunk = words[S_HIGH_WATER]
        if chunk >= words[S_N_CHUNKS]:
            return ST_OUT_OF_MEMORY, 0
        words[S_HIGH_WATER] = chunk + 1
        words[C_CHUNKS_TAKEN] += 1
        words[S_FOOTPRINT] += 1 << shift
    if end > 0:
        # Retire the old current chunk: drop its pin.  It still holds live objects (its count was > 1),
        # so it is released later by the FREE of its last object.
        records[current * RECORD_WORDS + R_LIVE] -= 1
    start = chunk << shift
    records[chunk * RECORD_WORDS + R_LIVE] = 2  # the pin and the new object
    records[chunk * RECORD_WORDS + R_RUN] = 1
    words[S_IN_USE] += 1
    words[S_METADATA] += CHUNK_RECORD_BYTES
    words[cursor] = start + granted
    words[cursor + 1] = start + words[S_USABLE]
    words[C_ALLOCS] += 1
    return start, granted


# --------------------------------------------------------------------- kernels
@njit(cache=True, inline="always")
def alloc_block(state, size, thread):
    words, records = state
    cursor = S_THREADS + 2 * thread
    top = words[cursor]
    granted = align_up(size, ALIGNMENT)
    end = top + granted
    if end <= words[cursor + 1]:
        words[cursor] = end
        records[(top >> words[S_SHIFT]) * RECORD_WORDS + R_LIVE] += 1
        words[C_ALLOCS] += 1
        return top, granted
    return refill_and_alloc(words, records, cursor, granted)


@njit(cache=True, inline="always")
def free_block(state, addr, thread):
    words, records = state
    chunk = addr >> words[S_SHIFT]
    live = records[chunk * RECORD_WORDS + R_LIVE] - 1
    records[chunk * RECORD_WORDS + R_LIVE] = live
    words[C_FREES] += 1
    if live == 0:
        release_chunks(words, records, chunk)
    return ST_OK, 0


@njit(cache=True, inline="always")
def realloc_in_place(state, addr, granted, new_size, thread):
    """Keep a block that is large enough; grow the block that ends at its thread's `top` within the chunk."""
    words = state[0]
    if new_size <= granted:
        return addr, granted
    cursor = S_THREADS + 2 * thread
    chunk_end = words[cursor + 1]
    new_granted = align_up(new_size, ALIGNMENT)
    if (
        addr + granted == words[cursor]
        and addr >= chunk_end - words[S_USABLE]
        and addr + new_granted <= chunk_end
    ):
        words[cursor] = addr + new_granted
        return addr, new_granted
    return -1, 0


@njit(cache=True, inline="always")
def heap_stats(state):
    words = state[0]
    return words[S_FOOTPRINT], words[S_METADATA]


@njit(cache=True)
def reset_state(state):
    """free(): every chunk taken so far goes back on the free list, lowest address first out."""
    words, records = state
    words[C_CHUNKS_RELEASED] += words[S_IN_USE]
    words[S_IN_USE] = 0
    words[S_METADATA] = 0
    words[S_FREE_HEAD] = NO_CHUNK
    for chunk in range(words[S_HIGH_WATER] - 1, -1, -1):
        push_free_chunk(words, records, chunk)
    for slot in range(S_THREADS, words.shape[0]):
        words[slot] = 0


# ----------------------------------------------------------------- the shell
@register
class Region(Allocator):
    name = "region"
    summary = "arena of 8 MiB chunks: per-thread bump in a chunk, a chunk is reused once all its objects died"
    alignment = ALIGNMENT
    supports_deallocate = False
    general_purpose = False
    defaults = {"chunk_size": DEFAULT_CHUNK_SIZE, "reserve": 0}
    variants = ("chunk_size=64KiB", "chunk_size=64KiB,reserve=1072")
    counter_names = ("allocs", "frees", "chunks_taken", "chunks_released", "chunk_reuses", "large_allocs")
    #: Bumping inside a thread's own chunk is private; taking, releasing and reusing chunks is shared.
    shared_counters = ("chunks_taken", "chunks_released", "chunk_reuses")

    kernels = Kernels(alloc_block, free_block, heap_stats, reset_state, realloc_in_place)

    def check_params(self) -> None:
        chunk_size = self.params["chunk_size"]
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise BadParameter(f"region: chunk_size must be an integer, got {chunk_size!r}")
        if not is_power_of_two(int(chunk_size)) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise BadParameter(
                f"region: chunk_size must be a power of two in {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}, got {chunk_size!r}"
            )
        reserve = self.params["reserve"]
        if (isinstance(reserve, bool) or not isinstance(reserve, (int, np.integer))
                or not 0 <= reserve <= chunk_size // 2):
            raise BadParameter(f"region: reserve must be an integer in 0..chunk_size/2 = {int(chunk_size) // 2}, "
                               f"got {reserve!r}")
        # A region smaller than one chunk is one chunk of the largest power of two that fits (its reserve scaled).
        fitted = min(int(chunk_size), 1 << (self.capacity.bit_length() - 1))
        self.params["reserve"] = int(reserve) * fitted // int(chunk_size)
        self.params["chunk_size"] = fitted

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """Room for the whole trace without any chunk reuse.

        Each request of at most a chunk costs its granted bytes plus at most as
        much again of retired-chunk tail; each thread may leave one partial
        chunk; a larger request takes its run of whole chunks.
        """
        chunk_size = int(params.get("chunk_size") or DEFAULT_CHUNK_SIZE)
        reserve = params.get("reserve") or 0
        usable = chunk_size - (reserve if isinstance(reserve, int) and 0 <= reserve <= chunk_size // 2 else 0)
        facts = as_facts(trace)
        granted, counts = facts.request_sizes, facts.request_counts  # sizes rounded up to 16 B = ALIGNMENT
        small = granted <= usable
        chunks = -(-2 * int((granted[small] * counts[small]).sum()) // max(usable, 1))
        chunks += int(((-(-granted[~small] // chunk_size)) * counts[~small]).sum()) + facts.n_threads + 1
        return max(super().capacity_for_trace(trace, params), chunks * chunk_size)

    def make_state(self) -> tuple:
        chunk_size = self.params["chunk_size"]
        n_chunks = self.capacity // chunk_size
        words = np.zeros(S_THREADS + 2 * self.max_threads, np.int64)
        words[S_SHIFT] = chunk_size.bit_length() - 1
        words[S_N_CHUNKS] = n_chunks
        words[S_FREE_HEAD] = NO_CHUNK
        words[S_USABLE] = chunk_size - self.params["reserve"]
        return (words, np.empty(n_chunks * RECORD_WORDS, np.int64))
