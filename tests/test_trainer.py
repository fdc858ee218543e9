"""The Python API: Trainer, params/set_params, train_iters, evaluate, and bad input."""
import numpy as np
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import Trainer
from fastrnn.reference import init_params
from teams import needs_two


def test_initial_weights_are_min_char_rnns_for_the_seed():
    t = Trainer(tiny_config(train={"seed": 42}), text=SMALL_TEXT)
    p = t.params()
    r = init_params(len(set(SMALL_TEXT)), 8, np.random.RandomState(42))
    assert np.array_equal(p["Wxh.0"], r["Wxh"]) and np.array_equal(p["Whh.0"], r["Whh"])
    assert np.array_equal(p["Why"], r["Why"]) and not p["bh.0"].any() and not p["by"].any()


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_init_schemes(kind):
    """model.init: auto is the family's own (min-char-rnn's for the rnn, PyTorch's
    for gru and lstm); xavier and orthogonal draw each gate's block alone."""
    def params(init):
        cfg = tiny_config(model={"kind": kind, "hidden": 24, "layers": 2, "init": init})
        return Trainer(cfg, text=SMALL_TEXT).params()
    auto = params("auto")
    own = params("minchar" if kind == "rnn" else "pytorch")
    assert all(np.array_equal(auto[k], own[k]) for k in auto)
    H, V = 24, len(set(SMALL_TEXT))
    for init in ("xavier", "orthogonal"):
        p = params(init)
        assert not any(p[k].any() for k in p if k.startswith("b"))
        for name in ("Wxh.1", "Whh.0", "Whh.1"):
            for block in np.split(p[name], p[name].shape[0] // H):
                if init == "orthogonal":  # orthonormal rows
                    assert np.allclose(block @ block.T, np.eye(H), atol=1e-6)
                else:  # Glorot uniform: within +-sqrt(6 / (H + H)), and spread out
                    assert np.abs(block).max() <= np.sqrt(6 / (2 * H))
                    assert np.std(block) > 0.8 * np.sqrt(2 / (2 * H))
        first = p["Wxh.0"][:H]  # (H, V): the inputs' columns orthonormal or Glorot
        if init == "orthogonal" and H <= V:
            assert np.allclose(first @ first.T, np.eye(H), atol=1e-6)
        assert np.abs(p["Why"]).max() <= np.sqrt(6 / (V + H))
    assert not np.array_equal(params("xavier")["Whh.0"], auto["Whh.0"])


def test_params_names_shapes_and_copies():
    t = Trainer(tiny_config(model={"hidden": 6, "layers": 2}), text=SMALL_TEXT)
    V = len(t.vocab)
    shapes = {k: v.shape for k, v in t.params().items()}
    assert shapes == {"Wxh.0": (6, V), "Whh.0": (6, 6), "bh.0": (6,), "Wxh.1": (6, 6),
                      "Whh.1": (6, 6), "bh.1": (6,), "Why": (V, 6), "by": (V,)}
    p = t.params()
    p["Why"][:] = 123.0  # a copy: the model is untouched
    assert not np.any(t.params()["Why"] == 123.0)
    t.set_params({"Why": p["Why"]})
    assert np.all(t.params()["Why"] == 123.0)
    assert all(v.dtype == np.float64 for v in t.params().values())


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_the_kernels_arrays_start_on_cache_lines(kind):
    """Parameters, gradients, optimizer memory and every buffer (a 16-byte aligned Whh
    made BLAS's gemv split its loads across cache lines, 13% of an iteration)."""
    t = Trainer(tiny_config(model={"hidden": 6, "kind": kind, "layers": 2}),
                text=SMALL_TEXT)
    arrays = {"theta": t.net.theta, "grad": t.net.grad, "memory": t.net.memory}
    arrays.update(t.buf._asdict())
    for name, a in arrays.items():
        assert a.size == 0 or a.ctypes.data % 64 == 0, name
        assert a.flags.c_contiguous, name
    assert t.net.theta.size == sum(v.size for v in t.params().values())


def test_set_params_rejects_unknown_names_and_wrong_shapes():
    t = Trainer(tiny_config(), text=SMALL_TEXT)
    with pytest.raises(ValueError, match="Wxz"):
        t.set_params({"Wxz": np.zeros(3)})
    with pytest.raises(ValueError, match="Whh.0.*shape"):
        t.set_params({"Whh.0": np.zeros((3, 3))})
    before = t.params()["Why"].copy()
    with pytest.raises(ValueError):  # nothing is half-applied
        t.set_params({"Why": before + 1, "nope": 0})
    assert np.array_equal(t.params()["Why"], before)


def test_train_iters_returns_per_iteration_nats_and_learns():
    t = Trainer(tiny_config(model={"hidden": 32}, train={"seq_length": 10}),
                text=SMALL_TEXT)
    first = t.train_iters(1)
    assert first.shape == (1,)
    assert first[0] == pytest.approx(np.log(len(t.vocab)), rel=0.01)  # uniform at start
    losses = t.train_iters(1500)
    assert losses.shape == (1500,) and t.iteration == 1501
    assert losses[-100:].mean() < 0.5 * losses[:100].mean()


def test_chunks_compose_exactly():
    a = Trainer(tiny_config(), text=SMALL_TEXT)
    b = Trainer(tiny_config(), text=SMALL_TEXT)
    la = a.train_iters(300)
    lb = np.concatenate([b.train_iters(n) for n in (1, 99, 37, 163)])
    assert np.array_equal(la, lb)
    assert all(np.array_equal(a.params()[k], b.params()[k]) for k in a.params())


@needs_two
@pytest.mark.parametrize("layers", [1, 2])
def test_exact_float64_is_the_same_with_two_threads(layers):
    """Threads split rows or columns of results, never a sum, in the exact path."""
    runs = []
    for threads in (1, 2):
        t = Trainer(tiny_config(model={"hidden": 384, "layers": layers},  # big enough
                                train={"threads": threads, "seq_length": 25}),  # to split
                    text=SMALL_TEXT)
        assert t.exact
        runs.append((t.train_iters(60), t.params()))
    assert np.allclose(runs[0][0], runs[1][0], rtol=1e-12)  # (the loss sum may be split)
    assert all(np.array_equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_evaluate_is_mean_nats_on_the_validation_split():
    text = SMALL_TEXT * 3
    t = Trainer(tiny_config(data={"val_fraction": 0.25}), text=text)
    n_val = int(len(text) * 0.25)
    assert len(t.corpus.val) == n_val and len(t.corpus.train) == len(text) - n_val
    assert t.evaluate() == pytest.approx(np.log(len(t.vocab)), rel=0.01)
    t.train_iters(800)
    assert t.evaluate() < 0.8 * np.log(len(t.vocab))


def test_evaluate_zero_matches_a_numpy_forward_pass():
    t = Trainer(tiny_config(data={"val_fraction": 0.3}), text=SMALL_TEXT)
    rs = np.random.RandomState(0)
    t.set_params({k: rs.randn(*v.shape) * 0.3 for k, v in t.params().items()})
    p = t.params()
    ids = t.corpus.val
    h = np.zeros(8)
    total = 0.0
    for a, b in zip(ids[:-1], ids[1:]):
        h = np.tanh(p["Wxh.0"][:, a] + p["Whh.0"] @ h + p["bh.0"])
        y = p["Why"] @ h + p["by"]
        total -= y[b] - np.log(np.sum(np.exp(y)))
    assert t.evaluate("zero") == pytest.approx(total / (len(ids) - 1), rel=1e-12)


def test_batch_streams_are_contiguous_slices():
    t = Trainer(tiny_config(train={"batch_size": 4}), text=SMALL_TEXT)
    S = len(SMALL_TEXT) // 4
    assert t.run.data.shape == (4, S)
    assert "".join(t.vocab[i] for i in t.run.data[1]) == SMALL_TEXT[S:2 * S]
    assert np.all(np.isfinite(t.train_iters(50)))


def test_yaml_and_overrides(tmp_path):
    (tmp_path / "t.txt").write_text(SMALL_TEXT)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  path: {tmp_path / 't.txt'}\nmodel:\n  hidden: 9\n")
    t = Trainer.from_yaml(cfg, overrides=["train.seq_length=7", "optim.lr=1e-2"])
    assert t.config.model.hidden == 9 and t.config.train.seq_length == 7
    assert t.config.optim.lr == 0.01
    assert t.config.train.out_dir.endswith("runs/c")


@pytest.mark.parametrize("cfg,match", [
    ({"model": {"hiden": 10}}, "model.hiden.*did you mean 'model.hidden'"),
    ({"model": {"hidden": 0}}, "model.hidden must be at least 1"),
    ({"model": {"hidden": 2.5}}, "model.hidden must be a whole number"),
    ({"optim": {"lr": 0}}, "optim.lr must be greater than 0"),
    ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
    ({"train": {"seq_length": -1}}, "train.seq_length must be at least 1"),
    ({"train": {"dtype": "float16"}}, "train.dtype must be one of"),
    ({"data": {"val_fraction": 1.0}}, "data.val_fraction must be less than 1"),
    ({"trian": {}}, "unknown section 'trian'"),
    ({"model": {"kind": "transformer"}}, "model.kind must be one of"),
])
def test_bad_config_is_a_clear_value_error(cfg, match):
    with pytest.raises(ValueError, match=match):
        Trainer(cfg, text=SMALL_TEXT)


def test_seq_length_too_long_for_the_text():
    with pytest.raises(ValueError, match="train.seq_length.*too long"):
        Trainer(tiny_config(train={"seq_length": 500}), text=SMALL_TEXT)


def test_bad_text_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 ol\xe9".encode("latin-1") * 20)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for path, match in [(empty, "empty"), (latin, "not valid UTF-8"), (binary, "binary"),
                        (tmp_path / "missing.txt", "not found")]:
        with pytest.raises(ValueError, match=match):
            Trainer(tiny_config(data={"path": str(path)}))


def test_unicode_vocabulary(tmp_path):
    text = "héllo wörld — ünïcode ✓ 漢字 " * 10
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")
    t = Trainer(tiny_config(data={"path": str(path)}))
    assert t.vocab == sorted(set(text))
    assert "".join(t.vocab[i] for i in t.corpus.ids) == text


def test_an_interrupt_leaves_the_state_of_a_finished_iteration():
    """Ctrl-C arrives while the kernel runs: it is raised once the chunk is done, with
    the smoothed loss of the same iteration as the parameters (as a straight run's)."""
    import os
    import signal
    import threading
    Trainer(tiny_config(), text=SMALL_TEXT).train_iters(1)  # the kernel loaded first
    for delay in (0.02, 0.05, 0.11):
        t = Trainer(tiny_config(), text=SMALL_TEXT)
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            while True:
                t.train_iters(3000)
        timer.join()
        straight = Trainer(tiny_config(), text=SMALL_TEXT)
        straight.train_iters(t.iteration)
        assert t.iteration > 0 and t.iteration % 3000 == 0
        assert t.smooth_loss == straight.smooth_loss, delay
        for k, v in t.params().items():
            assert np.array_equal(v, straight.params()[k]), k
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_team_finishes_when_its_threads_run_one_after_the_other():
    """A thread of a team waits only for work another thread is doing, so the call
    completes even when its threads run in turn, and with the same bits: which thread
    takes a piece of work never changes its arithmetic."""
    from fastrnn.kernels import entries
    from fastrnn.kernels.team import Call, Team, flag_count

    def make():
        return Trainer(tiny_config(model={"kind": "lstm", "hidden": 96, "layers": 2},
                                   train={"batch_size": 16, "seq_length": 8,
                                          "threads": 2}), text=SMALL_TEXT * 4)
    a, b = make(), make()
    together = np.empty(20)
    Call(entries.train, a.train_call(together).args, 2)()
    in_turn = np.empty(20)
    args = b.train_call(in_turn).args
    flags = np.zeros(flag_count(2), np.int64)
    for me in (0, 1):
        entries.train(*args, Team(flags, me, 2))
    assert np.array_equal(together, in_turn)
    assert all(np.array_equal(v, b.params()[k]) for k, v in a.params().items())
