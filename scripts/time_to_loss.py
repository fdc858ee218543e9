"""Validation loss against wall-clock minutes of training: each config run for its time
budget (train.max_minutes), beside nanoGPT's shakespeare_char.

    python scripts/time_to_loss.py [CONFIG ...] [section.key=value ...] [--seeds 0,1,2]
    python scripts/time_to_loss.py --plot-only    # table and plot from the runs there
                                                  # (every seed there, without --seeds)

CONFIG defaults to configs/shakespeare_3min.yaml and configs/shakespeare_30min.yaml; the
overrides apply to every run. Runs are timed, so they run one after another, each in
runs/time_to_loss/<config name>/seed<S>; a rerun resumes an unfinished run from its
checkpoint for the rest of its minutes (the runner's `minutes`, compiling left out, go
on across resumes) and skips a finished one. Writes docs/time_to_loss.png and
docs/time_to_loss.md.
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from fastrnn.config import load_yaml
from fastrnn.errors import UserError

import _runs as R

PROG = "time_to_loss.py"
CONFIGS = ("configs/shakespeare_3min.yaml", "configs/shakespeare_30min.yaml")
# nanoGPT's shakespeare_char (its README): validation loss in nats per character, on the
# last 10% of tinyshakespeare, as fastrnn holds out
NANOGPT = ((1.4697, "nanoGPT shakespeare_char, GPU (10.7M parameters, ~3 min on an A100)"),
           (1.88, "nanoGPT shakespeare_char, its CPU settings (a few minutes on a laptop)"))


@dataclass(frozen=True)
class TimedRun:
    config: Path
    seed: int
    overrides: list    # the command line's, then the seed
    budget: float      # train.max_minutes (None: none, the run goes to train.max_iters)
    max_iters: int
    folder: Path


def main(argv=None):
    ap = argparse.ArgumentParser(prog=f"python scripts/{PROG}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("args", nargs="*", metavar="CONFIG or section.key=value",
                    help="config files (default: the 3- and 30-minute Shakespeare "
                    "configs) and overrides for every run")
    ap.add_argument("--seeds", help="train.seed values, e.g. 0,1,2 (default: each "
                    "config's own)")
    ap.add_argument("--threads", type=int, help="train.threads of every run")
    ap.add_argument("--plot-only", action="store_true",
                    help="no training: the table and plot from the runs there are")
    ap.add_argument("--runs", type=Path, default=R.ROOT / "runs" / "time_to_loss",
                    help="the run folders go in here (default runs/time_to_loss)")
    ap.add_argument("--out", type=Path, default=R.ROOT / "docs",
                    help="time_to_loss.md and time_to_loss.png go here (default docs)")
    args = ap.parse_intermixed_args(argv)
    overrides = [a for a in args.args if "=" in a]
    configs = [Path(a) for a in args.args if "=" not in a] or [R.ROOT / c for c in CONFIGS]
    if args.threads is not None:
        overrides.append(f"train.threads={args.threads}")
    try:
        runs = plan(configs, overrides, args.seeds, args.runs, args.plot_only)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    failed = []
    if not args.plot_only:
        failed, code = R.train_all(PROG, train, runs)
        if code is not None:
            return code
    text = report(runs, sys.argv[1:] if argv is None else argv)
    print(text)
    try:
        R.write(args.out / "time_to_loss.md", text)
        print(f"written to {args.out / 'time_to_loss.md'}", file=sys.stderr)
        plt = R.pyplot(PROG)
        if plt is None:
            return 2
        plot(plt, runs, args.out / "time_to_loss.png")
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"plot written to {args.out / 'time_to_loss.png'}", file=sys.stderr)
    return 1 if failed else 0


def plan(configs, overrides, seeds, runs, found=False):
    """The runs, every config read and checked and every folder's state too, before
    anything runs; UserError names what is wrong. found (--plot-only without --seeds):
    every seed a config's folder holds a run of."""
    missing = next((c for c in configs if not c.exists()), None)
    if missing:
        raise UserError(f"config file not found: {R.shown(missing)}; give the configs to "
                        f"run, e.g. python scripts/{PROG} configs/shakespeare.yaml "
                        f"train.max_minutes=3")
    names = [c.stem for c in configs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise UserError(f"two configs are named {twice}; their runs would share "
                        f"{R.shown(runs / twice)}: rename one")
    if seeds is not None:
        try:
            seeds = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise UserError(f"--seeds {seeds}: give whole numbers, e.g. --seeds 0,1,2") \
                from None
    out = []
    for config in configs:
        held = sorted(int(p.name[4:]) for p in (runs / config.stem).glob("seed*")
                      if p.name[4:].isdigit()) if found and seeds is None else []
        for seed in seeds or held or [load_yaml(config, overrides).train.seed]:
            ov = [*overrides, f"train.seed={seed}"]
            cfg = load_yaml(config, ov)
            run = TimedRun(config, seed, ov, cfg.train.max_minutes, cfg.train.max_iters,
                      runs / config.stem / f"seed{seed}")
            R.ledger(run.folder)
            done_minutes(run)
            out.append(run)
    return out


def done_minutes(run):
    """The minutes a run folder has trained, from its final checkpoint (0 without one);
    UserError for a run from before the runner counted them."""
    iteration, extra, _ = R.resumed_from(run.folder)
    if iteration and "minutes" not in extra:
        raise UserError(f"{R.shown(R.final_checkpoint(run.folder))} does not say how many "
                        f"minutes its run trained (a fastrnn from before they were "
                        f"counted); delete {R.shown(run.folder)} to run it again")
    return extra.get("minutes", 0.0)


def finished(run):
    """Whether the run's last invocation ended normally with this budget: its time (or
    iterations) ran out, or it stopped early."""
    entries = R.ledger(run.folder)
    return bool(entries) and entries[-1]["exit"] == 0 and entries[-1].get("target") == \
        dict(max_minutes=run.budget, max_iters=run.max_iters)


def train(runs):
    """Each unfinished run for the rest of its minutes, one after another; returns the
    runs that failed."""
    failed = []
    for run in runs:
        name = f"{run.config.stem} seed {run.seed}"
        if finished(run):
            print(f"{name}: finished, skipped", file=sys.stderr)
            continue
        done = done_minutes(run)
        ov = list(run.overrides)
        if run.budget is not None:
            if done >= run.budget:
                print(f"{name}: its {run.budget:g} minutes are trained, skipped",
                      file=sys.stderr)
                continue
            ov.append(f"train.max_minutes={run.budget - done!r}")
        budget = "to " + (f"{run.budget:g} minutes" if run.budget is not None
                          else f"{run.max_iters:,} iterations")
        print(f"{name}: from minute {done:.2f} {budget} in {R.shown(run.folder)} (the "
              f"runner's output in {R.LOG})", file=sys.stderr, flush=True)
        with R.bar(total=run.budget, initial=done, desc=name, unit="min",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} min"
                   if run.budget is not None else "{desc}: {n:.2f} min") as b:
            shown = [done]

            def watch(last):
                if last is not None and last["minutes"] is not None \
                        and last["minutes"] > shown[0]:
                    b.update(last["minutes"] - shown[0])
                    shown[0] = last["minutes"]
            code, error = R.invoke(run.config, ov, run.folder, watch,
                                   target=dict(max_minutes=run.budget,
                                               max_iters=run.max_iters))
        if code != 0:
            failed.append(name)
            print(f"{name} failed: {error} (see {R.shown(run.folder / R.LOG)})",
                  file=sys.stderr)
    return failed


def curve(run):
    """(minutes, validation loss) of each validation of the run."""
    return [(m["minutes"], m["val_nats"]) for m in R.read_metrics(run.folder / "metrics.csv")
            if m["val_nats"] is not None and m["minutes"] is not None]


def report(runs, argv):
    """The Markdown report: a row per run."""
    cells = []
    for run in runs:
        command = R.runner_command(run.config, run.overrides, run.folder)
        metrics = R.read_metrics(run.folder / "metrics.csv")
        points = curve(run)
        if not metrics or not points:
            cells.append([run.config.stem, run.seed, "not run", "—", "—", "—",
                          f"`{command}`"])
            continue
        minute, best = min(points, key=lambda p: p[1])
        last = metrics[-1]
        cells.append([run.config.stem, run.seed, f"{best:.4f}", f"{minute:.2f}",
                      f"{last['minutes']:.2f}" if last["minutes"] is not None else "—",
                      f"{last['iteration']:,}", f"`{command}`"])
    head = ["config", "seed", "best validation (nats/char)", "at minute", "minutes",
            "iterations", "command"]
    refs = "; ".join(f"{text}: {loss}" for loss, text in NANOGPT)
    return "\n".join([
        R.header("Validation loss against minutes of training", PROG, argv),
        R.table(head, cells), "",
        "Minutes: the runner's `minutes` in metrics.csv, the wall-clock time of the run "
        "(training and validation; compiling left out), over every invocation of it (a "
        "resumed run is given the minutes it has left as train.max_minutes). "
        f"For comparison, {refs} nats/char.", ""])


def plot(plt, runs, path):
    """Validation loss against minutes: a line per config, a thin one per seed when a
    config has several, and nanoGPT's figures."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = {}
    per_config = {}
    for run in runs:
        per_config[run.config] = per_config.get(run.config, 0) + 1
    losses = []
    for run in runs:
        points = curve(run)
        if not points:
            continue
        several = per_config[run.config] > 1
        first = run.config not in colours
        colour = colours.setdefault(run.config, f"C{len(colours)}")
        ax.plot(*zip(*points), "-", color=colour, lw=0.8 if several else 1.8,
                alpha=0.7 if several else 1,
                label=run.config.stem + (" (a line per seed)" if several else "")
                if first else None)
        losses += [loss for _, loss in points]
    for (loss, text), style in zip(NANOGPT, ("--", ":")):
        ax.axhline(loss, color="k", ls=style, lw=1, label=f"{text}: {loss}")
    if losses:
        ax.set_ylim(min(min(losses), NANOGPT[0][0]) - 0.05,
                    max(2.0, min(max(losses), 3.0)) + 0.05)
    ax.set_xlim(left=0)
    ax.set_xlabel("wall-clock minutes of training (validation included, compiling not)")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("Time to loss on tinyshakespeare")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    R.save_figure(plt, fig, path)


if __name__ == "__main__":
    sys.exit(main())
