"""Config, sweep and metadata readers bound what they read: aliases (billion laughs),
deep nesting and huge whole numbers in a config file, an override, a sweep file, or the
JSON inside a checkpoint or an export are one line naming the file and key."""
import io

import numpy as np
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint
from fastrnn.config import Config
from fastrnn.trainer import Trainer
from hostile import check_refused, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n")
LAUGHS = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"lol"'] * 9) + "]\n"
                 for i in range(10))
DEEP = "[" * 100 + "]" * 100
DEEPER = "[" * 100_000
HUGE = "9" * 5000

# (file name, its text, the command's arguments, a word the line must hold)
FILES = [
    ("bomb.yaml", BASE + LAUGHS, ["bomb.yaml"], "alias"),
    ("deep.yaml", BASE.replace("hidden: 8", f"hidden: {DEEP}"), ["deep.yaml"],
     "model.hidden"),
    ("deeper.yaml", BASE.replace("hidden: 8", f"hidden: {DEEPER}"), ["deeper.yaml"],
     "deeper.yaml"),
    ("digits.yaml", BASE.replace("max_iters: 10", f"max_iters: {HUGE}"),
     ["digits.yaml"], "train.max_iters"),
    ("big.yaml", BASE + f"  seed: {2**64}\n", ["big.yaml"], "train.seed"),
    ("mapping.yaml", BASE + "optim:\n  lr: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
     ["mapping.yaml"], "optim.lr"),
]
OVERRIDES = [
    (f"model.hidden={DEEPER}", "model.hidden"),
    (f"model.hidden={DEEP}", "model.hidden"),
    (f"train.max_iters={HUGE}", "train.max_iters"),
    ("optim.lr=" + "{a: " * 40 + "1" + "}" * 40, "optim.lr"),
]
SWEEPS = [
    ("base: base.yaml\nn_trials: 2\n" + LAUGHS + "random:\n  optim.lr: {choice: *l9}\n",
     "alias"),
    (f"base: base.yaml\ngrid:\n  model.hidden: [{DEEP}]\n", "grid.model.hidden"),
    (f"base: base.yaml\nn_trials: {HUGE}\nrandom:\n  optim.lr: {{uniform: [0.01, 0.1]}}\n",
     "n_trials"),
    (f"base: base.yaml\ngrid:\n  model.hidden: [{DEEPER}]\n", "sweep.yaml"),
]
# (the JSON field of a checkpoint, what to put in it)
CHECKPOINT_JSON = [
    ("config", '{"train": {"seed": ' + HUGE + "}}"),
    ("config", "[" * 100_000 + "]" * 100_000),
    ("config", '{"model": {"hidden": ' + DEEP + "}}"),
    ("extra", '{"best_iteration": ' + HUGE + "}"),
    ("vocab", "[" * 100_000 + "]" * 100_000),
]
EXPORT_JSON = [
    ("__config__", '{"train": {"seed": ' + HUGE + "}}"),
    ("__vocab__", "[" * 100_000 + "]" * 100_000),
    ("__config__", '{"data": ' + DEEP + "}"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, BASE)
    return tmp_path


@pytest.mark.parametrize("name,text,argv,match", FILES, ids=[f[0] for f in FILES])
def test_a_config_file_that_explodes_is_one_line(workdir, name, text, argv, match):
    (workdir / name).write_text(text)
    line = check_refused("run", argv, workdir, match=match)
    assert name in line


@pytest.mark.parametrize("override,match", OVERRIDES)
def test_an_override_that_explodes_is_one_line(workdir, override, match):
    line = check_refused("run", ["base.yaml", override], workdir, match=match)
    assert len(line) < 400


@pytest.mark.parametrize("text,match", SWEEPS)
def test_a_sweep_file_that_explodes_is_one_line(workdir, text, match):
    (workdir / "sweep.yaml").write_text(text)
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match=match)


def _rewrite(src, dst, key, text):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[key] = np.array(text)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    dst.write_bytes(buf.getvalue())


@pytest.fixture
def saved(workdir):
    trainer = Trainer(Config.from_dict(tiny_config()), text=SMALL_TEXT)
    checkpoint.save(trainer, workdir / "good.npz")
    return workdir / "good.npz"


@pytest.mark.parametrize("key,text", CHECKPOINT_JSON)
def test_json_that_explodes_inside_a_checkpoint_is_one_line(workdir, saved, key, text):
    _rewrite(saved, workdir / "bad.npz", key, text)
    check_refused("sample", ["bad.npz", "--length", "5"], workdir, match="bad.npz")


@pytest.mark.parametrize("key,text", EXPORT_JSON)
def test_json_that_explodes_inside_an_export_is_one_line(workdir, saved, key, text):
    from fastrnn.export import export
    export(saved, workdir / "good_export.npz")
    _rewrite(workdir / "good_export.npz", workdir / "bad_export.npz", key, text)
    for command, argv in (("sample", ["bad_export.npz", "--length", "5"]),
                          ("run", ["base.yaml", "train.init_from=bad_export.npz",
                                   "train.out_dir=fresh"])):
        check_refused(command, argv, workdir, match="bad_export.npz")
