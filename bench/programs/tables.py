"""The tables of a programs report: on the console (`console_text`, at most 100 columns, `bench.table.render`) and in
Markdown (`markdown_text`, OUT/programs.md).

Measured table, one row per program and allocator: ok runs of all, medians of wall, user and system time and of peak
RSS, the RSS growth over the baseline run, and wall time, CPU time (user + sys: steadier than wall time on a busy
machine) and peak RSS over glibc's, each "median (min..max)" over the repeats (`bench.programs.summary`). The
console shows the spread on the ratios; Markdown shows it on every measure. Then, after a `--record`, the models
table: per program the recorded trace's peak live requested bytes, and per model its peak footprint and overhead
factor beside the paired real allocator's median RSS growth, that growth over the peak live bytes (the real side's
nearest to an overhead factor) and its peak RSS (`bench.programs.predict.MODEL_OF`; the unpaired models have no real
side). Notes list the programs skipped or failed, the allocators skipped, and every run that was not ok.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.programs.predict import MODEL_OF
from bench.programs.results import ProgramResult, ProgramsReport
from bench.programs.summary import Spread
from bench.table import format_bytes, render

RSS_NOTE = ("RSS is the whole process: the program's code and data, its libraries, stacks and the allocator's "
            "start-up state, which the baseline run (the program doing next to nothing: --version, SELECT 1, an "
            "empty file) measures; RSS growth is peak RSS minus that.  RSS counts pages touched: a block malloc'ed "
            "and never written costs none (xz's encoder tables, sized for the largest input), while a model's "
            "peak footprint is the address space it took for the recorded mallocs, touched or not.  Memory the "
            "program maps itself (pymalloc's arenas, GCC's garbage-collected pages) is in the RSS but not in the "
            "trace.")


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
                         _figure(program.ratio(allocator, "cpu_s"), _ratio, True),
                         _figure(program.ratio(allocator, "max_rss_bytes"), _ratio, True)])
    return rows


MEASURED_HEADERS = ["program", "allocator", "ok", "wall s", "user s", "sys s", "peak RSS", "RSS growth",
                    "time / glibc's", "user+sys / glibc's", "peak RSS / glibc's"]
MODEL_HEADERS = ["program", "model", "peak live\nrequested", "model peak\nfootprint", "model\noverhead", "real",
                 "real RSS\ngrowth", "real growth /\npeak live", "real peak\nRSS"]


def model_rows(report: ProgramsReport) -> list[list[str]]:
    """Per recorded program and model: the trace's peak live bytes, the model's peak footprint and overhead factor,
    and for a paired model its real allocator's median RSS growth (also over the peak live bytes) and peak RSS."""
    paired = {model: real for real, model in MODEL_OF.items()}
    rows = []
    for program in report.measured():
        recording = program.recording
        if recording is None:
            continue
        for prediction in recording.predictions:
            real = paired.get(prediction.model)
            measured = real is not None and real in report.allocators
            growth = program.rss_growth(real) if measured else None
            live = prediction.peak_live_requested
            real_side = [real or "-", _bytes(growth),
                         "-" if growth is None or not live else f"{growth / live:.3f}",
                         _bytes(program.cell(real).median("max_rss_bytes")) if measured else "-"]
            if prediction.status != "ok":
                rows.append([program.name, prediction.model, "-", f"failed: {prediction.reason[:30]}", "-",
                             *real_side])
                continue
            rows.append([program.name, prediction.model, _bytes(live), _bytes(prediction.peak_footprint),
                         f"{prediction.overhead_factor:.3f}", *real_side])
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
    parts = [_title(report)]
    if report.measured():
        parts += ["", render(MEASURED_HEADERS, measured_rows(report, with_range=False), keep=2)]
    models = model_rows(report)
    if models:
        parts += ["", "models on the recorded traces, beside the real allocator they model:",
                  render(MODEL_HEADERS, models, keep=2), RSS_NOTE]
    notes = note_lines(report)
    if notes:
        parts += ["", *notes]
    return "\n".join(parts)


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header.replace("\n", " ") for header in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_text(report: ProgramsReport) -> str:
    """OUT/programs.md: the same tables with the min..max of every measure, and the commands run."""
    parts = [f"# {_title(report)}", "", "Medians over the repeats, (min..max) in brackets; ratios divide each run "
             "by glibc's median.", "",
             _markdown_table(MEASURED_HEADERS, measured_rows(report, with_range=True))] if report.measured() else [
             f"# {_title(report)}", "", "No program was measured (see the notes)."]
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
