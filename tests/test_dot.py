"""kernels.dot: np.dot's BLAS calls as intrinsics, compared with np.dot itself compiled by
Numba (the same BLAS, so the same bits), for every branch: empty, dot, both gemvs,
gemm, over C arrays and their transposes."""
import numba
import numpy as np
import pytest

from fastrnn.kernels.dot import gemm, gemv_cols, gemv_rows
from fastrnn.kernels.jit import jit


@numba.njit
def numba_dot(A, B, out):
    np.dot(A, B, out)


@jit
def gemm_nn(out, A, B):
    gemm(out, A, B)


@jit
def gemm_tn(out, A, B):
    gemm(out, A.T, B)  # A given as (K, M)


@jit
def gemm_nt(out, A, B):
    gemm(out, A, B.T)  # B given as (N, K)


@jit
def gemv_parts(out_r, out_c, W, Xr, Xc, i0, i1):
    gemv_rows(out_r, 1, W, i0, i1, Xr, 0)
    gemv_cols(out_c, 1, W, i0, i1, Xc, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", [(5, 7, 3), (1, 7, 3), (5, 7, 1), (1, 7, 1), (5, 0, 3),
                                   (0, 4, 3), (33, 64, 40)])
def test_gemm_is_np_dot(dtype, M, K, N):
    rs = np.random.RandomState(M * 100 + K * 10 + N)
    A = rs.randn(M, K).astype(dtype)
    B = rs.randn(K, N).astype(dtype)
    for fn, a, b, ref_a, ref_b in [(gemm_nn, A, B, A, B),
                                   (gemm_tn, np.ascontiguousarray(A.T), B, None, B),
                                   (gemm_nt, A, np.ascontiguousarray(B.T), A, None)]:
        ref_a = a.T if ref_a is None else ref_a
        ref_b = b.T if ref_b is None else ref_b
        want = np.full((M, N), np.nan, dtype)
        numba_dot(ref_a, ref_b, want)
        got = np.full((M, N), np.nan, dtype)  # (every element written, zeros when K is 0)
        fn(got, a, b)
        assert np.array_equal(got, want), fn
        if M and N:
            assert np.allclose(got, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)


def test_gemm_refuses_a_strided_operand():
    A = np.ones((4, 6))[:, ::2]  # neither C nor F
    with pytest.raises(numba.core.errors.TypingError):
        gemm_nn(np.empty((4, 5)), A, np.ones((3, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemv_parts_are_np_dot_on_views(dtype):
    """gemv_rows: out[1, i0:i1] = W[i0:i1] @ Xr[0]; gemv_cols: out[1] = W[i0:i1].T @
    Xc[0, i0:i1]; nothing else written."""
    rs = np.random.RandomState(1)
    W = rs.randn(40, 24).astype(dtype)
    Xr, Xc = rs.randn(1, 24).astype(dtype), rs.randn(1, 40).astype(dtype)
    for i0, i1 in [(0, 40), (8, 24), (3, 3)]:
        out_r, out_c = np.zeros((2, 40), dtype), np.zeros((2, 24), dtype)
        gemv_parts(out_r, out_c, W, Xr, Xc, i0, i1)
        want_r, want_c = np.zeros(i1 - i0, dtype), np.zeros(24, dtype)
        numba_dot(W[i0:i1], Xr[0], want_r)
        numba_dot(W[i0:i1].T, Xc[0, i0:i1], want_c)
        assert np.array_equal(out_r[1, i0:i1], want_r)
        assert not out_r[0].any() and not out_r[1, :i0].any() and not out_r[1, i1:].any()
        assert np.array_equal(out_c[1], want_c) and not out_c[0].any()
        if i1 > i0:
            assert np.allclose(want_c, W[i0:i1].T.astype(np.float64) @ Xc[0, i0:i1],
                               rtol=1e-4, atol=1e-4)
