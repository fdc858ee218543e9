"""Matrix products over weights packed once into panels: out (B, R) = X (B, K) @ W.T,
or X @ W, for the batched steps of a recurrence (kernels.step) and for every product of
the mixed-precision path (kernels.products).

A general product (BLAS's gemm) packs its operands into cache-sized panels on every
call: at 32 streams that packing of a 4 MB Whh held OpenBLAS to 65-80% of this
machine's peak. Here the weights are packed once per layer and iteration (pack_weights)
into panels of C output columns, each laid out k by k, and a register tile keeps the
sums of STREAMS streams by C columns while k runs: per k it loads a panel row of VECS
vectors and broadcasts one input per stream. Each packed weight is read once per
STREAMS streams, in order; measured at 32 streams (1 thread, hidden 512, the LSTM's
shapes) it ran at 110 GFLOP/s in float32, 1.4-1.65x OpenBLAS, and 1.8-1.9x in float64.

In float32 and float64 the sums are fused multiply-adds, k in order. In bf16 (uint32
operands, kernels.bfloat) both W's panels and X hold bf16 pairs along k, and each step
of the sum is one vdpbf16ps: two products added to each float32 sum. Either way each
output element is summed by one thread over k in order (this is the fast paths'
arithmetic, never the exact one's), so the result does not depend on how many threads
share the panels.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .bfloat import BFloat, bf16, pair, words
from .jit import jit
from .simd import AVX512, VECTOR_BYTES, Lanes
from .team import after, close, first, items, span

# Panel width in vectors (of VECTOR_BYTES) and tile height in streams: the tile's
# STREAMS * VECS accumulators, a panel row of VECS vectors and a broadcast fit in the
# 32 vector registers of AVX-512 (16 otherwise).
VECS = 3
STREAMS = 8 if AVX512 else 4


def _product_tile(streams):
    """An intrinsic tile(out, P, X, p, b): out[b + i, c] = sum over k of X[b + i, k] *
    W[c, k] for the `streams` streams b.. and the columns c of panel p (VECS vectors of
    w lanes, W packed in P by pack_weights), summed with fused multiply-adds, k in
    order; or, with uint32 P and X (bf16 pairs, kernels.bfloat) into float32 out, with
    one dot product of pairs per k-pair. Columns past out's last are not stored; out's
    rows are contiguous."""

    @intrinsic
    def tile(typingctx, out, P, X, p, b):
        mixed = P.dtype == X.dtype == types.uint32 and out.dtype == types.float32
        if not (out.dtype == P.dtype == X.dtype or mixed):
            return None  # (a typing error: the arrays must share one dtype)

        def codegen(context, builder, sig, args):
            (to, tp, tx), (ao, ap, ax) = sig.args[:3], [
                context.make_array(t)(context, builder, a) for t, a in zip(sig.args[:3],
                                                                         args[:3])]
            p, b = args[3], args[4]
            vs = Lanes(context, builder, to.dtype, VECTOR_BYTES)
            lanes, vec, elt, const = vs.lanes, vs.vec, vs.elt, vs.const
            item = vs.item
            cols = VECS * lanes
            if mixed:  # operands: vectors of `lanes` words, each a pair of bf16
                words = Lanes(context, builder, tp.dtype, VECTOR_BYTES)
                pairs = ir.VectorType(BFloat(), 2 * lanes)
                dot = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec, pairs, pairs]),
                    f"llvm.x86.avx512bf16.dpbf16ps.{VECTOR_BYTES * 8}")

                def load_w(at):
                    return builder.bitcast(builder.load(words.vector_at(tp, ap, [at]),
                                                        align=1), pairs)

                def load_x(row, k):
                    return builder.bitcast(
                        words.broadcast(builder.load(item(tx, ax, [row, k]))), pairs)

                def madd(x, w, acc):
                    return builder.call(dot, [acc, x, w])
            else:
                fma = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec] * 3),
                    f"llvm.fma.v{lanes}f{vs.bits}")

                def load_w(at):
                    return builder.load(vs.vector_at(tp, ap, [at]), align=1)

                def load_x(row, k):
                    return vs.broadcast(builder.load(item(tx, ax, [row, k])))

                def madd(x, w, acc):
                    return builder.call(fma, [x, w, acc])
            K = builder.extract_value(ax.shape, 1)
            base = builder.mul(builder.mul(p, K), const(cols))
            rows = [builder.add(b, const(i)) for i in range(streams)]
            acc = [[cgutils.alloca_once_value(builder, vs.zero) for _ in range(VECS)]
                   for _ in range(streams)]
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                at = builder.add(base, builder.mul(k, const(cols)))
                ws = [load_w(builder.add(at, const(v * lanes))) for v in range(VECS)]
                for i in range(streams):
                    x = load_x(rows[i], k)
                    for v in range(VECS):
                        builder.store(madd(x, ws[v], builder.load(acc[i][v])), acc[i][v])
            R = builder.extract_value(ao.shape, 1)
            c0 = builder.mul(p, const(cols))
            whole = builder.icmp_signed("<=", builder.add(c0, const(cols)), R)
            with builder.if_else(whole, likely=True) as (then, otherwise):
                with then:
                    for i in range(streams):
                        for v in range(VECS):
                            c = builder.add(c0, const(v * lanes))
                            builder.store(builder.load(acc[i][v]),
                                          vs.vector_at(to, ao, [rows[i], c]), align=1)
                with otherwise:  # the last panel: the columns that exist, by a loop
                    # over a copy of the sums (short code: unrolled stores per lane made
                    # this tile the largest function to compile)
                    sums = cgutils.alloca_once(builder, vec, size=VECS)
                    scalars = builder.bitcast(sums, elt.as_pointer())
                    for i in range(streams):
                        for v in range(VECS):
                            builder.store(builder.load(acc[i][v]),
                                          builder.gep(sums, [const(v)]))
                        with cgutils.for_range(builder, builder.sub(R, c0)) as loop:
                            j = loop.index
                            builder.store(builder.load(builder.gep(scalars, [j])),
                                          item(to, ao, [rows[i], builder.add(c0, j)]))
            return context.get_dummy_value()

        return types.void(out, P, X, types.intp, types.intp), codegen

    return tile


_tile_full = _product_tile(STREAMS)
_tile_4 = _product_tile(4)
_tile_2 = _product_tile(2)
_tile_1 = _product_tile(1)


@jit
def panel_width(x):
    """Output columns to a panel, in x's dtype."""
    return VECS * VECTOR_BYTES // x.itemsize


@jit
def panel_count(R, x):
    """Panels for R output columns, in x's dtype."""
    C = panel_width(x)
    return (R + C - 1) // C


@jit
def packed_size(R, K, x):
    """Elements of a packed W with R output columns over K inputs, in x's dtype (K:
    words(K) for bf16 pairs)."""
    return panel_count(R, x) * panel_width(x) * K


def _mixed(P):
    return isinstance(P, types.Array) and P.dtype == types.uint32


def depth(P, K):
    """The rows of a panel for K inputs: K, or words(K) in bf16 pairs (uint32 P)."""


@overload(depth, inline="always")
def _depth(P, K):
    if _mixed(P):
        return lambda P, K: words(K)
    return lambda P, K: K


@jit
def _pack_rows(P, W, p0, p1):
    """Panels p0..p1-1 of W (R, K) for out = X @ W.T: panel p holds, for each k in turn,
    W[p*C:(p+1)*C, k] (C = panel_width), with 0 past W's last row."""
    R, K = W.shape
    C = panel_width(W)
    for p in range(p0, p1):
        panel = P[p * K * C:(p + 1) * K * C].reshape(K, C)
        for c in range(C):  # (a row of W at a time: one stream to read, not C)
            if p * C + c < R:
                src = W[p * C + c]
                for k in range(K):
                    panel[k, c] = src[k]
            else:
                for k in range(K):
                    panel[k, c] = 0


@jit
def _pack_cols(P, W, p0, p1):
    """Panels p0..p1-1 of W (K, R) for out = X @ W: panel p holds, for each k in turn,
    W[k, p*C:(p+1)*C], with 0 past W's last column."""
    K, R = W.shape
    C = panel_width(W)
    for p in range(p0, p1):
        panel = P[p * K * C:(p + 1) * K * C].reshape(K, C)
        n = min(C, R - p * C)
        for k in range(K):
            src, dst = W[k, p * C:p * C + n], panel[k]
            for c in range(n):
                dst[c] = src[c]
            for c in range(n, C):
                dst[c] = 0


@jit
def _pack16_rows(P, W, p0, p1):
    """_pack_rows in bf16 pairs (P: uint32): panel p holds, for each pair q in turn,
    pair(W[c, 2q], W[c, 2q+1]) for its columns c."""
    R, K = W.shape
    C = panel_width(P)
    Q = words(K)
    for p in range(p0, p1):
        panel = P[p * Q * C:(p + 1) * Q * C].reshape(Q, C)
        for c in range(C):
            if p * C + c < R:
                src = W[p * C + c]
                for q in range(K // 2):
                    panel[q, c] = pair(src[2 * q], src[2 * q + 1])
                if K % 2:
                    panel[Q - 1, c] = bf16(src[K - 1])
            else:
                for q in range(Q):
                    panel[q, c] = 0


@jit
def _pack16_cols(P, W, p0, p1):
    """_pack_cols in bf16 pairs (P: uint32): panel p holds, for each pair q in turn,
    pair(W[2q, c], W[2q+1, c]) for its columns c."""
    K, R = W.shape
    C = panel_width(P)
    Q = words(K)
    for p in range(p0, p1):
        panel = P[p * Q * C:(p + 1) * Q * C].reshape(Q, C)
        n = min(C, R - p * C)
        for q in range(Q):
            lo, dst = W[2 * q, p * C:p * C + n], panel[q]
            if 2 * q + 1 < K:
                hi = W[2 * q + 1, p * C:p * C + n]
                for c in range(n):
                    dst[c] = pair(lo[c], hi[c])
            else:
                for c in range(n):
                    dst[c] = bf16(lo[c])
            for c in range(n, C):
                dst[c] = 0


@jit
def pack_weights(P, W, transposed, team):
    """W packed into P (>= packed_size elements) for packed_product, the threads taking
    slices of the panels: W (R, K) for out = X @ W.T, or, transposed, W (K, R) for
    out = X @ W; in bf16 pairs when P is uint32. Returns how many elements of P the
    panels take."""
    R = W.shape[1] if transposed else W.shape[0]
    K = W.size // R
    panels = panel_count(R, P)
    n = items(team, panels, panels, 1)
    i = first(team, n)
    while i >= 0:
        p0, p1 = span(i, n, panels, 1)
        _pack(P, W, transposed, p0, p1)
        i = after(team, n, i)
    close(team, n)
    return packed_size(R, depth(P, K), P)


def _pack(P, W, transposed, p0, p1):
    """Panels p0..p1-1 of pack_weights."""


@overload(_pack)
def _pack_impl(P, W, transposed, p0, p1):
    rows, cols = (_pack16_rows, _pack16_cols) if _mixed(P) else (_pack_rows, _pack_cols)

    def impl(P, W, transposed, p0, p1):
        if transposed:
            cols(P, W, p0, p1)
        else:
            rows(P, W, p0, p1)
    return impl


@jit
def packed_product(out, X, P, team, most):
    """out (B, R) = X (B, K) @ W.T (or X @ W), W packed in P by pack_weights; the
    threads (at most `most`) take slices of the panels. out's rows must be contiguous
    (any row stride)."""
    R = out.shape[1]
    panels = panel_count(R, P)
    n = items(team, min(most, panels), panels, 1)
    i = first(team, n)
    while i >= 0:
        p0, p1 = span(i, n, panels, 1)
        _panels(out, P, X, p0, p1)
        i = after(team, n, i)
    close(team, n)


@jit
def _panels(out, P, X, p0, p1):
    """packed_product for panels p0..p1-1: every stream, STREAMS at a time, then the
    rest in fours, twos and ones."""
    B = X.shape[0]
    for p in range(p0, p1):
        b = 0
        while b + STREAMS <= B:
            _tile_full(out, P, X, p, b)
            b += STREAMS
        if b + 4 <= B:
            _tile_4(out, P, X, p, b)
            b += 4
        if b + 2 <= B:
            _tile_2(out, P, X, p, b)
            b += 2
        if b < B:
            _tile_1(out, P, X, p, b)



def mixed_sizes(V, H, G, B, T, backward):
    """Words of a kernels.records.Mixed's a and w for a family of G gates, V
    characters, hidden H, B streams of T steps: room for the largest operand of any of
    its products (the states or gradients of all steps, the weights, and with backward
    the gradients and states of all steps as operands of the weight gradients)."""
    widest, TB = max(V, H, G * H), T * B
    C = VECS * VECTOR_BYTES // 4
    panels = (widest + C - 1) // C
    a, w = TB * words_of(widest), panels * C * words_of(widest)
    if backward:
        a, w = max(a, words_of(TB) * widest), max(w, panels * C * words_of(TB))
    return a, w


def words_of(K):
    """bfloat.words in Python."""
    return (K + 1) // 2
