"""``prefetch(arr, r, c)``: ask the CPU to bring ``arr[r, c]`` (a 2-d array)
into the cache, for a write soon, without waiting for it.

A per-contact count over time-ordered rows writes at random contacts: at
millions of contacts nearly every write misses the caches (and the TLB), and
the loop runs at the speed of those misses.  Prefetching the contact a few
rows ahead overlaps them (at 12.5M contacts, about twice as fast).  A
prefetch never faults, whatever the address; with numba's JIT off it does
nothing.
"""

from __future__ import annotations

from typing import Any

from numba.core import config

if getattr(config, "DISABLE_JIT", False):

    def prefetch(arr: Any, r: Any, c: Any) -> None:
        return None

else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx: Any, arr: Any, r: Any, c: Any) -> Any:
        if not isinstance(arr, types.Array) or arr.ndim != 2:
            return None
        sig = types.void(arr, r, c)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            at = [
                context.cast(builder, v, t, types.intp)
                for v, t in zip(args[1:], signature.args[1:], strict=True)
            ]
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, at, wraparound=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            # (address, 1: for a write, 3: keep in every cache level, 1: data)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen
