"""Compiling the kernels: ahead of time, and with a line saying so when it happens.

    fastrnn compile CONFIG [CONFIG ...] [section.key=value ...]
    python -m fastrnn.compile CONFIG [...]

Numba compiles each kernel for the types it is called with the first time it is called,
and caches the result on disk (beside the sources, or in $NUMBA_CACHE_DIR); later runs
load it in well under a second. `fastrnn compile` does the first time ahead: for a
Docker image, or before starting Dask workers, whose processes would otherwise each
compile the same kernels at once.
"""
import contextlib
import signal
import sys
import threading
import time

import numpy as np

from .errors import UserError, fail

# A compile that is still going after this long is said on the way (loading a cached
# kernel takes less).
QUIET = 1.0


def compile_call(call, what, say=None):
    """Compile a kernels.team.Call's function for its arguments' types unless it is
    compiled (or cached) already; say(line) while it takes longer than QUIET, and when
    it is done. Returns the seconds it took."""
    fn, sig = call.fn, call.signature()
    if sig in fn.overloads:
        return 0.0
    said = threading.Event()

    def announce():
        said.set()
        say(f"compiling kernels for {what} (first run on this machine; cached "
            f"afterwards) ...")

    timer = threading.Timer(QUIET, announce) if say else None
    start = time.perf_counter()
    if timer:
        timer.daemon = True
        timer.start()
    try:
        with _interruptible():
            fn.compile(sig)
    finally:
        if timer:
            timer.cancel()
    took = time.perf_counter() - start
    if said.is_set():
        say(f"compiled kernels for {what} in {took:.1f} s")
    return took


@contextlib.contextmanager
def _interruptible():
    """Ctrl-C while Numba compiles is a KeyboardInterrupt, whatever it lands in: one
    raised inside a callback of LLVM's is swallowed there (Python prints "Exception
    ignored" and the compile goes on to fail with another error), so the signal is
    noted, such a report is not printed, and KeyboardInterrupt is raised once the
    compile stops."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught = []

    def on_sigint(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt

    def unraisable(report):
        if not (report.exc_type and issubclass(report.exc_type, KeyboardInterrupt)):
            hook(report)

    hook = sys.unraisablehook
    signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = unraisable
    try:
        yield
    except Exception:
        if caught:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
    if caught:
        raise KeyboardInterrupt


def describe(trainer, threads=None):
    """'lstm float32, 32 streams, 2 threads', 'gru float32 with bf16 products, 32
    streams, 1 thread', 'rnn float32, 1 stream, paragraphs, 1 thread' and the like."""
    cfg = trainer.config
    B = cfg.train.batch_size
    threads = trainer.chunks if threads is None else threads
    mixed = " with bf16 products" if trainer.model.mixed and B > 1 else ""
    return (f"{cfg.model.kind} {cfg.train.dtype}{mixed}, {B} stream{'s' * (B > 1)}"
            f"{trainer.mode.label}"
            f"{', min-char-rnn exact' if trainer.exact else ''}, {threads} "
            f"thread{'s' * (threads > 1)}")


def calls(trainer):
    """What a run of this trainer compiles: (what, call) for training, validation and
    sampling."""
    out = [("training", trainer.train_call(np.empty(1)))]
    if len(trainer.corpus.val) >= 2:
        out += trainer.eval_calls()
    out.append(("sampling", trainer.stepper().call))
    return out


def compile_trainer(trainer, say, one_thread=True):
    """Compile everything a run of trainer calls, with the threads it will use and, when
    one_thread, on one thread as well (what sweep workers use). Returns the seconds."""
    took = 0.0
    counts = [trainer.threads]
    if one_thread and trainer.threads != 1:
        counts.append(1)
    threads = trainer.threads
    try:
        for count in counts:
            trainer.use_threads(count)
            for part, call in calls(trainer):
                took += compile_call(call, f"{describe(trainer)}: {part}", say)
    finally:
        trainer.use_threads(threads)
    return took


def main(argv=None):
    import argparse

    from .config import load_yaml
    from .trainer import Trainer
    ap = argparse.ArgumentParser(
        prog="fastrnn compile", description="Compile the kernels that configs use, ahead "
        "of time (for a Docker image, or before starting Dask workers).")
    ap.add_argument("configs", nargs="+", metavar="CONFIG",
                    help="YAML config files, then section.key=value overrides for all")
    args = ap.parse_args(argv)
    files = [a for a in args.configs if "=" not in a]
    overrides = [a for a in args.configs if "=" in a]
    say = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if not files:
            raise UserError("name at least one config file, e.g. fastrnn compile "
                            "configs/shakespeare.yaml")
        trainers = [Trainer(load_yaml(f, overrides)) for f in files]
        for path, trainer in zip(files, trainers):
            took = compile_trainer(trainer, say)
            print(f"{path}: kernels ready ({took:.1f} s of compiling)", flush=True)
    except UserError as e:
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
