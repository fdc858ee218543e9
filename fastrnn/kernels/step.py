"""One step's product of a recurrence with its weights: out (B, R) = X (B, K) @ W.T in
the forward pass, X @ W in BPTT.

On the Exact and OneStream paths (kernels.records) this is a gemv per stream, as in
min-char-rnn. On the Batched path it is a matrix product, and a general one (BLAS's gemm) packs its
operands into cache-sized panels on every call: at 32 streams that packing of a 4 MB
Whh held OpenBLAS to 65-80% of this machine's peak. Here the weights are packed once
per layer and iteration (pack_weights) into panels of C output columns, each laid out
k by k, and a register tile keeps the sums of STREAMS streams by C columns while k
runs: per k it loads a panel row of VECS vectors and broadcasts one input per stream.
Each packed weight is read once per STREAMS streams, in order; measured at 32 streams
(1 thread, hidden 512, the LSTM's shapes) it ran at 110 GFLOP/s in float32, 1.4-1.65x
OpenBLAS, and 1.8-1.9x in float64.

Each output element is summed by one thread over k in order, with fused multiply-adds
(this is the fast path's arithmetic, never the exact one's), so the result does not
depend on how many threads share the panels.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .dot import gemv_cols, gemv_rows
from .jit import jit, returns_view
from .products import SMALL, add_rows, is_exact, matmul_rows_t
from .records import Batched
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
    order. Columns past out's last are not stored; out's rows are contiguous."""

    @intrinsic
    def tile(typingctx, out, P, X, p, b):
        if not out.dtype == P.dtype == X.dtype:
            return None  # (a typing error: the arrays must share one dtype)

        def codegen(context, builder, sig, args):
            (to, tp, tx), (ao, ap, ax) = sig.args[:3], [
                context.make_array(t)(context, builder, a) for t, a in zip(sig.args[:3],
                                                                         args[:3])]
            p, b = args[3], args[4]
            vs = Lanes(context, builder, tp.dtype, VECTOR_BYTES)
            lanes, vec, elt, const = vs.lanes, vs.vec, vs.elt, vs.const
            item, vector_at = vs.item, vs.vector_at
            cols = VECS * lanes
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec] * 3),
                f"llvm.fma.v{lanes}f{vs.bits}")
            K = builder.extract_value(ax.shape, 1)
            base = builder.mul(builder.mul(p, K), const(cols))
            rows = [builder.add(b, const(i)) for i in range(streams)]
            acc = [[cgutils.alloca_once_value(builder, vs.zero) for _ in range(VECS)]
                   for _ in range(streams)]
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                at = builder.add(base, builder.mul(k, const(cols)))
                ws = [builder.load(vector_at(tp, ap, [builder.add(at, const(v * lanes))]),
                                   align=1) for v in range(VECS)]
                for i in range(streams):
                    x = vs.broadcast(builder.load(item(tx, ax, [rows[i], k])))
                    for v in range(VECS):
                        builder.store(builder.call(fma, [x, ws[v], builder.load(acc[i][v])]),
                                      acc[i][v])
            R = builder.extract_value(ao.shape, 1)
            c0 = builder.mul(p, const(cols))
            whole = builder.icmp_signed("<=", builder.add(c0, const(cols)), R)
            with builder.if_else(whole, likely=True) as (then, otherwise):
                with then:
                    for i in range(streams):
                        for v in range(VECS):
                            c = builder.add(c0, const(v * lanes))
                            builder.store(builder.load(acc[i][v]),
                                          vector_at(to, ao, [rows[i], c]), align=1)
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
    """Elements of a packed W with R output columns over K inputs, in x's dtype."""
    return panel_count(R, x) * panel_width(x) * K


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
def pack_weights(P, W, transposed, team):
    """W packed into P (>= packed_size elements) for packed_product, the threads taking
    slices of the panels: W (R, K) for out = X @ W.T, or, transposed, W (K, R) for
    out = X @ W. Returns how many elements of P the panels take."""
    R = W.shape[1] if transposed else W.shape[0]
    K = W.size // R
    panels = panel_count(R, W)
    n = items(team, panels, panels, 1)
    i = first(team, n)
    while i >= 0:
        p0, p1 = span(i, n, panels, 1)
        _pack(P, W, transposed, p0, p1)
        i = after(team, n, i)
    close(team, n)
    return packed_size(R, K, W)


@jit
def _pack(P, W, transposed, p0, p1):
    if transposed:
        _pack_cols(P, W, p0, p1)
    else:
        _pack_rows(P, W, p0, p1)


@jit
def packed_product(out, X, P, team, most):
    """out (B, R) = X (B, K) @ W.T (or X @ W), W packed in P by pack_weights; the
    threads (at most `most`) take slices of the panels. out's rows must be contiguous
    (any row stride)."""
    R = out.shape[1]
    panels = panel_count(R, X)
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


def _batched(path):
    return isinstance(path, types.NamedTuple) and path.instance_class is Batched


def step_weights(P, W, transposed, path, team):
    """W prepared for the steps of one layer and iteration: on the Batched path packed
    into P (>= packed_size elements) for step_matmul (W: (R, K)) or, transposed,
    step_matmul_t (W: (K, R)); an empty part of P on the others, whose steps take
    gemvs."""


@returns_view(step_weights)
def _step_weights(P, W, transposed, path, team):
    if _batched(path):
        return lambda P, W, transposed, path, team: P[:pack_weights(P, W, transposed,
                                                                     team)]
    return lambda P, W, transposed, path, team: P[:0]


def step_matmul(out, X, W, Wp, path, team):
    """out (B, R) = X (B, K) @ W.T, W: (R, K), for one step of a recurrence; Wp:
    step_weights(..., W, False, ...). Batched: packed_product, the threads taking
    slices of the panels. Otherwise one gemv per row of X, each thread's on its own
    rows of W, which leaves every element's arithmetic as it is (OpenBLAS's gemv treats
    rows independently, in fours)."""


@overload(step_matmul)
def _step_matmul(out, X, W, Wp, path, team):
    if _batched(path):
        def batched(out, X, W, Wp, path, team):
            B, K = X.shape
            packed_product(out, X, Wp, team, B * W.shape[0] * K // SMALL)
        return batched

    def gemv(out, X, W, Wp, path, team):
        B, K = X.shape
        R = W.shape[0]
        # (a one-row matrix product is slower than a gemv, so slices of 16 rows or more)
        n = items(team, R // 16, B * R * K, SMALL)
        i = first(team, n)
        while i >= 0:
            r0, r1 = span(i, n, R, 16)
            for r in range(B):
                gemv_rows(out, r, W, r0, r1, X, r)  # np.dot(W[r0:r1], X[r], out[r, r0:r1])
            i = after(team, n, i)
        close(team, n)
    return gemv


def step_matmul_t(out, X, W, Wp, part, path, team):
    """out (B, R) = X (B, K) @ W, W: (K, R), for one step of BPTT; Wp: step_weights(...,
    W, True, ...). Batched: packed_product. Exact: one gemv per row, each thread's on
    its own rows of out, as matmul_rows_t. One stream: a gemv, each item summing a slice
    of the K products into part (W, >= R), added at the end (so the rounding depends on
    the split)."""


@overload(step_matmul_t)
def _step_matmul_t(out, X, W, Wp, part, path, team):
    if _batched(path):
        def batched(out, X, W, Wp, part, path, team):
            B, K = X.shape
            packed_product(out, X, Wp, team, B * K * W.shape[1] // SMALL)
        return batched
    if is_exact(path):
        def exact(out, X, W, Wp, part, path, team):
            matmul_rows_t(out, X, W, path, team)
        return exact

    def gemv(out, X, W, Wp, part, path, team):
        K, R = W.shape
        n = items(team, K // 16, K * R, SMALL)
        i = first(team, n)
        while i >= 0:
            if n == 1:
                gemv_cols(out, 0, W, 0, K, X, 0)  # np.dot(W.T, X[0], out[0])
            else:
                k0, k1 = span(i, n, K, 16)
                # np.dot(W[k0:k1].T, X[0, k0:k1], part[i, :R])
                gemv_cols(part, i, W, k0, k1, X, 0)
            i = after(team, n, i)
        close(team, n)
        if n > 1:
            i = first(team, 1)
            if i >= 0:
                add_rows(out[0], part[:n, :R])
                after(team, 1, i)
            close(team, 1)
    return gemv
