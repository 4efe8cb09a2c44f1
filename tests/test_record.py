"""Recording real programs under heaptrack / valgrind (skipped, with the reason, where a tool is missing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workloads import record as record_module
from workloads.record import RecordError, available_tool, record
from workloads.trace import OP_ALLOC, OP_FREE, Trace

HAVE = {tool: shutil.which(tool) is not None for tool in ("heaptrack", "valgrind")}
C_PROGRAM = r"""
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) { blocks[i] = malloc(16 + 8 * i); memset(blocks[i], 1, 16); }
    blocks[0] = realloc(blocks[0], 4000);
    for (int i = 0; i < 64; i++) free(blocks[i]);
    free(NULL);
    return argc > 1 ? atoi(argv[1]) : 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A tiny C program when gcc exists, else /bin/ls (both allocate)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return ["/bin/ls", "/"]
    folder = tmp_path_factory.mktemp("prog")
    (folder / "allocs.c").write_text(C_PROGRAM)
    subprocess.run([compiler, "-O0", "-o", str(folder / "allocs"), str(folder / "allocs.c")], check=True)
    return [str(folder / "allocs")]


@pytest.mark.parametrize("tool", ["heaptrack", "valgrind"])
def test_record_real_program(tool: str, program: list[str], tmp_path: Path) -> None:
    if not HAVE[tool]:
        pytest.skip(f"{tool} is not installed (Debian package {tool})")
    output = tmp_path / "rec.npz"
    report = record(program, output, tool=tool)
    trace = Trace.load(output)  # validates
    assert report.tool == tool and report.exit_code == 0 and report.command == program
    assert report.allocs > 0 and (trace.op == OP_ALLOC).sum() == report.allocs
    assert (trace.op == OP_FREE).sum() == report.frees and len(trace) == report.rows
    assert trace.meta["tool"] == tool and trace.meta["command"] == program and trace.meta["exit_code"] == 0
    assert trace.meta["import"]["allocs"] == report.allocs and "recording of" in trace.meta["source"]
    if program[0].endswith("allocs"):  # our program: 64 blocks (+ one moved by realloc), all freed
        sizes = set(trace.size[trace.op == OP_ALLOC].tolist()) | set(trace.size[trace.op == 2].tolist())
        assert {16, 24, 520, 4000} <= sizes
        assert report.free_null >= (1 if tool == "valgrind" else 0)


def test_record_nonzero_exit_is_recorded_and_reported(program: list[str], tmp_path: Path) -> None:
    if not program[0].endswith("allocs"):
        pytest.skip("needs gcc to build the test program")
    try:
        tool = available_tool("auto")
    except RecordError as error:
        pytest.skip(str(error))
    report = record([*program, "3"], tmp_path / "rec.npz", tool=tool)
    assert report.exit_code == 3 and any("exited with 3" in note for note in report.notes)
    assert Trace.load(tmp_path / "rec.npz").meta["exit_code"] == 3


def test_record_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RecordError, match="unknown recording tool 'gdb'"):
        record(["/bin/true"], tmp_path / "o.npz", tool="gdb")
    with pytest.raises(RecordError, match=r"must end in \.npz or \.csv"):
        record(["/bin/true"], tmp_path / "o.txt")
    if any(HAVE.values()):
        with pytest.raises(RecordError, match="not found on PATH"):
            record(["no-such-program-xyz"], tmp_path / "o.npz")
        with pytest.raises(RecordError, match="does not exist"):
            record([str(tmp_path / "absent")], tmp_path / "o.npz")
        (tmp_path / "plain").write_text("x")
        with pytest.raises(RecordError, match="not executable"):
            record([str(tmp_path / "plain")], tmp_path / "o.npz")
        with pytest.raises(RecordError, match="no command"):
            record([], tmp_path / "o.npz")
    monkeypatch.setattr(record_module.shutil, "which", lambda name: None)
    with pytest.raises(RecordError, match="heaptrack is not installed .Debian package heaptrack"):
        record(["/bin/true"], tmp_path / "o.npz", tool="heaptrack")
    with pytest.raises(RecordError, match="valgrind is not installed .Debian package valgrind"):
        record(["/bin/true"], tmp_path / "o.npz", tool="valgrind")
    with pytest.raises(RecordError, match="neither heaptrack nor valgrind is installed"):
        record(["/bin/true"], tmp_path / "o.npz")


def test_record_error_is_a_value_error() -> None:  # the CLI turns ValueError into exit 2 with one line
    assert issubclass(RecordError, ValueError)


@pytest.mark.skipif(not HAVE["valgrind"], reason="valgrind is not installed (Debian package valgrind)")
def test_record_python_with_pythonmalloc(tmp_path: Path) -> None:
    """A real interpreter under valgrind, allocating through malloc (PYTHONMALLOC=malloc)."""
    pytest.importorskip("numpy")
    report = record([sys.executable, "-S", "-c", "x = [bytes(100) for _ in range(50)]"], tmp_path / "py.csv",
                    tool="valgrind", env={"PYTHONMALLOC": "malloc"}, keep_raw=tmp_path / "vg.log")
    assert report.allocs > 1000 and (tmp_path / "vg.log").stat().st_size > 0
    assert len(Trace.load(tmp_path / "py.csv")) == report.rows
