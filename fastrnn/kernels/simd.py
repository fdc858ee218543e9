"""Register-blocked kernels written as LLVM vector code: the vector set-up every tile
shares (Lanes, the machine's vector width), and the exact sums, whose order must stay
min-char-rnn's.

LLVM does not vectorise a sum that runs over the outer loop of a tile (it vectorises
innermost loops only, and its straight-line vectoriser leaves 32 scalar running sums
alone), so the exact weight-gradient sum would otherwise either read and write dW once
per step or run on scalars. Here a tile of dW stays in vector registers while the
steps go by, and every lane does what the scalar code does: the product rounded, then
added (fmul then fadd, never a fused multiply-add), the last step first.
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit

AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))
# This machine's vectors in bytes (AVX-512's, else AVX2's): the packed product's
# (kernels.step).
VECTOR_BYTES = 64 if AVX512 else 32
# The exact sums' tiles keep AVX2's 32-byte vectors on every machine (LLVM splits them
# where registers are narrower): their 4 x 8 float64 tile is the one measured (README).
EXACT_BYTES = 32


class Lanes:
    """For an intrinsic's code generation: the LLVM vector type of `width` bytes of
    dtype and the few operations the tiles build from it."""

    def __init__(self, context, builder, dtype, width):
        self.context, self.builder = context, builder
        self.elt = context.get_value_type(dtype)
        self.bits = context.get_abi_sizeof(self.elt) * 8
        self.lanes = width * 8 // self.bits
        self.vec = ir.VectorType(self.elt, self.lanes)
        self.intp = context.get_value_type(types.intp)
        self.zero = ir.Constant(self.vec, [ir.Constant(self.elt, 0.0)] * self.lanes)

    def const(self, v):
        """v as an intp constant."""
        return ir.Constant(self.intp, v)

    def item(self, t, a, idx):
        """A pointer to element idx of array a (of Numba type t)."""
        return cgutils.get_item_pointer(self.context, self.builder, t, a, idx)

    def vector_at(self, t, a, idx):
        """A pointer to the vector that starts at element idx of a."""
        return self.builder.bitcast(self.item(t, a, idx), self.vec.as_pointer())

    def broadcast(self, x):
        """The scalar x in every lane."""
        i32 = ir.IntType(32)
        undef = ir.Constant(self.vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, self.lanes), [0] * self.lanes)
        return self.builder.shuffle_vector(
            self.builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat)


def _outer_tile(rows, vecs):
    """An intrinsic tile(dW, dY, X, m, n, more): dW[m:m+rows, n:n+vecs*w] = the sum
    over r, from the last row to the first, of outer(dY[r, m:m+rows], X[r, n:n+vecs*w]),
    added to what the tile holds when `more` is true (the same bits as one sum over all
    the rows, since a partial sum is stored exactly); w is the lanes of a vector (4 in
    float64, 8 in float32). The arrays' strides are honoured; the caller keeps the tile
    inside them."""

    @intrinsic
    def tile(typingctx, dW, dY, X, m, n, more):
        def codegen(context, builder, sig, args):
            arrays = [context.make_array(t)(context, builder, a)
                      for t, a in zip(sig.args[:3], args[:3])]
            (tw, ty, tx), (aw, ay, ax) = sig.args[:3], arrays
            m, n = args[3], args[4]
            vs = Lanes(context, builder, tw.dtype, EXACT_BYTES)
            lanes, const = vs.lanes, vs.const
            cols = [builder.add(n, const(v * lanes)) for v in range(vecs)]
            acc = []
            for k in range(rows):
                row = builder.add(m, const(k))
                held = [builder.load(vs.vector_at(tw, aw, [row, c]), align=1) for c in cols]
                acc.append([cgutils.alloca_once_value(builder,
                                                      builder.select(args[5], h, vs.zero))
                            for h in held])
            R = builder.extract_value(ay.shape, 0)
            last = builder.sub(R, const(1))
            with cgutils.for_range(builder, R) as loop:
                r = builder.sub(last, loop.index)
                xs = [builder.load(vs.vector_at(tx, ax, [r, c]), align=1) for c in cols]
                for k in range(rows):
                    row = builder.add(m, const(k))
                    d = vs.broadcast(builder.load(vs.item(ty, ay, [r, row])))
                    for v in range(vecs):
                        total = builder.fadd(builder.load(acc[k][v]), builder.fmul(d, xs[v]))
                        builder.store(total, acc[k][v])
            for k in range(rows):
                row = builder.add(m, const(k))
                for v in range(vecs):
                    builder.store(builder.load(acc[k][v]), vs.vector_at(tw, aw, [row, cols[v]]),
                                  align=1)
            return context.get_dummy_value()

        return types.void(dW, dY, X, types.intp, types.intp, types.boolean), codegen

    return tile


_tile_4x2 = _outer_tile(4, 2)
_tile_4x1 = _outer_tile(4, 1)
_tile_1x2 = _outer_tile(1, 2)
_tile_1x1 = _outer_tile(1, 1)


@jit
def outer_sum_exact(dW, dY, X):
    """dW (M, N) = sum over rows r of outer(dY[r], X[r]), dY: (R, M), X: (R, N), taken
    as min-char-rnn's `dW += np.dot(dy, x.T)` over reversed time: each element is
    ((0 + p[R-1]) + p[R-2]) + ..., every product rounded before it is added."""
    _outer_sum(dW, dY, X, False)


@jit
def outer_sum_exact_more(dW, dY, X):
    """outer_sum_exact's sum carried on from what dW holds: over the earlier rows of the
    same sum, it gives outer_sum_exact's bits over all of them."""
    _outer_sum(dW, dY, X, True)


@jit
def _outer_sum(dW, dY, X, more):
    M, N = dW.shape
    w = EXACT_BYTES // dW.itemsize  # lanes of a vector
    for m in range(0, M, 4):
        four = m + 4 <= M
        for mm in range(m, m + 1 if four else M):
            n = 0
            while n + 2 * w <= N:
                if four:
                    _tile_4x2(dW, dY, X, mm, n, more)
                else:
                    _tile_1x2(dW, dY, X, mm, n, more)
                n += 2 * w
            if n + w <= N:
                if four:
                    _tile_4x1(dW, dY, X, mm, n, more)
                else:
                    _tile_1x1(dW, dY, X, mm, n, more)
                n += w
            if n < N:
                _outer_rest(dW, dY, X, mm, mm + 4 if four else mm + 1, n, more)


@jit
def _outer_rest(dW, dY, X, m0, m1, n0, more):
    """_outer_sum for rows m0..m1-1 and the columns from n0 on, in scalars."""
    for m in range(m0, m1):
        row = dW[m]
        if not more:
            row[n0:] = 0
        for r in range(dY.shape[0] - 1, -1, -1):
            a = dY[r, m]
            x = X[r]
            for j in range(n0, row.size):
                row[j] += a * x[j]
