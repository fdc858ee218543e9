"""Sweeps: damaged results files are refused in one line; a trial that ends in NaN
(exit 3) is a failed trial; Optuna's storage stays at <out_dir>/optuna.db whatever
out_dir holds; a Dask address with an empty or over-long host label is one line; a Dask
sweep whose workers have all gone stops in one line once its worker_grace has passed,
keeping the results of finished trials; axis values that matplotlib would read as math
are plotted as text; a value UTF-8 cannot hold is recorded escaped in results.csv."""
import concurrent.futures as cf
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastrnn
from conftest import SMALL_TEXT
from fastrnn import run as run_module
from fastrnn.sweeps import run_trial
from fastrnn.sweeps.spec import load_sweep
from fastrnn.sweeps.strategies import run_sweep
from hostile import check_refused, invoke

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 20\n  dtype: float64\n"
        "  eval_every: 20\n  sample_every: 0\n  log_every: 10\n  checkpoint_every: 20\n")
SWEEP = "base: base.yaml\nout_dir: out\ngrid:\n  optim.lr: [0.1, 0.05]\n"
GOOD = {"trial": "t0", "status": "ok", "metric": 2.0, "val_loss": 2.0,
        "best_val_loss": 2.0, "train_loss": 2.1, "iterations": 20, "seconds": 1.0,
        "it_per_s": 20.0, "error": "", "params": {"optim.lr": 0.1}}


def _row(**change):
    row = dict(GOOD, **change)
    return json.dumps({k: v for k, v in row.items() if v is not ...}) + "\n"


# results.jsonl as a damaged run leaves it (or None: a folder), results.csv a folder
DAMAGED = [
    ("jsonl", _row(params=...)),
    ("jsonl", _row(metric="2.0")),
    ("jsonl", _row(val_loss=[1])),
    ("jsonl", _row(status="done")),
    ("jsonl", _row(params=[0.1])),
    ("jsonl", '["t0", "ok"]\n'),
    ("jsonl", _row(rung="0")),
    ("jsonl", None),
    ("csv", None),
    ("jsonl", "link"),
]
ADDRESSES = ["tcp://:8786", "tcp://" + "a" * 300 + ":8786", "tcp://a..b:8786",
             "tcp://" + "b" * 64 + ".example:8786"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    (tmp_path / "outside.txt").write_text("")
    return tmp_path


def _claim(workdir):
    """The sweep's folder as a first run leaves it (its sweep.yaml marker)."""
    from fastrnn.sweeps.cli import claim_folder
    claim_folder(load_sweep(workdir / "sweep.yaml"))


@pytest.mark.parametrize("which,text", DAMAGED)
def test_a_damaged_results_file_is_one_line(workdir, which, text):
    _claim(workdir)
    path = workdir / "out" / f"results.{which}"
    if text is None:
        path.mkdir()
    elif text == "link":
        path.symlink_to(workdir / "outside.txt")
    else:
        path.write_text(text)
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match="results")


def test_a_trial_that_diverges_is_a_failed_trial(workdir, monkeypatch):
    """A run that ends in exit 3 (the loss became NaN) is failed, and the sweep says so
    in its exit code."""
    from fastrnn.sweeps import cli
    monkeypatch.setattr(run_module.Run, "train", lambda self: 3)
    monkeypatch.setattr(cli, "run_sweep", lambda sweep, executor, **kw: run_sweep(
        sweep, _inline, trial_fn=run_trial))
    code, out, err = invoke("sweep", ["sweep.yaml", "--workers", "1"])
    assert code == 1, (out, err)
    rows = [json.loads(ln) for ln in (workdir / "out" / "results.jsonl").open()]
    assert [r["status"] for r in rows] == ["failed", "failed"]


class _Inline:
    def submit(self, fn, *args):
        import concurrent.futures as cf
        f = cf.Future()
        f.set_result(fn(*args))
        return f


def _inline():
    import contextlib
    return contextlib.nullcontext(_Inline())


@pytest.mark.parametrize("out_dir", ["a?mode=ro", "%2e%2e", "b#c", "d%20e"])
def test_optuna_storage_stays_in_the_sweep_folder(workdir, out_dir):
    pytest.importorskip("optuna")
    from fastrnn.sweeps import strategies
    (workdir / "sweep.yaml").write_text(
        "base: base.yaml\nsearch: optuna\nn_trials: 1\n"
        "random:\n  optim.lr: {loguniform: [0.01, 0.1]}\n")
    sweep = load_sweep(workdir / "sweep.yaml", out_dir=workdir / out_dir / "s")
    sweep.out_dir.mkdir(parents=True)
    failing = lambda name, cfg: dict(trial=name, status="failed", metric=None,  # noqa
                                     val_loss=None, best_val_loss=None, train_loss=None,
                                     iterations=0, seconds=0.0, it_per_s=0.0, error="x")
    strategies.run_sweep(sweep, _inline, trial_fn=failing)
    db = sweep.out_dir / "optuna.db"
    assert db.is_file()
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from trials").fetchone()[0] >= 1
    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        ["text.txt", "base.yaml", "sweep.yaml", "outside.txt", out_dir])


def test_a_damaged_optuna_db_is_one_line(workdir):
    pytest.importorskip("optuna")
    (workdir / "sweep.yaml").write_text(
        "base: base.yaml\nsearch: optuna\nn_trials: 1\nout_dir: out\n"
        "random:\n  optim.lr: {loguniform: [0.01, 0.1]}\n")
    _claim(workdir)
    (workdir / "out" / "optuna.db").write_bytes(b"not a database" * 100)
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match="optuna.db")


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_dask_address_with_a_bad_host_is_one_line(workdir, address):
    pytest.importorskip("distributed")
    check_refused("sweep", ["sweep.yaml", "--executor", "dask", "--address", address],
                  workdir)


def _ok(name, cfg):
    """A trial that succeeds at once (what the report does with its row is tested)."""
    return dict(trial=name, status="ok", metric=2.0, val_loss=2.0, best_val_loss=2.0,
                train_loss=2.0, iterations=1, seconds=0.0, it_per_s=1.0, error="")


def test_axis_values_read_as_math_are_plotted_as_text(workdir, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastrnn.sweeps import cli
    (workdir / "sweep.yaml").write_text("base: base.yaml\nout_dir: out\ngrid:\n"
                                        "  train.init_from: ['$x^$', '$\\frac{$']\n")
    monkeypatch.setattr(cli, "run_sweep", lambda sweep, executor, **kw: run_sweep(
        sweep, _inline, trial_fn=_ok))
    code, out, err = invoke("sweep", ["sweep.yaml", "--workers", "1"])
    assert code == 0 and "Traceback" not in err, err
    assert (workdir / "out" / "sweep.png").is_file()


@pytest.mark.parametrize("value", ['"\\udcff"', '"\\ud800"', '"a\\0b"'])
def test_a_value_utf8_cannot_hold_is_a_failed_trial_recorded_escaped(workdir, monkeypatch,
                                                                      value):
    from fastrnn.sweeps import cli
    (workdir / "sweep.yaml").write_text(f"base: base.yaml\nout_dir: out\ngrid:\n"
                                        f"  data.path: [{value}]\n")
    monkeypatch.setattr(cli, "run_sweep", lambda sweep, executor, **kw: run_sweep(
        sweep, _inline, trial_fn=run_trial))
    code, out, err = invoke("sweep", ["sweep.yaml", "--workers", "1"], terminal=True)
    assert code == 1 and "Traceback" not in err, err
    row = json.loads((workdir / "out" / "results.jsonl").read_text())
    assert row["status"] == "failed" and "data.path" in row["error"]
    assert len((workdir / "out" / "results.csv").read_text().splitlines()) == 2


class _Waiting:
    """A Dask client whose trials wait for a worker for ever."""

    def get_executor(self):
        return self

    def submit(self, fn, *args):
        return cf.Future()


def test_a_dask_pool_fails_its_trials_once_no_worker_came_for_the_grace():
    """The watch asks how many workers there are (here 10 s apart on a patched clock):
    two, then none; with a grace of 25 s the pending trial fails at the fifth question,
    the first 25 s after the last worker was seen, and so does any trial after."""
    from fastrnn.sweeps.executors import WatchedPool, WorkersGone
    answers, now = [1, 1], [0.0]

    def count():
        now[0] += 10
        answers.append(0)
        return answers[len(answers) - 3]

    pool = WatchedPool(_Waiting(), "tcp://10.0.0.5:8786", 25, count=count,
                       clock=lambda: now[0], every=0.001)
    try:
        trial = pool.submit(print, "t0")
        with pytest.raises(WorkersGone, match="tcp://10.0.0.5:8786 for 25 s"):
            trial.result(timeout=60)  # (the timeout only bounds a hang)
        assert now[0] == 50
        with pytest.raises(WorkersGone):
            pool.submit(print, "t1").result(timeout=0)
    finally:
        pool.close()


class _Running:
    """A Dask client whose trials run at once."""

    def get_executor(self):
        return cf.ThreadPoolExecutor(max_workers=1)


def test_a_dask_pool_with_a_worker_runs_its_trials():
    from fastrnn.sweeps.executors import WatchedPool
    pool = WatchedPool(_Running(), "tcp://10.0.0.5:8786", 0.01, count=lambda: 1,
                       every=0.001)
    try:
        assert pool.submit(sum, [1, 2]).result(timeout=60) == 3
    finally:
        pool.close()


@pytest.mark.parametrize("grace", ["0", "-1", ".inf", ".nan", "abc", "true", "1.0e+16"])
def test_a_worker_grace_that_is_no_time_is_one_line(workdir, grace):
    (workdir / "sweep.yaml").write_text(SWEEP + f"worker_grace: {grace}\n")
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match="worker_grace")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(proc):
    """End a process this test started, and its own children (its session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions")
def test_a_dask_sweep_whose_only_worker_is_killed_stops_in_one_line(workdir):
    """A scheduler and one worker (real processes, --no-nanny so that nothing restarts
    it), a sweep of two trials: t0 ends, t1 trains on; the worker is killed in t1. The
    sweep stops with exit 2 and one line naming the scheduler once worker_grace (2 s)
    has passed with no worker, and t0's result is kept."""
    from fastrnn.sweeps.executors import probe_scheduler
    from fastrnn.errors import UserError
    pytest.importorskip("distributed")
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent),
               NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    (workdir / "sweep.yaml").write_text("base: base.yaml\nout_dir: out\nworker_grace: 2\n"
                                        "grid:\n  train.max_iters: [20, 100000000]\n")
    address = f"tcp://127.0.0.1:{_free_port()}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                 cwd=workdir, start_new_session=True)
    started = []
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
             "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"], **quiet))
        deadline = time.monotonic() + 120  # (bounds on hangs, not timings)
        while True:
            try:
                probe_scheduler(address, 1)
                break
            except UserError:
                assert time.monotonic() < deadline and started[0].poll() is None
                time.sleep(0.2)
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
             "1", "--no-nanny", "--no-dashboard"], **quiet)
        started.append(worker)
        with open(workdir / "sweep.err", "w") as err:
            sweep = subprocess.Popen(
                [sys.executable, "-m", "fastrnn.sweep", "sweep.yaml", "--executor", "dask",
                 "--address", address], stdout=subprocess.DEVNULL, stderr=err, env=env,
                cwd=workdir, start_new_session=True)
        started.append(sweep)
        results, lock = workdir / "out" / "results.jsonl", workdir / "out" / "t1" / ".lock"
        deadline = time.monotonic() + 300
        while not (results.is_file() and '"t0"' in results.read_text()
                   and lock.is_file() and lock.read_text().strip()):
            assert time.monotonic() < deadline and sweep.poll() is None, \
                (workdir / "sweep.err").read_text()
            time.sleep(0.1)
        _gone(worker)
        try:
            code = sweep.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the sweep still waits for a worker")
    finally:
        for proc in reversed(started):
            _gone(proc)
    err = (workdir / "sweep.err").read_text()
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert code == 2 and "Traceback" not in err, err
    assert len(errors) == 1 and errors[0].startswith("fastrnn: error: no Dask worker"), err
    assert address in errors[0] and err.splitlines()[-1] == errors[0]
    rows = [json.loads(ln) for ln in results.read_text().splitlines()]
    assert [(r["trial"], r["status"], r["iterations"]) for r in rows] == [("t0", "ok", 20)]
