"""Benchmark: fastrnn against the numpy min-char-rnn, timed in the same run.

    python -m fastrnn.bench [--text PATH] [--hidden 100 512] [--dtype float64 float32]
                            [--threads 1 2]

Rounds of each contender are interleaved so that a noisy machine slows all of them
alike; compilation and warm-up happen before the first round. Prints a table of
iterations per second (min, median, max over rounds) with the ratio of medians to the
reference, then the same as one JSON line. "float64 exact" is the default float64 mode,
min-char-rnn to the bit; "float64" is train.exact=false. Each runs with each of
--threads (train.threads).
"""
import argparse
import json
import statistics
import sys
import time


from .data import read_corpus
from .errors import UserError
from .reference import MinCharRNN
from .trainer import Trainer


def _rate(step, n):
    t0 = time.perf_counter()
    step(n)
    return n / (time.perf_counter() - t0)


def _calibrate(step, seconds):
    """Iterations that take about `seconds`, after one warm-up call."""
    step(2)
    n = 4
    while True:
        t0 = time.perf_counter()
        step(n)
        took = time.perf_counter() - t0
        if took > seconds / 4:
            return max(1, int(n * seconds / took))
        n *= 4


def run(text, hiddens=(100, 512), dtypes=("float64", "float32"), seq_length=25,
        rounds=5, seconds=1.0, threads=(1,), out=sys.stdout):
    results = []
    for H in hiddens:
        ref = MinCharRNN(text, H, seq_length, seed=0)
        contenders = {"numpy": lambda n, r=ref: r.train(n)}
        for dtype in dtypes:
            for exact in ([True, False] if dtype == "float64" else [False]):
                for th in threads:
                    cfg = {"data": {"val_fraction": 0.0}, "model": {"hidden": H},
                           "train": {"seq_length": seq_length, "dtype": dtype, "seed": 0,
                                     "exact": exact, "threads": th}}
                    name = (f"fastrnn {dtype}" + (" exact" if exact else "")
                            + (f", {th} thread{'s' * (th > 1)}" if len(threads) > 1 else ""))
                    contenders[name] = Trainer(cfg, text=text).train_iters
        sizes = {name: _calibrate(step, seconds) for name, step in contenders.items()}
        rates = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, step in contenders.items():
                rates[name].append(_rate(step, sizes[name]))
        base = statistics.median(rates["numpy"])
        for name, r in rates.items():
            med = statistics.median(r)
            results.append(dict(hidden=H, impl=name, it_s_min=round(min(r), 1),
                                it_s_median=round(med, 1), it_s_max=round(max(r), 1),
                                ratio=round(med / base, 2)))
    print(f"{'hidden':>6}  {'implementation':<34} {'it/s min':>10} {'median':>10} "
          f"{'max':>10} {'ratio':>7}", file=out)
    for r in results:
        print(f"{r['hidden']:>6}  {r['impl']:<34} {r['it_s_min']:>10.0f} "
              f"{r['it_s_median']:>10.0f} {r['it_s_max']:>10.0f} {r['ratio']:>6.2f}x",
              file=out)
    print(json.dumps(dict(seq_length=seq_length, batch_size=1, rounds=rounds,
                          results=results)), file=out)
    return results


def main(argv=None, prog="python -m fastrnn.bench"):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default="shakespeare",
                    help="text file or corpus name (default: shakespeare)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[100, 512])
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                    choices=["float64", "float32"])
    ap.add_argument("--seq-length", type=int, default=25)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="train.threads values to time (default: 1 2)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="approximate length of one round of one contender")
    args = ap.parse_args(argv)
    try:
        if min(args.hidden + args.threads) < 1 or args.seq_length < 1 or args.rounds < 1:
            raise UserError("--hidden, --threads, --seq-length and --rounds must be "
                            "positive")
        text = read_corpus(args.text)
        run(text, args.hidden, args.dtype, args.seq_length, args.rounds, args.seconds,
            args.threads)
    except UserError as e:
        print(f"fastrnn bench: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
