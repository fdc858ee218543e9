"""The Trainer: owns the parameters, optimizer state, buffers and data pointer of one
model, and drives the compiled kernels a chunk of iterations at a time."""
import contextlib
import copy
import math
import os
import signal
import threading
from pathlib import Path

import numba
import numpy as np

from . import blas, checkpoint
from .config import Config, load_yaml
from .data import Corpus, read_corpus
from .errors import UserError
from .kernels.optim import HORIZON, LR_SCALE, learning_rate, settings
from .kernels.records import Batched, Exact, Masked, Net, OneStream, Paragraphs, Training
from .models import FAMILIES, flat_params, zeros


class Trainer:
    """Train a char-level RNN, GRU or LSTM.

    >>> t = Trainer({"data": {"path": "input.txt"}, "model": {"hidden": 100}})
    >>> losses = t.train_iters(1000)   # nats per character of each iteration
    """

    def __init__(self, config, text=None):
        self.config = cfg = config if isinstance(config, Config) else Config.from_dict(config)
        if text is None:
            text = read_corpus(cfg.data.path)
        # data.records: paragraphs reads the text as paragraphs (kernels.paragraphs)
        self.paragraphs = cfg.data.records == "paragraphs"
        self.corpus = Corpus(text, cfg.data.val_fraction,
                             test_fraction=cfg.data.test_fraction, records=cfg.data.records)
        self.vocab = self.corpus.vocab
        V, H, L = len(self.vocab), cfg.model.hidden, cfg.model.layers
        T, B = cfg.train.seq_length, cfg.train.batch_size
        _check_splits(cfg, self.corpus, len(text))
        _check_memory(cfg, V)
        self.family = family = FAMILIES[cfg.model.kind]
        self.dtype = np.dtype(cfg.train.dtype)
        # The vanilla RNN in float64 reproduces min-char-rnn bit for bit unless told
        # otherwise, or reading paragraphs (its arithmetic has no place for them);
        # everything else takes the faster path of matrix products over all steps
        # (kernels.rnn).
        self.exact = bool(cfg.train.exact and self.dtype == np.float64
                          and cfg.model.kind == "rnn" and not self.paragraphs)
        # min-char-rnn's own model, exact, runs its recurrence and its output layer on
        # two threads side by side (kernels.duo); it needs no other split
        # (weight decay is not min-char-rnn's: the duo has no place for it)
        self.duo = (self.exact and cfg.model.kind == "rnn" and L == 1 and B == 1
                    and not cfg.optim.weight_decay)
        # A single stream of a small model runs faster on one thread: below hidden 256
        # (python -m fastrnn.bench), or below 48 for the duo, whose two threads wait on
        # each other every step (benchmarks/bench_threads.py)
        small = B == 1 and H < (48 if self.duo else 256)
        self.threads = cfg.train.threads or (1 if small else os.cpu_count() or 1)
        arrays = family.arrays(V, H, L)
        theta, P = flat_params(arrays, self.dtype)
        grad, G = flat_params(arrays, self.dtype)
        memory = zeros((2, theta.size), self.dtype)  # the optimizer's
        self.net = Net(P, G, theta, grad, memory)
        self._public = family.public(P, L)
        family.init(self._public, cfg.train.seed, H, cfg.model.init)
        o = cfg.optim
        hyper = settings(lr=o.lr, clip=o.clip, clip_norm=o.clip_norm or 0.0, eps=o.eps,
                         beta1=o.beta1, beta2=o.beta2, lr_decay=o.lr_decay,
                         decay_every=o.decay_every, optimizer=o.name, schedule=o.schedule,
                         warmup=o.warmup, min_lr=o.min_lr,
                         horizon=o.decay_iters or cfg.train.max_iters,
                         weight_decay=o.weight_decay, dtype=self.dtype)
        # the plateau schedule's multiplier of lr (kernels.optim), lowered by
        # lower_lr(); float64, and hyper[LR_SCALE] holds it in the model dtype
        self.lr_scale = np.ones((), np.float64)
        self.cursor = np.zeros(2, np.int64)  # [data pointer, iteration]
        # dropout between layers; None for none, so that its code is not compiled
        drop = float(cfg.model.dropout) if L > 1 and cfg.model.dropout > 0 else None
        if self.paragraphs:  # shuffled every pass by a generator of its own
            shuffle = np.array([cfg.train.seed * 2654435761 + 2], np.uint64)
            data = self._paragraph_data(self.corpus.train, self.corpus.starts["train"], B,
                                        shuffle)
        else:
            data = self.corpus.streams(B)
        self.run = Training(data, self.cursor,
                       np.array([cfg.train.seed * 2654435761 + 1], np.uint64),  # dropout
                       hyper, drop)
        self.buf = family.buffers(L, T, B, H, V, self.dtype)
        self.chunks = 1  # threads sharing the work; set with the rest by _set_threads
        self._eval = None  # buffers of evaluate(), made on first use
        self.smooth_loss = -math.log(1.0 / V) * T  # min-char-rnn's smooth_loss at n = 0
        self.extra = {}  # the runner's state, kept in checkpoints

    def path(self, B):
        """The kernels' path (kernels.records) for B streams."""
        return Exact() if self.exact else (Batched() if B > 1 else OneStream())

    @classmethod
    def from_yaml(cls, path, overrides=()):
        return cls(load_yaml(Path(path), overrides))

    @property
    def iteration(self):
        return int(self.cursor[1])

    def pass_iterations(self):
        """About how many iterations a pass over the training text takes."""
        T, B = self.config.train.seq_length, self.config.train.batch_size
        if not self.paragraphs:
            return len(self.corpus.train) / (T * B)
        targets = np.diff(self.corpus.starts["train"]) - 1  # each paragraph's windows
        return float(np.sum(-(-targets // T))) / B

    def train_iters(self, n):
        """Train n iterations; returns their losses in nats per character (mean over the
        T steps and B streams; with paragraphs, over the window's targets)."""
        if self.corpus is None:
            raise UserError("this trainer was loaded without its text (data=False); "
                            "load it with data=True to train")
        losses = np.empty(int(n), np.float64)
        if n <= 0:
            return losses
        with _interrupts_deferred():  # the state stays that of a finished iteration
            self.train_call(losses)()
            T = self.config.train.seq_length
            smooth = self.smooth_loss
            for loss in losses:  # min-char-rnn's running average of the loss per sequence
                smooth = smooth * 0.999 + loss * T * 0.001
            self.smooth_loss = smooth
        return losses

    def train_call(self, losses):
        """The kernels.team.Call that trains len(losses) iterations."""
        self._set_threads()
        if self.paragraphs and self.run.data.steps.size < losses.size:
            # (a window's steps for each iteration: kernels.paragraphs.start_paragraphs)
            self.run = self.run._replace(data=self.run.data._replace(
                steps=np.zeros(losses.size, np.int64)))
        B = self.config.train.batch_size
        return self.family.train_call(losses, self.net, self.run, self.buf, self.path(B),
                                      self.chunks, self.duo and self.chunks > 1)

    def use_threads(self, n):
        """Run this trainer's kernels on n threads from now on (or fewer: at most
        NUMBA_NUM_THREADS and the buffers' shares; self.chunks says how many)."""
        self.threads = n
        self._set_threads()

    def _set_threads(self):
        """Threads for this trainer's kernels (at most NUMBA_NUM_THREADS, which sweep
        workers set to 1), each taking its own share of the streams, rows or columns and
        calling a one-thread BLAS inside it (OpenBLAS's own threads were slower for
        these shapes: measured)."""
        most = self.buf.part.shape[0]
        self.chunks = max(1, min(self.threads, numba.config.NUMBA_NUM_THREADS, most))
        blas.set_threads(1)

    def _paragraph_data(self, ids, starts, streams, rng=None):
        """A kernels.records.Paragraphs of the paragraphs ids[starts[i]:starts[i+1]] for
        `streams` streams: for training with rng, the shuffle's state (the first
        iteration draws the first pass's order; train_call sizes its steps for each
        call); without, to be read once in order, with room for the steps of every
        window (each scores a target, and the last none)."""
        P = len(starts) - 1
        T = self.config.train.seq_length
        return Paragraphs(np.ascontiguousarray(ids, np.int32), np.asarray(starts, np.int64),
                          np.arange(P, dtype=np.int64),
                          np.tile(np.array([-1, 0], np.int64), (streams, 1)),
                          np.array([P if rng is not None else 0, 0, 0], np.int64),
                          np.zeros(1, np.uint64) if rng is None else rng,
                          Masked(np.zeros((T, streams), np.int32)),
                          np.zeros(1 if rng is not None else len(ids) - P + 1, np.int64))

    def loss_of(self, ids, streams=1, starts=None):
        """Mean nats per character of predicting ids[1:] from ids[:-1] without dropout,
        the text cut into `streams` contiguous pieces (which the threads share), each
        read from a zero state; the last len(ids) % streams ids are left out. With
        starts (P+1,), ids are paragraphs instead, ids[starts[i]:starts[i+1]], each read
        from a zero state with its first character given (not scored), by `streams`
        streams (data.records=paragraphs)."""
        rows, scored = self._loss_rows(ids, streams, starts)
        return self.loss_call(rows)() / scored

    def _loss_rows(self, ids, streams, starts=None):
        """(the rows loss_of reads: (streams, S) ids, or the Paragraphs of ids cut at
        starts; how many targets they score)."""
        if starts is not None:
            P = len(starts) - 1
            if P < 1:
                raise UserError("need at least one paragraph to measure a loss")
            s = np.asarray(starts, np.int64)
            if s[0] != 0 or s[-1] != len(ids) or (np.diff(s) < 1).any():
                raise UserError(f"paragraph starts must rise from 0 to {len(ids)} (the "
                                f"ids' count), each paragraph at least one id long")
            return self._paragraph_data(ids, starts, max(1, min(streams, P))), len(ids) - P
        streams = max(1, min(streams, len(ids) // 2))
        S = len(ids) // streams
        if S < 2:
            raise UserError("need at least 2 characters to measure a loss")
        rows = np.ascontiguousarray(np.asarray(ids, np.int32)[:streams * S].reshape(streams, S))
        return rows, streams * (S - 1)

    def loss_call(self, rows):
        """The kernels.team.Call of the summed loss over the streams rows."""
        cfg = self.config
        streams = rows.at.shape[0] if isinstance(rows, Paragraphs) else rows.shape[0]
        if self._eval is None or self._eval.xs.shape[1] != streams:
            self._eval = self.family.buffers(cfg.model.layers, cfg.train.seq_length, streams,
                                             cfg.model.hidden, len(self.vocab), self.dtype)
        self._set_threads()
        return self.family.loss_call(rows, self.net.P, self._eval, self.path(streams),
                                     self.chunks)

    def evaluate(self):
        """Mean nats per character on the validation split (data.val_fraction of the text,
        before the test split), read as train.batch_size contiguous streams from a zero
        state (one stream for a batch-1 model, as min-char-rnn would read it)."""
        if len(self.corpus.val) < 2:
            raise UserError("no validation text: set data.val_fraction above 0 "
                            "(e.g. data.val_fraction=0.1)")
        return self.loss_of(self.corpus.val, self.config.train.batch_size,
                            self.corpus.starts["val"] if self.paragraphs else None)

    def eval_rows(self):
        """The validation split as evaluate() reads it, (streams, S) ids (or its
        Paragraphs)."""
        starts = self.corpus.starts["val"] if self.paragraphs else None
        return self._loss_rows(self.corpus.val, self.config.train.batch_size, starts)[0]

    def gradients(self, xs):
        """(loss summed over the window's steps and averaged over streams, gradients by
        public name as float64) of one window xs (T+1, B) of ids, from a zero state and
        with the dropout masks now in the buffers; the parameters are not changed. For
        tests: training never leaves the kernels."""
        self.buf.xs[...] = xs
        for a in self.family.states(self.buf):
            a[:] = 0
        loss = self.family.gradients_call(self.net, self.buf, self.run.drop,
                                          self.path(xs.shape[1]))()
        public = self.family.public(self.net.G, self.config.model.layers)
        return loss, {k: np.array(v, dtype=np.float64) for k, v in public.items()}

    def learning_rate(self, n=None):
        """The learning rate of iteration n (the next one by default), as the kernels
        compute it."""
        n = self.iteration if n is None else n
        return float(learning_rate(self.run.hyper, np.int64(n)))

    def set_horizon(self, n):
        """The cosine schedule's end: lr reaches optim.min_lr at iteration n."""
        self.run.hyper[HORIZON] = n

    def lower_lr(self, factor):
        """Multiply the plateau schedule's lr by factor, but not below optim.min_lr;
        returns the new multiplier."""
        o = self.config.optim
        self.lr_scale[...] = max(float(self.lr_scale) * factor, o.min_lr / o.lr)
        self.run.hyper[LR_SCALE] = self.lr_scale
        return float(self.lr_scale)

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
        """(states (S, L, H): h, and c for an LSTM; id of the next input character) of
        the first stream: where training would go on from (with paragraphs, from a zero
        state at the next paragraph's start once its own has ended)."""
        if self.corpus is None:
            return self._carried
        if self.paragraphs:
            pars = self.run.data
            (p, at), starts = pars.at[0], pars.starts
            states = [a[:, 0, 0].copy() for a in self.family.states(self.buf)]
            if p < 0 or at + 1 >= starts[p + 1] - starts[p]:  # the next paragraph's
                after = int(pars.window[0])
                p, at = (pars.order[after] if after < len(pars.order) else 0), 0
                states = [np.zeros_like(a) for a in states]
            return np.array(states), int(pars.ids[starts[p] + at])
        started = self.iteration > 0
        p = int(self.cursor[0]) if started else 0
        states = np.array([a[:, 0, 0] if started else np.zeros_like(a[:, 0, 0])
                           for a in self.family.states(self.buf)])
        data = self.run.data
        return states, int(data[0, p % data.shape[1]])

    def stepper(self, streams=1):
        """A Stepper: this model's `streams` streams read one character at a time, for
        sampling."""
        return Stepper(self, streams)

    def state_dict(self):
        """Everything training goes on from, by name: theta (N,) the parameters,
        optimizer (2, N) the optimizer's memory, state (S, L, B, H) the carried states
        (h, and c for an LSTM), cursor [data pointer, iteration], rng the dropout
        generator, next_input the next character's id, smooth_loss, lr_scale the plateau
        schedule's multiplier of lr. With paragraphs also order (P,), at (B, 2) and
        window (3,), where the streams are in them (kernels.records.Paragraphs), and
        shuffle_rng their shuffle's generator. The arrays are the trainer's own, not
        copies."""
        states, next_input = self.carried_state()
        if self.corpus is None:
            state = self._state
        else:
            state = np.array([a[:, 0] for a in self.family.states(self.buf)])
        own = dict(theta=self.net.theta, optimizer=self.net.memory, state=state,
                   cursor=self.cursor, rng=self.run.rng, next_input=np.array(next_input),
                   smooth_loss=np.array(self.smooth_loss), lr_scale=self.lr_scale)
        data = self.run.data
        if isinstance(data, Paragraphs):
            own.update(order=data.order, at=data.at, window=data.window,
                       shuffle_rng=data.rng)
        return own

    def load_state_dict(self, saved, where="checkpoint"):
        """Copy a state_dict() in; UserError naming `where` and the entry when one is
        missing or has another shape than this model's (a missing lr_scale, from a
        checkpoint older than the plateau schedule, means 1)."""
        own = self.state_dict()
        if "lr_scale" not in saved:
            saved = dict(saved, lr_scale=np.ones((), np.float64))
        for key, target in own.items():
            if key not in saved:
                raise UserError(f"{where}: no '{key}' in the saved state")
            if np.shape(saved[key]) != target.shape:
                raise UserError(f"{where}: its model does not match the config ({key} has "
                                f"shape {np.shape(saved[key])}, the config makes "
                                f"{target.shape}); use the checkpoint's model settings or "
                                f"a new train.out_dir")
        for key in ("theta", "optimizer", "cursor", "rng", "lr_scale", "order", "at",
                    "window", "shuffle_rng"):
            if key in own:
                own[key][...] = saved[key]
        self.run.hyper[LR_SCALE] = self.lr_scale
        if self.corpus is None:
            self._state = np.array(saved["state"], self.dtype)
            self._carried = (self._state[:, :, 0], int(saved["next_input"]))
        else:
            for a, s in zip(self.family.states(self.buf), saved["state"]):
                a[:, 0] = s
        self.smooth_loss = float(saved["smooth_loss"])

    def save(self, path, extra=None):
        """Write a checkpoint (see fastrnn.checkpoint) atomically to path."""
        checkpoint.save(self, path, extra)


class Stepper:
    """B streams of a trainer's model read one character at a time from its own
    weights, for sampling. States are (S, L, B, H) arrays: h, and c for an LSTM."""

    def __init__(self, trainer, streams=1):
        cfg, family = trainer.config, trainer.family
        self.buf = family.buffers(cfg.model.layers, 1, streams, cfg.model.hidden,
                                  len(trainer.vocab), trainer.dtype)
        self.states = family.states(self.buf)  # each (L, 2, B, H); [:, 0] the state
        self.call = family.steps_call(trainer.net.P, self.buf, 1, trainer.path(streams))
        self.Why = trainer.net.P.Why.astype(np.float64)
        self.by = trainer.net.P.by.astype(np.float64)

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


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C back until the block is done, then raise it: the kernels cannot stop
    halfway, and an interrupt between them and the smoothed loss would part the two."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)
    elif caught and previous == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGINT)


def _check_splits(cfg, corpus, N):
    """UserError if the training text is too short for the windows (or holds no
    paragraph), or the validation split too short for a loss (or holds no paragraph)."""
    T, B = cfg.train.seq_length, cfg.train.batch_size
    val = cfg.data.val_fraction
    if corpus.starts is not None:
        if len(corpus.starts["train"]) < 2:
            raise UserError(
                f"data.val_fraction + data.test_fraction: {val} + {cfg.data.test_fraction}"
                f" leave no paragraph to train on (a paragraph is in the split where it "
                f"starts); lower them, or use more text")
        if val > 0 and len(corpus.val) < 2:
            raise UserError(
                f"data.val_fraction: {val} of the text's {N} characters holds no "
                f"paragraph's start, so there is no paragraph for validation; raise it, "
                f"or set 0 to train without one")
        return
    if len(corpus.train) // B < T + 1:
        raise UserError(
            f"train.seq_length: {T} is too long for the training text "
            f"({len(corpus.train)} characters in {B} stream(s) need at least "
            f"{T + 1} each); lower train.seq_length or train.batch_size, or use more text")
    if val > 0 and len(corpus.val) < 2:
        raise UserError(
            f"data.val_fraction: {val} of the text's {N} "
            f"characters leaves {len(corpus.val)} for validation, too few for a "
            f"validation loss (at least 2); raise it, or set 0 to train without one")


def _check_memory(cfg, V):
    """UserError if the model's arrays would not fit in this machine's memory: a line
    saying how much it needs, rather than a MemoryError (or the OOM killer) later."""
    H, L, T, B = cfg.model.hidden, cfg.model.layers, cfg.train.seq_length, cfg.train.batch_size
    family = FAMILIES[cfg.model.kind]
    P = sum(math.prod(shape) for _, shape in family.arrays(V, H, L))
    G = family.G
    # parameters, gradients and 2 rows of optimizer state; each thread's share of a
    # weight gradient (the buffer "part"); the states, gates and outputs kept over the
    # T steps of B streams (generously: these are small beside the others)
    elements = (4 * P + (os.cpu_count() or 1) * max(G * H, V) * H
                + 4 * L * (T + 1) * B * H * (1 + G) + 2 * T * B * V)
    need = elements * np.dtype(cfg.train.dtype).itemsize
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    try:  # a container's own limit (cgroup v2), if lower
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        have = min(have, int(limit)) if limit.isdigit() else have
    except OSError:
        pass
    if need > have:
        raise UserError(f"model.hidden={H}, model.layers={L}: the model would need about "
                        f"{need / 2**30:,.1f} GiB of memory and this machine has "
                        f"{have / 2**30:,.1f} GiB; lower model.hidden or model.layers")


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
        small.data.test_fraction = 0.0
        # (read as one stream, but with the arithmetic of the checkpoint's own kernels)
        small.data.records = "stream"
        small.train.exact = cfg.train.exact and cfg.data.records == "stream"
        trainer = Trainer(small, text="".join(arrays["vocab"]) * 2)
        trainer.config, trainer.corpus = cfg, None
        S = 2 if trainer.family.cell else 1
        trainer._state = np.zeros((S, cfg.model.layers, cfg.train.batch_size,
                                   cfg.model.hidden), trainer.dtype)
        trainer._carried = (trainer._state[:, :, 0], 0)
        trainer.load_state_dict(arrays, where=str(path))
    else:
        trainer = Trainer(cfg, text=text)
        checkpoint.restore(trainer, arrays, path)
    trainer.extra = arrays["extra"]
    return trainer
