"""Kernel pieces run on a team of threads from Python, for the tests: each function
here takes the team last and is run with run(fn, threads, *args) (kernels.team.Call),
on one thread or on `threads`."""
import numba
import pytest

from fastrnn.kernels import inputs, optim, panels, products, step
from fastrnn.kernels.jit import jit
from fastrnn.kernels.records import Batched, Exact, OneStream
from fastrnn.kernels.team import Call

# A test that compares one thread with two is skipped where there is one.
needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                               reason="needs two threads (NUMBA_NUM_THREADS)")


def path(exact, B=1):
    return Exact() if exact else (Batched() if B > 1 else OneStream())


def run(fn, threads, *args):
    """fn(*args, team) on a team of `threads`."""
    return Call(fn, args, threads)()


@jit
def product_pieces(dW, dY, X, part, out, W, out2, sums, path, team):
    """outer_sum, matmul_rows, matmul_rows_t and row_sum_rev."""
    products.outer_sum(dW, dY, X, part, path, team)
    products.matmul_rows(out, X, W, path, team)
    products.matmul_rows_t(out2, dY, W, path, team)
    products.row_sum_rev(sums, dY, team)


@jit
def embedding_backward(dWemb, dbias, d, x, T, path, team):
    inputs.embedding_backward(dWemb, dbias, d, x, T, path, team)


@jit
def pack_weights(P, W, transposed, used, team):
    """used[0] = how many elements of P the panels take."""
    used[0] = panels.pack_weights(P, W, transposed, team)


@jit
def packed_product(out, X, P, most, team):
    panels.packed_product(out, X, P, team, most)


@jit
def step_products(packs, W, h, out, WT_packs, d, outT, spart, path, team):
    """step_weights and step_matmul for out = h @ W.T, then for outT = d @ W."""
    Wp = step.step_weights(packs, W, False, path, team)
    step.step_matmul(out, h, W, Wp, path, team)
    WpT = step.step_weights(WT_packs, W, True, path, team)
    step.step_matmul_t(outT, d, W, WpT, spart, path, team)


@jit
def optimizer_step(net, hyper, n, sums, biases, team):
    """biases: (b0, b1, c0) as optim.bias_span gives them."""
    optim.optimizer_step(net, hyper, n, sums, team, biases)
