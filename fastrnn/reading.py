"""Reading modes: how a run reads its text (data.records). Each mode owns its split of
the text, the data its kernels read, the length of a pass, the state a run carries and
keeps in checkpoints, and how validation reads a split; the trainer, the runner, the
checkpoints, compiling and sampling ask the mode and hold no branch on it.

- stream: min-char-rnn's. The text is one long sequence, cut into B contiguous
  streams whose states carry from window to window (kernels.windows).
- paragraphs: each paragraph (split at blank lines) is a sequence of its own, read
  from a zero state with its first character given, the paragraphs shuffled every pass
  (kernels.paragraphs).

Adding a mode is a class here with its kernel data (a kernels.records type) and its
entry in MODES.
"""
import numpy as np

from .data import Corpus
from .errors import UserError
from .kernels import entries
from .kernels import records as kr


class Streams:
    """min-char-rnn's reading: B contiguous streams of the text."""
    name = "stream"
    label = ""  # (said in compile lines: 'rnn float32, 1 stream, 1 thread')
    exact = True  # min-char-rnn's exact arithmetic reads this mode
    samples_end_paragraphs = False  # a run's samples stop at a blank line
    # whether validation's headline reads it in context (after a burn-in from the state
    # training carries: fastrnn.evaluate), or as training does, from a zero state
    in_context = True
    state_keys = ()  # checkpoint entries of the mode's own (Trainer.state_dict)
    # the compiled loss of rows() (kernels.entries), from the states Model.loss_call sets
    loss_entry = staticmethod(entries.loss_from)

    def corpus(self, text, data, vocab=None):
        """The text's Corpus, split by data (a DataConfig), over vocab (default: the
        text's own characters)."""
        return Corpus(text, data.val_fraction, vocab=vocab,
                      test_fraction=data.test_fraction, records=self.name)

    def check_splits(self, cfg, corpus, N):
        """UserError if the training text is too short for the windows, or the
        validation split too short for a loss."""
        T, B = cfg.train.seq_length, cfg.train.batch_size
        val = cfg.data.val_fraction
        if len(corpus.train) // B < T + 1:
            raise UserError(
                f"train.seq_length: {T} is too long for the training text "
                f"({len(corpus.train)} characters in {B} stream(s) need at least "
                f"{T + 1} each); lower train.seq_length or train.batch_size, or use more "
                f"text")
        if val > 0 and len(corpus.val) < 2:
            raise UserError(
                f"data.val_fraction: {val} of the text's {N} "
                f"characters leaves {len(corpus.val)} for validation, too few for a "
                f"validation loss (at least 2); raise it, or set 0 to train without one")

    def starts(self, corpus, name):
        """The split's paragraph starts (P+1,), or None: it is one text."""
        return None

    def cut(self, ids, starts, most):
        """(ids, starts) of a split cut to its first `most` characters."""
        return ids[:most], starts

    def train_data(self, corpus, B, T, seed):
        """The training text as the kernels read it: (B, S) streams."""
        return corpus.streams(B)

    def sized(self, data, n):
        """The training data, made ready for a call of n iterations."""
        return data

    def pass_iterations(self, corpus, T, B):
        """About how many iterations a pass over the training text takes."""
        return len(corpus.train) / (T * B)

    def text_summary(self, corpus):
        """What the run says of its training text, after its size."""
        return "", ""

    def sample_prime(self, corpus, seed):
        """The text a run's sample at this seed starts from ("": where training is)."""
        return ""

    def rows(self, ids, starts, streams, T):
        """(what the loss reads: ids (of encoding.id_dtype) cut into `streams`
        contiguous pieces (B, S), each from a zero state, the last len(ids) % streams
        ids left out; how many targets they score)."""
        streams = max(1, min(streams, len(ids) // 2))
        S = len(ids) // streams
        if S < 2:
            raise UserError("need at least 2 characters to measure a loss")
        rows = np.ascontiguousarray(np.asarray(ids)[:streams * S].reshape(streams, S))
        return rows, streams * (S - 1)

    def carried(self, data, cursor, states):
        """(states (S, L, H) of the first stream; the id of its next input): where
        training goes on from. states: the carried state arrays, each (L, 2, B, H)."""
        started = cursor[1] > 0
        p = int(cursor[0]) if started else 0
        first = np.array([a[:, 0, 0] if started else np.zeros_like(a[:, 0, 0])
                          for a in states])
        return first, int(data[0, p % data.shape[1]])

    def state_entries(self, data):
        """The mode's own checkpoint entries, the trainer's arrays (not copies)."""
        return {}

    def expect(self, arrays, B, bad):
        """(name: (dtype, shape)) of the mode's checkpoint entries, after checking what
        shapes alone cannot; bad(field, what) makes the UserError."""
        return {}

    def check_restore(self, corpus, T, arrays, path):
        """UserError unless a checkpoint's place in the text fits this text."""


class Paragraphs(Streams):
    """Paragraphs, each from a zero state, shuffled every pass."""
    name = "paragraphs"
    label = ", paragraphs"
    exact = False  # min-char-rnn's arithmetic has no place for a paragraph's end
    samples_end_paragraphs = True
    in_context = False  # (each paragraph from a zero state, as training reads it)
    state_keys = ("order", "at", "window", "shuffle_rng")
    loss_entry = staticmethod(entries.paragraph_loss)

    def check_splits(self, cfg, corpus, N):
        val = cfg.data.val_fraction
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

    def starts(self, corpus, name):
        return corpus.starts[name]

    def cut(self, ids, starts, most):
        """The paragraphs that end within the first `most` characters, at least one."""
        k = max(1, int(np.searchsorted(starts, most, "right")) - 1)
        return ids[:starts[k]], starts[:k + 1]

    def train_data(self, corpus, B, T, seed):
        """The training paragraphs, shuffled every pass by a generator of their own."""
        shuffle = np.array([seed * 2654435761 + 2], np.uint64)
        return record(corpus.train, corpus.starts["train"], B, T, shuffle)

    def sized(self, data, n):
        # (a window's steps for each iteration: kernels.paragraphs.start_paragraphs)
        if data.steps.size < n:
            data = data._replace(steps=np.zeros(n, np.int64))
        return data

    def pass_iterations(self, corpus, T, B):
        targets = np.diff(corpus.starts["train"]) - 1  # each paragraph's windows
        return float(np.sum(-(-targets // T))) / B

    def text_summary(self, corpus):
        return (f" in {len(corpus.starts['train']) - 1:,} paragraphs (each with its "
                f"blank line)", ", or fewer at the ends of paragraphs")

    def sample_prime(self, corpus, seed):
        """The first character of a training paragraph drawn by the seed: a run's
        sample is a paragraph from a zero state."""
        starts = corpus.starts["train"]
        p = np.random.default_rng(seed).integers(len(starts) - 1)
        return corpus.vocab[corpus.train[starts[p]]]

    def rows(self, ids, starts, streams, T):
        """(the Paragraphs of ids cut at starts (P+1,), each read from a zero state with
        its first character given, by `streams` streams; how many targets they
        score)."""
        P = len(starts) - 1
        if P < 1:
            raise UserError("need at least one paragraph to measure a loss")
        s = np.asarray(starts, np.int64)
        if s[0] != 0 or s[-1] != len(ids) or (np.diff(s) < 1).any():
            raise UserError(f"paragraph starts must rise from 0 to {len(ids)} (the "
                            f"ids' count), each paragraph at least one id long")
        return record(ids, starts, max(1, min(streams, P)), T), len(ids) - P

    def carried(self, data, cursor, states):
        """The first stream's state in its paragraph, or a zero state at the next
        paragraph's start once its own has ended."""
        (p, at), starts = data.at[0], data.starts
        first = [a[:, 0, 0].copy() for a in states]
        if p < 0 or at + 1 >= starts[p + 1] - starts[p]:  # the next paragraph's
            after = int(data.window[0])
            p, at = (data.order[after] if after < len(data.order) else 0), 0
            first = [np.zeros_like(a) for a in first]
        return np.array(first), int(data.ids[starts[p] + at])

    def state_entries(self, data):
        return dict(order=data.order, at=data.at, window=data.window, shuffle_rng=data.rng)

    def expect(self, arrays, B, bad):
        missing = [k for k in self.state_keys if k not in arrays]
        if missing:
            raise bad(", ".join(missing), "is missing (data.records is paragraphs)")
        order = arrays["order"]
        if order.dtype != np.int64 or order.ndim != 1:
            raise bad("order", f"must be a 1-d array of int64 (an order of the "
                      f"paragraphs), got {order.dtype} of shape {order.shape}")
        return dict(at=(np.dtype(np.int64), (B, 2)), window=(np.dtype(np.int64), (3,)),
                    shuffle_rng=(np.dtype(np.uint64), (1,)))

    def check_restore(self, corpus, T, arrays, path):
        """The checkpoint's places in the paragraphs fit the training text's paragraphs
        (read the same way: checkpoint.validate has checked their shapes)."""
        starts = corpus.starts["train"]
        P = len(starts) - 1
        lengths = np.diff(starts)
        order, at, window = arrays["order"], arrays["at"], arrays["window"]
        fix = ("train on the same text and data.val_fraction, or start a new run in "
               "another train.out_dir")
        if not np.array_equal(np.sort(order), np.arange(P)):
            raise UserError(f"{path}: its order of {len(order)} paragraphs is not an order "
                            f"of the training text's {P} paragraphs; {fix}")
        for p, place in at:
            if not (p == -1 and place == 0 or 0 <= p < P and 0 <= place < lengths[p]):
                raise UserError(f"{path}: its at holds [{p}, {place}], not a place in "
                                f"the training text's {P} paragraphs; {fix}")
        if not (0 <= window[0] <= P and 0 <= window[1] <= T
                and 0 <= window[2] <= T * len(at)):
            raise UserError(f"{path}: its window {window.tolist()} is out of range "
                            f"for {P} paragraphs and train.seq_length {T}; {fix}")


def record(ids, starts, streams, T, rng=None):
    """A kernels.records.Paragraphs of the paragraphs ids[starts[i]:starts[i+1]] for
    `streams` streams: for training with rng, the shuffle's state (the first iteration
    draws the first pass's order; Paragraphs.sized sizes its steps for each call);
    without, to be read once in order, with room for the steps of every window (each
    scores a target, and the last none)."""
    P = len(starts) - 1
    return kr.Paragraphs(np.ascontiguousarray(ids), np.asarray(starts, np.int64),
                         np.arange(P, dtype=np.int64),
                         np.tile(np.array([-1, 0], np.int64), (streams, 1)),
                         np.array([P if rng is not None else 0, 0, 0], np.int64),
                         np.zeros(1, np.uint64) if rng is None else rng,
                         kr.Masked(np.zeros((T, streams), np.int32)),
                         np.zeros(1 if rng is not None else len(ids) - P + 1, np.int64))


def streams_of(rows):
    """How many streams read rows (a (B, S) array, or a kernels.records.Paragraphs)."""
    return rows.at.shape[0] if isinstance(rows, kr.Paragraphs) else rows.shape[0]


def mode_of(rows):
    """The mode whose rows() made rows."""
    return MODES["paragraphs"] if isinstance(rows, kr.Paragraphs) else MODES["stream"]


MODES = {m.name: m for m in (Streams(), Paragraphs())}
