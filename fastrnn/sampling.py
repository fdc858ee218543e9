"""Sampling text from a trained model: one character at a time (temperature, top-k,
top-p), several samples, a stop string or the end of a paragraph, and beam search for
the most likely text."""
import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .model import load_model


def _check(trainer, prime, temperature, top_k, top_p):
    """The prime's characters' ids; UserError on a character or option the model cannot
    take."""
    index = {c: i for i, c in enumerate(trainer.vocab)}
    bad = sorted({c for c in prime if c not in index})
    if bad:
        raise UserError(f"prime text has characters the model never saw: "
                        f"{''.join(bad)!r}; use only characters of its vocabulary")
    if not (isinstance(temperature, (int, float, np.number)) and math.isfinite(temperature)
            and temperature >= 0):
        raise UserError(f"temperature must be a finite number, 0 or more, got "
                        f"{temperature!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise UserError(f"top_k must be a whole number, at least 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"top_p must be in (0, 1], got {top_p}; e.g. 0.9 keeps the most "
                        f"likely characters that make up 90% of the probability")
    return [index[c] for c in prime]


def _start(trainer, stepper, feed):
    """Read the prime (from a zero state), or go on from where training is; the logits
    after it, (V,)."""
    if not feed:
        carried, next_id = trainer.carried_state()
        stepper.load(carried)
        feed = [next_id]
    else:
        stepper.reset()
    for ix in feed:
        logits = stepper.step(ix)
    return logits[0]


def new_rng(seed):
    """The samples' random generator; UserError for a seed that is not a whole number,
    0 or more (None: a fresh one)."""
    if seed is not None and not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise UserError(f"seed must be a whole number, 0 or more, got {seed!r}")
    return np.random.default_rng(seed)


# A paragraph ends at a blank line: data.records=paragraphs trains on each paragraph
# followed by one (fastrnn.data.paragraphs).
PARAGRAPH_END = "\n\n"


def generate(trainer, prime="", length=200, temperature=1.0, top_k=None, seed=None,
             top_p=None, stop=None, rng=None, paragraph=False):
    """Yield up to `length` sampled characters.

    With a prime, the model starts from a zero state and reads the prime first. Without
    one it goes on from where training is, as min-char-rnn samples: the carried hidden
    state of the first stream and the next character of the text. temperature 0 takes
    the most likely character; top_k keeps only the k most likely, then top_p the most
    likely whose probabilities add up to p (nucleus sampling). A stop string ends the
    sample after its first occurrence in the sampled text (it is yielded); paragraph
    ends it at the end of its paragraph, a blank line, which is not yielded (the newline
    that ends the paragraph's last line is). rng, a numpy Generator, overrides seed
    (several samples share one)."""
    feed = _check(trainer, prime, temperature, top_k, top_p)
    if not (isinstance(length, (int, np.integer)) and length >= 0):
        raise UserError(f"length must be a whole number, 0 or more, got {length!r}")
    if stop == "":
        raise UserError("the stop string is empty; give one or more characters")
    vocab = trainer.vocab
    rng = new_rng(seed) if rng is None else rng
    stepper = trainer.stepper()
    logits = _start(trainer, stepper, feed)
    tail = ""
    last = prime[-1:] if prime else vocab[trainer.carried_state()[1]]  # the last read
    for _ in range(length):
        if not np.all(np.isfinite(logits)):
            raise UserError("the model's outputs are not finite numbers (its weights are "
                            "too large); sample from another checkpoint")
        ix = _pick(logits, temperature, top_k, top_p, rng)
        if paragraph and last + vocab[ix] == PARAGRAPH_END:
            return
        last = vocab[ix]
        yield vocab[ix]
        if stop is not None:
            tail = (tail + vocab[ix])[-len(stop):]
            if tail == stop:
                return
        logits = stepper.step(ix)[0]


def _pick(y, temperature, top_k, top_p, rng):
    if temperature == 0:
        return int(np.argmax(y))
    with np.errstate(over="ignore"):
        scaled = y / temperature
        if not np.all(np.isfinite(scaled)):  # a tiny temperature: y / t overflows
            # the same distribution, from the largest logit down: that one is 0, the
            # rest -inf or finite, so it is sharp but never NaN (argmax, ties shared)
            scaled = (y - y.max()) / temperature
    y = scaled
    if top_k is not None and top_k < y.size:
        cut = np.partition(y, -top_k)[-top_k]
        y = np.where(y >= cut, y, -np.inf)
    p = np.exp(y - y.max())
    p /= p.sum()
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, kind="stable")
        # keep the most likely characters up to and including the one that reaches p
        keep = order[:int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        kept = np.zeros_like(p)
        kept[keep] = p[keep]
        p = kept / kept.sum()
    return int(rng.choice(p.size, p=p))


def beam_search(trainer, prime="", length=200, beam=5, n=1, stop=None, paragraph=False):
    """The n most likely continuations of `length` characters (each a string, most likely
    first), by beam search over characters with `beam` candidates kept at each step: the
    sum of the log-probabilities of the characters, from the model's own probabilities
    (no temperature). Deterministic; ties go to the lower character id. A stop string
    then cuts each text after its first occurrence, and paragraph before the blank line
    that ends its paragraph."""
    feed = _check(trainer, prime, 1.0, None, None)
    if stop == "":
        raise UserError("the stop string is empty; give one or more characters")
    if beam < 1:
        raise UserError(f"beam must be at least 1, got {beam}")
    check_sizes(beam, length)
    if not 1 <= n <= beam:
        raise UserError(f"beam search gives at most {beam} (the beam width) samples, "
                        f"asked for {n}; raise the beam or ask for fewer")
    first = trainer.stepper()
    logits = _start(trainer, first, feed)[None, :]
    V = len(trainer.vocab)
    stepper = trainer.stepper(beam)
    stepper.load(first.state()[:, :, 0])
    scores = np.zeros(1)
    steps = []  # per step: (the candidate each new one extends, its character)
    for _ in range(length):
        total = scores[:, None] + _log_softmax(logits[:len(scores)])
        best = np.argsort(-total.ravel(), kind="stable")[:beam]
        rows, ids = np.divmod(best, V)
        scores = total.ravel()[best]
        steps.append((rows, ids))
        pad = np.resize(np.arange(len(rows)), beam)  # fill the unused streams
        stepper.set_state(stepper.state()[:, :, rows[pad]])
        logits = stepper.step(ids[pad])
    texts = []
    found = min(n, len(scores)) if steps else n  # fewer if V**length < n
    for k in range(found):
        chars = []
        for rows, ids in reversed(steps):
            chars.append(trainer.vocab[ids[k]])
            k = rows[k]
        texts.append("".join(reversed(chars)))
    if paragraph:  # (the blank line may begin with the last character read)
        last = prime[-1:] if prime else trainer.vocab[trainer.carried_state()[1]]
        ends = [(last + t).find(PARAGRAPH_END) for t in texts]
        texts = [t if j < 0 else t[:j + 1 - len(last)] for t, j in zip(texts, ends)]
    if stop is None:
        return texts
    return [t[:t.find(stop) + len(stop)] if stop in t else t for t in texts]


def _log_softmax(y):
    y = y - y.max(axis=1, keepdims=True)
    return y - np.log(np.exp(y).sum(axis=1, keepdims=True))


# The most a prime file may hold, and the sizes a command may ask of the sampler: a
# beam's candidates, the characters its back-pointers keep (beam x length), samples.
MAX_PRIME_BYTES = 1 << 20
MAX_BEAM, MAX_BEAM_STEPS, MAX_SAMPLES = 10_000, 10**8, 1_000_000


def check_sizes(beam=None, length=0, num_samples=1):
    """UserError for a size the sampler cannot meet in memory (before anything is
    allocated): a beam over MAX_BEAM, a beam that would keep more than MAX_BEAM_STEPS
    back-pointers, more than MAX_SAMPLES samples."""
    if beam is not None and beam > MAX_BEAM:
        raise UserError(f"beam must be at most {MAX_BEAM:,}, got {beam:,}; a wider beam "
                        f"rarely finds a likelier text")
    if beam is not None and beam * length > MAX_BEAM_STEPS:
        raise UserError(f"beam search of {length:,} characters with beam {beam:,} would "
                        f"keep {16 * beam * length / 2**30:,.1f} GiB of back-pointers; "
                        f"keep beam x length at most {MAX_BEAM_STEPS:,}")
    if num_samples > MAX_SAMPLES:
        raise UserError(f"num_samples must be at most {MAX_SAMPLES:,}, got "
                        f"{num_samples:,}")


def read_prime(path):
    """The text of a prime file (a regular file, UTF-8, not empty, at most
    MAX_PRIME_BYTES); UserError otherwise. A FIFO or a device (/dev/zero) is refused
    before it is read, so it can neither hang nor fill memory."""
    import os
    import stat
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"prime file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read prime file {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UserError(f"prime file {path} is not a regular file (a folder, a "
                                f"pipe or a device); give a text file")
            blob = f.read(MAX_PRIME_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read prime file {path}: {e.strerror or e}") from None
    if len(blob) > MAX_PRIME_BYTES:
        raise UserError(f"prime file {path} is over {MAX_PRIME_BYTES:,} bytes; a prime "
                        f"is the start of a text: give a shorter one")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"prime file {path} is not valid UTF-8 (byte {e.start}); convert "
                        f"it, e.g. iconv -f LATIN1 -t UTF-8") from None
    if not text:
        raise UserError(f"prime file {path} is empty; put the text to start from in it")
    return text


def samples(trainer, prime="", length=200, temperature=1.0, top_k=None, seed=None,
            top_p=None, num_samples=1, stop=None, beam=None, paragraph=False):
    """num_samples texts, each the prime and what follows it (see generate and
    beam_search). The samples share one random generator, so the first is the text a
    single sample with the same seed gives."""
    if num_samples < 1:
        raise UserError(f"num_samples must be at least 1, got {num_samples}")
    check_sizes(None, length, num_samples)
    if beam is not None:
        return [prime + text for text in beam_search(trainer, prime, length, beam,
                                                     num_samples, stop, paragraph)]
    rng = new_rng(seed)
    return [prime + "".join(generate(trainer, prime, length, temperature, top_k, None,
                                     top_p, stop, rng, paragraph))
            for _ in range(num_samples)]


def sample(trainer_or_path, prime="", length=200, temperature=1.0, top_k=None, seed=None,
           *, top_p=None, num_samples=None, stop=None, prime_file=None, beam=None,
           paragraph=False):
    """Sampled text, starting with the prime text. trainer_or_path: a Model or Trainer,
    a checkpoint file or a run folder. With num_samples, a list of that many texts.
    prime_file: read the prime from this UTF-8 file instead. beam: beam search with this
    many candidates for the most likely text (temperature, top_k, top_p and seed do not
    apply). paragraph: end each sample with its paragraph (before a blank line)."""
    if prime_file is not None:
        if prime:
            raise UserError("give a prime or a prime file, not both")
        prime = read_prime(prime_file)
    if num_samples is not None and num_samples < 1:
        raise UserError(f"num_samples must be at least 1, got {num_samples}")
    trainer = trainer_or_path
    if isinstance(trainer, (str, Path)):
        trainer = load_model(trainer_or_path)
    texts = samples(trainer, prime, length, temperature, top_k, seed, top_p,
                    num_samples or 1, stop, beam, paragraph)
    return texts if num_samples is not None else texts[0]
