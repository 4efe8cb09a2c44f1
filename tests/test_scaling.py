"""The scaling scenario (bench.scenarios.scaling, `python -m bench scaling`): points, table, files, errors.

No timing assertions: only the shape of the figures and what is written.
"""

from __future__ import annotations

import json
import shutil

import pytest

from bench.cli import main
from bench.scenarios import scaling
from bench.scenarios.scaling import ScalingConfig

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")


@pytest.mark.parametrize("workload, threads, expected", [
    ("threads4", 3, ("threads4:threads=3", 3)),
    ("larson:slots=100", 2, ("larson:slots=100,threads=2", 2)),  # a classic with a threads key
    ("producer-consumer", 3, ("producer-consumer:producers=1,consumers=2", 3)),
    ("producer-consumer:producers=2,consumers=2", 2, ("producer-consumer:producers=2,consumers=2", 4)),  # kept
])
def test_point_spec(workload, threads, expected):
    assert scaling.point_spec(workload, threads) == expected


def test_points_are_not_repeated():
    found = scaling.points(["xmalloc-test:threads=2", "larson"], [2, 4])
    assert found == [("xmalloc-test:threads=2", "xmalloc-test:threads=2", 2),
                     ("larson", "larson:threads=2", 2), ("larson", "larson:threads=4", 4)]


@pytest.mark.parametrize("change, message", [
    ({"threads": [1]}, "thread counts must be integers in 2..256"),
    ({"threads": [300]}, "thread counts"),
    ({"reals": ["hoard"]}, "unknown real allocator 'hoard'"),
    ({"workloads": ["larson:nope=1"]}, "nope"),
    ({"models": ["nosuchmodel"]}, "nosuchmodel"),
    ({"repeats": 0}, "repeats"),
    ({"ops": 10}, "ops"),
])
def test_bad_config_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        ScalingConfig(**change).check()


def test_every_real_allocator_has_a_pairing_line():
    from bench.real import ALLOCATORS

    assert set(scaling.MODEL_OF_REAL) == set(ALLOCATORS)
    config = ScalingConfig(reals=["glibc", "jemalloc", "tcmalloc"], models=["go", "tcmalloc"])
    assert scaling.models_measured(config) == ["freelist:glibc", "jemalloc", "tcmalloc:gperftools", "go", "tcmalloc"]


def _side(mops: float) -> dict:
    return {"os_threads": 1, "throughput_mops": mops, "throughput_min": mops - 1, "throughput_max": mops + 1,
            "spread": 0.1, "seconds": [1.0], "waits": 3, "thread_rows": [10], "frees": 5, "live_end": 0,
            "warmup_seconds": 0.1, "loadavg_start": [0.0, 0.0, 0.0]}


def test_table_puts_the_models_beside_the_real_allocators():
    proxies = {"shared_ops_per_kop": 10.0, "remote_free_rate": 0.0, "false_sharing_lines_peak": 0}
    point = {"workload": "larson", "spec": "larson:threads=2", "threads": 2, "rows": 10,
             "reals": [{"allocator": "glibc", "model": "freelist:glibc", "status": "ok", "one": _side(10.0),
                        "many": _side(15.0), "scaling": 1.5, "scaling_lo": 14 / 11, "scaling_hi": 16 / 9},
                       {"allocator": "mimalloc", "model": None, "status": "skipped", "reason": "not installed"}],
             "models": [{"model": "freelist:glibc", "status": "ok", "one": proxies,
                         "many": {**proxies, "remote_free_rate": 0.5, "false_sharing_lines_peak": 7}},
                        {"model": "go", "status": "failed", "reason": "out of memory"}]}
    rows = scaling.table_rows([point])
    assert [(row["real"], row["model"]) for row in rows] == [("glibc", "freelist:glibc"), ("mimalloc", None),
                                                           (None, "go")]
    assert rows[0]["scaling"] == 1.5 and rows[0]["false_shared_lines_t"] == 7 and rows[0]["remote_free_rate"] == 0.5
    assert rows[1]["status"] == "skipped: not installed" and rows[2]["status"] == "failed: out of memory"
    document = {"points": [point], "config": {"ops": 10, "seed": 0, "repeats": 1, "touch": "first"},
                "machine": {"cpu_count": 2, "affinity": [0, 1], "affinity_cores": 2, "loadavg_start": [0.5] * 3,
                            "loadavg_end": [0.7] * 3}}
    text = scaling.markdown(document)
    assert "| larson @2 | real glibc | 10.0 (9.0..11.0) | 15.0 (14.0..16.0) | 1.50 (1.27..1.78) |" in text
    assert "(no model yet)" in text and "Measured on 2 cores" in text
    assert all(len(line) <= 100 for line in scaling.render_table(document).splitlines())


@needs_gcc
def test_scaling_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "scaling"
    argv = ["scaling", "-w", "producer-consumer", "--ops", "3000", "--repeats", "1", "--real", "glibc",
            "--real", "jemalloc", "--models", "buddy", "--out", str(out), "--no-progress"]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    point = document["points"][0]
    assert point["spec"] == "producer-consumer:producers=1,consumers=1" and point["threads"] == 2
    for entry in point["reals"]:
        if entry["status"] == "skipped":
            continue  # jemalloc not installed: listed with its package
        assert entry["status"] == "ok" and entry["one"]["os_threads"] == 1 and entry["many"]["os_threads"] == 2
        assert entry["scaling_lo"] <= entry["scaling"] <= entry["scaling_hi"]
    assert [model["model"] for model in point["models"]] == ["freelist:glibc", "jemalloc", "buddy"]
    assert point["models"][0]["many"]["remote_free_rate"] == 1.0 and point["models"][0]["one"]["remote_free_rate"] == 0
    assert document["machine"]["cpu_count"] >= 1 and set(document["machine"]) == {
        "cpu_count", "affinity", "affinity_cores", "loadavg_start", "loadavg_end"}
    for name in ("scaling.json", "scaling.csv", "scaling.md", "scaling.png"):
        assert (out / name).stat().st_size > 0
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "producer-consumer @2" in text and "real glibc" in text and "Measured on" in text


def test_scaling_command_errors(tmp_path, capsys):
    assert main(["scaling", "--help"]) == 0
    capsys.readouterr()
    assert main(["scaling", "--threads", "1", "--out", str(tmp_path)]) == 2
    assert "thread counts must be integers in 2..256" in capsys.readouterr().err
    assert main(["scaling", "--threads", "two", "--out", str(tmp_path)]) == 2
    assert "--threads must be comma-separated integers" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["scaling", "--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err
