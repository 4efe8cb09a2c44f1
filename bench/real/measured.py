"""One run of a real program under one real allocator: wall, user and system time, peak RSS, the preload checked.

`run_measured(command, allocator)` runs `command` through a small C launcher (`bench/real/launcher.c`, compiled
once like the replayers by `bench.real.cleanheap.replayer_binary`) that forks, execs the command with the preload
in place and waits for it with `wait4`, the way GNU time (`time -f "%e %M %U %S"`, which mimalloc-bench wraps
around every run) does:

- wall time: CLOCK_MONOTONIC just before the fork and just after `wait4` returns;
- user and system time: `ru_utime`, `ru_stime` of the rusage `wait4` returns;
- peak RSS: `ru_maxrss` (KiB on Linux), reported in bytes.

Why a launcher and not `os.wait4` here: Linux carries a process's peak RSS across exec, so a child forked from
this Python process (about 100 MB resident once numpy and numba are loaded) reports at least that for any
program, /bin/true included.  A child of the small launcher starts from about 1 MiB (its floor in every run).

The environment is `bench.real.probe.preload_environment`'s: the lab's environment less the variables that tune
or preload an allocator, the preload probe and the allocator's library (none for glibc) for LD_PRELOAD, which the
launcher sets only in the child, so it never measures or probes itself.

What the rusage covers.  Linux's `wait4` returns the child's own usage plus that of the descendants it waited for
(RUSAGE_BOTH): times are summed over them, but `ru_maxrss` is the largest peak of any single process of the tree,
not a sum (checked here: a 200 MiB `python3 -c` run directly, under `sh -c` or under a Python parent all report
218 MB).  So a program that runs its work in one child (gcc's driver and cc1) is measured by that child's peak;
the named compile runs cc1 directly anyway (`bench.programs.catalog`).

The run's verdict (`Run.status`): "ok"; "failed" (nonzero exit status, or killed by a signal: the status and the
tail of stderr are in `reason`); "timeout" (killed after `timeout` seconds); "preload_not_taken" (the probe's
verdict, `bench.real.probe.preload_verdict`: no process loaded the probe, or malloc is not the allocator's).  A
run that is not ok keeps its figures but is never counted in a summary.  stdin is /dev/null or a file, stdout
goes to /dev/null, stderr to a temporary file (not a pipe: nobody reads it while the program runs).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.real import library_path
from bench.real.cleanheap import replayer_binary
from bench.real.probe import preload_environment, preload_verdict, read_probe

LAUNCHER_SOURCE = Path(__file__).with_name("launcher.c")
#: What the launcher moves into LD_PRELOAD in the child (bench/real/launcher.c).
CHILD_PRELOAD = "ALLOCLAB_CHILD_PRELOAD"
#: `library` argument meaning "the allocator's installed library" (`bench.real.library_path`).
INSTALLED = "installed"
STATUSES = ("ok", "failed", "timeout", "preload_not_taken")


@dataclass
class Run:
    """One measured run: times in seconds, peak RSS in bytes, the verdict and the probe's malloc objects."""

    allocator: str
    status: str
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_bytes: int
    exit_code: int | None
    reason: str = ""
    library: str | None = None
    malloc_objects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def cpu_s(self) -> float:
        """User + system time: what the run computed, without the waits for a core that a busy machine adds."""
        return self.user_s + self.sys_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Run:
        return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key in raw})


def launcher_binary() -> Path:
    """The compiled launcher (bench/real/launcher.c), built with gcc on first use; CompilerMissing without gcc."""
    return replayer_binary(LAUNCHER_SOURCE)


def run_measured(
    command: Sequence[str], allocator: str, *, library: str | None = INSTALLED,
    env: Mapping[str, str] | None = None, stdin: Path | None = None, cwd: Path | None = None,
    timeout: float | None = 600.0,
) -> Run:
    """Run `command` once under `allocator` (module docstring); `library`: the file to preload (default: the
    installed one; None: nothing, i.e. glibc's malloc is expected), `env`: variables added to the environment,
    `timeout`: seconds (rounded up) after which the launcher kills the program (None: no limit)."""
    if not command:
        raise ValueError("no command to run")
    if library == INSTALLED:
        library = library_path(allocator)
    launcher = launcher_binary()
    with tempfile.TemporaryDirectory(prefix="alloclab-run-") as scratch:
        probe_file, result_file = Path(scratch) / "probe.txt", Path(scratch) / "rusage.json"
        environment = {**preload_environment(library, probe_file, CHILD_PRELOAD), **(env or {})}
        seconds = max(1, math.ceil(timeout)) if timeout else 0
        argv = [str(launcher), str(result_file), str(seconds), *map(str, command)]
        with tempfile.TemporaryFile() as stderr, open(stdin or os.devnull, "rb") as source:
            done = subprocess.run(argv, stdin=source, stdout=subprocess.DEVNULL, stderr=stderr, env=environment,
                                  cwd=cwd, timeout=None if not timeout else seconds + 60)
            stderr.seek(0)
            errors = stderr.read().decode(errors="replace")
        if done.returncode != 0 or not result_file.exists():
            return Run(allocator, "failed", 0.0, 0.0, 0.0, 0, None, f"launcher failed (exit status "
                       f"{done.returncode}): {_tail(errors)}", library)
        usage = json.loads(result_file.read_text())
        lines = read_probe(probe_file)
    exit_code = os.waitstatus_to_exitcode(usage["wait_status"])
    run = Run(allocator, "ok", usage["wall_s"], usage["user_s"], usage["sys_s"], usage["max_rss_kib"] * 1024,
              exit_code, library=library, malloc_objects=sorted({line.malloc_object for line in lines}))
    if usage["timed_out"]:
        run.status, run.reason = "timeout", f"killed after {seconds} s"
    elif exit_code != 0:
        how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exit status {exit_code}"
        run.status, run.reason = "failed", how + (f": {_tail(errors)}" if errors.strip() else "")
    else:
        verdict = preload_verdict(lines, allocator, library)
        if verdict is not None:
            run.status, run.reason = "preload_not_taken", verdict
    return run


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
