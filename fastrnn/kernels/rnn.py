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

from numba import prange

from .common import (apply_mask, dropout_masks, embedding_backward, layer_input,
                     matmul_rows, matmul_rows_t, next_window, window_of, optimizer_step, outer_sum,
                     row_sum_rev, saved_layer_input, span, tanh)
from .jit import jit, pjit, pjit_inline
from .output import output_backward, output_forward
from .step import step_matmul, step_matmul_t, step_weights


@pjit_inline
def rnn_forward(hs, tmp, xin, x, T, exact, drop, masks, Wemb, Wxh, Whh, bh, packs, chunks):
    """hs: (L, T+1, B, H), hs[:, 0] the carried-in state, hs[:, 1:T+1] filled here.
    x: (T, B) input ids; tmp: (B, H) scratch. Only the first T steps are used. With
    drop > 0 the input of each layer above the first goes through masks (L-1, T, B, H)
    into xin (L-1, T, B, H). Each step's recurrent product is split between the threads
    by rows of Whh (see step_matmul), then its tanh by streams; packs: (L, >=
    packed_size)."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))  # (a thread's start is ~1 us)
    for l in range(L):
        h = hs[l]
        if l == 0:
            for t in range(T):
                for b in range(B):
                    h[t + 1, b] = Wemb[x[t, b]]
        else:
            inputs = layer_input(xin, hs, l, T, drop, masks)
            matmul_rows(h.reshape(-1, H)[B:(T + 1) * B], inputs, Wxh[l - 1], exact, chunks)
        Wp = step_weights(packs[l], Whh[l], False, B, exact, chunks)
        for t in range(T):
            step_matmul(tmp, h[t], Whh[l], Wp, exact, chunks)
            if streams == 1:
                _rnn_cells(h, tmp, bh[l], t, 0, B)
                continue
            for ch in prange(streams):
                b0, b1 = span(ch, streams, B, 1)
                _rnn_cells(h, tmp, bh[l], t, b0, b1)


@jit
def _rnn_cells(h, tmp, bh, t, b0, b1):
    """Step t of streams b0..b1-1: h[t+1] = tanh(Wxh x + Whh h + bh), the first term
    already in h[t+1] and the second in tmp."""
    for b in range(b0, b1):
        row, r = h[t + 1, b], tmp[b]
        for i in range(row.size):
            row[i] = tanh(row[i] + r[i] + bh[i])


@pjit_inline
def rnn_backward(dWemb, dWxh, dWhh, dbh, dh, dtmp, dnext, part, hs, xin, x, T, exact, drop,
                 masks, Wxh, Whh, packs, spart, chunks):
    """BPTT through all layers. dh: (T, B, H) holds dLoss/dh of the top layer on entry
    and is used as scratch, as is dtmp, a second such buffer; dnext: (B, H) scratch;
    part: outer_sum's; packs: (L, >= packed_size) for step_weights; spart:
    step_matmul_t's. Weight gradients are overwritten."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))
    for l in range(L - 1, -1, -1):
        h = hs[l]
        dnext[:] = 0
        Wp = step_weights(packs[l], Whh[l], True, B, exact, chunks)
        for t in range(T - 1, -1, -1):
            if streams == 1:
                _rnn_cells_back(dh, dnext, h, t, 0, B)
            else:
                for ch in prange(streams):
                    b0, b1 = span(ch, streams, B, 1)
                    _rnn_cells_back(dh, dnext, h, t, b0, b1)
            if exact:  # min-char-rnn's gemv per stream
                matmul_rows_t(dnext, dh[t], Whh[l], True, chunks)
            else:
                step_matmul_t(dnext, dh[t], Whh[l], Wp, spart, chunks)
        draw = dh.reshape(-1, H)[:T * B]
        outer_sum(dWhh[l], draw, h.reshape(-1, H)[:T * B], exact, part, chunks)
        if l == 0:
            embedding_backward(dWemb, dbh[l], dh, x, T, exact, chunks)
        else:
            row_sum_rev(dbh[l], draw, chunks)
            outer_sum(dWxh[l - 1], draw, saved_layer_input(xin, hs, l, T, drop), exact,
                      part, chunks)
            below = dtmp.reshape(-1, H)[:T * B]
            matmul_rows_t(below, draw, Wxh[l - 1], exact, chunks)
            if drop > 0:
                apply_mask(below, masks[l - 1])
            dh, dtmp = dtmp, dh


@jit
def _rnn_cells_back(dh, dnext, h, t, b0, b1):
    """BPTT through step t's tanh for streams b0..b1-1: dh[t] becomes the gradient of
    the pre-activation."""
    for b in range(b0, b1):
        d, dn, hv = dh[t, b], dnext[b], h[t + 1, b]
        for i in range(d.size):
            # backprop through tanh: dhraw = (1 - h^2) * (dh + dhnext)
            d[i] = (1 - hv[i] * hv[i]) * (d[i] + dn[i])


@pjit
def rnn_train_chunk(losses, cursor, data, exact, kind, P, G, theta, grad, state, hyper, rng,
                    drop, hs, tmp, xin, masks, ys, dh, dtmp, part, packs, spart, xs, chunks):
    """Train len(losses) iterations of min-char-rnn's loop in one call.

    losses: (K,) out, mean nats per character of each iteration.
    cursor: int64 [p, n], the data pointer and iteration counter, advanced in place.
    data: (B, S) int32 streams. kind: the optimizer (kernels.common). P, G: parameter
    and gradient views; theta, grad: the flat buffers behind them; state: (2, P) the
    optimizer's memory; hyper: its numbers in the model dtype. rng: (1,) uint64
    dropout generator state; drop: dropout probability between layers.
    hs: (L, T+1, B, H), carrying the hidden state between calls in hs[:, 0].
    tmp: (B, H); xin, masks: (L-1, T, B, H); ys: (T, B, V); dh, dtmp: (T, B, H);
    part: (threads, max(G*H, V), H) and spart: (threads, H), the threads' own scratch;
    packs: (L, >= packed_size) for each layer's Whh packed (step_weights); xs: (T+1, B)
    int32; chunks: threads.
    """
    Wemb, Wxh, Whh, bh, Why, by = P
    dWemb, dWxh, dWhh, dbh, dWhy, dby = G
    L, T1, B, H = hs.shape
    T = T1 - 1
    scale = 1.0 / B  # the loss is averaged over streams
    for k in range(losses.size):
        p, n = next_window(xs, hs, hs, data, cursor, T)
        if drop > 0:
            dropout_masks(masks, rng, drop)
        rnn_forward(hs, tmp, xin, xs, T, exact, drop, masks, Wemb, Wxh, Whh, bh, packs,
                    chunks)
        loss = output_forward(ys, hs[L - 1], T, xs[1:], scale, exact, Why, by, chunks)
        losses[k] = loss / (T * B)
        output_backward(dWhy, dby, dh, ys, hs[L - 1], T, exact, Why, part, chunks)
        rnn_backward(dWemb, dWxh, dWhh, dbh, dh, dtmp, tmp, part, hs, xin, xs, T, exact,
                     drop, masks, Wxh, Whh, packs, spart, chunks)
        optimizer_step(kind, theta, grad, state, hyper, n, chunks)
        hs[:, 0] = hs[:, T]  # carry the last state into the next iteration
        cursor[0] = p + T
        cursor[1] = n + 1


@pjit
def rnn_loss(ids, exact, P, hs, tmp, xin, masks, ys, packs, xs, chunks):
    """Summed loss in nats of predicting ids[:, 1:] from ids[:, :-1], the rows of ids
    (B, S) being B streams read from a zero state, in windows of the buffers' T steps
    with the state carried across windows; no dropout."""
    Wemb, Wxh, Whh, bh, Why, by = P
    L, T1, B, H = hs.shape
    T = T1 - 1
    hs[:, 0] = 0
    total = 0.0
    p = 0
    while p + 1 < ids.shape[1]:
        n = window_of(xs, ids, p, T)
        rnn_forward(hs, tmp, xin, xs, n, exact, 0.0, masks, Wemb, Wxh, Whh, bh, packs,
                    chunks)
        total += output_forward(ys, hs[L - 1], n, xs[1:], 1.0, exact, Why, by, chunks)
        hs[:, 0] = hs[:, n]
        p += n
    return total
