"""One step's product of a batched recurrence: fastrnn's packed product against the
same product through OpenBLAS (numpy's np.dot in compiled code), timed in the same run.

    python benchmarks/bench_step.py [--threads 1 2] [--hidden 512] [--gates 4]

For each dtype and batch size it times 50 steps of the forward product
out (B, G*H) = h (B, H) @ Whh.T and of BPTT's out (B, H) = da (B, G*H) @ Whh, each
contender its best of 5 rounds, and prints GFLOP/s and the ratio. OpenBLAS runs one
thread inside each of fastrnn's threads, which split the output columns; for BPTT it
is given Whh transposed beforehand, untimed (as the packed product's packing, once per
layer and iteration in training, is timed apart).
"""
import argparse
import time

import numpy as np

from fastrnn import blas
from fastrnn.kernels.jit import jit, jit_nrt
from fastrnn.kernels.panels import pack_weights, packed_product, packed_size
from fastrnn.kernels.team import Call, after, close, first, items, span

STEPS = 50


@jit
def packed_steps(out, X, P, threads, team):
    """STEPS products on a team of `threads`, as the trainer runs them."""
    for _ in range(STEPS):
        packed_product(out, X, P, team, threads)


@jit_nrt
def blas_steps(out, X, WT, part, team):
    """out = X @ WT.T through np.dot, each thread a slice of WT's rows (the output
    columns) into its own buffer, then copied into out. (Compiled with Numba's reference
    counts, unlike the kernels: np.dot with an out argument and the copy need them.)"""
    B, R = out.shape
    n = items(team, R // 16, R, 1)
    for _ in range(STEPS):
        i = first(team, n)
        while i >= 0:
            if n == 1:
                np.dot(X, WT.T, out)
            else:
                r0, r1 = span(i, n, R, 16)
                o = part[i, :B * (r1 - r0)].reshape(B, r1 - r0)
                np.dot(X, WT[r0:r1].T, o)
                out[:, r0:r1] = o
            i = after(team, n, i)
        close(team, n)


@jit
def pack(P, W, transposed, team):
    pack_weights(P, W, transposed, team)


def on_team(fn, threads):
    """fn(*args, team) on a team of `threads` threads."""
    return lambda *args: Call(fn, args, threads)()


def best(f, *args, rounds=5):
    f(*args)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--gates", type=int, default=4, help="1 rnn, 3 gru, 4 lstm")
    ap.add_argument("--batch", type=int, nargs="+", default=[4, 8, 16, 32, 50, 64])
    args = ap.parse_args()
    blas.set_threads(1)
    H, GH = args.hidden, args.gates * args.hidden
    print(f"{'dtype':<8} {'threads':>7} {'B':>4} {'product':<26} {'packed GF/s':>11} "
          f"{'BLAS GF/s':>9} {'ratio':>6} {'pack ms':>8}")
    for threads in args.threads:
        for dtype in (np.float32, np.float64):
            rs = np.random.RandomState(0)
            W = rs.randn(GH, H).astype(dtype)
            for B in args.batch:
                for transposed, name in ((False, f"({B},{H}) @ Whh.T"),
                                         (True, f"({B},{GH}) @ Whh")):
                    R, K = (H, GH) if transposed else (GH, H)
                    X = rs.randn(B, K).astype(dtype)
                    out = np.empty((B, R), dtype)
                    P = np.empty(packed_size(R, K, X), dtype)
                    t_pack = best(on_team(pack, threads), P, W, transposed)
                    t_packed = best(on_team(packed_steps, threads), out, X, P, threads)
                    WT = np.ascontiguousarray(W.T) if transposed else W  # (R, K)
                    part = np.empty((threads, B * R), dtype)
                    t_blas = best(on_team(blas_steps, threads), out, X, WT, part)
                    gf = 2.0 * B * R * K * STEPS / 1e9
                    print(f"{dtype.__name__:<8} {threads:>7} {B:>4} {name:<26} "
                          f"{gf / t_packed:>11.1f} {gf / t_blas:>9.1f} "
                          f"{t_blas / t_packed:>5.2f}x {t_pack * 1e3:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
