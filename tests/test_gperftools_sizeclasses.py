"""gperftools 2.10's size classes (the `gperftools` table) against the derived reference table in tests/data/.

tests/data/gperftools_sizeclasses_derived.csv is a copy of shared/reference/gperftools_sizeclasses_derived.csv:
gperftools does not ship a table, SizeMap::Init computes it.  `size_map_init` below is that computation written
again from gperftools src/common.cc (AlignmentForSize, NumMoveSize, the span-pages loop and the merge of a class
into the previous one), independently of the module, so the CSV's pages and num_to_move columns are checked
against the algorithm as well as the module against the CSV.  The class sizes are also checked against the
real library's tc_nallocx in tests/test_usable_sizes.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import allocators
from allocators.errors import BadParameter
from allocators.shared import gperftools_sizeclasses as gp
from allocators.shared import tcmalloc_sizeclasses as tc
from allocators.shared.sizeclasses import classes_of
from bench.sizeclasses import render_csv

DATA = Path(__file__).resolve().parent / "data"
K_PAGE_SHIFT, K_MAX_SIZE, K_ALIGNMENT, K_MIN_ALIGN, K_TRANSFER_NUM_OBJ = 13, 256 * 1024, 8, 16, 32


def reference_rows() -> list[tuple[int, int, int]]:
    lines = [line for line in (DATA / "gperftools_sizeclasses_derived.csv").read_text().splitlines()
             if not line.startswith("#")]
    rows = list(csv.DictReader(lines))
    for row in rows[1:]:
        assert int(row["objs_per_span"]) == (int(row["pages"]) << K_PAGE_SHIFT) // int(row["size"])
    return [(int(row["size"]), int(row["pages"]), int(row["num_to_move"])) for row in rows]


def size_map_init() -> list[tuple[int, int, int]]:
    """gperftools src/common.cc SizeMap::Init with the defaults of Debian's 2.10 build."""
    page_size = 1 << K_PAGE_SHIFT

    def alignment_for_size(size: int) -> int:
        if size >= 128:
            return min((1 << (size.bit_length() - 1)) // 8, page_size)
        return K_MIN_ALIGN if size >= K_MIN_ALIGN else K_ALIGNMENT

    def num_move_size(size: int) -> int:
        return min(max(int(64.0 * 1024.0 / size), 2), K_TRANSFER_NUM_OBJ)

    sizes, pages = [0], [0]
    size = K_ALIGNMENT
    while size <= K_MAX_SIZE:
        alignment = alignment_for_size(size)
        blocks_to_move = num_move_size(size) // 4
        psize = 0
        while True:
            psize += page_size
            while psize % size > psize >> 3:
                psize += page_size
            if psize // size >= blocks_to_move:
                break
        my_pages = psize >> K_PAGE_SHIFT
        if len(sizes) > 1 and my_pages == pages[-1] and (my_pages << K_PAGE_SHIFT) // size == (
            (pages[-1] << K_PAGE_SHIFT) // sizes[-1]
        ):
            sizes[-1] = size  # merged into the previous class
        else:
            sizes.append(size)
            pages.append(my_pages)
        size += alignment
    return [(0, 0, 0)] + [(s, p, num_move_size(s)) for s, p in zip(sizes[1:], pages[1:], strict=True)]


def test_reference_csv_is_what_size_map_init_computes():
    rows = reference_rows()
    assert len(rows) == 86  # the sentinel + 85 classes
    assert rows == size_map_init()


def test_module_table_is_the_reference_csv():
    table = gp.GPERFTOOLS_TABLE
    rows = reference_rows()
    assert tc.TABLES["gperftools"] is table and tc.get_table("gperftools") is table
    assert table.n_classes == 85 and table.max_size == tc.MAX_SIZE and table.page_size == 8192
    assert list(zip(table.size.tolist(), table.pages.tolist(), table.num_to_move.tolist(), strict=True)) == rows
    assert list(gp.GPERFTOOLS_ROWS) == rows


def test_lookup_every_size_is_the_smallest_fitting_class():
    reference_sizes = np.array([size for size, _, _ in reference_rows()], dtype=np.int64)
    table = gp.GPERFTOOLS_TABLE
    sizes = np.arange(1, tc.MAX_SIZE + 1, dtype=np.int64)
    assert np.array_equal(classes_of(sizes, table.class_index), np.searchsorted(reference_sizes, sizes, side="left"))
    assert classes_of(np.zeros(1, np.int64), table.class_index)[0] == 1  # size 0 -> class 1 (8 B)
    assert table.lookup(24) == 3 and table.size[3] == 32  # 16-B steps from 16 B on (kMinAlign 16)


def test_rows_are_checked():
    good = gp.GPERFTOOLS_ROWS
    with pytest.raises(ValueError, match="NumMoveSize"):
        gp.check_rows(((0, 0, 0), (8, 1, 16), *good[2:]))
    with pytest.raises(ValueError, match="multiple of 16"):
        gp.check_rows(((0, 0, 0), (8, 1, 32), (24, 1, 32), *good[3:]))
    with pytest.raises(ValueError, match="tail"):
        gp.check_rows((*good[:45], (5120, 1, 12), *good[46:]))  # 8 KiB span, one 5 KiB object: 3 KiB of tail
    with pytest.raises(ValueError, match="kMaxSize"):
        gp.check_rows(good[:-1])


def test_preset_selects_the_table_and_gperftools_growth():
    allocator = allocators.create("tcmalloc:gperftools", 64 << 20)
    assert allocator.params["table"] == "gperftools" and allocator.params["grow_at_least"] is True
    assert allocators.create("tcmalloc", 64 << 20).params["table"] == "default"
    with pytest.raises(BadParameter, match="grow_at_least must be true or false"):
        allocators.create("tcmalloc:grow_at_least=3", 64 << 20)


def test_growth_is_at_least_one_mebibyte_not_rounded_up():
    """A 1.5 MiB request grows the heap by 1.5 MiB under the preset (GrowHeap: max(n, 1 MiB)), by 2 MiB by default;
    the next span then needs another 1 MiB under the preset and fits in the rounding by default."""
    from workloads.trace import from_rows

    trace = from_rows([(0, 0, 1536 << 10, 0), (0, 1, 100, 0), (1, 0, 0, 0), (1, 1, 0, 0)])
    footprints = {spec: allocators.create(spec, 64 << 20).replay(trace).peak_footprint
                  for spec in ("tcmalloc:gperftools", "tcmalloc")}
    assert footprints == {"tcmalloc:gperftools": (1536 << 10) + (1 << 20), "tcmalloc": 2 << 20}


def test_render_gperftools_csv():
    lines = render_csv("tcmalloc", table="gperftools").splitlines()
    assert lines[0] == "class,size,pages,span_bytes,objects,num_to_move,max_waste_pct"
    assert len(lines) == 86
    assert lines[3].startswith("3,32,1,8192,256,32,")
    assert lines[-1].startswith("85,262144,32,262144,1,2,")
