"""The `fastrnn` command: `fastrnn train|sample|export|eval|bench ...`, and the sampler's own
command line (`python -m fastrnn.sample`)."""
import argparse
import sys
from pathlib import Path

from .errors import UserError, fail


def sample_main(argv=None, prog="python -m fastrnn.sample"):
    ap = argparse.ArgumentParser(prog=prog, description="Stream text sampled from a "
                                 "trained model to stdout (or write it to a file).")
    ap.add_argument("checkpoint", help="run folder (its latest checkpoint) or .npz file")
    ap.add_argument("--prime", default="", help="text to start from (printed first)")
    ap.add_argument("--prime-file", default=None,
                    help="read the text to start from from this UTF-8 file")
    ap.add_argument("--length", type=int, default=500, help="characters to sample")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="below 1 is more conservative; 0 takes the most likely character")
    ap.add_argument("--top-k", type=int, default=None,
                    help="sample only from the k most likely characters")
    ap.add_argument("--top-p", type=float, default=None,
                    help="sample only from the most likely characters whose probabilities "
                    "add up to p, in (0, 1]")
    ap.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    ap.add_argument("--num-samples", type=int, default=1, help="samples, one after another")
    ap.add_argument("--stop", default=None,
                    help="end a sample after the first occurrence of this text (kept)")
    ap.add_argument("--paragraph", action="store_true",
                    help="end each sample at the end of its paragraph (a blank line, not "
                    "printed)")
    ap.add_argument("--beam", type=int, default=None,
                    help="beam search with N candidates: the most likely text, not a "
                    "random one")
    ap.add_argument("--output", default=None,
                    help="write the samples to this file (atomically) instead of stdout")
    args = ap.parse_args(argv)
    from .files import write_atomic
    from .sampling import check_sizes, read_prime
    from .model import load_model
    sink = None  # --output's device or pipe
    try:
        if args.length < 0:
            raise UserError(f"--length must be 0 or more, got {args.length}")
        if args.num_samples < 1:
            raise UserError(f"--num-samples must be at least 1, got {args.num_samples}")
        if args.beam is not None and args.beam < 1:
            raise UserError(f"--beam must be at least 1, got {args.beam}")
        check_sizes(args.beam, args.length, args.num_samples)
        if args.top_p is not None and not 0 < args.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
        if args.stop == "":
            raise UserError("--stop is empty; give one or more characters")
        prime = args.prime
        if args.prime_file is not None:
            if prime:
                raise UserError("give --prime or --prime-file, not both")
            prime = read_prime(args.prime_file)
        out_path = Path(args.output) if args.output else None
        if out_path is not None and not out_path.parent.is_dir():
            raise UserError(f"--output: folder {out_path.parent} does not exist; create "
                            f"it or choose another path")
        if out_path is not None and _written_through(out_path):
            sink = _open_through(out_path)  # (a pipe that no process reads: refused now)
        model = load_model(args.checkpoint)
        parts = []
        write = parts.append if out_path is not None else sys.stdout.write
        for i, chars in enumerate(_sample_streams(model, prime, args)):
            first = next(chars, "")  # bad input shows up here, before anything is written
            write((f"---- sample {i + 1} ----\n" if args.num_samples > 1 else "")
                  + prime + first)
            for j, c in enumerate(chars):
                write(c)
                if j % 64 == 0 and out_path is None:
                    sys.stdout.flush()
            write("\n")
        if out_path is None:
            sys.stdout.flush()
            return 0
        try:
            if sink is not None:  # a device or a pipe (/dev/stdout): never replaced
                sink.write("".join(parts).encode("utf-8"))
                sink.flush()
            else:
                write_atomic(out_path, "".join(parts).encode("utf-8"))
        except OSError as e:
            raise UserError(f"--output: cannot write {out_path} ({e.strerror}); choose "
                            f"another path") from None
        print(f"wrote {args.num_samples} sample(s) to {out_path}", file=sys.stderr)
    except (UserError, OSError) as e:  # (OSError: a path the OS refuses)
        return fail(e)
    finally:
        if sink is not None:
            try:
                sink.close()
            except OSError:  # (its reader gone: said above, if it was)
                pass
    return 0


def _open_through(path):
    """--output's device or pipe, open for writing. Opened without waiting, so that a
    pipe that no process reads is refused rather than waited on for ever."""
    import errno
    import os
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise UserError(f"--output {path} is a pipe that no process reads; start its "
                            f"reader first (e.g. cat {path}), or give a file") from None
        raise UserError(f"--output: cannot write {path} ({e.strerror}); choose another "
                        f"path") from None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


def _written_through(path):
    """Whether --output names a device or a pipe (or a link to one, /dev/stdout), which
    is written into; a regular file is written atomically (False). A link to anything
    else, or a folder, is refused: it would be replaced."""
    import os
    import stat
    if not path.is_symlink() and not path.exists():
        return False
    if not path.is_symlink() and path.is_file():
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return True
    raise UserError(f"--output {path} is a link or a folder, which would be replaced; "
                    f"give the file itself, or a device such as /dev/stdout")


def _sample_streams(model, prime, args):
    """Each sample's characters after the prime, as an iterator (one random generator
    for all; beam search's texts come whole)."""
    from .sampling import beam_search, generate, new_rng
    if args.beam is not None:
        for text in beam_search(model, prime, args.length, args.beam, args.num_samples,
                                args.stop, args.paragraph):
            yield iter(text)
        return
    rng = new_rng(args.seed)
    for _ in range(args.num_samples):
        yield generate(model, prime, args.length, args.temperature, args.top_k, None,
                       args.top_p, args.stop, rng, args.paragraph)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-V"]):
        from . import __version__
        print(f"fastrnn {__version__}")
        return 0
    commands = {"train": "train from a YAML config (python -m fastrnn.run)",
                "sample": "sample text from a run folder or checkpoint",
                "export": "write a model's weights for PyTorch (python -m fastrnn.export)",
                "eval": "the loss of a model on its validation or test split (python -m "
                        "fastrnn.evaluate)",
                "bench": "benchmark against the numpy min-char-rnn",
                "sweep": "run a hyperparameter sweep (python -m fastrnn.sweep)",
                "compile": "compile the kernels of configs ahead of time (python -m "
                           "fastrnn.compile)"}
    if not argv or argv[0] not in commands:
        usage = "\n".join(f"  {k:<8} {v}" for k, v in commands.items())
        asked = argv[:1] in (["-h"], ["--help"])  # help asked for goes to stdout
        print(f"usage: fastrnn {{{','.join(commands)}}} ...\n\n{usage}\n\n"
              f"fastrnn COMMAND --help says more of each",
              file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        try:  # (the import loads Numba: seconds in which Ctrl-C may come)
            from .run import main as run_main
        except KeyboardInterrupt:
            print("\ninterrupted before training started", file=sys.stderr)
            return 130
        return run_main(rest, prog="fastrnn train")
    if command == "sample":
        return sample_main(rest, prog="fastrnn sample")
    if command == "export":
        from .export import main as export_main
        return export_main(rest, prog="fastrnn export")
    if command == "eval":
        from .evaluate import main as eval_main
        return eval_main(rest, prog="fastrnn eval")
    if command == "sweep":
        from .sweeps.cli import main as sweep_main
        return sweep_main(rest, prog="fastrnn sweep")
    if command == "compile":
        from .compile import main as compile_main
        return compile_main(rest)
    from .bench import main as bench_main
    return bench_main(rest, prog="fastrnn bench")


def entry():
    """The `fastrnn` command's entry point: main, then the exit (run.exit_process)."""
    from .run import exit_process
    exit_process(main())


if __name__ == "__main__":
    entry()
