"""Numbers at the edges: a seed of 2**32 or more (in a config, an override or inside a
checkpoint), a temperature that underflows (sampled as argmax, no NaN), sweep
distributions with infinite or huge bounds, an infinite halving eta, eval's negative
seed."""
import io

import numpy as np
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint
from fastrnn.config import Config
from fastrnn.trainer import Trainer
from hostile import check_refused, invoke, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n")

RUN_CASES = [
    ["base.yaml", f"train.seed={2**32}"],
    ["base.yaml", f"train.seed={2**40}"],
    ["base.yaml", f"train.seed={2**63 - 1}"],
    ["seed.yaml"],
]
# (a JSON field of the checkpoint, its text): given to sample and to export
CHECKPOINTS = [
    ("config", lambda cfg: cfg.replace('"seed": 1', f'"seed": {2**32}')),
    ("config", lambda cfg: cfg.replace('"seed": 1', f'"seed": {2**64}')),
    ("extra", lambda extra: f'{{"sample_seed": {2**70}}}'),
]
SWEEPS = [
    "random:\n  optim.lr: {uniform: [0.01, .inf]}\n",
    "random:\n  optim.lr: {uniform: [-.inf, 0.1]}\n",
    "random:\n  optim.lr: {loguniform: [1.0e-5, 1.0e+30]}\n",
    "random:\n  model.hidden: {randint: [1, 1.0e+20]}\n",
    "random:\n  optim.lr: {uniform: [.nan, 0.1]}\n",
    "grid:\n  optim.lr: [0.1, 0.2]\nhalving: {min_iters: 2, eta: .inf}\n",
    "grid:\n  optim.lr: [0.1, 0.2]\nhalving: {min_iters: 2, eta: 1.0e+30}\n",
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, BASE)
    (tmp_path / "seed.yaml").write_text(BASE + f"  seed: {2**33}\n")
    trainer = Trainer(Config.from_dict(tiny_config()), text=SMALL_TEXT)
    checkpoint.save(trainer, tmp_path / "good.npz")
    return tmp_path


@pytest.mark.parametrize("argv", RUN_CASES)
def test_a_seed_beyond_32_bits_is_one_line(workdir, argv):
    check_refused("run", argv, workdir, match="train.seed")


@pytest.mark.parametrize("key,change", CHECKPOINTS)
def test_a_seed_beyond_range_inside_a_checkpoint_is_one_line(workdir, key, change):
    with np.load(workdir / "good.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[key] = np.array(change(str(arrays[key])))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (workdir / "bad.npz").write_bytes(buf.getvalue())
    check_refused("sample", ["bad.npz", "--length", "5"], workdir, match="bad.npz")
    check_refused("export", ["bad.npz", "out.npz"], workdir, match="bad.npz")


@pytest.mark.parametrize("temperature", ["1e-310", "1e-300", "5e-324"])
def test_a_temperature_that_underflows_samples_the_most_likely(workdir, temperature):
    code, argmax, err = invoke("sample", ["good.npz", "--prime", "Fi", "--length", "30",
                                          "--temperature", "0"])
    assert code == 0, err
    code, out, err = invoke("sample", ["good.npz", "--prime", "Fi", "--length", "30",
                                       "--temperature", temperature, "--seed", "3"])
    assert code == 0 and err == "", err
    assert out == argmax


@pytest.mark.parametrize("seed", ["-1", str(-2**63)])
def test_a_negative_eval_seed_is_one_line(tmp_path, monkeypatch, seed):
    make_workdir(tmp_path, monkeypatch, BASE, evaluable=True)
    check_refused("eval", ["val.npz", "--protocol", "nanogpt", "--block", "5", "--seed",
                           seed], tmp_path, match="--seed")


@pytest.mark.parametrize("text", SWEEPS)
def test_a_sweep_bound_at_infinity_is_one_line(workdir, text):
    head = "base: base.yaml\n" + ("n_trials: 2\n" if "random" in text else "")
    (workdir / "sweep.yaml").write_text(head + text)
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match="sweep.yaml")
