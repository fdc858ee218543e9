"""Vanilla (Elman) RNN kernels: min-char-rnn's cell, stacked L deep, over B streams.

    h[t] = tanh(Wxh x[t] + Whh h[t-1] + bh)        (x is the layer below's h, or one-hot)
    y[t] = Why h_top[t] + by,  p[t] = softmax(y[t])

Parameters arrive as named views into the trainer's flat buffer (see fastrnn.params):
    Wemb (V, H)       layer 0's Wxh stored a row per character, so the one-hot product
                      is a row copy and its gradient a row scatter
    Wxh  (L-1, H, H)  input weights of layers 1..L-1
    Whh  (L, H, H)    recurrent weights
    bh   (L, H)
    Why  (V, H), by (V,)
Rows of the (T, B, ...) buffers are ordered (t, b). With exact=True the arithmetic is
min-char-rnn's operation by operation (see kernels.common), so float64 reproduces it
bit for bit; otherwise all work that does not depend on the previous step (input
projections, the output layer, every weight gradient) is one matrix product over the
T*B rows and only the recurrence runs step by step.
"""
import numpy as np

from .common import (adagrad_update, matmul_rows, matmul_rows_t, outer_sum, row_sum_rev,
                     softmax_xent, tanh)
from .jit import jit


@jit
def rnn_forward(hs, tmp, x, T, exact, Wemb, Wxh, Whh, bh):
    """hs: (L, T+1, B, H), hs[:, 0] the carried-in state, hs[:, 1:T+1] filled here.
    x: (T, B) input ids; tmp: (B, H) scratch. Only the first T steps are used."""
    L, _, B, H = hs.shape
    for l in range(L):
        h = hs[l]
        if l == 0:
            for t in range(T):
                for b in range(B):
                    h[t + 1, b] = Wemb[x[t, b]]
        else:
            rows = slice(B, (T + 1) * B)
            matmul_rows(h.reshape(-1, H)[rows], hs[l - 1].reshape(-1, H)[rows], Wxh[l - 1],
                        exact)
        for t in range(T):
            matmul_rows(tmp, h[t], Whh[l], exact)
            for b in range(B):
                for i in range(H):
                    h[t + 1, b, i] = tanh(h[t + 1, b, i] + tmp[b, i] + bh[l, i])


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


@jit
def rnn_backward(dWemb, dWxh, dWhh, dbh, dh, dtmp, dnext, hs, x, T, exact, Wxh, Whh):
    """BPTT through all layers. dh: (T, B, H) holds dLoss/dh of the top layer on entry
    and is used as scratch, as is dtmp, a second such buffer; dnext: (B, H) scratch.
    Weight gradients are overwritten."""
    L, _, B, H = hs.shape
    for l in range(L - 1, -1, -1):
        h = hs[l]
        dnext[:] = 0
        for t in range(T - 1, -1, -1):
            for b in range(B):
                for i in range(H):
                    hv = h[t + 1, b, i]
                    # backprop through tanh: dhraw = (1 - h^2) * (dh + dhnext)
                    dh[t, b, i] = (1 - hv * hv) * (dh[t, b, i] + dnext[b, i])
            matmul_rows_t(dnext, dh[t], Whh[l], exact)
        draw = dh.reshape(-1, H)[:T * B]
        outer_sum(dWhh[l], draw, h.reshape(-1, H)[:T * B], exact)
        row_sum_rev(dbh[l], draw)
        if l == 0:
            dWemb[:] = 0
            for t in range(T - 1, -1, -1):
                for b in range(B - 1, -1, -1):
                    dWemb[x[t, b]] += dh[t, b]
        else:
            outer_sum(dWxh[l - 1], draw, hs[l - 1].reshape(-1, H)[B:(T + 1) * B], exact)
            matmul_rows_t(dtmp.reshape(-1, H)[:T * B], draw, Wxh[l - 1], exact)
            dh, dtmp = dtmp, dh


@jit
def rnn_train_chunk(losses, cursor, data, exact, P, G, theta, grad, mem, hyper,
                    hs, tmp, ys, dh, dtmp, xs):
    """Train len(losses) iterations of min-char-rnn's loop in one call.

    losses: (K,) out, mean nats per character of each iteration.
    cursor: int64 [p, n], the data pointer and iteration counter, advanced in place.
    data: (B, S) int32 streams. P, G: parameter and gradient views; theta, grad, mem:
    the flat buffers behind them and the Adagrad memory. hyper: (lr, clip, eps) in the
    model dtype. hs: (L, T+1, B, H), carrying the hidden state between calls in hs[:, 0].
    ys: (T, B, V); dh, dtmp: (T, B, H); tmp: (B, H); xs: (T+1, B) int32.
    """
    Wemb, Wxh, Whh, bh, Why, by = P
    dWemb, dWxh, dWhh, dbh, dWhy, dby = G
    lr, clip, eps = hyper[0], hyper[1], hyper[2]
    L, T1, B, H = hs.shape
    T = T1 - 1
    S = data.shape[1]
    scale = 1.0 / B  # the loss is averaged over streams
    for k in range(losses.size):
        p, n = cursor[0], cursor[1]
        if p + T + 1 >= S or n == 0:
            hs[:, 0] = 0  # reset RNN memory
            p = 0  # go from start of data
        for t in range(T + 1):
            for b in range(B):
                xs[t, b] = data[b, p + t]
        rnn_forward(hs, tmp, xs, T, exact, Wemb, Wxh, Whh, bh)
        loss = output_forward(ys, hs[L - 1], T, xs[1:], scale, exact, Why, by)
        losses[k] = loss / (T * B)
        output_backward(dWhy, dby, dh, ys, hs[L - 1], T, exact, Why)
        rnn_backward(dWemb, dWxh, dWhh, dbh, dh, dtmp, tmp, hs, xs, T, exact, Wxh, Whh)
        adagrad_update(theta, grad, mem, lr, clip, eps)
        hs[:, 0] = hs[:, T]  # carry the last state into the next iteration
        cursor[0] = p + T
        cursor[1] = n + 1


@jit
def rnn_loss(ids, exact, P, hs, tmp, ys, xs):
    """Summed loss in nats of predicting ids[1:] from ids[:-1] as one stream from a zero
    state, in windows of the buffers' T steps with the state carried across windows."""
    Wemb, Wxh, Whh, bh, Why, by = P
    L, T1, _, H = hs.shape
    T = T1 - 1
    hs[:, 0] = 0
    total = 0.0
    p = 0
    while p + 1 < ids.size:
        n = min(T, ids.size - 1 - p)
        for t in range(n + 1):
            xs[t, 0] = ids[p + t]
        rnn_forward(hs, tmp, xs, n, exact, Wemb, Wxh, Whh, bh)
        total += output_forward(ys, hs[L - 1], n, xs[1:], 1.0, exact, Why, by)
        hs[:, 0] = hs[:, n]
        p += n
    return total


@jit
def rnn_step(logits, hs, tmp, xs, P):
    """One step of one stream for sampling: hs (L, 2, 1, H) with hs[:, 0] the state and
    xs[0, 0] the input id; the new state is left in hs[:, 0], logits (V,) filled."""
    Wemb, Wxh, Whh, bh, Why, by = P
    L = hs.shape[0]
    rnn_forward(hs, tmp, xs, 1, True, Wemb, Wxh, Whh, bh)
    hs[:, 0] = hs[:, 1]
    np.dot(Why, hs[L - 1, 1, 0], logits)
    for v in range(logits.size):
        logits[v] += by[v]
