"""A sweep's results: results.csv and results.jsonl in its folder, appended as trials
end and read back by a rerun."""
import csv
import json
import os

from ..config import read_json
from ..errors import UserError

COLUMNS = ("trial", "status", "metric", "val_loss", "best_val_loss", "train_loss",
           "iterations", "seconds", "it_per_s", "error")


class Results:
    """results.csv and results.jsonl in the sweep folder, appended as trials end."""

    def __init__(self, sweep):
        self.sweep = sweep
        self.csv = sweep.out_dir / "results.csv"
        self.jsonl = sweep.out_dir / "results.jsonl"
        self.columns = COLUMNS + (("rung", "budget") if sweep.halving else ())
        self.rows = {}
        self.rungs = {}  # halving: {(trial, rung): its latest row}
        fix = "delete it (its finished trials then run again) or choose another --out-dir"
        for path in (self.csv, self.jsonl):
            if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
                raise UserError(f"{path} is not a file (a folder or a link); {fix}")
        if self.jsonl.exists():
            text = self.jsonl.read_text(encoding="utf-8", errors="replace")
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    row = read_json(line)
                except ValueError:  # a line cut short by a kill: that trial runs again
                    continue
                why = _damaged(row)
                if why:
                    raise UserError(f"{self.jsonl} line {n}: {why}; {fix}")
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
        # (a value UTF-8 cannot hold, a lone surrogate of a failed trial's, escaped)
        with open(self.csv, "a", newline="", encoding="utf-8", errors="backslashreplace") as f:
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


def _damaged(row):
    """What is wrong with a row of results.jsonl read back, or None."""
    if not isinstance(row, dict) or not isinstance(row.get("trial"), str):
        return "not a result row (no trial name)"
    if row.get("status") not in ("ok", "failed"):
        return f"trial {row['trial']}: status is {row.get('status')!r}, not ok or failed"
    if not isinstance(row.get("params"), dict):
        return f"trial {row['trial']}: its params are missing"
    for key in ("metric", "val_loss", "best_val_loss", "train_loss"):
        value = row.get(key)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, float))):
            return f"trial {row['trial']}: {key} is {value!r}, not a number"
    if "rung" in row and (isinstance(row["rung"], bool) or not isinstance(row["rung"], int)):
        return f"trial {row['trial']}: rung is {row['rung']!r}, not a whole number"
    return None
