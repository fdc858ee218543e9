"""Parameters, gradients and optimizer state: each one flat buffer with named views.

The kernels see the internal views (fastrnn.kernels.rnn documents them); users see
min-char-rnn's names and orientation through ``public_views``: for layer l,
``Wxh.{l}`` (H, V for l = 0, else H), ``Whh.{l}`` (H, H), ``bh.{l}`` (H,), then
``Why`` (V, H) and ``by`` (V,).
"""
import numpy as np


def rnn_arrays(V, H, L):
    """Internal arrays of a vanilla RNN, in buffer order: (name, shape)."""
    return [("Wemb", (V, H)), ("Wxh", (L - 1, H, H)), ("Whh", (L, H, H)),
            ("bh", (L, H)), ("Why", (V, H)), ("by", (V,))]


class FlatBuffer:
    """One contiguous array holding every named array as a view."""

    def __init__(self, arrays, dtype):
        self.names = [name for name, _ in arrays]
        sizes = [int(np.prod(shape)) for _, shape in arrays]
        self.flat = np.zeros(sum(sizes), dtype=dtype)
        self.views = {}
        offset = 0
        for (name, shape), size in zip(arrays, sizes):
            self.views[name] = self.flat[offset:offset + size].reshape(shape)
            offset += size

    def as_tuple(self):
        """The views in buffer order, as the kernels take them."""
        return tuple(self.views[name] for name in self.names)


def public_views(views, L):
    """min-char-rnn's names and orientation, as writable views of the internal arrays.
    The order is initialisation order: layer by layer, then the output layer."""
    out = {}
    for l in range(L):
        out[f"Wxh.{l}"] = views["Wemb"].T if l == 0 else views["Wxh"][l - 1]
        out[f"Whh.{l}"] = views["Whh"][l]
        out[f"bh.{l}"] = views["bh"][l]
    out["Why"] = views["Why"]
    out["by"] = views["by"]
    return out


def init_weights(public, seed):
    """min-char-rnn's initialisation: weights randn * 0.01 drawn in order, biases zero.
    With one layer the draws are exactly min-char-rnn's after np.random.seed(seed)."""
    rng = np.random.RandomState(seed)
    for name, view in public.items():
        if name.startswith("b"):
            view[...] = 0
        else:
            view[...] = rng.randn(*view.shape) * 0.01
