"""The step products of a batch over packed weights (fastrnn.kernels.step, panels) against
numpy: every tail of streams and panel columns, both orientations, both dtypes, and
the same bits on one thread or two."""
import numba
import numpy as np
import pytest

import teams
from fastrnn.kernels import panels
from teams import needs_two, path

# thread counts to compare: 1 and 2, or 1 alone where there is one thread
THREADS = (1, 2) if numba.config.NUMBA_NUM_THREADS > 1 else (1,)


def packed_reference(W, transposed):
    """pack_weights' layout in numpy: W's output columns padded with zeros to whole
    panels of C, each panel stored k by k."""
    A = W if transposed else W.T  # (K, R): column c holds output c's weights
    K, R = A.shape
    C = panels.panel_width(np.empty(0, W.dtype))
    count = -(-R // C)
    padded = np.zeros((K, count * C), W.dtype)
    padded[:, :R] = A
    return padded.reshape(K, count, C).transpose(1, 0, 2).reshape(-1)


def packed(W, transposed, threads):
    R = W.shape[1] if transposed else W.shape[0]
    K = W.size // R
    P = np.full(panels.packed_size(R, K, W) + 7, np.nan, W.dtype)
    used = np.zeros(1, np.int64)
    teams.run(teams.pack_weights, threads, P, W, transposed, used)
    assert used[0] == panels.packed_size(R, K, W)
    assert np.isnan(P[used[0]:]).all()  # nothing written past the panels
    return P[:used[0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_packing_is_the_panel_layout(dtype, transposed):
    rs = np.random.RandomState(0)
    W = rs.randn(70, 53).astype(dtype)  # no multiple of any panel width
    for threads in THREADS:
        assert np.array_equal(packed(W, transposed, threads), packed_reference(W, transposed))


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("B", [2, 3, 5, 8, 13, 32, 50])
@pytest.mark.parametrize("R,K", [(200, 64), (64, 200), (48, 16), (7, 9)])
def test_packed_products_match_numpy(dtype, rtol, B, R, K):
    """out = X @ W.T and X @ W for streams in whole tiles and every remainder, into a
    view of a larger array, which keeps what lies outside the view."""
    rs = np.random.RandomState(B * R + K)
    X = rs.randn(B, K).astype(dtype)
    W = rs.randn(R, K).astype(dtype)
    WT = np.ascontiguousarray(W.T)
    want = X.astype(np.float64) @ W.T.astype(np.float64)
    results = []
    for threads in THREADS:
        for Wp in (packed(W, False, threads), packed(WT, True, threads)):
            big = np.full((B + 1, R + 3), np.nan, dtype)
            out = big[:B, 1:R + 1]
            teams.run(teams.packed_product, threads, out, X, Wp, threads)
            np.testing.assert_allclose(out, want, rtol=rtol, atol=rtol * np.abs(want).max())
            inside = np.zeros(big.shape, bool)
            inside[:B, 1:R + 1] = True
            assert np.isnan(big[~inside]).all()
            results.append(out.copy())
    for other in results[1:]:  # each element summed by one thread, in the same order
        assert np.array_equal(other, results[0])


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=needs_two)])
def test_step_products_match_numpy(threads):
    """step_matmul and step_matmul_t on every path: packed for a batch, gemvs for one
    stream and for the exact path; sizes big enough to be split between threads."""
    rs = np.random.RandomState(4)
    h, W, d = rs.randn(16, 96), rs.randn(4 * 96, 96), rs.randn(16, 4 * 96)
    for B, exact in ((16, False), (16, True), (1, False), (1, True)):
        packs = np.full(panels.packed_size(4 * 96, 96, W), np.nan)
        packsT = np.full(panels.packed_size(96, 4 * 96, W), np.nan)
        out, outT = np.full((B, 4 * 96), np.nan), np.full((B, 96), np.nan)
        teams.run(teams.step_products, threads, packs, W, h[:B], out, packsT, d[:B], outT,
                  np.full((2, 96), np.nan), path(exact, B))
        assert np.isnan(packs).all() == (exact or B == 1)  # packed on the Batched path
        np.testing.assert_allclose(out, h[:B] @ W.T, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(outT, d[:B] @ W, rtol=1e-10, atol=1e-10)
        if exact or B == 1:
            for r in range(B):  # min-char-rnn's np.dot(Whh, h), to the bit
                assert np.array_equal(out[r], np.dot(W, h[r]))
