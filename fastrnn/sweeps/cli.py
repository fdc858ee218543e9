"""Hyperparameter sweeps: many ordinary runs from one sweep file, in parallel.

    fastrnn sweep configs/sweeps/shakespeare_grid.yaml [--workers N]
    fastrnn sweep SWEEP.yaml --executor dask --address tcp://HOST:PORT

(`python -m fastrnn.sweep` is the same command.)

A sweep file names a base config, axes over config keys (a grid, or random draws), the
metric to rank by and an output folder. Each trial is a normal run in
<out_dir>/<trial>/, so it can be inspected, resumed or sampled from. Results are
appended to results.csv and results.jsonl as trials end. Running the same command again
skips finished trials and resumes interrupted ones from their checkpoints.

With `halving: {min_iters: N, eta: 3}` (or min_minutes) the trials run in rungs
(successive halving): all to N iterations, the best 1/eta by validation loss resume to
eta N, and so on up to the base config's train.max_iters.
"""
import argparse
import os
import sys

import yaml

from ..config import Config
from ..data import load_corpus
from ..errors import UserError, fail
from ..files import remove_stale_temporaries, write_atomic
from .executors import dask_executor, local_executor
from .report import summary
from .results import Results
from .spec import load_sweep, rung_plan, trial_config
from .strategies import run_sweep


def compile_trials(sweep, threads, say):
    """Compile the kernels the sweep's unfinished trials run, here and once, before its
    workers start: on a cold Numba cache each worker would otherwise compile the same
    kernels at the same time, every core busy with one compile (a 2-trial sweep on 2
    workers: 39.5 s of CPU, 22.1 s compiled once, the same wall time on an idle
    machine), and race on the cache files. Kernels already compiled are not compiled
    again (compile.compile_call); a trial whose config is refused is left to fail in
    its worker. Returns the seconds spent."""
    from ..compile import compile_trainer
    from ..trainer import Trainer
    results = Results(sweep)
    took, texts = 0.0, {}
    for name, values in sweep.trials or [("t0", {})]:
        if results.done(name):
            continue
        try:
            config = Config.from_dict(trial_config(sweep, name, values),
                                      where=f"trial {name}")
            path = config.data.path, config.data.newlines
            if path not in texts:  # (read once, not per trial)
                texts[path] = load_corpus(*path)
            trainer = Trainer(config, text=texts[path])
        except UserError:
            continue
        trainer.threads = min(trainer.threads, threads)  # the workers' NUMBA_NUM_THREADS
        took += compile_trainer(trainer, say, one_thread=False)
    return took


def claim_folder(sweep):
    """The out_dir holds this sweep or nothing; never another one."""
    spec = {"base": sweep.base, "metric": sweep.metric,
            "trials": [{"name": n, "values": v} for n, v in sweep.trials]}
    if sweep.halving is not None:
        spec["halving"] = sweep.halving
    if sweep.search is not None:
        spec["search"] = dict(sweep.search, name="optuna")
    spec = yaml.safe_dump(spec, sort_keys=True)
    marker = sweep.out_dir / "sweep.yaml"
    if sweep.out_dir.is_dir():  # a marker write cut short must not look like a stranger
        remove_stale_temporaries(sweep.out_dir)
    if marker.exists():
        if marker.read_text(encoding="utf-8", errors="replace") != spec:
            raise UserError(f"{sweep.out_dir} holds a different sweep (its sweep.yaml "
                            f"differs); use another out_dir (--out-dir) or delete it")
        return
    if sweep.out_dir.exists() and any(sweep.out_dir.iterdir()):
        raise UserError(f"{sweep.out_dir} is not empty and holds no sweep; use another "
                        f"out_dir (--out-dir)")
    try:
        sweep.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, spec.encode())
    except OSError as e:
        raise UserError(f"cannot write the sweep folder {sweep.out_dir} ({e.strerror})") \
            from None


def main(argv=None, prog="python -m fastrnn.sweep"):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="sweep file (YAML), e.g. "
                    "configs/sweeps/shakespeare_grid.yaml")
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel trials on this machine (default: one per core, or per "
                         "`threads` cores when the sweep file gives threads)")
    ap.add_argument("--executor", choices=["local", "dask"], default="local")
    ap.add_argument("--address", help="the Dask scheduler, e.g. tcp://10.0.0.5:8786")
    ap.add_argument("--out-dir", help="sweep folder (default: the sweep file's out_dir)")
    args = ap.parse_args(argv)
    try:
        if args.workers is not None and args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        if args.executor == "dask" and not args.address:
            raise UserError("--executor dask needs --address tcp://HOST:PORT")
        sweep = load_sweep(args.sweep, args.out_dir)
        if args.workers is None:
            args.workers = max(1, (os.cpu_count() or 1) // sweep.threads)
        for name, values in sweep.trials[:1]:  # the base and keys make a config at all
            trial_config(sweep, name, values)
        if args.executor == "dask":
            with dask_executor(args.address, grace=sweep.worker_grace):
                pass  # reachable: fail fast, before any trial starts or folder is made
            executor = lambda: dask_executor(  # noqa: E731
                args.address, grace=sweep.worker_grace)
            where = f"Dask at {args.address}"
        else:
            cores = os.cpu_count() or 1
            if args.workers * sweep.threads > cores:
                raise UserError(f"{args.workers} worker(s) of {sweep.threads} thread(s) "
                                f"each need {args.workers * sweep.threads} cores, this "
                                f"machine has {cores}; lower --workers")
            executor = lambda: local_executor(args.workers, sweep.threads)  # noqa: E731
            where = f"{args.workers} local worker(s)"
            if sweep.threads > 1:
                where += f" of {sweep.threads} threads"
        claim_folder(sweep)
        Results(sweep)  # results files damaged since the last run: refused here
    except (UserError, OSError) as e:  # (OSError: a path the OS refuses)
        return fail(e)
    total = len(sweep.trials)
    if sweep.search is not None:
        total = sweep.search["n_trials"]
        where += ", drawn by Optuna's TPE sampler"
    print(f"sweep {args.sweep}: {total} trials on {where}; folder "
          f"{sweep.out_dir}", flush=True)
    if sweep.halving is not None:
        total = sum(n for _, n in rung_plan(sweep.halving, total))
    if args.executor == "local" and args.workers > 1:
        compile_trials(sweep, sweep.threads, lambda line: print(line, flush=True))
    try:
        results = run_sweep(sweep, executor, progress=_printer(total),
                            slots=args.workers if args.executor == "local" else None,
                            say=lambda line: print(line, flush=True))
    except UserError as e:
        return fail(e)
    failed = summary(results, sweep, sys.stdout)
    return 1 if failed else 0


def _printer(total):
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=total, file=sys.stderr, unit="trial")

    def show(state, row):
        line = (f"trials: {state['done']} done, {state['running']} running, "
                f"{state['failed']} failed, of {state['total']}")
        if row is not None:
            what = (f"{row['trial']} ok, {row['metric']:.4f}" if row["status"] == "ok"
                    and row["metric"] is not None else f"{row['trial']} {row['status']}")
            line += f" | {what}"
        if bar is not None:
            bar.n = state["done"] + state["failed"]
            bar.set_postfix_str(line, refresh=True)
        else:
            print(line, file=sys.stderr, flush=True)
    return show


if __name__ == "__main__":
    sys.exit(main())
