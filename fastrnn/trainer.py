"""The Trainer: a Model with the optimizer state, buffers and data pointer of its
training, driving the compiled kernels a chunk of iterations at a time."""
import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import Config, load_yaml
from .data import load_corpus
from .errors import UserError
from .kernels.bfloat import BF16
from .kernels.optim import HORIZON, LR_SCALE, learning_rate, settings
from .kernels.records import Net, Training
from .kernels.team import Workers
from .model import Model, load_model
from .models import FAMILIES, flat_params, zeros
from .reading import MODES


class Trainer:
    """Train a char-level RNN, GRU or LSTM: a Model, the optimizer's state, the buffers
    the kernels borrow, the training text as its reading mode reads it, and the run's
    counters.

    >>> t = Trainer({"data": {"path": "input.txt"}, "model": {"hidden": 100}})
    >>> losses = t.train_iters(1000)   # nats per character of each iteration
    """

    def __init__(self, config, text=None, vocab=None):
        """text: the corpus as a str or an encoding.Text (data.load_corpus); by default
        data.path's, read as ids a chunk at a time with data.newlines. vocab: the
        characters the model has, sorted (default: the text's own); it may hold
        characters the text lacks (a checkpoint's or an export's), never fewer."""
        self.config = cfg = config if isinstance(config, Config) else Config.from_dict(config)
        if cfg.train.precision == "bf16" and not BF16:
            raise UserError("train.precision=bf16 needs a CPU with AVX512_BF16 (AMD Zen 4 "
                            "and later, Intel Xeon 4th generation and later) and this one "
                            "has none; set train.precision=float32")
        if text is None:
            text = load_corpus(cfg.data.path, cfg.data.newlines)
        self.mode = mode = MODES[cfg.data.records]
        self.corpus = mode.corpus(text, cfg.data, vocab)
        V, H, L = len(self.corpus.vocab), cfg.model.hidden, cfg.model.layers
        T, B = cfg.train.seq_length, cfg.train.batch_size
        mode.check_splits(cfg, self.corpus, len(self.corpus.ids))
        _check_memory(cfg, V)
        self.model = model = Model(cfg, self.corpus.vocab)
        family, dtype = model.family, model.dtype
        # min-char-rnn's own model, exact, runs its recurrence and its output layer on
        # two threads side by side (kernels.duo); it needs no other split
        # (weight decay is not min-char-rnn's: the duo has no place for it)
        self.duo = (model.exact and L == 1 and B == 1
                    and not cfg.optim.weight_decay)
        # A single stream of a small model runs faster on one thread: below hidden 256
        # (python -m fastrnn.bench), or below 48 for the duo, whose two threads wait on
        # each other every step (benchmarks/bench_threads.py)
        small = B == 1 and H < (48 if self.duo else 256)
        model.threads = cfg.train.threads or (1 if small else os.cpu_count() or 1)
        grad, G = flat_params(family.arrays(V, H, L), dtype)
        memory = zeros((2, model.size), dtype)  # the optimizer's
        self.net = Net(model.P, G, model.theta, grad, memory)
        o = cfg.optim
        hyper = settings(lr=o.lr, clip=o.clip, clip_norm=o.clip_norm or 0.0, eps=o.eps,
                         beta1=o.beta1, beta2=o.beta2, lr_decay=o.lr_decay,
                         decay_every=o.decay_every, optimizer=o.name, schedule=o.schedule,
                         warmup=o.warmup, min_lr=o.min_lr,
                         horizon=o.decay_iters or cfg.train.max_iters,
                         weight_decay=o.weight_decay, dtype=dtype)
        # the plateau schedule's multiplier of lr (kernels.optim), lowered by
        # lower_lr(); float64, and hyper[LR_SCALE] holds it in the model dtype
        self.lr_scale = np.ones((), np.float64)
        self.cursor = np.zeros(2, np.int64)  # [data pointer, iteration]
        self.run = Training(mode.train_data(self.corpus, B, T, cfg.train.seed), self.cursor,
                            np.array([cfg.train.seed * 2654435761 + 1], np.uint64),  # generator
                            hyper, model.drop, float(cfg.train.state_resets))
        self.buf = family.buffers(L, T, B, H, V, dtype)
        self.smooth_loss = -math.log(1.0 / V) * T  # min-char-rnn's smooth_loss at n = 0
        self.extra = {}  # the runner's state, kept in checkpoints
        self.last_losses = None  # those of the last train_iters call
        self.workers = None  # kernels.team.Workers: how many threads run a slice

    # --- the model's facts, for the runner and the kernels' callers -----------------
    vocab = property(lambda self: self.model.vocab)
    family = property(lambda self: self.model.family)
    dtype = property(lambda self: self.model.dtype)
    exact = property(lambda self: self.model.exact)
    chunks = property(lambda self: self.model.chunks)

    @property
    def threads(self):
        return self.model.threads

    @threads.setter
    def threads(self, n):
        self.model.threads = n

    def path(self, B, T):
        return self.model.path(B, T, backward=True)

    def params(self):
        return self.model.params()

    def set_params(self, values):
        self.model.set_params(values)

    def loss_of(self, ids, streams=1, starts=None):
        return self.model.loss_of(ids, streams, starts)

    def loss_call(self, rows, states=None):
        return self.model.loss_call(rows, states)

    def stepper(self, streams=1):
        return self.model.stepper(streams)

    @classmethod
    def from_yaml(cls, path, overrides=()):
        return cls(load_yaml(Path(path), overrides))

    @property
    def iteration(self):
        return int(self.cursor[1])

    def pass_iterations(self):
        """About how many iterations a pass over the training text takes."""
        T, B = self.config.train.seq_length, self.config.train.batch_size
        return self.mode.pass_iterations(self.corpus, T, B)

    def train_iters(self, n):
        """Train n iterations; returns their losses in nats per character (mean over the
        T steps and B streams; with paragraphs, over the window's targets)."""
        losses = np.empty(int(n), np.float64)
        if n <= 0:
            return losses
        with _interrupts_deferred():  # the state stays that of a finished iteration
            self._train_slices(losses)
            self.last_losses = losses  # for a Ctrl-C raised as this returns
            T = self.config.train.seq_length
            smooth = self.smooth_loss
            for loss in losses:  # min-char-rnn's running average of the loss per sequence
                smooth = smooth * 0.999 + loss * T * 0.001
            self.smooth_loss = smooth
        return losses

    def _train_slices(self, losses):
        """Train len(losses) iterations: on a team, in slices each run by as many of its
        threads as measure fastest (kernels.team.Workers; the same results either
        way)."""
        self.model.set_threads()
        if self.chunks == 1 or self.duo:
            self.train_call(losses)()
            return
        if self.workers is None or self.workers.size != self.chunks:
            self.workers = Workers(self.chunks)
        done = 0
        while done < losses.size:
            workers, n = self.workers.choose(losses.size - done)
            call = self.train_call(losses[done:done + n])
            call.workers = workers
            start = time.perf_counter()
            call()
            self.workers.record(workers, n, time.perf_counter() - start)
            done += n

    def train_call(self, losses):
        """The kernels.team.Call that trains len(losses) iterations."""
        self.model.set_threads()
        self.run = self.run._replace(data=self.mode.sized(self.run.data, losses.size))
        B, T = self.config.train.batch_size, self.config.train.seq_length
        return self.family.train_call(losses, self.net, self.run, self.buf, self.path(B, T),
                                      self.chunks, self.duo and self.chunks > 1)

    def use_threads(self, n):
        """Run this trainer's kernels on n threads from now on (or fewer: at most
        NUMBA_NUM_THREADS and the cores; self.chunks says how many)."""
        self.threads = n
        self.model.set_threads()

    def split(self, name):
        """(ids, paragraph starts or None) of the split train, val or test; val as
        validation reads it: its first data.val_chars characters (with paragraphs, the
        paragraphs that end within them, at least one), or all of it."""
        ids, starts = getattr(self.corpus, name), self.mode.starts(self.corpus, name)
        cap = self.config.data.val_chars
        if name == "val" and cap is not None and cap < len(ids):
            ids, starts = self.mode.cut(ids, starts, cap)
        return ids, starts

    def evaluate(self, protocol="headline", split="val"):
        """Mean nats per character on the validation split (data.val_fraction of the text,
        before the test split; its first data.val_chars characters), or another split,
        under a protocol of fastrnn.evaluate: by default the headline, train.batch_size
        contiguous streams each read after a burn-in over the text before it from the
        state training carries (its first stream's); "zero" reads them from a zero state
        instead. With paragraphs both read each paragraph from a zero state."""
        if split == "val" and len(self.corpus.val) < 2:
            raise UserError("no validation text: set data.val_fraction above 0 "
                            "(e.g. data.val_fraction=0.1)")
        from .evaluate import evaluate  # (not at the top: python -m fastrnn.evaluate)
        ids, starts = self.split(split)
        before = self.corpus.ids[:len(self.corpus.train) + (len(self.corpus.val)
                                                             if split == "test" else 0)]
        return evaluate(self.model, ids, protocol, starts=starts, before=before,
                        state=self.carried_state()[0]).nats

    def eval_rows(self):
        """The validation split as evaluate(protocol="zero") reads it (its reading mode's
        rows)."""
        ids, starts = self.split("val")
        cfg = self.config.train
        return self.mode.rows(ids, starts, cfg.batch_size, cfg.seq_length)[0]

    def eval_calls(self):
        """(what, kernels.team.Call) of the loss kernel evaluate() calls, to compile it
        ahead (one for every start: a zero state, or states given)."""
        return [("validation", self.loss_call(self.eval_rows()))]

    def gradients(self, xs):
        """(loss summed over the window's steps and averaged over streams, gradients by
        public name as float64) of one window xs (T+1, B) of ids, from a zero state and
        with the dropout masks now in the buffers; the parameters are not changed. For
        tests: training never leaves the kernels."""
        self.buf.xs[...] = xs
        for a in self.family.states(self.buf):
            a[:] = 0
        loss = self.family.gradients_call(self.net, self.buf, self.run.drop,
                                          self.path(xs.shape[1], xs.shape[0] - 1))()
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

    def carried_state(self):
        """(states (S, L, H): h, and c for an LSTM; id of the next input character) of
        the first stream: where training would go on from (with paragraphs, from a zero
        state at the next paragraph's start once its own has ended)."""
        return self.mode.carried(self.run.data, self.cursor, self.family.states(self.buf))

    def state_dict(self):
        """Everything training goes on from, by name: theta (N,) the parameters,
        optimizer (2, N) the optimizer's memory, state (S, L, B, H) the carried states
        (h, and c for an LSTM), cursor [data pointer, iteration], rng the generator
        of dropout and state resets, next_input the next character's id, smooth_loss,
        lr_scale the plateau schedule's multiplier of lr; and the reading mode's own
        entries (with paragraphs: order (P,), at (B, 2) and window (3,), where the
        streams are in them, and shuffle_rng their shuffle's generator). The arrays are
        the trainer's own, not copies."""
        _, next_input = self.carried_state()
        state = np.array([a[:, 0] for a in self.family.states(self.buf)])
        return dict(theta=self.net.theta, optimizer=self.net.memory, state=state,
                    cursor=self.cursor, rng=self.run.rng, next_input=np.array(next_input),
                    smooth_loss=np.array(self.smooth_loss), lr_scale=self.lr_scale,
                    **self.mode.state_entries(self.run.data))

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
        for key in ("theta", "optimizer", "cursor", "rng", "lr_scale") + self.mode.state_keys:
            own[key][...] = saved[key]
        self.run.hyper[LR_SCALE] = self.lr_scale
        for a, s in zip(self.family.states(self.buf), saved["state"]):
            a[:, 0] = s
        self.smooth_loss = float(saved["smooth_loss"])

    def save(self, path, extra=None):
        """Write a checkpoint (see fastrnn.checkpoint) atomically to path."""
        checkpoint.save(self, path, extra)


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

    The training text is read from the checkpoint's data.path (or given as text); its
    characters must be in the checkpoint's vocabulary. With data=False no text is read and the
    result is the checkpoint's Model (model.load_model): it samples, exports and
    evaluates, and does not train."""
    if text is None and not data:
        return load_model(path)
    path = checkpoint.find(path)
    arrays = checkpoint.read(path)
    if text is None:
        data = arrays["config"].data
        text = load_corpus(data.path, data.newlines)
    trainer = Trainer(arrays["config"], text=text, vocab=checkpoint.vocab_for(arrays, text))
    checkpoint.restore(trainer, arrays, path)
    trainer.extra = arrays["extra"]
    return trainer
