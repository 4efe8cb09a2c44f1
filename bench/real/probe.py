"""Did the preload take?  The probe library's report on which object defines malloc in a program's processes.

`bench.real.replay_real` and the C replayers check their preload from inside (a signature symbol and dladdr,
`bench/real/preload.h`); a real program cannot be asked to.  So `bench/real/probe.c` is compiled once into a
shared library (`probe_library`, through `bench.real.cleanheap.replayer_binary(shared=True)`: one build per source
version in ~/.cache/allocator-lab/replayer/) and preloaded before the allocator (`preload_environment`; it defines
no allocation function, and it must come first for its RTLD_NEXT look-up: bench/real/probe.c).  Its
constructor appends a line per process to the file named by `PROBE_VARIABLE`: the process, the object that defines
the malloc its calls bind to, and the executable (`read_probe`).

`preload_verdict` judges the lines: the run is valid only when at least one process reported and in every one
malloc is defined by the allocator's library (the same file, after symlinks), or for glibc by libc itself.  No line
at all means the loader never ran the probe: a statically linked program, a setuid one, or a program that
clears its environment before the work; a line naming another object means the allocator was loaded but did not
take malloc (the executable defines its own, a library earlier in the search order does, or the "allocator" asked
for is not one).  A program that links malloc dynamically but never calls it (allocating with mmap, as Go does)
passes this check: the probe sees bindings, not calls (`--record` counts the calls).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.real import allocator_environment
from bench.real.cleanheap import replayer_binary

PROBE_SOURCE = Path(__file__).with_name("probe.c")
#: The environment variable naming the file the probe appends its lines to.
PROBE_VARIABLE = "ALLOCLAB_PROBE_FILE"
#: The file names of glibc's libc (libc.so.6; libc-2.31.so before glibc 2.34 merged the names).
_LIBC = re.compile(r"^libc(\.so(\.\d+)*|-[\d.]+\.so)$")


@dataclass(frozen=True)
class ProbeLine:
    """One process's report: its pid, the object defining malloc ('' = the executable itself), its executable."""

    pid: int
    malloc_object: str
    executable: str


def probe_library() -> Path:
    """The compiled probe (libprobe.so), built with gcc on first use; CompilerMissing without gcc."""
    return replayer_binary(PROBE_SOURCE, shared=True)


def preload_environment(library: str | None, probe_file: Path, variable: str = "LD_PRELOAD") -> dict[str, str]:
    """The environment of a measured run: `allocator_environment()` (no tuning variables), `variable` = the probe
    then the allocator's library (None: glibc, nothing), and the probe's output file.  (`bench.real.measured`
    passes the preload in another variable, which its launcher turns into LD_PRELOAD in the child.)"""
    environment = allocator_environment()
    environment[variable] = " ".join(part for part in (str(probe_library()), library) if part)
    environment[PROBE_VARIABLE] = str(probe_file)
    return environment


def read_probe(path: Path) -> list[ProbeLine]:
    """The lines the probe wrote (none when the file does not exist: no process loaded the probe)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    lines = []
    for raw in text.splitlines():
        fields = raw.split("\t")
        if len(fields) == 3 and fields[0].isdigit():
            lines.append(ProbeLine(int(fields[0]), fields[1], fields[2]))
    return lines


def defines_malloc(line: ProbeLine, allocator: str, library: str | None) -> bool:
    """Whether `line`'s malloc is the allocator's: its library's file, or libc for glibc (library None)."""
    if not line.malloc_object:
        return False
    if library is None:
        return _LIBC.match(Path(line.malloc_object).name) is not None
    return os.path.realpath(line.malloc_object) == os.path.realpath(library)


def preload_verdict(lines: Sequence[ProbeLine], allocator: str, library: str | None) -> str | None:
    """None when the preload took in every process that reported; else why not, in one line."""
    if not lines:
        return ("preload did not take: no process loaded the probe (a statically linked or setuid program, or one "
                "that clears its environment)")
    for line in lines:
        if not defines_malloc(line, allocator, library):
            where = line.malloc_object or "the executable itself"
            wanted = library or "libc"
            return (f"preload did not take: in {line.executable or 'pid ' + str(line.pid)} malloc is defined by "
                    f"{where}, not by {allocator}'s {wanted}")
    return None
