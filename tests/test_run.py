"""The main job: config errors, data resolution, run folders, checkpoints, exact resume,
sampling and the command line."""
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT
from fastrnn import data
from fastrnn import run as run_module
from fastrnn.reference import model_loss_grads
from fastrnn.run import main as run_main

TEXT = SMALL_TEXT * 4
TINY = ("data:\n  path: text.txt\n  val_fraction: 0.2\n"
        "model:\n  hidden: 16\n"
        "train:\n  seq_length: 10\n  max_iters: 400\n  dtype: float64\n"
        "  log_every: 100\n  eval_every: 200\n  sample_every: 200\n"
        "  sample_length: 40\n  checkpoint_every: 100\n")


def write_workdir(folder):
    (folder / "text.txt").write_text(TEXT, encoding="utf-8")
    (folder / "tiny.yaml").write_text(TINY)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_workdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def runs_of_100(tmp_path_factory):
    """The runs/ folder `tiny.yaml train.max_iters=100` leaves (runs/tiny), trained once
    for the tests that start from it (each takes a copy: ran_100)."""
    folder = tmp_path_factory.mktemp("ran100")
    write_workdir(folder)
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert run_main(["tiny.yaml", "train.max_iters=100"]) == 0
    finally:
        os.chdir(here)
    return folder / "runs"


@pytest.fixture
def ran_100(workdir, runs_of_100):
    """workdir after `tiny.yaml train.max_iters=100`: runs/tiny holds its run (the run
    folder records its paths relative to the working folder)."""
    shutil.copytree(runs_of_100, workdir / "runs")
    return workdir


def run_cli(*args, timeout=120, **kw):
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


@pytest.mark.parametrize("args,match", [
    (["missing.yaml"], "config file not found"),
    (["tiny.yaml", "model.hiden=3"], "did you mean 'model.hidden'"),
    (["tiny.yaml", "model.hidden=abc"], "model.hidden must be a whole number"),
    (["tiny.yaml", "model.hidden=0"], "model.hidden must be at least 1"),
    (["tiny.yaml", "optim.lr=-0.1"], "optim.lr must be greater than 0"),
    (["tiny.yaml", "train.seq_length=100000"], "too long"),
    (["tiny.yaml", "data.path=nowhere.txt"], "not found"),
    (["tiny.yaml", "lr=1"], "section.key=value"),
    (["tiny.yaml", "train.out_dir=text.txt/run"], "cannot be written"),
    (["tiny.yaml", "data.val_fraction=0.0005"], "too few for a validation loss"),
    (["tiny.yaml", "model.hidden=100000"], "GiB of memory"),
    (["tiny.yaml", "model.init=he"], "one of auto, minchar, pytorch, xavier, orthogonal"),
])
def test_bad_input_is_one_line_and_exit_2(workdir, capsys, args, match):
    assert run_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0]


def test_time_limit_stops_with_an_evaluation_and_a_checkpoint(workdir, capsys):
    assert run_main(["tiny.yaml", "train.max_minutes=0.00001"]) == 0
    out = capsys.readouterr().out
    assert "done: 100 iterations" in out and "best validation" in out  # one log interval
    assert fastrnn.load(workdir / "runs/tiny/latest.npz", data=False).iteration == 100


def test_invalid_yaml_and_bad_files(workdir, capsys):
    (workdir / "bad.yaml").write_text("model: [unclosed\n")
    assert run_main(["bad.yaml"]) == 2
    assert "invalid YAML at line" in capsys.readouterr().err
    (workdir / "empty.txt").write_bytes(b"")
    assert run_main(["tiny.yaml", "data.path=empty.txt"]) == 2
    assert "empty" in capsys.readouterr().err
    (workdir / "bin.dat").write_bytes(b"\xff\xfe\x00\x01" * 50)
    assert run_main(["tiny.yaml", "data.path=bin.dat"]) == 2
    assert "binary" in capsys.readouterr().err


def test_a_run_writes_its_folder_and_never_overwrites_one(workdir, capsys):
    assert run_main(["tiny.yaml"]) == 0
    out = capsys.readouterr().out
    run = workdir / "runs" / "tiny"
    for f in ("config.yaml", "metrics.csv", "samples.txt", "latest.npz", "best.npz"):
        assert (run / f).exists(), f
    assert "---- sample at iteration 200 ----" in out and "done: 400 iterations" in out
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,smooth_loss") and rows[-1].startswith("400,")
    before = (run / "latest.npz").read_bytes()
    assert run_main(["tiny.yaml"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "latest.npz").read_bytes() == before
    assert run_main(["tiny.yaml", "train.overwrite=true", "train.max_iters=100"]) == 0
    assert fastrnn.load(run).iteration == 100


def test_resume_is_bit_exact(workdir):
    assert run_main(["tiny.yaml", "train.max_iters=200", "train.out_dir=a"]) == 0
    assert run_main(["tiny.yaml", "train.max_iters=400", "train.out_dir=a",
                     "train.resume=true"]) == 0
    assert run_main(["tiny.yaml", "train.max_iters=400", "train.out_dir=b"]) == 0
    a, b = fastrnn.load("a"), fastrnn.load("b")
    assert a.iteration == b.iteration == 400
    for k, v in a.params().items():
        assert np.array_equal(v, b.params()[k]), k
    assert np.array_equal(a.net.memory, b.net.memory) and a.smooth_loss == b.smooth_loss


def test_trainer_save_and_load_round_trip(workdir):
    t = fastrnn.Trainer({"data": {"path": "text.txt"}, "model": {"hidden": 12},
                         "train": {"seq_length": 8}})
    t.train_iters(50)
    t.save(workdir / "x.npz")
    u = fastrnn.load(workdir / "x.npz")
    assert u.iteration == 50 and np.array_equal(u.buf.hs[:, 0], t.buf.hs[:, 0])
    assert np.array_equal(t.train_iters(30), u.train_iters(30))


@pytest.mark.usefixtures("ran_100")
def test_corrupt_truncated_and_mismatched_checkpoints(workdir, capsys):
    latest = workdir / "runs" / "tiny" / "latest.npz"
    blob = latest.read_bytes()
    latest.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        fastrnn.load(latest)
    assert run_main(["tiny.yaml", "train.resume=true"]) == 2
    assert "corrupt" in capsys.readouterr().err
    latest.write_bytes(blob)
    assert run_main(["tiny.yaml", "train.resume=true", "data.path=other.txt"]) == 2
    assert "data.path=text.txt, the config says other.txt" in capsys.readouterr().err
    (workdir / "text.txt").write_text(TEXT + "QXZ")  # the same file, another text
    assert run_main(["tiny.yaml", "train.resume=true"]) == 2
    assert "vocabulary" in capsys.readouterr().err
    (workdir / "text.txt").write_text(TEXT)
    assert run_main(["tiny.yaml", "train.resume=true", "model.hidden=17"]) == 2
    assert "model.hidden" in capsys.readouterr().err
    assert run_main(["tiny.yaml", "train.resume=true", "model.init=xavier"]) == 2
    assert "model.init=auto, the config says xavier" in capsys.readouterr().err
    assert latest.read_bytes() == blob  # nothing was touched


@pytest.mark.usefixtures("ran_100")
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(workdir, capsys):
    latest = workdir / "runs" / "tiny" / "latest.npz"
    good = latest.read_bytes()
    # resume a copy in a second folder with an lr that blows the weights up
    other = workdir / "runs" / "blowup"
    other.mkdir()
    (other / "latest.npz").write_bytes(good)
    code = run_main(["tiny.yaml", "train.resume=true", "train.out_dir=runs/blowup",
                     "optim.lr=1e308"])
    err = capsys.readouterr().err
    assert code == 3 and "the loss became" in err and "is as it was" in err
    assert (other / "latest.npz").read_bytes() == good and latest.read_bytes() == good
    # at the first iteration there is no checkpoint to speak of
    assert run_main(["tiny.yaml", "train.out_dir=runs/fresh", "optim.lr=1e308"]) == 3
    err = capsys.readouterr().err
    assert "no checkpoint had been written yet" in err and "as it was" not in err


def test_sampling_is_deterministic_and_checks_the_prime(workdir):
    assert run_main(["tiny.yaml", "train.max_iters=300"]) == 0
    run = workdir / "runs" / "tiny"
    a = fastrnn.sample(run, prime="First", length=80, seed=5)
    assert a.startswith("First") and len(a) == 85
    assert a == fastrnn.sample(run, prime="First", length=80, seed=5)
    assert a != fastrnn.sample(run, prime="First", length=80, seed=6)
    greedy = fastrnn.sample(run, prime="First", length=30, temperature=0)
    assert greedy == fastrnn.sample(run, prime="First", length=30, temperature=0, seed=9)
    assert set(fastrnn.sample(run, length=200, seed=1, top_k=1)) <= set(TEXT)
    with pytest.raises(ValueError, match="never saw"):
        fastrnn.sample(run, prime="Zebra~")
    cli = run_cli("-m", "fastrnn.sample", str(run), "--prime", "First", "--length", "80",
                  "--seed", "5")
    assert cli.returncode == 0 and cli.stdout == a + "\n"
    bad = run_cli("-m", "fastrnn.sample", str(run), "--prime", "~")
    assert bad.returncode == 2 and bad.stdout == "" and "never saw" in bad.stderr
    missing = run_cli("-m", "fastrnn.sample", str(workdir / "nope"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_cli_end_to_end_and_sigkill_leaves_a_loadable_checkpoint(workdir):
    done = run_cli("-m", "fastrnn", "train", "tiny.yaml", "train.max_iters=200", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "iter 200/200" in done.stderr  # plain progress lines when not a terminal
    # a long run with frequent checkpoints, killed without warning
    p = subprocess.Popen([sys.executable, "-m", "fastrnn.run", "tiny.yaml",
                          "train.max_iters=100000000", "train.checkpoint_every=50",
                          "train.out_dir=long", "train.sample_every=0"], cwd=workdir,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=dict(os.environ,
                                  PYTHONPATH=str(Path(fastrnn.__file__).parent.parent)))
    latest = workdir / "long" / "latest.npz"
    deadline = time.time() + 60
    while time.time() < deadline and not latest.exists():
        time.sleep(0.1)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    t = fastrnn.load(latest)
    assert t.iteration > 0 and t.iteration % 50 == 0


def test_ctrl_c_writes_a_checkpoint_and_exits_130(workdir):
    p = subprocess.Popen([sys.executable, "-m", "fastrnn.run", "tiny.yaml",
                          "train.max_iters=100000000", "train.checkpoint_every=100000",
                          "train.out_dir=intr", "train.sample_every=0"], cwd=workdir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ,
                                  PYTHONPATH=str(Path(fastrnn.__file__).parent.parent)))
    metrics = workdir / "intr" / "metrics.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and
                                          len(metrics.read_text().splitlines()) > 2):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    t = fastrnn.load(workdir / "intr")
    assert t.iteration >= 100 and "interrupted" in err


def test_data_resolution_by_name_cache_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "poems.txt").write_text("roses are red\n")
    assert data.resolve("poems") == tmp_path / "data" / "poems.txt"
    with pytest.raises(ValueError, match="not found"):
        data.resolve("novels")
    # a known corpus: downloaded, checked against its sha256, cached atomically
    blob = b"To be, or not to be\n" * 10
    src = tmp_path / "served.txt"
    src.write_bytes(blob)
    good = data.KnownCorpus("tiny.txt", src.as_uri(), hashlib.sha256(blob).hexdigest(),
                            len(blob))
    monkeypatch.setitem(data.KNOWN, "tiny", good)
    path = data.resolve("tiny")
    assert path == tmp_path / "cache" / "tiny.txt" and path.read_bytes() == blob
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert data.resolve("tiny") == path  # found in the cache the second time
    wrong = data.KnownCorpus("wrong.txt", src.as_uri(), "0" * 64, len(blob))
    monkeypatch.setitem(data.KNOWN, "wrong", wrong)
    with pytest.raises(ValueError, match="sha256.*nothing was saved"):
        data.resolve("wrong")
    assert not (tmp_path / "cache" / "wrong.txt").exists()
    offline = data.KnownCorpus("off.txt", "http://127.0.0.1:9/x.txt", "0" * 64, 1)
    monkeypatch.setitem(data.KNOWN, "off", offline)
    with pytest.raises(ValueError, match="could not be downloaded.*put off.txt"):
        data.resolve("off")


def test_shakespeare_is_found_under_its_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "tinyshakespeare.txt").write_text("First Citizen:\n")
    assert data.resolve("shakespeare") == tmp_path / "tinyshakespeare.txt"


@pytest.mark.skipif(not os.environ.get("FASTRNN_DATA_DIR"), reason="needs FASTRNN_DATA_DIR")
def test_shipped_configs_load():
    root = Path(fastrnn.__file__).parent.parent / "configs"
    for name in ("shakespeare.yaml", "naval.yaml", "naval_paragraphs.yaml"):
        cfg = fastrnn.config.load_yaml(root / name)
        assert data.resolve(cfg.data.path).is_file()
    naval = fastrnn.Trainer(fastrnn.config.load_yaml(root / "naval_paragraphs.yaml"))
    assert len(naval.corpus.starts["train"]) > 30 and len(naval.corpus.starts["val"]) > 2
    sh = fastrnn.config.load_yaml(root / "shakespeare.yaml")
    assert (sh.model.hidden, sh.train.seq_length, sh.optim.lr, sh.optim.clip,
            sh.train.max_iters, sh.train.dtype) == (100, 25, 0.1, 5.0, 1_000_000, "float32")


def test_loss_plot_is_written_when_matplotlib_is_there(workdir, capsys):
    pytest.importorskip("matplotlib")
    assert run_main(["tiny.yaml", "train.max_iters=200"]) == 0
    png = workdir / "runs" / "tiny" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_said_once_and_the_run_goes_on(workdir, capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert run_main(["tiny.yaml", "train.max_iters=200"]) == 0
    err = capsys.readouterr().err
    assert err.count("matplotlib is not installed") == 1
    assert not (workdir / "runs" / "tiny" / "loss.png").exists()


def test_resume_is_bit_exact_for_an_lstm_with_dropout_and_adam(workdir):
    # float64 (tiny.yaml's) on one thread: the kernels test_families's finite
    # differences with dropout compile, and test_evaluate's two-stream validation
    # (dropout draws its masks on one thread whatever the team)
    common = ["tiny.yaml", "model.kind=lstm", "model.layers=2", "model.dropout=0.2",
              "optim.name=adam", "optim.lr=0.01", "optim.clip_norm=1.0",
              "train.batch_size=2", "train.threads=1"]
    assert run_main(common + ["train.max_iters=200", "train.out_dir=a"]) == 0
    assert run_main(common + ["train.max_iters=400", "train.out_dir=a",
                              "train.resume=true"]) == 0
    assert run_main(common + ["train.max_iters=400", "train.out_dir=b"]) == 0
    a, b = fastrnn.load("a"), fastrnn.load("b")
    for k, v in a.params().items():
        assert np.array_equal(v, b.params()[k]), k
    assert np.array_equal(a.net.memory, b.net.memory) and np.array_equal(a.run.rng, b.run.rng)
    assert np.array_equal(a.buf.cs[:, 0], b.buf.cs[:, 0])
    text = fastrnn.sample("a", prime="First", length=50, seed=1)
    assert text.startswith("First") and len(text) == 55
    # validation reads without dropout (through the training's compiled steps)
    T = a.config.train.seq_length
    ids = a.corpus.ids[:2 * (T + 1)]
    want = model_loss_grads("lstm", a.params(), ids.reshape(2, T + 1).T.astype(np.int64))[0]
    assert a.model.loss_of(ids, streams=2) == pytest.approx(want / T, rel=1e-12)


def test_duplicate_keys_in_a_config_file_are_refused(workdir, capsys):
    (workdir / "dup.yaml").write_text("model:\n  hidden: 8\n  layers: 1\n  hidden: 16\n")
    assert run_main(["dup.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastrnn: error: dup.yaml: key 'hidden' is given twice (lines 2 and 4); "
                   "keep one"]


@pytest.mark.parametrize("change,saved,given", [
    ("optim.name=adam", "adagrad", "adam"),
    ("optim.eps=1e-6", "1e-08", "1e-06"),
    ("data.val_fraction=0.3", "0.2", "0.3"),
    ("model.dropout=0.5", "0.0", "0.5"),
    ("train.exact=false", "True", "False"),
    ("train.batch_size=2", "1", "2"),
])
@pytest.mark.usefixtures("ran_100")
def test_resume_refuses_a_change_of_what_the_saved_state_means(workdir, capsys, change,
                                                               saved, given):
    latest = workdir / "runs" / "tiny" / "latest.npz"
    before = latest.read_bytes()
    capsys.readouterr()
    assert run_main(["tiny.yaml", "train.resume=true", change]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    key = change.split("=")[0]
    assert len(err) == 1 and f"with {key}={saved}, the config says {given}" in err[0], err
    assert latest.read_bytes() == before


@pytest.mark.usefixtures("ran_100")
def test_resume_may_change_the_length_the_lr_and_the_logging(workdir, capsys):
    assert run_main(["tiny.yaml", "train.resume=true", "train.max_iters=200", "optim.lr=0.05",
                     "optim.clip=1", "train.log_every=50", "train.seed=7"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert fastrnn.load(workdir / "runs" / "tiny").iteration == 200


@pytest.mark.usefixtures("ran_100")
def test_overwrite_checks_the_folder_before_deleting_anything(workdir, capsys):
    run = workdir / "runs" / "tiny"
    (run / "latest.npz").unlink()
    (run / "latest.npz").mkdir()
    kept = {f: (run / f).read_bytes() for f in ("config.yaml", "metrics.csv", "best.npz")}
    capsys.readouterr()
    assert run_main(["tiny.yaml", "train.overwrite=true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "latest.npz is not a file" in err[0] and "nothing was" in err[0]
    assert {f: (run / f).read_bytes() for f in kept} == kept


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(workdir, capsys, monkeypatch):
    calls = []
    real_fsync = os.fsync

    def fsync(fd):  # config.yaml, latest.npz at 100, then the disk is full
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert run_main(["tiny.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in err and "is as it was" in err
    run = workdir / "runs" / "tiny"
    assert fastrnn.load(run).iteration == 100
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.usefixtures("ran_100")
def test_stale_temporary_files_are_removed_on_the_next_start(workdir):
    run = workdir / "runs" / "tiny"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = run / f".latest.npz.{dead}.tmp"  # a write cut short by a SIGKILL
    live = run / f".latest.npz.{os.getppid()}.tmp"  # a process that still runs
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert run_main(["tiny.yaml", "train.resume=true", "train.max_iters=200"]) == 0
    assert not stale.exists() and live.exists()


def test_a_run_stopped_before_its_first_checkpoint_can_be_resumed(workdir, capsys):
    # killed after best.npz (at iteration 200) was written, but before any latest.npz
    assert run_main(["tiny.yaml", "train.max_iters=200"]) == 0
    run = workdir / "runs" / "tiny"
    best = run / "best.npz"
    best200 = best.read_bytes()
    assert run_main(["tiny.yaml", "train.resume=true"]) == 0  # metrics rows up to 400
    (run / "latest.npz").unlink()
    best.write_bytes(best200)
    capsys.readouterr()
    assert run_main(["tiny.yaml", "train.resume=true"]) == 0
    assert "resuming runs/tiny/best.npz at iteration 200" in capsys.readouterr().out
    rows = [ln.split(",")[0] for ln in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert rows == ["100", "200", "300", "400"]  # the rows after 200 written once
    # killed before any checkpoint: resume starts over and keeps the files
    for f in ("latest.npz", "best.npz"):
        (run / f).unlink()
    samples = (run / "samples.txt").read_text()
    assert run_main(["tiny.yaml", "train.resume=true", "train.max_iters=200"]) == 0
    assert "starting at iteration 0 and keeping its files" in capsys.readouterr().out
    assert (run / "samples.txt").read_text().startswith(samples)
    assert fastrnn.load(run).iteration == 200


def metrics_rows(run):
    with open(run / "metrics.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_minutes_count_the_run_over_resumes_and_leave_compiling_out(workdir, monkeypatch):
    # the sampler's kernels are compiled inside the loop (at the first sample, iteration
    # 200), here made to take half a second more: in elapsed_s, and not in minutes
    real = run_module.compile_call
    sampler = []  # the seconds of each invocation's compiling of the sampler

    def compile_call(call, what, say=None):
        if not what.endswith("sampling"):
            return real(call, what, say)
        time.sleep(0.5)
        sampler.append(real(call, what, say) + 0.5)
        return sampler[-1]

    monkeypatch.setattr(run_module, "compile_call", compile_call)
    run = workdir / "runs" / "tiny"
    assert run_main(["tiny.yaml", "train.max_iters=200"]) == 0
    before = fastrnn.load(run, data=False).extra["minutes"]
    assert run_main(["tiny.yaml", "train.resume=true"]) == 0
    rows = metrics_rows(run)
    assert [r["iteration"] for r in rows] == ["100", "200", "300", "400"]
    minutes = [float(r["minutes"]) for r in rows]
    assert minutes == sorted(minutes) and before >= minutes[1] - 1e-6  # (rounding)
    since = [0.0, 0.0, before, before]  # the minutes the invocation started from
    compiled = [0.0, sampler[0], 0.0, sampler[1]]  # at the rows after the samples
    for r, m, start, c in zip(rows, minutes, since, compiled):
        assert 60 * (m - start) == pytest.approx(float(r["elapsed_s"]) - c, abs=0.02)
    assert fastrnn.load(run, data=False).extra["minutes"] >= minutes[-1] - 1e-6


def test_a_run_from_before_minutes_resumes_with_the_column_empty(workdir):
    run = workdir / "runs" / "tiny"
    assert run_main(["tiny.yaml", "train.max_iters=200"]) == 0
    n = run_module.METRICS.index("minutes")  # the header and rows without minutes
    old = ",".join(run_module.METRICS[:n])
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text(
        "\n".join([old] + [",".join(ln.split(",")[:n]) for ln in lines[1:]]) + "\n")
    for name in ("latest.npz", "best.npz"):
        with np.load(run / name) as f:
            arrays = dict(f)
        extra = json.loads(str(arrays["extra"]))
        del extra["minutes"]
        arrays["extra"] = np.array(json.dumps(extra))
        np.savez(run / name, **arrays)
    assert run_main(["tiny.yaml", "train.resume=true"]) == 0
    assert (run / "metrics.csv").read_text().splitlines()[0] == ",".join(run_module.METRICS)
    rows = metrics_rows(run)
    assert [r["iteration"] for r in rows] == ["100", "200", "300", "400"]
    assert [r["minutes"] for r in rows] == [None, None, "", ""]  # not known: not guessed
    assert rows[-1]["val_nats"] and "minutes" not in fastrnn.load(run, data=False).extra


def test_plain_progress_lines_come_with_metrics_rows(workdir, capsys):
    assert run_main(["tiny.yaml", "train.checkpoint_every=30", "train.sample_every=0"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("iter ")]
    rows = (workdir / "runs" / "tiny" / "metrics.csv").read_text().splitlines()[1:]
    assert [ln.split()[1].split("/")[0] for ln in lines] == [r.split(",")[0] for r in rows]


@pytest.mark.parametrize("args,match", [
    (["--temperature", "nan"], "temperature must be a finite number"),
    (["--temperature", "-1"], "temperature must be a finite number"),
    (["--seed", "-1"], "seed must be a whole number"),
    (["--top-k", "0"], "top_k must be"),
])
@pytest.mark.usefixtures("ran_100")
def test_bad_sampler_options_are_one_line_and_exit_2(workdir, capsys, args, match):
    from fastrnn.cli import sample_main
    capsys.readouterr()
    assert sample_main(["runs/tiny", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and match in err


@pytest.mark.usefixtures("ran_100")
def test_sample_refuses_a_negative_length(workdir):
    with pytest.raises(fastrnn.UserError, match="length must be"):
        fastrnn.sample("runs/tiny", length=-5)
    assert fastrnn.sample("runs/tiny", prime="Fi", length=0) == "Fi"


def test_ctrl_c_while_compiling_is_one_line_and_the_same_command_runs_again(workdir):
    """On a cold Numba cache the first compile takes seconds: Ctrl-C in it exits 130
    with one line, no traceback, and leaves a folder the same command trains in."""
    args = [sys.executable, "-m", "fastrnn.run", "tiny.yaml", "train.out_dir=cold",
            "train.max_iters=100"]
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent),
               NUMBA_CACHE_DIR=str(workdir / "numba-cache"))  # empty: it compiles
    p = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stderr:  # said after a second of compiling
        if line.startswith("compiling kernels"):
            break
    else:
        pytest.fail(f"no compile line; exit {p.wait()}")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == [
        "interrupted before training started; the same command starts it again"], err
    assert not (workdir / "cold" / "latest.npz").exists()
    # the same command (on the warm cache) trains in the folder left behind
    again = run_cli(*args[1:], cwd=workdir, timeout=300)
    assert again.returncode == 0, again.stderr
    assert fastrnn.load(workdir / "cold").iteration == 100


def _metrics_iterations(path):
    with open(path, encoding="utf-8") as f:
        return [int(r["iteration"]) for r in csv.DictReader(f)]


def test_ctrl_c_writes_the_metrics_row_of_its_iteration(workdir):
    """Interrupted and resumed, metrics.csv has every row: the interrupt's included."""
    common = ["tiny.yaml", "train.out_dir=intr", "train.sample_every=0",
              "train.checkpoint_every=100000", "train.eval_every=100000"]
    p = subprocess.Popen([sys.executable, "-m", "fastrnn.run", *common,
                          "train.max_iters=100000000"], cwd=workdir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ,
                                  PYTHONPATH=str(Path(fastrnn.__file__).parent.parent)))
    metrics = workdir / "intr" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and
                                          len(metrics.read_text().splitlines()) > 3):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    stopped = fastrnn.load(workdir / "intr").iteration
    its = _metrics_iterations(metrics)
    assert its == list(range(100, stopped + 1, 100)), (stopped, its)
    done = run_cli("-m", "fastrnn.run", *common, f"train.max_iters={stopped + 300}",
                   "train.resume=true", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert _metrics_iterations(metrics) == list(range(100, stopped + 301, 100))


def test_a_folder_a_run_left_before_training_is_not_a_run(workdir, capsys):
    """Only config.yaml and metrics.csv's header (a run stopped while compiling): the
    same command trains there; train.resume=true on a folder with no run says it
    starts a new one."""
    folder = workdir / "early"
    folder.mkdir()
    (folder / "config.yaml").write_text("data: {}\n")
    (folder / "metrics.csv").write_text(",".join(run_module.METRICS) + "\n")
    assert run_main(["tiny.yaml", "train.out_dir=early", "train.max_iters=100"]) == 0
    assert _metrics_iterations(folder / "metrics.csv") == [100]
    capsys.readouterr()
    assert run_main(["tiny.yaml", "train.out_dir=typo", "train.resume=true",
                     "train.max_iters=100"]) == 0
    err = capsys.readouterr().err
    assert "train.resume=true, but typo holds no run to resume; starting a new one" in err
    assert fastrnn.load(workdir / "typo").iteration == 100
    # a header and a row is a run
    (folder / "latest.npz").unlink()
    (folder / "best.npz").unlink()
    (folder / "samples.txt").unlink(missing_ok=True)
    assert run_main(["tiny.yaml", "train.out_dir=early", "train.max_iters=100"]) == 2
    assert "already holds a run (config.yaml, metrics.csv" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """A terminal's stream: tqdm draws its bar in it."""

    def isatty(self):
        return True


def test_lines_printed_while_the_bar_is_shown_start_a_line_of_their_own(workdir):
    term = _Terminal()
    run = run_module.Run(fastrnn.config.load_yaml("tiny.yaml", ["train.out_dir=tty"]),
                         out=term, err=term)
    run.prepare()
    assert run.train() == 0
    text = term.getvalue()
    assert "it/s" in text  # the bar was drawn
    for said in ("a pass over the training text", "---- sample at iteration 200"):
        at = text.index(said)
        assert text[at - 1] in "\r\n", repr(text[max(0, at - 80):at + 20])
