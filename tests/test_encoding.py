"""Corpora as ids: encoding in chunks, files read as ids a chunk at a time, the cache of
ids keyed by sha256 (reused, invalidated, never trusted when damaged), uint8 and uint16
ids in training, and data.val_chars."""
import gzip
import json

import numpy as np
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import data, encoding
from fastrnn.errors import UserError
from fastrnn.run import main as run_main
from fastrnn.trainer import Trainer

# 3 + 26 + 300 distinct characters, some of 2, 3 and 4 UTF-8 bytes
WIDE = "".join(chr(c) for c in [*range(0x3b1, 0x3c9), *range(0x4e00, 0x4f00),
                                0x1f600, 0x1f601, 0x2603, 0x20ac])
MIXED = (SMALL_TEXT + "Caf\u00e9 \u2603 na\u00efve \U0001f600 \u20ac5\n") * 3


def reference_encode(text, vocab):
    """The whole text as UTF-32 at once: how fastrnn encoded before chunks."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    return np.searchsorted(table, codes).astype(np.int32)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 characters (or bytes): every multi-byte character is cut somewhere."""
    monkeypatch.setattr(encoding, "CHUNK", 7)


@pytest.mark.parametrize("text", [MIXED, "a", "ab\n" * 5, WIDE * 2 + MIXED])
def test_encoding_in_chunks_gives_the_ids_of_the_whole_text(small_chunks, text):
    vocab = sorted(set(text))
    ids = encoding.encode(text, vocab)
    assert ids.dtype == (np.uint8 if len(vocab) <= 256 else np.uint16)
    assert np.array_equal(ids, reference_encode(text, vocab))
    assert encoding.decode(ids, vocab) == text


def test_a_character_outside_the_vocabulary_is_named(small_chunks):
    with pytest.raises(UserError, match="character 'z' is not in the vocabulary"):
        encoding.encode("abcabcabcz", list("abc"))


def test_id_dtypes_by_vocabulary_size():
    assert [encoding.id_dtype(v) for v in (1, 256, 257, 65536, 65537)] == \
        [np.uint8, np.uint8, np.uint16, np.uint16, np.int32]


def write_corpora(tmp_path):
    """Files whose joined texts test the reader: one file, a folder of three (one without
    a final newline), a .gz, and CR/LF with a byte order mark (kept as read_text keeps
    them)."""
    (tmp_path / "one.txt").write_text(MIXED, encoding="utf-8")
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "a.txt").write_text("first\n", encoding="utf-8")
    (folder / "b.txt").write_text("sec\u00f6nd \U0001f600", encoding="utf-8")
    (folder / "c.txt").write_text(WIDE, encoding="utf-8")
    (tmp_path / "z.txt.gz").write_bytes(gzip.compress(MIXED.encode(), mtime=0))
    (tmp_path / "crlf.txt").write_bytes("\ufeffa line\r\nanother\r\n".encode())
    # CR LF cut by every chunk boundary (chunks of 7 bytes), lone CRs, a final CR
    crs = tmp_path / "crs"
    crs.mkdir()
    (crs / "a.txt").write_bytes("\ufeffab\r\ncdef\r\r\ng\rh\r\n\r\n\u00e9\r".encode())
    (crs / "b.txt").write_bytes("\ufeff\ufeffx\r\n".encode() + b"yz\r\n" * 5)
    (crs / "c.txt").write_bytes(b"abcdef\r\nghi\n")  # (its one CR LF cut)
    return ["one.txt", "many", "z.txt.gz", "crlf.txt", "crs"]


@pytest.mark.parametrize("newlines", ["normalize", "keep"])
def test_files_read_in_chunks_give_the_text_read_whole(tmp_path, monkeypatch, small_chunks,
                                                       newlines):
    monkeypatch.chdir(tmp_path)
    for name in write_corpora(tmp_path):
        said, told = [], []
        text = data.read_corpus(name, newlines, said.append)
        got = data.load_corpus(name, newlines, told.append)
        assert got.vocab == sorted(set(text)), name
        assert np.array_equal(got.ids, data.encode(text, got.vocab)), name
        assert told == said, name
        if name == "crlf.txt":
            marks = {"\r", "\ufeff"} & set(text)
            assert marks == ({"\r", "\ufeff"} if newlines == "keep" else set())
        if name in ("crlf.txt", "crs"):
            assert len(said) == (newlines == "normalize"), name
    assert data.load_corpus("many").ids.dtype == np.uint16  # (300 and more characters)


def test_cached_ids_are_of_their_newlines_setting(tmp_path, cache, capsys):
    path = tmp_path / "text.txt"
    path.write_bytes(b"\xef\xbb\xbf" + MIXED.replace("\n", "\r\n").encode())
    said = []
    for newlines in ("normalize", "keep", "normalize", "keep"):
        got = data.load_corpus(path, newlines, said.append)
        text = data.read_corpus(path, newlines)
        assert got.vocab == sorted(set(text)) and \
            np.array_equal(got.ids, data.encode(text, got.vocab)), newlines
    assert len(list(cache.glob("*.npy"))) == 2
    # the note is said from the cache too
    assert said == [f"note: data.path: {path}: its byte-order mark dropped and CRLF line "
                    f"ends read as LF; data.newlines=keep keeps them"] * 2


@pytest.mark.parametrize("blob,match", [
    (b"", "is empty"),
    (b"abc\0def", "looks binary"),
    ("caf\u00e9 ".encode() * 3 + b"\xff tail", r"not valid UTF-8 \(byte 18\)"),
    ("abc\u00e9".encode()[:-1], r"not valid UTF-8 \(byte 3\)"),  # cut in a character
])
def test_files_read_in_chunks_are_checked_as_read_text_checks(tmp_path, small_chunks,
                                                             blob, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(blob)
    for read in (data.read_corpus, data.load_corpus):
        with pytest.raises(UserError, match=match) as e:
            read(path)
        assert "\n" not in str(e.value)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Every corpus cached (CACHE_BYTES 1), in tmp_path/cache/ids."""
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(encoding, "CACHE_BYTES", 1)
    return tmp_path / "cache" / "ids"


def no_encoding(monkeypatch):
    def fail(*args):
        raise AssertionError("encoded again")
    monkeypatch.setattr(encoding, "_encode_into", fail)


def test_the_ids_of_a_corpus_are_cached_and_mapped_the_next_time(tmp_path, cache,
                                                                 monkeypatch):
    path = tmp_path / "text.txt"
    path.write_text(MIXED, encoding="utf-8")
    first = data.load_corpus(path)
    (npy,) = cache.glob("*.npy")
    assert sorted(p.name for p in cache.iterdir()) == [npy.stem + ".json", npy.name]
    assert np.array_equal(first.ids, data.encode(MIXED, sorted(set(MIXED))))
    with monkeypatch.context() as m:
        no_encoding(m)
        again = data.load_corpus(path)
    assert again.vocab == first.vocab and np.array_equal(again.ids, first.ids)
    assert again.ids.dtype == np.uint8 and isinstance(again.ids.base, np.memmap)
    # another text: another key, encoded anew
    path.write_text(MIXED + "more", encoding="utf-8")
    changed = data.load_corpus(path)
    assert np.array_equal(changed.ids, data.encode(MIXED + "more", changed.vocab))
    assert len(list(cache.glob("*.npy"))) == 2


def damage_header(npy):
    blob = bytearray(npy.read_bytes())
    i = blob.index(b"|u1")
    blob[i:i + 3] = b"<u2"
    npy.write_bytes(bytes(blob))


@pytest.mark.parametrize("damage", [
    lambda npy, meta: npy.write_bytes(npy.read_bytes()[:-1]),  # truncated
    lambda npy, meta: npy.write_bytes(npy.read_bytes() + b"\0"),  # too long
    lambda npy, meta: npy.write_bytes(npy.read_bytes()[:-1] + b"\x02"),  # an id changed
    lambda npy, meta: damage_header(npy),  # another dtype
    lambda npy, meta: npy.write_bytes(b"not an npy file"),
    lambda npy, meta: meta.write_text("{"),
    lambda npy, meta: meta.write_text(json.dumps(
        dict(json.loads(meta.read_text()), vocab=[0, 1]))),
    lambda npy, meta: meta.write_text(json.dumps(dict(json.loads(meta.read_text()),
                                                      chars=10 ** 12))),
    lambda npy, meta: meta.unlink(),
])
def test_a_damaged_cache_is_rebuilt_never_used(tmp_path, cache, damage):
    path = tmp_path / "text.txt"
    path.write_text(MIXED, encoding="utf-8")
    good = data.load_corpus(path)
    ids, vocab = np.array(good.ids), good.vocab
    del good
    (npy,) = cache.glob("*.npy")
    damage(npy, npy.with_suffix(".json"))
    got = data.load_corpus(path)
    assert got.vocab == vocab and np.array_equal(got.ids, ids)
    assert npy.with_suffix(".json").is_file() and [p.name for p in cache.glob("*.npy")] \
        == [npy.name]
    assert encoding._cached(cache, npy.stem) is not None  # (rebuilt whole)


def test_small_corpora_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "text.txt").write_text(MIXED, encoding="utf-8")
    data.load_corpus(tmp_path / "text.txt")
    assert not (tmp_path / "cache").exists()


def test_an_unwritable_cache_reads_the_corpus_without_one(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "CACHE_BYTES", 1)
    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "text.txt").write_text(MIXED, encoding="utf-8")
    got = data.load_corpus(tmp_path / "text.txt")
    assert np.array_equal(got.ids, data.encode(MIXED, got.vocab))


def train_both(text, n=30, **sections):
    """(ids dtype, losses, parameters, validation loss, whether the loss on the end
    of the training text fell) of a trainer on text, and the same of that trainer
    reading its streams as int32, as every run did before uint8 and uint16 ids."""
    out = []
    for wide in (False, True):
        t = Trainer(tiny_config(**sections), text=text)
        if wide:
            t.run = t.run._replace(data=t.run.data.astype(np.int32))
        probe = t.corpus.train[-200:]  # (the wide characters are each too rare to learn)
        before = t.loss_of(probe)
        losses = t.train_iters(n)
        learnt = t.loss_of(probe) < before
        out.append((t.run.data.dtype, losses, t.net.theta.copy(), t.evaluate(), learnt))
    return out


def test_uint8_ids_train_as_int32_ids_do():
    (dtype, losses, theta, val, learnt), (wide, losses32, theta32, val32, _) = train_both(
        SMALL_TEXT * 2, data={"val_fraction": 0.2})
    assert dtype == np.uint8 and wide == np.int32
    assert np.array_equal(losses, losses32) and np.array_equal(theta, theta32)
    assert val == val32 and learnt


def test_a_vocabulary_over_256_characters_trains_with_uint16_ids():
    text = WIDE + SMALL_TEXT * 3
    (dtype, losses, theta, val, learnt), (_, losses32, theta32, val32, _) = train_both(
        text, n=100, data={"val_fraction": 0.2})
    assert dtype == np.uint16 and len(set(text)) > 256
    assert np.array_equal(losses, losses32) and np.array_equal(theta, theta32)
    assert val == val32 and learnt


def test_val_chars_caps_the_validation_split():
    cfg = tiny_config(data={"val_fraction": 0.5, "val_chars": 50})
    t = Trainer(cfg, text=SMALL_TEXT * 2)
    assert len(t.corpus.val) > 200 and len(t.split("val")[0]) == 50
    assert t.evaluate("zero") == t.loss_of(t.corpus.val[:50], 1)
    assert t.evaluate() != Trainer(tiny_config(data={"val_fraction": 0.5}),
                                   text=SMALL_TEXT * 2).evaluate()


def test_val_chars_takes_whole_paragraphs():
    cfg = tiny_config(data={"val_fraction": 0.5, "val_chars": 60,
                            "records": "paragraphs"})
    t = Trainer(cfg, text=SMALL_TEXT * 2)
    ids, starts = t.split("val")
    full = t.corpus.starts["val"]
    assert len(full) > 3 and starts[-1] <= 60 and np.array_equal(starts, full[:len(starts)])
    assert starts[-1] == len(ids) and len(starts) >= 2


def test_a_cut_validation_is_said_at_start(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.5\n  val_chars: 100\n"
        "model:\n  hidden: 8\n"
        "train:\n  seq_length: 6\n  max_iters: 2\n  dtype: float64\n  out_dir: run\n")
    assert run_main(["tiny.yaml"]) == 0
    out = capsys.readouterr().out
    val = len(SMALL_TEXT * 4) - int(len(SMALL_TEXT * 4) * 0.5)
    assert f"validation reads the first 100 of its {val} characters (data.val_chars)" in out


def test_val_chars_is_checked():
    with pytest.raises(UserError, match="data.val_chars"):
        Trainer(tiny_config(data={"val_chars": 1}), text=SMALL_TEXT)


def test_a_file_that_changes_while_it_is_read_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "text.txt"
    path.write_text(MIXED, encoding="utf-8")
    real = encoding._decoded

    def growing(p, h):  # the file grows between the two readings
        yield from real(p, h)
        p.write_text(MIXED + "\u00e9xtra", encoding="utf-8")
    monkeypatch.setattr(encoding, "_decoded", growing)
    with pytest.raises(UserError, match=f"data.path: {path} changed while it was read"):
        data.load_corpus(path)
