"""train.precision: bf16. The rounding to bf16 against numpy's; every product of the
Mixed path against a float64 product of the rounded operands (and not the float32
product of the unrounded ones); the same bits on one thread or two; gradients of every
family against the float64 reference and finite differences at bf16's tolerance; a
small model learning as well as in float32; and the config, resume and CPU checks."""
import numpy as np
import pytest

from conftest import SMALL_TEXT, tiny_config
from fastrnn import Trainer
from fastrnn.errors import UserError
from fastrnn.kernels import bfloat
from fastrnn.kernels.bfloat import BF16, rounded
from fastrnn.kernels.jit import jit
from fastrnn.kernels.panels import mixed_sizes
from fastrnn.kernels.records import Mixed
from fastrnn.reference import model_loss_grads
import hostile
import teams
from teams import needs_two

needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no AVX512_BF16")


def test_rounding_is_to_nearest_even_like_numpy_reference():
    """bfloat.bf16 (in the kernels) against bfloat.rounded (numpy) on ties, NaN, inf,
    subnormals and random values; and rounded against exact arithmetic on ties."""
    @jit
    def convert(out, x):
        for i in range(x.size):
            out[i] = bfloat.bf16(x[i])

    ties = np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x3F80C000, 0x3F807FFF],
                    np.uint32).view(np.float32)
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-45,
                        3.4e38], np.float32)
    x = np.concatenate([ties, special, np.random.RandomState(0).randn(1000).astype(
        np.float32) * 10.0 ** np.random.RandomState(1).randint(-30, 30, 1000)])
    x = x.astype(np.float32)
    out = np.zeros(x.size, np.uint32)
    convert(out, x)
    back = (out << 16).view(np.float32)
    want = rounded(x)
    same = (back.view(np.uint32) == want.view(np.uint32)) | (np.isnan(back) & np.isnan(want))
    assert same.all(), x[~same]
    # ties: 1 + 2^-8 (halfway) goes to 1 (even), 1 + 3*2^-8 to 1 + 2^-6 (even), and a
    # value just below halfway down; NaN stays NaN, inf stays inf
    assert list(want[:5]) == [1.0, 1.015625, -1.0, 1.0078125, 1.0]
    assert np.isnan(want[5:7]).all() and list(want[7:9]) == [np.inf, -np.inf]


def mixed_path(R, M, N):
    a, w = mixed_sizes(max(M, N), max(M, N), 1, R, 1, True)
    return Mixed(np.zeros(a, np.uint32), np.zeros(w, np.uint32))


def close_to_rounded(got, A, B, what):
    """got agrees with A @ B over bf16-rounded operands to float32 accumulation error,
    and not with the float32 product of the operands as they are."""
    Ar, Br = rounded(A).astype(np.float64), rounded(B).astype(np.float64)
    ref, scale = Ar @ Br, np.abs(Ar) @ np.abs(Br)
    err = np.abs(got - ref)
    assert (err <= 2e-6 * scale + 1e-30).all(), (what, float((err / scale).max()))
    unrounded = np.abs(got - A.astype(np.float64) @ B.astype(np.float64)).max()
    assert unrounded > 100 * err.max(), (what, "the operands were not rounded to bf16")


@needs_bf16
@pytest.mark.parametrize("R,M,N", [(1, 1, 1), (9, 47, 3), (17, 65, 33), (40, 130, 97)])
def test_mixed_products_are_bf16_operands_summed_in_float32(R, M, N):
    """matmul_rows, matmul_rows_t and outer_sum on the Mixed path, with odd sizes: every
    tail of streams, panel columns and pairs."""
    rs = np.random.RandomState(R + M + N)
    X, W, dY = (rs.randn(*s).astype(np.float32) for s in ((R, N), (M, N), (R, M)))
    dW, out, out2 = np.zeros((M, N), np.float32), np.zeros((R, M), np.float32), \
        np.zeros((R, N), np.float32)
    sums, part = np.zeros(M, np.float32), np.zeros((2, M, N), np.float32)
    teams.run(teams.product_pieces, 1, dW, dY, X, part, out, W, out2, sums,
              mixed_path(R, M, N))
    close_to_rounded(out, X, W.T, "matmul_rows")
    close_to_rounded(out2, dY, W, "matmul_rows_t")
    close_to_rounded(dW, dY.T, X, "outer_sum")


@needs_bf16
@pytest.mark.parametrize("B,H", [(3, 17), (9, 64)])
def test_mixed_steps_are_bf16_operands_summed_in_float32(B, H):
    rs = np.random.RandomState(B * H)
    W = rs.randn(4 * H, H).astype(np.float32)
    h, d = rs.randn(B, H).astype(np.float32), rs.randn(B, 4 * H).astype(np.float32)
    out, outT = np.zeros((B, 4 * H), np.float32), np.zeros((B, H), np.float32)
    unused = np.zeros(1, np.float32)
    teams.run(teams.step_products, 1, unused, W, h, out, unused, d, outT,
              np.zeros((2, 4 * H), np.float32), mixed_path(B, 4 * H, H))
    close_to_rounded(out, h, W.T, "step_matmul")
    close_to_rounded(outT, d, W, "step_matmul_t")


@needs_bf16
@needs_two
def test_mixed_products_give_the_same_bits_on_two_threads():
    R, M, N = 64, 200, 96
    rs = np.random.RandomState(5)
    X, W, dY = (rs.randn(*s).astype(np.float32) for s in ((R, N), (M, N), (R, M)))
    results = []
    for threads in (1, 2):
        got = [np.zeros((M, N), np.float32), np.zeros((R, M), np.float32),
               np.zeros((R, N), np.float32)]
        teams.run(teams.product_pieces, threads, got[0], dY, X,
                  np.zeros((2, M, N), np.float32), got[1], W, got[2],
                  np.zeros(M, np.float32), mixed_path(R, M, N))
        results.append(got)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


def make(kind, precision, layers=2, batch=3, hidden=12):
    cfg = tiny_config(model={"kind": kind, "hidden": hidden, "layers": layers},
                      train={"seq_length": 6, "batch_size": batch, "dtype": "float32",
                             "precision": precision})
    t = Trainer(cfg, text=SMALL_TEXT)
    rs = np.random.RandomState(11)
    t.set_params({k: rs.randn(*v.shape) * 0.4 for k, v in t.params().items()})
    return t


def relative_errors(kind, precision):
    t = make(kind, precision)
    T = t.config.train.seq_length
    xs = np.ascontiguousarray(t.run.data[:, :T + 1].T)
    loss, grads = t.gradients(xs)
    ref_loss, ref = model_loss_grads(kind, t.params(), xs)
    errors = {k: np.linalg.norm(grads[k] - ref[k]) / np.linalg.norm(ref[k]) for k in ref}
    return abs(loss - ref_loss) / ref_loss, errors, t, xs, grads


@needs_bf16
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_bf16_gradients_match_the_float64_reference_at_bf16_tolerance(kind):
    """Each gradient within 2% of the float64 reference (norm of the difference over
    the norm), where float32 is within 1e-5: bf16 is what was run, and it is right."""
    loss16, err16, t, xs, grads = relative_errors(kind, "bf16")
    loss32, err32, *_ = relative_errors(kind, "float32")
    assert loss16 < 2e-3 and loss32 < 1e-6
    for k in err16:
        assert err16[k] < 2e-2, (k, err16[k])
        assert err32[k] < 1e-5, (k, err32[k])
    products = [k for k in err16 if k.startswith(("Whh", "Why", "Wxh.1"))]
    assert max(err16[k] for k in products) > 10 * max(err32[k] for k in products)
    # central differences of the float64 loss, at a few elements of every parameter
    rs = np.random.RandomState(0)
    params = t.params()
    for name, value in params.items():
        for i in rs.choice(value.size, size=min(value.size, 3), replace=False):
            step = np.zeros(value.size)
            step[i] = 1e-6
            plus = dict(params, **{name: value + step.reshape(value.shape)})
            minus = dict(params, **{name: value - step.reshape(value.shape)})
            numeric = (model_loss_grads(kind, plus, xs)[0]
                       - model_loss_grads(kind, minus, xs)[0]) / 2e-6
            scale = max(1.0, np.abs(grads[name]).max())
            assert abs(grads[name].ravel()[i] - numeric) <= 2e-2 * scale, (name, i)


@needs_bf16
def test_a_small_bf16_model_learns_as_well_as_float32():
    """GRU of hidden 64, 8 streams of 32, 300 iterations of Adam from the same seed:
    the mean loss of the last 50 iterations in bf16 within 0.03 nats of float32's."""
    text = SMALL_TEXT * 40
    means = {}
    for precision in ("float32", "bf16"):
        cfg = tiny_config(model={"kind": "gru", "hidden": 64},
                          train={"seq_length": 32, "batch_size": 8, "dtype": "float32",
                                 "precision": precision, "threads": 1},
                          optim={"name": "adam", "lr": 3e-3})
        losses = Trainer(cfg, text=text).train_iters(300)
        means[precision] = losses[-50:].mean()
    assert means["float32"] < 2.0  # (it learned: from ln(V) = 3.3)
    assert abs(means["bf16"] - means["float32"]) < 0.03, means


def test_bf16_needs_float32_parameters():
    with pytest.raises(UserError, match="train.precision=bf16 keeps float32"):
        Trainer(tiny_config(train={"precision": "bf16", "dtype": "float64"}),
                text=SMALL_TEXT)


def test_a_cpu_without_bf16_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    import fastrnn.trainer
    monkeypatch.setattr(fastrnn.trainer, "BF16", False)
    hostile.make_workdir(tmp_path, monkeypatch, "data:\n  path: text.txt\nmodel:\n  hidden: 8\n")
    line = hostile.check_refused("run", ["base.yaml", "train.precision=bf16",
                                         "train.max_iters=2"], tmp_path)
    assert "AVX512_BF16" in line and "train.precision=float32" in line
    assert not (tmp_path / "runs").exists()


@needs_bf16
def test_resuming_with_another_precision_is_refused(tmp_path, monkeypatch):
    # a GRU on one thread: the kernels the learning test above compiles
    hostile.make_workdir(tmp_path, monkeypatch, "data:\n  path: text.txt\nmodel:\n  kind: gru\n"
                         "  hidden: 8\ntrain:\n  batch_size: 2\n  seq_length: 6\n"
                         "  threads: 1\n  max_iters: 3\n"
                         "  checkpoint_every: 3\n  eval_every: 3\n  log_every: 3\n"
                         "  sample_every: 0\n  precision: bf16\n")
    code, _, err = hostile.invoke("run", ["base.yaml"])
    assert code == 0, err
    (tmp_path / "runs" / "base" / ".lock").unlink()  # (a refused command rewrites no lock)
    hostile.check_refused("run", ["base.yaml", "train.resume=true", "train.max_iters=6",
                                  "train.precision=float32"], tmp_path,
                          match="train.precision")


@needs_bf16
def test_the_compile_line_names_the_bf16_products():
    from fastrnn.compile import describe
    assert "gru float32 with bf16 products, 3 streams" in describe(make("gru", "bf16"), 1)
    assert "with bf16" not in describe(make("gru", "float32"), 1)
