"""Register-blocked kernels written as LLVM vector code, for sums whose order must stay
min-char-rnn's.

LLVM does not vectorise a sum that runs over the outer loop of a tile (it vectorises
innermost loops only, and its straight-line vectoriser leaves 32 scalar running sums
alone), so the exact weight-gradient sum would otherwise either read and write dW once
per step or run on scalars. Here a tile of dW stays in vector registers while the
steps go by, and every lane does what the scalar code does: the product rounded, then
added (fmul then fadd, never a fused multiply-add), the last step first.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit

VECTOR_BYTES = 32  # AVX2's ymm registers; LLVM splits them where registers are narrower


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
            elt = context.get_value_type(tw.dtype)
            lanes = VECTOR_BYTES // context.get_abi_sizeof(elt)
            vec = ir.VectorType(elt, lanes)
            intp = context.get_value_type(types.intp)
            i32 = ir.IntType(32)
            undef = ir.Constant(vec, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

            def pointer(t, a, i, j):
                p = cgutils.get_item_pointer(context, builder, t, a, [i, j])
                return builder.bitcast(p, vec.as_pointer())

            zero = ir.Constant(vec, [ir.Constant(elt, 0.0)] * lanes)
            cols = [builder.add(n, ir.Constant(intp, v * lanes)) for v in range(vecs)]
            acc = []
            for k in range(rows):
                row = builder.add(m, ir.Constant(intp, k))
                held = [builder.load(pointer(tw, aw, row, c), align=1) for c in cols]
                acc.append([cgutils.alloca_once_value(builder,
                                                      builder.select(args[5], h, zero))
                            for h in held])
            R = builder.extract_value(ay.shape, 0)
            last = builder.sub(R, ir.Constant(intp, 1))
            with cgutils.for_range(builder, R) as loop:
                r = builder.sub(last, loop.index)
                xs = [builder.load(pointer(tx, ax, r, c), align=1) for c in cols]
                for k in range(rows):
                    row = builder.add(m, ir.Constant(intp, k))
                    d = builder.load(cgutils.get_item_pointer(context, builder, ty, ay,
                                                              [r, row]))
                    d = builder.insert_element(undef, d, ir.Constant(i32, 0))
                    d = builder.shuffle_vector(d, undef, splat)
                    for v in range(vecs):
                        total = builder.fadd(builder.load(acc[k][v]), builder.fmul(d, xs[v]))
                        builder.store(total, acc[k][v])
            for k in range(rows):
                row = builder.add(m, ir.Constant(intp, k))
                for v in range(vecs):
                    builder.store(builder.load(acc[k][v]), pointer(tw, aw, row, cols[v]),
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
    w = VECTOR_BYTES // dW.itemsize  # lanes of a vector
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
