"""Corpora: the bundled tinyshakespeare, corpora by name offline, folders and globs of
files, and the test split with its report at the end of a run."""
import dataclasses
import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn import data
from fastrnn.data import Corpus
from fastrnn.run import main as run_main

ROOT = Path(fastrnn.__file__).parent.parent
SHAKESPEARE = data.KNOWN["shakespeare"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty HOME, no FASTRNN_DATA_DIR or cache settings, and no network; the list
    of URLs that were asked for."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("FASTRNN_DATA_DIR", "FASTRNN_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    asked = []

    def no_network(url, *args, **kw):
        asked.append(url)
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return asked


def test_the_bundled_shakespeare_is_the_pinned_text_and_reproducible():
    gz = data.BUNDLED / (SHAKESPEARE.filename + ".gz")
    blob = gz.read_bytes()
    assert blob[4:8] == b"\0\0\0\0"  # gzip mtime 0: the same bytes from the same text
    text = gzip.decompress(blob)
    assert len(text) == SHAKESPEARE.size
    assert hashlib.sha256(text).hexdigest() == SHAKESPEARE.sha256
    # naval's licence is unknown: it is downloaded, never shipped
    assert sorted(p.name for p in data.BUNDLED.iterdir()) == ["tinyshakespeare.txt.gz"]


def test_shakespeare_config_trains_offline_from_an_empty_home(offline, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert data.resolve("shakespeare") == data.BUNDLED / "tinyshakespeare.txt.gz"
    code = run_main([str(ROOT / "configs" / "shakespeare.yaml"), "model.hidden=8",
                     "train.dtype=float64", "train.seq_length=6", "train.max_iters=20",
                     "train.log_every=10", "train.eval_every=10", "train.sample_every=0",
                     f"train.out_dir={out_dir}"])
    out = capsys.readouterr().out
    assert code == 0 and "done: 20 iterations" in out and "best validation" in out
    assert offline == [] and not (tmp_path / "home" / ".cache" / "fastrnn").exists()
    assert len(fastrnn.load(out_dir).vocab) == 65


def test_a_data_dir_comes_before_the_bundled_corpus(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA_DIR", str(tmp_path))
    (tmp_path / "tinyshakespeare.txt").write_text("my own copy\n")
    assert data.read_corpus("shakespeare") == "my own copy\n"


def test_naval_offline_is_one_line_saying_where_to_put_it(offline, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "home" / ".cache" / "fastrnn"
    with pytest.raises(fastrnn.UserError) as e:
        data.resolve("naval")
    msg = str(e.value)
    assert "\n" not in msg and f"to {cache / 'naval.txt'}" in msg
    assert "naval.txt in $FASTRNN_DATA_DIR" in msg
    assert offline == [data.KNOWN["naval"].url]
    assert run_main([str(ROOT / "configs" / "naval.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not be downloaded" in err[0]
    assert not (tmp_path / "runs").exists() and not cache.exists()


def test_naval_is_found_by_name_once_it_is_in_the_cache(offline, tmp_path, monkeypatch):
    cache = tmp_path / "home" / ".cache" / "fastrnn"
    cache.mkdir(parents=True)
    blob = b"Seek wealth, not money or status.\n"
    (cache / "naval.txt").write_bytes(blob)
    # the cached copy is checked against the pin every time: pin this stand-in's
    monkeypatch.setitem(data.KNOWN, "naval", dataclasses.replace(
        data.KNOWN["naval"], sha256=hashlib.sha256(blob).hexdigest(), size=len(blob)))
    assert data.resolve("naval") == cache / "naval.txt"


@pytest.mark.skipif(not os.environ.get("FASTRNN_DATA_DIR"), reason="needs FASTRNN_DATA_DIR")
def test_the_naval_pin_matches_the_seed_file():
    known = data.KNOWN["naval"]
    blob = (Path(os.environ["FASTRNN_DATA_DIR"]) / known.filename).read_bytes()
    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (known.size, known.sha256)
    assert "47497c01e782bf03d91ec3178ad961469f503ed1" in known.url


def test_a_folder_or_a_glob_is_joined_in_sorted_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "b.txt").write_text("second\n")
    (folder / "a.txt").write_text("first")  # no final newline: one is added
    (folder / "c.txt").write_text("third\n")
    (folder / "notes.md").write_text("# not a .txt\n")
    (folder / ".hidden.txt").write_text("editor swap\n")
    assert data.read_corpus(folder) == "first\n\nsecond\n\nthird\n"
    assert data.read_corpus("texts") == "first\n\nsecond\n\nthird\n"
    assert data.read_corpus("texts/[bc].txt") == "second\n\nthird\n"
    assert data.read_corpus("texts/*.md") == "# not a .txt\n"
    (folder / "sub").mkdir()
    (folder / "sub" / "d.txt").write_text("deep\n")
    assert data.read_corpus("texts/**/*.txt").endswith("third\n\ndeep\n")
    assert data.read_corpus(folder / "a.txt") == "first"


def test_a_folder_trains_and_its_text_is_the_joined_files(tmp_path):
    (tmp_path / "one.txt").write_text(SMALL_TEXT)
    (tmp_path / "two.txt").write_text(SMALL_TEXT.upper())
    t = fastrnn.Trainer(tiny_config(data={"path": str(tmp_path)}))
    assert t.corpus.text == SMALL_TEXT + "\n" + SMALL_TEXT.upper()
    assert np.isfinite(t.train_iters(5)).all()


@pytest.mark.parametrize("path,match", [
    ("empty_folder", "holds no .txt files"),
    ("texts/*.rst", "matches no file"),
    ("texts", "bad.txt is not valid UTF-8"),
])
def test_bad_data_paths_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, path, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "empty_folder" / "readme.md").write_text("no texts here\n")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "bad.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "tiny.yaml").write_text("model:\n  hidden: 8\ntrain:\n  dtype: float64\n")
    assert run_main(["tiny.yaml", f"data.path={path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_corrupt_gzip_is_one_clear_error(tmp_path):
    gz = tmp_path / "text.txt.gz"
    gz.write_bytes(gzip.compress(b"hello world\n" * 100)[:40])
    with pytest.raises(fastrnn.UserError, match="truncated or corrupt gzip"):
        data.read_corpus(gz)
    gz.write_bytes(b"plain text\n")
    with pytest.raises(fastrnn.UserError, match="is not a gzip file"):
        data.read_corpus(gz)


def test_splits_are_train_val_test_and_val_is_unchanged_without_test():
    text = "".join(chr(97 + i % 26) for i in range(1000))
    old = Corpus(text, 0.1)
    assert (len(old.train), len(old.val), len(old.test)) == (900, 100, 0)
    assert np.array_equal(old.val, old.ids[-100:])
    c = Corpus(text, 0.1, test_fraction=0.2)
    assert (len(c.train), len(c.val), len(c.test)) == (700, 100, 200)
    assert np.array_equal(np.concatenate([c.train, c.val, c.test]), c.ids)
    assert np.array_equal(c.test, c.ids[-200:]) and np.array_equal(c.val, c.ids[700:800])


@pytest.mark.parametrize("val,test", [(0.5, 0.5), (0.3, 0.9)])
def test_fractions_that_leave_no_training_text_are_refused(tmp_path, monkeypatch, capsys,
                                                           val, test):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT)
    (tmp_path / "tiny.yaml").write_text("data:\n  path: text.txt\n")
    args = ["tiny.yaml", f"data.val_fraction={val}", f"data.test_fraction={test}"]
    assert run_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.val_fraction + data.test_fraction must be less than 1" \
        in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 6, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.15\n  test_fraction: 0.15\n"
        "model:\n  hidden: 16\n"
        "train:\n  seq_length: 10\n  max_iters: 300\n  dtype: float64\n"
        "  log_every: 100\n  eval_every: 100\n  sample_every: 0\n  checkpoint_every: 100\n")
    return tmp_path


def test_the_test_loss_is_reported_once_from_the_best_checkpoint(tiny_run, capsys,
                                                                 monkeypatch):
    # validation losses that are best at iteration 200, so best.npz is not the end
    vals = iter([2.0, 1.0, 1.5])
    monkeypatch.setattr(fastrnn.run.Run, "_evaluate", lambda self: next(vals))
    assert run_main(["tiny.yaml"]) == 0
    out = capsys.readouterr().out
    run = tiny_run / "runs" / "tiny"
    report = json.loads((run / "test.json").read_text())
    best = fastrnn.load(run / "best.npz")
    want = best.evaluate(split="test")  # the headline, from the checkpoint's state
    assert best.iteration == 200 and report["iteration"] == 200
    assert report["test_nats"] == pytest.approx(want, rel=1e-12)
    assert report["weights"] == "best.npz"
    assert report["characters"] == len(best.corpus.test) == int(len(SMALL_TEXT * 6) * 0.15)
    lines = [line for line in out.splitlines() if line.startswith("test: ")]
    assert len(lines) == 1 and f"{want:.4f} nats/char" in lines[0]
    latest = fastrnn.load(run / "latest.npz")
    assert latest.iteration == 300
    assert latest.evaluate(split="test") != pytest.approx(want, rel=1e-9)


def test_without_validation_the_test_loss_is_the_final_weights(tiny_run, capsys):
    assert run_main(["tiny.yaml", "data.val_fraction=0"]) == 0
    run = tiny_run / "runs" / "tiny"
    assert not (run / "best.npz").exists()
    report = json.loads((run / "test.json").read_text())
    final = fastrnn.load(run)
    assert report["weights"] == "the final weights" and report["iteration"] == 300
    assert report["test_nats"] == pytest.approx(final.evaluate(split="test"), rel=1e-12)


def test_no_test_split_writes_no_report(tiny_run, capsys):
    assert run_main(["tiny.yaml", "data.test_fraction=0"]) == 0
    assert "test: " not in capsys.readouterr().out
    assert not (tiny_run / "runs" / "tiny" / "test.json").exists()


def test_the_start_says_the_size_of_the_model_and_of_a_pass(tiny_run, capsys):
    assert run_main(["tiny.yaml", "train.batch_size=2"]) == 0
    out = capsys.readouterr().out
    t = fastrnn.load(tiny_run / "runs" / "tiny")
    n_params = sum(v.size for v in t.params().values())
    chars = len(t.corpus.train)
    assert (f"vocabulary {len(t.vocab)} characters; {n_params:,} parameters; training "
            f"text {chars:,} characters, a pass every ~{chars / 20:,.0f} iterations "
            f"(10 x 2 characters each)") in out
    passes = [line for line in out.splitlines() if line.startswith("a pass over")]
    assert len(passes) == 1 and "the rate of iterations 2-100" in passes[0]


def test_the_readme_s_first_sweep_runs_on_the_bundled_corpus(offline):
    from fastrnn.config import Config
    from fastrnn.sweeps import load_sweep, trial_config
    readme = (ROOT / "README.md").read_text()
    first = next(line for line in readme.splitlines()
                 if line.startswith(("fastrnn sweep configs/",
                                     "python -m fastrnn.sweep configs/")))
    sweep = load_sweep(ROOT / next(w for w in first.split() if w.startswith("configs/")))
    assert len(sweep.trials) >= 2
    for name, values in sweep.trials:
        cfg = Config.from_dict(trial_config(sweep, name, values))
        assert data.resolve(cfg.data.path).is_relative_to(data.BUNDLED)
    assert offline == []


def test_a_byte_order_mark_and_crlf_line_ends_are_read_as_plain_text(tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    windows = b"\xef\xbb\xbf" + (SMALL_TEXT * 3).replace("\n", "\r\n").encode()
    (tmp_path / "text.txt").write_bytes(windows)
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 6\n  max_iters: 20\n  dtype: float64\n  sample_every: 0\n")
    assert run_main(["tiny.yaml"]) == 0
    err = capsys.readouterr().err
    note = ("note: data.path: text.txt: its byte-order mark dropped and CRLF line ends "
            "read as LF; data.newlines=keep keeps them")
    assert err.count(note) == 1, err
    t = fastrnn.load(tmp_path / "runs" / "tiny")
    assert t.vocab == sorted(set(SMALL_TEXT)) and t.corpus.text == SMALL_TEXT * 3
    kept = fastrnn.Trainer(tiny_config(data={"path": "text.txt", "newlines": "keep"}))
    assert {"\ufeff", "\r"} <= set(kept.vocab) and kept.corpus.text == windows.decode()
    # a folder of such files: said once, of the first
    (tmp_path / "more").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "more" / name).write_bytes(windows)
    said = []
    assert "\r" not in data.read_corpus(tmp_path / "more", say=said.append)
    assert len(said) == 1 and "a.txt" in said[0] and "(and in 1 more file(s))" in said[0]


def test_a_text_of_one_character_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys
    (tmp_path / "one.txt").write_text("a" * 500)
    (tmp_path / "tiny.yaml").write_text("data:\n  path: one.txt\nmodel:\n  hidden: 8\n")
    done = subprocess.run([sys.executable, "-m", "fastrnn.run", "tiny.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [(
        "fastrnn: error: data.path: the text has 1 distinct character(s) 'a'; a model "
        "predicts one character from another, so it needs at least 2: give another text")]
    assert not (tmp_path / "runs").exists()
