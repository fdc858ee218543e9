"""The command line's usage lines, help streams and program names, and the sweep's
ranked table."""
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import fastrnn
from fastrnn.sweeps import summary

ROOT = Path(fastrnn.__file__).parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_the_runner_without_arguments_asks_for_a_config_only():
    p = run("fastrnn.run")
    assert p.returncode == 2
    assert "required: config" in p.stderr and "overrides" not in p.stderr.splitlines()[-1]


def test_help_goes_to_stdout_and_names_the_command():
    p = run("fastrnn", "--help")
    assert (p.returncode, p.stderr) == (0, "") and p.stdout.startswith("usage: fastrnn {")
    p = run("fastrnn")  # no command: the usage is an error
    assert p.returncode == 2 and p.stderr.startswith("usage: fastrnn {") and not p.stdout
    for command in ("train", "sweep", "export", "sample", "bench", "compile"):
        p = run("fastrnn", command, "--help")
        assert p.returncode == 0 and p.stdout.startswith(f"usage: fastrnn {command} "), (
            command, p.stdout[:80])


def test_the_sweep_help_and_docstrings_name_sweep_files_that_exist():
    p = run("fastrnn", "sweep", "--help")
    named = [w.strip("`'\",.()") for w in p.stdout.split() if w.startswith("configs/")]
    for path in ROOT.glob("fastrnn/sweep*/**/*.py"):
        named += [w.strip("`'\",.()") for w in path.read_text().split()
                  if w.startswith("configs/sweeps/")]
    assert named and all((ROOT / n).is_file() for n in named), named


def test_the_ranked_table_aligns_its_columns(tmp_path):
    axes = {"optim.lr": [0.1, 0.003, 0.03], "model.hidden": [16, 128, 1024]}
    trials = [(f"t{i}", {k: v[i] for k, v in axes.items()}) for i in range(3)]
    rows = {name: dict(trial=name, status="ok", metric=1.5 + i, params=params)
            for i, (name, params) in enumerate(trials)}
    rows["t2"]["trial"] = "t2-long-name"
    sweep = SimpleNamespace(trials=trials, search=None, halving=None, metric="val_loss",
                            out_dir=tmp_path)
    results = SimpleNamespace(rows=rows, csv="results.csv", jsonl="results.jsonl")
    out = io.StringIO()
    assert summary(results, sweep, out) == 0
    lines = out.getvalue().splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    table = lines[head:head + 4]
    for name in ("trial", "val_loss", "optim.lr", "model.hidden"):
        at = table[0].index(name)
        if name == "val_loss":  # right-aligned: the numbers end where the name ends
            ends = {line.index(".", at - 8) + 5 for line in table[1:]}
            assert ends == {at + len(name)}, table
        else:  # left-aligned: each value starts where the name does
            assert all(line[at - 1] == " " and line[at] != " " for line in table[1:]), (
                name, table)
