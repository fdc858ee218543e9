"""The model families on the Python side: parameter layout and public names,
initialisation, the buffers each family's kernels borrow, and which compiled entry
point runs what. Dispatch between families, paths and thread counts happens here,
never inside compiled code."""
import os

import numba
import numpy as np

from .kernels import duo, entries, gru, lstm, rnn
from .kernels.records import Params
from .kernels.panels import packed_size
from .kernels.team import Call, flag_count


# Every array allocated for the kernels (the flat parameters, gradients and optimizer
# memory, and each buffer) starts on a cache line (64 bytes, an AVX-512 vector), and so
# does a weight inside the flat buffer when the ones before it fill whole lines (Whh at
# gru hidden 128, not at rnn hidden 100). np.zeros gives 16-byte alignment, so a
# process's addresses decided whether BLAS's gemv read Whh's rows in whole lines or
# split each load across two: measured at gru hidden 128, one stream, float32 (2-core
# Intel Xeon), 236-244 us an iteration with the parameters aligned and 274-280 without,
# the same code in the same session.
ALIGN = 64


def zeros(shape, dtype):
    """np.zeros(shape, dtype), its data starting on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size].view(dtype).reshape(shape)


class Family:
    """What differs between rnn, gru and lstm; subclasses fill it in."""
    G = 1  # gates per layer
    cell = False  # whether there is a cell state besides h
    biases = ("bxh", "bhh")  # per layer: PyTorch's two; min-char-rnn has one
    Buffers = None  # the kernels.records type of its buffers
    exact = False  # whether min-char-rnn's arithmetic, op by op, exists for it

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

    default_init = "pytorch"  # model.init's "auto"

    def init(self, public, seed, H, scheme="auto"):
        """Initial weights by model.init's scheme, drawn from RandomState(seed) in the
        order of `public`; see INITS."""
        scheme = self.default_init if scheme == "auto" else scheme
        rng = np.random.RandomState(seed)
        for name, view in public.items():
            view[...] = INITS[scheme](rng, name, view.shape, self.G, H)

    def buffers(self, L, T, B, H, V, dtype):
        """The kernels' buffers (kernels.records), allocated once."""
        z = lambda *shape: zeros(shape, dtype)  # noqa: E731
        W = os.cpu_count() or 1
        G = self.G
        shared = dict(hs=z(L, T + 1, B, H), xin=z(max(L - 1, 1), T, B, H),
                      masks=z(max(L - 1, 1), T, B, H), ys=z(T, B, V), dh=z(T, B, H),
                      dx=z(T, B, H), xs=zeros((T + 1, B), np.int32),
                      part=z(W, max(G * H, V), H), spart=z(W, G * H),
                      packs=z(L, self.packed(B, H, dtype)), sums=zeros((2, W), np.float64),
                      flags=zeros(flag_count(W), np.int64))
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

    def gradients_call(self, net, buf, drop, path):
        return Call(entries.gradients, (net, buf, drop, path))

    def steps_call(self, P, buf, T, drop, path):
        return Call(entries.steps, (P, buf, T, drop, path))


class RNN(Family):
    """min-char-rnn's tanh cell with its names: Wxh.{l}, Whh.{l}, bh.{l}, Why, by."""
    name = "rnn"
    biases = ("bh",)
    exact = True
    Buffers = rnn.RNNBuffers

    default_init = "minchar"

    def own_buffers(self, L, T, B, H, z):
        return dict(tmp=z(B, H), dnext=z(B, H), duo=zeros(duo.FLAGS, np.int64))

    def train_call(self, losses, net, run, buf, path, threads, two_thread_rnn=False):
        if two_thread_rnn:  # min-char-rnn's model to the bit, on two threads
            numba.set_num_threads(2)
            return Call(duo.rnn_train_duo, (losses, *net, run, buf))
        return super().train_call(losses, net, run, buf, path, threads)


class GRU(Family):
    name, G = "gru", 3
    Buffers = gru.GRUBuffers

    def own_buffers(self, L, T, B, H, z):
        return dict(gates=z(L, T, B, 3 * H), hn=z(L, T, B, H), xa=z(T, B, 3 * H),
                    tmp=z(B, 3 * H), da_x=z(T, B, 3 * H), da_h=z(T, B, 3 * H),
                    dnext=z(B, H), dtmp=z(B, H))


class LSTM(Family):
    name, G, cell = "lstm", 4, True
    Buffers = lstm.LSTMBuffers

    def own_buffers(self, L, T, B, H, z):
        return dict(cs=z(L, T + 1, B, H), gates=z(L, T, B, 4 * H), tc=z(L, T, B, H),
                    tmp=z(B, 4 * H), da=z(T, B, 4 * H), dnext=z(B, H), dcnext=z(B, H))


def _minchar(rng, name, shape, G, H):
    """min-char-rnn's: weights randn * 0.01, biases zero; with one layer the draws are
    min-char-rnn's after np.random.seed(seed)."""
    return 0 if name.startswith("b") else rng.randn(*shape) * 0.01


def _pytorch(rng, name, shape, G, H):
    """PyTorch's for recurrent layers, U(-1/sqrt(H), 1/sqrt(H)) for every weight and
    bias, then min-char-rnn's output layer (randn * 0.01, zero)."""
    if name in ("Why", "by"):
        return _minchar(rng, name, shape, G, H)
    k = 1.0 / np.sqrt(H)
    return rng.uniform(-k, k, shape)


def _blocks(rng, name, shape, G, draw):
    """A weight (G*H, fan_in) drawn gate by gate, each block (H, fan_in) by draw; the
    output layer Why (V, H) as one block."""
    G = 1 if name == "Why" else G
    return np.concatenate([draw(rng, (shape[0] // G, shape[1])) for _ in range(G)])


def _glorot(rng, shape):
    """Glorot and Bengio's uniform: variance 2 / (fan_in + fan_out)."""
    a = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-a, a, shape)


def _orthogonal(rng, shape):
    """Saxe et al.'s: orthonormal rows or columns (whichever there are fewer of), from
    the QR decomposition of a Gaussian matrix with the signs of R's diagonal."""
    rows, cols = shape
    a = rng.randn(max(rows, cols), min(rows, cols))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def _xavier(rng, name, shape, G, H):
    """Glorot uniform for every weight matrix (per gate), biases zero: each layer's
    pre-activations keep their scale through stacked tanh layers."""
    return 0 if name.startswith("b") else _blocks(rng, name, shape, G, _glorot)


def _orthogonal_init(rng, name, shape, G, H):
    """Orthogonal recurrent and layer-to-layer weights (per gate), Glorot uniform for
    the output layer, biases zero."""
    if name.startswith("b"):
        return 0
    return _blocks(rng, name, shape, G, _glorot if name == "Why" else _orthogonal)


# model.init's schemes; "auto" is each family's default_init
INITS = dict(minchar=_minchar, pytorch=_pytorch, xavier=_xavier, orthogonal=_orthogonal_init)


FAMILIES = {f.name: f for f in (RNN(), GRU(), LSTM())}


def flat_params(arrays, dtype):
    """One zeroed flat buffer (N,) and a Params of named views into it."""
    sizes = [int(np.prod(shape)) for _, shape in arrays]
    flat = zeros(sum(sizes), dtype)
    views, offset = {}, 0
    for (name, shape), size in zip(arrays, sizes):
        views[name] = flat[offset:offset + size].reshape(shape)
        offset += size
    return flat, Params(**views)
