"""The main job: train from a YAML config with progress, samples, validation,
metrics, checkpoints and exact resume.

    python -m fastrnn.run configs/shakespeare.yaml [section.key=value ...]
"""
import contextlib
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from . import checkpoint
from .compile import compile_call, describe
from .config import load_yaml
from .data import load_corpus
from .errors import UserError, fail, path_error, printable
from .evaluate import evaluate
from .files import atomic_file, make_writable, remove_stale_temporaries, write_atomic
from .lock import lock
from .sampling import generate
from .model import load_model
from .trainer import Trainer

RUN_FILES = ("config.yaml", "metrics.csv", "samples.txt", "loss.png",
             checkpoint.LATEST, checkpoint.BEST, "test.json")
# val_nats is the headline validation (fastrnn.evaluate): the streams read in context;
# val_zero_nats reads them from a zero state, which tells whether the model can start
# from nothing
METRICS = ("iteration", "smooth_loss", "train_nats", "val_nats", "val_bits", "it_per_s",
           "elapsed_s", "train_avg_nats", "minutes", "val_zero_nats")


class Run:
    """One training run in its folder; `train()` returns the process exit code."""

    def __init__(self, cfg, out=None, err=None):
        self.cfg = cfg
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.dir = Path(cfg.train.out_dir)
        self.trainer = None
        self.best_val = math.inf
        self.best_iteration = 0  # where best_val was measured
        self.last_val = None  # the validation loss at the last iteration trained
        self.zero_val = None  # the last validation from a zero state (val_zero_nats)
        # The scheduled evaluations (every eval_every) as the plateau schedule and early
        # stopping see them: their best, how many since it, how many since the lr was
        # last lowered, and the iteration of the last. Kept apart from best_val, which
        # the evaluation at the end of an invocation also sets, so that a resumed run
        # decides as a straight one does.
        self.watch = dict(watch_best=math.inf, since_best=0, plateau_wait=0, watched_at=0)
        self.sample_seed = cfg.train.seed
        self.rate = 0.0  # iterations per second of this invocation
        self.timed = False  # whether the time of a pass has been estimated
        self.compiled = set()  # the parts of the run whose kernels are ready
        self.compile_seconds = 0.0  # spent compiling them in this invocation
        # Minutes of the run before this invocation, compiling left out (None: resumed
        # from a checkpoint older than this count), and this invocation's clock: its
        # start and compile_seconds then.
        self.minutes = 0.0
        self.clock = None
        self.folder_lock = None  # the run folder's, from prepare() to release()
        self.progress = None  # the bar or lines of the loop, while it runs
        self.parts = []  # the losses of the calls of the chunk being trained

    # --- setting up -----------------------------------------------------------------
    def prepare(self):
        """Lock the run folder, check it and build (or resume) the trainer; UserError on
        bad input, raised before anything in the folder is touched. A folder that
        exists is locked before it is read (a new one once it is made), so a second
        command on it is refused however far the first has got."""
        try:
            if self.dir.is_dir():
                self.folder_lock = lock(self.dir)
            self._prepare()
        except BaseException as e:
            if self.folder_lock is not None:  # (a lock file it made goes with it)
                self.folder_lock.release(remove=True)
                self.folder_lock = None
            if isinstance(e, OSError):  # a path the OS refuses (name too long, ...)
                raise path_error(e) from None
            raise

    def release(self):
        """Give the run folder's lock back (the end of the process does too)."""
        if self.folder_lock is not None:
            self.folder_lock.release()
            self.folder_lock = None

    def _prepare(self):
        cfg = self.cfg
        existing = [f for f in RUN_FILES if (self.dir / f).exists()]
        if _started(self.dir, existing) and not cfg.train.resume and not cfg.train.overwrite:
            raise UserError(f"train.out_dir {self.dir} already holds a run "
                            f"({', '.join(existing)}); continue it with "
                            f"train.resume=true, replace it with train.overwrite=true, "
                            f"or choose another train.out_dir")
        if cfg.train.resume:  # what a resume writes or appends to must be a plain file
            odd = [f for f in RUN_FILES if os.path.islink(self.dir / f)
                   or (f in existing and not (self.dir / f).is_file())]
            if odd:
                raise UserError(f"train.out_dir {self.dir}: {odd[0]} is not a file (a "
                                f"folder, a link or a device), so the resumed run cannot "
                                f"write it (nothing was changed); remove it by hand or "
                                f"choose another train.out_dir")
        source = None  # the checkpoint to resume from: latest.npz, else best.npz
        if cfg.train.resume:
            source = next((self.dir / f for f in (checkpoint.LATEST, checkpoint.BEST)
                           if f in existing), None)
        arrays = None
        if source is not None:
            arrays = checkpoint.read(source)
            _check_resume(arrays["config"], cfg, source)
        elif not cfg.train.resume:
            folders = [f for f in existing if not (self.dir / f).is_file()]
            if folders:
                raise UserError(f"train.out_dir {self.dir}: {folders[0]} is not a file, so "
                                f"train.overwrite=true cannot replace it (nothing was "
                                f"deleted); remove it by hand or choose another "
                                f"train.out_dir")
        text = load_corpus(cfg.data.path, cfg.data.newlines,
                           lambda line: print(line, file=self.err))
        vocab = weights = None  # the model's vocabulary, when it is not the text's own
        if arrays is not None:
            vocab = checkpoint.vocab_for(arrays, text)
        elif cfg.train.init_from:
            from .export import init_vocab, read_init
            weights = read_init(cfg.train.init_from)
            vocab = init_vocab(weights, text, cfg.train.init_vocab == "grow",
                               cfg.train.init_from)
        trainer = Trainer(cfg, text=text, vocab=vocab)
        if arrays is not None:
            checkpoint.restore(trainer, arrays, source)
            extra = arrays["extra"]
            self.best_val = extra.get("best_val", math.inf)
            self.best_iteration = extra.get("best_iteration", 0)
            self.sample_seed = extra.get("sample_seed", cfg.train.seed)
            self.minutes = extra.get("minutes")
            for key in self.watch:
                self.watch[key] = extra.get(key, self.watch[key])
            print(f"resuming {source} at iteration {trainer.iteration}", file=self.out)
        else:
            if cfg.train.resume and _started(self.dir, existing):
                print(f"no checkpoint in {self.dir} (its run stopped before the first); "
                      f"starting at iteration 0 and keeping its files", file=self.out)
            elif cfg.train.resume:
                print(f"note: train.resume=true, but {self.dir} holds no run to resume; "
                      f"starting a new one there", file=self.err)
            if cfg.train.init_from:
                from .export import init_from
                print(init_from(trainer, cfg.train.init_from, cfg.train.init_vocab,
                                weights), file=self.out)
        make_writable(self.dir, "train.out_dir")
        if self.folder_lock is None:  # a new folder: another command may have made it too
            self.folder_lock = lock(self.dir)
            if not cfg.train.resume and any((self.dir / f).exists() for f in RUN_FILES):
                raise UserError(f"train.out_dir {self.dir}: another run started in it "
                                f"meanwhile; choose another train.out_dir")
        remove_stale_temporaries(self.dir)
        try:
            if not cfg.train.resume:  # train.overwrite=true: the old run goes
                for f in existing:
                    (self.dir / f).unlink()
            elif (self.dir / "metrics.csv").is_file():
                _trim_metrics(self.dir / "metrics.csv", trainer.iteration)
            write_atomic(self.dir / "config.yaml",
                         yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
        except OSError as e:
            raise UserError(f"train.out_dir {self.dir} cannot be written ({e.strerror or e});"
                            f" free space or choose another folder") from None
        self.trainer = trainer

    # --- the loop -------------------------------------------------------------------
    def train(self):
        start_iter = self.trainer.iteration
        try:
            return self._train()
        except KeyboardInterrupt:  # outside the loop: compiling, or after it
            t = self.trainer
            if t.iteration == start_iter:
                what = ("the same command starts it again" if start_iter == 0 else
                        self._kept())
                print(f"\ninterrupted before training started; {what}", file=self.err)
            else:
                print(f"\ninterrupted at iteration {t.iteration}; {self._kept()}",
                      file=self.err)
            return 130

    def _train(self):
        cfg, t = self.cfg.train, self.trainer
        T = cfg.seq_length
        start_iter = t.iteration
        try:
            self._catch_up()
        except OSError as e:
            return self._write_failed(e)
        if start_iter >= cfg.max_iters or self._stale():
            print(f"already {self._stale()}; raise train.patience to train on"
                  if self._stale() else f"already at iteration {start_iter} of "
                  f"{cfg.max_iters}; raise train.max_iters to train on", file=self.out)
            self.last_val = self._evaluate()
            return 0
        self._summary()
        self._compile("training", lambda: t.train_call(np.empty(1)))
        if len(t.corpus.val) >= 2:
            self._compile_validation()
        try:
            metrics = self._open_metrics()
        except OSError as e:
            return self._write_failed(e)
        t0 = time.perf_counter()
        self.clock = (t0, self.compile_seconds)
        deadline = None if cfg.max_minutes is None else t0 + 60 * cfg.max_minutes
        progress = self.progress = Progress(start_iter, cfg.max_iters, self.err, deadline)
        last_time, last_iter = t0, start_iter
        compiled_before = self.compile_seconds  # (compiling is left out of the rates)
        # a cosine with no decay_iters in a time-limited run ends with the time: its
        # horizon follows the iterations the rate so far (validation included) leaves
        follow_time = (deadline is not None and self.cfg.optim.schedule == "cosine"
                       and self.cfg.optim.decay_iters is None)
        val = latest_val = train_avg = None
        summed, counted = 0.0, 0  # the training losses since the last metrics row
        accounted = start_iter  # the iteration up to which they are summed
        stop = None
        try:
            with _closing(progress, metrics):
                final = False
                while not final:
                    n = _next_stop(t.iteration, cfg) - t.iteration
                    losses = self._train_chunk(n)
                    summed, counted = summed + float(losses.sum()), counted + len(losses)
                    accounted = t.iteration
                    if not np.all(np.isfinite(losses)):
                        bad = t.iteration - n + int(np.argmax(~np.isfinite(losses))) + 1
                        raise _Diverged(losses[~np.isfinite(losses)][0], bad)
                    it = t.iteration
                    final = it >= cfg.max_iters or (
                        cfg.max_minutes is not None
                        and time.perf_counter() - t0 >= 60 * cfg.max_minutes)
                    if follow_time and not final:
                        now = time.perf_counter()
                        spent = now - t0 - (self.compile_seconds - self.clock[1])
                        rate = (it - start_iter) / max(spent, 1e-9)
                        t.set_horizon(min(cfg.max_iters,
                                          it + max(1, int(rate * (deadline - now)))))
                    val = None
                    if it % cfg.eval_every == 0 or final:
                        val = self._evaluate()
                        if val is not None and it % cfg.eval_every == 0:
                            stop = self._watch(val, it)
                            final = final or stop is not None
                        if final:
                            self.last_val = val
                        if val is not None and val < self.best_val:
                            self.best_val, self.best_iteration = val, it
                            t.save(self.dir / checkpoint.BEST, self._extra())
                        latest_val = val if val is not None else latest_val
                    if cfg.sample_every and it % cfg.sample_every == 0:
                        self._sample(it)
                    now = time.perf_counter()
                    compiling = self.compile_seconds - compiled_before
                    rate = (it - last_iter) / max(now - last_time - compiling, 1e-9)
                    row = it % cfg.log_every == 0 or val is not None or final
                    if row:
                        train_avg, interval, summed, counted = (summed / counted, counted,
                                                                0.0, 0)
                    progress.update(it, train_avg, rate, latest_val, line=row)
                    if row:
                        _write_row(metrics, it, t.smooth_loss, T, val, rate, now - t0,
                                   train_avg, self._minutes(now),
                                   None if val is None else self.zero_val)
                        last_time, last_iter = now, it
                        compiled_before = self.compile_seconds
                    if it % cfg.checkpoint_every == 0 or final:
                        t.save(self.dir / checkpoint.LATEST, self._extra())
        except _Diverged as e:
            print(f"fastrnn: error: the loss became {e.args[0]} at iteration {e.args[1]}; "
                  f"the run stopped and {self._kept()}; lower optim.lr or optim.clip and "
                  f"resume", file=self.err)
            return 3
        except KeyboardInterrupt:
            row = None  # the metrics row of the iteration it stopped at, if not written
            losses = self._unaccounted(t.iteration - accounted)
            if t.iteration > last_iter and counted + len(losses) and np.all(
                    np.isfinite(losses)):
                now = time.perf_counter()
                compiling = self.compile_seconds - compiled_before
                rate = (t.iteration - last_iter) / max(now - last_time - compiling, 1e-9)
                mean = (summed + float(losses.sum())) / (counted + len(losses))
                row = (t.iteration, t.smooth_loss, T, None, rate, now - t0, mean,
                       self._minutes(now))
            return self._interrupted(row)
        except OSError as e:
            return self._write_failed(e)
        self._plot()
        elapsed = time.perf_counter() - t0
        done = t.iteration - start_iter
        self.rate = done / elapsed
        if stop is not None:
            print(stop, file=self.out)
        val_text = ""
        if self.last_val is not None:
            val_text = (f"validation {self.last_val:.4f} nats/char "
                        f"({self.last_val / math.log(2):.4f} bits), best validation "
                        f"{self.best_val:.4f} at iteration {self.best_iteration}; ")
        test_text = self._test()
        print(f"done: {done} iterations in {_clock(elapsed)} ({done / elapsed:,.0f} it/s); "
              f"{val_text}{test_text}train {train_avg:.4f} nats/char (the mean of the last "
              f"{interval} iterations); smooth loss "
              f"{t.smooth_loss:.3f} ({t.smooth_loss / T:.4f} nats/char); run folder "
              f"{self.dir}", file=self.out)
        return 0

    def _interrupted(self, row=None):
        """Ctrl-C in the loop: the checkpoint of the last finished iteration, written
        (unless its loss was not finite), and its metrics row (the arguments of
        _write_row, or None when it is written already); exit code 130."""
        t = self.trainer
        if not math.isfinite(t.smooth_loss):  # the last chunk's loss was never checked
            print(f"\ninterrupted at iteration {t.iteration} after the loss became "
                  f"{t.smooth_loss}; {self._kept()}", file=self.err)
            return 3
        try:
            t.save(self.dir / checkpoint.LATEST, self._extra())
            if row is not None:
                with self._open_metrics() as metrics:
                    _write_row(metrics, *row)
        except OSError as e:
            return self._write_failed(e)
        self._plot()
        print(f"\ninterrupted at iteration {t.iteration}; checkpoint written to "
              f"{self.dir / checkpoint.LATEST}; resume with train.resume=true",
              file=self.err)
        return 130

    def _summary(self):
        """The size of the model and of the job, printed before training."""
        t, cfg = self.trainer, self.cfg.train
        n_params = sum(v.size for v in t.params().values())
        where, fewer = t.mode.text_summary(t.corpus)
        text = f"{len(t.corpus.train):,} characters{where}"
        read = len(t.split("val")[0])
        cut = (f"; validation reads the first {read:,} of its {len(t.corpus.val):,} "
               f"characters (data.val_chars)" if read < len(t.corpus.val) else "")
        print(f"vocabulary {len(t.vocab)} characters; {n_params:,} parameters; training "
              f"text {text}, a pass every ~{t.pass_iterations():,.0f} "
              f"iterations ({cfg.seq_length} x {cfg.batch_size} characters each{fewer})"
              f"{cut}", file=self.out, flush=True)

    def _train_chunk(self, n):
        """trainer.train_iters(n); the first time, one iteration apart (it compiles or
        loads the kernels) and the rest timed to estimate the time of a pass."""
        t = self.trainer
        self.parts = []  # (_unaccounted: the calls that returned)
        if self.timed or n < 2:
            return t.train_iters(n)
        first = t.train_iters(1)
        self.parts.append(first)
        started = time.perf_counter()
        rest = t.train_iters(n - 1)
        self.parts.append(rest)
        self._pass_time(n - 1, time.perf_counter() - started)
        self.timed = True
        return np.concatenate([first, rest])

    def _unaccounted(self, n):
        """The losses of the last n iterations, trained in the chunk that an interrupt
        stopped before the loop counted them (one arrives as train_iters returns, which
        keeps them in trainer.last_losses)."""
        parts = list(self.parts)
        last = self.trainer.last_losses
        if last is not None and not any(p is last for p in parts):
            parts.append(last)
        losses = np.concatenate(parts) if parts else np.zeros(0)
        return losses[len(losses) - n:] if n > 0 else np.zeros(0)

    def _pass_time(self, n, seconds):
        """How long a pass over the training text takes at the rate of the last n
        iterations (seconds of training alone)."""
        it = self.trainer.iteration
        per_pass = self.trainer.pass_iterations()
        rate = n / max(seconds, 1e-9)
        took = per_pass / rate
        took = f"{took:.1f} s" if took < 60 else _clock(took)
        self._say(f"a pass over the training text takes ~{took} at "
                  f"{rate:,.0f} it/s (the rate of iterations {it - n + 1}-{it}, training "
                  f"alone)")

    def _test(self):
        """The loss on the test split under the headline protocol (fastrnn.evaluate),
        once, from best.npz (the final weights when there is no validation split to
        choose a best by), printed and written to test.json; what the done: line says
        of it ("" for none)."""
        t = self.trainer
        if not self.cfg.data.test_fraction:
            return ""
        if len(t.corpus.test) < 2:
            print(f"note: data.test_fraction={self.cfg.data.test_fraction} holds out "
                  f"{len(t.corpus.test)} characters, too few for a test loss",
                  file=self.err)
            return ""
        test, starts = t.split("test")  # this run's split, should the checkpoint differ
        if starts is not None and len(starts) < 2:
            print(f"note: data.test_fraction={self.cfg.data.test_fraction} holds no "
                  f"paragraph's start, so there is no test loss", file=self.err)
            return ""
        best = self.dir / checkpoint.BEST
        if best.exists():  # its own carried state starts the burn-in
            model, source = load_model(best), checkpoint.BEST
            loss = evaluate(model, test, "headline", starts=starts,
                            before=t.corpus.ids[:len(t.corpus.train) + len(t.corpus.val)],
                            ).nats
            iteration = model.iteration
        else:
            loss, source, iteration = t.evaluate(split="test"), "the final weights", t.iteration
        result = dict(test_nats=loss, test_bits=loss / math.log(2), characters=len(test),
                      weights=source, iteration=iteration, protocol="headline")
        write_atomic(self.dir / "test.json", (json.dumps(result, indent=1) + "\n").encode())
        print(f"test: {loss:.4f} nats/char ({loss / math.log(2):.4f} bits) over "
              f"{len(test):,} characters, {source} at iteration "
              f"{iteration}, headline protocol; written to {self.dir / 'test.json'}",
              file=self.out)
        return f"test {loss:.4f} nats/char ({source}); "

    def _evaluate(self):
        t = self.trainer
        if len(t.corpus.val) < 2:
            return None
        self._compile_validation()
        val = t.evaluate()
        self.zero_val = t.evaluate("zero") if t.mode.in_context else val
        return val

    def _compile_validation(self):
        if "validation" not in self.compiled:
            for part, call in self.trainer.eval_calls():
                self._compile(part, lambda: call)

    def _compile(self, part, call):
        """Compile (or load) the kernels of this part of the run the first time, with a
        line while it takes long (fastrnn.compile); call() gives (function, args)."""
        if part not in self.compiled:
            self.compiled.add(part)
            self.compile_seconds += compile_call(
                call(), f"{describe(self.trainer)}: {part}",
                lambda line: self._say(line, file=self.err))

    def _sample(self, it):
        """A sample of train.sample_length characters from where training is; with
        paragraphs, a paragraph: from a zero state, primed with the first character of
        a training paragraph drawn by the sample's seed, to its end."""
        t = self.trainer
        self._compile("sampling", lambda: t.stepper().call)
        seed = self.sample_seed + it
        prime = t.mode.sample_prime(t.corpus, seed)
        text = prime + "".join(generate(t, prime, length=self.cfg.train.sample_length,
                                        seed=seed, paragraph=t.mode.samples_end_paragraphs))
        block = f"---- sample at iteration {it} ----\n{text}\n----\n"
        self._say(block, end="")
        with open(self.dir / "samples.txt", "a", encoding="utf-8") as f:
            f.write(block)

    def _say(self, text, file=None, end="\n"):
        """Print text (to self.out by default) apart from the progress bar's line."""
        file = file or self.out
        if self.progress is not None:
            self.progress.write(text + end, file)
        else:
            file.write(text + end)
            file.flush()

    def _extra(self):
        """The runner's own state, kept in each checkpoint."""
        extra = dict(best_val=self.best_val, best_iteration=self.best_iteration,
                     sample_seed=self.sample_seed, **self.watch)
        minutes = self._minutes()
        if minutes is not None:
            extra["minutes"] = minutes
        return extra

    def _minutes(self, now=None):
        """Minutes of the run so far, over every invocation (resumes), compiling left
        out; None if a checkpoint it resumed from did not count them."""
        if self.minutes is None or self.clock is None:
            return self.minutes
        t0, compiled = self.clock
        now = time.perf_counter() if now is None else now
        return self.minutes + (now - t0 - (self.compile_seconds - compiled)) / 60

    def _watch(self, val, it):
        """Note a scheduled evaluation: lower the plateau schedule's lr when validation
        has stalled for optim.plateau_patience evaluations; the reason to stop when it
        has for train.patience, else None."""
        w, o = self.watch, self.cfg.optim
        w["watched_at"] = it
        if val < w["watch_best"]:
            w.update(watch_best=val, since_best=0, plateau_wait=0)
            return None
        w["since_best"] += 1
        w["plateau_wait"] += 1
        if o.schedule == "plateau" and w["plateau_wait"] >= o.plateau_patience:
            w["plateau_wait"] = 0
            scale = self.trainer.lower_lr(o.factor)
            self._say(f"lr lowered to {o.lr * scale:.4g} at iteration {it}: validation has "
                      f"not improved for {_evaluations(o.plateau_patience)}")
        return self._stale()

    def _catch_up(self):
        """The scheduled evaluation of a checkpoint's iteration, if its run was
        interrupted (Ctrl-C) between the training and the evaluation, as a straight
        run would have made it."""
        t, cfg = self.trainer, self.cfg.train
        it = t.iteration
        if it == 0 or it % cfg.eval_every or it <= self.watch["watched_at"]:
            return
        val = self._evaluate()
        if val is None:
            return
        self._watch(val, it)
        if val < self.best_val:
            self.best_val, self.best_iteration = val, it
            t.save(self.dir / checkpoint.BEST, self._extra())
        t.save(self.dir / checkpoint.LATEST, self._extra())

    def _stale(self):
        """Why the run stops early (train.patience), or None."""
        patience = self.cfg.train.patience
        if patience is None or self.watch["since_best"] < patience:
            return None
        best = (f" (best {self.best_val:.4f} at iteration {self.best_iteration})"
                if self.best_val < math.inf else "")
        return f"stopped: validation has not improved for {_evaluations(patience)}{best}"

    def _kept(self):
        latest = self.dir / checkpoint.LATEST
        if latest.is_file():
            return f"its last good checkpoint ({latest}) is as it was"
        return "no checkpoint had been written yet"

    def _write_failed(self, e):
        print(f"fastrnn: error: cannot write to the run folder {self.dir} "
              f"({e.strerror or e}); the run stopped and {self._kept()}; free space (or "
              f"fix the folder) and resume with train.resume=true", file=self.err)
        return 2

    def _open_metrics(self):
        path = self.dir / "metrics.csv"
        new = not path.exists()
        if not new:  # a run from before train_avg_nats or minutes: its header gains them
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines(True)
            head = tuple(lines[0].strip().split(",")) if lines else ()
            if head and len(head) < len(METRICS) and head == METRICS[:len(head)]:
                lines[0] = ",".join(METRICS) + "\n"
                write_atomic(path, "".join(lines).encode("utf-8"))
        f = open(path, "a", newline="", encoding="utf-8")
        if new:
            csv.writer(f).writerow(METRICS)
        return f

    def _plot(self):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("note: matplotlib is not installed, so no loss.png; "
                  "pip install 'fastrnn[plot]' for the plot", file=self.err)
            return
        rows = _read_metrics(self.dir / "metrics.csv")
        if not rows:
            return
        it = [r["iteration"] for r in rows]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.plot(it, [r["train_nats"] for r in rows], label="train (smoothed)")
        avg = [(r["iteration"], r["train_avg"]) for r in rows if r["train_avg"] is not None]
        if avg:
            ax.plot(*zip(*avg), label="train (mean of each log interval)")
        val = [(r["iteration"], r["val_nats"]) for r in rows if r["val_nats"] is not None]
        if val:
            ax.plot(*zip(*val), "o-", label="validation")
        ax.set_xlabel("iteration")
        ax.set_ylabel("nats per character")
        ax.set_title(printable(str(self.dir)).replace("$", r"\$"))  # ($: not math)
        ax.legend()
        ax.grid(alpha=0.3)
        try:
            with atomic_file(self.dir / "loss.png") as f:
                fig.savefig(f, format="png", dpi=100)
        except OSError as e:
            print(f"note: no loss.png ({e.strerror or e})", file=self.err)
        finally:
            plt.close(fig)


class _Diverged(Exception):
    """The training loss became NaN or infinite: (the value, its iteration)."""


@contextlib.contextmanager
def _closing(progress, metrics):
    """Close the progress bar and the metrics file however the loop ends."""
    try:
        yield
    finally:
        progress.close()
        with contextlib.suppress(OSError):
            metrics.close()


class Progress:
    """A tqdm bar on a terminal, plain lines (at each metrics row) otherwise. Both lead
    with the latest validation loss and the training loss averaged over the last log
    interval; with a deadline (train.max_minutes, a perf_counter time) the ETA is the
    sooner of the two ends."""

    def __init__(self, start, total, err, deadline=None):
        self.err, self.total, self.deadline = err, total, deadline
        self.bar = None
        if err.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, file=err, unit="it",
                            dynamic_ncols=True, smoothing=0.1)
        self.last = self.start = start
        self.t0 = time.perf_counter()

    def update(self, it, train, rate, val, line=True):
        """Move the bar on; without a terminal, print a line if `line` (a metrics row).
        train: the mean training loss of the last log interval (None before the first);
        val: the latest validation loss (None before the first)."""
        now = time.perf_counter()
        if self.bar is not None:
            if self.deadline is not None:  # the bar ends where the time runs out
                done = (it - self.start) / max(now - self.t0, 1e-9)
                left = max(self.deadline - now, 0)
                self.bar.total = min(self.total, it + int(done * left))
            self.bar.update(it - self.last)
            post = {}
            if val is not None:
                post["val"] = f"{val:.4f}"
            if train is not None:
                post["train"] = f"{train:.4f}"
            self.bar.set_postfix(post, refresh=False)
        elif line:
            eta = (self.total - it) / rate if rate > 0 else 0
            if self.deadline is not None:
                eta = min(eta, max(self.deadline - now, 0))
            val_text = ("val -" if val is None else
                        f"val {val:.4f} nats ({val / math.log(2):.4f} bits)")
            train_text = "train -" if train is None else f"train {train:.4f} nats/char"
            print(f"iter {it}/{self.total} | {val_text} | {train_text} | {rate:,.0f} it/s "
                  f"| eta {_clock(eta)}", file=self.err, flush=True)
        self.last = it

    def write(self, text, file):
        """Write text to file, apart from the bar's line: the bar is cleared first and
        drawn again after, as both may be on the same terminal."""
        if self.bar is not None:
            self.bar.clear()
        file.write(text)
        file.flush()
        if self.bar is not None:
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _next_stop(it, cfg):
    """The next iteration at which something other than training happens."""
    stops = [cfg.max_iters]
    for every in (cfg.log_every, cfg.eval_every, cfg.sample_every, cfg.checkpoint_every):
        if every:
            stops.append((it // every + 1) * every)
    return min(stops)


def _write_row(f, it, smooth, T, val, rate, elapsed, train_avg, minutes, zero=None):
    csv.writer(f).writerow([it, f"{smooth:.6f}", f"{smooth / T:.6f}",
                            "" if val is None else f"{val:.6f}",
                            "" if val is None else f"{val / math.log(2):.6f}",
                            f"{rate:.1f}", f"{elapsed:.2f}", f"{train_avg:.6f}",
                            "" if minutes is None else f"{minutes:.6f}",
                            "" if zero is None else f"{zero:.6f}"])
    f.flush()


def _evaluations(n):
    return f"{n} evaluation" + ("s" if n != 1 else "")


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# Keys that give the saved state its meaning: a resumed run must keep them. The others
# (max_iters, max_minutes, lr and its schedule, weight decay, clipping, patience,
# logging, threads, seed) may change; a changed schedule applies from the resumed
# iteration on, and the plateau multiplier saved in the checkpoint is kept.
RESUME_FIXED = ("data.path", "data.val_fraction", "data.val_chars", "data.test_fraction",
                "data.records", "data.newlines", "model.kind", "model.hidden",
                "model.layers", "model.dropout", "model.init", "optim.name", "optim.eps",
                "optim.beta1", "optim.beta2", "train.seq_length", "train.batch_size",
                "train.dtype", "train.precision", "train.exact")


def _started(folder, existing):
    """Whether the run files found in folder hold a run: a run stopped before its
    first checkpoint or metrics row (Ctrl-C while compiling) leaves only config.yaml
    and the header of metrics.csv, which the same command replaces."""
    for f in existing:
        if f == "config.yaml" or (f == "metrics.csv" and _header_only(folder / f)):
            continue
        return True
    return False


def _header_only(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            f.readline()
            return not f.read().strip()
    except OSError:
        return False


def _check_resume(saved, cfg, path):
    for key in RESUME_FIXED:
        section, name = key.split(".")
        a, b = getattr(getattr(saved, section), name), getattr(getattr(cfg, section), name)
        if a != b:
            raise UserError(f"{path} was trained with {key}={a}, the config says {b}; "
                            f"use the same value to resume, or a new train.out_dir")


def _read_metrics(path):
    """The rows of metrics.csv that parse (a damaged line is skipped), as numbers."""
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for r in csv.DictReader(f):
                try:
                    rows.append(dict(iteration=int(r["iteration"]),
                                     train_nats=float(r["train_nats"]),
                                     val_nats=float(r["val_nats"]) if r["val_nats"] else None,
                                     train_avg=float(r["train_avg_nats"])
                                     if r.get("train_avg_nats") else None))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        return []
    return rows


def _trim_metrics(path, iteration):
    """Drop the rows after a resumed run's iteration: the resumed run writes them again."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(True)
    keep = lines[:1] + [ln for ln in lines[1:]
                        if not ln.split(",", 1)[0].isdigit()
                        or int(ln.split(",", 1)[0]) <= iteration]
    if len(keep) < len(lines):
        write_atomic(path, "".join(keep).encode("utf-8"))


def main(argv=None, prog="python -m fastrnn.run"):
    import argparse
    ap = argparse.ArgumentParser(prog=prog,
                                 description="Train a char-RNN from a YAML config.")
    ap.add_argument("config", help="YAML config file, e.g. configs/shakespeare.yaml")
    ap.add_argument("overrides", nargs="*", default=[],
                    help="section.key=value, e.g. train.max_iters=1000")
    args = ap.parse_args(argv)
    run = None
    try:  # Ctrl-C anywhere is one line and exit code 130
        cfg = load_yaml(args.config, args.overrides)
        print("config:\n" + _indent(yaml.safe_dump(cfg.to_dict(), sort_keys=False)),
              flush=True)
        run = Run(cfg)
        run.prepare()
        return run.train()  # (which says where an interrupt in it left the run)
    except UserError as e:
        return fail(e)
    except KeyboardInterrupt:
        if run is None or run.trainer is None:
            print("\ninterrupted before training started", file=sys.stderr)
        else:
            print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if run is not None:
            run.release()


def _indent(text):
    return "".join("  " + line for line in text.splitlines(True))


def exit_process(code):
    """End the process with code. After an interrupt (130) without the interpreter's
    teardown: a Ctrl-C that stopped LLVM in the middle of a compile can leave it in a
    state that crashes at exit (a SIGSEGV after the one line was printed)."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
