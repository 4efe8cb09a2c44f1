"""Size-class tables and lookups against copies of the reference data (tests/data/).

- go_sizeclasses.csv: the comment table of golang/go src/internal/runtime/gc/sizeclasses.go @100ffa1b.
- go_span_nelems.csv: mheap.initSpan's objects per span for Go 1.16-1.21, 1.22-1.25, 1.26+.
- tcmalloc_sizeclasses_8k_align8.csv: google/tcmalloc @fce3f55d, the default and legacy tables.

Expected lookups are computed here from the reference tables alone (not from the module's arrays).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from allocators.shared import go_sizeclasses as go
from allocators.shared import tcmalloc_sizeclasses as tc
from allocators.shared.sizeclasses import SizeClassTable, build_class_index, class_index_length, classes_of
from bench.sizeclasses import render_csv

DATA = Path(__file__).resolve().parent / "data"
TCMALLOC_ARRAYS = {"default": "kReuseRelaxedBelow64SizeClasses", "legacy": "kLegacySizeClasses"}


def read_csv(name: str) -> list[dict[str, str]]:
    lines = [line for line in (DATA / name).read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


@pytest.fixture(scope="module")
def go_reference() -> list[dict[str, str]]:
    return read_csv("go_sizeclasses.csv")


@pytest.fixture(scope="module")
def go_reference_sizes(go_reference) -> np.ndarray:
    """Bytes per object indexed by class, class 0 = 0, from the reference table."""
    return np.array([0] + [int(row["bytes_obj"]) for row in go_reference], dtype=np.int64)


# ------------------------------------------------------------------------------------------------ Go table
def test_go_generator_reproduces_the_reference_table_row_by_row(go_reference):
    table = go.GO_TABLE
    assert len(table.size) == go.NUM_SIZE_CLASSES == 68 and len(go_reference) == 67
    assert table.size[0] == table.pages[0] == table.objects[0] == 0
    for row in go_reference:
        cls = int(row["class"])
        got = {
            "bytes_obj": str(table.size[cls]),
            "bytes_span": str(table.span_bytes[cls]),
            "objects": str(table.objects[cls]),
            "tail_waste": str(table.tail_waste[cls]),
            "max_waste_pct": f"{table.max_waste_pct[cls]:.2f}",
            "min_align": str(table.min_align[cls]),
        }
        assert got == {key: row[key] for key in got}, f"class {cls}"


def test_go_make_classes_is_the_generator_output():
    classes = go.make_classes()
    assert classes[0] == (0, 0)
    assert [size for size, _ in classes] == go.GO_TABLE.size.tolist()
    assert [pages for _, pages in classes] == go.GO_TABLE.pages.tolist()
    # Constants Go prints beside the table.
    assert int(go.GO_TABLE.objects[1:].max()) == 1024  # MaxObjsPerSpan
    assert int(go.GO_TABLE.pages.max()) == 10  # MaxSizeClassNPages
    assert go.GO_TABLE.size[go.TINY_SIZE_CLASS] == go.TINY_SIZE
    assert go.PAGE_SIZE == 8192 and go.MAX_SMALL_SIZE == 32768 and go.MAX_SMALL_ALLOC == 32760


def test_go_div_magic_divides_every_offset_of_the_span():
    for cls in range(1, go.NUM_SIZE_CLASSES):
        size, span = int(go.GO_TABLE.size[cls]), int(go.GO_TABLE.span_bytes[cls])
        assert go.DIV_MAGIC[cls] == 0xFFFFFFFF // size + 1
        offsets = np.arange(span + 1, dtype=np.uint64)
        assert np.array_equal((offsets * np.uint64(go.DIV_MAGIC[cls])) >> np.uint64(32), offsets // np.uint64(size))
    assert go.DIV_MAGIC[0] == 0


def test_go_alignment_summary():
    assert go.alignment_summary() == [
        (8, 3, 8), (16, 4, 32), (32, 5, 256), (64, 6, 512), (128, 7, 768), (4096, 12, 28672), (8192, 13, 32768),
    ]


# ------------------------------------------------------------------------------------------------ Go lookup
def test_go_lookup_arrays_are_built_as_printclasses_builds_them(go_reference_sizes):
    def smallest_class_at_least(size):
        return next(c for c, class_size in enumerate(go_reference_sizes) if class_size >= size)

    expected8 = [smallest_class_at_least(8 * i) for i in range(129)]
    expected128 = [smallest_class_at_least(1024 + 128 * i) for i in range(249)]
    assert go.SIZE_TO_CLASS8.tolist() == expected8
    assert go.SIZE_TO_CLASS128.tolist() == expected128
    assert expected8[0] == 0  # Go's table: size 0 maps to class 0 (never looked up)


def test_go_lookup_every_size_is_gos_runtime_lookup_and_the_smallest_fitting_class(go_reference_sizes):
    sizes = np.arange(1, go.MAX_SMALL_SIZE + 1, dtype=np.int64)
    got = go.go_classes_of(sizes, go.SIZE_TO_CLASS8, go.SIZE_TO_CLASS128)

    # The smallest class whose objects hold the request, straight from the reference table.
    smallest = np.searchsorted(go_reference_sizes, sizes, side="left")
    assert np.array_equal(got, smallest)
    assert np.all(go_reference_sizes[got] >= sizes) and np.all(go_reference_sizes[got - 1] < sizes)

    # Go's runtime expression, in uintptr (mod 2**64) arithmetic, over tables rebuilt from the reference.
    class8 = [int(np.searchsorted(go_reference_sizes, 8 * i)) for i in range(129)]
    class128 = [int(np.searchsorted(go_reference_sizes, 1024 + 128 * i)) for i in range(249)]
    mask = (1 << 64) - 1

    def runtime_class(n):
        if n <= 1024 - 8:
            return class8[(n + 7) // 8]
        return class128[((((n - 1024) & mask) + 127) & mask) // 128]

    assert got.tolist() == [runtime_class(int(n)) for n in sizes]
    # The quirk: 1017..1024 go through the 128-B table, whose index wraps round to 0 (class 32, 1024 B).
    for n in range(1017, 1025):
        assert ((((n - 1024) & mask) + 127) & mask) // 128 == 0
        assert runtime_class(n) == 32 == go.size_to_class(n)
    assert go.size_to_class(1016) == 32 and go.size_to_class(897) == 32 and go.size_to_class(896) == 31


def test_go_flat_class_index_agrees_with_gos_two_arrays():
    sizes = np.arange(1, go.MAX_SMALL_SIZE + 1, dtype=np.int64)
    assert np.array_equal(
        classes_of(sizes, go.GO_TABLE.class_index), go.go_classes_of(sizes, go.SIZE_TO_CLASS8, go.SIZE_TO_CLASS128)
    )


def test_go_python_lookup_and_examples_from_the_reference():
    assert go.size_to_class(17) == 3  # 24 B
    assert go.size_to_class(513) == 27  # 576 B
    assert go.size_to_class(6656) == 49  # 6784 B
    assert go.size_to_class(32760) == 67 and go.size_to_class(32768) == 67
    for bad in (0, 32769):
        with pytest.raises(ValueError):
            go.size_to_class(bad)


# ------------------------------------------------------------------------------------------------ Go versions
@pytest.mark.parametrize(
    ("version", "column"),
    [("1.16", "go116_121"), ("1.21", "go116_121"), ("1.22", "go122_125"), ("1.25", "go122_125"),
     ("1.26", "go126plus"), ("go1.27.2", "go126plus")],
)
def test_objects_per_span_by_version(version, column):
    rows = read_csv("go_span_nelems.csv")
    assert len(rows) == 67
    for scan, kind in ((False, "noscan"), (True, "scan")):
        expected = [int(row[f"nelems_{kind}_{column}"]) for row in rows]
        assert [go.objects_per_span(c, version, scan) for c in range(1, 68)] == expected, (version, kind)
        array = go.objects_per_span_array(version, scan)
        assert array.dtype == np.int64 and array[1:].tolist() == expected and array[0] == 1


def test_objects_per_span_defaults_and_errors():
    assert go.objects_per_span(2) == 504  # Go 1.26+, noscan: the tiny allocator's span
    assert go.objects_per_span(5, scan=True) == 165
    assert go.objects_per_span(0) == 1  # large object
    with pytest.raises(ValueError):
        go.objects_per_span(68)
    with pytest.raises(ValueError):
        go.objects_per_span(1, version="1.15")
    with pytest.raises(ValueError):
        go.objects_per_span(1, version="latest")


def test_small_size_limit():
    assert go.small_size_limit() == 32760 == go.small_size_limit("1.22")
    assert go.small_size_limit("1.21") == 32768


# ------------------------------------------------------------------------------------------------ TCMalloc
@pytest.mark.parametrize("name", ["default", "legacy"])
def test_tcmalloc_table_matches_reference_rows(name):
    rows = [row for row in read_csv("tcmalloc_sizeclasses_8k_align8.csv") if row["table"] == TCMALLOC_ARRAYS[name]]
    table = tc.get_table(name)
    assert table.n_classes == {"default": 49, "legacy": 85}[name] == len(rows) - 1
    for row in rows:
        cls = int(row["class"])
        got = (table.size[cls], table.pages[cls], table.num_to_move[cls], table.span_bytes[cls], table.objects[cls])
        expected = tuple(int(row[key]) for key in ("size", "pages", "num_to_move", "span_bytes", "objs_per_span"))
        assert got == expected, f"{name} class {cls}"
    assert table.max_size == tc.MAX_SIZE == 262144 and table.page_size == 8192


@pytest.mark.parametrize("name", ["default", "legacy"])
def test_tcmalloc_lookup_every_size_is_the_smallest_fitting_class(name):
    rows = [row for row in read_csv("tcmalloc_sizeclasses_8k_align8.csv") if row["table"] == TCMALLOC_ARRAYS[name]]
    reference_sizes = np.array([int(row["size"]) for row in rows], dtype=np.int64)
    table = tc.get_table(name)
    assert table.class_index.dtype == np.int16
    assert len(table.class_index) == ((tc.MAX_SIZE + 127 + (120 << 7)) >> 7) + 1  # kClassArraySize
    sizes = np.arange(1, tc.MAX_SIZE + 1, dtype=np.int64)
    got = classes_of(sizes, table.class_index)
    assert np.array_equal(got, np.searchsorted(reference_sizes, sizes, side="left"))
    assert classes_of(np.zeros(1, np.int64), table.class_index)[0] == 1  # SizeMap::Init: size 0 -> class 1
    assert table.lookup(1025) == int(np.searchsorted(reference_sizes, 1025))
    # the jitted kernel itself, called from Python
    assert tc.tcmalloc_size_to_class(tc.MAX_SIZE, table.class_index) == table.n_classes


def test_tcmalloc_rows_are_checked():
    with pytest.raises(ValueError, match="multiple of 128"):
        tc.check_rows(((0, 0, 0), (8, 1, 32), (1100, 1, 32), (262144, 32, 2)))
    with pytest.raises(ValueError, match="num_to_move"):
        tc.check_rows(((0, 0, 0), (8, 1, 1), (262144, 32, 2)))
    with pytest.raises(ValueError, match="kMaxSize"):
        tc.check_rows(((0, 0, 0), (8, 1, 32)))
    with pytest.raises(ValueError, match="unknown tcmalloc"):
        tc.get_table("kReuse")


# ------------------------------------------------------------------------------------------------ shared pieces
def test_build_class_index_rejects_tables_it_cannot_look_up_exactly():
    assert class_index_length(1024) == 129 and class_index_length(1025) == 130
    with pytest.raises(ValueError, match="grid"):
        build_class_index(np.array([0, 8, 1100, 2048]), 2048)
    with pytest.raises(ValueError, match="grid"):
        build_class_index(np.array([0, 12, 1024]), 1024)
    with pytest.raises(ValueError, match="increasing"):
        build_class_index(np.array([0, 16, 16, 1024]), 1024)
    with pytest.raises(ValueError, match="max_size"):
        build_class_index(np.array([0, 16, 1024]), 2048)


def test_size_class_table_columns_are_read_only():
    table = SizeClassTable("t", 13, np.array([0, 16, 1024]), np.array([0, 1, 1]), np.zeros(3, np.int64))
    assert table.objects.tolist() == [0, 512, 8] and table.lookup(17) == 2
    with pytest.raises(ValueError):
        table.size[1] = 8
    with pytest.raises(ValueError):
        go.SIZE_TO_CLASS8[1] = 0


# ------------------------------------------------------------------------------------------------ rendering
def test_render_go_csv_is_the_reference_file():
    assert render_csv("go") == (DATA / "go_sizeclasses.csv").read_text()


@pytest.mark.parametrize("name", ["default", "legacy"])
def test_render_tcmalloc_csv(name):
    lines = render_csv("tcmalloc", table=name).splitlines()
    assert lines[0] == "class,size,pages,span_bytes,objects,num_to_move,max_waste_pct"
    assert len(lines) == 1 + tc.get_table(name).n_classes
    assert lines[1] == "1,8,1,8192,1024,32,87.50"
    assert lines[-1].startswith(f"{tc.get_table(name).n_classes},262144,32,262144,1,2,")
    if name == "default":
        assert render_csv("tcmalloc") == render_csv("tcmalloc", table="default")


def test_render_errors():
    for call in (lambda: render_csv("nope"), lambda: render_csv("go", table="legacy"),
                 lambda: render_csv("tcmalloc", table="nope"), lambda: render_csv("tcmalloc", pages="8")):
        with pytest.raises(ValueError):
            call()
