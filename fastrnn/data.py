"""Text corpora: finding the file, reading it as UTF-8, the vocabulary and the splits."""
import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError


@dataclass(frozen=True)
class KnownCorpus:
    filename: str
    url: str
    sha256: str
    size: int


# Corpora that are downloaded when they are found nowhere on disk.
KNOWN = {
    "shakespeare": KnownCorpus(
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),
}


def data_dir():
    d = os.environ.get("FASTRNN_DATA_DIR")
    return Path(d) if d else None


def cache_dir():
    d = os.environ.get("FASTRNN_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fastrnn"


def resolve(path_or_name):
    """The file behind data.path: the path itself if it exists, else <name> or
    <name>.txt in $FASTRNN_DATA_DIR, then in the cache; a known corpus is downloaded
    into the cache when it is found nowhere."""
    given = Path(path_or_name).expanduser()
    if given.is_file():
        return given
    name = str(path_or_name)
    known = KNOWN.get(name)
    candidates = [name, name + ".txt"] + ([known.filename] if known else [])
    folders = [d for d in (data_dir(), cache_dir()) if d is not None]
    for folder in folders:
        for candidate in candidates:
            if (folder / candidate).is_file():
                return folder / candidate
    if known:
        return download(name, known)
    where = " or ".join(str(d) for d in folders)
    raise UserError(f"data.path: file '{name}' not found (nor {name}.txt in {where}); "
                    f"give the path of a text file")


def download(name, known, timeout=30):
    """Fetch a known corpus, check its sha256 and write it atomically into the cache."""
    target = cache_dir() / known.filename
    fix = f"download {known.url} to {target}, or put {known.filename} in $FASTRNN_DATA_DIR"
    try:
        with urllib.request.urlopen(known.url, timeout=timeout) as response:
            blob = response.read()
    except (OSError, ValueError) as e:
        raise UserError(f"data.path: corpus '{name}' is not on disk and could not be "
                        f"downloaded ({getattr(e, 'reason', e)}); {fix}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != known.sha256:
        raise UserError(f"data.path: the download of '{name}' from {known.url} has sha256 "
                        f"{digest[:12]}..., expected {known.sha256[:12]}...; nothing was "
                        f"saved; {fix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, blob)
    return target


def write_atomic(path, blob):
    """Write bytes to path through a temporary file and a rename, so a reader never sees a
    half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_text(path):
    """The file's text; UserError if it is empty, binary or not UTF-8."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise UserError(f"data.path: cannot read {path}: {e.strerror}") from None
    if not blob:
        raise UserError(f"data.path: {path} is empty; give a text file with some text in it")
    if b"\0" in blob:
        raise UserError(f"data.path: {path} looks binary (it holds NUL bytes); give a "
                        f"UTF-8 text file")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"data.path: {path} is not valid UTF-8 (byte {e.start}); convert "
                        f"it, e.g. iconv -f LATIN1 -t UTF-8") from None


class Corpus:
    """A text as ids over its vocabulary sorted(set(text)), split into train and val."""

    def __init__(self, text, val_fraction=0.0, vocab=None):
        self.text = text
        self.vocab = sorted(set(text)) if vocab is None else list(vocab)
        self.ids = encode(text, self.vocab)
        n_val = int(len(text) * val_fraction)
        self.train = self.ids[:len(text) - n_val]
        self.val = self.ids[len(text) - n_val:]

    def streams(self, B):
        """The training text as B contiguous streams: (B, len(train) // B)."""
        S = len(self.train) // B
        return np.ascontiguousarray(self.train[:B * S].reshape(B, S))


def encode(text, vocab):
    """Ids of text's characters in vocab, as int32; UserError for a character not in it."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    ids = np.searchsorted(table, codes)
    ids = np.minimum(ids, len(table) - 1)
    missing = table[ids] != codes
    if missing.any():
        ch = chr(codes[np.argmax(missing)])
        raise UserError(f"character {ch!r} is not in the vocabulary")
    return ids.astype(np.int32)
