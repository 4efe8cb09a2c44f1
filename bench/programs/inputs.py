"""The inputs of the named programs, generated: deterministic, sized by a row, function or byte count.

Every generator writes one file and returns its path; the same arguments give the same bytes (a seeded
`random.Random`, no clock, no hash order), so every run of a program, under every allocator, on every machine,
does the same work.  A count of 0 gives the trivial input of the program's baseline run (`bench.programs.catalog`):
an SQL script that selects one value, an empty C file, an empty text file.

- `sql_script`: two tables (customers, orders) filled by multi-row INSERTs in one transaction, two indexes built
  after the load, then joins, GROUP BYs, an UPDATE, a DELETE, a LIKE scan and a sort, as a sqlite3 `.read` file.
  The database is `:memory:`, so sqlite's pages are heap memory and no run depends on a disk.
- `c_source`: a translation unit of `functions` functions without #include (so cc1 needs no headers): loops over
  local arrays, a switch, struct copies and calls between neighbours, enough for the optimiser's passes to allocate.
- `text_file`: web-server-like log lines drawn from a small vocabulary (compressible about 5x by xz), for xz and
  zstd.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

_CITIES = ("Lisbon", "Oslo", "Quito", "Accra", "Hanoi", "Perth", "Tunis", "Lima", "Riga", "Cork", "Fez", "Baku")
_ITEMS = tuple(f"item-{number:03d}" for number in range(400))
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an", "el", "or", "um", "ix", "ba", "de")
_BATCH = 400  # rows per INSERT statement


def _word(generator: random.Random, syllables: int) -> str:
    return "".join(generator.choice(_SYLLABLES) for _ in range(syllables))


def _inserts(table: str, count: int, row: Callable[[int], str]) -> list[str]:
    """INSERT statements of `_BATCH` rows each for the ids 1..count, `row(id)` giving each row's values."""
    return [f"INSERT INTO {table} VALUES "
            + ",".join(row(ident) for ident in range(first + 1, min(count, first + _BATCH) + 1)) + ";"
            for first in range(0, count, _BATCH)]


def sql_script(path: Path, rows: int, seed: int = 0) -> Path:
    """A sqlite3 script loading `rows` orders (and rows / 8 customers) into `:memory:` and querying them."""
    generator = random.Random(seed)
    lines = ["SELECT 1;"] if rows == 0 else []
    if rows:
        customers = max(1, rows // 8)
        lines += ["CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT, score REAL);",
                  "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER, note TEXT);",
                  "BEGIN;"]
        lines += _inserts("customers", customers, lambda ident: (
            f"({ident},'{_word(generator, 3).title()} {_word(generator, 4).title()}',"
            f"'{generator.choice(_CITIES)}',{generator.random() * 100:.3f})"))
        lines += _inserts("orders", rows, lambda ident: (
            f"({ident},{generator.randint(1, customers)},'{generator.choice(_ITEMS)}',{generator.randint(1, 60)},"
            f"'{' '.join(_word(generator, generator.randint(2, 4)) for _ in range(generator.randint(1, 6)))}')"))
        lines += [
            "COMMIT;",
            "CREATE INDEX orders_customer ON orders(customer);",
            "CREATE INDEX orders_item ON orders(item, qty);",
            "SELECT city, count(*), avg(score) FROM customers GROUP BY city ORDER BY 2 DESC;",
            "SELECT c.name, sum(o.qty) AS total FROM customers c JOIN orders o ON o.customer = c.id "
            "GROUP BY c.id ORDER BY total DESC LIMIT 10;",
            "SELECT item, count(DISTINCT customer), sum(qty) FROM orders GROUP BY item ORDER BY 2 DESC LIMIT 10;",
            "UPDATE orders SET note = note || ' ' || upper(item) WHERE qty % 7 = 0;",
            "DELETE FROM orders WHERE qty % 5 = 0;",
            "SELECT count(*), sum(length(note)) FROM orders WHERE note LIKE '%kalo%';",
            "SELECT id, note FROM orders ORDER BY note, id LIMIT 5;",
            "SELECT c.city, o.item, count(*) FROM orders o JOIN customers c ON c.id = o.customer "
            "GROUP BY c.city, o.item ORDER BY 3 DESC LIMIT 5;",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def c_source(path: Path, functions: int, seed: int = 0) -> Path:
    """A C file of `functions` functions (no #include); 0: an empty file."""
    generator = random.Random(seed)
    parts = ["struct point { long x, y, z; double w; };"] if functions else []
    for index in range(functions):
        constants = [generator.randint(2, 97) for _ in range(6)]
        callee = f"f{index - 1}(n - 1, p)" if index else "n"
        cases = "\n".join(f"        case {case}: acc += table[{case}] * {constants[case % 6]} + q.x; q.y ^= acc; break;"
                          for case in range(8))
        parts.append(f"""
long f{index}(long n, const struct point *p) {{
    long table[64];
    struct point q = *p;
    long acc = {constants[0]};
    for (int i = 0; i < 64; i++) table[i] = (n * {constants[1]} + i * {constants[2]}) ^ (acc >> (i & 7));
    for (int i = 0; i < 64; i++) {{
        switch ((table[i] + i) & 7) {{
{cases}
        }}
        q.w = q.w * 0.5 + (double)table[(i * {constants[3]}) & 63];
        if (q.w > {constants[4]}.0) acc -= (long)q.w;
    }}
    q.z += acc;
    return n > 0 && (acc & {constants[5]}) ? {callee} + q.z : acc + q.y;
}}""")
    path.write_text("\n".join(parts) + "\n")
    return path


def text_file(path: Path, size: int, seed: int = 0) -> Path:
    """About `size` bytes of log lines (at least `size`, cut at a line end); 0: an empty file."""
    generator = random.Random(seed)
    vocabulary = [_word(generator, generator.randint(1, 4)) for _ in range(3000)]
    methods = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
    statuses = ("200", "200", "200", "200", "304", "404", "500")
    lines, written, second = [], 0, 0
    while written < size:
        second += generator.randint(0, 3)
        words = " ".join(generator.choices(vocabulary, k=generator.randint(2, 9)))
        line = (f"2024-03-{1 + second // 86400 % 28:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
                f"{second % 60:02d} host-{generator.randint(1, 40)} {generator.choice(methods)} "
                f"/api/v2/{generator.choice(vocabulary)}/{generator.randint(1, 99999)} {generator.choice(statuses)} "
                f"{generator.randint(80, 90000)} ms={generator.expovariate(0.05):.1f} \"{words}\"\n")
        lines.append(line)
        written += len(line)
    path.write_text("".join(lines))
    return path
