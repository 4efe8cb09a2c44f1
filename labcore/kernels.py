"""Two compilation tricks the lab's kernels share.

`rebind(template, name, bindings, module_file)`: a copy of a plain Python
function whose global names in `bindings` point elsewhere.  numba resolves a
kernel's globals when it compiles it, so a template loop that calls
`alloc_block(...)` becomes, rebound to one allocator's `alloc_block`, a loop
with that kernel inlined: no call through a function pointer.  The replay
driver makes one copy per allocator (`allocators.replay`), the object pool one
per inner allocator (`allocators.objpool`).

numba's on-disk cache keys a function by its file, qualified name and
bytecode, not by its globals, so every copy needs a name of its own (two copies
of one template with different globals under one name would load each other's
machine code).  `rebind` therefore takes the copy's name from the caller and
attributes it to `module_file`: its cache entry lives beside that module, is
invalidated with it, and `labcore.jitcache`'s fingerprint covers the rest.

`njit_without_refcounts(function)`: `njit(cache=True)` with numba's reference
counting off, for hot loops that allocate nothing.  Kernels inlined into a loop
pull arrays out of tuples and return early; numba then emits atomic increments
and decrements of the arrays' reference counts on every use, which LLVM cannot
always pair up and remove: measured 2-3x slower replays (pool 78 -> 160 Mops/s)
and metric passes (L1 hits 35 -> 230 M accesses/s).  The arrays are owned by
the Python caller for the whole call, so no count is needed.  `_nrt` is a
private numba option: if a numba release drops it, the plain (slower, equally
correct) kernel is compiled instead.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from numba import njit


def rebind(template: Callable, name: str, bindings: Mapping[str, Any], module_file: str | None = None) -> Callable:
    """A copy of `template` called `name` whose globals are the template's, updated with `bindings`.

    `module_file` (default: the template's file) is the file the copy's code is attributed to, which is
    where numba caches it.  Bound kernels may be numba dispatchers or the staticmethod objects of a class body.
    """
    code = template.__code__.replace(
        co_name=name, co_qualname=name, co_filename=module_file or template.__code__.co_filename
    )
    namespace = dict(template.__globals__)
    namespace.update({key: getattr(value, "__func__", value) for key, value in bindings.items()})
    function = types.FunctionType(code, namespace, name)
    function.__qualname__ = name
    function.__module__ = template.__module__
    return function


def njit_without_refcounts(function: Callable) -> Callable:
    """`njit(cache=True)` with numba's reference counting off (see the module docstring)."""
    try:
        return njit(cache=True, _nrt=False)(function)
    except (KeyError, TypeError, ValueError):
        return njit(cache=True)(function)
