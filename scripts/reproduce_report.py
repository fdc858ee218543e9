"""Reproduce the report fastrnn grew from, with fastrnn's runner: min-char-rnn on
tinyshakespeare (hidden 100, smoothed loss 44.43 at iteration 997,100) and a 3-layer
RNN of 512 (42.67 at 458,900, 42.90 at 468,200, 44.15 at 421,000).

    python scripts/reproduce_report.py [--rows a,b,c] [--threads N] [section.key=value ...]
    python scripts/reproduce_report.py --quick       # each row to 3,000 iterations
    python scripts/reproduce_report.py --plot-only   # table and plot from the runs there

Rows: (a) configs/shakespeare.yaml in float64 with min-char-rnn's arithmetic (to the
bit), at the report's lr 0.01, to 1,000,000 iterations; (b) the same at min-char-rnn's
lr 0.1; (c) configs/shakespeare_3layer.yaml as it is, to 470,000 iterations. Overrides
given here apply to every row after its own. Each row is a run folder in runs/report/
(--quick: runs/report_quick/), run one after another; a rerun resumes an unfinished row
from its checkpoint (the runner's exact resume) and skips a finished one. Writes
docs/report.md and docs/report_smooth_loss.png (--quick: into its runs folder).
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import fastrnn
from fastrnn.config import Config, load_yaml
from fastrnn.errors import UserError
from fastrnn.models import FAMILIES

import _runs as R

PROG = "reproduce_report.py"


@dataclass(frozen=True)
class Row:
    name: str
    what: str          # what sets it apart, for the plot's legend
    config: str        # relative to the repository
    overrides: tuple   # section.key=value, after the config
    iters: int         # train.max_iters
    report: dict       # the report's smoothed loss at its iterations


EXACT = ("train.dtype=float64", "train.exact=true")  # min-char-rnn's arithmetic, bit for bit
ROWS = (
    Row("a", "min-char-rnn at the report's lr 0.01", "configs/shakespeare.yaml",
        EXACT + ("optim.lr=0.01",), 1_000_000, {997_100: 44.43}),
    Row("b", "min-char-rnn at its own lr 0.1", "configs/shakespeare.yaml",
        EXACT + ("optim.lr=0.1",), 1_000_000, {997_100: 44.43}),
    Row("c", "the 3-layer config as it is", "configs/shakespeare_3layer.yaml", (), 470_000,
        {421_000: 44.15, 458_900: 42.67, 468_200: 42.90}),
)
EVERY_ROW = ("train.log_every=100",)  # a metrics row at each of the report's iterations
QUICK_ITERS = 3_000
SAMPLE_SEED, SAMPLE_LENGTH = 0, 200


@dataclass(frozen=True)
class Plan:
    overrides: list    # the row's, then every row's, then the command line's
    target: int        # iterations to train to
    folder: Path       # the run folder
    config: Config     # the resolved config


def plan(row, iters, extra, runs):
    target = row.iters if iters is None else iters
    overrides = [*row.overrides, f"train.max_iters={target}", *EVERY_ROW, *extra]
    return Plan(overrides, target, runs / row.name, load_yaml(R.ROOT / row.config, overrides))


def model(cfg):
    """'3 x 512 rnn, float32, adagrad lr 0.002, init xavier' and the like."""
    m, t, o = cfg.model, cfg.train, cfg.optim
    exact = " exact" if t.dtype == "float64" and t.exact else ""
    init = FAMILIES[m.kind].default_init if m.init == "auto" else m.init
    return (f"{m.layers} x {m.hidden} {m.kind}, {t.dtype}{exact}, {o.name} lr {o.lr:g}, "
            f"init {init}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=f"python scripts/{PROG}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="section.key=value for every row")
    ap.add_argument("--rows", default="a,b,c", help="the rows to run and report (a,b,c)")
    ap.add_argument("--quick", action="store_true",
                    help=f"each row to {QUICK_ITERS:,} iterations, in runs/report_quick")
    ap.add_argument("--iters", type=int, help="train every row to this many iterations")
    ap.add_argument("--threads", type=int, help="train.threads of every row")
    ap.add_argument("--plot-only", action="store_true",
                    help="no training: the table and plot from the runs there are")
    ap.add_argument("--runs", type=Path, help="the rows' run folders go in here "
                    "(default runs/report, or runs/report_quick)")
    ap.add_argument("--out", type=Path, help="report.md and report_smooth_loss.png go here "
                    "(default docs, or the runs folder with --quick)")
    args = ap.parse_intermixed_args(argv)
    runs = args.runs or R.ROOT / "runs" / ("report_quick" if args.quick else "report")
    out = args.out or (runs if args.quick else R.ROOT / "docs")
    iters = QUICK_ITERS if args.quick and args.iters is None else args.iters
    extra = list(args.overrides) + ([f"train.threads={args.threads}"]
                                    if args.threads is not None else [])
    try:
        rows = choose(args.rows)
        if iters is not None and iters < 1:
            raise UserError(f"--iters must be at least 1, got {iters}")
        if args.threads is not None and args.threads < 0:
            raise UserError(f"--threads must be 0 (all cores) or more, got {args.threads}")
        plans = {row.name: plan(row, iters, extra, runs) for row in rows}
        for row in rows:  # every folder checked too before anything runs
            R.resumed_from(plans[row.name].folder)
            R.ledger(plans[row.name].folder)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    failed = []
    if not args.plot_only:
        failed, code = R.train_all(PROG, train, rows, plans)
        if code is not None:
            return code
    try:
        text = report(rows, plans, sys.argv[1:] if argv is None else argv)
        print(text)
        R.write(out / "report.md", text)
        print(f"written to {out / 'report.md'}", file=sys.stderr)
        plt = R.pyplot(PROG)
        if plt is None:
            return 2
        plot(plt, rows, plans, out / "report_smooth_loss.png")
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"plot written to {out / 'report_smooth_loss.png'}", file=sys.stderr)
    return 1 if failed else 0


def choose(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {row.name: row for row in ROWS}
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise UserError(f"--rows {text}: the rows are {', '.join(known)} (e.g. --rows a,c)")
    return [known[n] for n in dict.fromkeys(names)]


def train(rows, plans):
    """Each unfinished row's run, one after another; returns the rows that failed."""
    failed = []
    for row in rows:
        p = plans[row.name]
        done = R.resumed_from(p.folder)[0]
        if done >= p.target:
            print(f"row {row.name}: finished ({done:,} iterations), skipped", file=sys.stderr)
            continue
        print(f"row {row.name}: {row.what}, iteration {done:,} to {p.target:,} in "
              f"{R.shown(p.folder)} (the runner's output in {R.LOG})", file=sys.stderr,
              flush=True)
        with R.bar(total=p.target, initial=done, desc=f"row {row.name}", unit="it") as b:
            shown = [done]

            def watch(last):
                if last is not None and last["iteration"] > shown[0]:
                    b.update(last["iteration"] - shown[0])
                    shown[0] = last["iteration"]
            code, error = R.invoke(R.ROOT / row.config, p.overrides, p.folder, watch)
        if code != 0:
            failed.append(row.name)
            print(f"row {row.name} failed: {error} (see {R.shown(p.folder / R.LOG)})",
                  file=sys.stderr)
    return failed


def report(rows, plans, argv):
    """The Markdown report: the table, how each row was run, and a sample of each."""
    cells, commands, samples = [], [], []
    for row in rows:
        folder = plans[row.name].folder
        metrics = R.read_metrics(folder / "metrics.csv")
        p = plans[row.name]
        entries = R.ledger(folder)  # how the row was run, else how it would be
        command = entries[-1]["command"] if entries else R.runner_command(
            R.ROOT / row.config, p.overrides, folder)
        commands.append(f"- {row.name}, {row.what}: `{command}`")
        iteration, _, cfg = R.resumed_from(folder)
        what = model(cfg or p.config)
        if not metrics or not iteration:
            cells.append([row.name, what, "not run"] + ["—"] * 5)
            continue
        cpu, whole = R.cpu_seconds(entries, iteration)
        minutes = metrics[-1]["minutes"]
        val = [m for m in metrics if m["val_nats"] is not None]
        cells.append([
            row.name, what, f"{iteration:,}",
            "<br>".join(at_point(metrics, it, loss) for it, loss in row.report.items()),
            (f"{val[-1]['val_nats']:.4f}" + ("" if val[-1]["iteration"] == iteration
                                             else f" at {val[-1]['iteration']:,}"))
            if val else "—",
            R.clock(minutes) if minutes is not None else "—",
            f"{iteration / (60 * minutes):,.0f}" if minutes else "—",
            R.clock(cpu / 60) + ("" if whole else " *")])
        text = fastrnn.sample(R.final_checkpoint(folder), length=SAMPLE_LENGTH,
                              seed=SAMPLE_SEED)
        samples.append(f"Row {row.name}, at iteration {iteration:,}:\n\n{R.fenced(text)}\n")
    head = ["row", "model", "iterations", "smoothed loss (the report's)",
            "final validation (nats/char)", "wall time", "it/s", "CPU time"]
    notes = [
        "Smoothed loss: min-char-rnn's (decay 0.999, summed over the 25 characters of a "
        "window), at the iteration of metrics.csv nearest the report's (said when it "
        "differs), beside the report's figure (for rows a and b its min-char-rnn run, "
        "whose code has lr 0.01). Rows a and b train on the first 90% of the text "
        "(fastrnn holds out the last 10% for validation), min-char-rnn on all of it. "
        "Wall time: the runner's `minutes` (training and validation, compiling left "
        "out, over every invocation); it/s: iterations over that time. CPU time: user and "
        "system time of the runner's processes, start-up and compiling included"
        + (" (* an invocation's was not recorded: it was killed)."
           if any(c[-1].endswith("*") for c in cells) else ".")]
    return "\n".join([
        R.header("Reproducing the report", PROG, argv),
        R.table(head, cells), "", *notes, "",
        "How each row runs (a rerun of this script resumes it the same way):", "",
        *commands, "",
        f"## Samples\n\n{SAMPLE_LENGTH} characters from each row's final checkpoint "
        f"(`fastrnn.sample(run folder, length={SAMPLE_LENGTH}, seed={SAMPLE_SEED})`, "
        f"going on from where training stopped):\n",
        *(samples or ["(no row has a checkpoint yet)\n"])])


def at_point(metrics, iteration, loss):
    """Our smoothed loss at the row nearest `iteration`, beside the report's."""
    near = min(metrics, key=lambda m: abs(m["iteration"] - iteration))
    where = "" if near["iteration"] == iteration else f" at {near['iteration']:,}"
    return f"{near['smooth_loss']:.2f}{where} ({loss:.2f} at {iteration:,})"


def plot(plt, rows, plans, path):
    """Smoothed loss against iterations, every row, the report's figures marked."""
    fig, ax = plt.subplots(figsize=(9, 5))
    lows, highs = [], []
    for row in rows:
        metrics = R.read_metrics(plans[row.name].folder / "metrics.csv")
        if metrics:
            ax.plot([m["iteration"] for m in metrics], [m["smooth_loss"] for m in metrics],
                    lw=1, label=f"{row.name}: {row.what}")
            lows.append(min(m["smooth_loss"] for m in metrics))
            highs.append(max(m["smooth_loss"] for m in metrics))
    right = max(max(plans[row.name].target, R.resumed_from(plans[row.name].folder)[0])
                for row in rows)
    points = sorted({p for row in rows for p in row.report.items() if p[0] <= right})
    if points:
        ax.plot(*zip(*points), "k*", ms=10, label="the report's smoothed loss")
        for it, loss in points:
            ax.annotate(f"{loss:.2f}", (it, loss), textcoords="offset points",
                        xytext=(7, -3), fontsize=8)
        lows.append(min(loss for _, loss in points))
        highs.append(max(loss for _, loss in points))
    if lows:  # from just below the lowest to 25 above it (the first iterations are ~104)
        ax.set_ylim(min(lows) - 1, min(max(highs) + 1, min(lows) + 25))
    ax.set_xlim(0, right)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("iteration")
    ax.set_ylabel("smoothed loss (min-char-rnn's, nats per 25 characters)")
    ax.set_title("Reproducing the report: smoothed training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    R.save_figure(plt, fig, path)


if __name__ == "__main__":
    sys.exit(main())
