"""Workloads: the trace format and the generators that produce traces.

- `trace`: the Trace struct of arrays, validation, files.
- `sizes`, `lifetimes`, `threads`, `access`: the parts a generator composes.
- `generator.generate`: sizes x lifetimes x threads x access -> Trace.
- `catalog`: named workloads for the CLI and the sweep (`catalog.make("lognormal:threads=4")`).
- `programs`: the catalog's hook for workloads with a generator of their own: `escape` (goescape) and
  `classics` (the mimalloc-bench classics, `catalog.make("larson:threads=8")`).
"""

import labcore  # noqa: F401,I001  (first: points numba's cache before any kernel is defined)
from workloads import catalog
from workloads.access import Access
from workloads.catalog import benchmark_trace
from workloads.generator import generate
from workloads.lifetimes import (
    LIFETIME_MODELS,
    ExponentialLifetimes,
    Fifo,
    LifetimeModel,
    Lifo,
    LongLived,
    Phased,
    RandomFrees,
    Schedule,
)
from workloads.sizes import (
    DEFAULT_MAX_SIZE,
    SIZE_DISTRIBUTIONS,
    Adversarial,
    Bimodal,
    Empirical,
    Exponential,
    Fixed,
    LogNormal,
    Pareto,
    SizeDistribution,
    Uniform,
    load_histogram,
)
from workloads.threads import THREAD_MODELS, Independent, ProducerConsumer, ThreadModel
from workloads.trace import (
    MAX_REQUEST_SIZE,
    MAX_THREADS,
    OP_ACCESS,
    OP_ALLOC,
    OP_FREE,
    OP_REALLOC,
    Trace,
    TraceError,
    from_rows,
)

__all__ = [
    "DEFAULT_MAX_SIZE", "LIFETIME_MODELS", "MAX_REQUEST_SIZE", "MAX_THREADS", "OP_ACCESS", "OP_ALLOC", "OP_FREE",
    "OP_REALLOC", "SIZE_DISTRIBUTIONS", "THREAD_MODELS", "Access", "Adversarial", "Bimodal", "Empirical",
    "Exponential", "ExponentialLifetimes", "Fifo", "Fixed", "Independent", "Lifo", "LifetimeModel", "LogNormal",
    "LongLived", "Pareto", "Phased", "ProducerConsumer", "RandomFrees", "Schedule", "SizeDistribution",
    "ThreadModel", "Trace", "TraceError", "Uniform", "benchmark_trace", "catalog", "from_rows", "generate",
    "load_histogram",
]
