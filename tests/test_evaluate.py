"""Evaluation protocols (fastrnn.evaluate): the windows protocol against PyTorch for
each family, the headline against a model stepped one character at a time, a model
that falls into a bad regime from a zero state, the run's columns and test loss, and
`fastrnn eval` on run folders, checkpoints and exports, with its bad input."""
import json

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn.cli import main as cli_main
from fastrnn.evaluate import evaluate, main as eval_main
from fastrnn.export import export, read_model
from fastrnn.run import main as run_main

TEXT = SMALL_TEXT * 3


def trained(kind="rnn", iters=60, path="text.txt", **train):
    t = fastrnn.Trainer(tiny_config(data={"val_fraction": 0.25, "path": str(path)},
                                    model={"kind": kind, "hidden": 12},
                                    train=dict({"dtype": "float64"}, **train)), text=TEXT)
    t.train_iters(iters)
    return t


def torch_windows(path, ids, at, block):
    """The mean loss of the windows ids[i:i+block+1] (i in at), each from a zero state,
    every position scored, by the export at path loaded into PyTorch alone."""
    import torch
    import torch.nn.functional as F
    with np.load(path) as f:
        cfg = json.loads(str(f["__config__"]))
        weights = {k: torch.from_numpy(f[k]) for k in f.files if not k.startswith("__")}
    m = cfg["model"]
    V = weights["head.weight"].shape[0]
    rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[m["kind"]](
        V, m["hidden"], m["layers"], batch_first=True).double()
    rnn.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("rnn.")})
    rows = torch.from_numpy(np.stack([ids[i:i + block + 1] for i in at]).astype(np.int64))
    with torch.no_grad():
        out, _ = rnn(F.one_hot(rows[:, :-1], V).double())
        logits = out @ weights["head.weight"].T + weights["head.bias"]
        return F.cross_entropy(logits.reshape(-1, V), rows[:, 1:].reshape(-1)).item()


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_the_windows_protocol_equals_pytorch(tmp_path, kind):
    pytest.importorskip("torch")
    # trained on two streams: each family's batched kernels on all cores, as the
    # windows are read (and as other files train them)
    t = trained(kind, batch_size=2)
    t.save(tmp_path / "ckpt.npz")
    out = export(tmp_path / "ckpt.npz", tmp_path / "model.npz")
    model = read_model(out)
    ids = t.corpus.val
    block = 16
    got = evaluate(model, ids, "windows", block=block)
    at = np.arange(0, len(ids) - block, block)  # every full window, as nanoGPT cuts them
    assert got.characters == block * len(at) and got.settings["windows"] == len(at) > 5
    assert got.nats == pytest.approx(torch_windows(out, ids, at, block), rel=1e-5)
    if kind == "rnn":  # nanogpt: the same windows at the seed's random starts
        random = evaluate(model, ids, "nanogpt", block=block, windows=30, seed=5)
        starts = np.random.default_rng(5).integers(len(ids) - block, size=30)
        assert random.nats == pytest.approx(torch_windows(out, ids, starts, block),
                                            rel=1e-5)
        again = evaluate(model, ids, "nanogpt", block=block, windows=30, seed=5)
        other = evaluate(model, ids, "nanogpt", block=block, windows=30, seed=6)
        assert again.nats == random.nats != other.nats


def stepped(model, text_ids, state, start, length, burn_in):
    """Reference headline of one stream: the model stepped a character at a time from
    state over text_ids[start - burn_in:start], then scored on the next length ids."""
    s = model.stepper(1)
    s.load(state)
    for c in text_ids[start - burn_in:start]:
        s.step(np.array([c]))
    total = 0.0
    for a, b in zip(text_ids[start:start + length - 1], text_ids[start + 1:start + length]):
        y = s.step(np.array([a]))[0]
        total += np.log(np.sum(np.exp(y - y.max()))) + y.max() - y[b]
    return total


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_the_headline_reads_each_stream_after_a_burn_in_from_the_carried_state(kind):
    t = trained(kind, batch_size=2)  # (the windows test's kernels, on two streams)
    state = t.carried_state()[0]
    assert np.any(state)  # training's own state, not zero
    before, ids = t.corpus.train, t.corpus.val
    text_ids = np.concatenate([before, ids])
    got = evaluate(t.model, ids, "headline", before=before, state=state, streams=2,
                   burn_in=30)
    S = len(ids) // 2
    want = sum(stepped(t.model, text_ids, state, len(before) + b * S, S, 30)
               for b in range(2))
    assert got.characters == 2 * (S - 1) and got.settings == dict(streams=2, burn_in=30)
    assert got.nats == pytest.approx(want / got.characters, rel=1e-10)
    assert t.evaluate() == pytest.approx(  # the trainer's: batch_size streams, its state
        evaluate(t.model, ids, before=before, state=state, streams=2).nats, rel=1e-12)
    zero = evaluate(t.model, ids, "zero", streams=2)
    assert zero.nats == pytest.approx(t.loss_of(ids, 2), rel=1e-12) != got.nats


def test_a_model_lost_from_a_zero_state_is_measured_in_context():
    """A tanh unit held at +1 or -1 by its own weight: from a zero state its bias takes
    it to -1, where the output predicts the reverse of the text's character
    frequencies, and it stays there; from the state it carries on the text (+1) it
    predicts them. The zero-state reading measures the fall; the headline, the model."""
    t = fastrnn.Trainer(tiny_config(data={"val_fraction": 0.25}), text=TEXT)
    p = {k: np.zeros_like(v) for k, v in t.params().items()}
    counts = np.bincount(t.corpus.train, minlength=len(t.vocab)) + 1.0
    logp = np.log(counts / counts.sum())
    p["Whh.0"][0, 0], p["bh.0"][0] = 5.0, -0.5
    p["Why"][:, 0] = logp - logp.mean()
    t.set_params(p)
    ids, before = t.corpus.val, t.corpus.train
    good = np.zeros((1, 1, 8))
    good[0, 0, 0] = 1.0
    entropy = -np.mean(logp[ids[1:]])  # the unigram model's loss on the split
    headline = evaluate(t.model, ids, before=before, state=good).nats
    zero = evaluate(t.model, ids, "zero").nats
    assert headline == pytest.approx(entropy, rel=1e-4)  # (the unit settles at 0.9997)
    assert zero > headline + 1
    # a burn-in from a zero state does not escape: the start state matters
    assert evaluate(t.model, ids, before=before).nats > headline + 1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny float64 rnn run with validation and test splits."""
    root = tmp_path_factory.mktemp("evalrun")
    (root / "text.txt").write_text(SMALL_TEXT * 6, encoding="utf-8")
    (root / "tiny.yaml").write_text(
        f"data:\n  path: {root / 'text.txt'}\n  val_fraction: 0.2\n  test_fraction: 0.15\n"
        f"model:\n  hidden: 16\n"
        f"train:\n  seq_length: 10\n  max_iters: 300\n  dtype: float64\n  batch_size: 2\n"
        f"  log_every: 100\n  eval_every: 100\n  sample_every: 0\n  checkpoint_every: 100\n"
        f"  out_dir: {root / 'run'}\n")
    assert run_main([str(root / "tiny.yaml")]) == 0
    return root / "run"


def test_a_run_reports_the_headline_and_the_zero_state_figure(run_dir):
    import csv
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    latest = fastrnn.load(run_dir)
    assert float(rows[-1]["val_nats"]) == pytest.approx(latest.evaluate(), abs=1e-6)
    assert float(rows[-1]["val_zero_nats"]) == pytest.approx(latest.evaluate("zero"),
                                                             abs=1e-6)
    report = json.loads((run_dir / "test.json").read_text())
    best = fastrnn.load(run_dir / "best.npz")
    assert report["protocol"] == "headline"
    assert report["test_nats"] == pytest.approx(best.evaluate(split="test"), rel=1e-12)


def test_eval_prints_the_protocol_and_its_settings(run_dir, capsys):
    assert cli_main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    latest = fastrnn.load(run_dir)
    assert f"{latest.evaluate():.4f} nats/char" in out
    burn_in = len(latest.corpus.train)  # all of it: shorter than the default 1000
    assert f"protocol headline (streams 2, burn-in {burn_in};" in out and "val split" in out
    assert eval_main([str(run_dir), "--protocol", "nanogpt", "--block", "32",
                      "--windows", "20", "--seed", "3", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "protocol nanogpt (block 32, windows 20, seed 3)" in out and "640 characters" in out


@pytest.mark.parametrize("protocol", ["headline", "zero", "nanogpt", "windows"])
def test_eval_json_gives_the_loss_under_nats(run_dir, capsys, protocol):
    assert eval_main([str(run_dir / "best.npz"), "--protocol", protocol, "--block", "20",
                      "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    best = fastrnn.load(run_dir / "best.npz")
    assert result["protocol"] == protocol and result["iteration"] == best.iteration
    assert result["bits"] == pytest.approx(result["nats"] / np.log(2))
    if protocol in ("headline", "zero"):
        assert result["nats"] == pytest.approx(best.evaluate(protocol), rel=1e-12)
        assert result["characters"] == len(best.corpus.val) - 2  # 2 streams
    else:
        assert result["block"] == 20 and result["characters"] == 20 * result["windows"]


def test_eval_reads_exports_like_their_checkpoint(run_dir, tmp_path, capsys):
    export(run_dir / "best.npz", tmp_path / "m.npz")
    got = {}
    for source in (run_dir / "best.npz", tmp_path / "m.npz"):
        assert eval_main([str(source), "--protocol", "windows", "--json"]) == 0
        got[source.name] = json.loads(capsys.readouterr().out)
    assert got["m.npz"]["nats"] == pytest.approx(got["best.npz"]["nats"], rel=1e-12)
    assert got["m.npz"]["iteration"] is None  # an export holds weights alone
    assert eval_main([str(tmp_path / "m.npz")]) == 0  # headline: no carried state
    assert "burn-in from a zero state" in capsys.readouterr().out


def test_eval_on_a_paragraph_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (tmp_path / "p.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.3\n  records: paragraphs\n"
        "model:\n  hidden: 8\n"  # one thread: test_paragraphs's loss of paragraphs
        "train:\n  seq_length: 8\n  max_iters: 50\n  dtype: float64\n  sample_every: 0\n"
        "  threads: 1\n")
    assert run_main(["p.yaml"]) == 0
    capsys.readouterr()
    t = fastrnn.load("runs/p")
    results = {}
    for protocol in ("headline", "zero", "windows"):
        assert eval_main(["runs/p", "--protocol", protocol, "--block", "8", "--json"]) == 0
        results[protocol] = json.loads(capsys.readouterr().out)
    # paragraphs are read each from a zero state, as training reads them, either way
    assert results["headline"]["nats"] == results["zero"]["nats"] == pytest.approx(
        t.evaluate(), rel=1e-12)
    assert results["headline"]["paragraphs"] == len(t.corpus.starts["val"]) - 1
    ids = t.corpus.val  # windows: the split's text, across paragraph boundaries
    assert results["windows"]["characters"] == 8 * ((len(ids) - 1) // 8)


@pytest.mark.parametrize("args,says", [
    (["--split", "test", "--protocol", "zero"], "test split is empty"),
    (["--protocol", "windows", "--block", "100000"], "--block 100000 is longer than"),
    (["--block", "0"], "--block must be at least 1"),
    (["--protocol", "nanogpt", "--windows", "0"], "--windows must be at least 1"),
])
def test_eval_bad_input_is_one_line(tmp_path, capsys, args, says):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    t = trained("rnn", iters=5, path=tmp_path / "text.txt")
    t.save(tmp_path / "ckpt.npz")
    assert eval_main([str(tmp_path / "ckpt.npz"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrnn: error: ") and says in err[0], err


def test_eval_refuses_a_file_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    for path in ("notes.txt", "arrays.npz", "missing.npz"):
        assert eval_main([str(tmp_path / path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fastrnn: error: "), err
