"""GRU, LSTM and stacked RNNs: gradients against the numpy reference and finite
differences; optimizers; dropout; PyTorch's equations."""
import numpy as np
import pytest

from conftest import SMALL_TEXT, check_finite_differences, tiny_config
from fastrnn import Trainer
from fastrnn.kernels import optim
from fastrnn.reference import model_loss_grads
import teams
from teams import needs_two


def make(kind, layers=1, batch=1, hidden=5, seq=6, **extra):
    cfg = tiny_config(model={"kind": kind, "hidden": hidden, "layers": layers},
                      train={"seq_length": seq, "batch_size": batch})
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    t = Trainer(cfg, text=SMALL_TEXT)
    rs = np.random.RandomState(11)
    t.set_params({k: rs.randn(*v.shape) * 0.4 for k, v in t.params().items()})
    return t


def window(t):
    T = t.config.train.seq_length
    return np.ascontiguousarray(t.run.data[:, :T + 1].T)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers,batch", [(1, 1), (2, 3)])
def test_gradients_match_the_numpy_reference(kind, layers, batch):
    t = make(kind, layers, batch)
    t.model.exact = False  # the matrix-product path, which every family uses
    xs = window(t)
    loss, grads = t.gradients(xs)
    ref_loss, ref_grads = model_loss_grads(kind, t.params(), xs)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert grads.keys() == ref_grads.keys()
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-8, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradients_match_finite_differences(kind, dropout):
    t = make(kind, layers=2, batch=2, model={"dropout": dropout})
    if dropout:
        from fastrnn.kernels.dropout import dropout_masks
        dropout_masks(t.buf.masks, t.run.rng, dropout)
        assert 0 < (t.buf.masks == 0).mean() < 1
    check_finite_differences(t, window(t), per_param=5)


def test_every_family_follows_pytorch():
    """The loss and every gradient of fastrnn's rnn, gru and lstm against PyTorch's
    nn.RNN (tanh), nn.GRU and nn.LSTM with the same weights, through autograd."""
    torch = pytest.importorskip("torch")
    for kind, cls in (("rnn", torch.nn.RNN), ("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)):
        t = make(kind, layers=2, batch=3, hidden=6)
        p = t.params()
        V = len(t.vocab)
        net = cls(V, 6, num_layers=2).double()
        bias = "bh" if kind == "rnn" else "bxh"
        with torch.no_grad():
            for l in range(2):
                getattr(net, f"weight_ih_l{l}").copy_(torch.from_numpy(p[f"Wxh.{l}"]))
                getattr(net, f"weight_hh_l{l}").copy_(torch.from_numpy(p[f"Whh.{l}"]))
                getattr(net, f"bias_ih_l{l}").copy_(torch.from_numpy(p[f"{bias}.{l}"]))
                getattr(net, f"bias_hh_l{l}").copy_(
                    torch.zeros(6, dtype=torch.float64) if kind == "rnn"
                    else torch.from_numpy(p[f"bhh.{l}"]))
        Why = torch.from_numpy(p["Why"]).requires_grad_()
        by = torch.from_numpy(p["by"]).requires_grad_()
        xs = window(t)
        onehot = torch.nn.functional.one_hot(torch.from_numpy(xs[:-1]).long(), V).double()
        out, _ = net(onehot)
        logits = out @ Why.T + by
        tloss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(xs[1:]).long().reshape(-1),
            reduction="sum") / 3
        tloss.backward()
        loss, grads = t.gradients(xs)
        assert loss == pytest.approx(tloss.item(), rel=1e-10), kind
        want = {"Why": Why.grad, "by": by.grad}
        for l in range(2):
            want[f"Wxh.{l}"] = getattr(net, f"weight_ih_l{l}").grad
            want[f"Whh.{l}"] = getattr(net, f"weight_hh_l{l}").grad
            want[f"{bias}.{l}"] = getattr(net, f"bias_ih_l{l}").grad
            if kind != "rnn":
                want[f"bhh.{l}"] = getattr(net, f"bias_hh_l{l}").grad
        assert want.keys() == grads.keys()
        for name, g in want.items():
            np.testing.assert_allclose(grads[name], g.numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{kind} {name}")


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("optim", ["adagrad", "rmsprop", "adam", "sgd"])
def test_every_family_learns_with_every_optimizer(kind, optim):
    lr = {"adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01,
          "sgd": 0.02 if kind == "rnn" else 0.1}[optim]
    cfg = tiny_config(model={"kind": kind, "hidden": 24},
                      optim={"name": optim, "lr": lr},
                      train={"seq_length": 12, "dtype": "float32"})
    t = Trainer(cfg, text=SMALL_TEXT)
    losses = t.train_iters(600)
    assert np.all(np.isfinite(losses))
    assert losses[-50:].mean() < 0.75 * losses[:50].mean(), (kind, optim)


def flat_net(theta, grad, memory):
    from fastrnn.kernels.records import Net
    return Net(None, None, theta, grad, memory)


def test_optimizer_updates_match_their_formulas():
    rs = np.random.RandomState(3)
    g0 = rs.randn(5000) * 3  # long enough to be split between two threads
    for kind, threads in zip(range(4), (1, 2, 1, 2)):
        name = ("adagrad", "rmsprop", "adam", "sgd")[kind]
        hyper = optim.settings(lr=0.01, clip=2.0, decay_every=10, optimizer=name)
        theta, state = rs.randn(5000), np.abs(rs.randn(2, 5000))
        th, st, g = theta.copy(), state.copy(), np.clip(g0, -2, 2)
        if kind == 0:
            st[0] += g * g
            th += -0.01 * g / np.sqrt(st[0] + 1e-8)
        elif kind == 1:
            st[0] = 0.999 * st[0] + 0.001 * g * g
            th -= 0.01 * g / (np.sqrt(st[0]) + 1e-8)
        elif kind == 2:  # iteration n = 4: the fifth update
            st[0] = 0.9 * st[0] + 0.1 * g
            st[1] = 0.999 * st[1] + 0.001 * g * g
            th -= 0.01 * (st[0] / (1 - 0.9 ** 5)) / (np.sqrt(st[1] / (1 - 0.999 ** 5)) + 1e-8)
        else:
            th -= 0.01 * g
        teams.run(teams.optimizer_step, threads, flat_net(theta, g0.copy(), state), hyper, 4,
                  np.zeros(2), (0, 0, 0))
        np.testing.assert_allclose(theta, th, rtol=1e-12, err_msg=str(kind))
        np.testing.assert_allclose(state, st, rtol=1e-12, err_msg=str(kind))


def test_global_norm_clipping_and_lr_decay():
    g = np.repeat([3.0, 4.0], 2000) / np.sqrt(2000)  # norm 5
    theta = np.zeros(4000)
    hyper = optim.settings(lr=1.0, clip_norm=1.0, lr_decay=0.5, decay_every=10,
                           optimizer="sgd")
    teams.run(teams.optimizer_step, 2, flat_net(theta, g, np.zeros((2, 4000))), hyper, 25,
              np.zeros(2), (0, 0, 0))  # lr 1 * 0.5 ** 2
    expect = np.repeat([-0.25 * 0.6, -0.25 * 0.8], 2000) / np.sqrt(2000)
    np.testing.assert_allclose(theta, expect)


def test_lstm_state_carries_and_resets_at_the_wrap():
    t = make("lstm", hidden=4, seq=10, train={"dtype": "float32"})
    S = t.run.data.shape[1]
    wrap = next(n for n in range(1, S) if n * 10 + 11 >= S)  # iteration that resets
    t.train_iters(wrap)
    assert np.any(t.buf.cs[:, 0] != 0) and np.any(t.buf.hs[:, 0] != 0)
    fresh = make("lstm", hidden=4, seq=10, train={"dtype": "float32"})
    fresh.set_params(t.params())
    # the wrap iteration starts from zero states at the start of the text, exactly as a
    # new trainer's first iteration does
    assert t.train_iters(1)[0] == fresh.train_iters(1)[0]
    assert int(t.cursor[0]) == 10


def test_bad_family_input():
    with pytest.raises(ValueError, match="model.kind must be one of"):
        Trainer(tiny_config(model={"kind": "transformer"}), text=SMALL_TEXT)
    with pytest.raises(ValueError, match="model.dropout must be less than 1"):
        Trainer(tiny_config(model={"dropout": 1.0}), text=SMALL_TEXT)
    with pytest.raises(ValueError, match="optim.clip_norm must be greater than 0"):
        Trainer(tiny_config(optim={"clip_norm": 0}), text=SMALL_TEXT)
    with pytest.raises(ValueError, match="optim.name must be one of"):
        Trainer(tiny_config(optim={"name": "lbfgs"}), text=SMALL_TEXT)
    t = Trainer(tiny_config(model={"kind": "gru"}), text=SMALL_TEXT)
    with pytest.raises(ValueError, match="bh.0"):
        t.set_params({"bh.0": np.zeros(8)})  # a vanilla RNN's name on a GRU


@needs_two
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_thread_counts_differ_only_by_rounding(kind):
    """The team kernels on one thread and on two. A team of one takes every phase as
    one item, as the one-thread kernels (kernels.team's Solo) do, so it has their
    arithmetic; the team's own kernels are the ones the other tests of two threads
    compile (Solo's are the gradient tests')."""
    from fastrnn.kernels import entries
    from fastrnn.kernels.team import Team, flag_count
    runs = []
    for threads in (1, 2):
        # big enough that every piece is split between the threads
        t = make(kind, batch=16, hidden=96, seq=8, train={"threads": 2})
        call = t.train_call(np.empty(30))
        if threads == 1:
            entries.train(*call.args, Team(np.zeros(flag_count(1), np.int64), 0, 1))
        else:
            call()
        runs.append(t.params())
    for k in runs[0]:
        np.testing.assert_allclose(runs[0][k], runs[1][k], rtol=1e-9, atol=1e-12, err_msg=k)
