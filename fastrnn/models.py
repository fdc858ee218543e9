"""The model families on the Python side: parameter layout and names, initialisation,
the buffers each family's kernels borrow, and which kernels to call. Dispatch between
families happens here, never inside compiled code."""
import os

import numpy as np

from .kernels.duo import FLAGS as DUO_FLAGS, rnn_train_chunk_duo
from .kernels.gru import gru_backward, gru_forward, gru_loss, gru_train_chunk
from .kernels.lstm import lstm_backward, lstm_forward, lstm_loss, lstm_train_chunk
from .kernels.output import output_backward, output_forward
from .kernels.rnn import rnn_backward, rnn_forward, rnn_loss, rnn_train_chunk
from .kernels.step import packed_size

OPTIMIZERS = {"adagrad": 0, "rmsprop": 1, "adam": 2, "sgd": 3}  # kernels.common's numbers


class Family:
    """What differs between rnn, gru and lstm; subclasses fill it in."""
    G = 1  # gates per layer
    cell = False  # whether there is a cell state besides h
    biases = ("bxh", "bhh")  # per layer: PyTorch's two; min-char-rnn has one

    def arrays(self, V, H, L):
        """Internal arrays in buffer order: (name, shape)."""
        G = self.G
        return ([("Wemb", (V, G * H)), ("Wxh", (L - 1, G * H, H)), ("Whh", (L, G * H, H))]
                + [(b, (L, G * H)) for b in self.biases] + [("Why", (V, H)), ("by", (V,))])

    def public(self, views, L):
        """Public names (PyTorch's orientation and gate order; min-char-rnn's for the
        vanilla RNN) as writable views."""
        out = {}
        for l in range(L):
            out[f"Wxh.{l}"] = views["Wemb"].T if l == 0 else views["Wxh"][l - 1]
            out[f"Whh.{l}"] = views["Whh"][l]
            for b in self.biases:
                out[f"{b}.{l}"] = views[b][l]
        out["Why"] = views["Why"]
        out["by"] = views["by"]
        return out

    def init(self, public, seed, H):
        """PyTorch's initialisation for recurrent layers, U(-1/sqrt(H), 1/sqrt(H)) for
        every weight and bias, then min-char-rnn's output layer (randn * 0.01, zero)."""
        rng = np.random.RandomState(seed)
        k = 1.0 / np.sqrt(H)
        for name, view in public.items():
            if name == "Why":
                view[...] = rng.randn(*view.shape) * 0.01
            elif name == "by":
                view[...] = 0
            else:
                view[...] = rng.uniform(-k, k, view.shape)

    def buffers(self, L, T, B, H, V, dtype):
        """Arrays the kernels borrow, allocated once. Shared names: hs (L, T+1, B, H)
        states; xin, masks (L-1, T, B, H) dropped layer inputs and dropout masks; ys
        (T, B, V); dh (T, B, H); xs (T+1, B) ids; packs (L, ...) each layer's Whh packed
        for the step products of a batch (kernels.step; empty for one stream); and each
        thread's own scratch: part (threads, max(G*H, V), H) for its share of a weight
        gradient, spart (threads, H) for its share of a one-stream BPTT step."""
        z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
        n = os.cpu_count() or 1
        return dict(hs=z(L, T + 1, B, H), xin=z(max(L - 1, 1), T, B, H),
                    masks=z(max(L - 1, 1), T, B, H), ys=z(T, B, V), dh=z(T, B, H),
                    dtmp=z(T, B, H), xs=np.zeros((T + 1, B), np.int32),
                    part=z(n, max(self.G * H, V), H), packs=z(L, self.packed(B, H, dtype)),
                    spart=z(n, H))

    def packed(self, B, H, dtype):
        """Elements of one layer's packed Whh, for the forward product or BPTT's."""
        if B == 1:
            return 0
        x = np.empty(0, dtype)
        return max(packed_size(self.G * H, H, x), packed_size(H, self.G * H, x))

    def gradients(self, t, xs):
        """Loss (summed over steps, averaged over streams) and gradients, left in the
        trainer's gradient buffer, of one window xs (T+1, B) from a zero state, with the
        dropout masks now in the buffers. For tests; training never leaves the kernels."""
        b = t._buf
        for name in ("hs", "cs"):
            if name in b:
                b[name][:] = 0
        b["xs"][...] = xs
        T, B = xs.shape[0] - 1, xs.shape[1]
        L = b["hs"].shape[0]
        self.forward(t, b, T, t._drop)
        Why, by = t._theta.views["Why"], t._theta.views["by"]
        loss = output_forward(b["ys"], b["hs"][L - 1], T, b["xs"][1:], 1.0 / B, t.exact,
                              Why, by, t.chunks)
        g = t._grad.views
        output_backward(g["Why"], g["by"], b["dh"], b["ys"], b["hs"][L - 1], T, t.exact, Why,
                        b["part"], t.chunks)
        self.backward(t, b, T, t._drop)
        return loss / B


class RNN(Family):
    """min-char-rnn's tanh cell with its names: Wxh.{l}, Whh.{l}, bh.{l}, Why, by."""
    name = "rnn"
    biases = ("bh",)

    def init(self, public, seed, H):
        """min-char-rnn's initialisation: weights randn * 0.01 drawn in order, biases
        zero; with one layer the draws are min-char-rnn's after np.random.seed(seed)."""
        rng = np.random.RandomState(seed)
        for name, view in public.items():
            view[...] = 0 if name.startswith("b") else rng.randn(*view.shape) * 0.01

    def buffers(self, L, T, B, H, V, dtype):
        b = super().buffers(L, T, B, H, V, dtype)
        b["tmp"] = np.zeros((B, H), dtype)
        b["dnext"] = np.zeros((B, H), dtype)
        b["flags"] = np.zeros(DUO_FLAGS, np.int64)
        return b

    def train_chunk(self, t, losses):
        b = t._buf
        if t.duo and t.chunks > 1:  # min-char-rnn's model to the bit, on two threads
            rnn_train_chunk_duo(losses, t.cursor, t._data, t._kind, t._theta.as_tuple(),
                                t._grad.as_tuple(), t._theta.flat, t._grad.flat, t._opt,
                                t._hyper, b["hs"], b["tmp"], b["ys"], b["dh"], b["dnext"],
                                b["xs"], b["flags"])
            return
        rnn_train_chunk(losses, t.cursor, t._data, t.exact, t._kind, t._theta.as_tuple(),
                        t._grad.as_tuple(), t._theta.flat, t._grad.flat, t._opt, t._hyper,
                        t._rng, t._drop, b["hs"], b["tmp"], b["xin"], b["masks"], b["ys"],
                        b["dh"], b["dtmp"], b["part"], b["packs"], b["spart"], b["xs"],
                        t.chunks)

    def loss(self, t, ids, b):
        return rnn_loss(ids, t.exact, t._theta.as_tuple(), b["hs"], b["tmp"], b["xin"],
                        b["masks"], b["ys"], b["packs"], b["xs"], t.chunks)

    def forward(self, t, b, T=1, drop=0.0):
        Wemb, Wxh, Whh, bh, _, _ = t._theta.as_tuple()
        rnn_forward(b["hs"], b["tmp"], b["xin"], b["xs"], T, t.exact, drop, b["masks"], Wemb,
                    Wxh, Whh, bh, b["packs"], t.chunks)

    def backward(self, t, b, T, drop):
        _, Wxh, Whh, _, _, _ = t._theta.as_tuple()
        dWemb, dWxh, dWhh, dbh, _, _ = t._grad.as_tuple()
        rnn_backward(dWemb, dWxh, dWhh, dbh, b["dh"], b["dtmp"], b["tmp"], b["part"], b["hs"],
                     b["xin"], b["xs"], T, t.exact, drop, b["masks"], Wxh, Whh, b["packs"],
                     b["spart"], t.chunks)


class GRU(Family):
    name, G = "gru", 3

    def buffers(self, L, T, B, H, V, dtype):
        b = super().buffers(L, T, B, H, V, dtype)
        z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
        b.update(gates=z(L, T, B, 3 * H), hn=z(L, T, B, H), xa=z(T, B, 3 * H),
                 tmp=z(B, 3 * H), dx=z(T, B, H), da_x=z(T, B, 3 * H), da_h=z(T, B, 3 * H),
                 dnext=z(B, H), dtmpB=z(B, H))
        return b

    def train_chunk(self, t, losses):
        b = t._buf
        gru_train_chunk(losses, t.cursor, t._data, t._kind, t._theta.as_tuple(),
                        t._grad.as_tuple(), t._theta.flat, t._grad.flat, t._opt, t._hyper,
                        t._rng, t._drop, b["hs"], b["gates"], b["hn"], b["xa"], b["tmp"],
                        b["xin"], b["masks"], b["ys"], b["dh"], b["dx"], b["da_x"],
                        b["da_h"], b["dnext"], b["dtmpB"], b["part"], b["packs"],
                        b["spart"], b["xs"], t.chunks)

    def loss(self, t, ids, b):
        return gru_loss(ids, t._theta.as_tuple(), b["hs"], b["gates"], b["hn"], b["xa"],
                        b["tmp"], b["xin"], b["masks"], b["ys"], b["packs"],
                        b["xs"], t.chunks)

    def forward(self, t, b, T=1, drop=0.0):
        Wemb, Wxh, Whh, bxh, bhh, _, _ = t._theta.as_tuple()
        gru_forward(b["hs"], b["gates"], b["hn"], b["xa"], b["tmp"], b["xin"], b["xs"], T,
                    drop, b["masks"], Wemb, Wxh, Whh, bxh, bhh, b["packs"], t.chunks)

    def backward(self, t, b, T, drop):
        _, Wxh, Whh, _, _, _, _ = t._theta.as_tuple()
        dWemb, dWxh, dWhh, dbxh, dbhh, _, _ = t._grad.as_tuple()
        gru_backward(dWemb, dWxh, dWhh, dbxh, dbhh, b["dh"], b["dx"], b["da_x"], b["da_h"],
                     b["dnext"], b["dtmpB"], b["part"], b["hs"], b["gates"], b["hn"], b["xin"],
                     b["xs"], T, drop, b["masks"], Wxh, Whh, b["packs"], b["spart"],
                     t.chunks)


class LSTM(Family):
    name, G, cell = "lstm", 4, True

    def buffers(self, L, T, B, H, V, dtype):
        b = super().buffers(L, T, B, H, V, dtype)
        z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
        b.update(cs=z(L, T + 1, B, H), gates=z(L, T, B, 4 * H), tc=z(L, T, B, H),
                 tmp=z(B, 4 * H), dx=z(T, B, H), da=z(T, B, 4 * H),
                 dnext=z(B, H), dcnext=z(B, H))
        return b

    def train_chunk(self, t, losses):
        b = t._buf
        lstm_train_chunk(losses, t.cursor, t._data, t._kind, t._theta.as_tuple(),
                         t._grad.as_tuple(), t._theta.flat, t._grad.flat, t._opt, t._hyper,
                         t._rng, t._drop, b["hs"], b["cs"], b["gates"], b["tc"],
                         b["tmp"], b["xin"], b["masks"], b["ys"], b["dh"], b["dx"], b["da"],
                         b["dnext"], b["dcnext"], b["part"], b["packs"], b["spart"],
                         b["xs"], t.chunks)

    def loss(self, t, ids, b):
        return lstm_loss(ids, t._theta.as_tuple(), b["hs"], b["cs"], b["gates"], b["tc"],
                         b["tmp"], b["xin"], b["masks"], b["ys"], b["packs"],
                         b["xs"], t.chunks)

    def forward(self, t, b, T=1, drop=0.0):
        Wemb, Wxh, Whh, bxh, bhh, _, _ = t._theta.as_tuple()
        lstm_forward(b["hs"], b["cs"], b["gates"], b["tc"], b["tmp"], b["xin"],
                     b["xs"], T, drop, b["masks"], Wemb, Wxh, Whh, bxh, bhh, b["packs"],
                     t.chunks)

    def backward(self, t, b, T, drop):
        _, Wxh, Whh, _, _, _, _ = t._theta.as_tuple()
        dWemb, dWxh, dWhh, dbxh, dbhh, _, _ = t._grad.as_tuple()
        lstm_backward(dWemb, dWxh, dWhh, dbxh, dbhh, b["dh"], b["dx"], b["da"], b["dnext"],
                      b["dcnext"], b["part"], b["hs"], b["cs"], b["gates"], b["tc"],
                      b["xin"], b["xs"], T, drop, b["masks"], Wxh, Whh, b["packs"],
                      b["spart"], t.chunks)


FAMILIES = {f.name: f for f in (RNN(), GRU(), LSTM())}
