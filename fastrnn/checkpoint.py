"""Checkpoints: one .npz per checkpoint, written atomically, read with allow_pickle=False.

A checkpoint holds everything needed to continue bit for bit: the resolved config, the
vocabulary, the parameters, the Adagrad memory, the carried hidden state, the data
pointer and iteration, the smoothed loss and the run's own state (best validation loss,
the sampling RNG).
"""
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .config import Config
from .data import write_atomic
from .errors import UserError

FORMAT_VERSION = 1
LATEST, BEST = "latest.npz", "best.npz"


def save(trainer, path, extra=None):
    """Write trainer's state (and a JSON-able dict of the runner's own state) to path."""
    arrays = dict(
        format_version=np.array(FORMAT_VERSION),
        config=np.array(json.dumps(trainer.config.to_dict())),
        vocab=np.array(json.dumps(trainer.vocab)),
        extra=np.array(json.dumps(extra or {})),
        **trainer.state_dict(),
    )
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


def read(path):
    """The arrays of a checkpoint file; UserError if it is missing, truncated, corrupt or
    of another format version."""
    path = Path(path)
    fix = "delete it, or point to another checkpoint"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"checkpoint {path} is corrupt or truncated ({e}); {fix}") from None
    missing = {"format_version", "config", "vocab", "theta", "optimizer", "state", "cursor",
               "rng", "next_input", "smooth_loss", "extra"} - set(arrays)
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(sorted(missing))}; {fix}")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version}; this fastrnn "
                        f"reads version {FORMAT_VERSION}")
    try:
        arrays["config"] = Config.from_dict(json.loads(str(arrays["config"])), where=str(path))
        arrays["vocab"] = json.loads(str(arrays["vocab"]))
        arrays["extra"] = json.loads(str(arrays["extra"]))
    except json.JSONDecodeError:
        raise UserError(f"checkpoint {path} is corrupt (unreadable metadata); {fix}") from None
    return arrays


def restore(trainer, arrays, path="checkpoint"):
    """Copy a checkpoint's state into a trainer built for the same model and text."""
    if arrays["vocab"] != trainer.vocab:
        raise UserError(f"{path}: its vocabulary ({len(arrays['vocab'])} characters) "
                        f"differs from the data's ({len(trainer.vocab)}); train on the "
                        f"same text, or start a new run in another train.out_dir")
    trainer.load_state_dict(arrays, where=str(path))


def find(path):
    """A checkpoint file: path itself, or the latest checkpoint in a run folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / LATEST).is_file():
            raise UserError(f"no checkpoint in run folder {path} (no {LATEST})")
        return path / LATEST
    return path
