"""Allocator models: one module per allocator, one protocol, one registry.

Importing this package registers every allocator; see `allocators.registry`.
"""

import labcore  # noqa: F401,I001  (first: points numba's cache before any kernel is defined)
from allocators import buddy, freelist, go, jemalloc, linear, mimalloc, objpool, pool, region, stack, tcmalloc  # noqa: F401,E501  (registration)
from allocators.errors import (
    AllocatorError,
    BadParameter,
    InvalidAddress,
    OutOfMemory,
    UnsupportedOperation,
)
from allocators.log import AllocLog
from allocators.protocol import Allocator, default_capacity
from allocators.registry import create, get, names, parse_spec, register

__all__ = [
    "AllocLog", "Allocator", "AllocatorError", "BadParameter", "InvalidAddress", "OutOfMemory",
    "UnsupportedOperation", "create", "default_capacity", "get", "names", "parse_spec", "register",
]
