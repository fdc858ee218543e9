"""The Trainer: owns the parameters, optimizer state, buffers and data pointer of one
model, and drives the compiled kernels a chunk of iterations at a time."""
import copy
import math
import os
from pathlib import Path

import numpy as np

from . import blas, checkpoint
from . import params as P
from .config import Config, load_yaml
from .data import Corpus, read_text, resolve
from .errors import UserError
from .kernels.rnn import rnn_loss, rnn_train_chunk

ADAGRAD_EPS = 1e-8  # min-char-rnn's


class Trainer:
    """Train a char-level RNN.

    >>> t = Trainer({"data": {"path": "input.txt"}, "model": {"hidden": 100}})
    >>> losses = t.train_iters(1000)   # nats per character of each iteration
    """

    def __init__(self, config, text=None):
        self.config = cfg = config if isinstance(config, Config) else Config.from_dict(config)
        if text is None:
            text = read_text(resolve(cfg.data.path))
        self.corpus = Corpus(text, cfg.data.val_fraction)
        self.vocab = self.corpus.vocab
        V, H, L = len(self.vocab), cfg.model.hidden, cfg.model.layers
        T, B = cfg.train.seq_length, cfg.train.batch_size
        need = T + 1
        if len(self.corpus.train) // B < need:
            raise UserError(
                f"train.seq_length: {T} is too long for the training text "
                f"({len(self.corpus.train)} characters in {B} stream(s) need at least "
                f"{need} each); lower train.seq_length or train.batch_size, or use more text")
        self.dtype = np.dtype(cfg.train.dtype)
        # float64 reproduces min-char-rnn bit for bit unless told otherwise; float32
        # takes the faster path of matrix products over all steps (kernels.rnn).
        self.exact = bool(cfg.train.exact and self.dtype == np.float64)
        self.threads = cfg.train.threads or (1 if B == 1 else os.cpu_count() or 1)
        arrays = P.rnn_arrays(V, H, L)
        self._theta = P.FlatBuffer(arrays, self.dtype)
        self._grad = P.FlatBuffer(arrays, self.dtype)
        self._mem = np.zeros_like(self._theta.flat)  # Adagrad memory
        self._public = P.public_views(self._theta.views, L)
        P.init_weights(self._public, cfg.train.seed)
        self._hyper = np.array([cfg.optim.lr, cfg.optim.clip, ADAGRAD_EPS], dtype=self.dtype)
        self._data = self.corpus.streams(B)
        # Buffers the kernels borrow; allocated once here.
        self._hs = np.zeros((L, T + 1, B, H), self.dtype)  # hs[:, 0]: carried state
        self._tmp = np.zeros((B, H), self.dtype)
        self._ys = np.zeros((T, B, V), self.dtype)
        self._dh = np.zeros((T, B, H), self.dtype)
        self._dtmp = np.zeros((T, B, H), self.dtype)
        self._xs = np.zeros((T + 1, B), np.int32)
        self._eval = None  # buffers of evaluate(), made on first use
        self.cursor = np.zeros(2, np.int64)  # [data pointer, iteration]
        self.smooth_loss = -math.log(1.0 / V) * T  # min-char-rnn's smooth_loss at n = 0
        self.extra = {}  # the runner's state, kept in checkpoints

    @classmethod
    def from_yaml(cls, path, overrides=()):
        return cls(load_yaml(Path(path), overrides))

    @property
    def iteration(self):
        return int(self.cursor[1])

    def train_iters(self, n):
        """Train n iterations; returns their losses in nats per character (mean over the
        T steps and B streams)."""
        if self.corpus is None:
            raise UserError("this trainer was loaded without its text (data=False); "
                            "load it with data=True to train")
        losses = np.empty(int(n), np.float64)
        if n <= 0:
            return losses
        blas.set_threads(self.threads)
        rnn_train_chunk(losses, self.cursor, self._data, self.exact, self._theta.as_tuple(),
                        self._grad.as_tuple(), self._theta.flat, self._grad.flat, self._mem,
                        self._hyper, self._hs, self._tmp, self._ys, self._dh, self._dtmp,
                        self._xs)
        T = self.config.train.seq_length
        smooth = self.smooth_loss
        for loss in losses:  # min-char-rnn's running average of the loss per sequence
            smooth = smooth * 0.999 + loss * T * 0.001
        self.smooth_loss = smooth
        return losses

    def loss_of(self, ids):
        """Mean nats per character of predicting ids[1:] from ids[:-1] from a zero state."""
        if len(ids) < 2:
            raise UserError("need at least 2 characters to measure a loss")
        if self._eval is None:
            L, T1, _, H = self._hs.shape
            self._eval = (np.zeros((L, T1, 1, H), self.dtype), np.zeros((1, H), self.dtype),
                          np.zeros((T1 - 1, 1, len(self.vocab)), self.dtype),
                          np.zeros((T1, 1), np.int32))
        hs, tmp, ys, xs = self._eval
        total = rnn_loss(np.ascontiguousarray(ids, np.int32), self.exact, self._theta.as_tuple(),
                         hs, tmp, ys, xs)
        return total / (len(ids) - 1)

    def evaluate(self):
        """Mean nats per character on the validation split (the last data.val_fraction of
        the text), read as one stream from a zero state."""
        if len(self.corpus.val) < 2:
            raise UserError("no validation text: set data.val_fraction above 0 "
                            "(e.g. data.val_fraction=0.1)")
        return self.loss_of(self.corpus.val)

    def params(self):
        """The parameters as float64 copies, in min-char-rnn's names and orientation."""
        return {name: np.array(view, dtype=np.float64) for name, view in self._public.items()}

    def set_params(self, values):
        """Copy parameters in; ValueError naming the key on an unknown name or wrong shape."""
        for name, value in values.items():
            if name not in self._public:
                raise UserError(f"set_params: unknown parameter '{name}'; this model has "
                                f"{', '.join(self._public)}")
            value = np.asarray(value)
            if value.shape != self._public[name].shape:
                raise UserError(f"set_params: '{name}' has shape {value.shape}, this model "
                                f"needs {self._public[name].shape}")
        for name, value in values.items():
            self._public[name][...] = value

    def carried_state(self):
        """(h (L, H), id of the next input character) of the first stream: where
        training would go on from."""
        if self.corpus is None:
            return self._carried
        p = int(self.cursor[0]) if self.iteration > 0 else 0
        h = self._hs[:, 0, 0] if self.iteration > 0 else np.zeros_like(self._hs[:, 0, 0])
        return np.array(h), int(self._data[0, p % self._data.shape[1]])

    def save(self, path, extra=None):
        """Write a checkpoint (see fastrnn.checkpoint) atomically to path."""
        checkpoint.save(self, path, extra)


def load(path, text=None, data=True):
    """A Trainer from a checkpoint file or a run folder (its latest checkpoint).

    The training text is read from the checkpoint's data.path (or given as text) and
    must have the checkpoint's vocabulary. With data=False no text is read: the trainer
    can sample and be inspected, not trained."""
    path = checkpoint.find(path)
    arrays = checkpoint.read(path)
    cfg = arrays["config"]
    if text is None and not data:
        # the vocabulary stands in for the text: enough to build the model and sample
        small = copy.deepcopy(cfg)
        small.data.val_fraction, small.train.seq_length, small.train.batch_size = 0.0, 1, 1
        trainer = Trainer(small, text="".join(arrays["vocab"]) * 2)
        trainer.config, trainer.corpus = cfg, None
        trainer._carried = (arrays["state"][:, 0], int(arrays["next_input"]))
        trainer._theta.flat[...] = arrays["theta"]
        trainer._mem[...] = arrays["mem"]
        trainer.cursor[...] = arrays["cursor"]
        trainer.smooth_loss = float(arrays["smooth_loss"])
        trainer.extra = arrays["extra"]
        return trainer
    trainer = Trainer(cfg, text=text)
    checkpoint.restore(trainer, arrays, path)
    trainer.extra = arrays["extra"]
    return trainer
