"""What the scripts share: the runner in a child process on a run folder, resuming what
the folder holds, each invocation's wall and CPU time kept beside it; metrics.csv read
back; the machine; Markdown tables; outputs written atomically; matplotlib for plots."""
import csv
import datetime
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import fastrnn
from fastrnn import checkpoint
from fastrnn.errors import UserError
from fastrnn.files import atomic_file, write_atomic

ROOT = Path(__file__).resolve().parent.parent  # the repository: configs/, runs/, docs/
LEDGER = "invocations.json"  # [{from, to, wall_s, cpu_s, exit, ...}], one per invocation
LOG = "log.txt"  # the runner's output, appended


def shown(path):
    """A path as a command line would give it: relative to the repository if inside."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def runner_command(config, overrides, folder):
    """The runner's command line on a run folder, as invoke() runs it."""
    return shlex.join(["python", "-m", "fastrnn.run", shown(config), *overrides,
                       f"train.out_dir={shown(folder)}", "train.resume=true"])


def final_checkpoint(folder):
    """The checkpoint the runner resumes a folder from: latest.npz, else best.npz, else
    None."""
    return next((Path(folder) / name for name in (checkpoint.LATEST, checkpoint.BEST)
                 if (Path(folder) / name).is_file()), None)


def resumed_from(folder):
    """(iteration, extra, config) of the folder's final checkpoint, or (0, {}, None)
    without one; UserError if it is damaged."""
    path = final_checkpoint(folder)
    if path is None:
        return 0, {}, None
    arrays = checkpoint.read(path)
    return int(arrays["cursor"][1]), arrays["extra"], arrays["config"]


def ledger(folder):
    """The folder's invocations.json (empty without one); UserError if it is damaged."""
    path = Path(folder) / LEDGER
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path} cannot be read ({e}); delete it (the CPU times of the "
                        f"invocations so far are lost with it)") from None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("command"), str)
            and all(isinstance(e.get(k), (int, float))
                    for k in ("from", "to", "wall_s", "cpu_s", "exit"))
            for e in entries):
        raise UserError(f"{path} is not a list of invocations; delete it (the CPU times "
                        f"of the invocations so far are lost with it)")
    return entries


def invoke(config, overrides, folder, watch, **note):
    """Run `python -m fastrnn.run config overrides` on the run folder, resuming what it
    holds, its output appended to the folder's log.txt; watch(row) about every second
    with metrics.csv's last row (None before the first). The invocation (iterations from
    and to, wall and CPU seconds, exit code, and `note`) is appended to invocations.json.
    Returns (exit code, the run's error line or ""). Ctrl-C reaches the runner too (one
    process group): it writes its checkpoint, and the KeyboardInterrupt is raised here
    once that is recorded."""
    folder = Path(folder)
    entries = ledger(folder)
    start = resumed_from(folder)[0]
    command = [sys.executable, "-m", "fastrnn.run", str(config), *overrides,
               f"train.out_dir={json.dumps(str(folder))}", "train.resume=true",
               "train.overwrite=false"]
    package = str(Path(fastrnn.__file__).resolve().parent.parent)  # this fastrnn
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package, os.environ.get("PYTHONPATH")) if p))
    log_path = folder / LOG
    try:
        folder.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", encoding="utf-8")
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
    except OSError as e:
        raise UserError(f"cannot write {log_path} ({e.strerror or e}); free space or fix "
                        f"the folder, then run the same command again") from None
    said_from = log.tell()  # this invocation's output starts here
    with log:
        t0, c0 = time.perf_counter(), os.times()
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=env)
        interrupted = False
        try:
            while child.poll() is None:
                watch(last_row(folder / "metrics.csv"))
                time.sleep(1)
        except KeyboardInterrupt:
            interrupted = True
            child.wait()
        wall, c1 = time.perf_counter() - t0, os.times()
    end = resumed_from(folder)[0]
    entries.append(dict(
        note, date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=runner_command(config, overrides, folder), exit=child.returncode,
        wall_s=round(wall, 3),
        cpu_s=round(c1.children_user - c0.children_user + c1.children_system
                    - c0.children_system, 3),
        **{"from": start, "to": end}))
    write(folder / LEDGER, json.dumps(entries, indent=1) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    watch(last_row(folder / "metrics.csv"))
    error = ""
    if child.returncode != 0:
        with open(log_path, "rb") as f:
            f.seek(said_from)
            lines = f.read().decode("utf-8", "replace").splitlines()
        said = [ln for ln in lines if "error" in ln]
        error = said[-1] if said else f"the runner exited with code {child.returncode}"
    return child.returncode, error


def train_all(prog, train, *args):
    """train(*args), which returns the runs that failed; on Ctrl-C or bad input, the
    line that says so and the exit code instead: (failed, None) or (None, code)."""
    try:
        return train(*args), None
    except KeyboardInterrupt:
        print("\ninterrupted; the same command again goes on from the checkpoints",
              file=sys.stderr)
        return None, 130
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return None, 2


def cpu_seconds(entries, iteration):
    """The CPU seconds of the invocations that trained a run to `iteration`, and whether
    they are all recorded (each went on from where the last stopped: a killed
    invocation leaves a gap)."""
    whole = bool(entries) and entries[0]["from"] == 0 and entries[-1]["to"] == iteration \
        and all(a["to"] == b["from"] for a, b in zip(entries, entries[1:]))
    return sum(e["cpu_s"] for e in entries), whole


def _number(text):
    return float(text) if text not in (None, "") else None


def _row(r):
    """A metrics.csv row as numbers; ValueError (or TypeError, KeyError) if damaged."""
    return dict(iteration=int(r["iteration"]), smooth_loss=float(r["smooth_loss"]),
                val_nats=_number(r["val_nats"]), minutes=_number(r.get("minutes")))


def read_metrics(path):
    """The rows of a run's metrics.csv that parse (a damaged line is skipped), as numbers:
    iteration, smooth_loss, val_nats and minutes (None where empty)."""
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            for r in csv.DictReader(f):
                try:
                    rows.append(_row(r))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        return []
    return rows


def last_row(path):
    """metrics.csv's last whole row (read from its end), or None."""
    try:
        with open(path, "rb") as f:
            head = f.readline()
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(len(head), size - 4096))
            tail = f.read()
    except OSError:
        return None
    lines = tail.decode("utf-8", "replace").split("\n")[:-1]  # the last is unfinished
    if not lines:
        return None
    text = head.decode("utf-8", "replace") + lines[-1] + "\n"
    try:
        return _row(next(csv.DictReader(io.StringIO(text))))
    except (StopIteration, KeyError, TypeError, ValueError):
        return None


def machine():
    """'Intel(R) Xeon(R) Processor, 2 cores': the CPU model from /proc/cpuinfo (or
    lscpu) and the core count."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), None)
    except OSError:
        pass
    if not model:
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
            model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                          if ln.startswith("Model name")), None)
        except (OSError, subprocess.SubprocessError):
            pass
    return f"{model or platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores"


def header(title, script, argv):
    """A report's first lines: its title, and the command, machine and date."""
    command = shlex.join(["python", f"scripts/{script}", *argv])
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"# {title}\n\n`{command}` on {machine()}, {date}.\n"


def table(head, rows):
    """A Markdown table; | in a cell is escaped."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(head), line(["---"] * len(head))] + [line(r) for r in rows])


def fenced(text):
    """text in a Markdown code block whose fence no run of backticks in it can close."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def clock(minutes):
    seconds = int(round(minutes * 60))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write(path, text):
    """Write text to path atomically, making its folder; UserError if it cannot be."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode("utf-8"))
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or fix the "
                        f"folder, then run the same command again") from None


def pyplot(prog):
    """matplotlib.pyplot (drawing to files), or None after a line saying what to install."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"{prog}: matplotlib is not installed, so no plot (the table is written); "
              f"pip install 'fastrnn[plot]'", file=sys.stderr)
        return None
    return plt


def save_figure(plt, fig, path):
    """fig to path (a PNG) through a temporary file and a rename; UserError if it cannot
    be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            fig.savefig(f, format="png", dpi=100)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or fix the "
                        f"folder, then run the same command again") from None
    finally:
        plt.close(fig)


def bar(**kw):
    """A tqdm bar on a terminal (nothing otherwise: the row lines say what happens)."""
    from tqdm import tqdm
    return tqdm(file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True, **kw)
