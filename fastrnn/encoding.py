"""Texts as arrays of ids: characters encoded a chunk at a time into the smallest dtype
for the vocabulary, files read as ids without their whole text in memory, and a cache of
the ids of large corpora, memory-mapped and keyed by the files' sha256.

A corpus of a gigabyte is read twice, a chunk at a time: once for its vocabulary and
length (and checks: NUL bytes, UTF-8), once to encode it into an id array allocated for
that length, so the text itself (as bytes, str or UTF-32) is never in memory whole.
Corpora of CACHE_BYTES or more keep their ids in the cache folder, <sha256>.npy with
<sha256>.json beside it (the vocabulary, the length, the dtype and a sha256 of all of
these and the ids): a second run hashes the files, checks the cached ids and maps them.
A cached file that fails any check is rebuilt, never used.

newlines (data.newlines) "normalize" reads each file as data.normalize reads a text: a
byte-order mark at its start dropped and CRLF read as LF, a "\r" that ends one piece held
until the next says whether "\n" follows it; "keep" reads the files as they are. The
setting is part of the cache key.
"""
import codecs
import gzip
import hashlib
import io
import json
import os
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import create_temporary, remove_stale_temporaries, write_atomic

CHUNK = 1 << 22  # characters (or bytes of a file) encoded at a time: 4 Mi
CACHE_BYTES = 1 << 25  # corpora of fewer bytes (32 MiB) are encoded on every run
# Part of the cache key: change it whenever reading a file gives another text (or ids)
# for the same bytes, so that older cached ids are not used.
FORMAT = b"fastrnn ids 2\0"  # 2: data.newlines
_CODES = 0x110000  # Unicode code points

# A corpus as ids: ids (N,) of id_dtype(len(vocab)), maybe a read-only-on-disk memory
# map (copy-on-write); vocab the characters sorted by code point.
Text = namedtuple("Text", ["ids", "vocab"])


def id_dtype(V):
    """The dtype of the ids of a vocabulary of V characters: uint8 up to 256 (the common
    case, which every shipped config and test uses, so that the kernels compile once),
    uint16 up to 65,536, else int32. The kernels read any of them, compiled per dtype."""
    return np.dtype(np.uint8 if V <= 256 else np.uint16 if V <= 65536 else np.int32)


def encode(text, vocab):
    """Ids of text's characters in vocab, as id_dtype(len(vocab)), encoded CHUNK
    characters at a time (no UTF-32 copy of the whole text); UserError for a character
    not in vocab."""
    table = _table(vocab)
    ids = np.empty(len(text), id_dtype(len(vocab)))
    for i in range(0, len(text), CHUNK):
        _encode_into(ids[i:i + CHUNK], text[i:i + CHUNK], table)
    return ids


def decode(ids, vocab):
    """The text of ids over vocab (the inverse of encode)."""
    codes = np.array([ord(c) for c in vocab], np.uint32)
    return codes[ids].tobytes().decode("utf-32-le")


def characters(text):
    """The set of characters of a text, a str or a Text (its vocabulary)."""
    return set(text.vocab) if isinstance(text, Text) else set(text)


def as_ids(ids, V):
    """ids (any integer array or list) as id_dtype(V); UserError if one is outside
    0..V-1."""
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise UserError(f"ids must be integers, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise UserError(f"ids must lie in 0..{V - 1} (the vocabulary's), got "
                        f"{ids.min()}..{ids.max()}")
    return ids.astype(id_dtype(V), copy=False)


def _table(vocab):
    """(C+1,) int32: the id of each code point up to C, the largest in vocab; -1 for
    code points not in vocab, and at C+1 for all above C."""
    codes = np.array([ord(c) for c in vocab], np.int64)
    table = np.full((codes.max() + 2) if codes.size else 1, -1, np.int32)
    table[codes] = np.arange(codes.size, dtype=np.int32)
    return table


def _encode_into(out, text, table):
    """out[:] = the ids of text (out has len(text) elements)."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    ids = table[np.minimum(codes, np.uint32(table.size - 1))]
    if ids.size and ids.min() < 0:
        ch = chr(codes[np.argmax(ids < 0)])
        raise UserError(f"character {ch!r} is not in the vocabulary")
    out[:] = ids


# --- files read as ids ------------------------------------------------------------------

def read_files(paths, cache=None, newlines="keep", changes=None):
    """A Text of the files' texts joined as data.join joins them (a newline added to a
    text that does not end in one, then an empty line between texts), read in chunks,
    each file's newlines read as `newlines` says (see above). With a cache folder, a
    corpus of CACHE_BYTES or more is looked up there first by its sha256, and its ids
    are stored there when they are not. changes (a list) gets (path, [what]) of each
    file that "normalize" changed, in data.normalize's words."""
    paths = [Path(p) for p in paths]
    key, found = None, []
    if cache is not None and sum(_size(p) for p in paths) >= CACHE_BYTES:
        key = _key(paths, newlines, found)
        cached = _cached(Path(cache), key)
        if cached is not None:
            if changes is not None:
                changes.extend(found)
            return cached
        found = []
    seen, n, keys = np.zeros(_CODES, bool), 0, []
    for text in _texts(paths, newlines, keys, found):
        seen[np.frombuffer(text.encode("utf-32-le"), np.uint32)] = True
        n += len(text)
    if key is not None and keys[0] != key:
        raise _changed(paths)
    vocab = [chr(c) for c in np.flatnonzero(seen)]
    dtype = id_dtype(len(vocab))
    ids, tmp = _new_ids(Path(cache), keys[0], n, dtype) if key else (None, None)
    try:
        if ids is None:
            ids = np.empty(n, dtype)
        table, at = _table(vocab), 0
        for text in _texts(paths, newlines, keys, []):
            if at + len(text) > n:
                raise _changed(paths)
            try:
                _encode_into(ids[at:at + len(text)], text, table)
            except UserError:  # (a character the first reading did not see)
                raise _changed(paths) from None
            at += len(text)
        if at != n or keys[1] != keys[0]:
            raise _changed(paths)
        out = _store(Path(cache), key, ids, tmp, vocab) if tmp is not None \
            else Text(ids, vocab)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if changes is not None:
        changes.extend(found)
    return out


def _size(path):
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _changed(paths):
    what = str(paths[0]) if len(paths) == 1 else f"one of its {len(paths)} files"
    return UserError(f"data.path: {what} changed while it was read; run again once it "
                     f"is written")


def _key(paths, newlines, changes):
    """The cache key of the files: sha256 of FORMAT, newlines and each file's sha256 (of
    its contents, a .gz file's decompressed; names left out). changes gets (path,
    [what]) of each file that newlines="normalize" changes."""
    h = hashlib.sha256(FORMAT + newlines.encode() + b"\0")
    for path in paths:
        one = hashlib.sha256()
        marks = _Marks(one)
        for block in blocks(path):
            marks.update(block)
        h.update(one.digest())
        if newlines == "normalize" and marks.what():
            changes.append((path, marks.what()))
    return h.hexdigest()


def _texts(paths, newlines, keys, changes):
    """The joined text of the files, a piece at a time, read as newlines says; at the
    end their _key (as read this time) is appended to keys, and to changes what
    "normalize" changed (see _key)."""
    h = hashlib.sha256(FORMAT + newlines.encode() + b"\0")
    for k, path in enumerate(paths):
        one, last = hashlib.sha256(), ""
        marks = _Marks(one)
        pieces = _decoded(path, marks)
        for text in _normalized(pieces) if newlines == "normalize" else pieces:
            last = text[-1] if text else last
            yield text
        h.update(one.digest())
        if newlines == "normalize" and marks.what():
            changes.append((path, marks.what()))
        if k < len(paths) - 1:
            yield "\n" if last == "\n" else "\n\n"
    keys.append(h.hexdigest())


def _normalized(pieces):
    """The pieces of a file's text read as data.normalize reads it whole: a byte-order
    mark at its start dropped, CRLF read as LF. A piece's final "\r" waits for the next
    piece, which may start with its "\n"."""
    started, held = False, ""
    for text in pieces:
        text, held = held + text, ""
        if not started and text:
            started = True
            text = text[1:] if text[0] == "\ufeff" else text
        if text.endswith("\r"):
            text, held = text[:-1], "\r"
        yield text.replace("\r\n", "\n")
    if held:
        yield held


class _Marks:
    """What data.normalize changes in a file, seen in its bytes as they are read: in
    UTF-8 a byte-order mark is the bytes EF BB BF at the start, and CR LF the bytes 0D
    0A wherever they are (no byte of a longer character is below 0x80). The bytes are
    fed on to the hash h."""

    def __init__(self, h):
        self.h, self.start, self.last, self.crlf = h, b"", b"", False

    def update(self, block):
        self.h.update(block)
        if len(self.start) < 3:
            self.start += block[:3 - len(self.start)]
        self.crlf = self.crlf or b"\r\n" in self.last + block[:1] or b"\r\n" in block
        self.last = block[-1:] or self.last

    def what(self):
        return ((["its byte-order mark dropped"] if self.start == b"\xef\xbb\xbf" else [])
                + (["CRLF line ends read as LF"] if self.crlf else []))


def blocks(path):
    """The bytes of the file (a .gz file decompressed), CHUNK at a time; UserError when
    it cannot be read (data.read_text's messages)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            while block := f.read(CHUNK):
                yield block
    except OSError as e:
        if not isinstance(e, gzip.BadGzipFile):
            raise UserError(f"data.path: cannot read {path}: {e.strerror}") from None
        raise UserError(f"data.path: {path} is not a gzip file; give the text itself, or "
                        f"a name that does not end in .gz") from None
    except (EOFError, zlib.error):
        raise UserError(f"data.path: {path} is a truncated or corrupt gzip file; "
                        f"decompress it to check, or give the text itself") from None


def _decoded(path, h):
    """The file's text a piece at a time, its bytes fed to the hash h (or a _Marks);
    UserError if it is empty, binary or not UTF-8 (data.read_text's checks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0  # bytes given to the decoder
    for block in blocks(path):
        h.update(block)
        if b"\0" in block:
            raise UserError(f"data.path: {path} looks binary (it holds NUL bytes); give a "
                            f"UTF-8 text file")
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError as e:
            raise _not_utf8(path, done - pending + e.start) from None
        done += len(block)
        yield text
    if not done:
        raise UserError(f"data.path: {path} is empty; give a text file with some text in it")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, done - len(decoder.getstate()[0]) + e.start) from None


def _not_utf8(path, at):
    return UserError(f"data.path: {path} is not valid UTF-8 (byte {at}); convert it, "
                     f"e.g. iconv -f LATIN1 -t UTF-8")


# --- the cache of ids -------------------------------------------------------------------

def _header(dtype, n):
    """The .npy header of an array (n,) of dtype."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, dict(descr=np.lib.format.dtype_to_descr(dtype), fortran_order=False,
                shape=(n,)))
    return f.getvalue()


def _new_ids(folder, key, n, dtype):
    """(a writable memory map of a new .npy file of n ids in the cache folder, its
    temporary path), its space reserved; (None, None) when the folder cannot take it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        fd, tmp = create_temporary(folder / f"{key}.npy")
    except OSError:
        return None, None
    head = _header(dtype, n)
    try:
        with os.fdopen(fd, "wb") as f:
            # space for it all now: writing a memory map past a full disk is a SIGBUS
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, len(head) + n * dtype.itemsize)
            else:
                os.ftruncate(f.fileno(), len(head) + n * dtype.itemsize)
            f.write(head)
        return np.memmap(tmp, dtype, "r+", offset=len(head), shape=(n,)), tmp
    except OSError:
        tmp.unlink(missing_ok=True)
        return None, None


def _check(vocab, n, dtype, ids):
    """The sha256 that the cache's .json keeps: of the vocabulary, length, dtype and
    ids (ids: an array, or the .npy file to read after its header)."""
    h = hashlib.sha256(json.dumps([[ord(c) for c in vocab], n, str(dtype)]).encode())
    if isinstance(ids, np.ndarray):
        h.update(ids)
        return h.hexdigest()
    path, offset = ids
    with open(path, "rb") as f:  # (read, not mapped: the pages stay out of this process)
        f.seek(offset)
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _store(folder, key, ids, tmp, vocab):
    """The new ids file (a memory map) renamed into place with its .json; the cached
    Text (the ids as they are, should the cache not take them)."""
    ids.flush()
    meta = dict(chars=len(ids), dtype=str(ids.dtype), vocab=[ord(c) for c in vocab],
                sha256=_check(vocab, len(ids), ids.dtype, ids))
    try:
        os.replace(tmp, folder / f"{key}.npy")
        write_atomic(folder / f"{key}.json", json.dumps(meta).encode())
    except OSError:
        return Text(ids.view(np.ndarray), vocab)
    # (mapped anew, copy-on-write: nothing can write through to the cache)
    return _cached(folder, key, checked=True) or Text(ids.view(np.ndarray), vocab)


def _cached(folder, key, checked=False):
    """The Text cached under key, its ids a copy-on-write memory map; None when there is
    none or it fails a check (its .json, the .npy header's dtype and shape, its size,
    its sha256)."""
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    try:
        if not npy.is_file() or not meta.is_file() or meta.stat().st_size > 1 << 24:
            return None
        info = json.loads(meta.read_bytes())
        n, codes, digest = info["chars"], info["vocab"], info["sha256"]
        if not (type(n) is int and n > 0 and isinstance(codes, list) and codes
                and all(type(c) is int for c in codes) and isinstance(digest, str)):
            return None
        if codes != sorted(set(codes)) or not 0 <= codes[0] <= codes[-1] < _CODES:
            return None
        vocab = [chr(c) for c in codes]
        dtype = id_dtype(len(vocab))
        if info["dtype"] != str(dtype):
            return None
        ids = np.load(npy, mmap_mode="c", allow_pickle=False)
        if ids.dtype != dtype or ids.shape != (n,) or \
                npy.stat().st_size != ids.offset + n * dtype.itemsize:
            return None
        if not checked and _check(vocab, n, dtype, (npy, ids.offset)) != digest:
            return None
        return Text(ids.view(np.ndarray), vocab)
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None
