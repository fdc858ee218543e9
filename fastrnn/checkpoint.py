"""Checkpoints: one .npz per checkpoint, written atomically, read with allow_pickle=False
and checked against its own config and vocabulary (validate) by every reader.

A checkpoint holds everything needed to continue bit for bit: the resolved config, the
vocabulary, the parameters, the Adagrad memory, the carried hidden state, the data
pointer and iteration, the smoothed loss, the plateau schedule's multiplier of lr
(lr_scale) and the run's own state (best validation loss, the sampling RNG, the
evaluations since the best, the minutes trained); and the reading mode's own state
(reading.py: with paragraphs, their order, where each stream is in them, and their
shuffle's generator).
"""
import io
import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from .config import Config, read_json
from .encoding import characters
from .errors import UserError
from .files import write_atomic
from .models import FAMILIES
from .reading import MODES

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


KEYS = ("format_version", "config", "vocab", "theta", "optimizer", "state", "cursor", "rng",
        "next_input", "smooth_loss", "extra")
# Keys a checkpoint may lack, written by an older fastrnn: lr_scale (1 then).
OPTIONAL = ("lr_scale",)
# A reading mode's own keys (reading.Paragraphs.state_keys) are checked by the mode.
ZIP_MAGIC = b"PK\x03\x04"


def read(path):
    """The arrays of a checkpoint file, checked by validate(); UserError if it is missing,
    not an .npz, truncated, corrupt, of another format version or inconsistent."""
    path = Path(path)
    fix = "delete it, or point to another checkpoint"
    try:  # (without waiting: a pipe is refused, never read)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise UserError(f"checkpoint {path} is not a regular file (a pipe or a "
                                f"device); {fix}")
            magic = f.read(4)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"checkpoint {path} is a folder, not a file; {fix}") from None
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path} ({e.strerror}); {fix}") from None
    if magic != ZIP_MAGIC:
        raise UserError(f"checkpoint {path} is not an .npz file (it does not start as a zip "
                        f"archive does); {fix}")
    return validate(read_npz(path, f"checkpoint {path}", fix), path)


# zipfile's methods: stored, deflated, bzip2, lzma (np.savez writes the first two)
_METHODS = (0, 8, 12, 14)


def read_npz(path, what, fix):
    """The arrays of an .npz file (a checkpoint or an export), each member's header
    (dtype and shape) read and its size checked against the archive and this machine's
    memory before anything is allocated; UserError '{what} ...; {fix}' for a file that
    is not an .npz, a compression method zipfile cannot read, a member whose declared
    size exceeds what it holds, or anything else damaged."""
    import zipfile
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise UserError(f"cannot read {what} ({e.strerror or e}); {fix}") from None
    if magic == b"\x93NUMPY":
        raise UserError(f"{what} is a single .npy array, not an .npz archive; {fix}")
    if magic[:4] != ZIP_MAGIC:
        raise UserError(f"{what} is not an .npz file (it does not start as a zip archive "
                        f"does); {fix}")
    try:
        with zipfile.ZipFile(path) as z:
            total = 0
            for info in z.infolist():
                if info.compress_type not in _METHODS:
                    raise UserError(f"{what}: member {info.filename} uses compression "
                                    f"method {info.compress_type}, which cannot be read; "
                                    f"{fix}")
                with z.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = header(member, max_header_size=10_000)
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size:
                    raise UserError(f"{what}: member {info.filename} declares {dtype} "
                                    f"of shape {shape} ({_size(nbytes)}) but holds "
                                    f"{_size(info.file_size)}; {fix}")
                total += nbytes
        if total > _memory():
            raise UserError(f"{what} would take {_size(total)} of memory, more than this "
                            f"machine has; {fix}")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 -- whatever a damaged archive raises, it is damaged
        why = " ".join(str(e).split())[:200]
        raise UserError(f"{what} is corrupt or truncated ({type(e).__name__}: {why}); "
                        f"{fix}") from None


def _size(nbytes):
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes:,} bytes"


def _memory():
    """This machine's memory in bytes (unbounded where it cannot be told)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return math.inf


def validate(arrays, path="checkpoint"):
    """Check every array of a checkpoint against the config and vocabulary it declares:
    presence, dtype, shape and range, finite weights and optimizer state; returns the
    arrays with config (a Config), vocab (a list) and extra (a dict) decoded. Any
    failure is a UserError naming the file and the field."""
    fix = "delete it, or point to another checkpoint"

    def bad(field, what):
        return UserError(f"checkpoint {path}: {field} {what}; {fix}")

    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise bad(", ".join(missing), "is missing" if len(missing) == 1 else "are missing")
    mode_keys = tuple(k for m in MODES.values() for k in m.state_keys)
    for key in KEYS + tuple(k for k in OPTIONAL + mode_keys if k in arrays):
        if not isinstance(arrays[key], np.ndarray):
            raise bad(key, "is not a numpy array")

    def scalar(key, kind):
        a = arrays[key]
        if a.shape != () or (a.dtype.kind != "U" if kind == "U" else a.dtype != kind):
            want = "str" if kind == "U" else np.dtype(kind)
            raise bad(key, f"must be a scalar of {want}, got {_describe(a)}")
        return a[()]

    version = int(scalar("format_version", np.int64))
    if version != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version}; this fastrnn "
                        f"reads version {FORMAT_VERSION}")
    meta = {}
    for key in ("config", "vocab", "extra"):
        try:
            meta[key] = read_json(str(scalar(key, "U")))
        except ValueError as e:
            raise bad(key, f"is not valid JSON or holds too much ({e})") from None
    if not isinstance(meta["config"], dict):
        raise bad("config", f"must be a mapping, got {type(meta['config']).__name__}")
    cfg = Config.from_dict(meta["config"], where=f"checkpoint {path}: config")
    vocab = meta["vocab"]
    if (not isinstance(vocab, list) or not vocab
            or not all(isinstance(c, str) and len(c) == 1 and not _surrogate(c)
                       for c in vocab)):
        raise bad("vocab", "must be a non-empty list of one-character strings (no lone "
                  "surrogate: no text holds one)")
    if vocab != sorted(set(vocab)):
        raise bad("vocab", "must be sorted and without repeats")
    extra = meta["extra"]
    if not isinstance(extra, dict):
        raise bad("extra", f"must be a mapping, got {type(extra).__name__}")
    best = extra.get("best_val", math.inf)
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
        raise bad("extra.best_val", f"must be a number, got {best!r}")
    for key in ("sample_seed", "best_iteration", "since_best", "plateau_wait",
                "watched_at"):
        value = extra.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise bad(f"extra.{key}", f"must be a whole number in [0, 2**63), got "
                      f"{value!r}")
    watch = extra.get("watch_best", math.inf)
    if isinstance(watch, bool) or not isinstance(watch, (int, float)) or math.isnan(watch):
        raise bad("extra.watch_best", f"must be a number, got {watch!r}")
    minutes = extra.get("minutes", 0.0)
    if (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
            or not 0 <= minutes < math.inf):
        raise bad("extra.minutes", f"must be a finite number >= 0, got {minutes!r}")

    V, H, L = len(vocab), cfg.model.hidden, cfg.model.layers
    S = 2 if FAMILIES[cfg.model.kind].cell else 1
    P = sum(math.prod(shape) for _, shape in FAMILIES[cfg.model.kind].arrays(V, H, L))
    dtype = np.dtype(cfg.train.dtype)
    B = cfg.train.batch_size
    expect = dict(theta=(dtype, (P,)), optimizer=(dtype, (2, P)), state=(dtype, (S, L, B, H)),
                  cursor=(np.dtype(np.int64), (2,)), rng=(np.dtype(np.uint64), (1,)))
    expect.update(MODES[cfg.data.records].expect(arrays, B, bad))
    for key, (want_dtype, want_shape) in expect.items():
        a = arrays[key]
        if a.dtype != want_dtype or a.shape != want_shape:
            raise bad(key, f"must be {want_dtype} of shape {want_shape} for its config "
                      f"({cfg.model.kind}, hidden {H}, {L} layer(s), {V} characters, "
                      f"batch {B}), got {_describe(a)}")
    for key in ("theta", "optimizer", "state"):
        if not np.all(np.isfinite(arrays[key])):
            raise bad(key, "holds NaN or infinite values")
    if np.any(arrays["cursor"] < 0):
        raise bad("cursor", f"must not be negative, got {arrays['cursor'].tolist()}")
    next_input = int(scalar("next_input", np.int64))
    if not 0 <= next_input < V:
        raise bad("next_input", f"must be a character id in [0, {V}), got {next_input}")
    smooth = float(scalar("smooth_loss", np.float64))
    if not math.isfinite(smooth) or smooth < 0:
        raise bad("smooth_loss", f"must be a finite number >= 0, got {smooth}")
    if "lr_scale" in arrays:
        scale = float(scalar("lr_scale", np.float64))
        if not 0 <= scale <= 1:
            raise bad("lr_scale", f"must be a number in [0, 1], got {scale}")
    return dict(arrays, config=cfg, vocab=vocab, extra=extra)


def _surrogate(c):
    """Whether the character c is a lone surrogate, which UTF-8 text cannot hold (sampled,
    it could not be printed or written)."""
    return "\ud800" <= c <= "\udfff"


def _describe(a):
    return f"{a.dtype} of shape {a.shape}"


def vocab_for(arrays, text):
    """The vocabulary a trainer resuming from the checkpoint reads text with: the
    checkpoint's own when it holds every character of text (a run started from an
    export's weights keeps the export's characters, used or not), else None (the text's
    own, which restore() then refuses)."""
    return arrays["vocab"] if characters(text) <= set(arrays["vocab"]) else None


def restore(trainer, arrays, path="checkpoint"):
    """Copy a checkpoint's state into a trainer built for the same model and text."""
    if arrays["vocab"] != trainer.vocab:
        raise UserError(f"{path}: its vocabulary ({len(arrays['vocab'])} characters) "
                        f"differs from the data's ({len(trainer.vocab)}); train on the "
                        f"same text, or start a new run in another train.out_dir")
    trainer.mode.check_restore(trainer.corpus, trainer.config.train.seq_length, arrays,
                               path)
    S = len(trainer.corpus.train) // trainer.config.train.batch_size  # per stream
    if arrays["cursor"][0] >= S:
        raise UserError(f"{path}: its data pointer ({arrays['cursor'][0]}) lies beyond the "
                        f"training text's {S} characters per stream; train on the same "
                        f"text and data.val_fraction, or start a new run")
    trainer.load_state_dict(arrays, where=str(path))


def find(path):
    """A checkpoint file: path itself, or the latest checkpoint in a run folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / LATEST).is_file():
            raise UserError(f"no checkpoint in run folder {path} (no {LATEST})")
        return path / LATEST
    return path
