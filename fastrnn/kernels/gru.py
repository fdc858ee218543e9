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
import numpy as np

from .common import (dropout_masks, input_backward, input_projection, layer_input,
                     matmul_rows_t, next_window, optimizer_step, outer_sum, row_sum_rev,
                     saved_layer_input, sigmoid, tanh)
from .output import output_backward, output_forward
from .jit import jit


@jit
def gru_forward(hs, gates, hn, xa, tmp, xin, x, T, drop, masks, Wemb, Wxh, Whh, bxh, bhh):
    L, _, B, H = hs.shape
    for l in range(L):
        h = hs[l]
        inputs = layer_input(xin, hs, l, T, drop, masks) if l > 0 else h[0]
        input_projection(xa, x, T, l, hs, inputs, Wemb, Wxh, bxh)
        g = gates[l]
        for t in range(T):
            np.dot(h[t], Whh[l].T, tmp)
            for b in range(B):
                for i in range(H):
                    r = sigmoid(xa[t, b, i] + tmp[b, i] + bhh[l, i])
                    z = sigmoid(xa[t, b, H + i] + tmp[b, H + i] + bhh[l, H + i])
                    hnv = tmp[b, 2 * H + i] + bhh[l, 2 * H + i]
                    n = tanh(xa[t, b, 2 * H + i] + r * hnv)
                    h[t + 1, b, i] = (1 - z) * n + z * h[t, b, i]
                    g[t, b, i] = r
                    g[t, b, H + i] = z
                    g[t, b, 2 * H + i] = n
                    hn[l, t, b, i] = hnv


@jit
def gru_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da_x, da_h, dnext, dtmp,
                 hs, gates, hn, xin, x, T, drop, masks, Wxh, Whh):
    """dh (T, B, H): dLoss/dh of the top layer on entry, scratch after; dx the same
    shape; da_x, da_h (T, B, 3H) the gradients of the input-side and hidden-side
    pre-activations; dnext, dtmp (B, H). Weight gradients are overwritten."""
    L, _, B, H = hs.shape
    for l in range(L - 1, -1, -1):
        h = hs[l]
        g = gates[l]
        dnext[:] = 0
        for t in range(T - 1, -1, -1):
            for b in range(B):
                for i in range(H):
                    d = dh[t, b, i] + dnext[b, i]
                    r, z, n = g[t, b, i], g[t, b, H + i], g[t, b, 2 * H + i]
                    dn_pre = d * (1 - z) * (1 - n * n)
                    dz_pre = d * (h[t, b, i] - n) * z * (1 - z)
                    dr_pre = dn_pre * hn[l, t, b, i] * r * (1 - r)
                    da_x[t, b, i] = dr_pre
                    da_x[t, b, H + i] = dz_pre
                    da_x[t, b, 2 * H + i] = dn_pre
                    da_h[t, b, i] = dr_pre
                    da_h[t, b, H + i] = dz_pre
                    da_h[t, b, 2 * H + i] = dn_pre * r
                    dnext[b, i] = d * z
            matmul_rows_t(dtmp, da_h[t], Whh[l], False)
            for b in range(B):
                for i in range(H):
                    dnext[b, i] += dtmp[b, i]
        rows_h = da_h.reshape(-1, 3 * H)[:T * B]
        outer_sum(dWhh[l], rows_h, h.reshape(-1, H)[:T * B], False)
        row_sum_rev(dbhh[l], rows_h)
        inputs = saved_layer_input(xin, hs, l, T, drop) if l > 0 else h[0]
        input_backward(dWemb, dWxh, dbxh, dx, da_x, x, T, l, inputs, drop, masks, Wxh)
        dh, dx = dx, dh


@jit
def gru_train_chunk(losses, cursor, data, kind, P, G, theta, grad, state, hyper, rng, drop,
                    hs, gates, hn, xa, tmp, xin, masks, ys, dh, dx, da_x, da_h, dnext,
                    dtmp, xs):
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
                    bhh)
        losses[k] = output_forward(ys, hs[L - 1], T, xs[1:], 1.0 / B, False, Why, by) / (T * B)
        output_backward(dWhy, dby, dh, ys, hs[L - 1], T, False, Why)
        gru_backward(dWemb, dWxh, dWhh, dbxh, dbhh, dh, dx, da_x, da_h, dnext, dtmp, hs,
                     gates, hn, xin, xs, T, drop, masks, Wxh, Whh)
        optimizer_step(kind, theta, grad, state, hyper, n)
        hs[:, 0] = hs[:, T]  # carry the last state into the next iteration
        cursor[0] = p + T
        cursor[1] = n + 1


@jit
def gru_loss(ids, P, hs, gates, hn, xa, tmp, xin, masks, ys, xs):
    """Summed loss in nats of predicting ids[1:] from ids[:-1], one stream, zero state,
    no dropout, in windows of the buffers' T steps."""
    Wemb, Wxh, Whh, bxh, bhh, Why, by = P
    L, T1, _, H = hs.shape
    T = T1 - 1
    hs[:, 0] = 0
    total = 0.0
    p = 0
    while p + 1 < ids.size:
        n = min(T, ids.size - 1 - p)
        for t in range(n + 1):
            xs[t, 0] = ids[p + t]
        gru_forward(hs, gates, hn, xa, tmp, xin, xs, n, 0.0, masks, Wemb, Wxh, Whh, bxh, bhh)
        total += output_forward(ys, hs[L - 1], n, xs[1:], 1.0, False, Why, by)
        hs[:, 0] = hs[:, n]
        p += n
    return total
