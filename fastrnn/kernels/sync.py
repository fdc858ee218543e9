"""Atomic flags, so that two threads inside one compiled call can hand work to each
other without leaving it (kernels.duo, kernels.team).

A flag is one element of an int64 array. A thread publishes its results with
store_release after writing them; the other reads the flag with load_acquire before
reading them, which orders the plain loads and stores around it as the C++ memory model
does (LLVM's atomics, emitted here because Numba has none).
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit


def _flag_pointer(context, builder, sig, args):
    array = context.make_array(sig.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])


@intrinsic
def load_acquire(typingctx, flags, i):
    """flags[i], read after everything the thread that stored it wrote before."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_flag_pointer(context, builder, sig, args), "acquire", 8)
    return types.int64(flags, types.intp), codegen


@intrinsic
def store_release(typingctx, flags, i, value):
    """flags[i] = value, after everything this thread wrote before."""
    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, _flag_pointer(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()
    return types.void(flags, types.intp, value), codegen


@intrinsic
def compare_exchange(typingctx, flags, i, expected, new):
    """Set flags[i] to new if it holds expected, atomically; whether it did."""
    def codegen(context, builder, sig, args):
        expected = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(_flag_pointer(context, builder, sig, args), expected, new,
                               "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(flags, types.intp, expected, new), codegen


@intrinsic
def fetch_add(typingctx, flags, i, value):
    """flags[i] += value atomically, ordered as a release and an acquire; the old value."""
    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", _flag_pointer(context, builder, sig, args), value,
                                  "acq_rel")
    return types.int64(flags, types.intp, value), codegen


# The spin-wait hint, which tells the core that the loop only waits (x86's pause).
_PAUSE = ("llvm.x86.sse2.pause"
          if platform.machine().lower() in ("x86_64", "amd64", "i686") else None)


@intrinsic
def cpu_relax(typingctx):
    def codegen(context, builder, sig, args):
        if _PAUSE:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), _PAUSE)
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@jit
def wait_until_above(flags, i, value):
    """Spin until flags[i] > value."""
    while load_acquire(flags, i) <= value:
        cpu_relax()

