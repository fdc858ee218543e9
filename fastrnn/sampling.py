"""Sampling text from a trained model, one character at a time."""
import math

import numpy as np

from .errors import UserError
from .trainer import Trainer, load


def generate(trainer, prime="", length=200, temperature=1.0, top_k=None, seed=None):
    """Yield `length` sampled characters.

    With a prime, the model starts from a zero state and reads the prime first. Without
    one it goes on from where training is, as min-char-rnn samples: the carried hidden
    state of the first stream and the next character of the text. temperature 0 takes
    the most likely character; top_k keeps only the k most likely."""
    vocab = trainer.vocab
    index = {c: i for i, c in enumerate(vocab)}
    bad = sorted({c for c in prime if c not in index})
    if bad:
        raise UserError(f"prime text has characters the model never saw: "
                        f"{''.join(bad)!r}; use only characters of its vocabulary")
    if not (isinstance(length, (int, np.integer)) and length >= 0):
        raise UserError(f"length must be a whole number, 0 or more, got {length!r}")
    if not (isinstance(temperature, (int, float, np.number)) and math.isfinite(temperature)
            and temperature >= 0):
        raise UserError(f"temperature must be a finite number, 0 or more, got "
                        f"{temperature!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise UserError(f"top_k must be a whole number, at least 1, got {top_k!r}")
    if seed is not None and not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise UserError(f"seed must be a whole number, 0 or more, got {seed!r}")
    rng = np.random.default_rng(seed)
    cfg = trainer.config
    buf = trainer.family.buffers(cfg.model.layers, 1, 1, cfg.model.hidden, len(vocab),
                                 trainer.dtype)
    states = [buf["hs"], buf["cs"]] if trainer.family.cell else [buf["hs"]]
    Why = trainer._theta.views["Why"].astype(np.float64)
    by = trainer._theta.views["by"].astype(np.float64)

    def step(ix):
        buf["xs"][0, 0] = ix
        trainer.family.forward(trainer, buf)
        for a in states:
            a[:, 0] = a[:, 1]
        return Why @ buf["hs"][-1, 1, 0] + by

    if prime:
        feed = [index[c] for c in prime]
    else:
        carried, next_id = trainer.carried_state()
        for a, saved in zip(states, carried):
            a[:, 0, 0] = saved
        feed = [next_id]
    for ix in feed:
        logits = step(ix)
    for _ in range(length):
        y = logits
        if not np.all(np.isfinite(y)):
            raise UserError("the model's outputs are not finite numbers (its weights are "
                            "too large); sample from another checkpoint")
        if temperature == 0:
            ix = int(np.argmax(y))
        else:
            y = y / temperature
            if top_k is not None and top_k < y.size:
                cut = np.partition(y, -top_k)[-top_k]
                y = np.where(y >= cut, y, -np.inf)
            p = np.exp(y - y.max())
            ix = int(rng.choice(y.size, p=p / p.sum()))
        yield vocab[ix]
        logits = step(ix)


def sample(trainer_or_path, prime="", length=200, temperature=1.0, top_k=None, seed=None):
    """Sampled text, starting with the prime text. trainer_or_path: a Trainer, a
    checkpoint file or a run folder."""
    trainer = trainer_or_path
    if not isinstance(trainer, Trainer):
        trainer = load(trainer_or_path, data=False)
    return prime + "".join(generate(trainer, prime, length, temperature, top_k, seed))
