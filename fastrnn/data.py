"""Text corpora: finding the files, reading them as UTF-8, the vocabulary and the splits."""
import glob
import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .encoding import Text, as_ids, blocks, decode, encode, id_dtype, read_files
from .errors import UserError, path_error
from .files import write_atomic


@dataclass(frozen=True)
class KnownCorpus:
    filename: str
    url: str
    sha256: str
    size: int


# Corpora known by name: looked up on disk, then downloaded from a pinned commit and
# checked against their sha256. tinyshakespeare is public domain and also ships inside
# the package; naval's licence is unknown, so it is only ever downloaded.
KNOWN = {
    "shakespeare": KnownCorpus(
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/"
        "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),
    "naval": KnownCorpus(
        "naval.txt",
        "https://raw.githubusercontent.com/minii-ai/rnn/"
        "47497c01e782bf03d91ec3178ad961469f503ed1/data/howtogetrich.txt",
        "81dc69c6551d800d8eebb1fb6dd7d82a8efa6467e2b3dfa1b8bfbbd3dbff0e64", 4_225),
}

# Package data: <filename>.gz of a known corpus, written reproducibly with
# gzip.compress(text, 9, mtime=0).
BUNDLED = Path(__file__).parent / "corpora"


def data_dir():
    d = os.environ.get("FASTRNN_DATA_DIR")
    return Path(d) if d else None


def cache_dir():
    d = os.environ.get("FASTRNN_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fastrnn"


def read_corpus(path_or_name, newlines="normalize", say=None):
    """The text behind data.path: a file, a folder (its *.txt files), a glob of files, or
    a corpus name (see resolve); several files are joined by join(). newlines
    (data.newlines): "normalize" reads each file with normalize(), and say(line) is told
    once what that changed; "keep" reads the files as they are."""
    texts, changed = [], []
    for f in files(path_or_name):
        text = read_text(f)
        if newlines == "normalize":
            text, what = normalize(text)
            if what:
                changed.append((f, what))
        texts.append(text)
    _say_changes(changed, say)
    return join(texts)


def _say_changes(changed, say):
    """Tell say, once, what data.newlines=normalize changed: changed is (file, [what])
    of each file it changed."""
    if changed and say is not None:
        f, what = changed[0]
        more = f" (and in {len(changed) - 1} more file(s))" if len(changed) > 1 else ""
        say(f"note: data.path: {f}: {' and '.join(what)}{more}; data.newlines=keep "
            f"keeps them")


def normalize(text):
    """(text without a leading byte-order mark and with CRLF line ends as LF, the list
    of what that changed): an editor's marks that would be characters of the model."""
    what = []
    if text.startswith("\ufeff"):
        text = text[1:]
        what.append("its byte-order mark dropped")
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        what.append("CRLF line ends read as LF")
    return text, what


def load_corpus(path_or_name, newlines="normalize", say=None):
    """read_corpus's text (newlines and say as there) as an encoding.Text (ids and
    vocabulary), read a chunk at a time without the whole text in memory; a large
    corpus's ids are cached in cache_dir()/ids and memory-mapped from there on the next
    run."""
    changed = []
    text = read_files(files(path_or_name), cache_dir() / "ids", newlines, changed)
    _say_changes(changed, say)
    return text


def join(texts):
    """Texts joined in the order given with one blank line between them: a newline is
    added to a text that does not end with one, then an empty line follows, so the
    files of a folder read as paragraphs ("a\n", "b\n" -> "a\n\nb\n")."""
    return "\n".join([t if t.endswith("\n") else t + "\n" for t in texts[:-1]] + texts[-1:])


def files(path_or_name):
    """The files behind data.path, sorted; UserError for a folder without *.txt files, a
    glob that matches no file, or a path the OS refuses (a name too long, ~nosuchuser)."""
    try:
        return _files(path_or_name)
    except (OSError, RuntimeError) as e:
        raise path_error(e, "data.path") from None


def _files(path_or_name):
    given = Path(path_or_name).expanduser()
    if given.is_dir():
        found = sorted(Path(f) for f in glob.glob(glob.escape(str(given)) + "/*.txt")
                       if Path(f).is_file())
        if not found:
            raise UserError(f"data.path: folder {given} holds no .txt files; name the "
                            f"texts *.txt, or give a glob for other names, e.g. "
                            f"'{given}/*.md'")
        return found
    if not given.is_file() and glob.has_magic(str(given)):
        if "**" in str(given):
            _refuse_link_loops(given)
        found = sorted(Path(f) for f in glob.glob(str(given), recursive=True)
                       if Path(f).is_file())
        if not found:
            raise UserError(f"data.path: the glob '{path_or_name}' matches no file; check "
                            f"the pattern (it is relative to {Path.cwd()})")
        return found
    return [resolve(path_or_name)]


def _refuse_link_loops(pattern):
    """UserError if a recursive glob (**) would follow a link to a folder back into
    the folder that holds it (or above it): glob follows links, and two such links make
    it run for ever."""
    parts = pattern.parts
    fixed = next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    for folder, dirs, _ in os.walk(root, followlinks=False):
        here = os.path.realpath(folder)
        for name in dirs:
            link = os.path.join(folder, name)
            if not os.path.islink(link):
                continue
            target = os.path.realpath(link)
            if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                raise UserError(f"data.path: the glob '{pattern}' would follow the link "
                                f"{link} back into {target}, for ever; remove the link "
                                f"or narrow the glob")


def resolve(path_or_name):
    """The file behind data.path: the path itself if it exists, else <name> or
    <name>.txt in $FASTRNN_DATA_DIR, then the copy inside the package, then the cache;
    a known corpus is downloaded into the cache when it is found nowhere."""
    given = Path(path_or_name).expanduser()
    if given.is_file():
        return given
    name = str(path_or_name)
    known = KNOWN.get(name)
    candidates = [name, name + ".txt"] + ([known.filename] if known else [])
    if data_dir() is not None:
        for candidate in candidates:
            if (data_dir() / candidate).is_file():
                return data_dir() / candidate
    if known and (BUNDLED / (known.filename + ".gz")).is_file():
        return BUNDLED / (known.filename + ".gz")
    for candidate in candidates:
        if (cache_dir() / candidate).is_file():
            return _verified(cache_dir() / candidate, name, known)
    if known:
        return download(name, known)
    where = " or ".join(str(d) for d in (data_dir(), cache_dir()) if d is not None)
    raise UserError(f"data.path: file '{name}' not found (nor {name}.txt in {where}); "
                    f"give the path of a text file, a folder or a glob")


def _verified(path, name, known):
    """path, a copy of a known corpus in the cache, checked against its pinned sha256
    every time it is used (a download cut short or changed since is refused)."""
    if known is None:
        return path
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise UserError(f"data.path: cannot read the cached copy of '{name}' at {path} "
                        f"({e.strerror or e}); delete it and it is downloaded again") \
            from None
    if digest.hexdigest() != known.sha256:
        raise UserError(f"data.path: the cached copy of '{name}' at {path} has sha256 "
                        f"{digest.hexdigest()[:12]}..., expected {known.sha256[:12]}... "
                        f"(changed or cut short); delete it and it is downloaded again")
    return path


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


def read_text(path):
    """The file's text (a .gz file decompressed); UserError if it is empty, binary or
    not UTF-8."""
    path = Path(path)
    blob = b"".join(blocks(path))
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


def paragraphs(text):
    """The paragraphs of text, split at one or more blank (empty or whitespace-only)
    lines: (where each starts in text, its lines joined by newlines and followed by a
    blank line, "a\nb\n\n"), so that its end is part of it."""
    out, lines, start, at = [], [], 0, 0
    for line in text.split("\n"):
        if line.strip():
            if not lines:
                start = at
            lines.append(line)
        elif lines:
            out.append((start, "\n".join(lines) + "\n\n"))
            lines = []
        at += len(line) + 1
    if lines:
        out.append((start, "\n".join(lines) + "\n\n"))
    return out


class Corpus:
    """A text as ids over its vocabulary (sorted(set(text)), or a given sorted list that
    holds every character of the text), split in this order into
    train | val | test: the test split is the last test_fraction of the text, the
    validation split the val_fraction before it (the last one when there is no test).
    The text is a str or an encoding.Text (already ids); the ids are of
    encoding.id_dtype, and the splits views of them.

    records="paragraphs": each split is the paragraphs (see paragraphs()) that start in
    it, one after another, and starts[split] (P+1,) says where each begins."""

    def __init__(self, text, val_fraction=0.0, vocab=None, test_fraction=0.0,
                 records="stream"):
        chars = list(text.vocab) if isinstance(text, Text) else sorted(set(text))
        if len(chars) < 2:
            raise UserError(f"data.path: the text has {len(chars)} distinct character(s) "
                            f"{''.join(chars)!r}; a model predicts one character from "
                            f"another, so it needs at least 2: give another text")
        self.vocab = chars if vocab is None else list(vocab)
        if isinstance(text, Text):
            self.ids = text.ids if vocab is None else _recode(text, self.vocab)
        else:
            self.ids = encode(text, self.vocab)
        N = len(self.ids)
        n_test = int(N * test_fraction)
        n_val = int(N * val_fraction)
        self.starts = None
        if records == "paragraphs":
            self._paragraphs(text if isinstance(text, str) else self.text,
                             (N - n_test - n_val, N - n_test))
            return
        self.train = self.ids[:N - n_test - n_val]
        self.val = self.ids[N - n_test - n_val:N - n_test]
        self.test = self.ids[N - n_test:]

    @property
    def text(self):
        """The text, decoded from the ids (it is not kept)."""
        return decode(self.ids, self.vocab)

    def _paragraphs(self, text, cuts):
        """The splits as paragraphs, each in the split where its first character is."""
        found = paragraphs(text)
        if len(found) < 2:
            raise UserError("data.records=paragraphs: the text has no blank line between "
                            "paragraphs, so it is one paragraph; separate its paragraphs "
                            "with empty lines, or use data.records=stream")
        if all(len(p) < 2 + 2 for _, p in found):  # (each ends in "\n\n")
            raise UserError("data.records=paragraphs: every paragraph of the text is "
                            "shorter than 2 characters, so no character follows another "
                            "within one; use data.records=stream")
        splits = ([], [], [])
        for start, p in found:
            splits[(start >= cuts[0]) + (start >= cuts[1])].append(encode(p, self.vocab))
        self.starts = {}
        for name, split in zip(("train", "val", "test"), splits):
            ids = (np.concatenate(split) if split
                   else np.zeros(0, id_dtype(len(self.vocab))))
            setattr(self, name, ids)
            self.starts[name] = np.cumsum([0] + [len(p) for p in split], dtype=np.int64)

    def streams(self, B):
        """The training text as B contiguous streams: (B, len(train) // B), a view."""
        S = len(self.train) // B
        return np.ascontiguousarray(self.train[:B * S].reshape(B, S))


def _recode(text, vocab):
    """The ids of an encoding.Text over another vocabulary."""
    ids = encode("".join(text.vocab), vocab)  # (UserError for a character not in it)
    return as_ids(ids[text.ids], len(vocab))
