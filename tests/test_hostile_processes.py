"""No process outlives its sweep (trial workers die with the main process, whatever
signal ends it); sample --output writes through a device or a pipe (one that no
process reads is refused, not waited on: test_hostile_sizes) or refuses a link, never
replacing it; a recursive glob never follows a folder link into a loop."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint
from fastrnn.config import Config
from fastrnn.trainer import Trainer
from hostile import check_refused, invoke, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 100000000\n  dtype: float64\n"
        "  eval_every: 100000\n  sample_every: 0\n  log_every: 1000\n"
        "  checkpoint_every: 100000\n")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, BASE)
    return tmp_path


def _gone(pid):
    """Whether pid has ended (a zombie waiting for init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_trial_workers_die_with_the_sweep(workdir, sig):
    (workdir / "sweep.yaml").write_text("base: base.yaml\nout_dir: out\n"
                                        "grid:\n  optim.lr: [0.1]\n")
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent))
    sweep = subprocess.Popen([sys.executable, "-m", "fastrnn.sweep", "sweep.yaml",
                              "--workers", "1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    lock = workdir / "out" / "t0" / ".lock"
    worker = None
    try:
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().strip()):
            assert sweep.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        worker = int(lock.read_text())
        assert worker != sweep.pid and not _gone(worker)
        sweep.send_signal(sig)
        sweep.wait()
        deadline = time.monotonic() + 60  # a bound on a hang, not a timing
        while not _gone(worker):
            assert time.monotonic() < deadline, "the trial worker outlived its sweep"
            time.sleep(0.2)
    finally:
        sweep.kill()
        sweep.wait()
        if worker is not None and not _gone(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.fixture
def saved(workdir):
    trainer = Trainer(Config.from_dict(tiny_config()), text=SMALL_TEXT)
    checkpoint.save(trainer, workdir / "good.npz")
    (workdir / "outside.txt").write_text("not yours\n")
    return workdir / "good.npz"


def test_sample_output_to_a_device_link_writes_through(workdir, saved):
    (workdir / "null").symlink_to("/dev/null")
    code, out, err = invoke("sample", ["good.npz", "--length", "20", "--output", "null"])
    assert code == 0, err
    assert (workdir / "null").is_symlink() and os.readlink(workdir / "null") == "/dev/null"


def test_sample_output_to_a_pipe_with_a_reader_writes_through(workdir, saved):
    import stat
    os.mkfifo(workdir / "pipe")
    reader = os.open(workdir / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # (waits for none)
    try:
        code, _, err = invoke("sample", ["good.npz", "--length", "20", "--seed", "3",
                                         "--output", "pipe"])
        got = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert code == 0, err
    assert stat.S_ISFIFO((workdir / "pipe").lstat().st_mode)
    _, out, _ = invoke("sample", ["good.npz", "--length", "20", "--seed", "3"])
    assert got == out and len(got) == 21


@pytest.mark.parametrize("target", ["outside.txt", "sub", "nowhere"])
def test_sample_output_to_a_link_or_folder_is_refused(workdir, saved, target):
    (workdir / "sub").mkdir()
    (workdir / "out.txt").symlink_to(target)
    check_refused("sample", ["good.npz", "--length", "20", "--output", "out.txt"], workdir,
                  match="--output")


def test_sample_output_that_is_a_folder_is_refused(workdir, saved):
    (workdir / "sub").mkdir()
    check_refused("sample", ["good.npz", "--length", "20", "--output", "sub"], workdir)


@pytest.mark.parametrize("links", [
    {"texts/loop": "."},
    {"texts/a": ".", "texts/b": "."},
    {"texts/deep/up": ".."},
    {"texts/root": "/"},
])
def test_a_recursive_glob_never_follows_a_link_into_a_loop(workdir, links):
    (workdir / "texts" / "deep").mkdir(parents=True)
    (workdir / "texts" / "a.txt").write_text(SMALL_TEXT)
    for link, target in links.items():
        (workdir / link).symlink_to(target, target_is_directory=True)
    check_refused("run", ["base.yaml", "data.path=texts/**/*.txt",
                          "train.out_dir=run"], workdir, match="link")


def test_a_recursive_glob_without_loops_still_reads_linked_folders(workdir):
    from fastrnn import data
    (workdir / "texts" / "deep").mkdir(parents=True)
    (workdir / "other").mkdir()
    (workdir / "other" / "b.txt").write_text("b\n")
    (workdir / "texts" / "deep" / "a.txt").write_text("a\n")
    (workdir / "texts" / "more").symlink_to("../other", target_is_directory=True)
    assert [p.name for p in data.files("texts/**/*.txt")] == ["a.txt", "b.txt"]
