"""The `fastrnn` command: `fastrnn train|sample|bench ...`, and the sampler's own
command line (`python -m fastrnn.sample`)."""
import argparse
import sys

from .errors import UserError


def sample_main(argv=None, prog="python -m fastrnn.sample"):
    ap = argparse.ArgumentParser(prog=prog, description="Stream text sampled from a "
                                 "trained model to stdout.")
    ap.add_argument("checkpoint", help="run folder (its latest checkpoint) or .npz file")
    ap.add_argument("--prime", default="", help="text to start from (printed first)")
    ap.add_argument("--length", type=int, default=500, help="characters to sample")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="below 1 is more conservative; 0 takes the most likely character")
    ap.add_argument("--top-k", type=int, default=None,
                    help="sample only from the k most likely characters")
    ap.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    args = ap.parse_args(argv)
    from .sampling import generate
    from .trainer import load
    try:
        if args.length < 0:
            raise UserError(f"--length must be 0 or more, got {args.length}")
        trainer = load(args.checkpoint, data=False)
        chars = generate(trainer, args.prime, args.length, args.temperature, args.top_k,
                         args.seed)
        first = next(chars, "")  # bad input shows up here, before anything is printed
        out = sys.stdout
        out.write(args.prime + first)
        for i, c in enumerate(chars):
            out.write(c)
            if i % 64 == 0:
                out.flush()
        out.write("\n")
        out.flush()
    except UserError as e:
        print(f"fastrnn: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-V"]):
        from . import __version__
        print(f"fastrnn {__version__}")
        return 0
    commands = {"train": "train from a YAML config (python -m fastrnn.run)",
                "sample": "sample text from a run folder or checkpoint",
                "bench": "benchmark against the numpy min-char-rnn",
                "sweep": "run a hyperparameter sweep (python -m fastrnn.sweep)"}
    if not argv or argv[0] not in commands:
        usage = "\n".join(f"  {k:<7} {v}" for k, v in commands.items())
        print(f"usage: fastrnn {{{','.join(commands)}}} ...\n\n{usage}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        from .run import main as run_main
        return run_main(rest)
    if command == "sample":
        return sample_main(rest, prog="fastrnn sample")
    if command == "sweep":
        from .sweep import main as sweep_main
        return sweep_main(rest)
    from .bench import main as bench_main
    return bench_main(rest)


if __name__ == "__main__":
    sys.exit(main())
