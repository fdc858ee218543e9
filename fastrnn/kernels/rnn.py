"""Vanilla (Elman) RNN kernels: min-char-rnn's cell, stacked L deep, over B streams.

    h[t] = tanh(Wxh x[t] + Whh h[t-1] + bh)        (x is the layer below's h, or one-hot)
    y[t] = Why h_top[t] + by,  p[t] = softmax(y[t])

Parameters are a kernels.records.Params with bxh as min-char-rnn's bh (bhh is empty);
buffers an RNNBuffers. On the Exact path the arithmetic is min-char-rnn's operation by
operation (kernels.products), so float64 reproduces it bit for bit; otherwise all work
that does not depend on the previous step (input projections, the output layer, every
weight gradient) is one matrix product over the T*B rows and only the recurrence runs
step by step.

kernels.entries drives these through the iterations.
"""
from collections import namedtuple

from .activations import tanh
from .dropout import layer_input, mask_gradient, saved_layer_input
from .inputs import embedding_backward
from .jit import jit
from .products import SMALL, matmul_rows, matmul_rows_t, outer_sum, row_sum_rev
from .records import SHARED_BUFFERS, register_family
from .step import step_matmul, step_matmul_t, step_weights
from .team import after, close, first, items, span


# Its buffers: the shared ones (kernels.records) and its own.
RNNBuffers = namedtuple("RNNBuffers", SHARED_BUFFERS + [
    "tmp",    # (B, H) Whh h of a step
    "dnext",  # (B, H) dLoss/dh carried to the step before
    "duo",    # (kernels.duo.FLAGS,) int64 the two-thread kernel's flags
])


@jit
def rnn_forward(P, buf, T, drop, path, team):
    """Steps 0..T-1 of every layer from the ids in buf.xs: buf.hs[:, 1:T+1] from the
    carried-in hs[:, 0]. With drop > 0 the input of each layer above the first goes
    through buf.masks into buf.xin. Each step's recurrent product is split between the
    threads by rows of Whh (step_matmul), then its tanh by streams."""
    hs, tmp, x = buf.hs, buf.tmp, buf.xs
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)  # (handing a thread its share costs ~1 us)
    for l in range(L):
        h = hs[l]
        if l == 0:
            n = items(team, T, T * B * H, SMALL)
            i = first(team, n)
            while i >= 0:
                t0, t1 = span(i, n, T, 1)
                for t in range(t0, t1):
                    for b in range(B):
                        row, e = h[t + 1, b], P.Wemb[x[t, b]]  # the one-hot product
                        for j in range(H):
                            row[j] = e[j]
                i = after(team, n, i)
            close(team, n)
        else:
            inputs = layer_input(buf.xin, hs, l, T, drop, buf.masks, team)
            matmul_rows(h.reshape(-1, H)[B:(T + 1) * B], inputs, P.Wxh[l - 1], path, team)
        # the layer's views, made once for all its steps (their addresses and shapes
        # worked out once, not at every step)
        Whh, bh = P.Whh[l], P.bxh[l]
        Wp = step_weights(buf.packs[l], Whh, False, path, team)
        for t in range(T):
            step_matmul(tmp, h[t], Whh, Wp, path, team)
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _rnn_cells(h, tmp, bh, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)


@jit
def _rnn_cells(h, tmp, bh, t, b0, b1):
    """Step t of streams b0..b1-1: h[t+1] = tanh(Wxh x + Whh h + bh), the first term
    already in h[t+1] and the second in tmp."""
    for b in range(b0, b1):
        row, r = h[t + 1, b], tmp[b]
        for i in range(row.size):
            row[i] = tanh(row[i] + r[i] + bh[i])


@jit
def rnn_backward(G, P, buf, T, drop, path, team):
    """BPTT through all layers. buf.dh holds dLoss/dh of the top layer on entry and is
    used as scratch after, as is buf.dx; the gradients G are overwritten."""
    hs, x, dnext = buf.hs, buf.xs, buf.dnext
    dh, dx = buf.dh, buf.dx
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)
    for l in range(L - 1, -1, -1):
        h = hs[l]
        i = first(team, 1)
        if i >= 0:
            dnext[:] = 0
            after(team, 1, i)
        close(team, 1)
        Whh, spart = P.Whh[l], buf.spart
        Wp = step_weights(buf.packs[l], Whh, True, path, team)
        for t in range(T - 1, -1, -1):
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _rnn_cells_back(dh, dnext, h, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)
            step_matmul_t(dnext, dh[t], Whh, Wp, spart, path, team)
        draw = dh.reshape(-1, H)[:T * B]
        outer_sum(G.Whh[l], draw, h.reshape(-1, H)[:T * B], buf.part, path, team)
        if l == 0:
            embedding_backward(G.Wemb, G.bxh[l], dh, x, T, path, team)
        else:
            row_sum_rev(G.bxh[l], draw, team)
            outer_sum(G.Wxh[l - 1], draw, saved_layer_input(buf.xin, hs, l, T, drop),
                      buf.part, path, team)
            below = dx.reshape(-1, H)[:T * B]
            matmul_rows_t(below, draw, P.Wxh[l - 1], path, team)
            mask_gradient(below, buf.masks[l - 1], drop, team)
            dh, dx = dx, dh


@jit
def _rnn_cells_back(dh, dnext, h, t, b0, b1):
    """BPTT through step t's tanh for streams b0..b1-1: dh[t] becomes the gradient of
    the pre-activation."""
    for b in range(b0, b1):
        d, dn, hv = dh[t, b], dnext[b], h[t + 1, b]
        for i in range(d.size):
            # backprop through tanh: dhraw = (1 - h^2) * (dh + dhnext)
            d[i] = (1 - hv[i] * hv[i]) * (d[i] + dn[i])


register_family(RNNBuffers, rnn_forward, rnn_backward)
