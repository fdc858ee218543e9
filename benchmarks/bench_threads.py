"""min-char-rnn's exact float64 model on one thread and on two (kernels.duo), by hidden
size, timed in the same run: where the two threads start to pay, which sets the
trainer's default thread count for it (trainer.py: below hidden 48, one thread).

    python benchmarks/bench_threads.py [--hidden 8 16 32 48 64 100] [--rounds 5]

Each case trains 200 iterations to warm up, then the best of --rounds bursts of 2,000
iterations, the cases taking turns; prints microseconds per iteration and the ratio.
"""
import argparse
import os
import time

from fastrnn import Trainer
from fastrnn.data import read_text, resolve


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[8, 16, 32, 48, 64, 100])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=2000)
    args = ap.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench_threads: this machine has one core; nothing to compare")
    text = read_text(resolve("shakespeare"))[:200_000]
    trainers = {}
    for H in args.hidden:
        for threads in (1, 2):
            cfg = {"data": {"val_fraction": 0.0}, "model": {"hidden": H},
                   "train": {"seq_length": 25, "dtype": "float64", "threads": threads}}
            t = Trainer(cfg, text=text)
            t.train_iters(200)
            trainers[H, threads] = t
    best = {}
    for _ in range(args.rounds):
        for key, t in trainers.items():
            t0 = time.perf_counter()
            t.train_iters(args.iters)
            us = (time.perf_counter() - t0) / args.iters * 1e6
            best[key] = min(best.get(key, us), us)
    print(f"{'hidden':>6} {'1 thread us/it':>15} {'2 threads us/it':>16} {'2 / 1':>6}")
    for H in args.hidden:
        one, two = best[H, 1], best[H, 2]
        print(f"{H:6d} {one:15.1f} {two:16.1f} {two / one:6.2f}")


if __name__ == "__main__":
    main()
