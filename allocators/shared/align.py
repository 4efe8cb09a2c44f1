"""Alignment arithmetic (powers of two only)."""

from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)


@njit(cache=True, inline="always")
def align_up(value, alignment):
    return (value + alignment - 1) & ~(alignment - 1)


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0
