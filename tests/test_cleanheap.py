"""Clean-heap footprint (bench.real.cleanheap): the C replayer, run through glibc and each preloaded allocator."""

from __future__ import annotations

import shutil

import pytest

from allocators.errors import OutOfMemory
from bench import real
from bench.real import cleanheap
from workloads import catalog
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE, OP_REALLOC, from_rows

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (apt-get install -y gcc)")

ALLOCATORS = ("glibc", "jemalloc", "tcmalloc", "mimalloc", "scudo")


def _library_or_skip(name: str) -> None:
    try:
        real.library_path(name)
    except real.RealAllocatorMissing as error:
        pytest.skip(str(error))


def _small_trace():
    rows = [(OP_ALLOC, ident, 16 + 37 * ident, 0) for ident in range(40)]
    rows += [(OP_ALLOC, 100, 200_000, 0), (OP_ACCESS, 100, 0, 0), (OP_REALLOC, 5, 5000, 0), (OP_ACCESS, 5, 0, 0)]
    rows += [(OP_FREE, ident, 0, 0) for ident in range(0, 40, 2)] + [(OP_FREE, 100, 0, 0)]
    return from_rows(rows)


def test_binary_is_cached():
    first = cleanheap.replayer_binary()
    assert first.exists() and cleanheap.replayer_binary() == first
    assert first.parent.parent == cleanheap.CACHE_ROOT


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_small_trace(allocator):
    _library_or_skip(allocator)
    trace = _small_trace()
    result = cleanheap.clean_heap_footprint(trace, allocator)
    live = sum(16 + 37 * ident for ident in range(40)) + 200_000 + 5000 - (16 + 37 * 5)
    assert result["rows"] == len(trace)
    assert result["peak_live_requested"] == live
    assert result["peak_row"] == 42  # the realloc
    # small enough to fit in what tcmalloc / mimalloc took at start-up (1 MiB / 32 MiB): growth may be 0
    assert result["peak_heap_bytes"] >= (200_000 if allocator == "glibc" else 0)  # glibc mmaps the 200 KB block
    assert result["rss_growth_bytes"] >= 200_000
    assert isinstance(result["measure"], str) and result["measure"]
    assert result["allocator"] == allocator


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_clean_figure_covers_live_bytes(allocator):
    _library_or_skip(allocator)
    trace = catalog.make("lognormal:mu=9,live=2000", n_ops=20000)
    result = cleanheap.clean_heap_footprint(trace, allocator)
    assert 10 * 2**20 <= result["peak_live_requested"] <= 40 * 2**20
    assert result["peak_heap_bytes"] >= result["peak_live_requested"]
    assert result["peak_heap_bytes"] < 4 * result["peak_live_requested"]
    assert result["rss_growth_bytes"] >= result["peak_live_requested"]
    assert "VmRSS" not in result["measure"]  # the allocator's own statistic was found


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_null_from_malloc_is_reported(allocator):
    _library_or_skip(allocator)
    trace = from_rows([(OP_ALLOC, 0, 64, 0), (OP_ALLOC, 1, 4096, 0), (OP_FREE, 0, 0, 0)])
    trace.size[1] = 1 << 60  # past validation: no allocator can map 2**60 bytes
    with pytest.raises(OutOfMemory, match="row 1") as caught:
        cleanheap.clean_heap_footprint(trace, allocator)
    assert caught.value.row == 1


def test_missing_gcc_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(cleanheap, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(cleanheap.shutil, "which", lambda name: None)
    with pytest.raises(cleanheap.CompilerMissing, match="apt-get install -y gcc"):
        cleanheap.replayer_binary()


def test_scudo_replayer_refuses_when_the_preload_did_not_take(monkeypatch):
    _library_or_skip("scudo")
    monkeypatch.setattr(cleanheap, "library_path", lambda name: None)  # no LD_PRELOAD: glibc's malloc (and mallinfo2)
    with pytest.raises(real.RealReplayFailed, match="__scudo_print_stats is not in the process"):
        cleanheap.clean_heap_footprint(_small_trace(), "scudo")


def test_scudo_clean_heap_counts_its_mapped_bytes():
    _library_or_skip("scudo")
    trace = catalog.make("lognormal:mu=9,live=2000", n_ops=20000)
    result = cleanheap.clean_heap_footprint(trace, "scudo")
    assert result["measure"].startswith("Scudo mallinfo2 hblkhd")
    # Scudo maps its size-class regions in 128 KiB steps: at least the live bytes plus the 16 B header per block
    assert result["peak_heap_bytes"] >= result["peak_live_requested"] + 16 * 2000


@pytest.mark.parametrize("allocator", ("glibc", "jemalloc", "tcmalloc", "mimalloc"))  # Scudo maps 8 MiB for it
def test_peak_footprint_of_a_trace_smaller_than_the_start_up_reservations(allocator):
    """About 1.4 MiB live fits in tcmalloc's first MiB plus one grow and in mimalloc's first 32 MiB segment: the
    growth of their statistics reads 1 MiB and 0; the peak footprint counts what the trace made them hold."""
    _library_or_skip(allocator)
    trace = catalog.make("lognormal:mu=6,live=2000", n_ops=20000, seed=3)
    result = cleanheap.clean_heap_footprint(trace, allocator)
    live = result["peak_live_requested"]
    assert 2**20 < live < 2 * 2**20
    assert live <= result["peak_footprint"] < 3 * live, result
    assert live <= result["rss_anon_peak_growth"] < 3 * live, result
    rule = cleanheap.FOOTPRINT_RULES[allocator]
    assert result["peak_footprint"] == {"statistic": result["heap_start"] + result["peak_heap_bytes"]
                                        - result["in_use_start"], "growth": result["peak_heap_bytes"],
                                        "rss": result["rss_anon_peak_growth"]}[rule]
    assert result["footprint_measure"]


def test_peak_footprint_rules_fall_back_when_a_statistic_is_missing():
    figures = {"measure": "mallinfo2 arena + hblkhd (sbrk/mmap heap + mmapped chunks)", "heap_start": 100,
               "peak_heap_bytes": 1000, "in_use_start": 10, "rss_anon_peak_growth": 900}
    assert cleanheap.peak_footprint(figures, "glibc") == (1090,
                                                          "mallinfo2 arena + hblkhd at the peak - in use at start")
    assert cleanheap.peak_footprint(figures, "jemalloc")[0] == 1000
    assert cleanheap.peak_footprint(figures, "mimalloc")[0] == 900
    assert cleanheap.peak_footprint({**figures, "in_use_start": -1}, "glibc")[0] == 1000
    assert cleanheap.peak_footprint({**figures, "measure": "VmRSS (allocator statistic not found)"}, "glibc")[0] == 900
