"""Throughput of a sweep of 2 trials with 1 worker and with 2, in the same run.

    python scripts/sweep_scaling.py [--iters 100000] [--config configs/shakespeare.yaml]

Prints trial iterations per second for each and the ratio (target: 2 workers at least
1.85x of 1 on a 2-core machine).
"""
import argparse
import tempfile
import time
from pathlib import Path

import yaml

from fastrnn import sweeps as S


def main():  # (spawned workers import this file: keep work under main)
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=100_000)
    ap.add_argument("--config", default=str(Path(__file__).parent.parent / "configs" /
                                            "shakespeare.yaml"))
    args = ap.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2, 1, 2):
            spec = {"base": str(Path(args.config).resolve()),
                    "config": {"train": {"max_iters": args.iters, "eval_every": args.iters,
                                         "sample_every": 0, "log_every": 10_000}},
                    "grid": {"optim.lr": [0.1, 0.11]},
                    "out_dir": f"{tmp}/w{workers}-{len(rates.get(workers, []))}"}
            path = Path(tmp) / "sweep.yaml"
            path.write_text(yaml.safe_dump(spec))
            sw = S.load_sweep(path)
            S.claim_folder(sw)
            t0 = time.perf_counter()
            results = S.run_sweep(sw, lambda: S.local_executor(workers))
            took = time.perf_counter() - t0
            assert all(r["status"] == "ok" for r in results.rows.values()), results.rows
            rates.setdefault(workers, []).append(2 * args.iters / took)
            print(f"{workers} worker(s): 2 trials of {args.iters} iterations in {took:.1f} s, "
                  f"{2 * args.iters / took:,.0f} trial it/s", flush=True)
    best1, best2 = max(rates[1]), max(rates[2])
    print(f"2 workers / 1 worker: {best2 / best1:.2f}x (best of 2 each)")


if __name__ == "__main__":
    main()
