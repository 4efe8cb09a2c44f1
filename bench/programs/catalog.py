"""The named programs of `python -m bench programs`, and the program of a user's own command.

A `Program` names a binary (found on this machine, or skipped with a one-line reason naming the Debian package
that ships it) and a `build(binary, workdir, scale)` that generates the program's input into a temporary
directory (`bench.programs.inputs`) and returns the `Invocation` to run: the command, extra environment
variables and a stdin file.  Its `baseline(binary, workdir)` is the same program doing as little as its command
line allows: the baseline run, whose peak RSS is what the program takes before its work (its code, libraries,
stacks, the allocator's start-up), so that "RSS growth" = peak RSS - baseline RSS is what the work cost, the
figure to put beside a model's footprint.  sqlite3 runs `SELECT 1`, python3 zero rounds, cc1 an empty file; xz
and zstd run `--version`: on an empty file they would still allocate (and partly touch) their whole encoder,
which the recorded trace and so the model count as the work's.

The set, each about 1.4 s per run under glibc at scale 1 on the lab's 2-core machine (`--scale` multiplies the
input; times grow about linearly):

| name | command | input at scale 1 |
|---|---|---|
| sqlite3 | `sqlite3 :memory: .read load.sql` | 200 000 orders, 25 000 customers, 2 indexes, joins, sorts |
| python3 | `python3 -S allocheavy.py 25` with PYTHONMALLOC=malloc | 25 rounds of dict/list/string/instance churn |
| python3-pymalloc | the same with Python's own small-object allocator | the same |
| cc1 | cc1 (gcc's compiler proper) -O2 on a generated C file | 80 functions of loops, switches, struct copies |
| xz | `xz -T1 -6 -c` | 2 MiB of generated log lines |
| zstd | `zstd --single-thread -19 -c` | the same 2 MiB |

Choices, and why:

- python3 runs Debian's interpreter (/usr/bin/python3, package python3), not the lab's virtual environment: a
  program as a user has it, not a shim.  PYTHONMALLOC=malloc sends every object to malloc; with Python's default
  (pymalloc), objects up to 512 bytes come from 256 KiB arenas that Python maps itself (mmap), so the allocator
  under test sees only the larger blocks and the interpreter's own tables.  Both are in the set: the first shows
  the allocators on Python's whole allocation stream, the second what a default Python gets from them.
  PYTHONHASHSEED=0 keeps set and dict orders, so the work, the same on every run.
- cc1 is run directly, with the arguments gcc's driver would pass it (`gcc -### -O2 -S`, parsed once), not through
  `gcc -c`: the driver and the assembler are separate processes whose times would add in and whose peaks would
  compete with cc1's (`wait4` reports the largest single peak of the tree, `bench.real.measured`), and the trace
  recorded for the models is then cc1's alone.
- xz and zstd are single-threaded (-T1, --single-thread), so one allocator's threads cannot change the work; the
  compressed stream goes to /dev/null.
- sqlite3's database is `:memory:`: its pages live in the heap and no run waits for a disk.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.programs import inputs

#: Rows, rounds, functions or bytes of input per unit of --scale.
SQL_ROWS = 200_000
PYTHON_ROUNDS = 25
C_FUNCTIONS = 80
TEXT_BYTES = 2 << 20
ALLOCHEAVY = Path(__file__).with_name("allocheavy.py")


@dataclass(frozen=True)
class Invocation:
    """What to run: the command, variables added to the environment, a stdin file (None: /dev/null)."""

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    stdin: Path | None = None


@dataclass(frozen=True)
class Program:
    """A program to measure: `find()` gives its binary or None; `build(binary, workdir, scale)` its invocation;
    `baseline(binary, workdir)` the baseline run's (None: no baseline run)."""

    name: str
    summary: str
    package: str
    find: Callable[[], str | None]
    build: Callable[[str, Path, float], Invocation]
    baseline: Callable[[str, Path], Invocation] | None = None

    def binary(self) -> str | None:
        return self.find()

    def skip_reason(self) -> str | None:
        """None when the binary is installed; else one line naming the Debian package."""
        if self.find() is not None:
            return None
        return f"{self.name}: not installed (Debian package {self.package}: apt-get install -y {self.package})"


def _count(base: int, scale: float) -> int:
    return 0 if scale == 0 else max(1, round(base * scale))


def _trivial(build: Callable[[str, Path, float], Invocation]) -> Callable[[str, Path], Invocation]:
    """The baseline of a program whose input generator makes a trivial input at count 0."""
    return lambda binary, workdir: build(binary, workdir, 0.0)


def _version(binary: str, workdir: Path) -> Invocation:
    return Invocation((binary, "--version"))


def _which(name: str, path: str | None = None) -> Callable[[], str | None]:
    return lambda: shutil.which(name, path=path)


def _sqlite(binary: str, workdir: Path, scale: float) -> Invocation:
    script = inputs.sql_script(workdir / "load.sql", _count(SQL_ROWS, scale))
    return Invocation((binary, ":memory:", f".read {script}"))


def _python(pymalloc: bool) -> Callable[[str, Path, float], Invocation]:
    def build(binary: str, workdir: Path, scale: float) -> Invocation:
        env = {"PYTHONHASHSEED": "0", "PYTHONMALLOC": "pymalloc" if pymalloc else "malloc",
               "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
        return Invocation((binary, "-S", str(ALLOCHEAVY), str(_count(PYTHON_ROUNDS, scale))), env)

    return build


def find_cc1() -> str | None:
    """The cc1 that `gcc` runs (`gcc -print-prog-name=cc1`), or None without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    try:
        done = subprocess.run([gcc, "-print-prog-name=cc1"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = done.stdout.strip()
    return path if done.returncode == 0 and os.path.isabs(path) and os.access(path, os.X_OK) else None


def cc1_arguments(source: Path, output: Path, options: Sequence[str] = ("-O2",)) -> list[str]:
    """cc1's command line as `gcc -### OPTIONS -S SOURCE -o OUTPUT` prints it (its first line naming cc1)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc not found (apt-get install -y gcc)")
    done = subprocess.run([gcc, "-###", *options, "-S", str(source), "-o", str(output)], capture_output=True,
                          text=True, timeout=30)
    for line in done.stderr.splitlines():
        words = shlex.split(line)
        if words and os.path.basename(words[0]) == "cc1":
            return words
    raise RuntimeError(f"gcc -### printed no cc1 command: {done.stderr.strip()[-300:]}")


def _cc1(binary: str, workdir: Path, scale: float) -> Invocation:
    source = inputs.c_source(workdir / "generated.c", _count(C_FUNCTIONS, scale))
    words = cc1_arguments(source, workdir / "generated.s")
    return Invocation((binary, *words[1:]))


def _text(workdir: Path, scale: float) -> Path:
    path = workdir / f"log-{scale:g}.txt"
    return path if path.exists() else inputs.text_file(path, _count(TEXT_BYTES, scale))


def _xz(binary: str, workdir: Path, scale: float) -> Invocation:
    return Invocation((binary, "-T1", "-6", "-c", str(_text(workdir, scale))))


def _zstd(binary: str, workdir: Path, scale: float) -> Invocation:
    return Invocation((binary, "-q", "--single-thread", "-19", "-c", str(_text(workdir, scale))))


#: The named set, in the order of the tables and the plot.
PROGRAMS: dict[str, Program] = {program.name: program for program in (
    Program("sqlite3", "sqlite3 loading, indexing and querying a generated in-memory database", "sqlite3",
            _which("sqlite3"), _sqlite, _trivial(_sqlite)),
    Program("python3", "python3 on allocheavy.py, every object through malloc (PYTHONMALLOC=malloc)", "python3",
            _which("python3", "/usr/bin:/bin"), _python(pymalloc=False), _trivial(_python(pymalloc=False))),
    Program("python3-pymalloc", "the same with Python's default small-object allocator (pymalloc)", "python3",
            _which("python3", "/usr/bin:/bin"), _python(pymalloc=True), _trivial(_python(pymalloc=True))),
    Program("cc1", "gcc's compiler proper, -O2 on a generated C file", "gcc", find_cc1, _cc1, _trivial(_cc1)),
    Program("xz", "xz -6, one thread, compressing generated log lines", "xz-utils", _which("xz"), _xz, _version),
    Program("zstd", "zstd -19, one thread, compressing the same lines", "zstd", _which("zstd"), _zstd, _version),
)}


def named(names: Sequence[str] | None = None) -> list[Program]:
    """The named programs (`names` in that order; None: all); ValueError for an unknown name."""
    if names is None:
        return list(PROGRAMS.values())
    unknown = [name for name in names if name not in PROGRAMS]
    if unknown:
        raise ValueError(f"unknown program '{unknown[0]}' (named programs: {', '.join(PROGRAMS)})")
    return [PROGRAMS[name] for name in dict.fromkeys(names)]


def command_program(command: Sequence[str], name: str | None = None) -> Program:
    """A user's own command as a Program: run as given, with no input to generate and no baseline run (its RSS
    growth is not known); FileNotFoundError when its program is not found."""
    if not command:
        raise ValueError("no command given after --")
    words = tuple(str(word) for word in command)
    label = name or os.path.basename(words[0])

    found = shutil.which(words[0]) if os.sep not in words[0] else (words[0] if os.access(words[0], os.X_OK)
                                                                   and not os.path.isdir(words[0]) else None)
    if found is None:
        raise FileNotFoundError(f"program '{words[0]}' not found or not executable")

    def build(binary: str, workdir: Path, scale: float) -> Invocation:
        return Invocation(words)

    return Program(label, " ".join(words), "", lambda: found, build)
