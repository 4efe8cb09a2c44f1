"""Every request size 1 B .. 4 MiB: each model grants what its real allocator reports as the usable size.

The real side is bench/real/usable.c in a child process (malloc_usable_size after malloc for glibc, tc_nallocx,
nallocx, mi_usable_size after malloc for mimalloc, whose mi_good_size agrees up to 128 KiB), the model side one
replay of the same malloc/free sequence (bench.real.usable).  Zero differences are required.  A pair is skipped
when the real library or gcc is missing, or while its model is not registered.
"""

from __future__ import annotations

import numpy as np
import pytest

import allocators
from bench.pairs import MODEL_OF_REAL
from bench.real import RealAllocatorMissing
from bench.real.cleanheap import CompilerMissing
from bench.real.usable import (
    DENSE_UP_TO,
    MAX_REQUEST,
    MIMALLOC_GOOD_SIZE_EXACT_UP_TO,
    USABLE_FUNCTIONS,
    differences,
    model_granted_sizes,
    real_usable_sizes,
    request_sizes,
    usable_trace,
)


@pytest.fixture(scope="module")
def sizes() -> np.ndarray:
    return request_sizes()


def real_or_skip(allocator: str, sizes: np.ndarray) -> np.ndarray:
    try:
        return real_usable_sizes(allocator, sizes)
    except (RealAllocatorMissing, CompilerMissing) as error:
        pytest.skip(str(error))


def model_spec_or_skip(real: str) -> str:
    spec = MODEL_OF_REAL[real] or real  # jemalloc, mimalloc: their models are to be called so
    name = spec.split(":")[0].split(",")[0]
    if name not in allocators.names():
        pytest.skip(f"no {real} model yet: {name!r} not in allocators.names()")
    return spec


def test_request_sizes_cover_every_size_then_every_step_of_8():
    sizes = request_sizes()
    assert sizes[0] == 1 and sizes[-1] == MAX_REQUEST and np.all(np.diff(sizes) > 0)
    assert np.array_equal(sizes[:DENSE_UP_TO], np.arange(1, DENSE_UP_TO + 1))
    above = sizes[DENSE_UP_TO:]
    assert set(np.unique(above % 8).tolist()) == {0, 1} and np.all(np.diff(above[0::2]) == 8)
    trace = usable_trace(np.array([5, 300000]))
    assert trace.op.tolist() == [0, 1, 0, 1] and trace.size.tolist() == [5, 0, 300000, 0]


@pytest.mark.parametrize("real", list(USABLE_FUNCTIONS))
def test_model_grants_the_real_usable_size_for_every_request_size(real, sizes):
    spec = model_spec_or_skip(real)
    got = real_or_skip(real, sizes)
    model = model_granted_sizes(spec, sizes)
    diff = differences(got, model, sizes)
    assert not diff, (f"{real} ({USABLE_FUNCTIONS[real]}) vs {spec}: {len(diff)} of {len(sizes)} sizes differ; "
                      f"first (size, real, model): {diff[:10]}")


def test_mimalloc_good_size_is_the_model_granted_size_up_to_the_medium_limit(sizes):
    """mi_good_size is the bin's block size up to 128 KiB (the model grants it); above, it only rounds to 4 KiB."""
    spec = model_spec_or_skip("mimalloc")
    good = real_or_skip_good(sizes)
    model = model_granted_sizes(spec, sizes)
    exact = sizes <= MIMALLOC_GOOD_SIZE_EXACT_UP_TO
    diff = differences(good[exact], model[exact], sizes[exact])
    assert not diff, f"mi_good_size vs {spec}: {len(diff)} sizes differ; first (size, real, model): {diff[:10]}"
    above = sizes[~exact]
    assert np.array_equal(good[~exact], (above + 4095) // 4096 * 4096)  # _mi_align_up(size, _mi_os_page_size())
    assert np.all(model[~exact] >= good[~exact])


def real_or_skip_good(sizes: np.ndarray) -> np.ndarray:
    try:
        return real_usable_sizes("mimalloc", sizes, good=True)
    except (RealAllocatorMissing, CompilerMissing) as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("order", ["descending", "shuffled"])
def test_glibc_usable_sizes_in_other_orders(order, sizes):
    """glibc's answer depends on the sequence (top's size, the mmap threshold raised by freeing a mapped chunk):
    the model follows it in any order, not only ascending."""
    spec = model_spec_or_skip("glibc")
    sequence = sizes[::-1].copy() if order == "descending" else np.random.default_rng(0).permutation(sizes)
    got = real_or_skip("glibc", sequence)
    diff = differences(got, model_granted_sizes(spec, sequence), sequence)
    assert not diff, f"{order}: {len(diff)} sizes differ; first (size, real, model): {diff[:10]}"


def test_the_helper_asks_the_library_named():
    """The four answers differ where the libraries do (a preload that did not take would give glibc's)."""
    probe = np.array([1, 24, 100, 131073], dtype=np.int64)  # 131073: glibc from top, the others' own steps
    expected = {"glibc": [24, 24, 104, 131080], "tcmalloc": [8, 32, 112, 139264], "jemalloc": [8, 32, 112, 163840],
                "mimalloc": [8, 32, 112, 196608]}
    answers = {}
    for real in USABLE_FUNCTIONS:
        try:
            answers[real] = real_usable_sizes(real, probe).tolist()
        except (RealAllocatorMissing, CompilerMissing):
            continue
    if "glibc" not in answers:
        pytest.skip("gcc missing")
    assert answers == {real: expected[real] for real in answers}
    with pytest.raises(ValueError, match="no usable-size function"):
        real_usable_sizes("scudo", probe)
