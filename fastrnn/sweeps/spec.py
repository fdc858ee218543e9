"""Sweep files: reading and checking them, the trials they define, and each trial's
config (for a rung of successive halving too)."""
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np

from ..config import (SECTIONS, Config, _lookup, is_text, merge, parse_overrides,
                      read_text_file, read_yaml, read_yaml_file)
from ..errors import UserError
from .executors import WORKER_GRACE

METRICS = {"val_loss": "final validation loss (nats/char)",
           "best_val_loss": "best validation loss (nats/char)",
           "train_loss": "final smoothed training loss (nats/char)"}
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
MAX_TRIALS = 100_000  # a sweep's trials, each a run folder: far more is a mistake
MAX_BOUND = 1e15  # a distribution's bounds, halving's eta: beyond this, not a config value


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
    worker_grace: float = WORKER_GRACE  # Dask: seconds with no worker before it stops


def load_sweep(path, out_dir=None):
    """Read and check a sweep file, and the config its trials share (base and config:
    changes); UserError names what is wrong."""
    path = Path(path)
    raw = read_yaml_file(path, "sweep file")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a sweep file is a mapping (base, grid or random, ...)")
    known = {"base": str, "config": dict, "grid": dict, "random": dict, "n_trials": int,
             "seed": int, "metric": str, "out_dir": str, "halving": dict, "search": str,
             "threads": int, "worker_grace": (int, float)}
    optional = ("base", "config", "seed", "metric", "out_dir", "halving", "search",
                "threads", "worker_grace")
    raw = {k: v for k, v in raw.items() if not (v is None and k in optional)}
    for key, value in raw.items():
        _lookup(key, known, str(path), "sweep key")
        if not isinstance(value, known[key]) or isinstance(value, bool):
            raise UserError(f"{path}: '{key}' must be {_KINDS[known[key]]}, got {value!r}")
    base = {}
    if raw.get("base"):
        base_path = path.parent / raw["base"]  # an absolute base stays as it is
        try:
            base = read_yaml(read_text_file(base_path, f"{path}: base config"), base_path)
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
        count = math.prod(len(values) for values in axes.values())
        if count > MAX_TRIALS:
            raise UserError(f"{path}: the grid makes {count:,} trials, more than "
                            f"{MAX_TRIALS:,}; sweep fewer values (or draw random ones)")
        combos = list(itertools.product(*axes.values()))
        trials = [dict(zip(axes, combo)) for combo in combos]
    else:
        n = raw.get("n_trials")
        if n is None or n < 1:
            raise UserError(f"{path}: random axes need n_trials, a whole number >= 1")
        if n > MAX_TRIALS:
            raise UserError(f"{path}: n_trials is {n:,}, more than {MAX_TRIALS:,}; ask "
                            f"for fewer trials")
        seed = raw.get("seed", 0)
        if seed < 0:
            raise UserError(f"{path}: 'seed' must be a whole number >= 0, got {seed}")
        rng = np.random.default_rng(seed)
        draws = {key: _draw(key, spec, n, rng, path) for key, spec in axes.items()}
        trials = [{key: draws[key][i] for key in axes} for i in range(n)]
    width = len(str(len(trials) - 1))
    named = [(f"t{i:0{width}d}", values) for i, values in enumerate(trials)]
    out = Path(out_dir or raw.get("out_dir") or Path("runs") / "sweeps" / path.stem)
    if not is_text(str(out)):
        raise UserError(f"{path}: out_dir {str(out)!r} holds a NUL character or a lone "
                        f"surrogate (UTF-8 cannot hold them); choose another")
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
        import_optuna()
        search, named = dict(space=axes, n_trials=len(named), seed=raw.get("seed", 0)), []
    threads = raw.get("threads", 1)
    if threads < 1:
        raise UserError(f"{path}: 'threads' (each trial's kernel threads) must be at least "
                        f"1, got {threads}")
    grace = raw.get("worker_grace", WORKER_GRACE)
    if not 0 < grace <= MAX_BOUND:
        raise UserError(f"{path}: 'worker_grace' (the seconds a Dask sweep goes on with no "
                        f"worker) must be above 0 and finite, got {grace!r}")
    return Sweep(base, named, metric, out, halving, search, threads, float(grace))


def import_optuna():
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
    if (isinstance(eta, bool) or not isinstance(eta, (int, float))
            or not 2 <= eta <= MAX_BOUND):
        raise UserError(f"{where}: eta must be a number of at least 2 (the rung to rung "
                        f"growth of the budget, and the fraction 1/eta that goes on) and "
                        f"finite, got {eta!r}")
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


_KINDS = {str: "a string", dict: "a mapping", int: "a whole number",
          (int, float): "a number"}


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
    if not -MAX_BOUND <= low <= MAX_BOUND or not -MAX_BOUND <= high <= MAX_BOUND:
        raise UserError(f"{path}: axis '{key}': {kind} needs finite bounds within "
                        f"+-{MAX_BOUND:g}, got [{args[0]}, {args[1]}]")
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
