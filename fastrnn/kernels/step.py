"""One step's product of a recurrence with its weights: out (B, R) = X (B, K) @ W.T in
the forward pass, X @ W in BPTT.

On the Exact and OneStream paths (kernels.records) this is a gemv per stream, as in
min-char-rnn. On the Batched path it is a product over weights packed once per layer
and iteration (kernels.panels), and on the Mixed path the same in bf16 pairs: each
step's states (or gradients) are rounded to bf16 pairs first, by slices of streams.
"""
from numba import types
from numba.extending import overload

from .dot import gemv_cols, gemv_rows
from .jit import returns_view
from .panels import pack_weights, packed_product
from .products import SMALL, add_rows, is_exact, is_mixed, matmul_rows_t, pairs_of_rows
from .records import Batched
from .team import after, close, first, items, span


def _batched(path):
    return isinstance(path, types.NamedTuple) and path.instance_class is Batched


def step_weights(P, W, transposed, path, team):
    """W prepared for the steps of one layer and iteration: on the Batched path packed
    into P (>= packed_size elements) for step_matmul (W: (R, K)) or, transposed,
    step_matmul_t (W: (K, R)); on the Mixed path packed in bf16 pairs into path.w; an
    empty part of P on the others, whose steps take gemvs."""


@returns_view(step_weights)
def _step_weights(P, W, transposed, path, team):
    if is_mixed(path):
        return lambda P, W, transposed, path, team: path.w[:pack_weights(path.w, W,
                                                                          transposed, team)]
    if _batched(path):
        return lambda P, W, transposed, path, team: P[:pack_weights(P, W, transposed,
                                                                     team)]
    return lambda P, W, transposed, path, team: P[:0]


def step_matmul(out, X, W, Wp, path, team):
    """out (B, R) = X (B, K) @ W.T, W: (R, K), for one step of a recurrence; Wp:
    step_weights(..., W, False, ...). Batched (or Mixed): packed_product, the threads
    taking slices of the panels. Otherwise one gemv per row of X, each thread's on its own
    rows of W, which leaves every element's arithmetic as it is (OpenBLAS's gemv treats
    rows independently, in fours)."""


@overload(step_matmul)
def _step_matmul(out, X, W, Wp, path, team):
    if is_mixed(path):
        def mixed(out, X, W, Wp, path, team):
            B, K = X.shape
            packed_product(out, pairs_of_rows(path.a, X, team), Wp, team,
                           B * W.shape[0] * K // SMALL)
        return mixed
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
    if is_mixed(path):
        def mixed(out, X, W, Wp, part, path, team):
            B, K = X.shape
            packed_product(out, pairs_of_rows(path.a, X, team), Wp, team,
                           B * K * W.shape[1] // SMALL)
        return mixed
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
