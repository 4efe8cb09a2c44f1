"""Figures and the HTML report (bench/plots.py, bench/report.py) on synthetic sweep results.

`build_results` writes a results.json (+ heapmap.npz) in the sweep's format
(README "Sweep results"): rows for allocators x workloads x seeds, a swept
family, failed cells with reasons, every metric the figures read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from bench import plots, report
from bench.results import ResultRow

ALLOCATORS = ("linear", "pool", "stack", "freelist:glibc", "buddy", "real:glibc")
WORKLOADS = (  # (spec, family, param, param_value)
    ("lognormal:sigma=0.5", "lognormal", "sigma", 0.5),
    ("lognormal:sigma=1", "lognormal", "sigma", 1.0),
    ("lognormal:sigma=2", "lognormal", "sigma", 2.0),
    ("fixed", "fixed", None, None),
    ("lifo", "lifo", None, None),
    ("threads4:threads=1", "threads4", "threads", 1.0),  # a thread-count family: the scalability figure's
    ("threads4:threads=4", "threads4", "threads", 4.0),
)
STACK_REASON = ("UnsupportedOperation: stack: trace row 171 (FREE of object 58, size 0, thread 0): "
                "deallocation out of LIFO order")
POOL_REASON = "OutOfMemory: pool: no block left for a 4096 B request <at capacity>"
FIGURE_NAMES = [spec.name for spec in plots.FIGURES]
LOCALITY = ("hot_reuse_rate", "same_line_rate", "same_page_rate", "mean_log2_stride", "l1_miss_rate",
            "l2_miss_rate", "tlb_miss_rate", "distinct_pages")


def _metrics(rng: np.random.Generator, index: int, param_value: float | None) -> dict:
    speed = 0.3 * 3.0 ** index * rng.uniform(0.9, 1.1)
    overhead = 1.0 + 0.15 * index + (param_value or 1.0) * 0.2 * (index == 1) * 50
    requested = 600_000
    granted = int(requested / (1 - 0.05 * index))
    row = {
        "throughput_mops": speed, "ns_per_op": 1e3 / speed, "seconds_median": 0.01, "seconds_min": 0.009,
        "seconds_max": 0.012, "compile_s": 1.2, "peak_footprint": int(overhead * requested),
        "peak_live_requested": requested, "peak_live_granted": granted, "peak_metadata_bytes": 4096 * index,
        "overhead_factor": overhead, "internal_fragmentation": 1 - requested / granted,
        "external_fragmentation": 0.1 * index / (index + 1), "shared_ops_per_kop": 50.0 * index * (param_value or 1),
        "remote_free_rate": 0.0, "false_sharing_lines_peak": int(10 * index * (param_value or 0)),
    }
    for offset, name in enumerate(LOCALITY):
        row[name] = float(rng.uniform(0.0, 0.5)) if name != "distinct_pages" else int(rng.integers(10, 500))
        if name == "mean_log2_stride":
            row[name] = 4.0 + offset
    return row


def build_results(
    out: Path,
    allocators: tuple[str, ...] = ALLOCATORS,
    workloads: tuple = WORKLOADS,
    seeds: tuple[int, ...] = (0, 1),
    drop_metrics: tuple[str, ...] = (),
    fail_all: bool = False,
    heapmap: bool = True,
) -> dict:
    """Write OUT/results.json (+ heapmap.npz) following the results format; return the document."""
    rng = np.random.default_rng(7)
    rows = []
    for seed in seeds:
        for workload, family, param, value in workloads:
            for index, spec in enumerate(allocators):
                row = {
                    "allocator": spec, "allocator_name": spec.partition(":")[0], "workload": workload,
                    "family": family, "param": param, "param_value": value, "seed": seed, "rows": 20_000,
                    "status": "ok", "reason": "", "counters": {"allocs": 10_000, "frees": 10_000},
                }
                if fail_all:
                    row.update(status="failed", reason=POOL_REASON)
                elif spec == "stack" and workload != "lifo":
                    row.update(status="failed", reason=STACK_REASON)
                elif spec == "pool" and workload == "lognormal:sigma=2":
                    row.update(status="failed", reason=POOL_REASON)
                else:
                    row.update(_metrics(rng, index, value))
                    for metric in drop_metrics:
                        row.pop(metric, None)
                rows.append(row)
    cell = {"allocator": [spec for spec in allocators if not spec.startswith("real:")][-1],
            "workload": workloads[0][0], "seed": seeds[0]}
    meta = {
        "created": "2026-01-02T03:04:05Z", "command": "python -m bench sweep --out X", "preset": "default",
        "allocators": list(allocators), "workloads": [w[0] for w in workloads], "seeds": list(seeds),
        "ops": 20_000, "repeats": 3, "git_revision": "0123456789abcdef0123456789abcdef01234567",
        "versions": {"python": "3.11.7", "numpy": "2.4.6", "numba": "0.68.1", "matplotlib": "3.11.2"},
        "machine": {"platform": "Linux-x86_64", "processor": "x86_64", "cpus": 2},
        "heapmap_cell": cell if heapmap else None,
    }
    document = {"meta": meta, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(document, indent=1))
    if heapmap:
        write_heapmap(out / "heapmap.npz", cell)
    return document


def write_heapmap(path: Path, cell: dict, time_bins: int = 160, address_bins: int = 128) -> None:
    """A heap that grows, then frees at random: holes appear below a footprint that stays up."""
    rng = np.random.default_rng(3)
    address_max = 1 << 20
    image = np.zeros((time_bins, address_bins), dtype=np.uint8)
    footprint = np.zeros(time_bins, dtype=np.int64)
    occupied = np.zeros(address_bins, dtype=bool)
    top = 0
    for t in range(time_bins):
        if t < time_bins // 2:
            top = min(address_bins, top + 2)
            occupied[:top] = True
        occupied &= rng.random(address_bins) > 0.02
        footprint[t] = top * (address_max // address_bins)
        image[t] = np.where(occupied, 255, 0)
    np.savez(path, image=image, address_max=np.int64(address_max), rows=np.int64(20_000), footprint=footprint,
             meta=np.array(json.dumps(cell)))


def _assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 15_000, f"{path} is suspiciously small ({path.stat().st_size} B)"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert float(pixels[..., :3].std()) > 0.05  # not a blank image


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    document = build_results(out)
    paths = plots.draw_all(out)
    index = report.write_index(out)
    return out, document, paths, index


def test_thread_families_go_to_the_scalability_figure(full_run):
    out = full_run[0]
    notes = {entry["name"]: entry["note"] for entry in plots.read_manifest(out)}
    assert notes["waste_vs_param"].startswith("1 swept parameter(s)")  # sigma; not the thread count
    assert notes["scalability"].startswith("1 thread family")
    # every cell over real glibc's on the same seed (glibc's own too), both panels: 6 x 7, less the 7 failed
    assert notes["normalised"].startswith(f"{2 * (6 * 7 - 7)} cell ratios over 7 workloads")


def test_every_figure_drawn_and_valid(full_run):
    out, _, paths, _ = full_run
    assert [path.name for path in paths] == [f"{name}.png" for name in FIGURE_NAMES]
    for path in paths:
        assert path.parent == out / "plots"
        _assert_png(path)
    manifest = json.loads((out / "plots" / "manifest.json").read_text())
    assert [entry["skipped"] for entry in manifest] == [None] * len(FIGURE_NAMES)


def test_index_shows_plots_rows_reasons_and_metadata(full_run):
    out, document, paths, index = full_run
    assert index == out / "index.html"
    page = index.read_text()
    for path in paths:
        assert f'src="plots/{path.name}"' in page
    assert page.count("<figcaption>") == len(paths)
    assert page.count("<tr class=\"failed\">") == sum(row["status"] == "failed" for row in document["rows"])
    assert "deallocation out of LIFO order" in page and "OutOfMemory: pool: no block left" in page
    assert "&lt;at capacity&gt;" in page and "<at capacity>" not in page  # escaped
    for spec in ALLOCATORS:
        assert f"<td>{spec}</td>" in page
    for workload, *_ in WORKLOADS:
        assert f"<td>{workload}</td>" in page
    for text in ("0123456789abcdef0123456789abcdef01234567", "python -m bench sweep --out X", "numba", "0.68.1",
                 "cpus", "2026-01-02T03:04:05Z"):
        assert text in page
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()


def test_missing_data_skips_figures_with_reasons(tmp_path):
    unswept = tuple((spec, spec, None, None) for spec in ("fixed", "lifo", "fifo"))
    build_results(tmp_path, workloads=unswept, seeds=(0,), drop_metrics=("l1_miss_rate", "hot_reuse_rate"),
                  heapmap=False)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "heapmap.png").write_bytes(b"stale")  # from an earlier run: must go
    paths = plots.draw_all(tmp_path)
    # designs: freelist:glibc has its TLB miss rate and scalability proxies, though no hot-reuse rate
    assert {path.stem for path in paths} == {"throughput", "pareto", "normalised", "designs", "go_sizeclasses"}
    assert not (tmp_path / "plots" / "heapmap.png").exists()
    page = report.write_index(tmp_path).read_text()
    assert page.count('class="skipped">Not drawn') == 4
    assert "no swept size-distribution parameter" in page and "locality metric" in page and "no heapmap.npz" in page
    assert "no workload with a swept thread count" in page
    for path in paths:
        _assert_png(path)


def test_all_cells_failed_still_gives_a_page(tmp_path):
    document = build_results(tmp_path, allocators=("pool", "stack"), seeds=(0,), fail_all=True, heapmap=False)
    paths = plots.draw_all(tmp_path)
    assert [path.stem for path in paths] == ["go_sizeclasses"]
    page = report.write_index(tmp_path).read_text()
    assert page.count(POOL_REASON.split("<")[0]) >= len(document["rows"])
    assert page.count('class="skipped">Not drawn') == len(FIGURE_NAMES) - 1


def test_older_rows_without_family_fields_and_bad_values(tmp_path):
    """Rows as today's sweep writes them (no allocator_name/family/param), a NaN and a string metric."""
    rows = [
        {"allocator": "buddy", "workload": "lognormal", "seed": 0, "status": "ok", "reason": "",
         "throughput_mops": 4.2, "overhead_factor": 1.6, "internal_fragmentation": 0.3},
        {"allocator": "freelist", "workload": "lognormal", "seed": 0, "status": "ok", "reason": "",
         "throughput_mops": float("nan"), "overhead_factor": "1.2"},
        {"allocator": "stack", "workload": "lognormal", "seed": 0, "status": "failed", "reason": STACK_REASON},
    ]
    (tmp_path / "results.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    paths = plots.draw_all(tmp_path)
    assert {path.stem for path in paths} == {"throughput", "pareto", "go_sizeclasses"}
    manifest = json.loads((tmp_path / "plots" / "manifest.json").read_text())
    assert not any("drawing failed" in (entry["skipped"] or "") for entry in manifest)
    page = report.write_index(tmp_path).read_text()
    assert "No run metadata" in page and "out of LIFO order" in page


def test_index_without_manifest_and_missing_results(tmp_path):
    build_results(tmp_path, seeds=(0,), heapmap=False)
    page = report.write_index(tmp_path).read_text()  # nothing drawn yet
    assert page.count("not drawn yet") == len(FIGURE_NAMES)
    with pytest.raises(FileNotFoundError):
        plots.draw_all(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(ValueError):
        report.write_index(tmp_path / "bad")


def test_seed_median_and_orders(tmp_path):
    build_results(tmp_path, seeds=(0, 1, 2), heapmap=False)
    results = plots.load_report(tmp_path)
    assert results.allocators == list(ALLOCATORS)
    assert results.workloads == [w[0] for w in WORKLOADS]
    medians = plots.cell_medians(results, "throughput_mops")
    values = [row["throughput_mops"] for row in results.rows
              if row["allocator"] == "buddy" and row["workload"] == "fixed"]
    assert len(values) == 3 and medians[("buddy", "fixed")] == sorted(values)[1]
    assert ("stack", "fixed") in plots.failed_cells(results) and ("stack", "lifo") not in plots.failed_cells(results)
    styles = plots.allocator_styles(results.allocators)
    assert len({style.color for style in styles.values()}) == len(ALLOCATORS)


def test_sweep_group_and_workload_order():
    row = ResultRow.from_dict({"allocator": "a", "workload": "lognormal:threads=4,sigma=1.5", "family": "lognormal",
                               "param": "sigma", "param_value": 1.5})
    assert plots.sweep_group(row) == ("lognormal", "sigma", "lognormal:threads=4")
    rows = [ResultRow.from_dict({"allocator": "a", "workload": spec, "family": spec.partition(":")[0],
                                 "param": param, "param_value": value})
            for spec, param, value in (("lognormal:sigma=2", "sigma", 2), ("fixed", None, None),
                                       ("lognormal:sigma=0.5", "sigma", 0.5))]
    assert plots.ordered_workloads(rows) == ["lognormal:sigma=0.5", "lognormal:sigma=2", "fixed"]


def test_pareto_front_hand_made():
    points = [
        (1.0, 10.0),   # 0 front: leanest
        (1.5, 50.0),   # 1 front
        (1.5, 40.0),   # 2 dominated by 1 (same overhead, slower)
        (3.0, 45.0),   # 3 dominated by 1
        (10.0, 300.0),  # 4 front: fastest
        (12.0, 300.0),  # 5 dominated by 4 (same speed, more overhead)
        (2.0, 60.0),   # 6 front
        (2.0, 60.0),   # 7 front: equal to 6, neither dominates
        (math.nan, 1000.0),  # 8 ignored
    ]
    assert plots.pareto_front(points) == [0, 1, 6, 7, 4]
    assert plots.pareto_front([]) == []
    assert plots.pareto_front([(5.0, 5.0)]) == [0]


def test_heapmap_float_image_without_footprint(tmp_path):
    build_results(tmp_path, seeds=(0,), heapmap=False)
    image = np.zeros((50, 40), dtype=np.float32)
    image[:, :20] = 1.0
    image[::3, 5:9] = 0.0  # holes
    np.savez(tmp_path / "heapmap.npz", image=image)
    results = plots.load_report(tmp_path)
    note = plots.plot_heapmap(results, {}, tmp_path / "heapmap.png")
    assert "50 time bins x 40 address bins" in note
    _assert_png(tmp_path / "heapmap.png")


def test_heapmap_occupancy_scaling():
    assert plots.heapmap_occupancy(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[0.0, 1.0]]
    assert plots.heapmap_occupancy(np.array([[0, 1]], dtype=np.uint8)).tolist() == [[0.0, 1.0]]
    assert plots.heapmap_occupancy(np.array([[0.25, 2.0]], dtype=np.float32)).tolist() == [[0.25, 1.0]]


def test_designs_figure_puts_the_models_of_real_allocators_side_by_side(full_run, tmp_path):
    from bench.plots.designs import imitating_models

    notes = {entry["name"]: entry["note"] for entry in plots.read_manifest(full_run[0])}
    # freelist:glibc is the one model of a real allocator in the synthetic sweep; threads4:threads=1 is in neither row
    assert notes["designs"] == "1 models (freelist:glibc); 5 workloads without threads, 1 multi-thread"
    # the pairing table's models in its order (glibc, jemalloc, tcmalloc, mimalloc), the other models left out
    assert imitating_models(["buddy", "mimalloc", "tcmalloc", "tcmalloc:gperftools", "jemalloc", "freelist:glibc"]) == [
        "freelist:glibc", "jemalloc", "tcmalloc:gperftools", "mimalloc"]
    assert imitating_models(["tcmalloc", "buddy"]) == []
    out = tmp_path / "none"
    build_results(out, allocators=("linear", "buddy"), workloads=WORKLOADS[:2], seeds=(0,), heapmap=False)
    plots.draw_all(out)
    skipped = {entry["name"]: entry["skipped"] for entry in plots.read_manifest(out)}
    assert skipped["designs"].startswith("none of the models of a real allocator")
    assert not (out / "plots" / "designs.png").exists()
