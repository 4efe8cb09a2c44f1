"""Software prefetch: ask the CPU to bring an array element's cache line in ahead of its use.

A replay knows its future: row r + k of the trace names the object (and so the
per-object record, and the block's metadata) that row r + k will touch.  Those
lookups are random over tables of megabytes (100 000 live objects: a 3.2 MB
object table), and each one that misses the caches stalls the loop for a
memory latency.  `prefetch(array, index)` emits LLVM's `llvm.prefetch` (read,
keep in all cache levels, data) for the element's address, so the line
arrives while the rows before it run.

A prefetch is only a hint: it never faults, changes no value and no figure,
and is dropped by the CPU when its queue is full.  The index is still checked
against the array (an index outside it prefetches nothing), so no address
outside an array is ever formed, bounds checks or not.

Cost: one compare and one prefetch instruction.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

_I32 = ir.IntType(32)


@intrinsic
def _prefetch_element(typingctx, array, index):
    """llvm.prefetch(&array[index], read, locality 3, data); the caller keeps 0 <= index < len(array)."""
    if not isinstance(array, types.Array) or array.ndim != 1 or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = builder.gep(view.data, [args[1]])
        address = builder.bitcast(pointer, cgutils.voidptr_t)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, _I32, _I32, _I32]), "llvm.prefetch.p0"
        )
        builder.call(function, [address, _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, inline="always")
def prefetch(array, index):
    """Prefetch array[index]'s cache line (nothing when index is outside the 1-D array)."""
    if index >= 0 and index < array.shape[0]:
        _prefetch_element(array, index)
