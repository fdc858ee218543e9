"""A finished sweep's report: its trials ranked by the metric, its failures, and
sweep.png (the metric against each axis, with matplotlib)."""
from ..errors import printable
from ..files import atomic_file
from .spec import METRICS


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
    # each column as wide as its header or its widest value
    values = [[str(r["params"][a]) for a in axes] for r in ok]
    widths = [max([len(a)] + [len(v[j]) for v in values]) for j, a in enumerate(axes)]
    trial = max([6] + [len(r["trial"]) for r in ok])
    rung = f"{'rung':>4} {'budget':>8}  " if halving else ""
    head = (f"{'rank':>4}  {'trial':<{trial}} {rung}{sweep.metric:>14}  "
            + "  ".join(f"{a:<{w}}" for a, w in zip(axes, widths)))
    print(head.rstrip(), file=out)
    for i, (r, vals) in enumerate(zip(ok, values), 1):
        vals = "  ".join(f"{v:<{w}}" for v, w in zip(vals, widths))
        rung = f"{r.get('rung', 0):>4} {r.get('budget', 0):>8g}  " if halving else ""
        print(f"{i:>4}  {r['trial']:<{trial}} {rung}{r['metric']:>14.4f}  {vals}".rstrip(),
              file=out)
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
        labels = [printable(str(x)).replace("$", r"\$") for x in xs]  # ($: not math)
        ax.plot(xs if numeric else labels, [r["metric"] for r in ok], "o")
        if key == "optim.lr" and numeric:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(sweep.metric)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_file(sweep.out_dir / "sweep.png") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
