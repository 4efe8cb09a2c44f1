"""Safety replay through a real allocator: each fault of a fault trace carried out against real malloc.

The model side (`allocators.faultreplay.replay_faults`) copies a model's
state at each fault's anchor, carries out the fault on the copy and replays
a continuation window.  Here the copy is a fork(): a small C program
(bench/real/faultreplayer.c, compiled with gcc once per source version through
`bench.real.cleanheap.replayer_binary`, LD_PRELOADing jemalloc, tcmalloc,
mimalloc or Scudo as bench/real/cleanheap.py does; glibc without) replays the
trace's rows from the start, and before row `at` of each fault it forks.
The child carries out the fault as a program would (the same faults as the
model's `_carry_out`: free of the target's last address, of addr + param, of
a zeroed static buffer that the heap never handed out; 8 bytes of
FAULT_BYTE 0x41 at old addr + param; param bytes of 0x41 just past the
requested size or just before the block; every live block freed, then the
target's address), replays the next `window` rows and exits.  The parent
does only clean rows: it waits for the child, writes a line and goes on to
the next fault, so one abort never ends the run and faults never see each
other.

Outcomes, one `FaultOutcome` per fault in table order, as on the model side:

- the child dies of SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGTRAP:
  *detected*; the message is the last line the child wrote to stderr (the
  allocator's: "free(): double free detected in tcache 2", "Scudo ERROR:
  invalid chunk state when deallocating address 0x<addr>"; hexadecimal
  numbers become `0x<addr>` so messages tabulate), or the signal's name
  when it wrote nothing; the mechanism is the signal's name; the row is
  the one the child was executing (it writes each row into a MAP_SHARED
  page first: at - 1 while carrying out the fault), the latency row - at + 1
  (0: the faulty call itself);
- the child exits 0: *not detected* ("no abort or crash in the N rows after
  the fault", plus what it wrote to stderr, if anything: an allocator that
  reports and carries on);
- the child is still running after `timeout` seconds (a corrupted free list
  can loop forever): killed, *not detected*, "hang (killed after N s)", with
  the row it was executing;
- any other end (another signal, an exit status, NULL from malloc in the
  window): *not detected*, saying so;
- malloc returning NULL in the parent's clean replay: that fault and every
  later one *skipped*; so is a target whose block is NULL (malloc(0) may
  return NULL).

Classes come from `workloads.faults.fault_class` with the real allocator's
figures: requested bytes, granted = malloc_usable_size of the block when it
was handed out (all five allocators export it; Scudo aborts when asked
about a freed block, so it is never asked then), immediate from
`target_rows`, and reused = a live object holds the target's old address at
the anchor.

Determinism.  The replayer turns ASLR off for itself
(personality(ADDR_NO_RANDOMIZE) and a re-exec of /proc/self/exe: what
`setarch -R` does), so heap addresses, and with them glibc's safe-linking
masks (the 15/16 of "malloc(): unaligned tcache chunk detected"), repeat
from run to run; `replay_faults_real_details` says whether it took
(`aslr_disabled`).  What is left to chance is the allocators' own
randomness: glibc's tcache key comes from getrandom(), but it is only ever
compared for equality with itself, so glibc's outcomes repeat exactly;
Scudo's header checksum cookie and its shuffled free lists, and its
embedded GWP-ASan sampling (about 1 allocation in 5000), are seeded at
random, so which block neighbours which (an overflow into a free or a live
neighbour) can change from run to run.  Scudo runs with its defaults
(SCUDO_OPTIONS is removed from the environment, as for every real replay:
`bench.real.allocator_environment`).  LIBC_FATAL_STDERR_=1 makes glibc's
messages go to stderr, not to a terminal.

Costs: one fork and one wait per fault; a child lives for its window's rows
(plus, for glibc, the abort's message and signal).
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from allocators.faultreplay import DEFAULT_WINDOW, DETECTED, NOT_DETECTED, SKIPPED, FaultOutcome
from bench.real import ALLOCATORS, RealReplayFailed, allocator_environment, library_path
from bench.real.cleanheap import replayer_binary
from workloads.faults import FAULT_KINDS, check_fault_trace, dense_targets, fault_class, target_rows
from workloads.trace import Trace

FAULT_REPLAYER_SOURCE = Path(__file__).with_name("faultreplayer.c")
#: Signals that count as a detection: what an allocator's abort() or a guard page kills a process with.
DETECTING_SIGNALS = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP)
#: The exit status of a child whose malloc returned NULL in its window (bench/real/faultreplayer.c).
FAULT_CHILD_NULL = 3
#: Environment variable of the replayer's test hook: the child of fault I sleeps forever after its fault.
HANG_HOOK = "ALLOCLAB_FAULTREPLAYER_HANG"
_HEX = re.compile(r"0x[0-9a-fA-F]+")


def normalise_message(text: str) -> str:
    """The last non-empty line of `text`, hexadecimal addresses replaced by 0x<addr>."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _HEX.sub("0x<addr>", lines[-1]) if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def replay_faults_real(trace: Trace, allocator: str, window: int = DEFAULT_WINDOW,
                       timeout: float = 30.0) -> list[FaultOutcome]:
    """Every fault of `trace` (a fault trace) carried out against the real `allocator` (module docstring).

    allocator: glibc, scudo, jemalloc, tcmalloc or mimalloc; window: rows replayed after each fault;
    timeout: seconds a fault's child may run before it is killed as a hang.  Raises TraceError (bad trace or
    fault table), ValueError (bad arguments), RealAllocatorMissing (library not installed), CompilerMissing (no
    gcc), RealReplayFailed (the replayer refused its input or failed).
    """
    return replay_faults_real_details(trace, allocator, window, timeout)[0]


def _check_arguments(trace: Trace, allocator: str, window: int, timeout: float) -> None:
    if not isinstance(trace, Trace):
        raise TypeError(f"replay_faults_real() needs a workloads.trace.Trace, got {type(trace).__name__}")
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown real allocator '{allocator}' (known: {', '.join(ALLOCATORS)})")
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 0:
        raise ValueError(f"window must be an integer >= 0 rows, got {window!r}")
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout)
            or timeout < 0.001):
        raise ValueError(f"timeout must be a finite number of seconds >= 0.001, got {timeout!r}")


def replay_faults_real_details(trace: Trace, allocator: str, window: int = DEFAULT_WINDOW,
                               timeout: float = 30.0) -> tuple[list[FaultOutcome], dict[str, Any]]:
    """`replay_faults_real` plus the run's details: library, aslr_disabled, rows, and per fault elapsed_s (the
    child's life, from fork to its end) and stderr (all the child wrote there, up to its last 8 KiB)."""
    _check_arguments(trace, allocator, window, timeout)
    trace.require_valid()
    faults = check_fault_trace(trace)
    library = library_path(allocator)
    details: dict[str, Any] = {"allocator": allocator, "library": library, "aslr_disabled": None,
                               "rows": len(trace), "elapsed_s": [], "stderr": []}
    if faults is None or not len(faults):
        return [], details
    binary = replayer_binary(FAULT_REPLAYER_SOURCE)
    last_row, immediate = target_rows(trace, faults)
    targets = dense_targets(trace, faults.obj)
    environment = allocator_environment()
    environment["LIBC_FATAL_STDERR_"] = "1"
    if library is not None:
        environment["LD_PRELOAD"] = library
    columns = {"op": (trace.op, np.int8), "obj": (trace.dense_obj, np.int64), "size": (trace.size, np.int64),
               "fault_at": (faults.at, np.int64), "fault_kind": (faults.kind, np.int64),
               "fault_obj": (targets, np.int64), "fault_param": (faults.param, np.int64)}
    timeout_ms = max(int(round(timeout * 1000)), 1)
    with tempfile.TemporaryDirectory(prefix="realsafety-") as scratch:
        for name, (values, dtype) in columns.items():
            np.ascontiguousarray(values, dtype=dtype).tofile(Path(scratch) / f"{name}.bin")
        command = [str(binary), allocator, scratch, str(max(trace.n_ids, 1)), str(int(window)), str(timeout_ms)]
        # each child may take `timeout`, the clean rows are fast: a generous bound on the whole run
        overall = len(faults) * (timeout + 5.0) + 120.0
        try:
            completed = subprocess.run(command, capture_output=True, env=environment, timeout=overall)
        except subprocess.TimeoutExpired as error:
            raise RealReplayFailed(f"fault replay through {allocator} did not finish within {overall:.0f} s") \
                from error
    stderr = completed.stderr.decode(errors="replace").strip()
    if completed.returncode != 0:
        status = (f"signal {_signal_name(-completed.returncode)}" if completed.returncode < 0
                  else f"exit status {completed.returncode}")
        raise RealReplayFailed(f"fault replay through {allocator} failed ({status}): {stderr[-2000:]}")
    try:
        records = [json.loads(text) for text in completed.stdout.decode().splitlines() if text.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RealReplayFailed(f"fault replay through {allocator}: unreadable output ({error})") from error
    if len(records) != len(faults) + 1 or [record.get("index") for record in records[1:]] != list(range(len(faults))):
        raise RealReplayFailed(f"fault replay through {allocator}: {len(records) - 1} result line(s) for "
                               f"{len(faults)} faults: {stderr[-2000:]}")
    details["aslr_disabled"] = bool(records[0]["aslr_disabled"])
    outcomes = []
    for index, record in enumerate(records[1:]):
        block_row = int(last_row[index])
        requested = int(trace.size[block_row]) if block_row >= 0 else 0
        if block_row >= 0 and int(record["requested"]) != requested and record["end"] != "skipped":
            raise RealReplayFailed(f"fault replay through {allocator}: fault {index}'s target has "
                                   f"{record['requested']} requested bytes in the replayer, {requested} in the trace")
        kind_code = int(faults.kind[index])
        klass = fault_class(kind_code, int(faults.param[index]), requested, int(record["granted"]),
                            bool(immediate[index]), bool(record["reused"]))
        outcomes.append(_outcome(record, index, FAULT_KINDS[kind_code], klass, int(faults.at[index]),
                                 int(faults.obj[index]), int(faults.param[index]), timeout))
        details["elapsed_s"].append(record["elapsed_us"] / 1e6)
        details["stderr"].append(record["stderr"])
    return outcomes, details


def _outcome(record: dict[str, Any], index: int, kind: str, klass: str, at: int, obj: int, param: int,
             timeout: float) -> FaultOutcome:
    """The FaultOutcome of one result line of the replayer (module docstring, "Outcomes")."""
    end, row = record["end"], int(record["row"])
    said = normalise_message(record["stderr"])
    common = (index, kind, klass, at, obj, param)
    if end == "skipped":
        return FaultOutcome(*common, SKIPPED, message=record["message"])
    if end == "hang":
        return FaultOutcome(*common, NOT_DETECTED, -1, row, f"hang (killed after {timeout:g} s)")
    if end == "signal":
        name = _signal_name(int(record["signal"]))
        if int(record["signal"]) in DETECTING_SIGNALS:
            return FaultOutcome(*common, DETECTED, row - at + 1, row, said or name, name)
        return FaultOutcome(*common, NOT_DETECTED, -1, row, f"the child was killed by {name} at row {row}")
    status = int(record["exit_status"])
    if status == 0:
        message = f"no abort or crash in the {int(record['rows_after'])} rows after the fault"
        return FaultOutcome(*common, NOT_DETECTED, message=message + (f" (stderr: {said})" if said else ""))
    if status == FAULT_CHILD_NULL:
        return FaultOutcome(*common, NOT_DETECTED, -1, row,
                            f"the replay failed at row {row} (malloc returned NULL) without a check firing")
    return FaultOutcome(*common, NOT_DETECTED, -1, row, f"the child exited with status {status} at row {row}"
                        + (f" (stderr: {said})" if said else ""))
