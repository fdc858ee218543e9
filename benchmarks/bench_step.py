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

import numba
import numpy as np
from numba import prange

from fastrnn import blas
from fastrnn.kernels.jit import pjit
from fastrnn.kernels.step import pack_weights, packed_product, packed_size
from fastrnn.kernels.team import Team, flag_count, span

STEPS = 50


@pjit
def packed_steps(out, X, P, chunks):
    """STEPS products on a team of `chunks` threads, as the trainer runs them."""
    flags = np.zeros(flag_count(chunks), np.int64)
    for me in prange(chunks):
        team = Team(flags, me, chunks)
        for _ in range(STEPS):
            packed_product(out, X, P, team, chunks)


@pjit
def blas_steps(out, X, WT, part, chunks):
    """out = X @ WT.T through np.dot, each thread a slice of WT's rows (the output
    columns) into its own buffer, then copied into out."""
    B, R = out.shape
    for _ in range(STEPS):
        if chunks == 1:
            np.dot(X, WT.T, out)
            continue
        for ch in prange(chunks):
            r0, r1 = span(ch, chunks, R, 16)
            o = part[ch, :B * (r1 - r0)].reshape(B, r1 - r0)
            np.dot(X, WT[r0:r1].T, o)
            out[:, r0:r1] = o


@pjit
def pack(P, W, transposed, chunks):
    flags = np.zeros(flag_count(chunks), np.int64)
    for me in prange(chunks):
        pack_weights(P, W, transposed, Team(flags, me, chunks))


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
        numba.set_num_threads(threads)
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
                    t_pack = best(pack, P, W, transposed, threads)
                    t_packed = best(packed_steps, out, X, P, threads)
                    WT = np.ascontiguousarray(W.T) if transposed else W  # (R, K)
                    part = np.empty((threads, B * R), dtype)
                    t_blas = best(blas_steps, out, X, WT, part, threads)
                    gf = 2.0 * B * R * K * STEPS / 1e9
                    print(f"{dtype.__name__:<8} {threads:>7} {B:>4} {name:<26} "
                          f"{gf / t_packed:>11.1f} {gf / t_blas:>9.1f} "
                          f"{t_blas / t_packed:>5.2f}x {t_pack * 1e3:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
