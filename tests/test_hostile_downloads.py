"""A known corpus in the download cache is checked against its pinned sha256 every time
it is used: a tampered or cut copy is one line saying to delete it."""
import hashlib
import shutil
import urllib.request
from pathlib import Path

import pytest

from fastrnn import data
from hostile import check_refused

NAVAL = Path("/work/shared/data/naval.txt")
BASE = ("data:\n  path: naval\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n")

# (the name in the cache, what is done to the good text)
CASES = [
    ("naval.txt", lambda b: b[:-1] + b"!"),
    ("naval.txt", lambda b: b[: len(b) // 2]),
    ("naval.txt", lambda b: b""),
    ("naval.txt", lambda b: b + b"more text\n"),
    ("naval", lambda b: b.replace(b"wealth", b"health")),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    if not NAVAL.is_file() or (hashlib.sha256(NAVAL.read_bytes()).hexdigest()
                               != data.KNOWN["naval"].sha256):
        pytest.skip("naval.txt is not on this machine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FASTRNN_DATA_DIR", raising=False)
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))

    def offline(*a, **kw):
        raise OSError("offline")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (tmp_path / "cache").mkdir()
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


@pytest.mark.parametrize("name,damage", CASES)
def test_a_changed_cached_corpus_is_refused_on_use(workdir, name, damage):
    (workdir / "cache" / name).write_bytes(damage(NAVAL.read_bytes()))
    line = check_refused("run", ["base.yaml"], workdir, match="sha256")
    assert "delete it" in line and name in line


def test_a_good_cached_corpus_is_used(workdir):
    shutil.copy(NAVAL, workdir / "cache" / "naval.txt")
    assert data.resolve("naval") == workdir / "cache" / "naval.txt"
