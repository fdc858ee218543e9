"""The model families on the Python side: parameter layout and public names,
initialisation, the buffers each family's kernels borrow, and which compiled entry
point runs what. Dispatch between families, paths and thread counts happens here,
never inside compiled code."""
import os

import numba
import numpy as np

from .kernels import duo, entries
from .kernels.records import GRUBuffers, LSTMBuffers, Paragraphs, Params, RNNBuffers
from .kernels.step import packed_size
from .kernels.team import Call, flag_count


class Family:
    """What differs between rnn, gru and lstm; subclasses fill it in."""
    G = 1  # gates per layer
    cell = False  # whether there is a cell state besides h
    biases = ("bxh", "bhh")  # per layer: PyTorch's two; min-char-rnn has one
    Buffers = None  # the kernels.records type of its buffers

    def arrays(self, V, H, L):
        """The parameters' (name, shape) in the order of kernels.records.Params, which is
        the flat buffer's."""
        GH = self.G * H
        return [("Wemb", (V, GH)), ("Wxh", (L - 1, GH, H)), ("Whh", (L, GH, H)),
                ("bxh", (L, GH)), ("bhh", (L, GH if len(self.biases) == 2 else 0)),
                ("Why", (V, H)), ("by", (V,))]

    def public(self, P, L):
        """Public names (PyTorch's orientation and gate order; min-char-rnn's for the
        vanilla RNN) as writable views of the Params P."""
        out = {}
        for l in range(L):
            out[f"Wxh.{l}"] = P.Wemb.T if l == 0 else P.Wxh[l - 1]
            out[f"Whh.{l}"] = P.Whh[l]
            for name, array in zip(self.biases, (P.bxh, P.bhh)):
                out[f"{name}.{l}"] = array[l]
        out["Why"] = P.Why
        out["by"] = P.by
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
        """The kernels' buffers (kernels.records), allocated once."""
        z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
        W = os.cpu_count() or 1
        G = self.G
        shared = dict(hs=z(L, T + 1, B, H), xin=z(max(L - 1, 1), T, B, H),
                      masks=z(max(L - 1, 1), T, B, H), ys=z(T, B, V), dh=z(T, B, H),
                      dx=z(T, B, H), xs=np.zeros((T + 1, B), np.int32),
                      part=z(W, max(G * H, V), H), spart=z(W, G * H),
                      packs=z(L, self.packed(B, H, dtype)), sums=np.zeros((2, W)),
                      flags=np.zeros(flag_count(W), np.int64))
        return self.Buffers(**shared, **self.own_buffers(L, T, B, H, z))

    def packed(self, B, H, dtype):
        """Elements of one layer's packed Whh, for the forward product or BPTT's."""
        if B == 1:
            return 0
        x = np.empty(0, dtype)
        return max(packed_size(self.G * H, H, x), packed_size(H, self.G * H, x))

    def states(self, buf):
        """The state arrays carried between windows: hs, and cs for an LSTM."""
        return [buf.hs, buf.cs] if self.cell else [buf.hs]

    # --- which compiled entry point runs what (kernels.team.Call) ---------------------
    def train_call(self, losses, net, run, buf, path, threads, two_thread_rnn=False):
        return Call(entries.train, (losses, net, run, buf, path), threads)

    def loss_call(self, ids, P, buf, path, threads):
        loss = entries.paragraph_loss if isinstance(ids, Paragraphs) else entries.loss
        return Call(loss, (ids, P, buf, path), threads)

    def gradients_call(self, net, buf, drop, path):
        return Call(entries.gradients, (net, buf, drop, path))

    def steps_call(self, P, buf, T, path):
        return Call(entries.steps, (P, buf, T, path))


class RNN(Family):
    """min-char-rnn's tanh cell with its names: Wxh.{l}, Whh.{l}, bh.{l}, Why, by."""
    name = "rnn"
    biases = ("bh",)
    Buffers = RNNBuffers

    def init(self, public, seed, H):
        """min-char-rnn's initialisation: weights randn * 0.01 drawn in order, biases
        zero; with one layer the draws are min-char-rnn's after np.random.seed(seed)."""
        rng = np.random.RandomState(seed)
        for name, view in public.items():
            view[...] = 0 if name.startswith("b") else rng.randn(*view.shape) * 0.01

    def own_buffers(self, L, T, B, H, z):
        return dict(tmp=z(B, H), dnext=z(B, H), duo=np.zeros(duo.FLAGS, np.int64))

    def train_call(self, losses, net, run, buf, path, threads, two_thread_rnn=False):
        if two_thread_rnn:  # min-char-rnn's model to the bit, on two threads
            numba.set_num_threads(2)
            return Call(duo.rnn_train_duo, (losses, *net, run, buf))
        return super().train_call(losses, net, run, buf, path, threads)


class GRU(Family):
    name, G = "gru", 3
    Buffers = GRUBuffers

    def own_buffers(self, L, T, B, H, z):
        return dict(gates=z(L, T, B, 3 * H), hn=z(L, T, B, H), xa=z(T, B, 3 * H),
                    tmp=z(B, 3 * H), da_x=z(T, B, 3 * H), da_h=z(T, B, 3 * H),
                    dnext=z(B, H), dtmp=z(B, H))


class LSTM(Family):
    name, G, cell = "lstm", 4, True
    Buffers = LSTMBuffers

    def own_buffers(self, L, T, B, H, z):
        return dict(cs=z(L, T + 1, B, H), gates=z(L, T, B, 4 * H), tc=z(L, T, B, H),
                    tmp=z(B, 4 * H), da=z(T, B, 4 * H), dnext=z(B, H), dcnext=z(B, H))


FAMILIES = {f.name: f for f in (RNN(), GRU(), LSTM())}


def flat_params(arrays, dtype):
    """One zeroed flat buffer (N,) and a Params of named views into it."""
    sizes = [int(np.prod(shape)) for _, shape in arrays]
    flat = np.zeros(sum(sizes), dtype)
    views, offset = {}, 0
    for (name, shape), size in zip(arrays, sizes):
        views[name] = flat[offset:offset + size].reshape(shape)
        offset += size
    return flat, Params(**views)
