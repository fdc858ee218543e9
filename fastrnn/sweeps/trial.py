"""One trial: an ordinary run in its own folder, its output kept in log.txt, its
outcome a result row."""
import io
import math
import time
from pathlib import Path

from ..config import Config
from ..errors import UserError


def run_trial(name, cfg):
    """Run one trial in this process; returns its result row. Never raises: a failure is
    recorded with its error. The run's own output goes to <run folder>/log.txt as it is
    written."""
    from ..run import Run
    row = dict(trial=name, status="failed", metric=None, val_loss=None, best_val_loss=None,
               train_loss=None, iterations=0, seconds=0.0, it_per_s=0.0, error="")
    t0 = time.perf_counter()
    log = run = None
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
        if run is not None:
            run.release()
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
