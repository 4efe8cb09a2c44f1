"""Replays through the machine's real allocators (bench.real): each runs in a child process."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from allocators.errors import OutOfMemory
from bench import real
from bench.real import child as realchild
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, from_rows


def _tiny_trace():
    """Small and large blocks (one above glibc's 128 KiB mmap threshold), a realloc, accesses, frees."""
    rows = []
    for ident in range(40):
        rows.append((OP_ALLOC, ident, 16 + 37 * ident, 0))
    rows.append((OP_ALLOC, 100, 200_000, 0))
    rows.append((OP_ACCESS, 100, 0, 0))
    rows.append((OP_ACCESS, 3, 50, 0))
    rows.append((OP_REALLOC, 5, 5000, 0))
    rows.append((OP_ACCESS, 5, 0, 0))
    for ident in range(0, 40, 2):
        rows.append((OP_FREE, ident, 0, 0))
    rows.append((OP_FREE, 100, 0, 0))
    return from_rows(rows)


def _peak_live(trace) -> int:
    current: dict[int, int] = {}
    live = peak = 0
    for op, ident, size in zip(trace.op.tolist(), trace.obj.tolist(), trace.size.tolist(), strict=True):
        if op in (OP_ALLOC, OP_REALLOC):
            live += size - current.get(ident, 0)
            current[ident] = size
        elif op == OP_FREE:
            live -= current.pop(ident)
        peak = max(peak, live)
    return peak


def _check_sane(result: dict, trace) -> None:
    assert result["rows"] == len(trace)
    assert result["throughput_mops"] > 0 and result["ns_per_op"] > 0
    assert 0 < result["seconds_min"] <= result["seconds_median"] <= result["seconds_max"]
    assert len(result["seconds"]) == result["repeats"]
    assert result["peak_live_requested"] == _peak_live(trace)
    assert result["peak_live_granted"] >= result["peak_live_requested"]
    assert 0 <= result["internal_fragmentation"] < 1
    assert result["live_at_end"] == 20  # the odd-numbered small blocks
    assert result["peak_rss_bytes"] > 0 and result["rss_growth_bytes"] >= 0
    stats = result["allocator_stats"]
    assert set(stats) == {"baseline", "at_peak_live", "end", "after_free"}
    assert all("heap" in snapshot for snapshot in stats.values())
    assert result["peak_heap_bytes"] is not None and result["peak_heap_bytes"] >= 0
    assert result["version"]


def test_glibc_replay_gives_throughput_and_sane_stats():
    trace = _tiny_trace()
    result = real.replay_real(trace, "glibc", repeats=3)
    _check_sane(result, trace)
    assert result["library"] is None
    assert "libc.so" in result["malloc_from"]
    assert result["version"].startswith("glibc")
    at_peak, baseline = result["allocator_stats"]["at_peak_live"], result["allocator_stats"]["baseline"]
    # bytes in use (arena chunks + mmapped chunks) grew by at least the big block at the trace's peak; the
    # 200 000 B block is mmapped the first time, from the arena later (glibc's dynamic mmap threshold)
    in_use_growth = at_peak["uordblks"] + at_peak["hblkhd"] - baseline["uordblks"] - baseline["hblkhd"]
    # (Python shares glibc's heap and frees a little in between, so not exactly peak_live_requested)
    assert in_use_growth >= 200_000
    assert result["overhead_factor"] is not None
    json.dumps(result)  # plain JSON for the CLI and the sweep


@pytest.mark.parametrize("allocator", ["jemalloc", "tcmalloc", "mimalloc", "scudo"])
def test_each_installed_real_allocator_replays_the_same_trace(allocator):
    try:
        library = real.library_path(allocator)
    except real.RealAllocatorMissing:
        pytest.skip(f"{allocator} not installed (apt-get install -y {real.LIBRARIES[allocator][1]})")
    trace = _tiny_trace()
    result = real.replay_real(trace, allocator, repeats=2)
    _check_sane(result, trace)
    assert result["library"] == library
    assert result["malloc_from"] == os.path.realpath(library)  # the preloaded malloc, not glibc's
    assert allocator in result["version"].lower() or "gperftools" in result["version"]
    assert real.SIGNATURE_SYMBOLS[allocator] in result["preload_check"]


def _scudo_or_skip() -> str:
    try:
        return real.library_path("scudo")
    except real.RealAllocatorMissing as error:
        pytest.skip(str(error))


def test_scudo_replays_a_small_trace_with_sane_figures():
    library = _scudo_or_skip()
    assert library.endswith("libclang_rt.scudo_standalone-x86_64.so")
    trace = _tiny_trace()
    result = real.replay_real(trace, "scudo", repeats=3)
    _check_sane(result, trace)
    assert result["malloc_from"] == os.path.realpath(library)
    assert result["preload_check"] == f"malloc and __scudo_print_stats defined by {os.path.realpath(library)}"
    assert result["version"].startswith("Scudo standalone")
    assert "hblkhd" in result["peak_heap_measure"] or "RSS growth" in result["peak_heap_measure"]
    # Scudo keeps the exact request in its chunk header and malloc_usable_size returns it (glibc would round up
    # to its 16 B chunk granularity): the calls were served by Scudo
    assert result["peak_live_granted"] == result["peak_live_requested"]
    assert result["internal_fragmentation"] == 0.0
    at_peak, baseline = result["allocator_stats"]["at_peak_live"], result["allocator_stats"]["baseline"]
    assert at_peak["arena"] == 0  # glibc's sbrk heap field: Scudo never fills it
    assert at_peak["uordblks"] - baseline["uordblks"] >= 200_000  # StatAllocated grew by at least the big block
    assert at_peak["hblkhd"] >= at_peak["uordblks"]  # mapped >= allocated
    json.dumps(result)


def test_preload_check_detects_glibc_serving_the_calls(monkeypatch):
    library = _scudo_or_skip()
    process = ctypes.CDLL(None)  # this test process: glibc's malloc
    malloc_from = realchild._defining_library(realchild._address(process, "malloc"))
    monkeypatch.setenv("LD_PRELOAD", library)  # claimed, but not what this process loaded
    problem = realchild.preload_problem(process, "scudo", malloc_from)
    assert problem is not None and "libc.so" in problem and "not" in problem
    monkeypatch.delenv("LD_PRELOAD")
    assert "nothing is preloaded" in realchild.preload_problem(process, "scudo", malloc_from)
    assert realchild.preload_problem(process, "glibc", malloc_from) is None


def test_child_without_the_preload_refuses_to_measure_scudo(tmp_path):
    _scudo_or_skip()
    source = tmp_path / "trace.npz"
    import numpy as np

    np.savez(source, op=np.array([0, 1], np.int8), obj=np.zeros(2, np.int64), size=np.array([16, 0]),
             n_ids=np.array(1), n_threads=np.array(1))
    environment = real.allocator_environment()  # no LD_PRELOAD: glibc's malloc
    done = subprocess.run([sys.executable, "-m", "bench.real", "--child", str(source), str(tmp_path / "out.json"),
                           "--allocator", "scudo", "--repeats", "1"], env=environment, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(real.__file__))))
    assert done.returncode == 2
    assert "scudo asked for" in done.stderr and "libc.so" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_scudo_library_is_found_under_the_newest_versioned_clang_directory(monkeypatch, tmp_path):
    name = real.LIBRARIES["scudo"][0][0]
    for version in ("llvm-9/lib/clang/9.0.1", "llvm-14/lib/clang/14.0.6", "llvm-11/lib/clang/11.1.0"):
        directory = tmp_path / version / "lib" / "linux"
        directory.mkdir(parents=True)
        (directory / name).write_bytes(b"")
    monkeypatch.setattr(real, "LIBRARY_DIRS", ())
    pattern = tmp_path / "llvm-*" / "lib" / "clang" / "*" / "lib" / "linux"
    monkeypatch.setitem(real.LIBRARY_GLOBS, "scudo", (str(pattern),))
    assert real.library_path("scudo") == str(tmp_path / "llvm-14/lib/clang/14.0.6/lib/linux" / name)
    monkeypatch.setitem(real.LIBRARY_GLOBS, "scudo", (str(tmp_path / "nowhere-*"),))
    with pytest.raises(real.RealAllocatorMissing, match="apt-get install -y libclang-rt-14-dev"):
        real.library_path("scudo")


def test_scudo_options_are_removed_from_the_replay_environment(monkeypatch):
    monkeypatch.setenv("SCUDO_OPTIONS", "quarantine_size_kb=256:zero_contents=1")
    monkeypatch.setenv("MIMALLOC_VERBOSE", "1")
    environment = real.allocator_environment()
    assert "SCUDO_OPTIONS" not in environment and "MIMALLOC_VERBOSE" not in environment
    assert "PATH" in environment


def test_cli_real_choices_are_the_real_allocators():
    from bench.cli.parser import REAL_ALLOCATORS

    assert REAL_ALLOCATORS == real.ALLOCATORS and "scudo" in real.ALLOCATORS


def test_missing_library_names_the_debian_package(monkeypatch):
    monkeypatch.setitem(real.LIBRARIES, "jemalloc", (("libjemalloc-not-here.so.9",), "libjemalloc2"))
    with pytest.raises(real.RealAllocatorMissing, match="apt-get install -y libjemalloc2"):
        real.replay_real(_tiny_trace(), "jemalloc")
    assert issubclass(real.RealAllocatorMissing, ValueError)
    with pytest.raises(ValueError, match="unknown real allocator"):
        real.library_path("ptmalloc9")


def test_malloc_failure_is_out_of_memory_at_its_row_and_the_parent_survives():
    trace = from_rows([(OP_ALLOC, 1, 100, 0), (OP_ALLOC, 2, 1 << 40, 0), (OP_FREE, 1, 0, 0)])
    # default memory cap ("auto" = MemTotal): a 1 TiB malloc must fail cleanly, never touch its pages
    with pytest.raises(real.RealOutOfMemory, match="out of memory at row 1") as caught:
        real.replay_real(trace, "glibc", repeats=1)
    assert caught.value.row == 1
    assert isinstance(caught.value, OutOfMemory)
    with pytest.raises(real.RealOutOfMemory, match="row 1"):
        real.replay_real(trace, "glibc", repeats=1, memory_limit_bytes=1 << 30)
    assert real.replay_real(_tiny_trace(), "glibc", repeats=1)["rows"] == len(_tiny_trace())


def test_a_child_that_does_not_finish_is_reported():
    with pytest.raises(real.RealReplayFailed, match="did not finish"):
        real.replay_real(_tiny_trace(), "glibc", timeout=0.01)


def test_bad_options_are_rejected_before_any_child_runs():
    with pytest.raises(ValueError, match="touch"):
        real.replay_real(_tiny_trace(), touch="all")
    with pytest.raises(ValueError, match="repeats"):
        real.replay_real(_tiny_trace(), repeats=0)
    with pytest.raises(TypeError):
        real.replay_real([(0, 1, 16, 0)])


def test_command_line_entry_point(tmp_path, capsys):
    path = tmp_path / "t.npz"
    _tiny_trace().save(path)
    assert real.main(["--trace", str(path), "--allocator", "glibc", "--repeats", "1", "--touch", "first"]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "Mops/s" in out and "overhead factor" in out
    assert real.main(["--trace", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def _crashing_python(tmp_path, crashes: int) -> str:
    """A stand-in for sys.executable that dies by SIGSEGV on its first `crashes` starts, then runs Python."""
    script = tmp_path / "python"
    counter = tmp_path / "starts"
    script.write_text(
        "#!/bin/sh\n"
        f"echo start >> {counter}\n"
        f"if [ \"$(wc -l < {counter})\" -le {crashes} ]; then echo 'Inconsistency detected by ld.so' >&2; "
        "kill -SEGV $$; fi\n"
        f"exec {sys.executable} \"$@\"\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_child_that_crashes_while_starting_is_started_again(monkeypatch, tmp_path):
    monkeypatch.setattr(real.sys, "executable", _crashing_python(tmp_path, crashes=1))
    result = real.replay_real(_tiny_trace(), "glibc", repeats=1)
    assert result["rows"] == len(_tiny_trace())
    assert len(result["start_failures"]) == 1 and result["start_failures"][0].startswith("signal 11")
    assert (tmp_path / "starts").read_text().count("start") == 2


def test_a_child_that_keeps_crashing_while_starting_fails_after_the_attempts(monkeypatch, tmp_path):
    monkeypatch.setattr(real.sys, "executable", _crashing_python(tmp_path, crashes=99))
    with pytest.raises(real.RealReplayFailed, match=r"signal 11\) \(after 2 start-up crash\(es\)\)"):
        real.replay_real(_tiny_trace(), "glibc", repeats=1)
    assert (tmp_path / "starts").read_text().count("start") == real.START_ATTEMPTS


def test_a_crash_during_the_replay_is_not_retried(monkeypatch):
    trace = from_rows([(OP_ALLOC, 1, 100, 0), (OP_ACCESS, 1, 100, 0), (OP_FREE, 1, 0, 0)])
    trace.size[1] = 1 << 44  # past validation: the ACCESS walks far beyond the block into unmapped memory
    calls: list[int] = []
    original = real.subprocess.run

    def run(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(real.subprocess, "run", run)
    with pytest.raises(real.RealReplayFailed, match=r"failed \(signal 11\): ") as caught:
        real.replay_real(trace, "glibc", repeats=1)
    assert "start-up" not in str(caught.value)
    assert len(calls) == 1  # the child was set up (its marker existed) when it died: the replay's crash, reported
