"""Cold start: how long a fresh process takes to its first iteration and its first
validation with an empty Numba cache, for the seed config and for every family x dtype
x (one stream, many streams); then a warm start, from the cache the seed config left.

    python benchmarks/bench_compile.py [--hidden 64] [--cases seed,rnn-float64-1,...]

Each case runs in a new process with NUMBA_CACHE_DIR set to an empty folder; its times
count from just before the process is started (interpreter start and imports
included), as a user's command would. Run it with nothing else compiling or timing on
the machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child: build the trainer, time the first iteration and the first validation.
CHILD = """
import json, sys, time
t0 = float(sys.argv[1])
from fastrnn import Trainer
t = Trainer.from_yaml(sys.argv[2], sys.argv[3:])
t.train_iters(1)
t1 = time.time()
t.evaluate()
t2 = time.time()
print(json.dumps(dict(first_iteration=t1 - t0, first_validation=t2 - t1,
                      threads=t.chunks)))
"""


def cases(hidden):
    """(key, name, overrides) of the seed config and of every family x dtype x
    streams; keys as --cases takes them."""
    out = [("seed", "seed config (rnn float32, 1 stream)", [])]
    small = [f"model.hidden={hidden}", "data.val_fraction=0.01"]
    for kind in ("rnn", "gru", "lstm"):
        for dtype in ("float32", "float64"):
            for batch in (1, 32):
                if (kind, dtype, batch) == ("rnn", "float32", 1):
                    continue  # the seed config
                layers = ["model.layers=2", "model.dropout=0.25"] if batch > 1 else []
                out.append((f"{kind}-{dtype}-{batch}",
                            f"{kind} {dtype}, {batch} stream{'s' * (batch > 1)}",
                            small + [f"model.kind={kind}", f"train.dtype={dtype}",
                                     f"train.batch_size={batch}", "train.seq_length=64"
                                     if batch > 1 else "train.seq_length=25"] + layers))
    return out


def measure(overrides, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    start = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, str(start),
                           str(ROOT / "configs" / "shakespeare.yaml"), *overrides],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"case {overrides} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=64, help="hidden size of the other "
                    "cases (compile time does not depend on it)")
    ap.add_argument("--cases", help="only these, by key: seed, rnn-float64-1, "
                    "gru-float32-32, ... (default: all)")
    args = ap.parse_args()
    chosen = cases(args.hidden)
    if args.cases:
        keys = args.cases.split(",")
        unknown = set(keys) - {key for key, _, _ in chosen}
        if unknown:
            ap.error(f"unknown case(s) {', '.join(sorted(unknown))}; keys: "
                     f"{', '.join(key for key, _, _ in chosen)}")
        chosen = [c for c in chosen if c[0] in keys]
    print(f"{'case':<40} {'threads':>7} {'first iteration':>16} {'+ first validation':>19}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (key, name, overrides) in enumerate(chosen):
            cache = Path(tmp) / f"cache{i}"
            r = measure(overrides, cache)
            print(f"{name:<40} {r['threads']:>7} {r['first_iteration']:>14.1f} s "
                  f"{r['first_validation']:>17.1f} s", flush=True)
            if key == "seed":
                warm = measure(overrides, cache)
                print(f"{'seed config again (warm cache)':<40} {warm['threads']:>7} "
                      f"{warm['first_iteration']:>14.1f} s "
                      f"{warm['first_validation']:>17.1f} s", flush=True)


if __name__ == "__main__":
    main()
