"""The classic allocator benchmarks of mimalloc-bench, as trace generators of their own.

mimalloc-bench (daanx/mimalloc-bench; ../shared/reference/production-allocators.md
section 5) runs a set of small programs under each allocator.  Their
allocation patterns are what this package reproduces, one module each: the
sizes, the lifetimes, the order of frees, the threads and which thread frees
what.  Each module's docstring says what its original is, what it stresses,
how the trace reproduces it and what it leaves out.

| catalog name | module | the pattern |
|---|---|---|
| `larson` | larson.py | random replacement per thread; threads exit and are replaced on the same slots |
| `mstress` | mstress.py | rounds of threads; pointers swapped through a global transfer array |
| `rptest` | rptest.py | scattered replacement; every 2nd loop a batch handed to the next thread |
| `alloc-test` | alloctest.py | Pareto 80/20 slot choice, power-of-two size classes; independent threads |
| `sh6bench` | sh6bench.py | a size sweep into a ring; bulk frees half FIFO, half LIFO, a fifth kept |
| `xmalloc-test` (`xmalloc`) | xmalloctest.py | producers fill 4096-object batches, consumers free them |
| `cache-scratch`, `cache-thrash` | cachescratch.py | 1-byte objects written over and over, with or without hand-over |
| `glibc-simple` | glibcsimple.py | batches of 25..1600 same-size blocks, freed half FIFO, half LIFO |
| `malloc-large` | malloclarge.py | 5..25 MiB buffers replacing one of 20 |

(`glibc-thread` is a composition: `workloads.catalog`, Pareto sizes x random
lifetimes x independent threads.)

Every classic is a step machine run by `machine.run` (the driver, streaming
whatever the chunk size, the same rows either way) over the pieces in
`steps` (rows, draws, the holding table, the drain); its keys are a dataclass
checked by `keys`.  A classic's length is the trace's row count, not the
original's seconds or iteration counts: its threads run (interleaved at
random, one operation at a time) until the budget, then every thread frees
what it holds.
"""

from workloads.classics.alloctest import ALLOC_TEST
from workloads.classics.cachescratch import CACHE_SCRATCH, CACHE_THRASH
from workloads.classics.glibcsimple import GLIBC_SIMPLE
from workloads.classics.larson import LARSON
from workloads.classics.machine import Classic
from workloads.classics.malloclarge import MALLOC_LARGE
from workloads.classics.mstress import MSTRESS
from workloads.classics.rptest import RPTEST
from workloads.classics.sh6bench import SH6BENCH
from workloads.classics.xmalloctest import XMALLOC_TEST

CLASSICS: dict[str, Classic] = {classic.name: classic for classic in (
    LARSON, MSTRESS, RPTEST, ALLOC_TEST, SH6BENCH, XMALLOC_TEST, CACHE_SCRATCH, CACHE_THRASH, GLIBC_SIMPLE,
    MALLOC_LARGE)}

__all__ = ["CLASSICS", "Classic"]
