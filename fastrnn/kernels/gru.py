"""GRU kernels, with PyTorch's nn.GRU equations (gate rows r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Parameters are a kernels.records.Params with G*H = 3H gate rows, buffers a GRUBuffers.
kernels.entries drives these through the iterations.
"""
from collections import namedtuple

from .activations import sigmoid, tanh
from .dropout import layer_input, saved_layer_input
from .inputs import embedding_backward, input_backward, input_projection
from .jit import jit
from .products import all_steps, outer_sum, row_sum_rev
from .records import OneStream, SHARED_BUFFERS, register_family
from .step import step_matmul, step_matmul_t, step_weights
from .team import after, close, first, items, span


# Its buffers: the shared ones (kernels.records) and its own.
GRUBuffers = namedtuple("GRUBuffers", SHARED_BUFFERS + [
    "gates",  # (L, T, B, 3H) the r, z, n activations
    "hn",     # (L, T, B, H) W_hn h + b_hn
    "xa",     # (T, B, 3H) the input side's pre-activations
    "tmp",    # (B, 3H) Whh h of a step
    "da_x",   # (T, B, 3H) gradients of the input side's pre-activations
    "da_h",   # (T, B, 3H) ... and of the hidden side's
    "dnext",  # (B, H) dLoss/dh carried to the step before, through z
    "dtmp",   # (B, H) ... through Whh
])


@jit
def gru_forward(P, buf, T, drop, path, team):
    """Steps 0..T-1 of every layer from the ids in buf.xs. Each step's recurrent product
    is split between the threads by panels of Whh's rows (step_matmul), then its gates by
    streams."""
    hs, tmp, xa = buf.hs, buf.tmp, buf.xa
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)  # (handing a thread its share costs ~1 us)
    for l in range(L):
        inputs = layer_input(buf.xin, hs, l, T, drop, buf.masks, team) if l > 0 else hs[l, 0]
        input_projection(xa, buf.xs, T, l, inputs, P, all_steps(path), team)
        # the layer's views, made once for all its steps (their addresses and shapes
        # worked out once, not at every step)
        h, g, hn, Whh, bhh = hs[l], buf.gates[l], buf.hn[l], P.Whh[l], P.bhh[l]
        Wp = step_weights(buf.packs[l], Whh, False, path, team)
        for t in range(T):
            step_matmul(tmp, h[t], Whh, Wp, path, team)
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _gru_cells(h, g, hn, xa, tmp, bhh, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)


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


@jit
def gru_backward(G, P, buf, T, drop, path, team):
    """BPTT through all layers. buf.dh holds dLoss/dh of the top layer on entry, scratch
    after, as is buf.dx; da_x, da_h the gradients of the input-side and hidden-side
    pre-activations; dnext, dtmp the two parts of dLoss/dh carried to the step before.
    The gradients G are overwritten."""
    hs, dnext, dtmp, da_x, da_h = buf.hs, buf.dnext, buf.dtmp, buf.da_x, buf.da_h
    dh, dx = buf.dh, buf.dx
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)
    for l in range(L - 1, -1, -1):
        h = hs[l]
        i = first(team, 1)
        if i >= 0:
            dnext[:] = 0
            dtmp[:] = 0
            after(team, 1, i)
        close(team, 1)
        g, hn, Whh, spart = buf.gates[l], buf.hn[l], P.Whh[l], buf.spart
        Wp = step_weights(buf.packs[l], Whh, True, path, team)
        for t in range(T - 1, -1, -1):
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _gru_cells_back(dh, da_x, da_h, dnext, dtmp, h, g, hn, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)
            step_matmul_t(dtmp, da_h[t], Whh, Wp, spart, path, team)
        rows_h = da_h.reshape(-1, 3 * H)[:T * B]
        outer_sum(G.Whh[l], rows_h, h.reshape(-1, H)[:T * B], buf.part, all_steps(path),
                  team)
        row_sum_rev(G.bhh[l], rows_h, team)
        if l == 0:
            embedding_backward(G.Wemb, G.bxh[0], da_x, buf.xs, T, OneStream(), team)
        else:
            input_backward(G.Wxh[l - 1], G.bxh[l], dx, da_x, T,
                           saved_layer_input(buf.xin, hs, l, T, drop), drop,
                           buf.masks[l - 1], P.Wxh[l - 1], buf.part,
                           all_steps(path), team)
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


register_family(GRUBuffers, gru_forward, gru_backward)
