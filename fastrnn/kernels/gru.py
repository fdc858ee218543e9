"""GRU kernels, with PyTorch's nn.GRU equations (gate rows r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Parameters (views into the trainer's flat buffer), G*H = 3H gate rows:
    Wemb (V, 3H) layer 0's W_i* a row per character; Wxh (L-1, 3H, H); Whh (L, 3H, H);
    bxh (L, 3H); bhh (L, 3H); Why (V, H); by (V,)
Buffers: hs (L, T+1, B, H) states, hs[:, 0] carried in; gates (L, T, B, 3H) the r, z, n
activations; hn (L, T, B, H) the W_hn h + b_hn term; xa (T, B, 3H) and da_h (T, B, 3H)
scratch; tmp (B, 3H).
"""
from numba import prange

from .common import (dropout_masks, input_backward, input_projection, layer_input,
                     next_window, optimizer_step, outer_sum, row_sum_rev, saved_layer_input,
                     sigmoid, span, tanh, window_of)
from .jit import jit, pjit, pjit_inline
from .output import output_backward, output_forward
from .step import step_matmul, step_matmul_t, step_weights


@pjit_inline
def gru_forward(hs, gates, hn, xa, tmp, xin, x, T, drop, masks, Wemb, Wxh, Whh, bxh, bhh,
                packs, chunks):
    """Each step's recurrent product is split between the threads by panels of Whh's
    rows (see step_matmul), then its gates by streams; packs: (L, >= packed_size)."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))  # (a thread's start is ~1 us)
    for l in range(L):
        inputs = layer_input(xin, hs, l, T, drop, masks) if l > 0 else hs[l, 0]
        input_projection(xa, x, T, l, hs, inputs, Wemb, Wxh, bxh, chunks)
        Wp = step_weights(packs[l], Whh[l], False, B, False, chunks)
        for t in range(T):
            step_matmul(tmp, hs[l, t], Whh[l], Wp, False, chunks)
            if streams == 1:
                _gru_cells(hs[l], gates[l], hn[l], xa, tmp, bhh[l], t, 0, B)
                continue
            for ch in prange(streams):
                b0, b1 = span(ch, streams, B, 1)
                _gru_cells(hs[l], gates[l], hn[l], xa, tmp, bhh[l], t, b0, b1)


@jit
def _gru_cells(h, g, hn, xa, tmp, bhh, t, b0, b1):
    """Step t of streams b0..b1-1, from the input side's pre-activations in xa[t] and
    Whh h in tmp."""
    H = h.shape[2]
    for b in range(b0, b1):
        a, hr, gr, hnr = xa[t, b], tmp[b], g[t, b], hn[t, b]
        hold, hnew = h[t, b], h[t + 1, b]
        for i in range(H):
            r = sigmoid(a[i] + hr[i] + bhh[i])
            z = sigmoid(a[H + i] + hr[H + i] + bhh[H + i])
            hnv = hr[2 * H + i] + bhh[2 * H + i]
            n = tanh(a[2 * H + i] + r * hnv)
            hnew[i] = (1 - z) * n + z * hold[i]
            gr[i] = r
            gr[H + i] = z
            gr[2 * H + i] = n
            hnr[i] = hnv


@pjit_inline
def gru_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da_x, da_h, dnext, dtmp, part,
                 hs, gates, hn, xin, x, T, drop, masks, Wxh, Whh, packs, spart, chunks):
    """dh (T, B, H): dLoss/dh of the top layer on entry, scratch after; dx the same
    shape; da_x, da_h (T, B, 3H) the gradients of the input-side and hidden-side
    pre-activations; dnext, dtmp (B, H) the two parts of dLoss/dh carried to the step
    before; part: outer_sum's scratch; packs: (L, >= packed_size) for step_weights;
    spart: step_matmul_t's. Weight gradients are overwritten. Threads split steps as in
    the forward pass."""
    L, _, B, H = hs.shape
    streams = max(1, min(B, chunks, B * H // 256))
    for l in range(L - 1, -1, -1):
        h = hs[l]
        dnext[:] = 0
        dtmp[:] = 0
        Wp = step_weights(packs[l], Whh[l], True, B, False, chunks)
        for t in range(T - 1, -1, -1):
            if streams == 1:
                _gru_cells_back(dh, da_x, da_h, dnext, dtmp, h, gates[l], hn[l], t, 0, B)
            else:
                for ch in prange(streams):
                    b0, b1 = span(ch, streams, B, 1)
                    _gru_cells_back(dh, da_x, da_h, dnext, dtmp, h, gates[l], hn[l], t, b0,
                                    b1)
            step_matmul_t(dtmp, da_h[t], Whh[l], Wp, spart, chunks)
        rows_h = da_h.reshape(-1, 3 * H)[:T * B]
        outer_sum(dWhh[l], rows_h, h.reshape(-1, H)[:T * B], False, part, chunks)
        row_sum_rev(dbhh[l], rows_h, chunks)
        inputs = saved_layer_input(xin, hs, l, T, drop) if l > 0 else h[0]
        input_backward(dWemb, dWxh, dbxh, dx, da_x, x, T, l, inputs, drop, masks, Wxh,
                       part, chunks)
        dh, dx = dx, dh


@jit
def _gru_cells_back(dh, da_x, da_h, dnext, dtmp, h, g, hn, t, b0, b1):
    """BPTT through step t of streams b0..b1-1: da_x[t], da_h[t] from dh[t] and the
    gradient from step t+1 (dnext + dtmp); dnext becomes the part through z."""
    H = h.shape[2]
    for b in range(b0, b1):
        gr, hnr, hold, dhr, dn, dt = g[t, b], hn[t, b], h[t, b], dh[t, b], dnext[b], dtmp[b]
        ax, ah = da_x[t, b], da_h[t, b]
        for i in range(H):
            d = dhr[i] + dn[i] + dt[i]
            r, z, n = gr[i], gr[H + i], gr[2 * H + i]
            dn_pre = d * (1 - z) * (1 - n * n)
            dz_pre = d * (hold[i] - n) * z * (1 - z)
            dr_pre = dn_pre * hnr[i] * r * (1 - r)
            ax[i] = dr_pre
            ax[H + i] = dz_pre
            ax[2 * H + i] = dn_pre
            ah[i] = dr_pre
            ah[H + i] = dz_pre
            ah[2 * H + i] = dn_pre * r
            dn[i] = d * z


@pjit
def gru_train_chunk(losses, cursor, data, kind, P, G, theta, grad, state, hyper, rng, drop,
                    hs, gates, hn, xa, tmp, xin, masks, ys, dh, dx, da_x, da_h, dnext,
                    dtmp, part, packs, spart, xs, chunks):
    """Train len(losses) iterations (see rnn_train_chunk for the shared arguments)."""
    Wemb, Wxh, Whh, bxh, bhh, Why, by = P
    dWemb, dWxh, dWhh, dbxh, dbhh, dWhy, dby = G
    L, T1, B, H = hs.shape
    T = T1 - 1
    for k in range(losses.size):
        p, n = next_window(xs, hs, hs, data, cursor, T)
        if drop > 0:
            dropout_masks(masks, rng, drop)
        gru_forward(hs, gates, hn, xa, tmp, xin, xs, T, drop, masks, Wemb, Wxh, Whh, bxh,
                    bhh, packs, chunks)
        losses[k] = output_forward(ys, hs[L - 1], T, xs[1:], 1.0 / B, False, Why, by,
                                   chunks) / (T * B)
        output_backward(dWhy, dby, dh, ys, hs[L - 1], T, False, Why, part, chunks)
        gru_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da_x, da_h, dnext, dtmp, part,
                     hs, gates, hn, xin, xs, T, drop, masks, Wxh, Whh, packs, spart,
                     chunks)
        optimizer_step(kind, theta, grad, state, hyper, n, chunks)
        hs[:, 0] = hs[:, T]  # carry the last state into the next iteration
        cursor[0] = p + T
        cursor[1] = n + 1


@pjit
def gru_loss(ids, P, hs, gates, hn, xa, tmp, xin, masks, ys, packs, xs, chunks):
    """Summed loss in nats over the streams ids (B, S), as rnn_loss."""
    Wemb, Wxh, Whh, bxh, bhh, Why, by = P
    L, T1, B, H = hs.shape
    T = T1 - 1
    hs[:, 0] = 0
    total = 0.0
    p = 0
    while p + 1 < ids.shape[1]:
        n = window_of(xs, ids, p, T)
        gru_forward(hs, gates, hn, xa, tmp, xin, xs, n, 0.0, masks, Wemb, Wxh, Whh, bxh,
                    bhh, packs, chunks)
        total += output_forward(ys, hs[L - 1], n, xs[1:], 1.0, False, Why, by, chunks)
        hs[:, 0] = hs[:, n]
        p += n
    return total
