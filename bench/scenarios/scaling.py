"""scaling: real allocators on real threads, beside the models' scalability proxies on the same traces.

The question.  The models run one simulated thread at a time and count what would contend
(`bench.metrics.scalability`: shared-structure operations per 1000 rows, the remote-free rate, cache lines
shared by the live blocks of two threads); the real allocators can be timed on real threads
(`bench.real.threaded`).  This scenario puts the two side by side: does a model whose proxies stay flat
from 1 to T threads stand for an allocator whose throughput scales?

Design.  A *point* is one multi-thread catalog workload at T threads (`points`): an `independent` workload gets
`threads=T`, a `producer-consumer` one `producers=T//2, consumers=T-T//2`; a spec that names its own thread
count keeps it (the default `xmalloc-test:threads=1`: one producer, one consumer and the main thread);
a classic with a `threads` key gets `threads=T` (`larson`: T workers beside its main thread).  The point's
`threads` is the number of threads its trace runs on, the OS threads of the T side.  The default
`larson:rounds=1000000` keeps larson's workers for the whole trace: with its thread replacement (every
`rounds x slots` operations a worker is succeeded by a new thread) a 1M-row trace has ~135 threads, which
the threaded replayer starts at once and whose waiting successors spin and yield on the 2 cores, which
measures the replay's waits more than the allocator.  Its trace
(`workloads.catalog.make(spec, ops, seed)`) is measured twice, with the same rows:

- on T OS threads: the trace as it is, one OS thread per trace thread;
- on 1 OS thread: the same trace serialised (`bench.real.threaded.serialised`: every row on thread 0, in
  trace order), which is exactly the same work with no second thread.

Scaling = throughput on T threads / throughput on 1 thread (strong scaling: T for a perfect allocator on T
free cores, 1 for one that serialises, below 1 when threads cost more than they bring), with its spread
`scaling_lo..scaling_hi` = min_T / max_1 .. max_T / min_1 over the repeats.  The 1-thread side is the same
trace, not the workload regenerated with threads=1: an `independent` workload's streams each hold `live`
objects, so threads=1 would be a different working set, and a producer-consumer workload has no 1-thread
form.  The models get the same two traces: their proxies at 1 (serialised: no remote frees, no line shared
by two threads) and at T.  Every installed real allocator is measured (glibc, jemalloc, tcmalloc, mimalloc,
Scudo: `bench.real.ALLOCATORS`; a missing one is listed as skipped with its package), each one's 1- and
T-thread runs back to back, so a change of load on the machine touches both.

Pairs (`MODEL_OF_REAL`, the lab's one pairing table `bench.pairs`): the model of each real allocator, shown
in its row: freelist:glibc beside glibc, tcmalloc:gperftools beside tcmalloc (gperftools 2.10); jemalloc,
mimalloc and Scudo have no model yet (adding one is its line in bench/pairs.py).
The paired models of the real allocators measured are always measured; every other model of `models`
(default DEFAULT_MODELS) gets a row of its own with its proxies.

Machine.  Each figure is the machine's: the report carries os.cpu_count(), the affinity mask and the load
average at the start and end (`bench.real.threaded.machine`), and the table and the plot say the cores.
On a machine with fewer free cores than T the threads share cores: scaling then measures the allocator's
overhead under time-sharing, not its parallel speed-up.

Files (`ScalingReport.save`): scaling.json (the whole report), scaling.csv and scaling.md (the table: one row
per point and real allocator, then one per point and unpaired model); the plot is `bench.plots.scaling`
(scaling.png).  `render_table` is the console form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import allocators
from bench import harness
from bench.pairs import MODEL_OF_REAL
from bench.scenarios import save_report
from bench.table import markdown_table, render, wrap_text
from workloads import catalog

DEFAULT_WORKLOADS = ("threads4", "larson:rounds=1000000", "producer-consumer", "xmalloc-test:threads=1")
DEFAULT_THREADS = (2,)
DEFAULT_MODELS = ("freelist:glibc", "tcmalloc", "go", "buddy")
DEFAULT_OPS = 1_000_000
DEFAULT_REPEATS = 5
#: The models' proxies shown (bench.metrics.scalability).
PROXIES = ("shared_ops_per_kop", "remote_free_rate", "false_sharing_lines_peak")
_THREAD_KEYS = {"independent": ("threads",), "producer-consumer": ("producers", "consumers")}


@dataclass
class ScalingConfig:
    """What to measure: workloads x thread counts, each trace `ops` rows; real allocators; models."""

    workloads: list[str] = field(default_factory=lambda: list(DEFAULT_WORKLOADS))
    threads: list[int] = field(default_factory=lambda: list(DEFAULT_THREADS))
    ops: int = DEFAULT_OPS
    seed: int = 0
    repeats: int = DEFAULT_REPEATS
    reals: list[str] = field(default_factory=lambda: list(MODEL_OF_REAL))
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    touch: str = "first"

    def check(self) -> None:
        from bench.real import ALLOCATORS, TOUCH_MODES
        from bench.real.threaded import MAX_OS_THREADS, MAX_REPEATS

        if not self.workloads:
            raise ValueError("scaling: no workloads")
        if not self.threads or any(not isinstance(t, int) or not 2 <= t <= MAX_OS_THREADS for t in self.threads):
            raise ValueError(f"scaling: thread counts must be integers in 2..{MAX_OS_THREADS} (the 1-thread side is "
                             f"the same trace on one OS thread), got {self.threads}")
        if not isinstance(self.ops, int) or self.ops < 100:
            raise ValueError(f"scaling: ops must be an integer >= 100, got {self.ops!r}")
        if not isinstance(self.repeats, int) or not 1 <= self.repeats <= MAX_REPEATS:
            raise ValueError(f"scaling: repeats must be an integer in 1..{MAX_REPEATS}, got {self.repeats!r}")
        unknown = [name for name in self.reals if name not in ALLOCATORS]
        if unknown:
            raise ValueError(f"scaling: unknown real allocator '{unknown[0]}' (known: {', '.join(ALLOCATORS)})")
        if self.touch not in TOUCH_MODES:
            raise ValueError(f"scaling: touch must be one of {', '.join(TOUCH_MODES)}, got {self.touch!r}")
        for spec in self.models:
            name, _ = allocators.parse_spec(spec)
            allocators.get(name)  # BadParameter (a ValueError) for an unknown model
        for _, spec, threads in points(self.workloads, self.threads):
            catalog.parameters(spec)  # ValueError naming the bad key
            if threads > MAX_OS_THREADS:
                raise ValueError(f"scaling: {spec} has {threads} threads (at most {MAX_OS_THREADS})")


def _given_keys(spec: str) -> set[str]:
    return {item.partition("=")[0].strip() for item in spec.partition(":")[2].split(",") if item.strip()}


def point_spec(workload: str, threads: int) -> tuple[str, int]:
    """The spec of `workload` at `threads` threads, and its thread count (a spec naming its own keeps it)."""
    params = catalog.parameters(workload)
    threading = params.get("threading", "independent")
    keys = _THREAD_KEYS.get(threading)
    if keys is None:
        raise ValueError(f"scaling: workload '{workload}' has thread model '{threading}' (known: "
                         f"{', '.join(_THREAD_KEYS)})")
    if _given_keys(workload) & set(keys):
        return workload, sum(int(params[key]) for key in keys)
    if threading == "independent":
        values = {"threads": threads}
    else:
        values = {"producers": threads // 2, "consumers": threads - threads // 2}
    joined = ",".join(f"{key}={value}" for key, value in values.items())
    return f"{workload}{',' if ':' in workload else ':'}{joined}", threads


def points(workloads: Sequence[str], thread_counts: Sequence[int]) -> list[tuple[str, str, int]]:
    """(workload as given, trace spec, threads) of every point, in order, without repeats."""
    found: dict[str, tuple[str, str, int]] = {}
    for workload in workloads:
        for threads in thread_counts:
            spec, count = point_spec(workload, threads)
            found.setdefault(spec, (workload, spec, count))
    return list(found.values())


@dataclass
class ScalingReport:
    config: ScalingConfig
    machine: dict[str, Any]
    points: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        return {"scenario": "scaling", "config": asdict(self.config), "machine": self.machine,
                "model_of_real": MODEL_OF_REAL, "points": self.points}

    def save(self, out: str | Path) -> Path:
        rows = table_rows(self.points)
        out = save_report(out, "scaling", self.document(), {"scaling": rows})
        (out / "scaling.md").write_text(markdown(self) + "\n")
        return out


def load_report(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "scaling.json").read_text())


def _real_side(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("os_threads", "throughput_mops", "throughput_min", "throughput_max", "spread", "seconds", "waits",
            "thread_rows", "frees", "live_end", "warmup_seconds")
    return {key: result[key] for key in keys} | {"loadavg_start": result["machine"]["loadavg"]}


def measure_real(one: Any, many: Any, allocator: str, repeats: int, touch: str) -> dict[str, Any]:
    """One real allocator on the serialised trace and on its threads: both sides and the scaling."""
    from bench.real import RealAllocatorMissing, RealOutOfMemory, RealReplayFailed
    from bench.real.cleanheap import CompilerMissing
    from bench.real.threaded import replay_threads

    entry: dict[str, Any] = {"allocator": allocator, "model": MODEL_OF_REAL.get(allocator)}
    try:
        single = replay_threads(one, allocator, repeats=repeats, touch=touch)
        threaded = replay_threads(many, allocator, repeats=repeats, touch=touch)
    except (RealAllocatorMissing, CompilerMissing) as error:
        return entry | {"status": "skipped", "reason": str(error)}
    except (RealOutOfMemory, RealReplayFailed) as error:
        return entry | {"status": "failed", "reason": str(error)}
    return entry | {
        "status": "ok", "library": threaded["library"], "one": _real_side(single), "many": _real_side(threaded),
        "scaling": threaded["throughput_mops"] / single["throughput_mops"],
        "scaling_lo": threaded["throughput_min"] / single["throughput_max"],
        "scaling_hi": threaded["throughput_max"] / single["throughput_min"],
    }


def measure_model(one: Any, many: Any, spec: str) -> dict[str, Any]:
    """A model's proxies on the serialised trace and on its threads (bench.harness.measure)."""
    entry: dict[str, Any] = {"model": spec}
    sides = {}
    for side, trace in (("one", one), ("many", many)):
        row, _ = harness.measure(spec, trace, repeats=1)
        if not row.ok:
            return entry | {"status": "failed", "reason": row.reason}
        sides[side] = {name: row.metrics[name] for name in PROXIES}
    return entry | {"status": "ok", **sides}


def models_measured(config: ScalingConfig) -> list[str]:
    """The models of the real allocators measured (MODEL_OF_REAL), then the config's other models."""
    paired = [MODEL_OF_REAL[name] for name in config.reals if MODEL_OF_REAL.get(name)]
    return list(dict.fromkeys([*paired, *config.models]))


def run_scaling(config: ScalingConfig | None = None,
                progress: Callable[[str], None] | None = None) -> ScalingReport:
    """Every point through every real allocator and model of `config` (module docstring)."""
    from bench.real.threaded import machine, serialised

    config = config or ScalingConfig()
    config.check()
    say = progress or (lambda text: None)
    start = machine()
    measured = []
    for workload, spec, threads in points(config.workloads, config.threads):
        many = catalog.make(spec, n_ops=config.ops, seed=config.seed)
        one = serialised(many)
        threads = many.n_threads  # the OS threads of the T side (a classic's main thread, larson's successors)
        point: dict[str, Any] = {"workload": workload, "spec": spec, "threads": threads,
                                 "rows": len(many), "reals": [], "models": []}
        for allocator in config.reals:
            say(f"scaling: {spec}: real {allocator}, 1 and {threads} OS threads ...")
            point["reals"].append(measure_real(one, many, allocator, config.repeats, config.touch))
        for model in models_measured(config):
            say(f"scaling: {spec}: model {model} ...")
            point["models"].append(measure_model(one, many, model))
        measured.append(point)
    end = machine()
    host = {key: value for key, value in start.items() if key != "loadavg"}
    host.update(loadavg_start=start["loadavg"], loadavg_end=end["loadavg"])
    return ScalingReport(config=config, machine=host, points=measured)


# ------------------------------------------------------------------ the table
COLUMNS = ("workload", "spec", "threads", "real", "mops_1", "mops_1_min", "mops_1_max", "mops_t", "mops_t_min",
           "mops_t_max", "scaling", "scaling_lo", "scaling_hi", "waits_t", "model", "shared_ops_1", "shared_ops_t",
           "remote_free_rate", "false_shared_lines_1", "false_shared_lines_t", "status")


def _model_columns(model: dict[str, Any] | None) -> dict[str, Any]:
    if model is None or model.get("status") != "ok":
        return {"shared_ops_1": None, "shared_ops_t": None, "remote_free_rate": None,
                "false_shared_lines_1": None, "false_shared_lines_t": None}
    one, many = model["one"], model["many"]
    return {"shared_ops_1": one["shared_ops_per_kop"], "shared_ops_t": many["shared_ops_per_kop"],
            "remote_free_rate": many["remote_free_rate"], "false_shared_lines_1": one["false_sharing_lines_peak"],
            "false_shared_lines_t": many["false_sharing_lines_peak"]}


def table_rows(measured: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table, flat (COLUMNS): per point one row per real allocator (its model's proxies beside it), then one
    per model no real allocator of the point is paired with."""
    rows = []
    for point in measured:
        models = {model["model"]: model for model in point["models"]}
        paired = set()
        for entry in point["reals"]:
            paired.add(entry["model"])
            row: dict[str, Any] = {column: None for column in COLUMNS}
            row.update(workload=point["workload"], spec=point["spec"], threads=point["threads"],
                       real=entry["allocator"], model=entry["model"],
                       status="ok" if entry["status"] == "ok" else f"{entry['status']}: {entry['reason']}")
            if entry["status"] == "ok":
                one, many = entry["one"], entry["many"]
                row.update(mops_1=one["throughput_mops"], mops_1_min=one["throughput_min"],
                           mops_1_max=one["throughput_max"], mops_t=many["throughput_mops"],
                           mops_t_min=many["throughput_min"], mops_t_max=many["throughput_max"],
                           scaling=entry["scaling"], scaling_lo=entry["scaling_lo"], scaling_hi=entry["scaling_hi"],
                           waits_t=many["waits"])
            row.update(_model_columns(models.get(entry["model"])))
            rows.append(row)
        for spec, model in models.items():
            if spec in paired:
                continue
            row = {column: None for column in COLUMNS}
            row.update(workload=point["workload"], spec=point["spec"], threads=point["threads"], model=spec,
                       status="ok" if model["status"] == "ok" else f"failed: {model['reason']}")
            row.update(_model_columns(model))
            rows.append(row)
    return rows


def _range(value: float | None, low: float | None, high: float | None, form: str) -> str:
    if value is None:
        return "-"
    return f"{value:{form}} ({low:{form}}..{high:{form}})"


def _figure(value: float | int | None, form: str) -> str:
    return "-" if value is None else f"{value:{form}}"


HEADERS = ("workload @T", "allocator", "Mops/s 1 thread\n(min..max)", "Mops/s T threads\n(min..max)",
           "scaling T/1\n(lo..hi)", "waits\nT thr.", "model", "shared ops\n/1000 rows 1->T", "remote\nfrees",
           "false-shared\nlines 1->T")


def _cells(row: dict[str, Any]) -> list[str]:
    shared = "-" if row["shared_ops_1"] is None else f"{row['shared_ops_1']:.1f} -> {row['shared_ops_t']:.1f}"
    lines = "-" if row["false_shared_lines_1"] is None else \
        f"{row['false_shared_lines_1']} -> {row['false_shared_lines_t']}"
    who = f"real {row['real']}" if row["real"] else f"model {row['model']}"
    if row["status"] != "ok":
        who += f" ({row['status'].split(':')[0]})"
    return [f"{row['workload']} @{row['threads']}", who,
            _range(row["mops_1"], row["mops_1_min"], row["mops_1_max"], ".1f"),
            _range(row["mops_t"], row["mops_t_min"], row["mops_t_max"], ".1f"),
            _range(row["scaling"], row["scaling_lo"], row["scaling_hi"], ".2f"), _figure(row["waits_t"], ",.0f"),
            row["model"] or "(no model yet)", shared,
            "-" if row["remote_free_rate"] is None else f"{100 * row['remote_free_rate']:.0f} %", lines]


def caption(report: ScalingReport | dict[str, Any]) -> str:
    """What the table's figures are and where they were measured (the machine, the spread)."""
    document = report.document() if isinstance(report, ScalingReport) else report
    host, config = document["machine"], document["config"]
    return (f"Measured on {host['cpu_count']} cores (affinity {host['affinity_cores']}: "
            f"{','.join(map(str, host['affinity']))}; load average {host['loadavg_start'][0]:.2f} at the start, "
            f"{host['loadavg_end'][0]:.2f} at the end); {config['ops']:,} rows per trace, seed {config['seed']}; "
            f"throughput = rows / median wall time of {config['repeats']} repeats after a warm-up, min..max over "
            f"the repeats; scaling = T threads / 1 thread on the same trace, lo..hi = min_T/max_1..max_T/min_1; "
            f"touch={config['touch']}.  Models: proxies on the serialised trace (1) and on its threads (T).")


def render_table(report: ScalingReport | dict[str, Any]) -> str:
    """The console table (100 columns), with its caption."""
    document = report.document() if isinstance(report, ScalingReport) else report
    rows = [_cells(row) for row in table_rows(document["points"])]
    return render(list(HEADERS), rows, [False, False] + [True] * 4 + [False, True, True, True], keep=2) + \
        "\n\n" + wrap_text(caption(document), indent="")


def markdown(report: ScalingReport | dict[str, Any]) -> str:
    """The table as Markdown, with its caption."""
    document = report.document() if isinstance(report, ScalingReport) else report
    rows = [_cells(row) for row in table_rows(document["points"])]
    return markdown_table([header.replace("\n", " ") for header in HEADERS], rows) + "\n\n" + caption(document)
