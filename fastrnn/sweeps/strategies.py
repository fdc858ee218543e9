"""Running a sweep's trials on an executor: all of them (a grid, random draws), by
successive halving in rungs, or as Optuna's sampler draws them."""
import concurrent.futures as cf

from ..errors import UserError

from .executors import WorkersGone
from .results import Results
from .spec import import_optuna, rung_config, rung_plan, trial_config
from .trial import run_trial


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
    optuna = import_optuna()
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
    from sqlalchemy.engine import URL
    db = (sweep.out_dir / "optuna.db").resolve()
    # the path escaped, so that a ? or % in out_dir stays part of the file's name
    storage = URL.create("sqlite", database=str(db)).render_as_string(hide_password=False)
    try:
        study = optuna.create_study(
            study_name="fastrnn", direction="minimize", load_if_exists=True,
            storage=storage, sampler=optuna.samplers.TPESampler(seed=sweep.search["seed"]))
    except Exception as e:  # noqa: BLE001 -- whatever a damaged database raises
        raise UserError(f"{db} is not a readable Optuna study ({type(e).__name__}); "
                        f"delete it to start the search afresh") from None
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
    """A finished trial's row; a failed one if its worker died. WorkersGone (a Dask
    cluster left without workers) ends the sweep instead."""
    try:
        return fut.result()
    except WorkersGone:
        raise
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
