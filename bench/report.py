"""OUT/index.html: one static page showing a sweep's figures, its results table and how it was run.

`write_index(OUT)` reads `OUT/results.json` (through `bench.plots.load_report`)
and the figure list `OUT/plots/manifest.json` that `bench.plots.draw_all`
writes, and writes `OUT/index.html` (atomically) with, in order:

- the verdicts (`bench.verdicts`): one row per workload naming the fastest,
  leanest, most cache-friendly and best-scaling general-purpose model, each
  with its figure and the runner-up's, and the real allocators' replay speed
  as the scale; the special-purpose models and the real allocators are named
  above the table, since they are in no verdict;
- the figures, numbered, each with its caption (what is plotted, how to read
  it), one paragraph saying what to look at, and a note from the drawing (cells
  drawn, failures left out); a figure that could not be drawn is one line
  saying why;
- a summary: median model replay speed and overhead factor per allocator x
  workload, special-purpose models greyed, failed cells named by their short
  reason and skipped ones 'n/a' (the full reason in the title tooltip and in
  the full table);
- the full results table, collapsed (`<details>`): one row per allocator x
  workload x seed with the main figures (columns only for metrics some row
  has); a failed or skipped cell's row shows its reason across the metric
  columns;
- the run metadata: command, creation time, preset, seeds, rows, repeats, git
  revision, package versions, machine, heap-map cell, anything else in `meta`.

Throughput is always called the *model replay speed*: the speed of replaying
the trace through the model's kernels, which ranks the models' algorithms, not
the speed of the real allocator a model imitates (`real:glibc`, when measured,
is that scale).  The page fits a 1400 px window: every wide table scrolls
sideways inside its own box.

The page is self-contained: inline CSS, no script, no external URL; figures
are linked relatively (`plots/NAME.png`), so the directory can be copied or
served as it is.  Everything taken from the results is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.plots import ReportData, load_report, number, read_manifest
from bench.plots.data import GENERAL, REAL, SPECIAL
from bench.table import format_bytes
from bench.verdicts import CRITERIA, Pick, Verdict, verdicts

INDEX = "index.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1360px; padding: 0 1em; color: #222; line-height: 1.45; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
.scroll table { margin: 0; }
details > summary { cursor: pointer; font-weight: 600; margin: 0.5em 0; }
p.look { max-width: 75em; margin: 0.3em 0 0; }
table.verdicts td { vertical-align: top; min-width: 10em; }
table.verdicts .fig { font-variant-numeric: tabular-nums; }
table.verdicts .ru { color: #666; font-size: 0.92em; }
table.verdicts td.scale { white-space: nowrap; font-size: 0.92em; }
.special, tr.special th, tr.special td { color: #8a8a8a; }
td.na { color: #777; font-style: italic; }
tr.skipped td { background: #f7f7f7; color: #666; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin: 1.2em 0 0.4em; }
.sub { color: #555; margin-top: 0; }
nav a { margin-right: 1.2em; }
figure { margin: 0 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { max-width: 75em; color: #333; font-size: 0.95em; }
.note { color: #666; font-style: italic; }
.skipped { color: #8a5a00; background: #fff8e5; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.55em; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.failed { color: #a00000; }
tr.failed td { background: #fff3f3; }
tbody tr:nth-child(even) td { background-color: #fafafa; }
tbody tr.failed:nth-child(even) td { background-color: #fff0f0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1.2em; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
code { background: #f4f4f4; padding: 0.05em 0.3em; border-radius: 3px; }
"""


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


#: Columns of the full table: (metric, header, formatter).
COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("throughput_mops", "model replay Mops/s", lambda value: f"{value:.3g}" if value < 100 else f"{value:.0f}"),
    ("ns_per_op", "ns/op", lambda value: f"{value:.1f}"),
    ("peak_footprint", "peak footprint", format_bytes),
    ("peak_live_requested", "peak live requested", format_bytes),
    ("overhead_factor", "overhead factor", lambda value: f"{value:.3f}"),
    ("internal_fragmentation", "internal frag. %", _percent),
    ("external_fragmentation", "external frag. %", _percent),
    ("peak_metadata_bytes", "peak metadata", format_bytes),
    ("hot_reuse_rate", "hot reuse %", _percent),
    ("l2_misses_per_kop", "L2 misses / 1000 rows", lambda value: f"{value:.3g}"),
    ("l1_miss_rate", "L1 miss %", _percent),
    ("tlb_miss_rate", "TLB miss %", _percent),
    ("shared_ops_per_1000", "shared ops / 1000", lambda value: f"{value:.1f}"),
    ("shared_ops_per_kop", "shared ops / 1000", lambda value: f"{value:.1f}"),  # the name bench.metrics uses
    ("remote_free_rate", "remote frees %", _percent),
)

#: Known metadata keys, in display order, with their labels; other keys follow under their own names.
META_KEYS = (
    ("command", "command"), ("created", "created"), ("preset", "preset"), ("seeds", "seeds"), ("ops", "rows per trace"),
    ("repeats", "timed repeats"), ("git_revision", "git revision"), ("versions", "versions"),
    ("machine", "machine"), ("heapmap_cell", "heap-map cell"), ("allocators", "allocators"),
    ("workloads", "workloads"),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def short_reason(reason: str) -> str:
    """A few words for a failed or skipped cell: the exception name before ':' or a hint, e.g. 'not LIFO'."""
    for words, short in (("not applicable", "n/a"), ("out of memory", "out of memory"),
                         ("OutOfMemory", "out of memory"), ("out of LIFO order", "not LIFO"),
                         ("larger than the largest", "too large")):
        if words in reason:
            return short
    head = reason.split(":", 1)[0].strip()
    return head if head and len(head) <= 32 else "failed"


def _format_meta_value(value: Any) -> str:
    if value is None:
        return "<span class=note>not recorded</span>"
    if isinstance(value, dict):
        if not value:
            return "<span class=note>none</span>"
        return ", ".join(f"{_e(key)} <code>{_e(item)}</code>" for key, item in value.items())
    if isinstance(value, list):
        return _e(", ".join(str(item) for item in value))
    return f"<code>{_e(value)}</code>" if not isinstance(value, int | float) else _e(value)


def _scroll(table: str) -> str:
    """A table in a box that scrolls sideways when it is wider than the page."""
    return f'<div class="scroll">{table}</div>'


# ------------------------------------------------------------------ verdicts
def _pick_html(criterion_fmt: Callable[[float], str], pick: Pick) -> str:
    return f"{_e(pick.allocator)} <span class=fig>{_e(criterion_fmt(pick.value))}</span>"


def _verdict_cell(verdict: Verdict) -> str:
    if verdict.winner is None:
        return f'<td class="note" title="{_e(verdict.note)}">—</td>'
    fmt = verdict.criterion.fmt
    winner = f"<b>{_pick_html(fmt, verdict.winner)}</b>" + (" <span class=note>(tie)</span>" if verdict.tied else "")
    runner = (f'<br><span class="ru">runner-up: {_pick_html(fmt, verdict.runner_up)}</span>'
              if verdict.runner_up is not None else '<br><span class="ru">no runner-up</span>')
    return f"<td>{winner}{runner}</td>"


def _verdicts_html(results: ReportData) -> str:
    if not results.rows:
        return "<p class=skipped>No cells in the results.</p>"
    table = verdicts(results)
    special = [spec for spec in results.allocators if results.kind(spec) == SPECIAL]
    real = [spec for spec in results.allocators if results.kind(spec) == REAL]
    general = [spec for spec in results.allocators if results.kind(spec) == GENERAL]
    criteria = "; ".join(f"<b>{_e(c.title)}</b>: {_e(c.label)}" + (" (multi-thread workloads only)"
                                                                      if c.multi_thread_only else "")
                         for c in CRITERIA)
    intro = [f"<p>Per workload, the general-purpose model that wins each criterion, with its figure (median over "
             f"seeds) and the runner-up below it. {criteria}. A cell that failed or was skipped on any seed never "
             "wins; '—' means no verdict (hover for why).</p>"]
    lines = [f"<p>Competing ({len(general)}): {_e(', '.join(general)) or 'none'}.</p>"]
    if special:
        lines.append(f'<p class="special">Special purpose, kept out of the verdicts and the Pareto front (greyed in '
                     f"the figures): {_e(', '.join(special))}.</p>")
    if real:
        lines.append(f"<p>Real allocators, the scale (not models, so in no verdict): {_e(', '.join(real))}; their "
                     "replay speed of the same trace is the last column.</p>")
    header = "".join(f"<th>{_e(c.title)}<br><span class=note>{_e(c.label)}</span></th>" for c in CRITERIA)
    if real:
        header += "<th>scale: real allocators<br><span class=note>replay speed, Mops/s</span></th>"
    body = []
    for entry in table:
        threads = "?" if entry.threads is None else str(entry.threads)
        cells = "".join(_verdict_cell(verdict) for verdict in entry.verdicts)
        if real:
            scale = [f"{_e(spec)} <span class=fig>{_e(f'{entry.scale[spec].value:.3g}')}</span>" if spec in entry.scale
                     else f"{_e(spec)} —" for spec in real]
            cells += f'<td class="scale">{"<br>".join(scale)}</td>'
        body.append(f"<tr><th>{_e(entry.workload)}</th><td class=num>{_e(threads)}</td>{cells}</tr>")
    markup = (f'<table class="verdicts"><thead><tr><th>workload</th><th>threads</th>{header}</tr></thead>'
              f"<tbody>{''.join(body)}</tbody></table>")
    return "\n".join(intro + lines + [_scroll(markup)])


# ------------------------------------------------------------------ figures and tables
def _figures_html(entries: list[dict[str, Any]]) -> str:
    parts = []
    for index, entry in enumerate(entries, start=1):
        title = f"Figure {index}. {entry.get('title', entry.get('name', ''))}"
        anchor = f"fig-{_e(entry.get('name', index))}"
        if entry.get("file") and not entry.get("skipped"):
            note = f' <span class="note">({_e(entry["note"])})</span>' if entry.get("note") else ""
            look = f'<p class="look"><b>What to look at.</b> {_e(entry["look"])}</p>' if entry.get("look") else ""
            parts.append(
                f'<figure id="{anchor}"><h3>{_e(title)}</h3>'
                f'<a href="{_e(entry["file"])}"><img src="{_e(entry["file"])}" alt="{_e(title)}" loading="lazy"></a>'
                f"<figcaption>{_e(entry.get('caption', ''))}{note}{look}</figcaption></figure>"
            )
        else:
            parts.append(
                f'<div id="{anchor}"><h3>{_e(title)}</h3><p class="skipped">Not drawn: '
                f"{_e(entry.get('skipped') or 'no image')}</p></div>"
            )
    return "\n".join(parts)


def _allocator_label(results: ReportData, spec: str) -> str:
    kind = results.kind(spec)
    suffix = {SPECIAL: " <span class=note>(special purpose)</span>", REAL: " <span class=note>(real, the scale)</span>"}
    return f"{_e(spec)}{suffix.get(kind, '')}"


def _summary_html(results: ReportData) -> str:
    if not results.rows:
        return "<p class=skipped>No cells in the results.</p>"
    parts = []
    for metric, title, fmt in (
        ("throughput_mops", "Model replay speed (Mops/s, median over seeds)", lambda value: f"{value:.3g}"),
        ("overhead_factor", "Overhead factor (peak footprint / peak live requested, median over seeds)",
         lambda value: f"{value:.2f}"),
    ):
        if not results.has_metric(metric):
            parts.append(f"<p class=skipped>{_e(title)}: no cell has '{_e(metric)}'.</p>")
            continue
        values: dict[tuple[str, str], list[float]] = {}
        reasons: dict[tuple[str, str], tuple[str, str]] = {}
        for row in results.rows:
            key = (row["allocator"], row["workload"])
            value = number(row, metric) if row["status"] == "ok" else None
            if value is not None:
                values.setdefault(key, []).append(value)
            elif row["status"] != "ok":
                reasons.setdefault(key, (row["status"], row["reason"]))
        header = "".join(f"<th>{_e(workload)}</th>" for workload in results.workloads)
        lines = [f"<h3>{_e(title)}</h3>", f"<table><thead><tr><th>allocator</th>{header}</tr></thead><tbody>"]
        for spec in results.allocators:
            cells = []
            for workload in results.workloads:
                key = (spec, workload)
                if key in values:
                    cells.append(f'<td class="num">{_e(fmt(statistics.median(values[key])))}</td>')
                elif key in reasons:
                    status, reason = reasons[key]
                    css = "na" if status == "skipped" else "failed"
                    cells.append(f'<td class="{css}" title="{_e(reason)}">{_e(short_reason(reason))}</td>')
                else:
                    cells.append("<td></td>")
            css = ' class="special"' if results.kind(spec) == SPECIAL else ""
            lines.append(f"<tr{css}><th>{_allocator_label(results, spec)}</th>{''.join(cells)}</tr>")
        lines.append("</tbody></table>")
        parts.append(lines[0] + _scroll("\n".join(lines[1:])))
    return "\n".join(parts)


def _results_table_html(results: ReportData) -> str:
    if not results.rows:
        return "<p class=skipped>No cells in the results.</p>"
    columns = [column for column in COLUMNS if results.has_metric(column[0])]
    allocator_rank = {spec: index for index, spec in enumerate(results.allocators)}
    workload_rank = {workload: index for index, workload in enumerate(results.workloads)}
    rows = sorted(results.rows, key=lambda row: (allocator_rank.get(row["allocator"], 0),
                                                 workload_rank.get(row["workload"], 0), row["seed"]))
    header = "".join(f"<th>{_e(label)}</th>" for _, label, _ in columns)
    lines = [f"<table><thead><tr><th>allocator</th><th>workload</th><th>seed</th><th>status</th>{header}</tr>"
             "</thead><tbody>"]
    for row in rows:
        lead = f"<td>{_e(row['allocator'])}</td><td>{_e(row['workload'])}</td><td class=num>{_e(row['seed'])}</td>"
        if row["status"] != "ok":
            span = max(len(columns), 1)
            status = "skipped" if row.skipped else "failed"
            css = "na" if row.skipped else "failed"
            lines.append(f'<tr class="{status}">{lead}<td class="{css}">{status}</td>'
                         f'<td class="{css}" colspan="{span}">{_e(row["reason"])}</td></tr>')
            continue
        cells = []
        for metric, _, fmt in columns:
            value = number(row, metric)
            cells.append(f'<td class="num">{_e(fmt(value)) if value is not None else ""}</td>')
        lines.append(f"<tr>{lead}<td>ok</td>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _meta_html(meta: dict[str, Any]) -> str:
    if not meta:
        return "<p class=skipped>No run metadata in results.json.</p>"
    items = []
    known = {key for key, _ in META_KEYS}
    for key, label in META_KEYS:
        if key in meta:
            items.append(f"<dt>{_e(label)}</dt><dd>{_format_meta_value(meta[key])}</dd>")
    for key, value in meta.items():
        if key not in known:
            items.append(f"<dt>{_e(key)}</dt><dd>{_format_meta_value(value)}</dd>")
    return '<dl class="meta">' + "".join(items) + "</dl>"


def render_index(results: ReportData, entries: list[dict[str, Any]]) -> str:
    """The page's HTML text for loaded results and a figure manifest."""
    ok = len(results.ok_rows())
    skipped = sum(row.skipped for row in results.rows)
    failed = len(results.rows) - ok - skipped
    created = results.meta.get("created")
    seeds = ", ".join(str(seed) for seed in results.seeds) or "none"
    subtitle = (f"{len(results.rows)} cells ({ok} ok, {failed} failed, {skipped} skipped as not applicable): "
                f"{len(results.allocators)} allocators x {len(results.workloads)} workloads x seeds {seeds}"
                + (f"; created {created}" if created else ""))
    return "\n".join((
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>allocator lab: sweep results{' ' + _e(created) if created else ''}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Allocator lab: sweep results</h1>",
        f'<p class="sub">{_e(subtitle)}</p>',
        '<nav><a href="#verdicts">Verdicts</a><a href="#figures">Figures</a><a href="#summary">Summary</a>'
        '<a href="#results">Results table</a><a href="#run">Run</a></nav>',
        '<h2 id="verdicts">Verdicts per workload</h2>',
        _verdicts_html(results),
        '<h2 id="figures">Figures</h2>',
        "<p>Speed is the <b>model replay speed</b> everywhere: trace rows per second replaying the model's kernels "
        "(it ranks the models' algorithms; it is not the speed of the real allocator a model imitates).</p>",
        _figures_html(entries),
        '<h2 id="summary">Summary</h2>',
        "<p>Medians over seeds; a failed cell shows a short reason, a skipped one 'n/a' (hover for the full reason, "
        "or see the table). A real allocator's footprint is the heap it took from the OS in a fresh C process "
        "(the clean-heap replayer, by the allocator's own statistics), as bench fidelity measures it; without gcc it "
        "is measured in the Python child, where it reads low on traces with little live data.</p>",
        _summary_html(results),
        '<h2 id="results">Results table</h2>',
        "<details><summary>All cells: one row per allocator x workload x seed "
        f"({len(results.rows)} rows)</summary>",
        "<p>Rates are in % (fragmentation: share of live granted bytes at peak); the model replay speed counts "
        "kernel time only.</p>",
        _scroll(_results_table_html(results)),
        "</details>",
        '<h2 id="run">Run</h2>',
        _meta_html(results.meta),
        "</body></html>",
        "",
    ))


def write_index(results_dir: Path) -> Path:
    """Write OUT/index.html from OUT/results.json and OUT/plots/manifest.json; return its path.

    Call `bench.plots.draw_all(OUT)` first to (re)draw the figures; without a
    manifest the page shows the known figures whose PNG exists.  Raises
    FileNotFoundError / ValueError as `bench.plots.load_report` does.
    """
    results_dir = Path(results_dir)
    results = load_report(results_dir)
    entries = read_manifest(results_dir)
    path = results_dir / INDEX
    temporary = path.with_name(f".{INDEX}.{os.getpid()}.tmp")
    temporary.write_text(render_index(results, entries), encoding="utf-8")
    os.replace(temporary, path)
    return path


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience until the CLI has `plot`
    import sys

    from bench.plots import draw_all

    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m bench.report RESULTS_DIR", file=sys.stderr)
        return 2
    try:
        paths = draw_all(Path(arguments[0]))
        index = write_index(Path(arguments[0]))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"plots": [str(path) for path in paths], "index": str(index)}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
