"""The input side of a layer: the one-hot product of layer 0 (a row gather, and in BPTT a
scatter-add of rows by character), the product with the layer below's states for the
layers above it, and their gradients."""
from numba.extending import overload

from .dropout import mask_gradient
from .jit import jit
from .products import SMALL, add_rows, is_exact, matmul_rows, matmul_rows_t, outer_sum
from .products import row_sum_rev
from .team import after, close, first, items, span


@jit
def input_projection(xa, x, T, l, inputs, P, path, team):
    """xa (T, B, G*H) = Wxh x + bxh for every step: a row gather for layer 0 (one-hot
    input), one matrix product of the layer input rows otherwise (inputs: (T*B, H)), in
    the arithmetic of path (products.all_steps)."""
    _, B, GH = xa.shape
    if l > 0:
        matmul_rows(xa.reshape(-1, GH)[:T * B], inputs, P.Wxh[l - 1], path, team)
    n = items(team, T, T * B * GH, SMALL)
    i = first(team, n)
    while i >= 0:
        t0, t1 = span(i, n, T, 1)
        _add_inputs(xa, x, l, P.Wemb, P.bxh[l], t0, t1)
        i = after(team, n, i)
    close(team, n)


@jit
def _add_inputs(xa, x, l, Wemb, bias, t0, t1):
    """Steps t0..t1-1 of input_projection after its matrix product."""
    for t in range(t0, t1):
        for b in range(xa.shape[1]):
            row = xa[t, b]
            if l == 0:
                e = Wemb[x[t, b]]
                for j in range(row.size):
                    row[j] = e[j] + bias[j]
            else:
                for j in range(row.size):
                    row[j] += bias[j]


def embedding_backward(dWemb, dbias, d, x, T, path, team):
    """dWemb (V, G*H) = the rows of d (T, B, G*H) added into the rows of their input
    characters x (T, B), last step first: the gradient of the one-hot product; and
    dbias (G*H,) = the sum of those rows. Exact: dbias summed as row_sum_rev sums (min-
    char-rnn's order) in the same pass, each thread taking a slice of the columns.
    Otherwise each thread takes the characters v with v % items its own (split by
    columns, two threads were slower than one here: measured), and dbias is the sum of
    dWemb's rows. Either way no element's sum depends on the thread count."""


@overload(embedding_backward)
def _embedding_backward_impl(dWemb, dbias, d, x, T, path, team):
    return _embedding_exact if is_exact(path) else _embedding_fast


def _embedding_exact(dWemb, dbias, d, x, T, path, team):
    GH = dWemb.shape[1]
    n = items(team, GH // 16, T * x.shape[1] * GH, SMALL)
    i = first(team, n)
    while i >= 0:
        j0, j1 = span(i, n, GH, 16)
        embedding_columns(dWemb, dbias, d, x, T, j0, j1)
        i = after(team, n, i)
    close(team, n)


def _embedding_fast(dWemb, dbias, d, x, T, path, team):
    V, GH = dWemb.shape
    n = items(team, V, T * x.shape[1] * GH, SMALL)
    i = first(team, n)
    while i >= 0:
        _embedding_rows(dWemb, d, x, T, i, n)
        i = after(team, n, i)
    close(team, n)
    i = first(team, 1)
    if i >= 0:
        add_rows(dbias, dWemb)
        after(team, 1, i)
    close(team, 1)


@jit
def _embedding_rows(dWemb, d, x, T, ch, chunks):
    """The rows v of embedding_backward's dWemb with v % chunks == ch."""
    for v in range(ch, dWemb.shape[0], chunks):
        dWemb[v] = 0
    for t in range(T - 1, -1, -1):
        for b in range(x.shape[1] - 1, -1, -1):
            v = x[t, b]
            if v % chunks == ch:
                row, src = dWemb[v], d[t, b]
                for j in range(row.size):
                    row[j] += src[j]


@jit
def embedding_columns(dWemb, dbias, d, x, T, j0, j1):
    """Columns j0..j1-1 of the exact embedding_backward."""
    dWemb[:, j0:j1] = 0
    dbias[j0:j1] = 0
    for t in range(T - 1, -1, -1):
        for b in range(x.shape[1] - 1, -1, -1):
            row, src = dWemb[x[t, b]], d[t, b]
            for j in range(j0, j1):
                row[j] += src[j]
            for j in range(j0, j1):
                dbias[j] += src[j]


@jit
def input_backward(dWxh, dbxh, dx, da, T, inputs, drop, masks, Wxh, part, path, team):
    """Gradients of input_projection of a layer l >= 1 from da (T, B, G*H): dWxh, dbxh;
    and dx (T, B, H), the gradient of the layer below's states (through its dropout
    mask: masks is that layer's, (T, B, H)); products in path's arithmetic."""
    _, B, GH = da.shape
    rows = da.reshape(-1, GH)[:T * B]
    row_sum_rev(dbxh, rows, team)
    outer_sum(dWxh, rows, inputs, part, path, team)
    drows = dx.reshape(-1, dx.shape[2])[:T * B]
    matmul_rows_t(drows, rows, Wxh, path, team)
    mask_gradient(drows, masks, drop, team)
