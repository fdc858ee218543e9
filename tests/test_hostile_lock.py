"""A run folder in use by one process is refused to a second one (run, resume,
overwrite, a sweep trial), in one line naming the holder's pid; the lock dies with its
process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastrnn
from fastrnn.config import load_yaml
from fastrnn.run import Run
from fastrnn.sweeps import run_trial
from hostile import check_refused, make_workdir, snapshot

CONFIG = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
          "train:\n  seq_length: 10\n  max_iters: 100000000\n  dtype: float64\n"
          "  log_every: 100\n  eval_every: 100000\n  sample_every: 0\n"
          "  checkpoint_every: 100000\n  out_dir: busy\n")

# the second command on a folder a first one holds: its overrides
CASES = [
    [],
    ["train.resume=true"],
    ["train.overwrite=true"],
    ["train.resume=true", "optim.lr=0.05"],
    ["train.resume=true", "model.hidden=16"],
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, CONFIG, "tiny.yaml")
    return tmp_path


def _env():
    return dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent))


@pytest.fixture
def holder(workdir):
    """Another process holding the lock on busy/ (through the module's function)."""
    (workdir / "busy").mkdir()
    p = subprocess.Popen([sys.executable, "-c", "import sys; from fastrnn.lock import lock; "
                          "lock('busy'); print('locked', flush=True); sys.stdin.read()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env=_env())
    assert p.stdout.readline().strip() == "locked"
    yield p
    p.kill()
    p.wait()


@pytest.mark.parametrize("overrides", CASES)
def test_a_second_command_on_a_locked_folder_is_refused(workdir, holder, overrides):
    line = check_refused("run", ["tiny.yaml", *overrides], workdir / "busy")
    assert f"pid {holder.pid}" in line and "busy" in line


def test_a_sweep_trial_on_a_locked_folder_fails_naming_the_holder(workdir, holder):
    before = snapshot(workdir / "busy")
    cfg = load_yaml("tiny.yaml").to_dict()
    row = run_trial("t0", cfg)
    assert row["status"] == "failed" and f"pid {holder.pid}" in row["error"]
    after = snapshot(workdir / "busy")  # the trial's log.txt records why, nothing else
    assert "pid" in (workdir / "busy" / "log.txt").read_text()
    assert {k: v for k, v in after.items() if k != "log.txt"} == before


def test_the_lock_dies_with_its_process(workdir, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run = Run(load_yaml("tiny.yaml"))
    run.prepare()  # the folder is free again
    run.release()
    assert (workdir / "busy" / "config.yaml").is_file()


def test_a_refused_command_leaves_no_lock_file_behind(workdir):
    (workdir / "busy").mkdir()
    check_refused("run", ["tiny.yaml", "data.path=nowhere.txt"], workdir)
    assert not (workdir / "busy" / ".lock").exists()


def test_a_training_run_holds_its_folder_against_a_resume(workdir):
    """Two real runs: the second, a resume on the folder of the first while it trains
    (or compiles), is refused and changes nothing."""
    first = subprocess.Popen([sys.executable, "-m", "fastrnn.run", "tiny.yaml"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "busy" / "config.yaml").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        for overrides in (["train.resume=true"], ["train.overwrite=true"]):
            line = check_refused("run", ["tiny.yaml", *overrides], workdir / "busy",
                                 match=f"pid {first.pid}")
            assert "in use" in line
    finally:
        first.kill()
        first.wait()
