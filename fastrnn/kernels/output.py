"""The output layer shared by every family: logits y = Why h_top + by, softmax and
cross-entropy, and their gradients."""
from numba import prange

from .common import (SMALL, matmul_rows, matmul_rows_t, outer_sum, row_sum_rev,
                     softmax_xent, span)
from .jit import jit, pjit_inline


@pjit_inline
def output_forward(ys, top, T, targets, scale, exact, Why, by, chunks):
    """Logits, then softmax gradients in place, for T steps; returns the summed loss.
    ys: (T, B, V) out; top: (T+1, B, H) the top layer's states; targets: (T, B).
    The loss is summed in step order (with more than one thread, per thread first)."""
    _, B, V = ys.shape
    H = top.shape[2]
    y2 = ys.reshape(-1, V)[:T * B]
    matmul_rows(y2, top.reshape(-1, H)[B:(T + 1) * B], Why, exact, chunks)
    chunks = max(1, min(chunks, T, T * B * V // SMALL))
    if chunks == 1:
        return _softmax_steps(ys, targets, scale, by, 0, T)
    loss = 0.0
    for ch in prange(chunks):
        t0, t1 = span(ch, chunks, T, 1)
        loss += _softmax_steps(ys, targets, scale, by, t0, t1)
    return loss


@jit
def _softmax_steps(ys, targets, scale, by, t0, t1):
    """Steps t0..t1-1 of output_forward after the logits' product; their summed loss."""
    loss = 0.0
    for t in range(t0, t1):
        for b in range(ys.shape[1]):
            y = ys[t, b]
            for v in range(y.size):
                y[v] += by[v]
            loss += softmax_xent(y, targets[t, b], scale)
    return loss


@pjit_inline
def output_backward(dWhy, dby, dh, dys, top, T, exact, Why, part, chunks):
    """dWhy (V, H), dby (V,) overwritten; dh (T, B, H) receives Why^T dy per step."""
    _, B, H = dh.shape
    dy2 = dys.reshape(-1, dys.shape[2])[:T * B]
    matmul_rows_t(dh.reshape(-1, H)[:T * B], dy2, Why, exact, chunks)
    outer_sum(dWhy, dy2, top.reshape(-1, H)[B:(T + 1) * B], exact, part, chunks)
    row_sum_rev(dby, dy2, chunks)
