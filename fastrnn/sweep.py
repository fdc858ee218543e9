"""Hyperparameter sweeps: many ordinary runs from one sweep file, in parallel.

    python -m fastrnn.sweep configs/sweeps/lr_hidden.yaml [--workers N]
    python -m fastrnn.sweep SWEEP.yaml --executor dask --address tcp://HOST:PORT

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
import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import io
import itertools
import json
import math
import multiprocessing
import os
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from .config import SECTIONS, Config, _lookup, merge, parse_overrides, read_yaml
from .data import read_corpus
from .files import remove_stale_temporaries, write_atomic
from .errors import UserError

METRICS = {"val_loss": "final validation loss (nats/char)",
           "best_val_loss": "best validation loss (nats/char)",
           "train_loss": "final smoothed training loss (nats/char)"}
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
COLUMNS = ("trial", "status", "metric", "val_loss", "best_val_loss", "train_loss",
           "iterations", "seconds", "it_per_s", "error")


@dataclasses.dataclass
class Sweep:
    base: dict             # the base config (nested dict), before each trial's values
    trials: list           # [(name, {"section.key": value})]
    metric: str
    out_dir: Path
    halving: dict = None   # successive halving: unit, first, eta, cap (load_halving)
    search: dict = None    # search: optuna: {"space": random's axes, "n_trials", "seed"};
                           # trials then grows as Optuna draws them
    threads: int = 1       # kernel threads of each trial in the local pool


def load_sweep(path, out_dir=None):
    """Read and check a sweep file, and the config its trials share (base and config:
    changes); UserError names what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"sweep file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read sweep file {path}: {e}") from None
    raw = read_yaml(text, path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a sweep file is a mapping (base, grid or random, ...)")
    known = {"base": str, "config": dict, "grid": dict, "random": dict, "n_trials": int,
             "seed": int, "metric": str, "out_dir": str, "halving": dict, "search": str,
             "threads": int}
    optional = ("base", "config", "seed", "metric", "out_dir", "halving", "search",
                "threads")
    raw = {k: v for k, v in raw.items() if not (v is None and k in optional)}
    for key, value in raw.items():
        _lookup(key, known, str(path), "sweep key")
        if not isinstance(value, known[key]) or isinstance(value, bool):
            raise UserError(f"{path}: '{key}' must be {_KINDS[known[key]]}, got {value!r}")
    base = {}
    if raw.get("base"):
        base_path = path.parent / raw["base"]  # an absolute base stays as it is
        try:
            base = read_yaml(base_path.read_text(encoding="utf-8"), base_path)
        except FileNotFoundError:
            raise UserError(f"{path}: base config not found: {base_path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read base config {base_path}: {e}") from None
        if base is None:
            base = {}
        if not isinstance(base, dict):
            raise UserError(f"{base_path}: a config is a mapping of sections, got "
                            f"{type(base).__name__}")
    changes = raw.get("config") or {}
    for section, values in changes.items():
        if not isinstance(values, dict):
            raise UserError(f"{path}: config: section '{section}' must be a mapping of "
                            f"keys, got {values!r}")
    base = merge(base, changes)
    base_cfg = Config.from_dict(base, where=f"{path} (its base config and config: changes)")
    if ("grid" in raw) == ("random" in raw):
        raise UserError(f"{path}: give exactly one of 'grid' (lists of values) or "
                        f"'random' (distributions, with n_trials)")
    metric = raw.get("metric", "val_loss")
    if metric not in METRICS:
        raise UserError(f"{path}: metric '{metric}' is not one of {', '.join(METRICS)}")
    axes = raw.get("grid") or raw.get("random")
    if not isinstance(axes, dict) or not axes:
        raise UserError(f"{path}: the axes must be a mapping of config keys, e.g. "
                        f"optim.lr: [0.05, 0.1]")
    for key in axes:
        _check_key(key, path)
    if "grid" in raw:
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise UserError(f"{path}: grid axis '{key}' must be a non-empty list of "
                                f"values")
        combos = list(itertools.product(*axes.values()))
        trials = [dict(zip(axes, combo)) for combo in combos]
    else:
        n = raw.get("n_trials")
        if n is None or n < 1:
            raise UserError(f"{path}: random axes need n_trials, a whole number >= 1")
        seed = raw.get("seed", 0)
        if seed < 0:
            raise UserError(f"{path}: 'seed' must be a whole number >= 0, got {seed}")
        rng = np.random.default_rng(seed)
        draws = {key: _draw(key, spec, n, rng, path) for key, spec in axes.items()}
        trials = [{key: draws[key][i] for key in axes} for i in range(n)]
    width = len(str(len(trials) - 1))
    named = [(f"t{i:0{width}d}", values) for i, values in enumerate(trials)]
    out = Path(out_dir or raw.get("out_dir") or Path("runs") / "sweeps" / path.stem)
    halving = search = None
    if "halving" in raw:
        halving = load_halving(raw["halving"], path, base, base_cfg, metric, named)
    if raw.get("search", "random") != "random":
        if raw["search"] != "optuna":
            raise UserError(f"{path}: search must be random (draws up front) or optuna "
                            f"(Optuna's TPE), got {raw['search']!r}")
        if "random" not in raw or halving is not None:
            raise UserError(f"{path}: search: optuna draws from the distributions of "
                            f"'random' axes, without halving; give random: axes and no "
                            f"halving")
        _import_optuna()
        search, named = dict(space=axes, n_trials=len(named), seed=raw.get("seed", 0)), []
    threads = raw.get("threads", 1)
    if threads < 1:
        raise UserError(f"{path}: 'threads' (each trial's kernel threads) must be at least "
                        f"1, got {threads}")
    return Sweep(base, named, metric, out, halving, search, threads)


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise UserError("search: optuna needs Optuna: pip install 'fastrnn[optuna]'") \
            from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def load_halving(spec, path, base, base_cfg, metric, trials):
    """The halving: mapping checked: {"unit": "iters" or "minutes", "first": the first
    rung's budget, "eta", "cap": the last rung's (the base config's train.max_iters, or
    train.max_minutes)}."""
    where = f"{path}: halving"
    for key in spec:
        _lookup(key, {"min_iters": 0, "min_minutes": 0, "eta": 0}, where, "key")
    if ("min_iters" in spec) == ("min_minutes" in spec):
        raise UserError(f"{where} needs one of min_iters (the first rung's iterations) or "
                        f"min_minutes, e.g. halving: {{min_iters: 500, eta: 3}}")
    eta = spec.get("eta", 3)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 2:
        raise UserError(f"{where}: eta must be a number of at least 2 (the rung to rung "
                        f"growth of the budget, and the fraction 1/eta that goes on), got "
                        f"{eta!r}")
    if metric not in ("val_loss", "best_val_loss"):
        raise UserError(f"{where} ranks trials by validation loss; metric {metric} cannot "
                        f"rank them (set metric: val_loss or best_val_loss)")
    unit = "iters" if "min_iters" in spec else "minutes"
    first = spec["min_iters" if unit == "iters" else "min_minutes"]
    key = "train.max_iters" if unit == "iters" else "train.max_minutes"
    cap = base_cfg.train.max_iters if unit == "iters" else base_cfg.train.max_minutes
    if unit == "iters" and (isinstance(first, bool) or not isinstance(first, int)
                            or first < 1):
        raise UserError(f"{where}: min_iters must be a whole number >= 1, got {first!r}")
    if unit == "minutes" and (isinstance(first, bool) or not isinstance(first, (int, float))
                              or not first > 0):
        raise UserError(f"{where}: min_minutes must be a number above 0, got {first!r}")
    if cap is None:
        raise UserError(f"{where}: min_minutes needs train.max_minutes in the base config "
                        f"(the last rung's minutes)")
    if first >= cap:
        raise UserError(f"{where}: the first rung ({first}) must be below {key}={cap}, the "
                        f"last rung's budget")
    for name, values in trials:
        if key in values:
            raise UserError(f"{path}: axis '{key}' cannot be swept with halving, which sets "
                            f"it for each rung")
        val = merge(base, parse_overrides([f"{k}={json.dumps(v)}" for k, v in values.items()])
                    ).get("data", {}).get("val_fraction", 0.1)
        if val == 0:
            raise UserError(f"{where}: trial {name} has data.val_fraction 0, so no "
                            f"validation loss to rank it by; hold out some text")
    return dict(unit=unit, first=first, eta=eta, cap=cap)


def rung_plan(halving, n):
    """[(budget, trials)] of each rung for n trials: the budget grows eta-fold up to the
    cap, the trials shrink to the best 1/eta (at least one); a single trial goes straight
    to the cap."""
    plan, k = [], 0
    while True:
        budget = halving["first"] * halving["eta"] ** k
        budget = round(budget) if halving["unit"] == "iters" else budget
        if budget >= halving["cap"] or n == 1:
            plan.append((halving["cap"], n))
            return plan
        plan.append((budget, n))
        n, k = max(1, int(n // halving["eta"])), k + 1


_KINDS = {str: "a string", dict: "a mapping", int: "a whole number"}


def _check_key(key, path):
    section, dot, name = str(key).partition(".")
    cls = _lookup(section, SECTIONS, str(path), "section") if dot else None
    if cls is None:
        raise UserError(f"{path}: axis '{key}' is not a config key of the form section.key")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _lookup(name, fields, str(path), "key on an axis", prefix=f"{section}.")


def _draw(key, spec, n, rng, path):
    bad = (f"{path}: axis '{key}' needs one distribution: uniform: [low, high], "
           f"loguniform: [low, high], randint: [low, high] or choice: [values]")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(bad)
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS or not isinstance(args, list) or not args:
        raise UserError(bad)
    if kind == "choice":
        return [args[i] for i in rng.integers(0, len(args), n)]
    try:
        low, high = (float(a) for a in args)
    except (TypeError, ValueError):
        raise UserError(bad) from None
    if not low < high or (kind == "loguniform" and low <= 0):
        raise UserError(f"{path}: axis '{key}': {kind} needs low < high"
                        + (" and low > 0" if kind == "loguniform" else "")
                        + f", got [{args[0]}, {args[1]}]")
    if kind == "uniform":
        return [float(v) for v in rng.uniform(low, high, n)]
    if kind == "loguniform":
        return [float(v) for v in np.exp(rng.uniform(math.log(low), math.log(high), n))]
    return [int(v) for v in rng.integers(int(low), int(high) + 1, n)]


def trial_config(sweep, name, values):
    """A trial's nested config dict: the base, its axis values, its own run folder. A
    trial always resumes what its folder holds: from latest.npz, else best.npz, else
    from the start, keeping the files of an attempt killed before its first checkpoint."""
    flat = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    cfg = merge(sweep.base, parse_overrides(flat, where=f"trial {name}"))
    run_dir = sweep.out_dir / name
    return merge(cfg, {"train": {"out_dir": str(run_dir), "resume": True,
                                 "overwrite": False}})


def rung_config(sweep, name, values, budget, before):
    """A trial's config for a rung of halving: trained to `budget` iterations (a cosine
    schedule still decays over the last rung's), or for budget - before more minutes."""
    cfg = trial_config(sweep, name, values)
    if sweep.halving["unit"] == "minutes":
        return merge(cfg, {"train": {"max_minutes": budget - before}})
    cfg = merge(cfg, {"train": {"max_iters": budget}})
    optim = cfg.get("optim") or {}
    if optim.get("schedule") == "cosine" and optim.get("decay_iters") is None:
        cfg = merge(cfg, {"optim": {"decay_iters": sweep.halving["cap"]}})
    return cfg


def run_trial(name, cfg):
    """Run one trial in this process; returns its result row. Never raises: a failure is
    recorded with its error. The run's own output goes to <run folder>/log.txt as it is
    written."""
    from .run import Run
    row = dict(trial=name, status="failed", metric=None, val_loss=None, best_val_loss=None,
               train_loss=None, iterations=0, seconds=0.0, it_per_s=0.0, error="")
    t0 = time.perf_counter()
    log = None
    try:
        config = Config.from_dict(cfg, where=f"trial {name}")
        run_dir = Path(config.train.out_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            log = TrialLog(run_dir / "log.txt")
        except OSError as e:
            raise UserError(f"cannot write {run_dir / 'log.txt'} ({e.strerror or e})") \
                from None
        run = Run(config, out=log, err=log)
        run.prepare()
        code = run.train()
        t = run.trainer
        row.update(iterations=t.iteration, it_per_s=round(run.rate, 1),
                   train_loss=t.smooth_loss / config.train.seq_length,
                   val_loss=run.last_val,
                   best_val_loss=run.best_val if run.best_val < math.inf else None)
        if code == 0:
            row["status"] = "ok"
        else:
            lines = [ln for ln in log.lines() if "error" in ln]
            row["error"] = lines[-1] if lines else f"run exited with code {code}"
    except Exception as e:  # a trial's failure is data, not the end of the sweep
        row["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)
        if log is not None:
            log.write(f"fastrnn: error: {row['error']}\n")
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 2)
        if log is not None:
            log.close()
    return row


class TrialLog(io.TextIOBase):
    """A trial's output: appended to its log.txt line by line as the run writes it (so a
    killed trial keeps what it said), and kept to find the error line."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.text = io.StringIO()

    def write(self, s):
        self.text.write(s)
        try:
            self.file.write(s)
            self.file.flush()
        except OSError:
            pass  # a full disk: the run itself reports its failed writes
        return len(s)

    def isatty(self):
        return False

    def lines(self):
        return self.text.getvalue().splitlines()

    def close(self):
        try:
            self.file.close()
        except OSError:
            pass
        super().close()


class Results:
    """results.csv and results.jsonl in the sweep folder, appended as trials end."""

    def __init__(self, sweep):
        self.sweep = sweep
        self.csv = sweep.out_dir / "results.csv"
        self.jsonl = sweep.out_dir / "results.jsonl"
        self.columns = COLUMNS + (("rung", "budget") if sweep.halving else ())
        self.rows = {}
        self.rungs = {}  # halving: {(trial, rung): its latest row}
        if self.jsonl.exists():
            text = self.jsonl.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut short by a kill: that trial runs again
                    continue
                if isinstance(row, dict) and isinstance(row.get("trial"), str):
                    self.rows[row["trial"]] = row  # the latest row of each trial wins
                    if isinstance(row.get("rung"), int):
                        self.rungs[row["trial"], row["rung"]] = row

    def done(self, name, rung=None):
        row = self.rows.get(name, {}) if rung is None else self.rungs.get((name, rung), {})
        return row.get("status") == "ok"

    def add(self, row, values):
        key = {"val_loss": "val_loss", "best_val_loss": "best_val_loss",
               "train_loss": "train_loss"}[self.sweep.metric]
        row["metric"] = row[key]
        row = dict(row, params=values)
        self.rows[row["trial"]] = row
        if "rung" in row:
            self.rungs[row["trial"], row["rung"]] = row
        new = not self.csv.exists()
        with open(self.csv, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self.columns + tuple(values))
            w.writerow([row.get(c) if row.get(c) is not None else "" for c in self.columns]
                       + list(values.values()))
        torn = False  # the last line was cut short (a kill): start on a new one
        if self.jsonl.exists() and self.jsonl.stat().st_size:
            with open(self.jsonl, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(("\n" if torn else "") + json.dumps(row) + "\n")


def _worker_env(threads=1):
    """Trials use one thread each unless the sweep file says `threads`: workers are the
    parallelism (and an OpenMP pool inherited by fork hangs, hence spawn)."""
    n = str(threads)
    return {"NUMBA_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": n}


class IsolatedPool:
    """A concurrent.futures-style pool that runs each task in a fresh spawned process,
    at most `workers` at once, so that a worker that dies (killed, out of memory) takes
    only its own trial with it."""

    def __init__(self, workers):
        self.threads = cf.ThreadPoolExecutor(max_workers=workers)

    def submit(self, fn, *args):
        return self.threads.submit(_in_own_process, fn, *args)

    def shutdown(self):
        self.threads.shutdown(wait=True)


def _in_own_process(fn, *args):
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


@contextlib.contextmanager
def local_executor(workers, threads=1):
    saved = {k: os.environ.get(k) for k in _worker_env()}
    os.environ.update(_worker_env(threads))  # inherited by the spawned workers
    pool = IsolatedPool(workers)
    try:
        yield pool
    finally:
        pool.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def dask_executor(address, timeout=5):
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--executor dask needs Dask: pip install 'fastrnn[dask]'") from None
    probe_scheduler(address, timeout)
    try:
        client = Client(address, timeout=timeout)
    except Exception as e:  # noqa: BLE001 -- whatever the connection raises, it failed
        raise UserError(f"cannot reach the Dask scheduler at {address} ({e.__class__.__name__}"
                        f"); start one (dask scheduler) or fix --address") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def probe_scheduler(address, timeout=5):
    """UserError unless a Dask scheduler answers at a tcp:// address within timeout
    seconds. A scheduler speaks first: on a new connection it sends its handshake, a
    frame whose 8-byte little-endian length is small. Something else (a web server, a
    silent socket) says nothing, or something else, and Dask's client would wait for it
    for minutes or read its bytes as a frame length."""
    scheme, sep, rest = address.rpartition("://")
    if sep and scheme != "tcp":
        return  # tls, ucx, ...: the client's own timeout applies
    host, _, port = rest.rpartition(":")
    fix = "start one (dask scheduler) or fix --address"
    try:
        port = int(port)
    except ValueError:
        raise UserError(f"--address {address}: expected tcp://HOST:PORT") from None
    deadline = time.monotonic() + timeout

    def unreachable(e):
        return UserError(f"cannot reach the Dask scheduler at {address} "
                         f"({getattr(e, 'strerror', None) or type(e).__name__}); {fix}")

    try:
        sock = socket.create_connection((host.strip("[]"), port), timeout=timeout)
    except (OSError, OverflowError) as e:  # OverflowError: a port above 65535
        raise unreachable(e) from None
    head = b""
    with sock:
        try:
            while len(head) < 8:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    raise UserError(f"{address} closed the connection without a word: it "
                                    f"is not a Dask scheduler; {fix}")
                head += chunk
        except TimeoutError:
            raise UserError(f"{address} accepts connections but sent nothing in {timeout} "
                            f"s: it is not a Dask scheduler (or not a working one); "
                            f"{fix}") from None
        except OSError as e:
            raise unreachable(e) from None
    if not 0 < struct.unpack("<Q", head)[0] < 2**20:
        raise UserError(f"{address} answered with {head!r}...: it is not a Dask "
                        f"scheduler; {fix}")


def run_sweep(sweep, executor, progress=None, trial_fn=run_trial, slots=None, say=None):
    """Run the sweep's unfinished trials; returns the results. executor: a factory of a
    context manager that yields a pool with submit() (local_executor, dask_executor).
    A trial that raises, or whose worker dies, is recorded as failed; the others go on.
    slots: how many trials run at once, if known, for the progress display; say: a
    function that prints a line (halving's rungs)."""
    sweep.out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(sweep)
    if sweep.search is not None:
        return _run_optuna(sweep, results, executor, progress, trial_fn, slots)
    if sweep.halving is not None:
        return _run_halving(sweep, results, executor, progress, trial_fn, slots,
                            say or (lambda line: None))
    todo = [(n, v) for n, v in sweep.trials if not results.done(n)]
    state = dict(done=len(sweep.trials) - len(todo), failed=0, running=0,
                 total=len(sweep.trials))
    with executor() as pool:
        _run_batch(pool, [(n, v, trial_config(sweep, n, v), {}) for n, v in todo], results,
                   state, progress, trial_fn, slots)
    return results


def _run_halving(sweep, results, executor, progress, trial_fn, slots, say):
    """Successive halving: each rung's trials to the rung's budget (resuming from the
    last), then the best 1/eta of them by the metric on to the next. A rerun skips the
    (trial, rung) pairs already done and ranks them by their recorded rows."""
    plan = rung_plan(sweep.halving, len(sweep.trials))
    state = dict(done=0, failed=0, running=0, total=sum(n for _, n in plan))
    unit = "iterations" if sweep.halving["unit"] == "iters" else "minutes"
    alive, before = list(sweep.trials), 0
    with executor() as pool:
        for k, (budget, n) in enumerate(plan):
            say(f"rung {k}: {len(alive)} trial(s) to {budget:g} {unit}")
            jobs = []
            for name, vals in alive:
                if results.done(name, k):
                    state["done"] += 1
                else:
                    jobs.append((name, vals, rung_config(sweep, name, vals, budget, before),
                                 dict(rung=k, budget=budget)))
            _run_batch(pool, jobs, results, state, progress, trial_fn, slots)
            ranked = sorted((r["metric"], name, vals) for name, vals in alive
                            if (r := results.rungs.get((name, k), {})).get("status") == "ok"
                            and r.get("metric") is not None)
            if k + 1 < len(plan):
                alive = [(name, vals) for _, name, vals in ranked[:plan[k + 1][1]]]
            before = budget
    return results


def _run_optuna(sweep, results, executor, progress, trial_fn, slots):
    """Trials drawn by Optuna's TPE sampler as slots free up, each told its metric (a
    failed one is told it failed). The study lives in <out_dir>/optuna.db: a rerun
    runs the trials an interrupted sweep had started again, with their values, and
    draws new ones up to n_trials finished ones (failed ones are drawn anew)."""
    optuna = _import_optuna()
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    from optuna.trial import TrialState
    space = {}
    for key, spec in sweep.search["space"].items():
        (kind, args), = spec.items()
        space[key] = (CategoricalDistribution(args) if kind == "choice" else
                      IntDistribution(int(args[0]), int(args[1])) if kind == "randint" else
                      FloatDistribution(float(args[0]), float(args[1]),
                                        log=kind == "loguniform"))
    study = optuna.create_study(
        study_name="fastrnn", direction="minimize", load_if_exists=True,
        storage=f"sqlite:///{(sweep.out_dir / 'optuna.db').resolve()}",
        sampler=optuna.samplers.TPESampler(seed=sweep.search["seed"]))
    n_trials = sweep.search["n_trials"]
    width = len(str(n_trials - 1))
    old = study.get_trials(deepcopy=False)
    finished = sum(t.state == TrialState.COMPLETE for t in old)
    sweep.trials[:] = [(f"t{t.number:0{width}d}", {key: t.params[key] for key in space})
                       for t in old if t.state == TrialState.COMPLETE]
    state = dict(done=finished, failed=0, running=0, total=n_trials)
    futures = {}
    with executor() as pool:
        def start(number, params):
            name = f"t{number:0{width}d}"
            params = {key: params[key] for key in space}  # in the sweep file's order
            sweep.trials.append((name, params))
            futures[pool.submit(trial_fn, name, trial_config(sweep, name, params))] = (
                number, name, params)

        for t in old:  # started by a sweep that was stopped: run them again
            if t.state == TrialState.RUNNING:
                start(t.number, t.params)
        while len(futures) < (slots or 1) and finished + state["failed"] + len(futures) \
                < n_trials:
            t = study.ask(space)
            start(t.number, t.params)
        state["running"] = len(futures)
        _report(progress, state)
        while futures:
            ended, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            for fut in ended:
                number, name, params = futures.pop(fut)
                row = _row_of(fut, name)
                results.add(row, params)
                if row["status"] == "ok" and row["metric"] is not None:
                    study.tell(number, row["metric"])
                    finished += 1
                    state["done"] += 1
                else:
                    study.tell(number, state=TrialState.FAIL)
                    state["failed"] += 1
                state["running"] = len(futures)
                _report(progress, state, row)
                if finished + state["failed"] + len(futures) < n_trials:
                    t = study.ask(space)
                    start(t.number, t.params)
    return results


def _row_of(fut, name):
    """A finished trial's row; a failed one if its worker died."""
    try:
        return fut.result()
    except Exception as e:  # the worker died (killed, out of memory, ...)
        return dict(trial=name, status="failed", metric=None, val_loss=None,
                    best_val_loss=None, train_loss=None, iterations=0, seconds=0.0,
                    it_per_s=0.0, error=f"worker died: {type(e).__name__}: {e}")


def _run_batch(pool, jobs, results, state, progress, trial_fn, slots):
    """Run jobs [(name, values, config, fields added to its row)] on the pool, adding
    each row to the results as it ends."""
    futures = {pool.submit(trial_fn, name, cfg): (name, vals, more)
               for name, vals, cfg, more in jobs}
    unfinished = len(futures)
    state["running"] = min(unfinished, slots or unfinished)
    _report(progress, state)
    for fut in cf.as_completed(futures):
        name, vals, more = futures[fut]
        unfinished -= 1
        state["running"] = min(unfinished, slots or unfinished)
        row = dict(_row_of(fut, name), **more)
        results.add(row, vals)
        state["done" if row["status"] == "ok" else "failed"] += 1
        _report(progress, state, row)


def _report(progress, state, row=None):
    if progress is not None:
        progress(state, row)


def summary(results, sweep, out):
    rows = [results.rows[n] for n, _ in sweep.trials if n in results.rows]
    # with halving, the trials that went furthest first (each row is its last rung's)
    ok = sorted((r for r in rows if r["status"] == "ok" and r["metric"] is not None),
                key=lambda r: (-r.get("rung", 0), r["metric"]))
    failed = [r for r in rows if r["status"] != "ok"]
    axes = list(sweep.trials[0][1]) if sweep.trials else []
    if sweep.search is not None:
        axes = list(sweep.search["space"])
    halving = sweep.halving is not None
    print(f"\n{len(ok)} of {len(sweep.trials)} trials ranked by {sweep.metric} "
          f"({METRICS[sweep.metric]}), "
          + ("the furthest rung first, then " if halving else "") + "best first:", file=out)
    rung = f"{'rung':>4} {'budget':>8}  " if halving else ""
    head = f"{'rank':>4}  {'trial':<6} {rung}{sweep.metric:>14}  " + "  ".join(axes)
    print(head, file=out)
    for i, r in enumerate(ok, 1):
        vals = "  ".join(f"{r['params'][a]}" for a in axes)
        rung = f"{r.get('rung', 0):>4} {r.get('budget', 0):>8g}  " if halving else ""
        print(f"{i:>4}  {r['trial']:<6} {rung}{r['metric']:>14.4f}  {vals}", file=out)
    for r in failed:
        print(f"failed {r['trial']}: {r['error']}", file=out)
    print(f"results: {results.csv} and {results.jsonl}", file=out)
    _plot(ok, axes, sweep)
    return len(failed)


def _plot(ok, axes, sweep):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if not ok or not axes:
        return
    fig, panes = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.5), squeeze=False)
    for ax, key in zip(panes[0], axes):
        xs = [r["params"][key] for r in ok]
        numeric = all(isinstance(x, (int, float)) for x in xs)
        ax.plot(xs if numeric else [str(x) for x in xs], [r["metric"] for r in ok], "o")
        if key == "optim.lr" and numeric:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(sweep.metric)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = sweep.out_dir / ".sweep.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(sweep.out_dir / "sweep.png")


def compile_trials(sweep, threads, say):
    """Compile the kernels the sweep's unfinished trials run, here and once, before its
    workers start: on a cold Numba cache each worker would otherwise compile the same
    kernels at the same time, every core busy with one compile (a 2-trial sweep on 2
    workers: 39.5 s of CPU, 22.1 s compiled once, the same wall time on an idle
    machine), and race on the cache files. Kernels already compiled are not compiled
    again (compile.compile_call); a trial whose config is refused is left to fail in
    its worker. Returns the seconds spent."""
    from .compile import compile_trainer
    from .trainer import Trainer
    results = Results(sweep)
    took, texts = 0.0, {}
    for name, values in sweep.trials or [("t0", {})]:
        if results.done(name):
            continue
        try:
            config = Config.from_dict(trial_config(sweep, name, values),
                                      where=f"trial {name}")
            path = config.data.path
            if path not in texts:  # (read once, not per trial)
                texts[path] = read_corpus(path)
            trainer = Trainer(config, text=texts[path])
        except UserError:
            continue
        trainer.threads = min(trainer.threads, threads)  # the workers' NUMBA_NUM_THREADS
        took += compile_trainer(trainer, say, one_thread=False)
    return took


def _claim_folder(sweep):
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastrnn.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="sweep file (YAML), e.g. configs/sweeps/lr_hidden.yaml")
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
            with dask_executor(args.address):
                pass  # reachable: fail fast, before any trial starts or folder is made
            executor = lambda: dask_executor(args.address)  # noqa: E731
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
        _claim_folder(sweep)
    except UserError as e:
        print(f"fastrnn: error: {e}", file=sys.stderr)
        return 2
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
    results = run_sweep(sweep, executor, progress=_printer(total),
                        slots=args.workers if args.executor == "local" else None,
                        say=lambda line: print(line, flush=True))
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
