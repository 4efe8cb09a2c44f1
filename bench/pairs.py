"""Which model imitates which real allocator: the one pairing table of the lab.

`MODEL_OF_REAL` maps every real allocator of `bench.real.ALLOCATORS` to the
model spec built to imitate it, or None while there is none.  Everything that
puts a model beside its real counterpart reads it from here:

- `bench fidelity` (bench/fidelity.py, `PAIRS`): the model's peak footprint
  beside the real allocator's clean-heap growth on the same trace;
- `bench programs` (bench/programs/predict.py, `MODEL_OF`): a recorded
  program's trace through the model beside the real program's RSS growth;
- `bench scaling` (bench/scenarios/scaling.py, `MODEL_OF_REAL`): the model's
  scalability proxies in the real allocator's row;
- the usable-size test (bench/real/usable.py, tests/test_usable_sizes.py):
  every request size's granted size beside the real library's answer.

Real tcmalloc is gperftools 2.10's libtcmalloc_minimal (Debian's
libtcmalloc-minimal4), so its model is the tcmalloc model with gperftools'
size classes and page-heap growth (`tcmalloc:gperftools`), not the
google/tcmalloc default table.  A new model of a real allocator is one line
here.

`SETTING_PAIRS` puts a model's parameter beside the real allocator's option
it stands for, the option set in the real allocator's environment: decay
(jemalloc `decay`, `MALLOC_CONF` dirty_decay_ms/muzzy_decay_ms) and purge
(mimalloc `purge`, `MIMALLOC_ALLOW_DECOMMIT` / `MIMALLOC_DECOMMIT_DELAY`).
The real defaults purge on a timer (jemalloc 10 s, mimalloc 25 ms after a
free) that a replay without a clock cannot follow; with the timer set to 0
or off, the real allocator does what the model's setting does, so the pair
measures the rest of the model (`bench fidelity --settings`).
"""

from __future__ import annotations

#: Real allocator -> the model spec that imitates it (None: no model yet).
MODEL_OF_REAL: dict[str, str | None] = {
    "glibc": "freelist:glibc",
    "jemalloc": "jemalloc",
    "tcmalloc": "tcmalloc:gperftools",
    "mimalloc": "mimalloc",
    "scudo": None,
}


def paired() -> tuple[tuple[str, str], ...]:
    """(real allocator, model spec) for every real allocator that has a model, in MODEL_OF_REAL's order."""
    return tuple((real, model) for real, model in MODEL_OF_REAL.items() if model is not None)


def model_of(real: str) -> str | None:
    """The model spec of the real allocator `real` (None: no model); ValueError for an unknown name."""
    if real not in MODEL_OF_REAL:
        raise ValueError(f"unknown real allocator {real!r} (known: {', '.join(MODEL_OF_REAL)})")
    return MODEL_OF_REAL[real]


#: (real allocator, the option's short name, the option as environment variables, the model spec whose
#: parameter stands for that option).
SETTING_PAIRS: tuple[tuple[str, str, tuple[tuple[str, str], ...], str], ...] = (
    ("jemalloc", "decay off", (("MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1"),), "jemalloc"),  # decay=never
    ("jemalloc", "decay 0 ms", (("MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0"),), "jemalloc:immediate"),
    ("mimalloc", "decommit off", (("MIMALLOC_ALLOW_DECOMMIT", "0"),), "mimalloc"),  # purge=never
    ("mimalloc", "decommit 0 ms", (("MIMALLOC_DECOMMIT_DELAY", "0"),), "mimalloc:immediate"),
)
