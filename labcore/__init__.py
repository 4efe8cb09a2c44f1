"""The lab's core: what every layer that compiles kernels shares, below `workloads/`, `allocators/` and `bench/`.

- `jitcache`: where numba keeps the lab's compiled kernels, keyed by a fingerprint
  of every source file that registers itself with `holds_kernels(__file__)`;
- `kernels`: the two compilation tricks the lab's kernels use: a copy of a
  function with its globals rebound (one replay loop per allocator, one pool
  per inner allocator), and njit without reference counting for hot loops.

Importing this package points numba's cache at the fingerprint directory, so
every package of the lab imports it first, before any kernel is defined.
"""

from labcore import jitcache  # noqa: F401  (first: numba's cache directory before any kernel is defined)
