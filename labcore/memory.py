"""How much memory this machine can give a command, and the one check a large reservation goes through.

A replay holds its trace's rows, its log and its metric passes' buffers (a
few tens of bytes per row), and the model's tables, some of which grow with
the allocator's capacity (a page map, a per-granule tag table, a simulated
arena).  numba does not bounds-check and numpy reserves lazily, so a command
that asks for more than the machine has does not fail cleanly by itself: it
swaps, or the kernel's OOM killer ends it.  So every large reservation is
estimated first and compared with `available_bytes()`:

- `MemAvailable` of `/proc/meminfo` (what the kernel says it can give
  without swapping), or the `ALLOCLAB_MEMORY_LIMIT` environment variable
  (a byte count such as `8GiB`: a smaller budget on a shared machine, and
  what the tests use to check refusals without reserving anything);
- `check_fits(what, need, fix)` raises `NotEnoughMemory` (a ValueError: the
  CLI prints its one line and exits 2) naming the figure, the budget and the
  fix when `need` is above it.

Estimates are upper bounds of what is reserved, not of what is touched, so
a refusal can be conservative by the share of a table a run would not touch;
it is never late.
"""

from __future__ import annotations

import os

from labcore.units import format_bytes, parse_bytes

#: Environment variable that overrides the machine's available memory (a byte count, e.g. 8GiB).
LIMIT_VARIABLE = "ALLOCLAB_MEMORY_LIMIT"


class NotEnoughMemory(ValueError):
    """A command would need more memory than this machine has available."""


def available_bytes() -> int:
    """Bytes this process may reserve: $ALLOCLAB_MEMORY_LIMIT, else MemAvailable, else physical memory."""
    limit = os.environ.get(LIMIT_VARIABLE)
    if limit:
        try:
            return parse_bytes(limit)
        except ValueError:
            raise NotEnoughMemory(f"{LIMIT_VARIABLE}={limit!r} is not a byte count (e.g. 8GiB)") from None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return 1 << 62


def check_fits(what: str, need: int, fix: str) -> None:
    """NotEnoughMemory ("WHAT needs about N, more than the M this machine has available; FIX") if need > budget."""
    budget = available_bytes()
    if need > budget:
        raise NotEnoughMemory(f"{what} needs about {format_bytes(need)}, more than the {format_bytes(budget)} "
                              f"this machine has available ({LIMIT_VARIABLE} sets the budget); {fix}")
