"""Weights in and out under PyTorch's names: export to .safetensors or .npz files that load
into nn.RNN / nn.GRU / nn.LSTM and nn.Linear without fastrnn, and read them (or a
checkpoint) back to start a run from.

    python -m fastrnn.export RUN_OR_CHECKPOINT OUT.safetensors|OUT.npz [--force]

An export holds, for each layer l, `rnn.weight_ih_l{l}` (G*H, in), `rnn.weight_hh_l{l}`
(G*H, H), `rnn.bias_ih_l{l}` and `rnn.bias_hh_l{l}` (G*H,) (the vanilla RNN's one bias
is bias_ih; its bias_hh is zero), then `head.weight` (V, H) and `head.bias` (V,), in the
model's dtype; and as metadata the vocabulary (`vocab`, a JSON list of characters) and
the resolved config (`config`, JSON): safetensors' metadata strings, or 0-d string
arrays `__vocab__` and `__config__` in an .npz.
"""
import io
import json
import sys
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import Config, read_json
from .encoding import characters
from .errors import UserError, fail
from .files import write_atomic
from .model import Model, load_model
from .models import FAMILIES

FORMATS = (".safetensors", ".npz")


def to_torch(params, kind, layers, dtype):
    """fastrnn's parameters by name -> PyTorch's state_dict names, as dtype arrays."""
    out = {}
    ih, hh = _biases(kind)
    for l in range(layers):
        out[f"rnn.weight_ih_l{l}"] = params[f"Wxh.{l}"]
        out[f"rnn.weight_hh_l{l}"] = params[f"Whh.{l}"]
        out[f"rnn.bias_ih_l{l}"] = params[f"{ih}.{l}"]
        out[f"rnn.bias_hh_l{l}"] = (params[f"{hh}.{l}"] if hh else
                                    np.zeros_like(params[f"{ih}.{l}"]))
    out["head.weight"], out["head.bias"] = params["Why"], params["by"]
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in out.items()}


def from_torch(tensors, kind, layers):
    """PyTorch's state_dict names -> fastrnn's, as float64 (the vanilla RNN's bias is the
    sum of PyTorch's two)."""
    out = {}
    ih, hh = _biases(kind)
    for l in range(layers):
        out[f"Wxh.{l}"] = tensors[f"rnn.weight_ih_l{l}"]
        out[f"Whh.{l}"] = tensors[f"rnn.weight_hh_l{l}"]
        if hh:
            out[f"{ih}.{l}"] = tensors[f"rnn.bias_ih_l{l}"]
            out[f"{hh}.{l}"] = tensors[f"rnn.bias_hh_l{l}"]
        else:
            out[f"{ih}.{l}"] = tensors[f"rnn.bias_ih_l{l}"] + tensors[f"rnn.bias_hh_l{l}"]
    out["Why"], out["by"] = tensors["head.weight"], tensors["head.bias"]
    return out


def _biases(kind):
    """(the family's input-side bias name, its hidden-side one or None): a family with
    one bias (min-char-rnn's bh) exports it as bias_ih and a zero bias_hh."""
    biases = FAMILIES[kind].biases
    return biases[0], (biases[1] if len(biases) > 1 else None)


def export(source, out, force=False):
    """Write the weights of a run folder or checkpoint to out (.safetensors or .npz),
    atomically; UserError (nothing written) on a bad source, an unknown suffix, a missing
    safetensors package, or an out that exists unless force."""
    out = Path(out)
    kind = _format(out)
    if kind == ".safetensors":
        _safetensors()
    if out.exists() and out.resolve() == checkpoint.find(source).resolve():
        raise UserError(f"{out} is the checkpoint being exported; choose another name")
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to replace it, or choose "
                        f"another name")
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist; create it or choose another "
                        f"path for the export")
    model = load_model(source)
    cfg = model.config
    tensors = to_torch(model.params(), cfg.model.kind, cfg.model.layers, model.dtype)
    meta = {"vocab": json.dumps(model.vocab), "config": json.dumps(cfg.to_dict())}
    if kind == ".safetensors":
        blob = _safetensors().save(tensors, metadata=meta)
    else:
        buf = io.BytesIO()
        np.savez(buf, __vocab__=np.array(meta["vocab"]), __config__=np.array(meta["config"]),
                 **tensors)
        blob = buf.getvalue()
    try:
        write_atomic(out, blob)
    except OSError as e:
        raise UserError(f"cannot write {out} ({e.strerror}); choose another path") from None
    return out


def _format(path):
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise UserError(f"{path}: unknown export format '{suffix}'; name the file "
                        f"*.safetensors or *.npz")
    return suffix


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise UserError("the .safetensors format needs the safetensors package: pip install "
                        "'fastrnn[export]' (or export to .npz)") from None
    return safetensors.numpy


def read_weights(path):
    """(parameters by fastrnn name as float64, vocabulary, config dict) of an export
    (.safetensors, .npz) or a checkpoint (.npz, or a run folder's latest); UserError if
    it is missing, unreadable or inconsistent."""
    path = Path(path)
    if path.is_dir():
        return _from_checkpoint(path)
    if path.suffix not in FORMATS:
        raise UserError(f"{path}: unknown format '{path.suffix}'; give an export "
                        f"(.safetensors, .npz), a checkpoint (.npz) or a run folder")
    if not path.is_file():
        raise UserError(f"{path} not found; give an export (.safetensors, .npz), a "
                        f"checkpoint or a run folder")
    if path.suffix == ".safetensors":
        tensors, meta = _read_safetensors(path)
    else:
        tensors, meta = _read_npz(path)
        if tensors is None:
            return _from_checkpoint(path)
    return _check_export(path, tensors, meta)


def _from_checkpoint(path):
    model = load_model(path)
    return model.params(), list(model.vocab), model.config.to_dict()


def read_model(path):
    """A Model from an export (.safetensors, .npz), a checkpoint or a run folder (its
    latest checkpoint); UserError if it is missing, unreadable or inconsistent."""
    path = Path(path)
    if path.is_dir() or _is_checkpoint(path):
        return load_model(path)
    params, vocab, raw = read_weights(path)
    model = Model(Config.from_dict(raw, where=str(path)), vocab)
    model.set_params(params)
    return model


def _is_checkpoint(path):
    """Whether path is an .npz that holds a checkpoint rather than an export."""
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return "theta" in f.files
    except Exception:  # noqa: BLE001 -- read_weights says what is wrong with it
        return False


def _read_safetensors(path):
    _safetensors()
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a bad file
        raise UserError(f"{path} is not a readable safetensors file "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); export "
                        f"it again") from None
    return tensors, meta


def _read_npz(path):
    """(tensors, metadata) of an exported .npz; (None, None) for a checkpoint."""
    arrays = checkpoint.read_npz(path, str(path), "export it again")
    if "__vocab__" not in arrays and "format_version" in arrays:
        return None, None  # (read again, and validated, as a checkpoint)
    meta = {k.strip("_"): str(arrays.pop(k)) for k in ("__vocab__", "__config__")
            if k in arrays}
    return arrays, meta


def _check_export(path, tensors, meta):
    fix = "export it again with fastrnn export"
    if "vocab" not in meta or "config" not in meta:
        raise UserError(f"{path} has no fastrnn metadata (vocab and config); {fix}")
    try:
        vocab = read_json(meta["vocab"])
        raw = read_json(meta["config"])
    except ValueError as e:
        raise UserError(f"{path}: its vocab or config metadata is not JSON or holds too "
                        f"much ({e}); {fix}") from None
    if (not isinstance(vocab, list) or not vocab or len(set(vocab)) != len(vocab)
            or not all(isinstance(c, str) and len(c) == 1 and not checkpoint._surrogate(c)
                       for c in vocab)):
        raise UserError(f"{path}: its vocab metadata is not a list of distinct characters "
                        f"(no lone surrogate: no text holds one); {fix}")
    cfg = Config.from_dict(raw, where=f"{path} (config metadata)")
    kind, H, L, V = cfg.model.kind, cfg.model.hidden, cfg.model.layers, len(vocab)
    shapes = {"head.weight": (V, H), "head.bias": (V,)}
    G = FAMILIES[kind].G
    for l in range(L):
        shapes[f"rnn.weight_ih_l{l}"] = (G * H, V if l == 0 else H)
        shapes[f"rnn.weight_hh_l{l}"] = (G * H, H)
        shapes[f"rnn.bias_ih_l{l}"] = shapes[f"rnn.bias_hh_l{l}"] = (G * H,)
    missing = [k for k in shapes if k not in tensors]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)} for its {L}-layer {kind}; {fix}")
    for name, shape in shapes.items():
        t = tensors[name]
        if t.shape != shape or t.dtype.kind != "f":
            raise UserError(f"{path}: {name} is {t.dtype} {t.shape}, its config makes "
                            f"float {shape}; {fix}")
        if not np.all(np.isfinite(t)):
            raise UserError(f"{path}: {name} holds NaN or infinite values; {fix}")
    tensors = {k: np.asarray(tensors[k], np.float64) for k in shapes}
    return from_torch(tensors, kind, L), vocab, cfg.to_dict()


def read_init(path):
    """read_weights(path) for train.init_from: UserError lines name the key."""
    try:
        return read_weights(path)
    except UserError as e:
        raise UserError(f"train.init_from: {e}") from None


def init_vocab(weights, text, grow, path):
    """The vocabulary a run from init_from's weights (read_init) trains with: the file's
    characters and the text's, sorted (the file's that the text lacks stay, unused);
    UserError if the text adds characters and not grow."""
    saved = weights[1]
    chars = characters(text)
    new = sorted(chars - set(saved))
    if new and not grow:
        raise UserError(f"train.init_from: the text adds {_chars(new)} to the vocabulary "
                        f"of {path}; set train.init_vocab=grow to add them")
    return sorted(set(saved) | chars)


def init_from(trainer, path, vocab="strict", weights=None):
    """Copy the weights of an export or checkpoint (weights: read_init(path), if read
    already) into trainer (the optimizer, data pointer and iteration are left as they
    are); a line saying what was loaded. The trainer's vocabulary must hold the file's
    characters (Trainer(..., vocab=init_vocab(...)) builds one that does). vocab="grow"
    lets it have characters the file lacks: their input columns and output rows keep the
    values of the trainer's own initialisation. UserError naming what differs on another
    model shape or vocabulary."""
    params, saved_vocab, raw = read_init(path) if weights is None else weights
    saved, cfg = Config.from_dict(raw, where=str(path)).model, trainer.config.model
    differ = [f"model.{k} is {getattr(saved, k)} there, {getattr(cfg, k)} here"
              for k in ("kind", "hidden", "layers") if getattr(saved, k) != getattr(cfg, k)]
    if differ:
        raise UserError(f"train.init_from: {path} holds another model "
                        f"({'; '.join(differ)}); use its model settings")
    new = sorted(set(trainer.vocab) - set(saved_vocab))
    gone = sorted(set(saved_vocab) - set(trainer.vocab))
    if gone or (new and vocab != "grow"):
        parts = ([f"the trainer's lacks {_chars(gone)}"] if gone else []) + (
            [f"the trainer's adds {_chars(new)}"] if new else [])
        hint = ("build the trainer with the file's characters too (export.init_vocab)"
                if gone else "set train.init_vocab=grow to add them")
        raise UserError(f"train.init_from: the vocabulary of {path} differs from the "
                        f"trainer's: {'; '.join(parts)}; {hint}")
    if saved_vocab != trainer.vocab:  # new characters, or the file's own order
        params = _place(params, saved_vocab, trainer)
    trainer.set_params(params)
    grown = f", and {_chars(new)} new" if new else ""
    unused = sorted(set(saved_vocab) - set(trainer.corpus.text))
    kept = f"; {_chars(unused)} not in the text, kept unused" if unused else ""
    return (f"weights from {path} ({saved.layers}-layer {saved.kind}, hidden "
            f"{saved.hidden}{grown}{kept})")


def _place(params, old_vocab, trainer):
    """params over old_vocab, placed into the trainer's own vocabulary (which holds
    old_vocab's characters, in its order, and maybe more: those keep their initial
    values)."""
    where = np.array([trainer.vocab.index(c) for c in old_vocab])
    out = dict(params)
    fresh = trainer.params()
    out["Wxh.0"] = fresh["Wxh.0"]
    out["Wxh.0"][:, where] = params["Wxh.0"]
    for name in ("Why", "by"):
        out[name] = fresh[name]
        out[name][where] = params[name]
    return out


def _chars(chars, most=20):
    shown = "".join(chars[:most])
    more = f" and {len(chars) - most} more" if len(chars) > most else ""
    return f"{len(chars)} character(s) {shown!r}{more}"


def main(argv=None, prog="python -m fastrnn.export"):
    import argparse
    ap = argparse.ArgumentParser(prog=prog, description="Export a model's weights under "
                                 "PyTorch's names (.safetensors or .npz).")
    ap.add_argument("source", help="run folder (its latest checkpoint) or checkpoint .npz")
    ap.add_argument("out", help="file to write: *.safetensors or *.npz")
    ap.add_argument("--force", action="store_true", help="replace out if it exists")
    args = ap.parse_args(argv)
    try:
        out = export(args.source, args.out, args.force)
    except (UserError, OSError) as e:  # (OSError: a path the OS refuses)
        return fail(e)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
