"""Parameters and gradients each live in one flat buffer with named views, so that
clipping, norms and optimizer updates are single loops. The kernels see the internal
views; fastrnn.models maps them to the public names."""
import numpy as np


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
