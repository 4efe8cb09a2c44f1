"""The harness: run allocators on workloads, measure, store, compare (`python -m bench`)."""

import labcore  # noqa: F401  (first: points numba's cache before any kernel is defined)
