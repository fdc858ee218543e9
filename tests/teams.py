"""Kernel pieces run on a team of threads from Python, for the tests: each function
here runs its pieces on `threads` threads (one parallel region, kernels.team), or on
this thread when threads is 1."""
import numba
import numpy as np
import pytest
from numba import prange

from fastrnn.kernels import inputs, optim, products, step
from fastrnn.kernels.jit import jit, pjit
from fastrnn.kernels.records import Batched, Exact, OneStream
from fastrnn.kernels.team import Team, flag_count

# A test that compares one thread with two is skipped where there is one.
needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                               reason="needs two Numba threads")


def path(exact, B=1):
    return Exact() if exact else (Batched() if B > 1 else OneStream())


def run(pieces, threads, *args):
    """pieces(*args, team) on a team of `threads`."""
    flags = np.zeros(flag_count(threads), np.int64)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    pieces(threads, flags, *args)


@jit
def _products(dW, dY, X, part, out, W, out2, sums, path, team):
    products.outer_sum(dW, dY, X, part, path, team)
    products.matmul_rows(out, X, W, path, team)
    products.matmul_rows_t(out2, dY, W, path, team)
    products.row_sum_rev(sums, dY, team)


@pjit
def product_pieces(threads, flags, dW, dY, X, part, out, W, out2, sums, path):
    """outer_sum, matmul_rows, matmul_rows_t and row_sum_rev."""
    for me in prange(threads):
        _products(dW, dY, X, part, out, W, out2, sums, path, Team(flags, me, threads))


@pjit
def embedding_backward(threads, flags, dWemb, dbias, d, x, T, path):
    for me in prange(threads):
        inputs.embedding_backward(dWemb, dbias, d, x, T, path, Team(flags, me, threads))


@pjit
def pack_weights(threads, flags, P, W, transposed, used):
    """used[0] = how many elements of P the panels take."""
    for me in prange(threads):
        Wp = step.pack_weights(P, W, transposed, Team(flags, me, threads))
        used[0] = Wp.size


@pjit
def packed_product(threads, flags, out, X, P):
    for me in prange(threads):
        step.packed_product(out, X, P, Team(flags, me, threads), threads)


@jit
def _steps(packs, W, h, out, WT_packs, d, outT, spart, path, team):
    Wp = step.step_weights(packs, W, False, path, team)
    step.step_matmul(out, h, W, Wp, path, team)
    WpT = step.step_weights(WT_packs, W, True, path, team)
    step.step_matmul_t(outT, d, W, WpT, spart, path, team)


@pjit
def step_products(threads, flags, packs, W, h, out, WT_packs, d, outT, spart, path):
    """step_weights and step_matmul for out = h @ W.T, then for outT = d @ W."""
    for me in prange(threads):
        _steps(packs, W, h, out, WT_packs, d, outT, spart, path, Team(flags, me, threads))


@pjit
def optimizer_step(threads, flags, net, hyper, n, sums, biases):
    """biases: (b0, b1, c0) as optim.bias_span gives them."""
    for me in prange(threads):
        optim.optimizer_step(net, hyper, n, sums, Team(flags, me, threads), biases)
