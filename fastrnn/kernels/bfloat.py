"""bf16 operands for the mixed-precision products (train.precision: bf16): float32
values rounded to bfloat16 and stored in pairs, two to a 32-bit word, as the CPU's
bf16 dot-product instruction reads them.

vdpbf16ps (AVX512_BF16: AMD Zen 4 and later, Intel Xeon 4th generation and later)
takes, in each 32-bit lane of its two operands, a pair of bf16 values and adds both
products to a float32 lane: acc += a0*b0 + a1*b1, the products exact (8-bit
significands) and the sums in float32. So both operands of a product are stored as
pairs along the sum's index k: word q holds elements 2q (low half) and 2q+1 (high
half), a zero completing an odd count. A bf16 value is the top half of a float32;
rounding is to nearest, ties to even, as PyTorch's and the CPU's conversions do.
"""
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import jit

# Whether this CPU has the bf16 dot product (asked once, as Numba compiles for it).
BF16 = bool(llvm.get_host_cpu_features().get("avx512bf16", False))


class BFloat(ir.Type):
    """LLVM's bfloat type, which llvmlite does not spell: the operands' element type of
    llvm.x86.avx512bf16.dpbf16ps.512."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, BFloat)

    def __hash__(self):
        return hash("bfloat")


@intrinsic
def _bits(typingctx, x):
    """The bits of a float32 as a uint32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(x), codegen


@jit
def bf16(x):
    """The float32 x rounded to bf16 (to nearest, ties to even), as its 16 bits in a
    uint32; a NaN stays a NaN."""
    u = _bits(np.float32(x))
    if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
        return (u >> np.uint32(16)) | np.uint32(0x40)
    return (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)


@jit
def pair(lo, hi):
    """One 32-bit word of bf16 operands: lo rounded in its low half, hi in its high."""
    return bf16(lo) | (bf16(hi) << np.uint32(16))


@jit
def words(K):
    """32-bit words to K bf16 values."""
    return (K + 1) // 2


@jit
def rows_to_pairs(A, X, r0, r1):
    """Rows r0..r1-1 of A (R, words(K)) uint32 = X (R, K) float32 in bf16 pairs along
    each row: A[r, q] holds X[r, 2q] and X[r, 2q+1]."""
    K = X.shape[1]
    half = K // 2
    for r in range(r0, r1):
        x, a = X[r], A[r]
        for q in range(half):
            a[q] = pair(x[2 * q], x[2 * q + 1])
        if K % 2:
            a[half] = bf16(x[K - 1])


@jit
def cols_to_pairs(A, X, q0, q1):
    """Rows q0..q1-1 of A (words(R), M) uint32 = X (R, M) float32 in bf16 pairs along
    each column: A[q, m] holds X[2q, m] and X[2q+1, m] (a zero past X's last row)."""
    R, M = X.shape
    for q in range(q0, q1):
        a, lo = A[q], X[2 * q]
        if 2 * q + 1 < R:
            hi = X[2 * q + 1]
            for m in range(M):
                a[m] = pair(lo[m], hi[m])
        else:
            for m in range(M):
                a[m] = bf16(lo[m])


def rounded(x):
    """x (float32, any shape) rounded to bf16 and back to float32, in numpy: the value
    the products see (the tests' reference)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r[nan] = (u[nan] | 0x400000) & 0xFFFF0000
    return r.astype(np.uint32).view(np.float32).reshape(np.shape(x))
