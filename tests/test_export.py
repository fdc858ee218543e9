"""Export to PyTorch's names, loaded into PyTorch without fastrnn; import with
train.init_from; bad input."""
import json
import sys

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn.export import export, main as export_main, read_weights
from fastrnn.run import Run, main as run_main

TEXT = SMALL_TEXT * 3


def trained(kind="rnn", layers=1, dtype="float64", iters=60, text=TEXT):
    t = fastrnn.Trainer(tiny_config(data={"val_fraction": 0.25},
                                    model={"kind": kind, "layers": layers},
                                    train={"dtype": dtype}), text=text)
    t.train_iters(iters)
    return t


def torch_loss(path, text):
    """The README's lines: load an export into PyTorch alone and read a text."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CharRNN(nn.Module):
        def __init__(self, kind, V, H, L):
            super().__init__()
            self.V = V
            self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](
                V, H, L, batch_first=True)
            self.head = nn.Linear(H, V)

        def forward(self, ids, state=None):
            x = F.one_hot(ids, self.V).to(self.head.weight.dtype)
            out, state = self.rnn(x, state)
            return self.head(out), state

    if str(path).endswith(".safetensors"):
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(path, "pt") as f:
            meta = f.metadata()
        weights = load_file(path)
    else:
        with np.load(path) as f:
            meta = {"vocab": str(f["__vocab__"]), "config": str(f["__config__"])}
            weights = {k: torch.from_numpy(f[k]) for k in f.files if not k.startswith("__")}
    vocab, cfg = json.loads(meta["vocab"]), json.loads(meta["config"])
    m = cfg["model"]
    net = CharRNN(m["kind"], len(vocab), m["hidden"], m["layers"])
    net = net.to(weights["head.weight"].dtype)
    net.load_state_dict(weights)
    ids = torch.tensor([vocab.index(c) for c in text]).unsqueeze(0)
    with torch.no_grad():
        logits, _ = net(ids[:, :-1])
        return F.cross_entropy(logits[0], ids[0, 1:]).item()


@pytest.mark.parametrize("kind,layers,dtype,suffix", [
    ("rnn", 1, "float64", ".npz"), ("rnn", 2, "float32", ".safetensors"),
    ("gru", 2, "float32", ".safetensors"), ("gru", 1, "float32", ".npz"),
    ("lstm", 2, "float32", ".npz"), ("lstm", 1, "float32", ".safetensors"),
])
def test_an_export_runs_in_pytorch_with_the_same_loss(tmp_path, kind, layers, dtype, suffix):
    pytest.importorskip("torch")
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    t = trained(kind, layers, dtype)
    t.save(tmp_path / "ckpt.npz")
    out = export(tmp_path / "ckpt.npz", tmp_path / f"model{suffix}")
    val = t.corpus.text[len(t.corpus.train):]  # one stream, from a zero state
    ours, theirs = t.evaluate("zero"), torch_loss(out, val)
    assert abs(theirs - ours) <= (1e-10 if dtype == "float64" else 1e-6) * ours
    assert 0 < ours < np.log(len(t.vocab))  # trained: better than uniform


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_read_weights_gives_back_the_parameters(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    t = trained()
    t.save(tmp_path / "ckpt.npz")
    out = export(tmp_path / "ckpt.npz", tmp_path / f"model{suffix}")
    for source in (out, tmp_path / "ckpt.npz"):
        params, vocab, config = read_weights(source)
        assert vocab == t.vocab and config == t.config.to_dict()
        assert params.keys() == t.params().keys()
        for k, v in t.params().items():
            assert np.array_equal(params[k], v), k
    with np.load(out if suffix == ".npz" else tmp_path / "ckpt.npz") as f:
        names = set(f.files)
    if suffix == ".npz":
        assert names == {"__vocab__", "__config__", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                         "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.weight", "head.bias"}


def test_export_keeps_the_dtype_and_the_bias_of_the_vanilla_rnn(tmp_path):
    t = trained(dtype="float32")
    t.save(tmp_path / "ckpt.npz")
    export(tmp_path / "ckpt.npz", tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert f["rnn.weight_hh_l0"].dtype == np.float32
        assert np.array_equal(f["rnn.bias_ih_l0"], t.params()["bh.0"].astype(np.float32))
        assert not f["rnn.bias_hh_l0"].any()


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrnn: error: "), err
    return err[0]


def test_export_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    t = trained()
    ckpt = tmp_path / "ckpt.npz"
    t.save(ckpt)
    target = tmp_path / "m.npz"
    assert export_main([str(ckpt), str(target)]) == 0
    before = target.read_bytes()
    assert export_main([str(ckpt), str(target)]) == 2
    assert "already exists" in one_line_error(capsys) and target.read_bytes() == before
    t.train_iters(5)
    t.save(ckpt)
    assert export_main([str(ckpt), str(target), "--force"]) == 0
    assert target.read_bytes() != before
    assert export_main([str(ckpt), str(ckpt), "--force"]) == 2
    assert "is the checkpoint being exported" in one_line_error(capsys)
    assert export_main([str(ckpt), str(tmp_path / "m.pt")]) == 2
    assert "unknown export format" in one_line_error(capsys)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(ckpt.read_bytes()[:300])
    assert export_main([str(bad), str(tmp_path / "x.npz")]) == 2
    assert "corrupt" in one_line_error(capsys)
    assert export_main([str(tmp_path / "nope"), str(tmp_path / "x.npz")]) == 2
    assert "not found" in one_line_error(capsys)
    assert export_main([str(ckpt), str(tmp_path / "no" / "x.npz")]) == 2
    assert "does not exist" in one_line_error(capsys)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    assert export_main([str(ckpt), str(tmp_path / "x.safetensors")]) == 2
    assert "pip install 'fastrnn[export]'" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "ckpt.npz", "m.npz"]


def test_the_export_command(tmp_path):
    from test_run import run_cli
    t = trained()
    t.save(tmp_path / "ckpt.npz")
    for args in (["-m", "fastrnn", "export"], ["-m", "fastrnn.export"]):
        out = tmp_path / f"{len(args)}.npz"
        done = run_cli(*args, str(tmp_path / "ckpt.npz"), str(out))
        assert done.returncode == 0 and out.is_file(), done.stderr
        assert np.array_equal(read_weights(out)[0]["Why"], t.params()["Why"])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "other.txt").write_text(TEXT[::-1], encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  val_fraction: 0.2\n"
        "model:\n  hidden: 8\n"
        "train:\n  seq_length: 6\n  max_iters: 100\n  dtype: float64\n  seed: 1\n"
        "  log_every: 50\n  eval_every: 50\n  sample_every: 0\n  checkpoint_every: 50\n")
    return tmp_path


def prepared(*overrides):
    run = Run(fastrnn.config.load_yaml("tiny.yaml", list(overrides)))
    run.prepare()
    return run.trainer


def test_init_from_starts_a_run_from_an_export_or_a_checkpoint(workdir, capsys):
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    first = fastrnn.load("first")
    export("first", "first.npz")
    for source in ("first.npz", "first", "first/best.npz"):
        t = prepared(f"train.init_from={source}", "data.path=other.txt",
                     f"train.out_dir=tune-{source.replace('/', '-')}")
        assert t.iteration == 0 and f"weights from {source}" in capsys.readouterr().out
        want = read_weights(source)[0]
        for k, v in t.params().items():
            assert np.array_equal(v, want[k]), (source, k)
    fresh = prepared("train.out_dir=fresh")
    assert not np.array_equal(fresh.params()["Why"], first.params()["Why"])
    # fine-tuning trains on from the imported weights
    assert run_main(["tiny.yaml", "train.init_from=first.npz",
                     "data.path=other.txt", "train.out_dir=tuned"]) == 0
    assert fastrnn.load("tuned").iteration == 100


def test_init_from_is_ignored_on_resume(workdir):
    assert run_main(["tiny.yaml", "train.out_dir=a", "train.max_iters=50"]) == 0
    t = prepared("train.out_dir=a", "train.resume=true", "train.init_from=missing.npz")
    assert t.iteration == 50


def test_init_from_another_model_or_vocabulary_is_one_line(workdir, capsys):
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    export("first", "first.npz")
    capsys.readouterr()
    cases = [
        (["model.hidden=9"], "model.hidden is 8 there, 9 here"),
        (["model.kind=gru", "model.layers=2"], "model.kind is rnn there, gru here; "
                                                "model.layers is 1 there, 2 here"),
        (["data.path=more.txt"], "the text adds 1 character(s) '~'"),
        ([], "not found"),
    ]
    (workdir / "more.txt").write_text(TEXT + "~", encoding="utf-8")
    for extra, match in cases:
        source = "first.npz" if extra else "gone.npz"
        code = run_main(["tiny.yaml", f"train.init_from={source}", "train.out_dir=b", *extra])
        assert code == 2, extra
        assert match in one_line_error(capsys), extra
        assert not (workdir / "b").exists()
    (workdir / "model.pt").write_bytes(b"torch")
    assert run_main(["tiny.yaml", "train.init_from=model.pt", "train.out_dir=b"]) == 2
    assert "train.init_from: model.pt: unknown format '.pt'" in one_line_error(capsys)


def test_init_vocab_grow_adds_the_new_characters(workdir):
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    export("first", "first.npz")
    (workdir / "more.txt").write_text(TEXT + "~|", encoding="utf-8")
    old, vocab, _ = read_weights("first.npz")
    t = prepared("train.init_from=first.npz", "train.init_vocab=grow", "data.path=more.txt",
                 "train.out_dir=grown")
    fresh = prepared("data.path=more.txt", "train.out_dir=fresh")
    where = [t.vocab.index(c) for c in vocab]
    new = [t.vocab.index(c) for c in "~|"]
    p, f = t.params(), fresh.params()
    assert np.array_equal(p["Wxh.0"][:, where], old["Wxh.0"])
    assert np.array_equal(p["Why"][where], old["Why"]) and np.array_equal(p["by"][where],
                                                                         old["by"])
    assert np.array_equal(p["Whh.0"], old["Whh.0"])
    assert np.array_equal(p["Wxh.0"][:, new], f["Wxh.0"][:, new])  # as initialised
    assert np.array_equal(p["Why"][new], f["Why"][new])


@pytest.mark.parametrize("grow", [False, True])
def test_init_from_a_text_that_lacks_characters_keeps_them_and_resumes(workdir, capsys,
                                                                      grow):
    """The file's characters the text lacks stay in the vocabulary, unused; with grow
    the text may also add some: the vocabulary is the union, and the run resumes."""
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    export("first", "first.npz")
    old, vocab, _ = read_weights("first.npz")
    text = TEXT.replace("z", "").replace("k", "") + ("~" if grow else "")
    (workdir / "less.txt").write_text(text, encoding="utf-8")
    args = ["train.init_from=first.npz", "data.path=less.txt"] + (
        ["train.init_vocab=grow"] * grow)
    capsys.readouterr()
    assert run_main(["tiny.yaml", *args, "train.out_dir=tuned", "train.max_iters=50"]) == 0
    assert "2 character(s) 'kz' not in the text, kept unused" in capsys.readouterr().out
    want = sorted(set(vocab) | {"~"}) if grow else vocab
    assert fastrnn.load("tuned").vocab == want
    t = prepared(*args, "train.out_dir=again")
    where = [t.vocab.index(c) for c in vocab]
    assert np.array_equal(t.params()["Why"][where], old["Why"])
    assert np.array_equal(t.params()["Wxh.0"][:, where], old["Wxh.0"])
    # resumed, the run goes on with the checkpoint's vocabulary
    assert run_main(["tiny.yaml", *args, "train.out_dir=tuned", "train.resume=true"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert fastrnn.load("tuned").iteration == 100 and fastrnn.load("tuned").vocab == want


def test_a_tampered_export_is_one_line(workdir, capsys):
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    export("first", "first.npz")
    with np.load("first.npz") as f:
        arrays = dict(f)
    broken = dict(arrays, **{"head.bias": arrays["head.bias"][:-1]})
    np.savez("short.npz", **broken)
    nan = dict(arrays, **{"head.bias": arrays["head.bias"] * np.nan})
    np.savez("nan.npz", **nan)
    np.savez("bare.npz", **{k: v for k, v in arrays.items() if not k.startswith("__")})
    capsys.readouterr()
    for name, match in (("short.npz", "head.bias is float64"),
                        ("nan.npz", "NaN"), ("bare.npz", "no fastrnn metadata")):
        assert run_main(["tiny.yaml", f"train.init_from={name}", "train.out_dir=b"]) == 2
        line = one_line_error(capsys)
        assert match in line and name in line, line


def test_a_vanilla_rnn_from_pytorch_imports_with_both_biases_summed(tmp_path):
    t = trained()
    t.save(tmp_path / "ckpt.npz")
    export(tmp_path / "ckpt.npz", tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    arrays["rnn.bias_hh_l0"] = np.linspace(-1, 1, arrays["rnn.bias_hh_l0"].size)
    np.savez(tmp_path / "torch.npz", **arrays)
    params = read_weights(tmp_path / "torch.npz")[0]
    assert np.array_equal(params["bh.0"], arrays["rnn.bias_ih_l0"] + arrays["rnn.bias_hh_l0"])


def test_an_export_with_its_vocabulary_in_another_order_imports_in_place(workdir):
    assert run_main(["tiny.yaml", "train.out_dir=first"]) == 0
    export("first", "first.npz")
    with np.load("first.npz") as f:
        arrays = dict(f)
    vocab = json.loads(str(arrays["__vocab__"]))
    order = np.arange(len(vocab))[::-1]
    arrays["__vocab__"] = np.array(json.dumps([vocab[i] for i in order]))
    for name in ("head.weight", "head.bias"):
        arrays[name] = arrays[name][order]
    arrays["rnn.weight_ih_l0"] = arrays["rnn.weight_ih_l0"][:, order]
    np.savez("reversed.npz", **arrays)
    t = prepared("train.init_from=reversed.npz", "train.out_dir=b")
    for k, v in read_weights("first.npz")[0].items():
        assert np.array_equal(t.params()[k], v), k
