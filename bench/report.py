"""OUT/index.html: one static page showing a sweep's figures, its results table and how it was run.

`write_index(OUT)` reads `OUT/results.json` (through `bench.plots.load_report`)
and the figure list `OUT/plots/manifest.json` that `bench.plots.draw_all`
writes, and writes `OUT/index.html` (atomically) with, in order:

- the figures, numbered, each with its caption (what is plotted, how to read
  it) and a note from the drawing (cells drawn, failures left out); a figure
  that could not be drawn is one line saying why;
- a summary: median throughput and overhead factor per allocator x workload,
  failed cells named by their short reason (the full reason in the title
  tooltip and in the full table);
- the full results table: one row per allocator x workload x seed with the
  main figures (columns only for metrics some row has); a failed cell's row
  shows its reason across the metric columns;
- the run metadata: command, creation time, preset, seeds, rows, repeats, git
  revision, package versions, machine, heap-map cell, anything else in `meta`.

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
from bench.table import format_bytes

INDEX = "index.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1400px; padding: 0 1em; color: #222; line-height: 1.45; }
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
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
code { background: #f4f4f4; padding: 0.05em 0.3em; border-radius: 3px; }
"""


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


#: Columns of the full table: (metric, header, formatter).
COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("throughput_mops", "Mops/s", lambda value: f"{value:.3g}" if value < 100 else f"{value:.0f}"),
    ("ns_per_op", "ns/op", lambda value: f"{value:.1f}"),
    ("peak_footprint", "peak footprint", format_bytes),
    ("peak_live_requested", "peak live requested", format_bytes),
    ("overhead_factor", "overhead factor", lambda value: f"{value:.3f}"),
    ("internal_fragmentation", "internal frag. %", _percent),
    ("external_fragmentation", "external frag. %", _percent),
    ("peak_metadata_bytes", "peak metadata", format_bytes),
    ("l1_miss_rate", "L1 miss %", _percent),
    ("tlb_miss_rate", "TLB miss %", _percent),
    ("hot_reuse_rate", "hot reuse %", _percent),
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
    """A few words for a failed cell: the exception name before ':' and a hint, e.g. 'UnsupportedOperation'."""
    for words, short in (("out of memory", "out of memory"), ("OutOfMemory", "out of memory"),
                         ("out of LIFO order", "not LIFO"), ("larger than the largest", "too large")):
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


def _figures_html(entries: list[dict[str, Any]]) -> str:
    parts = []
    for index, entry in enumerate(entries, start=1):
        title = f"Figure {index}. {entry.get('title', entry.get('name', ''))}"
        anchor = f"fig-{_e(entry.get('name', index))}"
        if entry.get("file") and not entry.get("skipped"):
            note = f' <span class="note">({_e(entry["note"])})</span>' if entry.get("note") else ""
            parts.append(
                f'<figure id="{anchor}"><h3>{_e(title)}</h3>'
                f'<a href="{_e(entry["file"])}"><img src="{_e(entry["file"])}" alt="{_e(title)}" loading="lazy"></a>'
                f"<figcaption>{_e(entry.get('caption', ''))}{note}</figcaption></figure>"
            )
        else:
            parts.append(
                f'<div id="{anchor}"><h3>{_e(title)}</h3><p class="skipped">Not drawn: '
                f"{_e(entry.get('skipped') or 'no image')}</p></div>"
            )
    return "\n".join(parts)


def _summary_html(results: ReportData) -> str:
    if not results.rows:
        return "<p class=skipped>No cells in the results.</p>"
    parts = []
    for metric, title, fmt in (
        ("throughput_mops", "Throughput (Mops/s, median over seeds)", lambda value: f"{value:.3g}"),
        ("overhead_factor", "Overhead factor (peak footprint / peak live requested, median over seeds)",
         lambda value: f"{value:.2f}"),
    ):
        if not results.has_metric(metric):
            parts.append(f"<p class=skipped>{_e(title)}: no cell has '{_e(metric)}'.</p>")
            continue
        values: dict[tuple[str, str], list[float]] = {}
        reasons: dict[tuple[str, str], str] = {}
        for row in results.rows:
            key = (row["allocator"], row["workload"])
            value = number(row, metric) if row["status"] == "ok" else None
            if value is not None:
                values.setdefault(key, []).append(value)
            elif row["status"] != "ok":
                reasons.setdefault(key, row["reason"])
        header = "".join(f"<th>{_e(workload)}</th>" for workload in results.workloads)
        lines = [f"<h3>{_e(title)}</h3>", f"<table><thead><tr><th>allocator</th>{header}</tr></thead><tbody>"]
        for spec in results.allocators:
            cells = []
            for workload in results.workloads:
                key = (spec, workload)
                if key in values:
                    cells.append(f'<td class="num">{_e(fmt(statistics.median(values[key])))}</td>')
                elif key in reasons:
                    cells.append(f'<td class="failed" title="{_e(reasons[key])}">{_e(short_reason(reasons[key]))}</td>')
                else:
                    cells.append("<td></td>")
            lines.append(f"<tr><th>{_e(spec)}</th>{''.join(cells)}</tr>")
        lines.append("</tbody></table>")
        parts.append("\n".join(lines))
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
            lines.append(f'<tr class="failed">{lead}<td class="failed">failed</td>'
                         f'<td class="failed" colspan="{span}">{_e(row["reason"])}</td></tr>')
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
    failed = len(results.rows) - ok
    created = results.meta.get("created")
    seeds = ", ".join(str(seed) for seed in results.seeds) or "none"
    subtitle = (f"{len(results.rows)} cells ({ok} ok, {failed} failed): {len(results.allocators)} allocators x "
                f"{len(results.workloads)} workloads x seeds {seeds}"
                + (f"; created {created}" if created else ""))
    return "\n".join((
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>allocator lab: sweep results{' ' + _e(created) if created else ''}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Allocator lab: sweep results</h1>",
        f'<p class="sub">{_e(subtitle)}</p>',
        '<nav><a href="#figures">Figures</a><a href="#summary">Summary</a><a href="#results">Results table</a>'
        '<a href="#run">Run</a></nav>',
        '<h2 id="figures">Figures</h2>',
        _figures_html(entries),
        '<h2 id="summary">Summary</h2>',
        "<p>Medians over seeds; a failed cell shows a short reason (hover for the full one, or see the table).</p>",
        _summary_html(results),
        '<h2 id="results">Results table</h2>',
        "<p>One row per allocator x workload x seed. Rates are in % (fragmentation: share of live granted bytes "
        "at peak); throughput counts kernel time only.</p>",
        _results_table_html(results),
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
