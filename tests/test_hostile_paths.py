"""Paths the OS refuses (a name over 255 bytes, ~nosuchuser, a file where a folder
should be, a NUL or a lone surrogate) are one line, in every command, and change
nothing; a newline in a path is shown escaped, so the line stays one; a run folder whose
name matplotlib would read as math still gets its plot."""
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint
from fastrnn.config import Config
from fastrnn.trainer import Trainer
from hostile import check_refused, invoke, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n")
LONG = "x" * 300

CASES = [
    ("run", ["base.yaml", f"data.path={LONG}"]),
    ("run", ["base.yaml", f"data.path={LONG}/*.txt"]),
    ("run", ["base.yaml", f"data.path=sub/{LONG}.txt"]),
    ("run", ["base.yaml", "data.path=~nosuchuser/text.txt"]),
    ("run", ["base.yaml", "data.path=~nosuchuser/*.txt"]),
    ("run", ["base.yaml", f"train.out_dir={LONG}"]),
    ("run", ["base.yaml", f"train.out_dir=sub/{LONG}/run"]),
    ("run", ["base.yaml", "train.out_dir=afile"]),
    ("run", ["base.yaml", "train.out_dir=afile/run"]),
    ("run", ["base.yaml", f"train.init_from={LONG}.npz"]),
    ("run", ["base.yaml", "train.init_from=~nosuchuser/x.npz"]),
    ("run", [f"{LONG}.yaml"]),
    ("sample", [LONG, "--length", "3"]),
    ("sample", [f"{LONG}.npz", "--length", "3"]),
    ("sample", ["good.npz", "--output", LONG]),
    ("sample", ["good.npz", "--output", f"sub/{LONG}/out.txt"]),
    ("sample", ["good.npz", "--output", "afile/out.txt"]),
    ("sample", ["good.npz", "--prime-file", LONG]),
    ("export", [LONG, "out.npz"]),
    ("export", ["good.npz", f"{LONG}.npz"]),
    ("export", ["good.npz", "afile/out.npz"]),
    ("sweep", ["sweep.yaml", "--out-dir", LONG]),
    ("sweep", ["sweep.yaml", "--out-dir", "afile"]),
    ("sweep", ["sweep.yaml", "--out-dir", "afile/sweep"]),
    ("sweep", [f"{LONG}.yaml"]),
    ("sweep", ["nul.yaml"]),
    ("run", ["base.yaml", 'data.path="a\\nb"']),
    ("run", ["base.yaml", 'train.out_dir="a\\0b"']),
    ("run", ["base.yaml", 'train.out_dir="\\ud800"']),
    ("run", ["base.yaml", 'train.out_dir="\\udcff"']),
    ("eval", [LONG]),
    ("eval", [f"{LONG}.npz"]),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, BASE)
    (tmp_path / "sweep.yaml").write_text("base: base.yaml\ngrid:\n  optim.lr: [0.1]\n")
    (tmp_path / "nul.yaml").write_text('base: base.yaml\nout_dir: "a\\0b"\ngrid:\n'
                                       '  optim.lr: [0.1]\n')
    (tmp_path / "afile").write_text("a file\n")
    (tmp_path / "sub").mkdir()
    trainer = Trainer(Config.from_dict(tiny_config()), text=SMALL_TEXT)
    checkpoint.save(trainer, tmp_path / "good.npz")
    return tmp_path


@pytest.mark.parametrize("command,argv", CASES,
                         ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_a_path_the_os_refuses_is_one_line(workdir, command, argv):
    check_refused(command, argv, workdir)


@pytest.mark.parametrize("name", ["$x^$", "$\\frac{$"])
def test_a_run_folder_named_like_math_still_gets_its_plot(workdir, name):
    pytest.importorskip("matplotlib")
    code, _, err = invoke("run", ["base.yaml", f"train.out_dir={name}"])
    assert code == 0 and "Traceback" not in err, err
    assert (workdir / name / "loss.png").is_file()
