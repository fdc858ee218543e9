"""Typed configuration: defaults, then a YAML file, then ``section.key=value`` overrides.

Every key is checked on load; a mistake raises UserError naming the key and saying what
to change (with a did-you-mean for a misspelt key).
"""
import dataclasses
import difflib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError
# The registries the choices come from: a family, scheme, optimizer, schedule or reading
# mode added there is a choice here.
from .kernels.optim import OPTIMIZERS, SCHEDULES
from .models import FAMILIES, INITS
from .reading import MODES


def _key(default, doc, *, choices=None, min=None, min_open=None, max=None, max_open=None,
         optional=False):
    """A config field: its default, a one-line description and the values it accepts
    (optional: null is accepted too, meaning off)."""
    return field(default=default, metadata=dict(
        doc=doc, choices=choices, min=min, min_open=min_open, max=max, max_open=max_open,
        optional=optional))


@dataclass
class DataConfig:
    path: str = _key("shakespeare", "text file, folder of .txt files or glob (joined in "
                     "sorted order, a blank line between files), or a corpus name looked "
                     "up in $FASTRNN_DATA_DIR, the package, ~/.cache/fastrnn, then "
                     "downloaded")
    val_fraction: float = _key(0.1, "fraction of the text held out for validation: the "
                               "last, or the one just before the test split",
                               min=0.0, max_open=1.0)
    test_fraction: float = _key(0.0, "the last fraction of the text, held out for one "
                                "test loss at the end of a run (from best.npz)",
                                min=0.0, max_open=1.0)
    val_chars: int = _key(None, "validation reads only the first this many characters of "
                          "its split, for large corpora (null: all of it)", min=2,
                          optional=True)
    records: str = _key("stream", "stream: the text is one long sequence (min-char-rnn); "
                        "paragraphs: each paragraph (split at blank lines) is a sequence "
                        "of its own from a zero state, shuffled every pass",
                        choices=tuple(MODES))
    newlines: str = _key("normalize", "normalize: drop a leading UTF-8 byte-order mark and "
                         "read CRLF line ends as LF (said at start-up); keep: read the "
                         "text as it is", choices=("normalize", "keep"))


@dataclass
class ModelConfig:
    kind: str = _key("rnn", "model family: rnn (min-char-rnn's tanh cell), gru, lstm",
                     choices=tuple(FAMILIES))
    hidden: int = _key(100, "hidden units per layer", min=1)
    layers: int = _key(1, "stacked recurrent layers", min=1)
    dropout: float = _key(0.0, "dropout probability between layers (as PyTorch's)",
                          min=0.0, max_open=1.0)
    init: str = _key("auto", "initial weights: auto (minchar for rnn, pytorch for gru "
                     "and lstm), minchar (randn * 0.01, min-char-rnn's), pytorch "
                     "(U(+-1/sqrt(hidden))), xavier (Glorot uniform), orthogonal "
                     "(orthogonal recurrent and layer-to-layer weights); biases zero "
                     "but pytorch's", choices=("auto",) + tuple(INITS))


@dataclass
class OptimConfig:
    name: str = _key("adagrad", "optimizer", choices=tuple(OPTIMIZERS))
    lr: float = _key(0.1, "learning rate", min_open=0.0)
    clip: float = _key(5.0, "clip each gradient element to [-clip, clip] (0: off)", min=0.0)
    clip_norm: float = _key(None, "scale the gradient down to this global norm (null: off)",
                            min_open=0.0, optional=True)
    lr_decay: float = _key(1.0, "multiply lr by this every decay_every iterations",
                           min_open=0.0, max=1.0)
    decay_every: int = _key(10_000, "iterations between learning-rate decays", min=1)
    schedule: str = _key("step", "learning-rate schedule: step (lr_decay every "
                         "decay_every; constant at lr_decay 1), constant, cosine "
                         "(warm-up, then down to min_lr), plateau (x factor when "
                         "validation stalls)", choices=tuple(SCHEDULES))
    warmup: int = _key(0, "cosine: iterations of linear warm-up", min=0)
    min_lr: float = _key(0.0, "cosine: the lr at decay_iters and after; plateau: the "
                         "lowest lr", min=0.0)
    decay_iters: int = _key(None, "cosine: the iteration at which lr reaches min_lr "
                            "(null: train.max_iters)", min=1, optional=True)
    factor: float = _key(0.5, "plateau: multiply lr by this when validation stalls",
                         min_open=0.0, max_open=1.0)
    plateau_patience: int = _key(3, "plateau: evaluations without improvement before "
                                 "lr is lowered", min=1)
    weight_decay: float = _key(0.0, "decoupled weight decay (AdamW's) of the weight "
                               "matrices, not the biases: theta -= lr wd theta", min=0.0)
    eps: float = _key(1e-8, "added in the optimizer's denominator", min_open=0.0)
    beta1: float = _key(0.9, "adam's first-moment decay", min=0.0, max_open=1.0)
    beta2: float = _key(0.999, "adam's second-moment decay; rmsprop's decay "
                        "(char-rnn uses 0.95)", min=0.0, max_open=1.0)


@dataclass
class TrainConfig:
    seq_length: int = _key(25, "characters of truncated backpropagation through time", min=1)
    batch_size: int = _key(1, "parallel streams, each a contiguous slice of the text", min=1)
    max_iters: int = _key(1_000_000, "iterations to train", min=1)
    max_minutes: float = _key(None, "also stop after this many minutes of training in one "
                              "invocation of the runner (null: no limit)", min_open=0.0,
                              optional=True)
    dtype: str = _key("float32", "float type of parameters and kernels",
                      choices=("float32", "float64"))
    precision: str = _key("float32", "operands of the matrix products of many streams: "
                          "float32, or bf16 (rounded to bfloat16 and summed in float32, as "
                          "PyTorch's CPU autocast; parameters, gradients, optimizer and "
                          "cells stay float32); bf16 needs train.dtype float32 and a CPU "
                          "with AVX512_BF16 (AMD Zen 4 and later, Intel Xeon 4th "
                          "generation and later)", choices=("float32", "bf16"))
    exact: bool = _key(True, "float64: reproduce min-char-rnn bit for bit (one gemv per "
                        "step); false: matrix products over all steps, faster; float32 "
                        "always takes the fast path")
    threads: int = _key(0, "threads in the kernels; 0: all cores, but one for a single "
                         "stream below hidden 256 (below 48 for min-char-rnn's exact "
                         "model; faster there)", min=0)
    state_resets: float = _key(0.0, "the chance that a stream's carried state is zeroed "
                               "at the start of a window (0: only when a pass begins, as "
                               "min-char-rnn), so that the model learns to start from "
                               "nothing, as nanoGPT's protocol and an empty prime ask; "
                               "data.records: stream", min=0.0, max=1.0)
    seed: int = _key(0, "seed of the initial weights and of sampling (numpy's "
                     "RandomState takes 0 to 2**32 - 1)", min=0, max=2**32 - 1)
    out_dir: str = _key("", "run folder; empty means runs/<config file name>")
    log_every: int = _key(1000, "iterations between progress lines", min=1)
    eval_every: int = _key(10_000, "iterations between validation losses", min=1)
    sample_every: int = _key(10_000, "iterations between printed samples (0: never)", min=0)
    sample_length: int = _key(200, "characters per printed sample", min=1, max=100_000)
    checkpoint_every: int = _key(10_000, "iterations between checkpoints", min=1)
    resume: bool = _key(False, "continue from the run folder's latest checkpoint")
    overwrite: bool = _key(False, "replace a run already in the run folder")
    init_from: str = _key("", "the runner starts from the weights of an export "
                          "(.safetensors, .npz), a checkpoint or a run folder (empty: off; "
                          "ignored on resume)")
    patience: int = _key(None, "stop when validation has not improved for this many "
                         "evaluations (null: off)", min=1, optional=True)
    init_vocab: str = _key("strict", "init_from's vocabulary, the file's and the text's: "
                           "strict (the text may lack characters of the file, not add "
                           "any) or grow (it may add some too)",
                           choices=("strict", "grow"))


SECTIONS = dict(data=DataConfig, model=ModelConfig, optim=OptimConfig, train=TrainConfig)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, d, where="config"):
        """Build and check a Config from a nested dict such as a parsed YAML file."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected a mapping of sections "
                            f"({', '.join(SECTIONS)}), got {type(d).__name__}")
        sections = {}
        for name, values in d.items():
            section = _lookup(name, SECTIONS, where, "section")
            if values is None:
                values = {}
            if not isinstance(values, dict):
                raise UserError(f"{where}: section '{name}' must be a mapping of keys, "
                                f"got {type(values).__name__}")
            sections[name] = _build(section, name, values, where)
        cfg = cls(**sections)
        cfg.check()
        return cfg

    def to_dict(self):
        return dataclasses.asdict(self)

    def check(self):
        """Rules between keys (each key's own range is checked when it is read); the
        ones that need the text are checked by the trainer."""
        d = self.data
        if d.val_fraction + d.test_fraction >= 1:
            raise UserError(f"data.val_fraction + data.test_fraction must be less than 1 "
                            f"(got {d.val_fraction} + {d.test_fraction}); leave some text "
                            f"to train on")
        o, t = self.optim, self.train
        if t.state_resets > 0 and d.records != "stream":
            raise UserError(f"train.state_resets={t.state_resets} belongs to data.records: "
                            f"stream (each paragraph starts from a zero state already); "
                            f"set train.state_resets=0")
        if t.precision == "bf16" and t.dtype != "float32":
            raise UserError(f"train.precision=bf16 keeps float32 parameters and "
                            f"train.dtype is {t.dtype}; set train.dtype=float32 or "
                            f"train.precision=float32")
        if o.schedule != "step" and o.lr_decay != 1:
            raise UserError(f"optim.lr_decay={o.lr_decay} belongs to the step schedule and "
                            f"optim.schedule is {o.schedule}; set optim.lr_decay=1 or "
                            f"optim.schedule=step")
        if o.schedule != "cosine" and (o.warmup or o.decay_iters is not None):
            key = "optim.warmup" if o.warmup else "optim.decay_iters"
            raise UserError(f"{key} belongs to the cosine schedule and optim.schedule is "
                            f"{o.schedule}; remove it or set optim.schedule=cosine")
        if o.schedule not in ("cosine", "plateau") and o.min_lr:
            raise UserError(f"optim.min_lr belongs to the cosine and plateau schedules and "
                            f"optim.schedule is {o.schedule}; remove it or change the "
                            f"schedule")
        if o.min_lr > o.lr:
            raise UserError(f"optim.min_lr={o.min_lr} is above optim.lr={o.lr}; the "
                            f"schedule only lowers lr, so set min_lr below lr")
        horizon = o.decay_iters or t.max_iters
        if o.schedule == "cosine" and o.warmup >= horizon:
            raise UserError(f"optim.warmup={o.warmup} is not shorter than the run's "
                            f"cosine decay ({horizon} iterations, optim.decay_iters or "
                            f"train.max_iters); shorten the warm-up")
        needs_val = [k for k, on in (("optim.schedule=plateau", o.schedule == "plateau"),
                                     (f"train.patience={t.patience}", t.patience))
                     if on]
        if needs_val and d.val_fraction == 0:
            raise UserError(f"{needs_val[0]} watches the validation loss and "
                            f"data.val_fraction is 0; hold out some text for validation "
                            f"(e.g. data.val_fraction=0.1)")


def _lookup(name, table, where, what, prefix=""):
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), [str(k) for k in table], n=1)
    hint = (f"did you mean '{prefix}{close[0]}'?" if close
            else f"known: {', '.join(prefix + k for k in table)}")
    raise UserError(f"{where}: unknown {what} '{prefix}{name}'; {hint}")


def _build(section_cls, section, values, where):
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    kwargs = {}
    for key, value in values.items():
        f = _lookup(key, fields, where, "key", prefix=f"{section}.")
        kwargs[key] = _check(f"{section}.{key}", value, f, where)
    return section_cls(**kwargs)


def _check(name, value, f, where):
    """Coerce value to the field's type and check its range; raise UserError if bad."""
    kind = f.type
    meta = f.metadata
    bad = f"{where}: {name} must be "
    if value is None and meta["optional"]:
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise UserError(f"{bad}true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise UserError(f"{bad}a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                raise UserError(f"{bad}a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{bad}a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise UserError(f"{bad}a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise UserError(f"{bad}a string, got {value!r}")
        if not is_text(value):
            raise UserError(f"{bad}text without NUL characters or lone surrogates (UTF-8 "
                            f"cannot hold them, nor can a NUL be in a file name), got "
                            f"{value!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise UserError(f"{bad}one of {', '.join(meta['choices'])}, got {value!r}")
    if meta["min"] is not None and value < meta["min"]:
        raise UserError(f"{bad}at least {meta['min']}, got {value!r}")
    if meta["min_open"] is not None and value <= meta["min_open"]:
        raise UserError(f"{bad}greater than {meta['min_open']}, got {value!r}")
    if meta["max"] is not None and value > meta["max"]:
        raise UserError(f"{bad}at most {meta['max']}, got {value!r}")
    if meta["max_open"] is not None and value >= meta["max_open"]:
        raise UserError(f"{bad}less than {meta['max_open']}, got {value!r}")
    return value


def is_text(s):
    """Whether the string s can be written as UTF-8 and, as a path, name a file: no NUL
    character, no lone surrogate (such as the \\udcff that stands for a name's invalid
    byte)."""
    if "\0" in s:
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_overrides(overrides, where="command line"):
    """['train.max_iters=1000', ...] -> nested dict; values are read as YAML."""
    out = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise UserError(f"{where}: override '{item}' is not of the form "
                            f"section.key=value (e.g. train.max_iters=1000)")
        try:
            value = yaml.load(text, Loader=_StrictLoader) if text.strip() else ""
        except _Bounded as e:
            if e.alias:  # not YAML, then: the text as it is (e.g. a glob, *txt)
                value = text
            else:
                shown = item if len(item) <= 60 else item[:57] + "..."
                raise UserError(f"{where}: override '{shown}': its value {e.what}; "
                                f"give a plain value") from None
        except RecursionError:
            raise UserError(f"{where}: override '{item[:60]}' is nested too deep "
                            f"(at most {MAX_DEPTH} levels)") from None
        except yaml.YAMLError:
            value = text
        out.setdefault(section, {})[name] = value
    return out


def merge(base, extra):
    """Nested dicts: extra's keys win."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (base or {}).items()}
    for section, values in extra.items():
        if isinstance(out.get(section), dict) and isinstance(values, dict):
            out[section].update(values)
        else:
            out[section] = values
    return out


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first, again):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.again = key, first, again


# What a config or sweep file may hold: no value nested deeper, no more values in all,
# no whole number of more digits (or beyond a 64-bit integer). Far beyond any real file,
# and small enough that reading a hostile one costs nothing.
MAX_DEPTH, MAX_NODES, MAX_DIGITS = 32, 100_000, 30
MAX_INT = 2**63
MAX_FILE_BYTES = 16 << 20  # a config or sweep file: far more than MAX_NODES values take


class _Bounded(yaml.YAMLError):
    """Something a config may not hold: what, the key (a dotted path) and the mark."""

    def __init__(self, what, path, mark, alias=False):
        super().__init__(what)
        self.what, self.path, self.mark, self.alias = what, path, mark, alias

    def where(self):
        key = "".join(p if p.startswith("[") else "." + p for p in self.path).lstrip(".")
        key = (key if len(key) <= 60 else key[:57] + "...") or "the document"
        return f"{key} (line {self.mark.line + 1})" if self.mark else key


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error rather than
    the last one silently winning, and what it reads is bounded: no aliases (a
    billion-laughs file), nesting to MAX_DEPTH, MAX_NODES values, whole numbers below
    MAX_INT."""

    def compose_node(self, parent, index):
        path = getattr(self, "_path", [])
        self._path = path
        if isinstance(index, yaml.ScalarNode):
            path.append(str(index.value))
        elif isinstance(index, int):
            path.append(f"[{index}]")
        else:
            path.append("")  # the document, or a key
        label = [p for p in path if p]
        try:
            mark = self.peek_event().start_mark
            if self.check_event(yaml.AliasEvent):
                raise _Bounded("uses an alias (*name); anchors and aliases are not "
                               "accepted: write the value out", label, mark, alias=True)
            if len(path) > MAX_DEPTH:
                raise _Bounded(f"is nested more than {MAX_DEPTH} deep", label, mark)
            self._nodes = getattr(self, "_nodes", 0) + 1
            if self._nodes > MAX_NODES:
                raise _Bounded(f"is one value too many (a file holds at most "
                               f"{MAX_NODES:,})", label, mark)
            node = super().compose_node(parent, index)
            if node.tag == "tag:yaml.org,2002:int":
                digits = node.value.replace("_", "").lstrip("+-")
                if len(digits) > MAX_DIGITS or abs(self.construct_yaml_int(node)) >= MAX_INT:
                    raise _Bounded(f"is a whole number too large ({len(digits)} digits; at "
                                   f"most {MAX_INT - 1})", label, mark)
            return node
        finally:
            path.pop()

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the safe loader reports it
                continue
            if first is not key_node.start_mark:
                raise _DuplicateKey(key, first, key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_json(text):
    """JSON text (a checkpoint's or an export's metadata) bounded as a config file is:
    nesting to MAX_DEPTH, whole numbers of at most MAX_DIGITS digits; ValueError
    otherwise."""
    def whole(digits):
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise ValueError(f"a whole number of {len(digits)} digits")
        return int(digits)

    try:
        value = json.loads(text, parse_int=whole)
    except RecursionError:
        raise ValueError("nested too deep") from None
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} deep")
        level = [v for x in level if isinstance(x, (list, dict))
                 for v in (x.values() if isinstance(x, dict) else x)]
    return value


def read_yaml(text, where):
    """Parse YAML text; UserError naming where (a file) and the line of a syntax error
    or of a key given twice."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _Bounded as e:
        raise UserError(f"{where}: {e.where()} {e.what}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deep to read (at most {MAX_DEPTH} "
                        f"levels)") from None
    except _DuplicateKey as e:
        raise UserError(f"{where}: key '{e.key}' is given twice (lines {e.first.line + 1} "
                        f"and {e.again.line + 1}); keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{where}: invalid YAML{at}: fix the file's syntax") from None


def read_text_file(path, what="config file"):
    """The UTF-8 text of a config or sweep file: a regular file of at most
    MAX_FILE_BYTES. A pipe or a device (/dev/zero) is refused before it is read, so it
    can neither hang nor fill memory: UserError naming `what`; FileNotFoundError,
    OSError and UnicodeDecodeError as Path.read_text raises them."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"{what} {path} is not a regular file (a folder, a pipe or a "
                            f"device); give a YAML file")
        blob = f.read(MAX_FILE_BYTES + 1)
    if len(blob) > MAX_FILE_BYTES:
        raise UserError(f"{what} {path} is over {MAX_FILE_BYTES:,} bytes, far more than a "
                        f"config holds; give the YAML file itself")
    return blob.decode("utf-8")


def read_yaml_file(path, what="config file"):
    """The parsed YAML of a file (read_yaml's bounds); UserError naming `what` when it
    is missing or unreadable."""
    try:
        text = read_text_file(path, what)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} {path}: {e}") from None
    return read_yaml(text, path)


def load_yaml(path, overrides=()):
    """Config from a YAML file plus overrides. train.out_dir defaults to runs/<file stem>."""
    path = Path(path)
    raw = read_yaml_file(path)
    if isinstance(raw, (dict, type(None))):
        raw = merge(raw, parse_overrides(overrides))
    cfg = Config.from_dict(raw, where=str(path))
    if not cfg.train.out_dir:
        cfg.train.out_dir = str(Path("runs") / path.stem)
    return cfg
