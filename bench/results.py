"""The results schema: one row per measured cell, written by the sweep, read by plots, report, compare and the API.

A *cell* is one allocator spec replaying one trace (a workload spec and a
seed, or a trace file).  Its row, `ResultRow`, has:

- labels: `allocator` (the spec), `allocator_name`, `workload`, `family`,
  `param` and `param_value` (a swept workload parameter, else None), `seed`;
- the outcome: `status` ("ok", "failed" or "skipped"), `status_code`
  (`StatusCode`: why it failed or was skipped, as a number beside the human
  `reason`), `reason` ("" when ok).  A *skipped* cell was not run because it
  does not apply: the allocator cannot take this kind of trace by design (a
  LIFO-only `stack` on a trace that frees in another order, see
  `workloads.order`), or a real allocator's library is not installed.  It has
  no figures, is no failure, and `bench compare` does not compare it;
- the trace and the allocator: `rows`, `capacity` (address space, bytes);
- timings (`TIMING_FIELDS`, the only figures that are not deterministic):
  `compile_s`, `seconds_median`, `seconds_min`, `seconds_max` (kernel time of
  the timed repeats), `throughput_mops`, `ns_per_op` (from the median);
- exact peaks: `peak_footprint`, `peak_live_requested`, `peak_live_granted`,
  `final_footprint` (bytes);
- `metrics`: every metric of `bench.metrics.METRICS` (units and definitions
  there), `counters`: the allocator's event counters;
- `extra`: any other field a producer adds (`real_measure` of a real
  allocator's cell, `trace` and `params` in `run`/`replay` output).

Files keep the flat layout they always had: `row.as_dict()` is one flat JSON
object (metrics beside the other fields, `counters` nested), and
`ResultRow.from_dict` reads it back.  A row is also a read-only mapping over
that flat view (`row["l1_miss_rate"]`, `row.get("param")`), which is what the
figures and the gate read.  Rows written before `status_code` existed get it
from their `reason`, so old results compare equal to new ones.

`Results` is a sweep's results: its `meta` and rows, loaded with
`load_results(DIR)` and written with `write_results(DIR, rows, meta)`
(`results.json` and `results.csv`, each replaced atomically).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any


class StatusCode(IntEnum):
    """Why a cell failed (0: it did not)."""

    OK = 0
    OUT_OF_MEMORY = 1  # the allocator ran out of its address space
    UNSUPPORTED = 2  # an operation or an order it does not support (a stack's out-of-order free)
    INVALID_ADDRESS = 3
    REAL_FAILED = 4  # a real allocator's replay process failed
    ERROR = 5  # anything else
    NOT_APPLICABLE = 6  # skipped: the cell does not apply (status "skipped")


#: The statuses a row can have.
STATUSES = ("ok", "failed", "skipped")


#: Exception class names (a reason's prefix) -> status code.
_CODES_BY_ERROR = {
    "OutOfMemory": StatusCode.OUT_OF_MEMORY,
    "RealOutOfMemory": StatusCode.OUT_OF_MEMORY,
    "UnsupportedOperation": StatusCode.UNSUPPORTED,
    "InvalidAddress": StatusCode.INVALID_ADDRESS,
    "RealReplayFailed": StatusCode.REAL_FAILED,
}


def status_code_for(error: BaseException | str) -> StatusCode:
    """The status code of a failure: an exception, or a reason written as 'ErrorName: message'."""
    name = error.partition(":")[0].strip() if isinstance(error, str) else type(error).__name__
    return _CODES_BY_ERROR.get(name, StatusCode.ERROR)


def failure_reason(error: BaseException) -> str:
    """The `reason` of a failed cell: 'ErrorName: message'."""
    return f"{type(error).__name__}: {error}"


def _unit(unit: str, doc: str) -> dict[str, str]:
    return {"unit": unit, "doc": doc}


#: Fields always written, None or not (the figures and the gate key cells by them).
LABEL_FIELDS = ("allocator", "allocator_name", "workload", "family", "param", "param_value", "seed")
#: Timings: the only figures that vary between runs of the same code on the same cell.
TIMING_FIELDS = ("compile_s", "seconds_median", "seconds_min", "seconds_max", "throughput_mops", "ns_per_op")


@dataclass(eq=False)
class ResultRow(Mapping):
    """One measured cell (see the module docstring); a read-only mapping over its flat file form."""

    allocator: str = field(metadata=_unit("", "allocator spec, e.g. freelist:glibc or real:jemalloc"))
    workload: str = field(default="", metadata=_unit("", "workload spec, or the trace file"))
    seed: int = field(default=0, metadata=_unit("", "generator seed"))
    status: str = field(default="ok", metadata=_unit("", "ok, failed, or skipped (not applicable)"))
    status_code: int = field(default=StatusCode.OK, metadata=_unit(
        "", "0 ok, 1 out of memory, 2 unsupported operation or order, 3 invalid address, 4 real replay failed, "
        "5 other, 6 not applicable (skipped)"))
    reason: str = field(default="", metadata=_unit("", "why the cell failed or was skipped ('' when ok)"))
    allocator_name: str = field(default="", metadata=_unit("", "the spec's allocator name"))
    family: str = field(default="", metadata=_unit("", "the workload spec's catalog name"))
    param: str | None = field(default=None, metadata=_unit("", "swept workload parameter, if any"))
    param_value: float | None = field(default=None, metadata=_unit("", "its value in this cell"))
    rows: int | None = field(default=None, metadata=_unit("rows", "trace rows"))
    capacity: int | None = field(default=None, metadata=_unit("bytes", "simulated address space"))
    compile_s: float | None = field(default=None, metadata=_unit("s", "kernel compile or cache load"))
    seconds_median: float | None = field(default=None, metadata=_unit("s", "median kernel time of the repeats"))
    seconds_min: float | None = field(default=None, metadata=_unit("s", "fastest repeat"))
    seconds_max: float | None = field(default=None, metadata=_unit("s", "slowest repeat"))
    throughput_mops: float | None = field(default=None, metadata=_unit("Mops/s", "rows / median kernel time"))
    ns_per_op: float | None = field(default=None, metadata=_unit("ns", "median kernel time per row"))
    peak_footprint: int | None = field(default=None, metadata=_unit("bytes", "largest footprint after any row"))
    peak_live_requested: int | None = field(default=None, metadata=_unit("bytes", "largest live requested bytes"))
    peak_live_granted: int | None = field(default=None, metadata=_unit("bytes", "largest live granted bytes"))
    final_footprint: int | None = field(default=None, metadata=_unit("bytes", "footprint after the last row"))
    metrics: dict[str, float | int] = field(default_factory=dict, metadata=_unit("", "bench.metrics.METRICS"))
    counters: dict[str, int] = field(default_factory=dict, metadata=_unit("", "the allocator's event counters"))
    extra: dict[str, Any] = field(default_factory=dict, metadata=_unit("", "other fields a producer adds"))

    def __post_init__(self) -> None:
        if not self.allocator_name:
            self.allocator_name = self.allocator.partition(":")[0]
        if not self.family:
            self.family = self.workload.partition(":")[0]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    @classmethod
    def skip(cls, allocator: str, reason: str, rows: int | None = None, **labels: Any) -> ResultRow:
        """The row of a cell that does not apply (status "skipped", `StatusCode.NOT_APPLICABLE`)."""
        return cls(allocator=allocator, rows=rows, status="skipped", status_code=StatusCode.NOT_APPLICABLE,
                   reason=reason, **labels)

    # ----------------------------------------------------------- flat form
    def as_dict(self) -> dict[str, Any]:
        """The flat file form: labels always, other fields when set, metrics inline, counters nested."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            name = item.name
            if name in ("metrics", "counters", "extra"):
                continue
            value = getattr(self, name)
            if name in LABEL_FIELDS or value is not None:
                out[name] = int(value) if name == "status_code" else value
        out.update(self.metrics)
        if self.ok or self.counters:
            out["counters"] = dict(self.counters)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], strict: bool = False) -> ResultRow:
        """Read a flat row; strict=True raises ValueError on a malformed one, else fills what is missing."""
        from bench.metrics import METRICS

        row = dict(raw)
        if strict:
            missing = [name for name in ("allocator", "workload", "seed", "status") if name not in row]
            if missing:
                raise ValueError(f"row has no {', '.join(missing)}")
            if row["status"] not in STATUSES:
                raise ValueError(f"row has status {row['status']!r} (expected ok, failed or skipped)")
        known = {item.name for item in dataclasses.fields(cls)} - {"metrics", "counters", "extra"}
        values: dict[str, Any] = {name: row.pop(name) for name in list(row) if name in known}
        values["allocator"] = str(values.get("allocator", "?"))
        values["workload"] = str(values.get("workload", "?"))
        status = values.get("status", "ok")
        values["status"] = status if status in ("ok", "skipped") else "failed"
        values["reason"] = str(values.get("reason") or "")
        if values["status"] == "failed" and not values["reason"]:
            values["reason"] = "failed (no reason recorded)"
        if values["status"] == "skipped" and not values["reason"]:
            values["reason"] = "not applicable (no reason recorded)"
        if "status_code" not in values:
            values["status_code"] = (StatusCode.OK if values["status"] == "ok" else StatusCode.NOT_APPLICABLE
                                     if values["status"] == "skipped" else status_code_for(values["reason"]))
        if not strict:
            values["seed"] = _int_or(values.get("seed"), 0)
            values["param_value"] = _float_or_none(values.get("param_value"))
            if not values.get("param") or values["param_value"] is None:
                values["param"], values["param_value"] = None, None
        counters = row.pop("counters", None)
        metrics = {name: row.pop(name) for name in list(row) if name in METRICS}
        return cls(**values, metrics=metrics, counters=dict(counters) if isinstance(counters, dict) else {},
                   extra=row)

    # ----------------------------------------------------------- mapping view
    def __getitem__(self, key: str) -> Any:
        if key in _SCALAR_FIELDS:
            value = getattr(self, key)
            if value is None and key not in LABEL_FIELDS:
                raise KeyError(key)
            return value
        if key == "counters" and (self.ok or self.counters):
            return self.counters
        if key in self.metrics:
            return self.metrics[key]
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


_SCALAR_FIELDS = frozenset(item.name for item in dataclasses.fields(ResultRow)) - {"metrics", "counters", "extra"}


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float_or_none(value: Any) -> float | None:
    try:
        number = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def describe_fields() -> list[tuple[str, str, str]]:
    """(name, unit, definition) of every field of a row, then of every metric."""
    from bench.metrics import METRICS

    described = [(item.name, item.metadata.get("unit", ""), item.metadata.get("doc", ""))
                 for item in dataclasses.fields(ResultRow)]
    described += [(name, info.unit, info.one_line_doc) for name, info in METRICS.items()]
    return described


# ------------------------------------------------------------------ files
@dataclass
class Results:
    """A sweep's results: its run metadata and its rows, in the sweep's cell order."""

    meta: dict[str, Any]
    rows: list[ResultRow]
    directory: Path | None = None

    def ok_rows(self) -> list[ResultRow]:
        return [row for row in self.rows if row.ok]


CSV_SKIP = ("counters", "params")


def atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_results(out: Path, rows: Sequence[ResultRow], meta: dict[str, Any]) -> None:
    """OUT/results.json (rows + meta) and OUT/results.csv (flat rows), each replaced atomically."""
    out.mkdir(parents=True, exist_ok=True)
    flat = [row.as_dict() for row in rows]
    atomic_write(out / "results.json", json.dumps({"meta": meta, "rows": flat}, indent=1, sort_keys=True,
                                                    default=str))
    columns: list[str] = []
    for row in flat:
        columns.extend(key for key in row if key not in columns and key not in CSV_SKIP)
    leading = ["allocator", "workload", "seed", "status", "status_code", "reason"]
    columns = leading + [column for column in columns if column not in leading]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    atomic_write(out / "results.csv", buffer.getvalue())


def read_document(path: Path) -> dict[str, Any]:
    """The JSON object of a results.json (FileNotFoundError if absent, ValueError if not a results file)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results file (run `python -m bench sweep --out {path.parent}`)")
    try:
        document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise ValueError(f"{path}: expected an object with a 'rows' list")
    return document


def load_results(directory: Path | str, strict: bool = False) -> Results:
    """Read DIR/results.json (or that file itself); strict=True refuses malformed rows (ValueError naming the row)."""
    path = Path(directory)
    if path.is_dir() or path.suffix != ".json":
        path = path / "results.json"
    document = read_document(path)
    meta = document.get("meta") if isinstance(document.get("meta"), dict) else {}
    rows = []
    for number, raw in enumerate(document["rows"]):
        if not isinstance(raw, dict):
            if strict:
                raise ValueError(f"{path}: row {number} is not an object")
            continue
        try:
            rows.append(ResultRow.from_dict(raw, strict=strict))
        except ValueError as error:
            raise ValueError(f"{path}: row {number}: {error}") from None
    return Results(meta=meta, rows=rows, directory=path.parent)
