"""data.records: paragraphs: the split at blank lines, the kernels against the numpy
reference and finite differences, the shuffle, validation, exact resume, sampling to a
paragraph's end, and bad input.

Every kernel here is float64 on one layer without dropout, and there are few, each
compiled once for the suite (each costs seconds): training the rnn on one stream, the
gru on three and the lstm on three on two threads (on one where there is one), and the
loss of paragraphs of the rnn on one stream. Between them they take both paths (one
stream, a batch), a team of one and of two, and resets of h alone and of h and c; what
the families do within a window is the stream mode's, tested against the reference for
every family on one stream and on three in test_families."""
import numpy as np
import pytest

import fastrnn
from fastrnn import Trainer
from fastrnn.cli import sample_main
from fastrnn.data import Corpus, paragraphs
from fastrnn.reference import ParagraphStreams, shuffled, window_loss_grads
from fastrnn.run import main as run_main

# Paragraphs of 1 to 51 characters (4 to 54 ids with the blank line after each), split
# by one or more blank lines, one of them only spaces; seq_length 8 is longer than some
# and shorter than others.
TEXT = ("Ab cd.\n\nEf gh ij kl mn op qr st\nuv wx.\n\n  \nYz\n\n"
        "A b c d e f g h i j k l m n o p q r s t u v w x y z.\n\nQ\n\nHi there, you.\n")
T = 8


def make(kind="rnn", B=1, hidden=5, text=TEXT, **sections):
    cfg = {"data": {"records": "paragraphs", "val_fraction": 0.0},
           "model": {"kind": kind, "hidden": hidden},
           "optim": {"name": "sgd", "lr": 0.05, "clip": 0.0},  # clip 0: net.grad as is
           "train": {"seq_length": T, "batch_size": B, "dtype": "float64", "seed": 3}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return Trainer(cfg, text=text)


def train_paragraphs(t):
    """The training paragraphs of t, as lists of ids."""
    s = t.corpus.starts["train"]
    return [list(t.corpus.train[s[i]:s[i + 1]]) for i in range(len(s) - 1)]


def gradients(t):
    """The gradients of t's last iteration, by public name."""
    return {k: np.array(v) for k, v in t.family.public(t.net.G, 1).items()}


def test_a_text_splits_at_blank_lines_into_paragraphs_that_end_in_one():
    found = paragraphs(TEXT)
    assert [p for _, p in found] == [
        "Ab cd.\n\n", "Ef gh ij kl mn op qr st\nuv wx.\n\n", "Yz\n\n",
        "A b c d e f g h i j k l m n o p q r s t u v w x y z.\n\n", "Q\n\n",
        "Hi there, you.\n\n"]
    assert all(TEXT[s:].startswith(p.rstrip("\n")) for s, p in found)
    assert paragraphs("\n \nOne\n\n\n") == [(3, "One\n\n")]
    # each split holds the paragraphs that start in it
    c = Corpus(TEXT, val_fraction=0.3, test_fraction=0.15, records="paragraphs")
    N = len(TEXT)
    cut_test = N - int(N * 0.15)
    cut_val = cut_test - int(N * 0.3)
    for name in ("train", "val", "test"):
        s = c.starts[name]
        texts = ["".join(c.vocab[i] for i in c.__dict__[name][s[k]:s[k + 1]])
                 for k in range(len(s) - 1)]
        expect = [p for start, p in found if
                  {"train": start < cut_val, "val": cut_val <= start < cut_test,
                   "test": start >= cut_test}[name]]
        assert texts == expect, name
    assert len(c.starts["val"]) > 1 and len(c.starts["test"]) > 1


@pytest.mark.parametrize("kind,B,threads", [("rnn", 1, 1), ("gru", 3, 1), ("lstm", 3, 2)])
def test_losses_and_gradients_match_the_numpy_reference(kind, B, threads):
    """Every iteration's loss per target and gradients against reference.py, which reads
    the paragraphs, shuffles them and carries the states its own way; over several
    passes, so across paragraphs' ends, padded windows and new orders."""
    t = make(kind, B, train={"threads": threads})
    ref = ParagraphStreams(train_paragraphs(t), B, T, int(t.run.data.rng[0]))
    S = 2 if kind == "lstm" else 1
    states = np.zeros((S, 1, B, 5))
    padded = 0
    for k in range(45):
        xs, targets, fresh = ref.window()
        states[:, :, fresh] = 0
        loss, grads, states = window_loss_grads(kind, t.params(), xs, targets, states)
        padded += (targets < 0).sum()
        got = t.train_iters(1)[0]
        assert got == pytest.approx(loss * B / (targets >= 0).sum(), rel=1e-12), k
        for name, g in gradients(t).items():
            np.testing.assert_allclose(g, grads[name], rtol=1e-9, atol=1e-13,
                                       err_msg=f"iteration {k} {name}")
    assert ref.order == t.run.data.order.tolist()
    assert padded > 0 or B == 1


def test_gradients_match_finite_differences():
    """The gradient of an iteration's loss (over its real targets, from the states it
    carries in) against central differences, at the first iteration and later ones with
    carried states and padded streams."""
    t = make("lstm", B=3, train={"threads": 2})
    t.set_params({k: np.random.RandomState(5).randn(*v.shape) * 0.4
                  for k, v in t.params().items()})
    eps = 1e-6
    rs = np.random.RandomState(0)
    for k in (0, 4, 9):
        t.train_iters(k - t.iteration)
        saved = {key: np.array(v, copy=True) for key, v in t.state_dict().items()}
        params = t.params()
        u = make("lstm", B=3, train={"threads": 2})

        def loss(values):
            u.load_state_dict(saved)
            u.set_params(values)
            per_target = u.train_iters(1)[0]
            return per_target * u.run.data.window[2] / 3  # summed, averaged over streams

        loss(params)
        grads = gradients(u)
        for name, value in params.items():
            for i in rs.choice(value.size, size=min(value.size, 4), replace=False):
                plus, minus = value.copy(), value.copy()
                plus.flat[i] += eps
                minus.flat[i] -= eps
                numeric = (loss({**params, name: plus})
                           - loss({**params, name: minus})) / (2 * eps)
                analytic = grads[name].flat[i]
                assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (k, name, i)


def test_the_order_is_shuffled_every_pass_and_follows_the_seed():
    def orders(seed, passes=4):
        t = make(train={"seed": seed})
        P = len(t.run.data.order)
        seen, taken = [], P
        while len(seen) < passes:
            t.train_iters(1)
            if t.run.data.window[0] < taken:  # a new pass, its first paragraph taken
                seen.append(t.run.data.order.tolist())
            taken = t.run.data.window[0]
        return seen, t.run.data.rng.copy(), P

    first, rng, P = orders(3)
    again, rng_again, _ = orders(3)
    assert first == again and np.array_equal(rng, rng_again)
    assert all(sorted(o) == list(range(P)) for o in first)
    assert len({tuple(o) for o in first}) == 4  # a new order every pass
    assert orders(4)[0] != first
    state = 3 * 2654435761 + 2  # the shuffle's seed, from train.seed
    for o in first:  # the reference's Fisher-Yates on the same generator
        expect, state = shuffled(P, state)
        assert o == expect


# A model large enough that a team of two splits its work.
BIG = dict(kind="lstm", B=3, hidden=64, text=TEXT * 3, train={"threads": 2})


def together_and_in_turn(K):
    """Two trainers of BIG after K iterations in one call: the first on a team of two
    threads running side by side, the second on the same team's two threads run one
    after the other; and the losses of each."""
    from fastrnn.kernels import entries
    from fastrnn.kernels.team import Call, Team, flag_count
    together, in_turn = make(**BIG), make(**BIG)
    a, b = np.empty(K), np.empty(K)
    Call(entries.train, together.train_call(a).args, 2)()
    args = in_turn.train_call(b).args
    flags = np.zeros(flag_count(2), np.int64)
    for me in (0, 1):
        entries.train(*args, Team(flags, me, 2))
    return together, a, in_turn, b


def test_a_team_reads_the_paragraphs_when_its_threads_run_one_after_the_other():
    """Every thread of a team takes the window's steps from the one that read the
    paragraphs, so the call completes, with the same bits, even when its two threads
    run in turn."""
    together, a, in_turn, b = together_and_in_turn(25)
    assert np.array_equal(a, b)
    assert all(np.array_equal(v, in_turn.params()[k]) for k, v in together.params().items())


def test_a_late_thread_counts_each_windows_own_steps():
    """A thread that comes to a call after its partner has done all of it (the pool ran
    them in turn) still counts each window's own steps (kernels.paragraphs: Paragraphs
    .steps). Before, every thread read the steps of the newest window, so with the last
    window of the call the longest, the late thread counted items past the call's and
    ran them again; under load the same happened between two windows."""
    probe = make(**BIG)
    probe.train_call(np.empty(40))()  # (one call: train_iters may slice it)
    steps = probe.run.data.steps[:40]
    assert steps.min() >= 1 and steps.max() == T
    K = next(k for k in range(2, 41) if steps[k - 1] > steps[:k - 1].min())
    together, a, in_turn, b = together_and_in_turn(K)
    assert np.array_equal(in_turn.run.data.steps[:K], steps[:K])
    assert np.array_equal(a, b)
    assert all(np.array_equal(v, in_turn.params()[k]) for k, v in together.params().items())


def test_validation_reads_each_paragraph_from_a_zero_state():
    """evaluate() against a numpy forward pass over each held-out paragraph, its first
    character given and not scored, the loss per scored character."""
    t = make(data={"val_fraction": 0.45})
    rs = np.random.RandomState(0)
    t.set_params({k: rs.randn(*v.shape) * 0.5 for k, v in t.params().items()})
    p = t.params()
    s, ids = t.corpus.starts["val"], t.corpus.val
    assert len(s) > 2  # more than one paragraph
    total, count = 0.0, 0
    for k in range(len(s) - 1):
        h = np.zeros(5)
        par = ids[s[k]:s[k + 1]]
        for a, b in zip(par[:-1], par[1:]):
            h = np.tanh(p["Wxh.0"][:, a] + p["Whh.0"] @ h + p["bh.0"])
            y = p["Why"] @ h + p["by"]
            total -= y[b] - np.log(np.sum(np.exp(y)))
            count += 1
    assert count == len(ids) - (len(s) - 1)
    assert t.evaluate() == pytest.approx(total / count, rel=1e-12)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(TEXT * 4, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "data:\n  path: text.txt\n  records: paragraphs\n  val_fraction: 0.2\n"
        "model:\n  hidden: 16\n"
        "train:\n  seq_length: 8\n  max_iters: 200\n  dtype: float64\n"
        "  log_every: 50\n  eval_every: 100\n  sample_every: 100\n"
        "  sample_length: 60\n  checkpoint_every: 100\n")
    return tmp_path


def test_resume_is_bit_exact_and_the_checkpoint_is_checked(workdir, capsys):
    assert run_main(["tiny.yaml", "train.max_iters=100", "train.out_dir=a"]) == 0
    assert run_main(["tiny.yaml", "train.out_dir=a", "train.resume=true"]) == 0
    assert run_main(["tiny.yaml", "train.out_dir=b"]) == 0
    out = capsys.readouterr().out
    assert "paragraphs (each with its blank line)" in out
    a, b = fastrnn.load("a"), fastrnn.load("b")
    assert a.iteration == b.iteration == 200
    for k, v in a.state_dict().items():
        assert np.array_equal(v, b.state_dict()[k]), k
    assert (workdir / "a" / "samples.txt").read_text() == \
        (workdir / "b" / "samples.txt").read_text()
    # a sample during training is a paragraph: a first character, then to its end
    sample = (workdir / "b" / "samples.txt").read_text().split("----\n")[1]
    assert "\n\n" not in sample.rstrip("\n")
    # the places in the paragraphs are checked against the text's paragraphs
    arrays = dict(np.load("a/latest.npz"))
    P = len(arrays["order"])
    for key, value, says in [("order", np.arange(P)[::-1] * 0, "not an order"),
                             ("order", np.arange(P + 1), "not an order"),
                             ("at", np.full_like(arrays["at"], P), "at holds"),
                             ("window", np.array([P + 1, 0, 0]), "window"),
                             ("order", np.zeros((1, P), np.int64), "order must be a 1-d"),
                             ("shuffle_rng", np.zeros(1, np.int64), "shuffle_rng must be")]:
        np.savez("bad.npz", **{**arrays, key: value})
        with pytest.raises(fastrnn.UserError, match=says) as e:
            fastrnn.load("bad.npz")
        assert "bad.npz" in str(e.value) and "\n" not in str(e.value)
    np.savez("bad.npz", **{k: v for k, v in arrays.items() if k != "at"})
    with pytest.raises(fastrnn.UserError, match="at is missing"):
        fastrnn.load("bad.npz", data=False)
    # a run in paragraphs is not resumed as a stream, nor the other way
    capsys.readouterr()
    assert run_main(["tiny.yaml", "train.out_dir=a", "train.resume=true",
                     "data.records=stream", "train.max_iters=300"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.records=paragraphs, the config says stream" in err[0]


def test_sampling_ends_at_the_end_of_a_paragraph(tmp_path, capsys):
    t = make(hidden=16, text="Hello there.\n\nHello again.\n\n",
             optim={"name": "adagrad", "lr": 0.1})
    t.train_iters(400)
    assert t.train_iters(20).mean() < 0.15  # it knows both by heart (but for t or a)
    full = fastrnn.sample(t, prime="Hello t", length=40, temperature=0)
    assert full.startswith("Hello there.\n\n") and len(full) == 47
    one = fastrnn.sample(t, prime="Hello t", length=40, temperature=0, paragraph=True)
    assert one == "Hello there.\n"
    assert fastrnn.sample(t, prime="Hello t", length=40, beam=2, paragraph=True) == one
    assert fastrnn.sample(t, prime="Hello there.\n", length=40, paragraph=True,
                          temperature=0) == "Hello there.\n"  # a blank line at once
    path = tmp_path / "ckpt.npz"
    t.save(path)
    capsys.readouterr()
    assert sample_main([str(path), "--prime", "Hello a", "--paragraph",
                        "--temperature", "0", "--num-samples", "2"]) == 0
    assert capsys.readouterr().out == ("---- sample 1 ----\nHello again.\n\n"
                                       "---- sample 2 ----\nHello again.\n\n")


@pytest.mark.parametrize("args,says", [
    (["data.records=lines"], "data.records must be one of stream, paragraphs, got 'lines'"),
    (["data.path=flat.txt"], "no blank line between paragraphs"),
    (["data.path=short.txt"], "every paragraph of the text is shorter than 2 characters"),
    (["data.val_fraction=0.01"], "no paragraph for validation"),
    (["data.path=late.txt", "data.val_fraction=0.5"], "leave no paragraph to train on"),
])
def test_bad_input_is_one_line_and_exit_2(workdir, capsys, args, says):
    (workdir / "flat.txt").write_text("one line\nanother line\n" * 20)
    (workdir / "short.txt").write_text("a\n\nb\n\n\nc\n \nd\n")
    (workdir / "late.txt").write_text("\n" * 50 + "ab\n\ncd\n")  # starts in the val split
    assert run_main(["tiny.yaml", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "Traceback" not in err[0], err
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("starts", [[1, 5, 12], [0, 5, 11], [0, 5, 5, 12], [0, 7, 5, 12]])
def test_a_loss_refuses_paragraph_starts_that_do_not_cut_the_ids(starts):
    t = make()
    ids = np.arange(12, dtype=np.int32) % len(t.vocab)
    with pytest.raises(fastrnn.errors.UserError, match="paragraph starts must rise"):
        t.loss_of(ids, 1, np.array(starts))
