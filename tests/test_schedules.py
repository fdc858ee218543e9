"""Learning-rate schedules, weight decay, early stopping and the progress lines: each
against its formula, and resume across a plateau decay bit for bit."""
import csv
import math
import re

import numpy as np
import pytest

import fastrnn
import teams
from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint
from fastrnn.kernels import optim
from fastrnn.run import main as run_main

TEXT = SMALL_TEXT * 4


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.2\n"
        "model:\n  hidden: 16\n"
        "optim:\n  lr: 0.5\n"  # high enough for validation to stall within a few hundred
        "train:\n  seq_length: 10\n  max_iters: 400\n  dtype: float64\n"
        "  log_every: 50\n  eval_every: 50\n  sample_every: 0\n"
        "  checkpoint_every: 50\n")
    return tmp_path


def trainer(dtype="float64", **optim_keys):
    max_iters = optim_keys.pop("max_iters", 1000)
    return fastrnn.Trainer(tiny_config(optim=optim_keys, data={"val_fraction": 0.1},
                                       train={"dtype": dtype, "max_iters": max_iters}),
                           text=SMALL_TEXT)


def nanogpt_lr(n, lr, min_lr, warmup, horizon):
    """nanoGPT's get_lr (train.py), iteration n counted from 0."""
    if n < warmup:
        return lr * (n + 1) / (warmup + 1)
    if n > horizon:
        return min_lr
    ratio = (n - warmup) / (horizon - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_schedule_gives_the_lr_of_its_formula(dtype):
    f = np.dtype(dtype).type
    iters = [0, 1, 49, 99, 100, 101, 350, 999, 1000, 5000]
    t = trainer(dtype, schedule="constant", lr=0.03)
    assert [t.learning_rate(n) for n in iters] == [float(f(0.03))] * len(iters)
    t = trainer(dtype, lr=0.1, lr_decay=0.5, decay_every=100)  # step, the default
    assert [t.learning_rate(n) for n in iters] == [
        float(f(0.1) * f(0.5) ** (n // 100)) for n in iters]
    for decay_iters, horizon in ((None, 1000), (600, 600)):
        t = trainer(dtype, name="adam", schedule="cosine", lr=1e-3, min_lr=1e-4,
                    warmup=100, decay_iters=decay_iters)
        want = [nanogpt_lr(n, float(f(1e-3)), float(f(1e-4)), 100, horizon) for n in iters]
        got = [t.learning_rate(n) for n in iters]
        np.testing.assert_allclose(got, np.array(want, dtype), rtol=1e-12 if f is np.float64
                                   else 1e-7)
        assert got[iters.index(1000)] == float(f(1e-4))
    t = trainer(dtype, schedule="plateau", lr=0.1, min_lr=0.03)
    assert t.learning_rate(500) == float(f(0.1))
    assert t.lower_lr(0.5) == 0.5 and t.learning_rate(500) == float(f(0.1) * f(0.5))
    assert t.lower_lr(0.5) == pytest.approx(0.3)  # not below min_lr: 0.03 / 0.1
    assert t.learning_rate(7) == float(f(0.1) * f(t.lr_scale))


def test_weight_decay_in_the_kernel_matches_adamw_on_two_threads():
    rs = np.random.RandomState(5)
    N, biases = 5000, (1000, 1500, 3000)  # biases [1000, 1500) and [3000, N)
    g, theta = rs.randn(N), rs.randn(N)
    hyper = optim.settings(lr=0.01, eps=1e-8, beta1=0.9, beta2=0.999, optimizer="adam",
                           weight_decay=0.1)
    state = np.zeros((2, N))
    th = theta.copy()
    weights = np.r_[0:1000, 1500:3000]
    th[weights] -= 0.01 * 0.1 * th[weights]  # decoupled: before the Adam step
    m, v = 0.1 * g, 0.001 * g * g
    th -= 0.01 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    teams.run(teams.optimizer_step, 2, teams_net(theta, g.copy(), state), hyper, 0,
              np.zeros(2), biases)
    np.testing.assert_allclose(theta, th, rtol=1e-12)


def teams_net(theta, grad, memory):
    from fastrnn.kernels.records import Net
    return Net(None, None, theta, grad, memory)


def test_weight_decay_shrinks_the_weight_matrices_and_spares_the_biases():
    def one_step(wd):
        t = fastrnn.Trainer(tiny_config(model={"kind": "lstm"},
                                        optim={"name": "sgd", "lr": 0.1, "clip": 0,
                                               "weight_decay": wd}), text=SMALL_TEXT)
        before = t.params()
        t.train_iters(1)
        return before, t.params()

    before, plain = one_step(0.0)
    _, decayed = one_step(0.3)
    assert set(before) == {"Wxh.0", "Whh.0", "bxh.0", "bhh.0", "Why", "by"}
    for name, theta in before.items():
        want = -0.1 * 0.3 * theta if name in ("Wxh.0", "Whh.0", "Why") else 0 * theta
        np.testing.assert_allclose(decayed[name] - plain[name], want, rtol=0, atol=1e-15,
                                   err_msg=name)
        assert name.startswith("b") or np.any(want != 0)


def test_resume_across_a_plateau_decay_is_bit_exact(workdir, capsys):
    common = ["tiny.yaml", "optim.schedule=plateau", "optim.plateau_patience=1",
              "train.eval_every=50"]  # (the headline validation stalls later than 100)
    assert run_main(common + ["train.max_iters=240", "train.out_dir=a"]) == 0
    half = checkpoint.read("a/latest.npz")
    assert half["lr_scale"] < 1  # lowered before the stop (at an iteration off the
    # evaluation schedule, whose evaluation must not count)
    assert run_main(common + ["train.max_iters=600", "train.out_dir=a",
                              "train.resume=true"]) == 0
    assert run_main(common + ["train.max_iters=600", "train.out_dir=b"]) == 0
    out = capsys.readouterr().out
    a, b = fastrnn.load("a"), fastrnn.load("b")
    assert a.iteration == b.iteration == 600 and a.lr_scale == b.lr_scale < half["lr_scale"]
    assert "lr lowered to 0.25 at iteration" in out
    assert np.array_equal(a.net.theta, b.net.theta)
    assert np.array_equal(a.net.memory, b.net.memory) and a.smooth_loss == b.smooth_loss


def test_a_run_stopped_before_its_evaluation_makes_it_on_resume(workdir, capsys):
    """Ctrl-C after a chunk that ends on an evaluation: the checkpoint holds the trained
    iterations, not their evaluation; the resumed run makes it, as a straight run did."""
    common = ["tiny.yaml", "optim.schedule=plateau", "optim.plateau_patience=1"]
    assert run_main(common + ["train.max_iters=50", "train.out_dir=a"]) == 0
    t = fastrnn.load("a")
    extra = t.extra
    t.train_iters(50)  # to iteration 100, an evaluation's, which the runner never saw
    t.save("a/latest.npz", extra=extra)
    assert run_main(common + ["train.max_iters=300", "train.out_dir=a",
                              "train.resume=true"]) == 0
    assert run_main(common + ["train.max_iters=300", "train.out_dir=b"]) == 0
    out = capsys.readouterr().out
    assert "lr lowered to 0.25 at iteration" in out
    a, b = fastrnn.load("a"), fastrnn.load("b")
    untimed = [{k: v for k, v in t.extra.items() if k != "minutes"} for t in (a, b)]
    assert a.lr_scale == b.lr_scale < 1 and untimed[0] == untimed[1]
    assert np.array_equal(a.net.theta, b.net.theta)


def test_early_stopping_says_why_and_keeps_the_best(workdir, capsys):
    assert run_main(["tiny.yaml", "train.patience=2", "train.max_iters=100000"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"stopped: validation has not improved for 2 evaluations \(best "
                  r"([0-9.]+) at iteration (\d+)\)", out)
    assert m, out
    best_iter = int(m.group(2))
    stopped = fastrnn.load("runs/tiny", data=False).iteration
    assert stopped == best_iter + 2 * 50 < 100000
    best = fastrnn.load("runs/tiny/best.npz")
    assert best.iteration == best_iter
    assert f"{best.evaluate():.4f}" == m.group(1)
    assert run_main(["tiny.yaml", "train.patience=2", "train.max_iters=100000",
                     "train.resume=true"]) == 0
    assert "already stopped: validation has not improved" in capsys.readouterr().out
    assert fastrnn.load("runs/tiny", data=False).iteration == stopped


@pytest.mark.parametrize("args,match", [
    (["optim.schedule=linear"], "optim.schedule must be one of step, constant, cosine"),
    (["optim.schedule=cosine", "optim.warmup=400"], "optim.warmup=400 is not shorter"),
    (["optim.schedule=cosine", "optim.min_lr=1"], "optim.min_lr=1.0 is above optim.lr"),
    (["optim.schedule=cosine", "optim.lr_decay=0.9"], "belongs to the step schedule"),
    (["optim.warmup=10"], "optim.warmup belongs to the cosine schedule"),
    (["optim.min_lr=0.01"], "optim.min_lr belongs to the cosine and plateau"),
    (["optim.weight_decay=-1"], "optim.weight_decay must be at least 0"),
    (["optim.factor=1"], "optim.factor must be less than 1"),
    (["train.patience=0"], "train.patience must be at least 1"),
    (["train.patience=3", "data.val_fraction=0"], "train.patience=3 watches the validation"),
    (["optim.schedule=plateau", "data.val_fraction=0"], "optim.schedule=plateau watches"),
])
def test_bad_schedule_input_is_one_line_and_exit_2(workdir, capsys, args, match):
    assert run_main(["tiny.yaml"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_progress_leads_with_validation_and_the_interval_mean(workdir, capsys):
    assert run_main(["tiny.yaml", "train.max_iters=200", "train.eval_every=100"]) == 0
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("iter ")]
    with open("runs/tiny/metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 4
    assert lines[0].split(" | ")[1] == "val -"
    latest = {1: rows[1], 2: rows[1], 3: rows[3]}  # validation every 100 iterations
    for i, row in latest.items():
        assert lines[i].split(" | ")[1].startswith(f"val {float(row['val_nats']):.4f} nats")
    t = fastrnn.Trainer.from_yaml("tiny.yaml")  # the same run, step by step
    for row, line in zip(rows, lines):
        mean = t.train_iters(50).mean()
        assert float(row["train_avg_nats"]) == pytest.approx(mean, abs=1e-6)
        assert f"train {mean:.4f} nats/char" in line
    assert f"train {mean:.4f} nats/char (the mean of the last 50 iterations)" in cap.out
    assert re.search(r"done: 200 iterations .*; validation [0-9.]+ nats/char \(", cap.out)


def test_the_eta_respects_max_minutes(workdir, capsys):
    assert run_main(["tiny.yaml", "train.max_iters=1000000000", "train.max_minutes=0.05",
                     "train.log_every=100", "train.eval_every=1000000"]) == 0
    etas = re.findall(r"\| eta (\d+):(\d\d):(\d\d)", capsys.readouterr().err)
    assert etas and all(int(h) * 3600 + int(m) * 60 + int(s) <= 3 for h, m, s in etas)


def test_a_time_limited_cosine_ends_with_the_time(workdir):
    """With train.max_minutes and no optim.decay_iters, the cosine's horizon follows the
    iterations the time leaves, not train.max_iters: lr is near min_lr at the end."""
    from fastrnn.config import load_yaml
    from fastrnn.run import Run
    cfg = load_yaml("tiny.yaml", ["optim.schedule=cosine", "optim.min_lr=0.005",
                                  "train.max_iters=100000000", "train.max_minutes=0.03",
                                  "train.eval_every=100000000", "train.log_every=20"])
    run = Run(cfg)
    run.prepare()
    assert run.train() == 0
    t = run.trainer
    assert 0 < t.iteration < 100000000
    assert t.learning_rate() < 0.2 * 0.5  # (the horizon max_iters would leave it at 0.5)
    assert t.run.hyper[optim.HORIZON] < 2 * t.iteration
