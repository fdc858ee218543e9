"""LSTM kernels, with PyTorch's nn.LSTM equations (gate rows i, f, g, o):

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + ... + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + ... + b_ho)
    c' = f * c + i * g,   h' = o * tanh(c')

Parameters are a kernels.records.Params with G*H = 4H gate rows, buffers an
LSTMBuffers. kernels.entries drives these through the iterations.
"""
from collections import namedtuple

from .activations import sigmoid, tanh
from .dropout import layer_input, saved_layer_input
from .inputs import embedding_backward, input_backward, input_projection
from .jit import jit
from .products import all_steps, copy_vector, outer_sum
from .records import OneStream, SHARED_BUFFERS, register_family
from .step import step_matmul, step_matmul_t, step_weights
from .team import after, close, first, items, span

# Its buffers: the shared ones (kernels.records) and its own.
LSTMBuffers = namedtuple("LSTMBuffers", SHARED_BUFFERS + [
    "cs",     # (L, T+1, B, H) cell states; cs[:, 0] carried in
    "gates",  # (L, T, B, 4H) pre-activations, then the i, f, g, o activations
    "tc",     # (L, T, B, H) tanh(c')
    "tmp",    # (B, 4H) Whh h of a step
    "da",     # (T, B, 4H) gate pre-activation gradients
    "dnext",  # (B, H) dLoss/dh carried to the step before
    "dcnext",  # (B, H) dLoss/dc carried to the step before
])

# What a forward step of one layer reads and writes (layer l's views, made once for
# all its steps: their addresses and shapes worked out once, not at every step).
Layer = namedtuple("Layer", [
    "h",     # (T+1, B, H) the layer's states
    "c",     # (T+1, B, H) its cell states
    "g",     # (T, B, 4H) its gates
    "tc",    # (T, B, H) its tanh(c')
    "tmp",   # (B, 4H) Whh h of the step
    "xs",    # (T+1, B) int32 the window's ids (layer 0's input)
    "Wemb",  # (V, 4H) layer 0's input weights
    "bxh",   # (4H,) the layer's input-side biases
    "bhh",   # (4H,) and hidden-side
])


@jit
def lstm_forward(P, buf, T, drop, path, team):
    """Steps 0..T-1 of every layer from the ids in buf.xs. Each step's recurrent product
    is split between the threads by panels of Whh's rows (step_matmul), then its gates by
    streams. Layer 0's input term, a row of Wemb, is added in the gates' pass rather
    than written into gates for all steps beforehand (one pass less over the largest
    buffer)."""
    hs, cs, tmp, x = buf.hs, buf.cs, buf.tmp, buf.xs
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)  # (handing a thread its share costs ~1 us)
    for l in range(L):
        if l > 0:
            inputs = layer_input(buf.xin, hs, l, T, drop, buf.masks, team)
            input_projection(buf.gates[l], x, T, l, inputs, P, all_steps(path), team)
        layer = Layer(hs[l], cs[l], buf.gates[l], buf.tc[l], tmp, x, P.Wemb, P.bxh[l],
                      P.bhh[l])
        Whh = P.Whh[l]
        Wp = step_weights(buf.packs[l], Whh, False, path, team)
        for t in range(T):
            step_matmul(tmp, layer.h[t], Whh, Wp, path, team)
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _lstm_cells(layer, l, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)


@jit
def _lstm_cells(layer, l, t, b0, b1):
    """Step t of streams b0..b1-1 of layer l (a Layer), from Whh h in layer.tmp and the
    input term: for layer 0 Wemb[xs] + bxh, input_projection's sum, otherwise that in
    g[t]."""
    h, c, g, tc, tmp, x, Wemb, bxh, bhh = layer
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


@jit
def lstm_backward(G, P, buf, T, drop, path, team):
    """BPTT through all layers. buf.dh holds dLoss/dh of the top layer on entry, scratch
    after, as is buf.dx; da the gate pre-activation gradients (the same on the input and
    the hidden side); dnext, dcnext carried to the step before. The gradients G are
    overwritten. Each step's gates are split between the threads by streams, its
    product with Whh by panels of Whh's columns."""
    hs, cs, da, dnext, dcnext = buf.hs, buf.cs, buf.da, buf.dnext, buf.dcnext
    dh, dx = buf.dh, buf.dx
    L, _, B, H = hs.shape
    streams = items(team, B, B * H, 256)
    for l in range(L - 1, -1, -1):
        h = hs[l]
        i = first(team, 1)
        if i >= 0:
            dnext[:] = 0
            dcnext[:] = 0
            after(team, 1, i)
        close(team, 1)
        c, g, tc, Whh, spart = cs[l], buf.gates[l], buf.tc[l], P.Whh[l], buf.spart
        Wp = step_weights(buf.packs[l], Whh, True, path, team)
        for t in range(T - 1, -1, -1):
            i = first(team, streams)
            while i >= 0:
                b0, b1 = span(i, streams, B, 1)
                _lstm_cells_back(dh, da, dnext, dcnext, c, g, tc, t, b0, b1)
                i = after(team, streams, i)
            close(team, streams)
            step_matmul_t(dnext, da[t], Whh, Wp, spart, path, team)
        rows = da.reshape(-1, 4 * H)[:T * B]
        outer_sum(G.Whh[l], rows, h.reshape(-1, H)[:T * B], buf.part, all_steps(path),
                  team)
        if l == 0:
            embedding_backward(G.Wemb, G.bxh[0], da, buf.xs, T, OneStream(), team)
        else:
            input_backward(G.Wxh[l - 1], G.bxh[l], dx, da, T,
                           saved_layer_input(buf.xin, hs, l, T, drop), drop,
                           buf.masks[l - 1], P.Wxh[l - 1], buf.part,
                           all_steps(path), team)
        # (the same pre-activations on the input and hidden side)
        copy_vector(G.bhh[l], G.bxh[l], team)
        dh, dx = dx, dh


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


register_family(LSTMBuffers, lstm_forward, lstm_backward)
