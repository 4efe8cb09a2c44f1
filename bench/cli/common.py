"""What the commands share: the one-line usage error, the argument parser class, lines on stderr, list
options (`a;b;c`, `0,1,2`) and the rows progress bar."""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """Bad command-line input: exit 2 with one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class RowsBar:
    """A progress bar over trace rows on stderr (tqdm), for commands that stream long traces."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="row", unit_scale=True, desc=label, file=sys.stderr, dynamic_ncols=True,
                        disable=not enabled, leave=False)

    def to(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.bar.total:
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def one_line(text: object) -> str:
    """`text` as one printable line: a control character or line separator quoted from a hostile file (an
    escape sequence, '\x1c', '\u2028') is shown escaped, so an error stays one line and cannot drive the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def spec_list(text: str | None, option: str) -> list[str] | None:
    """'a;b;c' -> ['a', 'b', 'c'] (None: the default); duplicates are dropped with a warning, an empty list refused."""
    if text is None:
        return None
    specs = [spec.strip() for spec in text.split(";") if spec.strip()]
    if not specs:
        raise UsageError(f"{option} is an empty list (leave it out for the default)")
    unique = list(dict.fromkeys(specs))
    if len(unique) < len(specs):
        say(f"bench: warning: duplicate specs dropped ({', '.join(s for s in unique if specs.count(s) > 1)})")
    return unique


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise UsageError("--seeds needs at least one seed >= 0")
    unique = list(dict.fromkeys(seeds))
    if len(unique) < len(seeds):
        say(f"bench: warning: duplicate seeds dropped (--seeds {','.join(map(str, unique))})")
    return unique
