"""The results of `python -m bench programs`: per program its runs under each allocator, the baselines and the
recorded trace's predictions; stored as OUT/programs.json and read back with `load_report`.

`ProgramsReport` holds the whole run: the allocators measured (glibc first, the reference), those skipped with
the reason, the repeats and scale, the machine (cores, CPU model, load average before and after: the machine
may be shared) and one `ProgramResult` per program.  A program's `status` is "measured", "skipped" (binary not
installed: the reason names the package) or the status of its warm-up run when that was not ok ("failed",
"timeout", "preload_not_taken": nothing more is run then).  Everything derived (medians, spreads, ratios to
glibc) is computed from the stored runs by `bench.programs.summary`, never stored twice.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.programs.predict import Recording
from bench.programs.summary import REFERENCE, Cell, Spread, normalised, summarise
from bench.real.measured import Run
from bench.results import atomic_write

REPORT_FILE = "programs.json"
FORMAT = "alloclab-programs/1"


@dataclass
class ProgramResult:
    """One program: its command, status, the timed runs (all allocators), one baseline run per allocator."""

    name: str
    summary: str
    command: list[str]
    status: str = "measured"
    reason: str = ""
    env: dict[str, str] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    baselines: list[Run] = field(default_factory=list)
    recording: Recording | None = None
    record_error: str = ""

    def runs_of(self, allocator: str) -> list[Run]:
        return [run for run in self.runs if run.allocator == allocator]

    def cell(self, allocator: str) -> Cell:
        return summarise(allocator, self.runs_of(allocator))

    def ratio(self, allocator: str, measure: str) -> Spread | None:
        """`measure` of `allocator`'s runs over glibc's median (`bench.programs.summary.normalised`)."""
        return normalised(self.runs_of(allocator), self.runs_of(REFERENCE), measure)

    def baseline_rss(self, allocator: str) -> int | None:
        runs = [run for run in self.baselines if run.allocator == allocator and run.ok]
        return min(run.max_rss_bytes for run in runs) if runs else None

    def rss_growth(self, allocator: str) -> int | None:
        """Median peak RSS over the baseline run's peak RSS (None without either)."""
        median, baseline = self.cell(allocator).median("max_rss_bytes"), self.baseline_rss(allocator)
        return None if median is None or baseline is None else int(median) - baseline

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "command": self.command, "status": self.status,
                "reason": self.reason, "env": self.env, "runs": [run.as_dict() for run in self.runs],
                "baselines": [run.as_dict() for run in self.baselines],
                "recording": None if self.recording is None else self.recording.as_dict(),
                "record_error": self.record_error}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ProgramResult:
        return cls(raw["name"], raw.get("summary", ""), list(raw.get("command", [])), raw.get("status", "measured"),
                   raw.get("reason", ""), dict(raw.get("env", {})), [Run.from_dict(run) for run in raw.get("runs", [])],
                   [Run.from_dict(run) for run in raw.get("baselines", [])],
                   None if not raw.get("recording") else Recording.from_dict(raw["recording"]),
                   raw.get("record_error", ""))


@dataclass
class ProgramsReport:
    """A whole `programs` run (module docstring)."""

    allocators: list[str]
    repeats: int
    scale: float
    programs: list[ProgramResult] = field(default_factory=list)
    skipped_allocators: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def measured(self) -> list[ProgramResult]:
        return [program for program in self.programs if program.status == "measured"]

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "allocators": self.allocators, "repeats": self.repeats, "scale": self.scale,
                "skipped_allocators": self.skipped_allocators, "libraries": self.libraries, "meta": self.meta,
                "programs": [program.as_dict() for program in self.programs]}

    def save(self, out: Path) -> Path:
        """Write OUT/programs.json (creating OUT); return its path."""
        out.mkdir(parents=True, exist_ok=True)
        path = out / REPORT_FILE
        atomic_write(path, json.dumps(self.as_dict(), indent=1))
        return path


def load_report(out: Path) -> ProgramsReport:
    """The report stored in OUT/programs.json (or at that path)."""
    path = out / REPORT_FILE if out.is_dir() else out
    raw = json.loads(path.read_text())
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a programs report (format {raw.get('format')!r}, expected {FORMAT})")
    return ProgramsReport(list(raw["allocators"]), int(raw["repeats"]), float(raw["scale"]),
                          [ProgramResult.from_dict(program) for program in raw["programs"]],
                          dict(raw.get("skipped_allocators", {})), dict(raw.get("libraries", {})),
                          dict(raw.get("meta", {})))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_version(package: str) -> str | None:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def machine_meta(packages: list[str]) -> dict[str, Any]:
    """When, where and with what: the command, cores, CPU model, load average, the Debian packages' versions."""
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(["python -m bench", *sys.argv[1:]]), "cpus": os.cpu_count(), "cpu": _cpu_model(),
            "platform": platform.platform(), "load_average_start": list(os.getloadavg()),
            "packages": {package: _package_version(package) for package in dict.fromkeys(packages) if package}}
