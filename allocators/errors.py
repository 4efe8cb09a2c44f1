"""Errors raised by allocators, and the status codes kernels return instead of raising.

Kernels never raise: they return a negative status where an address (or 0 on
success) would go, and the Python shell turns it into one of the exceptions
below with the request and the allocator's state in the message.
"""

from __future__ import annotations

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

#: Kernel status codes (negative, so they can share the slot of an address).
ST_OK = 0
ST_OUT_OF_MEMORY = -1
ST_UNSUPPORTED = -2
ST_OUT_OF_ORDER = -3
ST_INVALID_ADDRESS = -4
ST_TOO_LARGE = -5
ST_BAD_THREAD = -6


class AllocatorError(Exception):
    """Base class of every allocator error."""


class OutOfMemory(AllocatorError):
    """The allocator cannot satisfy a request within its capacity."""


class UnsupportedOperation(AllocatorError):
    """The allocator does not support this operation (or this order of operations)."""


class InvalidAddress(AllocatorError):
    """deallocate() was given an address that is not a live block of this allocator."""


class BadParameter(AllocatorError, ValueError):
    """An allocator parameter is out of range or unknown."""


STATUS_TEXT = {
    ST_OUT_OF_MEMORY: "out of memory",
    ST_UNSUPPORTED: "operation not supported by this allocator",
    ST_OUT_OF_ORDER: "deallocation out of LIFO order",
    ST_INVALID_ADDRESS: "address is not a live block",
    ST_TOO_LARGE: "request larger than the largest block this allocator can grant",
    ST_BAD_THREAD: "thread id outside the allocator's thread range",
}


class MisuseDetected(AllocatorError):
    """A check of the allocator fired (a detection status, `allocators.detections`): the heap was misused."""


def error_for(status: int, message: str) -> AllocatorError:
    """The exception that a kernel status stands for, carrying `message`."""
    from allocators.detections import is_detection, status_text

    text = f"{message}: {STATUS_TEXT.get(status) or status_text(status) or f'status {status}'}"
    if is_detection(status):
        return MisuseDetected(text)
    if status == ST_OUT_OF_MEMORY:
        return OutOfMemory(text)
    if status == ST_INVALID_ADDRESS:
        return InvalidAddress(text)
    return UnsupportedOperation(text)
