"""A failed command changes nothing: a resume refused for a damaged or non-finite
checkpoint, or because a file it writes is a folder or a link, leaves config.yaml and
every other file of the run folder as they were."""
import io
import os

import numpy as np
import pytest
import yaml

from conftest import SMALL_TEXT
from fastrnn import checkpoint
from fastrnn.config import load_yaml
from fastrnn.trainer import Trainer
from hostile import check_refused

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n  out_dir: run\n")


def _truncate(run):
    blob = (run / "latest.npz").read_bytes()
    (run / "latest.npz").write_bytes(blob[: len(blob) // 2])


def _nan(run):
    with np.load(run / "latest.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["theta"] = arrays["theta"].copy()
    arrays["theta"][3] = np.nan
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (run / "latest.npz").write_bytes(buf.getvalue())


def _folder(name):
    def make(run):
        if (run / name).exists():
            (run / name).unlink()
        (run / name).mkdir()
    return make


def _link(name):
    def make(run):
        if (run / name).exists():
            (run / name).unlink()
        (run / name).symlink_to(run.parent / "outside.txt")
    return make


# (what is done to the run folder, overrides of the resume)
CASES = [
    (_truncate, []),
    (_nan, []),
    (lambda run: (run / "latest.npz").write_text("not a checkpoint"), []),
    (_folder("metrics.csv"), []),
    (_folder("best.npz"), []),
    (_folder("samples.txt"), []),
    (_folder("loss.png"), []),
    (_folder("latest.npz"), []),
    (_link("metrics.csv"), []),
    (_link("samples.txt"), []),
    (_link("test.json"), []),
    (lambda run: None, ["model.hidden=16"]),
    (lambda run: None, ["data.val_fraction=0.3"]),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "outside.txt").write_text("not the run's\n")
    cfg = load_yaml("base.yaml")
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(cfg)
    checkpoint.save(trainer, run / "latest.npz")
    checkpoint.save(trainer, run / "best.npz")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (run / "metrics.csv").write_text("iteration,smooth_loss\n0,1.0\n")
    (run / "samples.txt").write_text("a sample\n")
    os.utime(run / "config.yaml", ns=(10**18, 10**18))  # an mtime a rewrite would change
    return tmp_path


@pytest.mark.parametrize("damage,overrides", CASES)
def test_a_refused_resume_changes_nothing(workdir, damage, overrides):
    damage(workdir / "run")
    check_refused("run", ["base.yaml", "train.resume=true", *overrides], workdir)
    assert (workdir / "outside.txt").read_text() == "not the run's\n"
