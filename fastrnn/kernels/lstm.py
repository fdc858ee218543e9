"""LSTM kernels, with PyTorch's nn.LSTM equations (gate rows i, f, g, o):

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + ... + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + ... + b_ho)
    c' = f * c + i * g,   h' = o * tanh(c')

Parameters as for the GRU (fastrnn.kernels.gru) with G*H = 4H gate rows. Buffers:
hs, cs (L, T+1, B, H) hidden and cell states, [:, 0] carried in; gates (L, T, B, 4H)
the pre-activations, then the i, f, g, o activations in place; tc (L, T, B, H)
tanh(c'); da (T, B, 4H) scratch.
"""
from numba import prange

from .common import (dropout_masks, input_backward, input_projection, layer_input,
                     next_window, optimizer_step, outer_sum, saved_layer_input,
                     sigmoid, span, tanh, window_of)
from .jit import jit, pjit, pjit_inline
from .output import output_backward, output_forward
from .step import step_matmul, step_matmul_t, step_weights


@pjit_inline
def lstm_forward(hs, cs, gates, tc, tmp, xin, x, T, drop, masks, Wemb, Wxh, Whh, bxh,
                 bhh, packs, chunks):
    """Each step's recurrent product is split between the threads by panels of Whh's
    rows (see step_matmul), then its gates by streams; packs: (L, >= packed_size).
    Layer 0's input term, a row of Wemb, is added in the gates' pass rather than written
    into gates for all steps beforehand (one pass less over the largest buffer)."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))  # (a thread's start is ~1 us)
    for l in range(L):
        h, c, g = hs[l], cs[l], gates[l]
        if l > 0:
            inputs = layer_input(xin, hs, l, T, drop, masks)
            input_projection(g, x, T, l, hs, inputs, Wemb, Wxh, bxh, chunks)
        Wp = step_weights(packs[l], Whh[l], False, B, False, chunks)
        for t in range(T):
            step_matmul(tmp, h[t], Whh[l], Wp, False, chunks)
            if streams == 1:
                _lstm_cells(h, c, g, tc[l], tmp, x, Wemb, bxh[l], bhh[l], l, t, 0, B)
                continue
            for ch in prange(streams):
                b0, b1 = span(ch, streams, B, 1)
                _lstm_cells(h, c, g, tc[l], tmp, x, Wemb, bxh[l], bhh[l], l, t, b0, b1)


@jit
def _lstm_cells(h, c, g, tc, tmp, x, Wemb, bxh, bhh, l, t, b0, b1):
    """Step t of streams b0..b1-1 of layer l, from Whh h in tmp and the input term:
    for layer 0 Wemb[x] + bxh, input_projection's sum, otherwise that in g[t]."""
    H = h.shape[2]
    for b in range(b0, b1):
        # one array per loop, so that LLVM vectorises each
        row, hrow = g[t, b], tmp[b]
        if l == 0:
            e = Wemb[x[t, b]]
            for j in range(4 * H):
                row[j] = (e[j] + bxh[j]) + (hrow[j] + bhh[j])
        else:
            for j in range(4 * H):
                row[j] += hrow[j] + bhh[j]
        for j in range(2 * H):
            row[j] = sigmoid(row[j])  # i, f
        gg = row[2 * H:3 * H]
        for k in range(H):
            gg[k] = tanh(gg[k])
        og = row[3 * H:]
        for k in range(H):
            og[k] = sigmoid(og[k])
        ig, fg = row[:H], row[H:2 * H]
        cold, cnew, tv, hnew = c[t, b], c[t + 1, b], tc[t, b], h[t + 1, b]
        for k in range(H):
            cnew[k] = fg[k] * cold[k] + ig[k] * gg[k]
        for k in range(H):
            tv[k] = tanh(cnew[k])
        for k in range(H):
            hnew[k] = og[k] * tv[k]


@pjit_inline
def lstm_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da, dnext, dcnext, part,
                  hs, cs, gates, tc, xin, x, T, drop, masks, Wxh, Whh, packs, spart,
                  chunks):
    """dh (T, B, H): dLoss/dh of the top layer on entry, scratch after; dx the same
    shape; da (T, B, 4H) the gate pre-activation gradients (the same on the input and
    the hidden side); dnext, dcnext (B, H); part: outer_sum's scratch; packs: (L, >=
    packed_size) for step_weights; spart: step_matmul_t's. Weight gradients are
    overwritten. Each step's gates are split between the threads by streams, its product
    with Whh by panels of Whh's columns."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))
    for l in range(L - 1, -1, -1):
        h = hs[l]
        dnext[:] = 0
        dcnext[:] = 0
        Wp = step_weights(packs[l], Whh[l], True, B, False, chunks)
        for t in range(T - 1, -1, -1):
            if streams == 1:
                _lstm_cells_back(dh, da, dnext, dcnext, cs[l], gates[l], tc[l], t, 0, B)
            else:
                for ch in prange(streams):
                    b0, b1 = span(ch, streams, B, 1)
                    _lstm_cells_back(dh, da, dnext, dcnext, cs[l], gates[l], tc[l], t, b0,
                                     b1)
            step_matmul_t(dnext, da[t], Whh[l], Wp, spart, chunks)
        rows = da.reshape(-1, 4 * H)[:T * B]
        outer_sum(dWhh[l], rows, h.reshape(-1, H)[:T * B], False, part, chunks)
        inputs = saved_layer_input(xin, hs, l, T, drop) if l > 0 else h[0]
        input_backward(dWemb, dWxh, dbxh, dx, da, x, T, l, inputs, drop, masks, Wxh, part,
                       chunks)
        _copy(dbhh[l], dbxh[l])  # (the same pre-activations on the input and hidden side)
        dh, dx = dx, dh


@jit
def _copy(out, a):
    """out[:] = a, in a jit function (in a parallel one Numba starts threads for it)."""
    out[:] = a


@jit
def _lstm_cells_back(dh, da, dnext, dcnext, c, g, tc, t, b0, b1):
    """BPTT through step t of streams b0..b1-1: da[t] from dh[t] + dnext, and dcnext
    carried to step t-1."""
    H = dh.shape[2]
    for b in range(b0, b1):
        row, dar = g[t, b], da[t, b]
        ig, fg, gg, og = row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:]
        d, dc, tv, cold = dh[t, b], dcnext[b], tc[t, b], c[t, b]
        dn = dnext[b]
        for k in range(H):
            d[k] += dn[k]
        for k in range(H):
            dc[k] += d[k] * og[k] * (1 - tv[k] * tv[k])
        di, df, dg, do = dar[:H], dar[H:2 * H], dar[2 * H:3 * H], dar[3 * H:]
        for k in range(H):
            di[k] = dc[k] * gg[k] * ig[k] * (1 - ig[k])
        for k in range(H):
            df[k] = dc[k] * cold[k] * fg[k] * (1 - fg[k])
        for k in range(H):
            dg[k] = dc[k] * ig[k] * (1 - gg[k] * gg[k])
        for k in range(H):
            do[k] = d[k] * tv[k] * og[k] * (1 - og[k])
        for k in range(H):
            dc[k] *= fg[k]


@pjit
def lstm_train_chunk(losses, cursor, data, kind, P, G, theta, grad, state, hyper, rng, drop,
                     hs, cs, gates, tc, tmp, xin, masks, ys, dh, dx, da, dnext, dcnext,
                     part, packs, spart, xs, chunks):
    """Train len(losses) iterations (see rnn_train_chunk for the shared arguments);
    chunks: how many threads share the streams."""
    Wemb, Wxh, Whh, bxh, bhh, Why, by = P
    dWemb, dWxh, dWhh, dbxh, dbhh, dWhy, dby = G
    L, T1, B, H = hs.shape
    T = T1 - 1
    for k in range(losses.size):
        p, n = next_window(xs, hs, cs, data, cursor, T)
        if drop > 0:
            dropout_masks(masks, rng, drop)
        lstm_forward(hs, cs, gates, tc, tmp, xin, xs, T, drop, masks, Wemb, Wxh, Whh,
                     bxh, bhh, packs, chunks)
        losses[k] = output_forward(ys, hs[L - 1], T, xs[1:], 1.0 / B, False, Why, by,
                                   chunks) / (T * B)
        output_backward(dWhy, dby, dh, ys, hs[L - 1], T, False, Why, part, chunks)
        lstm_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da, dnext, dcnext, part,
                      hs, cs, gates, tc, xin, xs, T, drop, masks, Wxh, Whh, packs, spart,
                      chunks)
        optimizer_step(kind, theta, grad, state, hyper, n, chunks)
        hs[:, 0] = hs[:, T]  # carry the last states into the next iteration
        cs[:, 0] = cs[:, T]
        cursor[0] = p + T
        cursor[1] = n + 1


@pjit
def lstm_loss(ids, P, hs, cs, gates, tc, tmp, xin, masks, ys, packs, xs, chunks):
    """Summed loss in nats over the streams ids (B, S), as rnn_loss."""
    Wemb, Wxh, Whh, bxh, bhh, Why, by = P
    L, T1, B, H = hs.shape
    T = T1 - 1
    hs[:, 0] = 0
    cs[:, 0] = 0
    total = 0.0
    p = 0
    while p + 1 < ids.shape[1]:
        n = window_of(xs, ids, p, T)
        lstm_forward(hs, cs, gates, tc, tmp, xin, xs, n, 0.0, masks, Wemb, Wxh, Whh,
                     bxh, bhh, packs, chunks)
        total += output_forward(ys, hs[L - 1], n, xs[1:], 1.0, False, Why, by, chunks)
        hs[:, 0] = hs[:, n]
        cs[:, 0] = cs[:, n]
        p += n
    return total
