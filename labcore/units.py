"""Byte counts written with binary units, the one parser every spec and option uses.

`parse_bytes("64KiB") == 65536`: an integer (decimal, `0x` hex, `_` separators)
optionally followed by a binary unit, case-insensitive: `K`/`KiB` (2^10),
`M`/`MiB` (2^20), `G`/`GiB` (2^30), `T`/`TiB` (2^40).  `1TiB` is the largest
request a trace may carry (`workloads.trace.MAX_REQUEST_SIZE`).  Anything else
is a ValueError saying what was expected.
"""

from __future__ import annotations

import re

UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
         "t": 1 << 40, "tib": 1 << 40}
_PATTERN = re.compile(r"^\s*(0x[0-9a-f_]+|[0-9][0-9_]*)\s*([a-z]*)\s*$")


def parse_bytes(text: str) -> int:
    """'64KiB' -> 65536, '0x100' -> 256, '1TiB' -> 2**40 (ValueError otherwise)."""
    match = _PATTERN.match(str(text).lower())
    if match is None or match.group(2) not in UNITS:
        raise ValueError(f"'{text}' is not a byte count (an integer, optionally with K/KiB, M/MiB, G/GiB or T/TiB)")
    number, unit = match.groups()
    return int(number.replace("_", ""), 0) * UNITS[unit]


def format_bytes(value: float) -> str:
    """65536 -> '64.0 KiB', 3 << 30 -> '3.0 GiB' (TiB above 1024 GiB); below 1 KiB, whole bytes."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{int(value)} B"


def is_byte_count(text: str) -> bool:
    """Whether `text` parses with `parse_bytes`."""
    try:
        parse_bytes(text)
    except ValueError:
        return False
    return True
