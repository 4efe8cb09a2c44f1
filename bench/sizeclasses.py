"""Size-class tables as CSV text (`python -m bench sizeclasses MODEL [--table ...]`).

`render_csv("go")` reproduces the table in the comment of Go's generated
`sizeclasses.go` (shared/reference/go_sizeclasses.csv, byte for byte):
class,bytes_obj,bytes_span,objects,tail_waste,max_waste_pct,min_align.

`render_csv("tcmalloc", table="default"|"legacy"|"gperftools")` lists a TCMalloc table:
class,size,pages,span_bytes,objects,num_to_move,max_waste_pct, where max waste
is the same worst case as Go's column (every object one byte above the previous
class, plus the span's tail), not TCMalloc's own "fixed" overhead comment.
`render_csv("mimalloc")` lists mimalloc 2.0's bins that hold blocks:
bin,size,page_kind,page_bytes,blocks,tail_waste,max_waste_pct (page_kind small =
64 KiB pages, medium = 512 KiB; blocks of at most 1 KiB start 384 B into the
page; max waste as Go's column, the previous used bin's size + 1 in every block).
`render_csv("jemalloc")` lists jemalloc 5.3's 36 small bins (4 KiB pages, 16 B quantum) with the
columns of shared/reference/jemalloc_smallbins_derived.csv: bin,size,slab_pages,nregs,
tcache_ncached_max_default (bin = jemalloc's szind; the rows are the reference file's, byte for byte).
Rows are classes 1..N (the class-0 sentinel is left out), each line ends in "\\n".
"""

from __future__ import annotations

from allocators.shared import go_sizeclasses, jemalloc_sizeclasses, mimalloc_bins, tcmalloc_sizeclasses
from allocators.shared.sizeclasses import SizeClassTable

MODELS = ("go", "tcmalloc", "jemalloc", "mimalloc")
GO_HEADER = "class,bytes_obj,bytes_span,objects,tail_waste,max_waste_pct,min_align"
TCMALLOC_HEADER = "class,size,pages,span_bytes,objects,num_to_move,max_waste_pct"
JEMALLOC_HEADER = "bin,size,slab_pages,nregs,tcache_ncached_max_default"
MIMALLOC_HEADER = "bin,size,page_kind,page_bytes,blocks,tail_waste,max_waste_pct"


def _mimalloc_rows() -> list[str]:
    from allocators.mimalloc_layout import SMALL_BLOCK_OFFSET, SMALL_BLOCK_OFFSET_MAX

    rows = []
    previous = 0
    for b in mimalloc_bins.USED_BINS:
        size = int(mimalloc_bins.BIN_SIZE[b])
        small = size <= mimalloc_bins.SMALL_OBJ_SIZE_MAX
        page = mimalloc_bins.SLICE_SIZE if small else mimalloc_bins.MEDIUM_PAGE_SIZE
        usable = page - (SMALL_BLOCK_OFFSET if size <= SMALL_BLOCK_OFFSET_MAX else 0)
        blocks = usable // size
        waste = 100.0 * (page - blocks * (previous + 1)) / page
        rows.append(f"{b},{size},{'small' if small else 'medium'},{page},{blocks},{usable - blocks * size},{waste:.2f}")
        previous = size
    return rows


def _go_rows(table: SizeClassTable) -> list[str]:
    return [
        f"{cls},{table.size[cls]},{table.span_bytes[cls]},{table.objects[cls]},{table.tail_waste[cls]},"
        f"{table.max_waste_pct[cls]:.2f},{table.min_align[cls]}"
        for cls in range(1, len(table.size))
    ]


def _tcmalloc_rows(table: SizeClassTable) -> list[str]:
    return [
        f"{cls},{table.size[cls]},{table.pages[cls]},{table.span_bytes[cls]},{table.objects[cls]},"
        f"{table.num_to_move[cls]},{table.max_waste_pct[cls]:.2f}"
        for cls in range(1, len(table.size))
    ]


def render_csv(model: str, **options: str) -> str:
    """CSV text of `model`'s size classes ('go'; 'tcmalloc' with table='default'|'legacy'|'gperftools'; 'jemalloc';
    'mimalloc').

    Raises ValueError for an unknown model, table or option.
    """
    if model == "go":
        if options:
            raise ValueError(f"the go size-class table takes no options (got {', '.join(sorted(options))})")
        lines = [GO_HEADER, *_go_rows(go_sizeclasses.GO_TABLE)]
    elif model == "tcmalloc":
        unknown = set(options) - {"table"}
        if unknown:
            raise ValueError(f"unknown tcmalloc option(s) {', '.join(sorted(unknown))}; the only one is table")
        table = tcmalloc_sizeclasses.get_table(options.get("table", "default"))
        lines = [TCMALLOC_HEADER, *_tcmalloc_rows(table)]
    elif model == "jemalloc":
        if options:
            raise ValueError(f"the jemalloc size-class table takes no options (got {', '.join(sorted(options))})")
        lines = [JEMALLOC_HEADER, *(",".join(map(str, row)) for row in jemalloc_sizeclasses.small_bins())]
    elif model == "mimalloc":
        if options:
            raise ValueError(f"the mimalloc bins take no options (got {', '.join(sorted(options))})")
        lines = [MIMALLOC_HEADER, *_mimalloc_rows()]
    else:
        raise ValueError(f"unknown size-class model {model!r}; choose from {', '.join(MODELS)}")
    return "\n".join(lines) + "\n"
