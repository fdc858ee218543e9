"""Hyperparameter sweeps: many ordinary runs from one sweep file, in parallel.

By concern: spec (sweep files, their trials and each trial's config), trial (running
one), results (results.csv and results.jsonl), executors (a local process pool or Dask),
strategies (all trials, successive halving, Optuna), report (the ranked table and
sweep.png) and cli (the command, `python -m fastrnn.sweep`, whose help says more).
"""
from .cli import claim_folder, compile_trials, main
from .executors import dask_executor, local_executor, probe_scheduler
from .report import summary
from .results import Results
from .spec import Sweep, load_halving, load_sweep, rung_config, rung_plan, trial_config
from .strategies import run_sweep
from .trial import TrialLog, run_trial

__all__ = ["Results", "Sweep", "TrialLog", "claim_folder", "compile_trials",
           "dask_executor", "load_halving", "load_sweep", "local_executor", "main",
           "probe_scheduler", "rung_config", "rung_plan", "run_sweep", "run_trial",
           "summary", "trial_config"]
