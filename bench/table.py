"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from labcore.units import format_bytes

__all__ = ["format_bytes", "render"]


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], align_right: Sequence[bool] | None = None) -> str:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    right = align_right or [False] + [True] * (len(headers) - 1)

    def line(row: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if to_right else cell.ljust(width)
            for cell, width, to_right in zip(row, widths, right, strict=True)
        )
        return "  ".join(padded)

    out = [line(list(headers)), "  ".join("-" * width for width in widths)]
    out.extend(line(row) for row in cells)
    return "\n".join(out)
