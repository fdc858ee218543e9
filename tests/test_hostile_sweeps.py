"""Sweeps: damaged results files are refused in one line; a trial that ends in NaN
(exit 3) is a failed trial; Optuna's storage stays at <out_dir>/optuna.db whatever
out_dir holds; a Dask address with an empty or over-long host label is one line; axis
values that matplotlib would read as math are plotted as text; a value UTF-8 cannot
hold is recorded escaped in results.csv."""
import json
import sqlite3

import pytest

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

