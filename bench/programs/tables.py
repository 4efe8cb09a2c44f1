"""The tables of a programs report: on the console (`console_text`, at most 100 columns, `bench.table.render`)
and in Markdown (`markdown_text`, OUT/programs.md).

Measured table, one row per program and allocator: ok runs of all, medians of wall, user and system time and of
peak RSS, the RSS growth over the baseline run, and time and peak RSS over glibc's, each "median (min..max)" over
the repeats (`bench.programs.summary`).  The console shows the spread on the ratios; Markdown shows it on every
measure.  Then, after a `--record`, the models table: per program the recorded trace's peak live requested bytes,
and per model its peak footprint and overhead factor beside the paired real allocator's measured peak RSS and RSS
growth (`bench.programs.predict.MODEL_OF`; the unpaired models have no real side).  Notes list the programs
skipped or failed, the allocators skipped, and every run that was not ok.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.programs.predict import MODEL_OF
from bench.programs.results import ProgramResult, ProgramsReport
from bench.programs.summary import Spread
from bench.table import format_bytes, render

RSS_NOTE = ("RSS is the whole process: the program's code and data, its libraries, stacks and the allocator's "
            "start-up state, which the baseline run (the same program on a trivial input) measures; RSS growth is "
            "peak RSS minus that.  A model's peak footprint is the address space it took for the recorded "
            "mallocs alone, touched or not, and memory the program maps itself (pymalloc's arenas, GCC's "
            "garbage-collected pages) is in the RSS but not in the trace.")


def _figure(spread: Spread | None, form: Callable[[float], str], with_range: bool) -> str:
    if spread is None:
        return "-"
    text = form(spread.median)
    return f"{text} ({form(spread.low)}..{form(spread.high)})" if with_range else text


def _seconds(value: float) -> str:
    return f"{value:.2f}"


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def _bytes(value: float | None) -> str:
    return "-" if value is None else format_bytes(int(value))


def measured_rows(report: ProgramsReport, with_range: bool) -> list[list[str]]:
    rows = []
    for program in report.measured():
        for allocator in report.allocators:
            cell = program.cell(allocator)
            spreads = cell.spreads
            rows.append([program.name, allocator, f"{cell.ok}/{cell.runs}",
                         _figure(spreads.get("wall_s"), _seconds, with_range),
                         _figure(spreads.get("user_s"), _seconds, with_range),
                         _figure(spreads.get("sys_s"), _seconds, with_range),
                         _figure(spreads.get("max_rss_bytes"), _bytes, with_range),
                         _bytes(program.rss_growth(allocator)),
                         _figure(program.ratio(allocator, "wall_s"), _ratio, True),
                         _figure(program.ratio(allocator, "max_rss_bytes"), _ratio, True)])
    return rows


MEASURED_HEADERS = ["program", "allocator", "ok", "wall s", "user s", "sys s", "peak RSS", "RSS growth",
                    "time / glibc's", "peak RSS / glibc's"]
MODEL_HEADERS = ["program", "model", "real", "real peak RSS", "real RSS growth", "model peak footprint",
                 "model overhead", "peak live requested"]


def model_rows(report: ProgramsReport) -> list[list[str]]:
    paired = {model: real for real, model in MODEL_OF.items()}
    rows = []
    for program in report.measured():
        recording = program.recording
        if recording is None:
            continue
        for prediction in recording.predictions:
            real = paired.get(prediction.model)
            measured = real is not None and real in report.allocators
            peak = program.cell(real).median("max_rss_bytes") if measured else None
            if prediction.status != "ok":
                rows.append([program.name, prediction.model, real or "-", _bytes(peak), "-",
                             f"failed: {prediction.reason[:40]}", "-", "-"])
                continue
            rows.append([program.name, prediction.model, real or "-", _bytes(peak),
                         _bytes(program.rss_growth(real)) if measured else "-",
                         _bytes(prediction.peak_footprint), f"{prediction.overhead_factor:.3f}",
                         _bytes(prediction.peak_live_requested)])
    return rows


def note_lines(report: ProgramsReport) -> list[str]:
    lines = [f"allocator {name} skipped: {reason}" for name, reason in report.skipped_allocators.items()]
    for program in report.programs:
        if program.status != "measured":
            lines.append(f"{program.name}: {program.status}: {program.reason}")
            continue
        lines += _run_notes(program, report.allocators)
        if program.record_error:
            lines.append(f"{program.name}: not recorded: {program.record_error}")
    return lines


def _run_notes(program: ProgramResult, allocators: list[str]) -> list[str]:
    lines = []
    for allocator in allocators:
        cell = program.cell(allocator)
        if cell.ok < cell.runs:
            lines.append(f"{program.name} under {allocator}: {cell.runs - cell.ok} of {cell.runs} runs not "
                         f"counted: {'; '.join(cell.reasons)}")
    for run in program.baselines:
        if not run.ok:
            lines.append(f"{program.name} baseline under {run.allocator}: {run.status}: {run.reason}")
    return lines


def _title(report: ProgramsReport) -> str:
    meta = report.meta
    return (f"real programs under each allocator: {report.repeats} repeat(s) each, scale {report.scale:g}, "
            f"{meta.get('cpus', '?')} cores ({meta.get('cpu', 'unknown CPU')}), load average "
            f"{_load(meta.get('load_average_start'))} at start, {_load(meta.get('load_average_end'))} at end")


def _load(values: list[float] | None) -> str:
    return "?" if not values else f"{values[0]:.2f}"


def console_text(report: ProgramsReport) -> str:
    """The measured table, the models table when recorded, and the notes, for the terminal."""
    parts = [_title(report), "",
             render(MEASURED_HEADERS, measured_rows(report, with_range=False), keep=2)]
    models = model_rows(report)
    if models:
        parts += ["", "models on the recorded traces, beside the real allocator they model:",
                  render(MODEL_HEADERS, models, keep=2), RSS_NOTE]
    notes = note_lines(report)
    if notes:
        parts += ["", *notes]
    return "\n".join(parts)


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_text(report: ProgramsReport) -> str:
    """OUT/programs.md: the same tables with the min..max of every measure, and the commands run."""
    parts = [f"# {_title(report)}", "", "Medians over the repeats, (min..max) in brackets; ratios divide each run "
             "by glibc's median.", "", _markdown_table(MEASURED_HEADERS, measured_rows(report, with_range=True))]
    models = model_rows(report)
    if models:
        parts += ["", "## Models on the recorded traces", "", _markdown_table(MODEL_HEADERS, models), "", RSS_NOTE]
    parts += ["", "## Commands", ""]
    for program in report.measured():
        env = " ".join(f"{key}={value}" for key, value in program.env.items())
        parts.append(f"- {program.name}: `{(env + ' ') if env else ''}{' '.join(program.command)}`")
    notes = note_lines(report)
    if notes:
        parts += ["", "## Notes", "", *(f"- {line}" for line in notes)]
    return "\n".join(parts) + "\n"
