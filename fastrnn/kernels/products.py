"""Matrix products over all steps and sums over them, each in the path's arithmetic,
split between a team's threads.

Exactness: in float64 fastrnn reproduces min-char-rnn bit for bit, because its training
dynamics turn a difference in the last bit into an O(1) difference within a few hundred
iterations. So on the Exact path these do numpy's arithmetic in numpy's order:
matrix-vector products through the same BLAS gemv, sums over time taken last step first
with products rounded before they are added (no FMA). Their splits between threads
leave every element's arithmetic as it is with one thread. The other paths take matrix
products, whose rounding may depend on the split.

On the Mixed path (train.precision: bf16) every product rounds its operands to bf16
pairs (kernels.bfloat) and runs over packed panels (kernels.panels) with float32 sums.

Which arithmetic is chosen by the type of `path` (kernels.records), when Numba compiles
the caller, so a configuration compiles only its own.
"""
from numba import types
from numba.extending import overload

from .bfloat import cols_to_pairs, rows_to_pairs, words
from .dot import gemm, gemv_cols, gemv_rows
from .jit import jit, returns_view
from .panels import pack_weights, packed_product
from .records import Exact, Mixed, OneStream
from .simd import outer_sum_exact
from .team import after, close, first, items, span

# Work under this many multiply-adds stays on one thread (a thread's share would cost
# less than handing it over).
SMALL = 65536
# The same for roundings to bf16 (each costs about what 30-50 multiply-adds of a
# product do).
CONVERSIONS = SMALL // 32


def is_exact(path):
    """Whether the Numba type of a path record is Exact's."""
    return isinstance(path, types.NamedTuple) and path.instance_class is Exact


def is_mixed(path):
    """Whether the Numba type of a path record is Mixed's (bf16 operands)."""
    return isinstance(path, types.BaseNamedTuple) and path.instance_class is Mixed


def all_steps(path):
    """The path of a product over all steps of a layer: matrix products (OneStream's),
    or Mixed's in bf16."""


@returns_view(all_steps)
def _all_steps(path):
    if is_mixed(path):
        return lambda path: path
    return lambda path: OneStream()


def pairs_of_rows(a, X, team):
    """X (R, K) float32 in bf16 pairs along its rows, in a (as a (R, words(K)) array,
    which is returned), the threads taking slices of the rows."""


@returns_view(pairs_of_rows)
def _pairs_of_rows(a, X, team):
    def impl(a, X, team):
        R, K = X.shape
        A = a[:R * words(K)].reshape(R, words(K))
        n = items(team, R, X.size, CONVERSIONS)
        i = first(team, n)
        while i >= 0:
            r0, r1 = span(i, n, R, 1)
            rows_to_pairs(A, X, r0, r1)
            i = after(team, n, i)
        close(team, n)
        return A
    return impl


def pairs_of_cols(a, X, team):
    """X (R, M) float32 in bf16 pairs along its columns: a as a (words(R), M) array,
    returned transposed ((M, words(R)), the left operand of X.T @ ...), the threads
    taking slices of the pairs."""


@returns_view(pairs_of_cols)
def _pairs_of_cols(a, X, team):
    def impl(a, X, team):
        R, M = X.shape
        Q = words(R)
        A = a[:Q * M].reshape(Q, M)
        n = items(team, Q, X.size, CONVERSIONS)
        i = first(team, n)
        while i >= 0:
            q0, q1 = span(i, n, Q, 1)
            cols_to_pairs(A, X, q0, q1)
            i = after(team, n, i)
        close(team, n)
        return A.T
    return impl


@jit
def mixed_product(out, A, W, transposed, path, team):
    """out (R, M) = A @ W.T (W: (M, K)), or, transposed, A @ W (W: (K, M)): A in bf16
    pairs, W packed in bf16 pairs into path.w, the sums float32, the threads taking
    slices of the panels."""
    used = pack_weights(path.w, W, transposed, team)
    packed_product(out, A, path.w[:used], team, out.size * A.shape[1] // (SMALL // 2))


def matmul_rows(out, X, W, path, team):
    """out (R, M) = X (R, N) @ W.T, W: (M, N), the threads taking slices of the rows.
    Exact: one gemv per row, as min-char-rnn's np.dot(W, x); otherwise matrix
    products (a gemv still when R is 1)."""


def matmul_rows_t(out, X, W, path, team):
    """out (R, N) = X (R, M) @ W, W: (M, N): min-char-rnn's np.dot(W.T, dy) per row."""


@overload(matmul_rows)
def _matmul_rows(out, X, W, path, team):
    if is_mixed(path):
        return lambda out, X, W, path, team: mixed_product(
            out, pairs_of_rows(path.a, X, team), W, False, path, team)
    return _split_rows(_gemv_rows if is_exact(path) else _gemm_rows)


@overload(matmul_rows_t)
def _matmul_rows_t(out, X, W, path, team):
    if is_mixed(path):
        return lambda out, X, W, path, team: mixed_product(
            out, pairs_of_rows(path.a, X, team), W, True, path, team)
    return _split_rows(_gemv_rows_t if is_exact(path) else _gemm_rows_t)


def _split_rows(product):
    """matmul_rows (or _t) with `product` doing each thread's slice of the rows."""
    def impl(out, X, W, path, team):
        R = X.shape[0]
        n = items(team, R, X.size * out.shape[1], SMALL)
        i = first(team, n)
        while i >= 0:
            r0, r1 = span(i, n, R, 1)
            product(out[r0:r1], X[r0:r1], W)
            i = after(team, n, i)
        close(team, n)
    return impl


@jit
def _gemv_rows(out, X, W):
    for r in range(X.shape[0]):
        gemv_rows(out, r, W, 0, W.shape[0], X, r)  # np.dot(W, X[r], out[r])


@jit
def _gemv_rows_t(out, X, W):
    for r in range(X.shape[0]):
        gemv_cols(out, r, W, 0, W.shape[0], X, r)  # np.dot(W.T, X[r], out[r])


@jit
def _gemm_rows(out, X, W):
    if X.shape[0] == 1:
        gemv_rows(out, 0, W, 0, W.shape[0], X, 0)  # np.dot(W, X[0], out[0])
    else:
        gemm(out, X, W.T)  # np.dot(X, W.T, out)


@jit
def _gemm_rows_t(out, X, W):
    if X.shape[0] == 1:
        gemv_cols(out, 0, W, 0, W.shape[0], X, 0)  # np.dot(W.T, X[0], out[0])
    else:
        gemm(out, X, W)  # np.dot(X, W, out)


def outer_sum(dW, dY, X, part, path, team):
    """dW (M, N) = sum over rows r of outer(dY[r], X[r]); dY: (R, M), X: (R, N).

    Exact: min-char-rnn's `dW += np.dot(dy, x.T)` over reversed time, each product
    rounded before it is added (kernels.simd), each thread taking a slice of dW's rows.
    Mixed: dY.T @ X over bf16 pairs, the threads taking slices of dW's columns.
    Otherwise one matrix product per item over its slice of the R rows into part
    (W, >= M, N), the items' sums added at the end, by slices of rows."""


@overload(outer_sum)
def _outer_sum(dW, dY, X, part, path, team):
    if is_mixed(path):
        return lambda dW, dY, X, part, path, team: mixed_product(
            dW, pairs_of_cols(path.a, dY, team), X, True, path, team)
    return _outer_sum_exact if is_exact(path) else _outer_sum_fast


def _outer_sum_exact(dW, dY, X, part, path, team):
    M = dW.shape[0]
    n = items(team, M // 4, dY.shape[0] * dW.size, SMALL)
    i = first(team, n)
    while i >= 0:
        m0, m1 = span(i, n, M, 4)
        outer_sum_exact(dW[m0:m1], dY[:, m0:m1], X)
        i = after(team, n, i)
    close(team, n)


def _outer_sum_fast(dW, dY, X, part, path, team):
    M = dW.shape[0]
    R = dY.shape[0]
    n = items(team, R, R * dW.size, SMALL)
    if n == 1:
        i = first(team, 1)
        if i >= 0:
            gemm(dW, dY.T, X)  # np.dot(dY.T, X, dW)
            after(team, 1, i)
        close(team, 1)
        return
    i = first(team, n)
    while i >= 0:
        r0, r1 = span(i, n, R, 1)
        gemm(part[i, :M], dY[r0:r1].T, X[r0:r1])  # np.dot(dY[r0:r1].T, X[r0:r1], ...)
        i = after(team, n, i)
    close(team, n)
    i = first(team, n)  # the items' sums added, each item a slice of rows
    while i >= 0:
        m0, m1 = span(i, n, M, 1)
        add_parts(dW[m0:m1], part[:n, m0:m1])
        i = after(team, n, i)
    close(team, n)


@jit
def add_parts(out, parts):
    """out (M, N) = parts[0] + parts[1] + ..., added in that order; parts: (n, M, N)."""
    M, N = out.shape
    for m in range(M):
        row = out[m]
        for j in range(N):
            row[j] = parts[0, m, j]
        for i in range(1, parts.shape[0]):
            src = parts[i, m]
            for j in range(N):
                row[j] += src[j]


@jit
def add_rows(out, rows):
    """out (N,) = rows[0] + rows[1] + ..., added in that order; rows: (n, N)."""
    for j in range(out.size):
        out[j] = rows[0, j]
    for i in range(1, rows.shape[0]):
        for j in range(out.size):
            out[j] += rows[i, j]


@jit
def row_sum_rev(out, A, team):
    """out (N,) = sum of the rows of A (R, N), last row first; each thread takes a slice
    of the columns."""
    R, N = A.shape
    n = items(team, N // 16, R * N, SMALL)
    i = first(team, n)
    while i >= 0:
        n0, n1 = span(i, n, N, 16)
        row_sum_rev_slice(out[n0:n1], A[:, n0:n1])
        i = after(team, n, i)
    close(team, n)


@jit
def row_sum_rev_slice(out, A):
    """row_sum_rev on one thread."""
    out[:] = 0
    for r in range(A.shape[0] - 1, -1, -1):
        for n in range(A.shape[1]):
            out[n] += A[r, n]


@jit
def copy_vector(out, a, team):
    """out (N,) = a as one item."""
    i = first(team, 1)
    if i >= 0:
        for j in range(a.size):
            out[j] = a[j]
        after(team, 1, i)
    close(team, 1)
