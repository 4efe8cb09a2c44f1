"""Set-associative LRU caches over line numbers, and an L1 + L2 + TLB hierarchy.

One cache is two int64 arrays, `(words, tags)`:

- `words`: `set_mask` (sets - 1; the number of sets is a power of two), `ways`,
  then the counters `accesses` and `misses`;
- `tags`: `sets * ways` line numbers, set s in `tags[s*ways : (s+1)*ways]`,
  kept in recency order, most recently used first; -1 is an empty way.

`access(cache, line)` looks the line up in its set (`line & set_mask`) and
moves it to the front, shifting the more recent lines down one way; on a miss
the last (least recently used) line falls out.  It returns whether it hit.  A
hit at position p costs p + 1 loads, compares and stores; a miss `ways`.  A
fully associative cache is one set (`size = ways * line`).  Callers pass
line numbers (address >> log2(line size)), so the same code models a TLB over
page numbers.

The hierarchy (`make_hierarchy`) is the lab's default machine: L1 32 KiB
8-way, L2 1 MiB 16-way, 64 B lines, and a 64-entry 4-way (16 sets) LRU TLB
over 4 KiB pages, like the first-level data TLB of recent x86 cores
(`make_hierarchy(tlb=(64, 64))` makes it fully associative, about 3x slower
per TLB miss).  Every line access looks up the TLB (by its page) and the
L1; an L1 miss looks up the L2 (L2 counters are therefore local: misses per
L2 lookup).  The levels are neither inclusive nor exclusive: no write-backs,
no back-invalidation, each level fills on its own miss.

`touch_range(hierarchy, addr, nbytes)` accesses the lines of
`[addr, addr + nbytes)` in address order at a cost bounded per range.  A
range of at most `2 * edge + 2 * lines_per_page` lines is simulated line by
line; a longer one simulates its first and last `edge` lines (rounded out to
whole pages) and counts each line between as an access that misses the L1
and the L2, and each page between as a TLB access that misses, without
putting them in any cache.  Two edges are offered (`make_hierarchy(ranges=)`):

- "bounded" (the default, what the metrics use): `edge` = the L1's lines
  (512, 32 KiB), so a range costs at most ~1 100 line accesses, whatever
  its size.  The L1 figures and the L1's final contents are still exact: the
  range's lines are distinct and consecutive, so they fill the L1's sets
  round robin, and once `L1 lines` of them have been accessed every set holds
  only range lines; every later range line misses the L1, and the last
  `edge` lines leave what the whole range would.  The L2 and the TLB are
  approximate for ranges between 64 KiB and 2.07 MiB: their middle lines
  are counted as L2 misses (exact when they were not in the L2 before) and
  do not enter the L2 (whose final contents then lack them).
- "exact": `edge` = L1 lines + L2 lines rounded up to a page (at least the
  TLB's reach: 16 896 lines = 1.03 MiB by default, so ranges over 2.07 MiB),
  which makes every counter and every cache's final contents exact by the
  same argument applied to the L2 and the TLB; a range then costs up to
  ~34 000 line accesses (a trace of 1 MiB blocks takes minutes).

`tests/test_cachesim.py` checks both against the plain simulation
(`ranges="plain"`, every line).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels
from labcore.kernels import njit_without_refcounts

holds_kernels(__file__)

# Slots of a cache's `words`.
C_SET_MASK, C_WAYS, C_ACCESSES, C_MISSES = 0, 1, 2, 3
N_CACHE_WORDS = 4
EMPTY = -1

# Slots of the hierarchy's own `words`.
H_LINE_SHIFT, H_PAGE_SHIFT, H_EXACT_LINES, H_SHORTCUT, H_SKIPPED_LINES, H_LAST_PAGE = 0, 1, 2, 3, 4, 5
N_HIERARCHY_WORDS = 6

#: How long ranges are touched (see the module docstring).
RANGE_MODES = ("bounded", "exact", "plain")

#: The lab's default machine.
L1_BYTES, L1_WAYS = 32 << 10, 8
L2_BYTES, L2_WAYS = 1 << 20, 16
LINE_BYTES = 64
TLB_ENTRIES, TLB_WAYS = 64, 4
PAGE_BYTES = 4096


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def make_cache(size_bytes: int, ways: int, line_bytes: int = LINE_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """An empty LRU cache of `size_bytes` in `ways`-way sets of `line_bytes` lines (sets: a power of two)."""
    if not _power_of_two(line_bytes):
        raise ValueError(f"line_bytes {line_bytes} is not a power of two")
    if ways < 1 or size_bytes % (ways * line_bytes):
        raise ValueError(f"size_bytes {size_bytes} is not a multiple of ways ({ways}) x line_bytes ({line_bytes})")
    sets = size_bytes // (ways * line_bytes)
    if not _power_of_two(sets):
        raise ValueError(f"{size_bytes} B / ({ways} ways x {line_bytes} B) = {sets} sets, not a power of two")
    words = np.zeros(N_CACHE_WORDS, np.int64)
    words[C_SET_MASK] = sets - 1
    words[C_WAYS] = ways
    return words, np.full(sets * ways, EMPTY, np.int64)


def cache_lines(cache: tuple[np.ndarray, np.ndarray]) -> int:
    """Capacity in lines (sets x ways)."""
    return int(cache[1].shape[0])


@njit(cache=True, inline="always")
def access(cache, line):
    """Look `line` up; update the LRU order and the counters; return True on a hit.

    One pass moves the line to the front: each way takes the line of the way
    before it until the looked-up line is met (a hit) or the last way's line
    falls out (a miss, the least recently used line evicted).  Measured 1.3-2.5x
    faster than a search followed by a shift.
    """
    words, tags = cache
    ways = words[C_WAYS]
    base = (line & words[C_SET_MASK]) * ways
    words[C_ACCESSES] += 1
    carried = line
    for way in range(base, base + ways):
        current = tags[way]
        tags[way] = carried
        if current == line:
            return True
        carried = current
    words[C_MISSES] += 1
    return False


@njit_without_refcounts
def access_stream(cache, lines):
    """Access every line of `lines` in order through one cache; return the misses among them."""
    missed = 0
    for index in range(lines.shape[0]):
        if not access(cache, lines[index]):
            missed += 1
    return missed


# ------------------------------------------------------------------ hierarchy
def make_hierarchy(
    l1: tuple[int, int] = (L1_BYTES, L1_WAYS),
    l2: tuple[int, int] = (L2_BYTES, L2_WAYS),
    tlb: tuple[int, int] = (TLB_ENTRIES, TLB_WAYS),
    line_bytes: int = LINE_BYTES,
    page_bytes: int = PAGE_BYTES,
    ranges: str = "bounded",
) -> tuple:
    """An empty L1 + L2 + TLB: `l1`, `l2` = (bytes, ways), `tlb` = (entries, ways); returns (l1, l2, tlb, words).

    `ranges`: how long ranges are touched (module docstring): "bounded" (the metrics' default), "exact", or
    "plain" (every line simulated: the reference the other two are tested against).
    """
    if ranges not in RANGE_MODES:
        raise ValueError(f"ranges must be one of {', '.join(RANGE_MODES)}, got {ranges!r}")
    if not _power_of_two(page_bytes) or page_bytes < line_bytes:
        raise ValueError(f"page_bytes {page_bytes} must be a power of two >= line_bytes {line_bytes}")
    level1 = make_cache(l1[0], l1[1], line_bytes)
    level2 = make_cache(l2[0], l2[1], line_bytes)
    tlb_cache = make_cache(tlb[0] * page_bytes, tlb[1], page_bytes)
    lines_per_page = page_bytes // line_bytes
    if ranges == "bounded":
        exact = cache_lines(level1)
    else:
        exact = max(cache_lines(level1) + cache_lines(level2), tlb[0] * lines_per_page)
    exact = -(-exact // lines_per_page) * lines_per_page
    words = np.zeros(N_HIERARCHY_WORDS, np.int64)
    words[H_LINE_SHIFT] = line_bytes.bit_length() - 1
    words[H_PAGE_SHIFT] = page_bytes.bit_length() - 1
    words[H_EXACT_LINES] = exact
    words[H_SHORTCUT] = 0 if ranges == "plain" else 1
    words[H_LAST_PAGE] = EMPTY
    return level1, level2, tlb_cache, words


@njit(cache=True, inline="always")
def access_line(hierarchy, line):
    """One line access: TLB lookup of its page, L1, and L2 on an L1 miss. Returns 0 L1 hit, 1 L2 hit, 2 memory."""
    level1, level2, tlb, words = hierarchy
    page = line >> (words[H_PAGE_SHIFT] - words[H_LINE_SHIFT])
    if page == words[H_LAST_PAGE]:  # the page looked up last is most recently used in its set: a hit, no change
        tlb[0][C_ACCESSES] += 1
    else:
        access(tlb, page)
        words[H_LAST_PAGE] = page
    if access(level1, line):
        return 0
    if access(level2, line):
        return 1
    return 2


@njit_without_refcounts
def access_lines(hierarchy, lines):
    """Access every line of `lines` in order through the hierarchy; return the accesses that went to memory."""
    to_memory = 0
    for index in range(lines.shape[0]):
        if access_line(hierarchy, lines[index]) == 2:
            to_memory += 1
    return to_memory


@njit_without_refcounts
def _touch_lines(hierarchy, first, count):
    """Access lines first .. first+count-1 in order (long runs: the head, the tail and counts between them)."""
    level1, level2, tlb, words = hierarchy
    lines_per_page = np.int64(1) << (words[H_PAGE_SHIFT] - words[H_LINE_SHIFT])
    exact = words[H_EXACT_LINES]
    end = first + count
    head_end = end
    tail_start = end
    if words[H_SHORTCUT] != 0 and count > 2 * exact + 2 * lines_per_page:
        head_end = (first + exact + lines_per_page - 1) // lines_per_page * lines_per_page
        tail_start = (end - exact) // lines_per_page * lines_per_page
        skipped = tail_start - head_end
        for cache in (level1, level2):
            cache[0][C_ACCESSES] += skipped
            cache[0][C_MISSES] += skipped
        tlb[0][C_ACCESSES] += skipped
        tlb[0][C_MISSES] += skipped // lines_per_page
        words[H_SKIPPED_LINES] += skipped
    line = first
    while line < end:  # one loop (one inlined copy of access_line) over the head, then the tail
        if line == head_end:
            line = tail_start
            if line >= end:
                break
        access_line(hierarchy, line)
        line += 1


@njit(cache=True, inline="always")
def touch_range(hierarchy, addr, nbytes):
    """Access the lines overlapping [addr, addr + nbytes) in address order (long ranges as the module docstring
    says); nothing when nbytes <= 0."""
    if nbytes <= 0:
        return
    shift = hierarchy[3][H_LINE_SHIFT]
    first = addr >> shift
    _touch_lines(hierarchy, first, ((addr + nbytes - 1) >> shift) - first + 1)


def cache_counts(cache: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    """(accesses, misses) of one cache."""
    return int(cache[0][C_ACCESSES]), int(cache[0][C_MISSES])


def hierarchy_counts(hierarchy: tuple) -> dict[str, int]:
    """Accesses and misses per level, and the lines counted by the shortcut without simulation."""
    level1, level2, tlb, words = hierarchy
    counts: dict[str, int] = {}
    for name, cache in (("l1", level1), ("l2", level2), ("tlb", tlb)):
        counts[f"{name}_accesses"], counts[f"{name}_misses"] = cache_counts(cache)
    counts["skipped_lines"] = int(words[H_SKIPPED_LINES])
    return counts
