"""The output layer shared by every family: logits y = Why h_top + by, softmax and
cross-entropy, and their gradients."""

from .common import matmul_rows, matmul_rows_t, outer_sum, row_sum_rev, softmax_xent
from .jit import jit


@jit
def output_forward(ys, top, T, targets, scale, exact, Why, by):
    """Logits, then softmax gradients in place, for T steps; returns the summed loss.
    ys: (T, B, V) out; top: (T+1, B, H) the top layer's states; targets: (T, B)."""
    _, B, V = ys.shape
    H = top.shape[2]
    y2 = ys.reshape(-1, V)[:T * B]
    matmul_rows(y2, top.reshape(-1, H)[B:(T + 1) * B], Why, exact)
    loss = 0.0
    for t in range(T):
        for b in range(B):
            y = ys[t, b]
            for v in range(V):
                y[v] += by[v]
            loss += softmax_xent(y, targets[t, b], scale)
    return loss


@jit
def output_backward(dWhy, dby, dh, dys, top, T, exact, Why):
    """dWhy (V, H), dby (V,) overwritten; dh (T, B, H) receives Why^T dy per step."""
    _, B, H = dh.shape
    dy2 = dys.reshape(-1, dys.shape[2])[:T * B]
    matmul_rows_t(dh.reshape(-1, H)[:T * B], dy2, Why, exact)
    outer_sum(dWhy, dy2, top.reshape(-1, H)[B:(T + 1) * B], exact)
    row_sum_rev(dby, dy2)
