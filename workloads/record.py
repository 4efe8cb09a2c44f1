"""Record the allocations of an unmodified program into a trace file.

`record(command, output, tool="auto")` runs `command` under

- `heaptrack --raw` (Debian package `heaptrack`): LD_PRELOAD interception, fast
  (the program runs at near native speed); the raw data file is converted by
  the `heaptrack` importer.  heaptrack logs realloc as free + malloc, so the
  trace has no REALLOC rows;
- `valgrind --tool=memcheck --trace-malloc=yes` (Debian package `valgrind`),
  the fallback: slow (tens of times), but it sees realloc as realloc.  Its log
  goes to a file (`--log-file`), so program output never mixes with it.
  Under memcheck the addresses are memcheck's own, not glibc's.

`tool="auto"` takes heaptrack when it is installed, else valgrind.  Neither
tool records thread ids: every row is thread 0.  Python programs allocate
through pymalloc unless the environment has `PYTHONMALLOC=malloc` (pass `env=`).

The trace is written to `output` (`.npz` or `.csv`) with meta `command`,
`tool`, `tool_version`, `exit_code` and the import counts.  A program that exits
nonzero is still recorded: the report carries `exit_code` and a note.  Errors
(`RecordError`, a ValueError): tool not installed (names the Debian package),
program not found or not executable, the tool produced no data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from workloads.importers import ImportReport, NoAllocations, import_trace
from workloads.trace import TraceError

TOOLS = ("auto", "heaptrack", "valgrind")
DEBIAN_PACKAGES = {"heaptrack": "heaptrack", "valgrind": "valgrind"}


class RecordError(ValueError):
    """Recording could not be done (tool missing, program missing, no data); one-line message."""


def available_tool(tool: str = "auto") -> str:
    """The tool `record` would use for `tool`, or RecordError when it is not installed."""
    if tool not in TOOLS:
        raise RecordError(f"unknown recording tool '{tool}' (known: {', '.join(TOOLS)})")
    if tool == "auto":
        for name in ("heaptrack", "valgrind"):
            if shutil.which(name):
                return name
        raise RecordError("neither heaptrack nor valgrind is installed "
                          "(apt-get install heaptrack, or apt-get install valgrind)")
    if shutil.which(tool) is None:
        raise RecordError(f"{tool} is not installed (Debian package {DEBIAN_PACKAGES[tool]}: "
                          f"apt-get install {DEBIAN_PACKAGES[tool]})")
    return tool


def _tool_version(tool: str) -> str:
    try:
        done = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "unknown"


def _check_program(command: Sequence[str]) -> None:
    if not command:
        raise RecordError("no command to record")
    program = command[0]
    if os.sep in program:
        if not Path(program).exists():
            raise RecordError(f"program '{program}' does not exist")
        if Path(program).is_dir() or not os.access(program, os.X_OK):
            raise RecordError(f"program '{program}' is not executable")
    elif shutil.which(program) is None:
        raise RecordError(f"program '{program}' not found on PATH")


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def record(
    command: Sequence[str],
    output: str | Path,
    tool: str = "auto",
    *,
    env: Mapping[str, str] | None = None,
    capture_output: bool = True,
    timeout: float | None = None,
    keep_raw: str | Path | None = None,
    stdin: str | Path | None = None,
) -> ImportReport:
    """Run `command` under heaptrack or valgrind, convert its allocations and save the trace to `output`.

    `env` adds variables to the environment; `capture_output=False` lets the program's
    stdout/stderr through to the terminal; `keep_raw` copies the tool's raw log there;
    `stdin` is a file the program reads as its standard input (None: this process's).
    Returns the import report with `tool`, `command`, `exit_code` and `output` filled in.
    """
    command = [str(part) for part in command]
    output = Path(output)
    if output.suffix not in (".npz", ".csv"):
        raise RecordError(f"{output}: the trace file must end in .npz or .csv")
    chosen = available_tool(tool)
    _check_program(command)
    environment = {**os.environ, **(env or {})}
    stream = subprocess.PIPE if capture_output else None
    with tempfile.TemporaryDirectory(prefix="alloclab-record-") as scratch:
        if chosen == "heaptrack":
            base = Path(scratch) / "recording"
            argv = ["heaptrack", "--raw", "-o", str(base), *command]
        else:
            log = Path(scratch) / "valgrind.log"
            argv = ["valgrind", "--tool=memcheck", "--trace-malloc=yes", "--undef-value-errors=no",
                    "--leak-check=no", f"--log-file={log}", *command]
        try:
            with open(stdin, "rb") if stdin is not None else contextlib.nullcontext() as source:
                done = subprocess.run(argv, env=environment, stdin=source, stdout=stream, stderr=stream, text=True,
                                      errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RecordError(f"'{' '.join(command)}' did not finish within {timeout} s under {chosen}") from None
        except OSError as error:
            raise RecordError(f"could not start {chosen}: {error}") from None
        chatter = (done.stdout or "") + (done.stderr or "")
        if chosen == "heaptrack":
            found = sorted(Path(scratch).glob("recording.raw*"))
            if not found:
                raise RecordError(f"heaptrack wrote no data for '{' '.join(command)}' (exit code {done.returncode})"
                                  + (f": {_tail(chatter)}" if chatter.strip() else ""))
            raw = found[0]
        else:
            raw = log
            if not raw.exists() or raw.stat().st_size == 0:
                raise RecordError(f"valgrind wrote no log for '{' '.join(command)}' (exit code {done.returncode})"
                                  + (f": {_tail(chatter)}" if chatter.strip() else ""))
        if keep_raw is not None:
            shutil.copyfile(raw, keep_raw)
        meta = {"command": command, "tool": chosen, "tool_version": _tool_version(chosen),
                "exit_code": done.returncode}
        try:
            trace, report = import_trace(raw, chosen, meta=meta)
        except NoAllocations:
            raise RecordError(f"'{' '.join(command)}' made no allocation call that {chosen} saw (exit code "
                              f"{done.returncode}; a statically linked program?): nothing to record") from None
        except TraceError as error:
            raise RecordError(f"could not convert the {chosen} data: {error}") from None
    report.tool = chosen
    report.command = command
    report.exit_code = done.returncode
    report.output = str(output)
    report.source = f"{chosen} recording of '{' '.join(command)}'"
    if done.returncode != 0:
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exited with {done.returncode}"
        if done.returncode > 128:
            how += f" (signal {done.returncode - 128}?)"
        errors = done.stderr or ""
        report.notes.append(f"the program {how}; recorded anyway" + (f" (stderr: {_tail(errors, 3)})"
                                                                        if errors.strip() else ""))
    trace.meta["source"] = report.source
    trace.meta["import"] = report.as_dict()
    trace.save(output)
    return report
