"""scripts/reproduce_report.py and scripts/time_to_loss.py end to end on a tiny model:
their tables and plots, and a rerun that resumes the runs rather than restarting them."""
import builtins
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT
from fastrnn import checkpoint
from fastrnn.run import main as run_main

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import _runs  # noqa: E402
import reproduce_report  # noqa: E402
import time_to_loss  # noqa: E402

try:
    import matplotlib  # noqa: F401
    PLOT = True
except ImportError:
    PLOT = False
DONE = 0 if PLOT else 2  # the scripts' exit code: 2 when there is no plot
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    """The scripts look at a run's metrics.csv about every second while it trains
    (_runs.invoke), so an invocation took at least the next whole second after its run
    ended: here they look every 0.05 s."""
    monkeypatch.setattr(_runs, "time", SimpleNamespace(
        perf_counter=time.perf_counter, sleep=lambda seconds: time.sleep(min(seconds, 0.05))))


@pytest.fixture
def tiny(tmp_path):
    """Overrides for every run: the seed config's kernels (rnn float32, one stream, one
    layer) on a small text."""
    text = tmp_path / "text.txt"
    text.write_text(SMALL_TEXT * 4, encoding="utf-8")
    return [f"data.path={text}", "model.hidden=16", "model.layers=1", "train.dtype=float32",
            "train.seq_length=10", "train.eval_every=100", "train.sample_every=0",
            "train.checkpoint_every=100"]


def invocations(folder):
    return json.loads((folder / _runs.LEDGER).read_text())


def iterations(folder):
    return [m["iteration"] for m in _runs.read_metrics(folder / "metrics.csv")]


def test_reproduce_report_quick_writes_its_table_and_plot_and_resumes(tmp_path, tiny, capsys):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    args = ["--quick", "--runs", str(runs), "--out", str(out), *tiny]
    assert reproduce_report.main(["--iters", "200", *args]) == DONE
    assert reproduce_report.main(["--iters", "400", *args]) == DONE  # on from 200
    for row in "abc":
        assert iterations(runs / row) == [100, 200, 300, 400]  # each row written once
        assert [(e["from"], e["to"], e["exit"]) for e in invocations(runs / row)] == [
            (0, 200, 0), (200, 400, 0)]
        assert f"resuming {runs / row / 'latest.npz'} at iteration 200" in \
            (runs / row / "log.txt").read_text()
    capsys.readouterr()
    assert reproduce_report.main(["--iters", "400", *args]) == DONE
    assert capsys.readouterr().err.count("finished (400 iterations), skipped") == 3
    assert len(invocations(runs / "a")) == 2
    # row a through the runner's resume has the bits of a straight run
    straight = tmp_path / "straight"
    assert run_main([str(ROOT / "configs/shakespeare.yaml"), *reproduce_report.plan(
        reproduce_report.ROWS[0], 400, tiny, runs).overrides,
        f"train.out_dir={straight}"]) == 0
    a, b = checkpoint.read(runs / "a/latest.npz"), checkpoint.read(straight / "latest.npz")
    assert np.array_equal(a["theta"], b["theta"]) and a["smooth_loss"] == b["smooth_loss"]
    text = (out / "report.md").read_text()
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert [ln.split(" | ")[0] for ln in table[2:]] == ["| a", "| b", "| c"]
    assert all(ln.split(" | ")[2] == "400" for ln in table[2:])
    smooth = float(a["smooth_loss"])
    assert f"{smooth:.2f} at 400 (44.43 at 997,100)" in table[2]
    for point in ("44.15 at 421,000", "42.67 at 458,900", "42.90 at 468,200"):
        assert point in table[4]
    assert fastrnn.sample(runs / "a", length=200, seed=0) in text
    assert _runs.machine() in text
    if PLOT:
        assert (out / "report_smooth_loss.png").read_bytes()[:8] == PNG
    # a row whose folder holds another model fails with the runner's line, and the
    # script goes on to the next
    capsys.readouterr()
    assert reproduce_report.main(["--iters", "500", "--rows", "a,b", *args,
                                  "model.hidden=17"]) == 1
    err = capsys.readouterr().err
    assert err.count("failed: fastrnn: error:") == 2 and "model.hidden=16" in err
    assert len(invocations(runs / "a")) == 3 and iterations(runs / "a")[-1] == 400


def test_time_to_loss_trains_for_the_minutes_and_resumes_for_the_rest(tmp_path, tiny, capsys):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    config = ROOT / "configs" / "shakespeare.yaml"
    common = [str(config), *tiny, "train.max_iters=100000000", "--runs", str(runs),
              "--out", str(out)]
    assert time_to_loss.main([*common, "train.max_minutes=0.01", "--seeds", "0,1"]) == DONE
    seeds = [runs / "shakespeare" / f"seed{s}" for s in (0, 1)]
    for folder in seeds:
        rows = _runs.read_metrics(folder / "metrics.csv")
        assert rows[-1]["minutes"] >= 0.01 - 1e-5 and rows[-1]["val_nats"] is not None
    assert fastrnn.load(seeds[1], data=False).config.train.seed == 1
    first = invocations(seeds[0])
    # more minutes: seed 0 goes on from its checkpoint for the rest of them
    assert time_to_loss.main([*common, "train.max_minutes=0.02", "--seeds", "0"]) == DONE
    again = invocations(seeds[0])
    assert again[:1] == first and again[1]["from"] == first[0]["to"] > 0
    assert f"resuming {seeds[0] / 'latest.npz'}" in (seeds[0] / "log.txt").read_text()
    minutes = [m["minutes"] for m in _runs.read_metrics(seeds[0] / "metrics.csv")]
    assert minutes == sorted(minutes) and minutes[-1] >= 0.02 - 1e-5
    capsys.readouterr()
    assert time_to_loss.main([*common, "train.max_minutes=0.02", "--seeds", "0"]) == DONE
    assert "finished, skipped" in capsys.readouterr().err
    assert invocations(seeds[0]) == again
    text = (out / "time_to_loss.md").read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| shakespeare | 0 |"))
    best = min(m["val_nats"] for m in _runs.read_metrics(seeds[0] / "metrics.csv")
               if m["val_nats"] is not None)
    assert row.split(" | ")[2] == f"{best:.4f}" and "train.seed=0" in row
    assert "1.4697" in text and "1.88" in text
    # --plot-only without --seeds: every seed the config's folder holds
    assert time_to_loss.main(["--plot-only", str(config), "--runs", str(runs),
                              "--out", str(out)]) == DONE
    text = (out / "time_to_loss.md").read_text()
    assert "| shakespeare | 0 |" in text and "| shakespeare | 1 |" in text
    if PLOT:
        assert (out / "time_to_loss.png").read_bytes()[:8] == PNG


def test_without_matplotlib_the_tables_are_written_and_one_line_says_so(tmp_path, capsys,
                                                                        monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "docs"
    assert reproduce_report.main(["--plot-only", "--runs", str(tmp_path / "runs"),
                                  "--out", str(out)]) == 2
    assert time_to_loss.main(["--plot-only", str(ROOT / "configs/shakespeare.yaml"),
                              "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    said = [ln for ln in err if "matplotlib is not installed" in ln]
    assert len(said) == 2 and all("pip install 'fastrnn[plot]'" in ln for ln in said)
    assert "| a | " in (out / "report.md").read_text()  # rows not run yet, said so
    assert "| shakespeare | 0 | not run" in (out / "time_to_loss.md").read_text()
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("script,args,match", [
    (reproduce_report, ["--rows", "a,x"], "the rows are a, b, c"),
    (reproduce_report, ["--iters", "0"], "--iters must be at least 1"),
    (reproduce_report, ["model.hiden=3"], "did you mean 'model.hidden'"),
    (time_to_loss, ["nowhere.yaml"], "config file not found: nowhere.yaml"),
    (time_to_loss, ["configs/shakespeare.yaml", "--seeds", "0,x"], "--seeds 0,x"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, script, args, match):
    monkeypatch.chdir(ROOT)
    runs = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs")]
    assert script.main([*args, *runs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "docs").exists()
