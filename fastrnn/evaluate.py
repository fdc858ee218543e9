"""Evaluation protocols: how a model's loss on held-out text is measured, and the
`fastrnn eval` command.

    fastrnn eval RUN_OR_CHECKPOINT_OR_EXPORT [--split val|test] [--protocol P] [--json]
    python -m fastrnn.evaluate ...

- headline: the model reading the text in context, the number a run reports. The split
  is cut into `streams` contiguous pieces; each piece first reads the `burn_in`
  characters before it in the text (not scored), from the state the model carries on
  real text (a checkpoint's first training stream; zero for an export, which holds
  none), then is scored. From a zero state a model may fall into a regime it never
  trains in (min-char-rnn meets a zero state once per pass) and predict the whole split
  badly; this protocol measures the model, not that. With paragraphs, each paragraph is
  read from a zero state with its first character given, as training reads it: the
  same as zero.
- zero: the split as `streams` contiguous pieces, each from a zero state (fastrnn's
  validation before the headline); with paragraphs, each paragraph from a zero state.
- nanogpt: nanoGPT's estimate_loss: `windows` random windows of `block` characters,
  inputs ids[i:i+block] and targets ids[i+1:i+block+1], each from a zero state, every
  position scored; the starts drawn by `seed` (numpy's default_rng), so reproducible.
- windows: every non-overlapping window, i = 0, block, 2*block, ... while a full one
  fits, each from a zero state: deterministic, to be checked against PyTorch exactly.

nanogpt and windows read a paragraph run's split as its text, the paragraphs one after
another (each with its blank line), across their boundaries, as nanoGPT reads any text.
"""
import json
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from .encoding import as_ids
from .errors import UserError, fail
from .reading import MODES

PROTOCOLS = ("headline", "zero", "nanogpt", "windows")
BURN_IN = 1000  # characters read before each headline stream: ample to forget the start
BLOCK, WINDOWS, SEED = 256, 200, 1337  # nanoGPT's block_size and seed
GROUP = 64  # windows per call of the loss: its buffers hold (T+1) x GROUP states a layer
MAX_WINDOW_CHARS = 10**8  # nanogpt's windows x (block + 1), indexed at once (8 bytes each)


@dataclass
class Result:
    """A loss measured under a protocol: nats per character over `characters`
    predictions, and the protocol's settings."""
    nats: float
    characters: int
    protocol: str
    settings: dict = field(default_factory=dict)

    @property
    def bits(self):
        return self.nats / math.log(2)

    def as_dict(self):
        return dict(nats=self.nats, bits=self.bits, characters=self.characters,
                    protocol=self.protocol, **self.settings)


def evaluate(model, ids, protocol="headline", *, starts=None, before=None, state=None,
             streams=None, burn_in=BURN_IN, block=BLOCK, windows=WINDOWS, seed=SEED):
    """The Result of model (a model.Model) on the ids of a split under a protocol
    (PROTOCOLS, described above). starts: the split's paragraph starts (P+1,) on a
    paragraph run, else None. before: the ids before the split in the text (the
    headline's burn-in for its first stream). state: the (S, L, H) state the headline's
    burn-in starts from (default: the model's carried state). streams: the pieces of
    headline and zero (default train.batch_size). UserError on a split too short for
    the protocol."""
    ids = as_ids(ids, len(model.vocab))  # (the dtype training reads: one compiled loss)
    streams = streams or model.config.train.batch_size
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{protocol}'; choose one of "
                        f"{', '.join(PROTOCOLS)}")
    if len(ids) < 2:
        raise UserError(f"the split holds {len(ids)} characters, too few for a loss "
                        f"(at least 2)")
    if protocol == "headline" and starts is None:
        return _headline(model, ids, before, state, streams, burn_in)
    if protocol in ("headline", "zero"):
        nats = model.loss_of(ids, streams, starts)
        mode = MODES["stream" if starts is None else "paragraphs"]
        scored = mode.rows(ids, starts, streams, model.config.train.seq_length)[1]
        how = dict(streams=min(streams, len(ids) // 2) if starts is None else
                   min(streams, len(starts) - 1))
        if starts is not None:
            how["paragraphs"] = len(starts) - 1
        return Result(float(nats), int(scored), protocol, how)
    if block < 1 or len(ids) < block + 1:
        raise UserError(f"--block {block} is longer than the split allows ({len(ids)} "
                        f"characters hold windows of at most {len(ids) - 1}); lower "
                        f"--block")
    if protocol == "windows":
        at = np.arange(0, len(ids) - block, block)
        how = dict(block=block, windows=len(at))
    else:
        if windows < 1:
            raise UserError(f"--windows must be at least 1, got {windows}")
        if windows * (block + 1) > MAX_WINDOW_CHARS:
            raise UserError(f"--windows {windows:,} of --block {block:,} would read "
                            f"{windows * (block + 1):,} characters at once, more than "
                            f"{MAX_WINDOW_CHARS:,}; lower --windows")
        if seed < 0:
            raise UserError(f"--seed must be 0 or more, got {seed}")
        at = np.random.default_rng(seed).integers(len(ids) - block, size=windows)
        how = dict(block=block, windows=windows, seed=seed)
    rows = ids[at[:, None] + np.arange(block + 1)]  # (windows, block + 1)
    total = 0.0
    for part in np.array_split(rows, -(-len(rows) // GROUP)):
        total += float(model.loss_call(np.ascontiguousarray(part))())
    return Result(total / (block * len(rows)), block * len(rows), protocol, how)


def _headline(model, ids, before, state, streams, burn_in):
    """Streams of the split, each after a burn-in over the text before it (see the
    module's docstring)."""
    rows, scored = MODES["stream"].rows(ids, None, streams, model.config.train.seq_length)
    B, S = rows.shape
    before = as_ids([] if before is None else before, len(model.vocab))
    K = min(burn_in, len(before))  # the first stream has the least text before it
    state = model.carried[0] if state is None else state
    if K > 0:
        text = np.concatenate([before, ids])
        at = len(before) + S * np.arange(B) - K
        burn = np.ascontiguousarray(text[at[:, None] + np.arange(K + 1)])  # (B, K + 1)
        model.loss_call(burn, state)()  # the states after text[at + K - 1]
        state = model.end_states()
    total = float(model.loss_call(rows, state)())
    return Result(total / scored, int(scored), "headline", dict(streams=B, burn_in=K))


def split_of(model, name):
    """(ids, paragraph starts or None, ids before the split) of a model's split val or
    test, rebuilt from its config (data.path, the fractions, data.records) over its
    vocabulary."""
    from .data import Corpus, load_corpus
    data = model.config.data
    text = load_corpus(data.path, data.newlines)
    try:
        corpus = Corpus(text, data.val_fraction, vocab=model.vocab,
                        test_fraction=data.test_fraction, records=data.records)
    except UserError as e:
        raise UserError(f"data.path {data.path} is not the model's text ({e}); give the "
                        f"text the model was trained on") from None
    ids = getattr(corpus, name)
    starts = None if corpus.starts is None else corpus.starts[name]
    before = corpus.train if name == "val" else np.concatenate([corpus.train, corpus.val])
    return ids, starts, before


def main(argv=None, prog="python -m fastrnn.evaluate"):
    import argparse
    ap = argparse.ArgumentParser(prog=prog, description="The loss of a model on its "
                                 "validation or test split, under a protocol (see "
                                 "docs/evaluation.md).")
    ap.add_argument("source", help="run folder (its latest checkpoint), checkpoint .npz, "
                    "or export (.safetensors, .npz)")
    ap.add_argument("--split", choices=("val", "test"), default="val",
                    help="the split, rebuilt from the model's config (default val)")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="headline",
                    help="headline: in context, as a run reports it; zero: streams from a "
                    "zero state; nanogpt: nanoGPT's random windows; windows: every "
                    "window (default headline)")
    ap.add_argument("--block", type=int, default=BLOCK,
                    help=f"characters a window scores (nanogpt, windows; default {BLOCK})")
    ap.add_argument("--windows", type=int, default=WINDOWS,
                    help=f"random windows of nanogpt (default {WINDOWS})")
    ap.add_argument("--seed", type=int, default=SEED,
                    help=f"draws nanogpt's windows (default {SEED})")
    ap.add_argument("--streams", type=int, default=None,
                    help="pieces of headline and zero (default the model's "
                    "train.batch_size)")
    ap.add_argument("--burn-in", type=int, default=BURN_IN,
                    help=f"characters headline reads before each stream (default "
                    f"{BURN_IN})")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    from .export import read_model
    try:
        if args.streams is not None and args.streams < 1:
            raise UserError(f"--streams must be at least 1, got {args.streams}")
        if args.burn_in < 0:
            raise UserError(f"--burn-in must be 0 or more, got {args.burn_in}")
        if args.block < 1:
            raise UserError(f"--block must be at least 1, got {args.block}")
        if args.windows < 1:
            raise UserError(f"--windows must be at least 1, got {args.windows}")
        model = read_model(args.source)
        ids, starts, before = split_of(model, args.split)
        if len(ids) < 2:
            key = f"data.{args.split}_fraction"
            raise UserError(f"the model's {args.split} split is empty ({key} is "
                            f"{getattr(model.config.data, key[5:])}); choose the other "
                            f"--split, or train with {key} above 0")
        result = evaluate(model, ids, args.protocol, starts=starts, before=before,
                          streams=args.streams, burn_in=args.burn_in, block=args.block,
                          windows=args.windows, seed=args.seed)
    except (UserError, OSError) as e:  # (OSError: a path the OS refuses)
        return fail(e)
    cfg = model.config
    checkpointed = model.iteration > 0 or not _is_export(args.source)
    info = dict(source=str(args.source), split=args.split,
                model=f"{cfg.model.layers}-layer {cfg.model.kind}, hidden "
                f"{cfg.model.hidden}, {cfg.train.dtype}",
                iteration=model.iteration if checkpointed else None)
    if args.protocol == "headline" and starts is None:
        info["start"] = ("the checkpoint's carried state" if np.any(model.carried[0])
                         else "a zero state (the file holds no carried state)")
    if args.json:
        print(json.dumps(dict(result.as_dict(), **info)))
        return 0
    how = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in result.settings.items())
    start = f"; burn-in from {info['start']}" if "start" in info else ""
    where = (f"at iteration {model.iteration}" if checkpointed else "an export")
    print(f"{result.nats:.4f} nats/char ({result.bits:.4f} bits) over "
          f"{result.characters:,} characters of the {args.split} split; protocol "
          f"{result.protocol} ({how}{start}); {info['model']}, {where}")
    return 0


def _is_export(source):
    from pathlib import Path

    from .export import _is_checkpoint
    path = Path(source)
    return not path.is_dir() and not _is_checkpoint(path)


if __name__ == "__main__":
    sys.exit(main())
