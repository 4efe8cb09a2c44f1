"""Real programs under each real allocator (bench.programs, bench.real.measured, bench.real.probe): the preload
check on programs we did not write, the rusage of one run, failures reported, the named set, the files written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import programs, real
from bench.cli import main
from bench.cli.programs import split_command
from bench.programs import catalog, inputs
from bench.programs.results import load_report
from bench.programs.summary import normalised, summarise
from bench.real.measured import Run, run_measured
from bench.real.probe import probe_library

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")

TRUE = shutil.which("true") or "/bin/true"
SH = shutil.which("sh") or "/bin/sh"


def _library_or_skip(name: str) -> str | None:
    try:
        return real.library_path(name)
    except real.RealAllocatorMissing as error:
        pytest.skip(str(error))


def _installed_other() -> str:
    """An installed allocator other than glibc (skip when there is none)."""
    others = [name for name in real.available() if name != "glibc"]
    if not others:
        pytest.skip("no real allocator but glibc installed (apt-get install -y libjemalloc2)")
    return others[0]


def _compile(tmp_path: Path, name: str, source: str, *flags: str) -> Path:
    (tmp_path / f"{name}.c").write_text(source)
    binary = tmp_path / name
    done = subprocess.run(["gcc", *flags, "-o", str(binary), str(tmp_path / f"{name}.c")], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"gcc {' '.join(flags)} failed: {done.stderr.strip()[-200:]}")
    return binary


MALLOCS = "#include <stdlib.h>\nint main(void) { void *p = malloc(100); free(p); return p == 0; }\n"


# ------------------------------------------------------------------ one run
@pytest.mark.parametrize("allocator", real.ALLOCATORS)
def test_a_tiny_command_passes_the_preload_check_under_each_allocator(allocator):
    library = _library_or_skip(allocator)
    run = run_measured([TRUE], allocator)
    assert run.status == "ok", run.reason
    assert run.exit_code == 0 and run.max_rss_bytes > 0
    assert run.wall_s >= 0 and run.user_s >= 0 and run.sys_s >= 0
    assert len(run.malloc_objects) == 1
    if library is None:
        assert Path(run.malloc_objects[0]).name.startswith("libc.so")
    else:
        assert os.path.realpath(run.malloc_objects[0]) == os.path.realpath(library)


def test_peak_rss_is_the_programs_not_the_lab_processes():
    """The launcher's child starts small: a fork of this (numba-laden) Python process would report ~100 MB."""
    assert run_measured([TRUE], "glibc").max_rss_bytes < 16 << 20


def test_peak_rss_covers_a_grandchild_that_was_waited_for():
    code = "x = bytearray(64 << 20); x[::4096] = b'1' * len(x[::4096])"
    run = run_measured([SH, "-c", f"{sys.executable} -c \"{code}\"; true"], "glibc")
    assert run.status == "ok", run.reason
    assert run.max_rss_bytes > 64 << 20


def test_every_process_of_the_run_reports_to_the_probe():
    run = run_measured([SH, "-c", f"{TRUE}; {TRUE}"], _installed_other())
    assert run.status == "ok", run.reason
    assert len(run.malloc_objects) == 1  # the shell and both children: one object, the allocator's


def test_a_non_pie_program_that_takes_mallocs_address_still_passes(tmp_path):
    """Its dynamic symbol table gives malloc the address of its own PLT entry; the probe must look past it."""
    source = ("#include <stdlib.h>\nvoid *(*volatile take)(size_t) = malloc;\n"
              "int main(void) { void *p = take(100); free(p); return p == 0; }\n")
    binary = _compile(tmp_path, "nopie", source, "-no-pie", "-fno-pic")
    allocator = _installed_other()
    run = run_measured([str(binary)], allocator)
    assert run.status == "ok", run.reason
    assert os.path.realpath(run.malloc_objects[0]) == os.path.realpath(real.library_path(allocator))


def test_a_statically_linked_program_is_flagged(tmp_path):
    binary = _compile(tmp_path, "static", MALLOCS, "-static")
    run = run_measured([str(binary)], "glibc")
    assert run.status == "preload_not_taken"
    assert "no process loaded the probe" in run.reason
    assert run.max_rss_bytes > 0  # measured, but never counted


def test_a_program_with_its_own_malloc_is_flagged(tmp_path):
    source = ("#include <stddef.h>\nstatic char heap[1 << 16]; static size_t used;\n"
              "void *malloc(size_t n) { void *p = heap + used; used += (n + 15) & ~(size_t)15; return p; }\n"
              "void free(void *p) { (void)p; }\n"
              "void *calloc(size_t a, size_t b) { return malloc(a * b); }\n"
              "void *realloc(void *p, size_t n) { (void)p; return malloc(n); }\n"
              "int main(void) { return malloc(3) == 0; }\n")
    binary = _compile(tmp_path, "own", source, "-rdynamic")
    run = run_measured([str(binary)], _installed_other())
    assert run.status == "preload_not_taken"
    assert f"malloc is defined by {binary}" in run.reason


def test_a_library_that_is_not_an_allocator_is_flagged():
    run = run_measured([TRUE], "jemalloc", library=str(probe_library()))
    assert run.status == "preload_not_taken"
    assert "libc.so" in run.reason and "not by jemalloc's" in run.reason


def test_a_failing_command_is_reported_as_failed():
    run = run_measured([SH, "-c", "echo broken >&2; exit 1"], "glibc")
    assert run.status == "failed" and run.exit_code == 1
    assert "exit status 1" in run.reason and "broken" in run.reason
    missing = run_measured(["no-such-program-alloclab"], "glibc")
    assert missing.status == "failed" and "cannot run" in missing.reason


def test_a_command_killed_by_a_signal_or_the_timeout_is_reported():
    killed = run_measured([SH, "-c", "kill -SEGV $$"], "glibc")
    assert killed.status == "failed" and killed.exit_code == -11 and "signal 11" in killed.reason
    slow = run_measured(["sleep", "30"], "glibc", timeout=1)
    assert slow.status == "timeout" and slow.wall_s < 20


def test_allocator_tuning_variables_do_not_reach_the_program(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")
    monkeypatch.setenv("MIMALLOC_VERBOSE", "1")
    run = run_measured([SH, "-c", 'test -z "$MALLOC_ARENA_MAX$MIMALLOC_VERBOSE$ALLOCLAB_CHILD_PRELOAD"'], "glibc")
    assert run.status == "ok", run.reason


# ------------------------------------------------------------------ summaries
def _run(allocator: str, wall: float, rss: int, status: str = "ok") -> Run:
    return Run(allocator, status, wall, wall / 2, 0.0, rss, 0 if status == "ok" else 1)


def test_normalised_spread_divides_each_run_by_glibcs_median_and_skips_failed_runs():
    glibc = [_run("glibc", wall, 100) for wall in (1.0, 2.0, 3.0)]
    other = [_run("jemalloc", 1.0, 50), _run("jemalloc", 4.0, 150), _run("jemalloc", 9.0, 1, "failed")]
    spread = normalised(other, glibc, "wall_s")
    assert (spread.median, spread.low, spread.high) == (1.25, 0.5, 2.0)
    assert normalised(glibc, glibc, "max_rss_bytes").median == 1.0
    cell = summarise("jemalloc", other)
    assert (cell.runs, cell.ok) == (3, 2) and cell.reasons == ["failed: "]
    assert normalised(other, [_run("glibc", 1.0, 1, "failed")], "wall_s") is None


# ------------------------------------------------------------------ the named set
def test_the_named_set_and_its_skip_reasons(monkeypatch):
    assert list(catalog.PROGRAMS) == ["sqlite3", "python3", "python3-pymalloc", "cc1", "xz", "zstd"]
    assert [program.name for program in programs.named(["xz", "sqlite3", "xz"])] == ["xz", "sqlite3"]
    with pytest.raises(ValueError, match="unknown program 'nope'"):
        programs.named(["nope"])
    for program in catalog.PROGRAMS.values():
        reason = program.skip_reason()
        assert (reason is None) == (program.binary() is not None)
    missing = catalog.Program("xz", "xz", "xz-utils", lambda: None, catalog.PROGRAMS["xz"].build)
    assert missing.skip_reason() == "xz: not installed (Debian package xz-utils: apt-get install -y xz-utils)"
    result = programs.run_program(missing, ["glibc"], repeats=1)
    assert result.status == "skipped" and "xz-utils" in result.reason and not result.runs


def test_generated_inputs_are_deterministic(tmp_path):
    for generate, count in ((inputs.sql_script, 900), (inputs.c_source, 3), (inputs.text_file, 5000)):
        first = generate(tmp_path / "a", count).read_bytes()
        assert generate(tmp_path / "b", count).read_bytes() == first and first
    assert inputs.sql_script(tmp_path / "c", 0).read_text() == "SELECT 1;\n"
    assert inputs.c_source(tmp_path / "d", 0).read_text().strip() == ""


def test_cc1_runs_with_the_drivers_arguments(tmp_path):
    cc1 = catalog.find_cc1()
    if cc1 is None:
        pytest.skip("gcc's cc1 not found (apt-get install -y gcc)")
    invocation = catalog.PROGRAMS["cc1"].build(cc1, tmp_path, 0.02)
    assert invocation.command[0] == cc1 and "-O2" in invocation.command
    run = run_measured(invocation.command, "glibc", cwd=tmp_path)
    assert run.status == "ok", run.reason
    assert (tmp_path / "generated.s").stat().st_size > 0


# ------------------------------------------------------------------ the command line and its files
def test_split_command_keeps_the_words_after_the_first_double_dash():
    assert split_command(["programs", "-n", "2", "--", "ls", "--", "-l"]) == (["programs", "-n", "2"],
                                                                            ["ls", "--", "-l"])
    assert split_command(["programs", "xz"]) == (["programs", "xz"], None)
    assert split_command(["trace", "record", "-o", "x.npz", "--", "ls"]) == (["trace", "record", "-o", "x.npz",
                                                                             "--", "ls"], None)


@pytest.mark.parametrize("argv", [["programs", "xz", "--", TRUE], ["programs", "--"], ["programs", "nope"],
                                  ["programs", "-a", "glibc,nope", "--", TRUE], ["programs", "--scale", "0"],
                                  ["programs", "--", "no-such-program-alloclab"], ["programs", "--models", "buddy"],
                                  ["programs", "--scale", "2", "--", TRUE]])
def test_bad_input_exits_2(argv, tmp_path, capsys):
    assert main([*argv[:1], "--out", str(tmp_path), *argv[1:]]) == 2
    assert "error" in capsys.readouterr().err


def test_a_failing_command_makes_the_command_line_exit_1(tmp_path, capsys):
    assert main(["programs", "--out", str(tmp_path), "-n", "1", "-q", "-a", "glibc", "--", SH, "-c", "exit 1"]) == 1
    report = load_report(tmp_path)
    assert report.programs[0].status == "failed" and "exit status 1" in report.programs[0].reason
    assert "failed: warm-up run under glibc: exit status 1" in capsys.readouterr().out


def test_a_tiny_run_writes_the_table_plot_and_json(tmp_path, capsys):
    if catalog.PROGRAMS["xz"].binary() is None:
        pytest.skip("xz not installed (apt-get install -y xz-utils)")
    other = _installed_other()
    out = tmp_path / "out"
    assert main(["programs", "xz", "--scale", "0.005", "-n", "2", "-a", f"glibc,{other}", "--out", str(out),
                 "-q"]) == 0
    text = capsys.readouterr().out
    assert "time / glibc's" in text and other in text
    for name in ("programs.json", "programs.md", "plots/programs.png"):
        assert (out / name).stat().st_size > 0
    report = load_report(out)
    assert report.allocators == ["glibc", other] and report.repeats == 2
    xz = report.programs[0]
    assert xz.status == "measured" and len(xz.runs) == 4 and all(run.ok for run in xz.runs)
    assert [run.allocator for run in xz.runs] == ["glibc", other, other, "glibc"]  # rounds rotate the order
    assert {run.allocator for run in xz.baselines} == {"glibc", other}
    assert xz.baseline_rss("glibc") > 0 and xz.ratio(other, "max_rss_bytes").median > 0
    assert "| xz | glibc | 2/2 |" in (out / "programs.md").read_text()
    assert json.loads((out / "programs.json").read_text())["format"] == "alloclab-programs/1"


def test_record_writes_the_models_predictions(tmp_path, capsys):
    from workloads.record import RecordError, available_tool

    try:
        available_tool()
    except RecordError as error:
        pytest.skip(str(error))
    if catalog.PROGRAMS["sqlite3"].binary() is None:
        pytest.skip("sqlite3 not installed (apt-get install -y sqlite3)")
    out = tmp_path / "out"
    assert main(["programs", "sqlite3", "--scale", "0.005", "-n", "1", "-a", "glibc", "--record",
                 "--models", "buddy", "--out", str(out), "-q", "--no-plots"]) == 0
    assert "models on the recorded traces" in capsys.readouterr().out
    recording = load_report(out).programs[0].recording
    assert recording is not None and recording.allocs > 0 and (out / "traces" / "sqlite3.npz").exists()
    assert [entry.model for entry in recording.predictions] == ["buddy"]
    for entry in recording.predictions:
        assert entry.status == "ok" and entry.peak_footprint >= entry.peak_live_requested > 0
        assert entry.overhead_factor >= 1.0
    assert "| sqlite3 | buddy |" in (out / "programs.md").read_text()


def test_a_paired_models_row_stands_beside_its_real_allocators_rss():
    """freelist:glibc beside real glibc: RSS growth = median peak RSS - baseline, and that over the peak live bytes."""
    from bench.programs.predict import Prediction, Recording
    from bench.programs.results import ProgramResult, ProgramsReport
    from bench.programs.tables import model_rows

    mib = 1 << 20
    result = ProgramResult("demo", "demo", ["demo"], runs=[_run("glibc", 1.0, rss * mib) for rss in (30, 32, 34)],
                           baselines=[_run("glibc", 0.1, 10 * mib)])
    result.recording = Recording("heaptrack", "demo.npz", 10, 5, 5, 0, 0, 1.0, predictions=[
        Prediction("freelist:glibc", "ok", "", 24 * mib, 20 * mib, 1.2), Prediction("buddy", "failed", "too big")])
    report = ProgramsReport(["glibc"], 3, 1.0, [result])
    paired, unpaired = model_rows(report)
    assert paired == ["demo", "freelist:glibc", "20.0 MiB", "24.0 MiB", "1.200", "glibc", "22.0 MiB", "1.100",
                      "32.0 MiB"]
    assert unpaired[:4] == ["demo", "buddy", "-", "failed: too big"] and unpaired[5] == "-"


def test_default_models_pair_first_then_every_other_general_purpose_model():
    models = programs.default_models()
    assert models[:4] == ["freelist:glibc", "jemalloc", "tcmalloc:gperftools", "mimalloc"]
    assert "objpool" not in models and "linear" not in models and "buddy" in models


def test_help_and_list(capsys):
    assert main(["programs", "--help"]) == 0
    assert "-- CMD ARGS" in capsys.readouterr().out
    assert main(["programs", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in catalog.PROGRAMS)
