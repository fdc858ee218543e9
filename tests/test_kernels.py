"""Every kernel against a slow numpy reference, and the gradients against finite
differences."""
import numba
import numpy as np
import pytest

from conftest import SMALL_TEXT, check_finite_differences, tiny_config
from fastrnn import Trainer
from fastrnn import reference as ref
from fastrnn.kernels import activations, optim, output, products, simd
from teams import needs_two, path
import teams


def loss_and_grads(trainer, xs, exact):
    trainer.model.exact = exact
    return trainer.gradients(xs)


def windows(trainer):
    T = trainer.config.train.seq_length
    return np.ascontiguousarray(trainer.run.data[:, :T + 1].T)


@pytest.mark.parametrize("layers,batch,exact", [(1, 1, True), (1, 1, False), (2, 1, True),
                                                (2, 3, False), (3, 2, True)])
def test_gradients_match_finite_differences(layers, batch, exact):
    t = Trainer(tiny_config(model={"hidden": 5, "layers": layers},
                            train={"seq_length": 4, "batch_size": batch}), text=SMALL_TEXT)
    # larger weights than the 0.01 init, so that every term matters
    rs = np.random.RandomState(3)
    t.set_params({k: rs.randn(*v.shape) * 0.5 for k, v in t.params().items()})
    t.model.exact = exact
    check_finite_differences(t, windows(t))


@pytest.mark.parametrize("exact", [True, False])
def test_gradients_match_min_char_rnn_loss_fun(exact):
    t = Trainer(tiny_config(model={"hidden": 7}, train={"seq_length": 9}), text=SMALL_TEXT)
    rs = np.random.RandomState(5)
    t.set_params({k: rs.randn(*v.shape) * 0.3 for k, v in t.params().items()})
    xs = windows(t)
    loss, grads = loss_and_grads(t, xs, exact)
    p = t.params()
    params = dict(Wxh=p["Wxh.0"], Whh=p["Whh.0"], Why=p["Why"], bh=p["bh.0"][:, None],
                  by=p["by"][:, None])
    H = p["Whh.0"].shape[0]
    ref_loss, ref_grads, _ = ref.loss_fun(list(xs[:-1, 0]), list(xs[1:, 0]),
                                          np.zeros((H, 1)), params, clip=np.inf)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    names = dict(Wxh="Wxh.0", Whh="Whh.0", Why="Why", bh="bh.0", by="by")
    for k, v in names.items():
        np.testing.assert_allclose(grads[v], ref_grads[k].reshape(grads[v].shape),
                                   rtol=1e-10, atol=1e-14, err_msg=k)


def test_float32_tanh_is_close_and_keeps_nan():
    x = np.concatenate([np.linspace(-20, 20, 400001), np.geomspace(1e-30, 1e-2, 1000),
                        -np.geomspace(1e-30, 1e-2, 1000)]).astype(np.float32)
    out = np.empty_like(x)
    _tanh_all(x, out)
    exact = np.tanh(x.astype(np.float64))
    # (scripts/fit_tanh.py: the fit's own check finds 3.4e-7)
    assert np.max(np.abs(out - exact) / np.maximum(np.abs(exact), 1e-30)) < 4e-7
    assert (np.abs(out) <= 1).all()
    nan = np.array([np.nan, np.inf, -np.inf], np.float32)
    _tanh_all(nan, out[:3])
    assert np.isnan(out[0]) and out[1] == 1 and out[2] == -1


from fastrnn.kernels.jit import jit  # noqa: E402


@jit
def _tanh_all(x, out):
    for i in range(x.size):
        out[i] = activations.tanh(x[i])


def test_pairwise_sum_is_numpys_to_the_bit():
    rs = np.random.RandomState(0)
    for n in list(range(1, 140)) + [255, 256, 1000, 4099]:
        for dtype in (np.float64, np.float32):
            a = np.exp(rs.randn(n) * 3).astype(dtype)
            assert output.pairwise_sum(a, n) == np.sum(a), (n, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_and_tiny_logits(dtype):
    for logits in ([1e4, 0.0, -1e4], [-1e4, -1e4 - 5, -1e4 - 200], [0.0, 3000.0, -50.0]):
        y = np.array(logits, dtype)
        loss = output.softmax_xent(y, 2, 1.0)
        assert np.isfinite(loss) and np.all(np.isfinite(y))
        shifted = np.array(logits, np.float64) - max(logits)
        expected = -(shifted[2] - np.log(np.sum(np.exp(shifted))))
        assert loss == pytest.approx(expected, rel=1e-5)
        assert y.sum() == pytest.approx(0.0, abs=1e-5)  # probabilities minus one-hot


def test_softmax_gradient_is_probabilities_minus_onehot():
    y = np.array([0.5, -1.0, 2.0, 0.0])
    p = np.exp(y) / np.sum(np.exp(y))
    loss = output.softmax_xent(y, 1, 0.5)
    assert loss == pytest.approx(-np.log(p[1]), rel=1e-14)
    np.testing.assert_allclose(y, (p - np.eye(4)[1]) * 0.5, rtol=1e-14)


def test_adagrad_update_clips_and_matches_min_char_rnn():
    rs = np.random.RandomState(1)
    theta = rs.randn(50)
    grad = rs.randn(50) * 10
    mem = np.abs(rs.randn(50))
    t2, g2, m2 = theta.copy(), np.clip(grad, -5, 5), mem.copy()
    m2 += g2 * g2
    t2 += -0.1 * g2 / np.sqrt(m2 + 1e-8)
    optim.adagrad_update(theta, grad, mem, 0.1, 5.0, 1e-8)
    assert np.array_equal(theta, t2) and np.array_equal(mem, m2)
    nan = np.array([np.nan])
    optim.adagrad_update(np.zeros(1), nan, np.zeros(1), 0.1, 5.0, 1e-8)
    assert np.isnan(nan[0])  # clipping must not turn a NaN into a number


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=needs_two)])
def test_outer_sum_matmuls_and_row_sums_match_numpy(exact, threads):
    rs = np.random.RandomState(2)  # (big enough to be split between threads)
    dY, X, W = rs.randn(1700, 80), rs.randn(1700, 40), rs.randn(80, 40)
    part = np.full((2, 90, 40), np.nan)  # scratch: must be written before it is read
    dW = np.full((80, 40), np.nan)
    out, out2, sums = np.empty((1700, 80)), np.empty((1700, 40)), np.full(80, np.nan)
    teams.run(teams.product_pieces, threads, dW, dY, X, part, out, W, out2, sums,
              path(exact))
    np.testing.assert_allclose(dW, dY.T @ X, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out, X @ W.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out2, dY @ W, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sums, dY.sum(axis=0), rtol=1e-10, atol=1e-10)


def test_embedding_backward_matches_numpy_on_every_split():
    """The one-hot input's gradient: dWemb a scatter-add of the rows by character,
    dbias their sum. dWemb has the same bits whichever way the threads split it; the
    exact dbias is row_sum_rev's to the bit."""
    rs = np.random.RandomState(6)
    T, B, V, GH = 40, 40, 7, 96  # (big enough to be split between threads)
    d, x = rs.randn(T, B, GH), rs.randint(0, V, (T, B)).astype(np.int32)
    x[x == 3] = 4  # a character that never occurs keeps a zero row
    want = np.zeros((V, GH))
    np.add.at(want, x.reshape(-1), d.reshape(-1, GH))
    sums = np.empty(GH)
    products.row_sum_rev_slice(sums, d.reshape(-1, GH))
    results = []
    for exact in (True, False):
        for threads in (1, 2) if numba.config.NUMBA_NUM_THREADS > 1 else (1,):
            dWemb, dbias = np.full((V, GH), np.nan), np.full(GH, np.nan)
            teams.run(teams.embedding_backward, threads, dWemb, dbias, d, x, T, path(exact))
            np.testing.assert_allclose(dWemb, want, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(dbias, d.sum(axis=(0, 1)), rtol=1e-12, atol=1e-12)
            if exact:
                assert np.array_equal(dbias, sums)
            results.append(dWemb)
    for other in results[1:]:
        assert np.array_equal(other, results[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M,N", [(100, 100), (65, 100), (7, 3), (13, 21), (64, 512)])
def test_exact_outer_sum_is_min_char_rnns_loop_to_the_bit(M, N, dtype):
    """The register-blocked tiles (whole, part and scalar remainders) against the
    loop `dW += np.dot(dy, x.T)` over reversed time, also on strided views."""
    rs = np.random.RandomState(M * N)
    dY, X = rs.randn(25, M + 3).astype(dtype), rs.randn(25, N).astype(dtype)
    dY[3, 2] = -0.0  # inside the view
    want = np.zeros((M, N), dtype)
    for r in range(24, -1, -1):
        want += np.dot(dY[r, 2:M + 2, None], X[r, None, :])
    dW = np.full((M, N + 5), np.nan, dtype)
    simd.outer_sum_exact(dW[:, :N], dY[:, 2:M + 2], X)
    assert np.array_equal(dW[:, :N], want)
    assert np.isnan(dW[:, N:]).all()  # nothing written outside the view
    dW[:, :N] = np.nan  # the same sum in two parts, the later rows first
    simd.outer_sum_exact(dW[:, :N], dY[9:, 2:M + 2], X[9:])
    simd.outer_sum_exact_more(dW[:, :N], dY[:9, 2:M + 2], X[:9])
    assert np.array_equal(dW[:, :N], want)


@needs_two
def test_exact_pieces_do_not_depend_on_the_thread_count():
    """The exact path's outer sums and row sums split columns or rows of the result
    between threads, never a sum, so every element is the same with 1 or 2 threads."""
    rs = np.random.RandomState(5)
    dY, X, W = rs.randn(2000, 70), rs.randn(2000, 33), rs.randn(70, 33)
    h, Whh, d = rs.randn(1, 512), rs.randn(512, 512), rs.randn(1, 512)
    results = []
    for threads in (1, 2):
        dW, sums = np.empty((70, 33)), np.empty(70)
        out, out2 = np.empty((2000, 70)), np.empty((2000, 33))
        teams.run(teams.product_pieces, threads, dW, dY, X, np.empty((2, 70, 33)), out, W,
                  out2, sums, path(True))
        step_out, step_outT = np.empty((1, 512)), np.empty((1, 512))
        teams.run(teams.step_products, threads, np.empty(0), Whh, h, step_out, np.empty(0),
                  d, step_outT, np.empty((2, 512)), path(True))
        results.append((dW, sums, out, out2, step_out, step_outT))
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    assert np.array_equal(results[1][4][0], Whh @ h[0])  # min-char-rnn's np.dot(Whh, h)


def test_float32_training_learns_and_stays_finite():
    t = Trainer(tiny_config(model={"hidden": 32}, train={"dtype": "float32",
                                                         "seq_length": 10}),
                text=SMALL_TEXT)
    losses = t.train_iters(3000)
    assert np.all(np.isfinite(losses))
    assert losses[-100:].mean() < 0.5 * losses[:100].mean()
