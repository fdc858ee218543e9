"""The Model: a network on its own, without a corpus or an optimizer. Its family, sizes,
vocabulary and dtype, its parameters in one flat buffer, and the compiled forward steps
and loss over them: what sampling, export, evaluation and init_from use. A Trainer
holds one and adds the optimizer state, the buffers of training and the data."""
import os
from pathlib import Path

import numba
import numpy as np

from . import blas, checkpoint
from .config import Config
from .encoding import as_ids
from .errors import UserError
from .kernels.bfloat import BF16
from .kernels.panels import mixed_sizes
from .kernels.records import Batched, Exact, Mixed, OneStream
from .kernels.team import Call
from .models import FAMILIES, flat_params, zeros
from .reading import MODES, mode_of, streams_of


class Model:
    """A char-level RNN, GRU or LSTM by config (its model and dtype keys) and
    vocabulary, with weights initialised from train.seed.

    >>> m = load_model("runs/shakespeare")     # a run folder or checkpoint
    >>> m.loss_of(ids, streams=8)               # nats per character
    """

    def __init__(self, config, vocab):
        self.config = cfg = config if isinstance(config, Config) else Config.from_dict(config)
        self.vocab = list(vocab)
        self.family = family = FAMILIES[cfg.model.kind]
        self.dtype = np.dtype(cfg.train.dtype)
        V, H, L = len(self.vocab), cfg.model.hidden, cfg.model.layers
        # The vanilla RNN in float64 reproduces min-char-rnn bit for bit unless told
        # otherwise, or reading a way its arithmetic has no place for (paragraphs);
        # everything else takes the faster path of matrix products over all steps
        # (kernels.rnn).
        self.exact = bool(cfg.train.exact and self.dtype == np.float64
                          and family.exact and MODES[cfg.data.records].exact)
        # bf16 operands for the products of many streams where the CPU has them (a
        # Trainer refuses bf16 on a CPU without; a Model read for sampling or
        # evaluation there runs its products in float32)
        self.mixed = cfg.train.precision == "bf16" and BF16
        # dropout between layers in training: None for none, so that its code is not
        # compiled
        self.drop = float(cfg.model.dropout) if L > 1 and cfg.model.dropout > 0 else None
        self._scratch = {}  # (B, T, backward): the Mixed path's operand buffers
        self.theta, self.P = flat_params(family.arrays(V, H, L), self.dtype)
        self._public = family.public(self.P, L)
        family.init(self._public, cfg.train.seed, H, cfg.model.init)
        # threads of the kernels (a Trainer chooses its own); chunks: how many share the
        # work of a call (set_threads)
        self.threads = cfg.train.threads or os.cpu_count() or 1
        self.chunks = 1
        self._eval = None  # buffers of loss_call, made on first use
        # where the weights come from: a checkpoint's iteration and runner state, and
        # the first stream's carried state (S, L, H) with the id of its next input
        self.iteration, self.extra = 0, {}
        S = 2 if family.cell else 1
        self.carried = (np.zeros((S, L, H), self.dtype), 0)

    @classmethod
    def from_checkpoint(cls, arrays):
        """The Model of a checkpoint's arrays (checkpoint.read)."""
        model = cls(arrays["config"], arrays["vocab"])
        model.theta[...] = arrays["theta"]
        model.carried = (np.array(arrays["state"][:, :, 0], model.dtype),
                         int(arrays["next_input"]))
        model.iteration = int(arrays["cursor"][1])
        model.extra = arrays["extra"]
        return model

    def path(self, B, T, backward=False):
        """The kernels' path (kernels.records) for buffers of B streams and T steps
        (with backward: for training's products too)."""
        if self.exact:
            return Exact()
        if B == 1:
            return OneStream()
        if not self.mixed:
            return Batched()
        key = (B, T, backward)
        if key not in self._scratch:
            a, w = mixed_sizes(len(self.vocab), self.config.model.hidden, self.family.G, B,
                               T, backward)
            self._scratch[key] = Mixed(zeros(a, np.uint32), zeros(w, np.uint32))
        return self._scratch[key]

    def set_threads(self):
        """Threads for the next call (at most NUMBA_NUM_THREADS, which sweep workers
        set to 1), each taking its own share of the streams, rows or columns and calling
        a one-thread BLAS inside it (OpenBLAS's own threads were slower for these
        shapes: measured)."""
        self.chunks = max(1, min(self.threads, numba.config.NUMBA_NUM_THREADS,
                                 os.cpu_count() or 1))
        blas.set_threads(1)

    @property
    def no_drop(self):
        """The dropout of reading without it (validation, sampling): of the training's
        type, 0.0 or None, so that it runs the training's compiled forward steps."""
        return None if self.drop is None else 0.0

    @property
    def size(self):
        """Parameters in all."""
        return self.theta.size

    def params(self):
        """The parameters as float64 copies, in min-char-rnn's names and orientation."""
        return {name: np.array(view, dtype=np.float64) for name, view in self._public.items()}

    def set_params(self, values):
        """Copy parameters in; UserError naming the key on an unknown name or wrong
        shape."""
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

    def loss_of(self, ids, streams=1, starts=None):
        """Mean nats per character of predicting ids[1:] from ids[:-1] without dropout,
        the text cut into `streams` contiguous pieces (which the threads share), each
        read from a zero state; the last len(ids) % streams ids are left out. With
        starts (P+1,), ids are paragraphs instead, ids[starts[i]:starts[i+1]], each read
        from a zero state with its first character given (not scored), by `streams`
        streams (reading.Paragraphs)."""
        mode = MODES["stream" if starts is None else "paragraphs"]
        ids = as_ids(ids, len(self.vocab))  # (the dtype the kernels were compiled for)
        rows, scored = mode.rows(ids, starts, streams, self.config.train.seq_length)
        return self.loss_call(rows)() / scored

    def loss_call(self, rows, states=None):
        """The kernels.team.Call of the summed loss over rows (a reading mode's
        rows()), each read from a zero state; or, for stream rows (B, S) and states
        (S', L, H) or (S', L, B, H) (h, and c for an LSTM), from those states in every
        stream, or each stream's own (kernels.entries.loss_from): the states after the
        rows are then left for end_states()."""
        cfg = self.config
        streams = streams_of(rows)
        if self._eval is None or self._eval.xs.shape[1] != streams:
            self._eval = self.family.buffers(cfg.model.layers, cfg.train.seq_length,
                                             streams, cfg.model.hidden, len(self.vocab),
                                             self.dtype)
        self.set_threads()
        mode = mode_of(rows)
        if not mode.in_context and states is not None:
            raise ValueError("states are for stream rows only")
        if mode.in_context:  # (its loss reads from the states in the buffers)
            for i, a in enumerate(self.family.states(self._eval)):
                s = np.zeros(()) if states is None else np.asarray(states[i])
                a[:, 0] = s[:, None, :] if s.ndim == 2 else s  # (L, H): every stream
        return Call(mode.loss_entry, (rows, self.P, self._eval, self.no_drop,
                                       self.path(streams, cfg.train.seq_length)),
                    self.chunks)

    def end_states(self):
        """A copy of the streams' states after the last loss_call, (S, L, B, H)."""
        return np.array([a[:, 0] for a in self.family.states(self._eval)])

    def carried_state(self):
        """(states (S, L, H): h, and c for an LSTM; the id of the next input character)
        to go on from: a checkpoint's first stream, else a zero state and id 0."""
        return self.carried

    def stepper(self, streams=1):
        """A Stepper: this model's `streams` streams read one character at a time, for
        sampling."""
        return Stepper(self, streams)


class Stepper:
    """B streams of a model read one character at a time from its own weights, for
    sampling. States are (S, L, B, H) arrays: h, and c for an LSTM."""

    def __init__(self, model, streams=1):
        cfg, family = model.config, model.family
        self.buf = family.buffers(cfg.model.layers, 1, streams, cfg.model.hidden,
                                  len(model.vocab), model.dtype)
        self.states = family.states(self.buf)  # each (L, 2, B, H); [:, 0] the state
        self.call = family.steps_call(model.P, self.buf, 1, model.no_drop,
                                      model.path(streams, 1))
        self.Why = model.P.Why.astype(np.float64)
        self.by = model.P.by.astype(np.float64)

    def reset(self):
        """Every stream to a zero state."""
        for a in self.states:
            a[:, 0] = 0

    def load(self, states):
        """(S, L, H) states into every stream."""
        for a, saved in zip(self.states, states):
            a[:, 0] = np.asarray(saved)[:, None, :]

    def step(self, ids):
        """Read one character per stream; the logits of the next, (B, V) float64."""
        self.buf.xs[0] = ids
        self.call()
        for a in self.states:
            a[:, 0] = a[:, 1]
        return self.buf.hs[-1, 1].astype(np.float64) @ self.Why.T + self.by

    def state(self):
        """A copy of the streams' states, (S, L, B, H)."""
        return np.array([a[:, 0] for a in self.states])

    def set_state(self, states):
        for a, saved in zip(self.states, states):
            a[:, 0] = saved


def load_model(path):
    """The Model of a checkpoint file or a run folder (its latest checkpoint), with the
    checkpoint's iteration, runner state (extra) and carried state; no text is read."""
    path = checkpoint.find(Path(path))
    return Model.from_checkpoint(checkpoint.read(path))
