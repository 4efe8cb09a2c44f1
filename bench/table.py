"""Plain-text tables for the terminal, at most 100 columns wide.

Every console table of the lab goes through `render`: columns are as wide as
their widest cell, the first column is left-aligned (labels) and the others
right-aligned (figures).  A table wider than `WIDTH` is wrapped into blocks of
columns, one under the other, each repeating the first `keep` label columns,
so no line is longer than `WIDTH` however many allocators or workloads a grid
has.  A header may hold line breaks (a two-line header: `"freelist\\n:glibc"`)
to keep its column narrow, and a label longer than a third of the width is
abbreviated in the middle (`abbreviate`), so that its start and its end (a
family and a swept value, say) both stay.  `wrap_text` wraps prose lines the
same way.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from labcore.units import format_bytes

#: The widest line a console table may have.
WIDTH = 100

__all__ = ["WIDTH", "abbreviate", "format_bytes", "markdown_table", "render", "wrap_text"]


def abbreviate(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else its start and end around a '~'."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "~" + text[len(text) - tail:]


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align_right: Sequence[bool] | None = None,
    width: int = WIDTH, keep: int = 1,
) -> str:
    """The table, wrapped into blocks of columns when wider than `width` (each block repeats the first `keep`
    columns); headers may span lines ('\\n')."""
    keep = max(0, min(keep, len(headers)))
    label_width = max(8, width // 3)
    cells = [[str(cell) for cell in row] for row in rows]
    for row in cells:  # long labels abbreviated, so that the figures keep room
        for column in range(min(keep, len(row))):
            row[column] = abbreviate(row[column], label_width)
    header_lines = [str(header).split("\n") for header in headers]
    widths = [max(len(line) for line in lines) for lines in header_lines]
    for row in cells:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    right = list(align_right or [False] + [True] * (len(headers) - 1))

    blocks: list[list[int]] = []
    fixed = sum(widths[:keep]) + 2 * keep
    for column in range(keep, len(headers)):
        if blocks and fixed + sum(widths[c] + 2 for c in blocks[-1]) + widths[column] <= width:
            blocks[-1].append(column)
        else:
            blocks.append([column])
    if not blocks:
        blocks = [[]]
    blocks = _balanced(blocks, widths, fixed, width)
    return "\n\n".join(_block(list(range(keep)) + block, header_lines, cells, widths, right) for block in blocks)


def _balanced(blocks: list[list[int]], widths: list[int], fixed: int, width: int) -> list[list[int]]:
    """The same number of blocks with about as many columns each, if they fit (else the greedy blocks)."""
    columns = [column for block in blocks for column in block]
    size = -(-len(columns) // len(blocks))
    even = [columns[start:start + size] for start in range(0, len(columns), size)]
    fits = all(fixed + sum(widths[c] + 2 for c in block) - 2 <= width for block in even if block)
    return even if fits and len(even) == len(blocks) else blocks


def _block(columns: list[int], header_lines: list[list[str]], cells: list[list[str]], widths: list[int],
           right: list[bool]) -> str:
    height = max(len(header_lines[column]) for column in columns)

    def line(values: Sequence[str]) -> str:
        padded = (value.rjust(widths[column]) if right[column] else value.ljust(widths[column])
                  for value, column in zip(values, columns, strict=True))
        return "  ".join(padded).rstrip()

    out = []
    for index in range(height):  # a shorter header sits on the bottom line, next to the rule
        out.append(line([_header_line(header_lines[column], index, height) for column in columns]))
    out.append("  ".join("-" * widths[column] for column in columns))
    out.extend(line([row[column] for column in columns]) for row in cells)
    return "\n".join(out)


def _header_line(lines: list[str], index: int, height: int) -> str:
    offset = height - len(lines)
    return lines[index - offset] if index >= offset else ""


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The same cells as a Markdown table (for a README or a CI summary); '|' inside a cell is escaped."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(row) for row in rows)])


def wrap_text(text: str, width: int = WIDTH, indent: str = "  ") -> str:
    """Each line of `text` longer than `width` wrapped at spaces, its continuation lines indented."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        out.append(textwrap.fill(line, width, subsequent_indent=lead + indent, break_long_words=False,
                                 break_on_hyphens=False))
    return "\n".join(out)
