"""A fuzz of hostile input, reproducible from its seed: cases made by mutating sound
inputs (config files, section.key=value overrides, checkpoints and exports, sweep files,
and the options of sample, eval, export and sweep), each run in this process and held to
what every hostile case is held to: exit 0 or the command's documented code (2 for bad
input; run's 3, a loss that became NaN; sweep's 1, failed trials), an error in one
`fastrnn: error:` line (or argparse's usage and its one error line), no traceback, no
hang, nothing changed but what the command was asked to write, and nothing at all on
failure.

A failing case's id and message say what it was. The cases are drawn from FUZZ_SEED;
FASTRNN_FUZZ_SEED=N draws others (to explore; the suite runs the fixed ones). A case
that hangs is ended after HANG seconds (FASTRNN_FUZZ_HANG), by SIGALRM in this process,
which may leave it in a state that fails later cases too: run a failing case alone (-k
its id) to tell.

Kept quick: the model is the other hostile tests' (rnn, hidden 8, float64, one stream),
so its kernels are compiled once for all; a mutation that would change what is compiled
(family, dtype, streams, layers, threads, optimizer) while still being valid is drawn
again; a run that is accepted trains at most 10 iterations, and a sweep's trials only
check their configs (both patched below, after the command's own checks).
"""
import dataclasses
import io
import json
import os
import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_TEXT
from fastrnn.config import SECTIONS, Config, merge, parse_overrides, read_yaml
from hostile import invoke, snapshot

FUZZ_SEED = 28
SEED = int(os.environ.get("FASTRNN_FUZZ_SEED", FUZZ_SEED))
# seconds a case may take before it counts as a hang (a cold compile takes ~15)
HANG = int(os.environ.get("FASTRNN_FUZZ_HANG", 120))
# what each command may exit with, besides 2 (bad input, one line)
CODES = {"run": (0, 3), "sample": (0,), "export": (0,), "eval": (0,), "sweep": (0, 1)}

CONFIG = [("data", [("path", "text.txt"), ("val_fraction", "0.2")]),
          ("model", [("hidden", "8")]),
          ("optim", [("lr", "0.1")]),
          ("train", [("seq_length", "10"), ("max_iters", "10"), ("dtype", "float64"),
                     ("out_dir", "fresh"), ("eval_every", "5"), ("log_every", "5"),
                     ("sample_every", "5"), ("sample_length", "20"),
                     ("checkpoint_every", "5")])]
SWEEPS = ["base: base.yaml\nout_dir: sw\ngrid:\n  optim.lr: [0.1, 0.05]\n"]

# Values as YAML text: of the wrong type, numbers at the edges, nesting, strings a path
# or a terminal may choke on, aliases.
WRONG_TYPES = ['"abc"', "abc def", "[1, 2]", "{a: 1}", "true", "false", "null", "''",
               "2020-01-01", "!!binary aGVsbG8=", "!!set {a: null}",
               "!!python/object/apply:os.getcwd []", "!!str 8", "[]", "{}"]
NUMBERS = ["-1", "0", "-0.0", "1.5", str(2**31), str(2**32), str(2**63 - 1), str(2**63),
           str(-2**63), "9" * 40, "1e300", "-1e300", "1e-320", "1e309", ".nan", ".inf",
           "-.inf", "0x7fffffffffffffff", "0o17", "1_000", "+1e+3", "5e-324"]
NESTED = ["[" * 40 + "]" * 40, "{a: " * 40 + "1" + "}" * 40, "[[[[1]]]]", "[" * 3000,
          "[" * 20 + "1" + "]" * 20]
STRINGS = ['"a\\0b"', '"' + "x" * 5000 + '"', '"\\ud800"', '"\\udcff"', '"\\u202e\\x1b[2J"',
           "'../../x'", "'~nosuchuser/x'", '"/dev/zero"', '"*"', "'$x^$'", "' '",
           '"a\\nb"', '"fifo"', '"."', '"\\t"', "'%2e%2e'", "'x/../../y'", '"sub/"',
           "'**'", '"afile/x"', '"' + "y" * 300 + '"']
ALIASES = ["*nowhere", "&a 1", "&a [1, *a]"]
VALUES = WRONG_TYPES + NUMBERS + NESTED + STRINGS + ALIASES
KEYS = [(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
TYPES = {(s, f.name): f.type for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
# Values of the key's own type at its edges (accepted, some of them, then used)
EDGES = {
    int: ["0", "1", "-1", str(2**31), str(2**32), str(2**62), str(2**63 - 1), "1.0e+18",
          "1.0e+15", "1_000", "0x7fffffff", "9" * 25, "2", "3"],
    float: ["1e300", "-1e300", "1e-320", "5e-324", "1e-300", "0.9999999999999999",
            "1.0e+15", "0", "-0.0", "1", ".nan", ".inf", "1e309", "'1e-3'", "2"],
    str: STRINGS + ["''", "' '", '"\\ufeff"', "'-'", "'--help'", "'$\\frac{'", "run",
                    "'*.txt'", "'good.npz'", "'export.npz'", "'run/latest.npz'"],
    bool: ["yes", "no", "on", "1", "'true'", "True"],
}
UNKNOWN = [("model", "hiden"), ("train", "max_iter"), ("optimizer", "lr"),
           ("model", "__class__"), ("train", "1"), ("data", "path "), ("", "x"),
           ("model", "hidden.x"), ("Model", "hidden")]
BYTES = [b"\0", b"\xff", b"\t", b"\r", b"\xef\xbb\xbf", b"\x1b", b":", b"- ", b"&x ",
         b"*x", b"!", b"%", b"@", b"`", b"{", b"[", b"\n  ", b"'", b'"', b"? ", b"|"]
DOCUMENTS = ["", "---\n", "[]", "42", "~", "--- a\n--- b\n", "%YAML 1.1\n---\n",
             "%TAG ! tag:x,2000:\n--- !x 1\n", "? [a, b]\n: 1\n", "\t", "...\n",
             "\ufeff"]
# JSON values for the metadata inside a checkpoint or an export
JSON = [-1, 0, 2**63, 10**40, 1e308, float("nan"), float("inf"), "abc", "", [], {},
        None, True, [[[[1]]]], "\ud800", "x" * 10_000, 0.5]


@dataclasses.dataclass
class Case:
    id: str
    command: str
    argv: list
    what: str  # the mutation, in words
    files: dict = dataclasses.field(default_factory=dict)  # name -> text or bytes
    damage: tuple = None  # (source, target, [(op, args)]): a model file made from source

    def __str__(self):
        argv = " ".join(repr(a) if len(a) < 80 else repr(a[:60]) + "..." for a in self.argv)
        files = "".join(f"\n  {name}: {_short(text)}" for name, text in self.files.items())
        return f"{self.id}: {self.what}\n  fastrnn {self.command} {argv}{files}"


def _short(text, most=400):
    return repr(text if len(text) <= most else text[:most]) + f"... ({len(text)} in all)"


# --- config files and overrides --------------------------------------------------------
def _render(sections):
    out = []
    for section, items in sections:
        out.append(f"{section}:\n" if items is not None else "")
        for key, value in items or []:
            out.append(f"  {key}: {value}\n")
    return "".join(out)


def _set(sections, section, key, value):
    for name, items in sections:
        if name == section and items is not None:
            for i, (k, _) in enumerate(items):
                if k == key:
                    items[i] = (key, value)
                    return
            items.append((key, value))
            return
    sections.append((section, [(key, value)]))


PATH_KEYS = [("data", "path"), ("train", "out_dir"), ("train", "init_from")]
SIZE_KEYS = [k for k in KEYS if TYPES[k] is int]


def _key(rng):
    """A config key: one that names a file, or a size, more often than the rest."""
    r = rng.random()
    return rng.choice(PATH_KEYS if r < 0.25 else SIZE_KEYS if r < 0.45 else KEYS)


def _value(rng, key):
    """A hostile value for a config key: of its own type at the edges, or any."""
    kind = TYPES.get(key)
    if kind in EDGES and rng.random() < (0.8 if key in PATH_KEYS else 0.6):
        return rng.choice(EDGES[kind])
    return rng.choice(VALUES)


def _config_file(rng):
    """(text or bytes of a mutated config file, what was done)."""
    sections = [(s, list(items)) for s, items in CONFIG]
    said = []
    for _ in range(rng.choice([1, 1, 1, 2])):
        op = rng.choice(["value"] * 8 + ["unknown", "section", "alias", "twice"])
        if op == "value":
            section, key = _key(rng)
            value = _value(rng, (section, key))
            _set(sections, section, key, value)
            said.append(f"{section}.{key}: {_short(value, 60)}")
        elif op == "unknown":
            (section, key), value = rng.choice(UNKNOWN), rng.choice(["1", "8", "x"])
            _set(sections, section, key, value)
            said.append(f"unknown key {section}.{key}")
        elif op == "section":
            i, value = rng.randrange(len(sections)), rng.choice(VALUES)
            sections[i] = (f"{sections[i][0]}: {value}", None)
            said.append(f"section {sections[i][0][:40]}")
        elif op == "alias":
            _set(sections, "model", "hidden", "&h 8")
            _set(sections, "train", rng.choice(["seq_length", "log_every"]), "*h")
            said.append("an anchor and an alias")
        else:
            section, items = rng.choice([s for s in sections if s[1]])
            items.append(rng.choice(items))
            said.append(f"a key of {section} twice")
    text = _render(sections)
    op = rng.choice(["none"] * 6 + ["bytes", "truncate", "document", "crlf"])
    if op == "bytes":
        blob = text.encode("utf-8", "surrogatepass")
        at, ins = rng.randrange(len(blob) + 1), rng.choice(BYTES)
        said.append(f"{ins!r} inserted at byte {at}")
        return blob[:at] + ins + blob[at:], "; ".join(said)
    if op == "truncate":
        at = rng.randrange(len(text))
        said.append(f"cut at character {at}")
        text = text[:at]
    elif op == "document":
        doc = rng.choice(DOCUMENTS)
        text = doc + (text if rng.random() < 0.5 else "")
        said.append(f"document starts {doc!r}")
    elif op == "crlf":
        text = text.replace("\n", "\r\n")
        said.append("CRLF line ends")
    return text, "; ".join(said)


def _override(rng):
    op = rng.choice(["value"] * 8 + ["unknown", "malformed"])
    if op == "value":
        section, key = _key(rng)
        value = rng.choice(["", " "]) if rng.random() < 0.05 else _value(rng, (section, key))
        return f"{section}.{key}={value}"
    if op == "unknown":
        (section, key) = rng.choice(UNKNOWN)
        return f"{section}.{key}=8"
    return rng.choice(["=", "model", "model.hidden", ".hidden=3", "model.=3",
                       "model..hidden=3", "model.hidden.x=3", "=3", "model.hidden==8",
                       " model.hidden = 8 ", "MODEL.HIDDEN=8", "train.out_dir=",
                       "data.path=*", "data.path=**/*.txt", "train.resume=true",
                       "train.overwrite=true", "train.out_dir=run",
                       "train.init_from=run", "model.hidden=" + "9" * 4300])


def _shape(config):
    """What the kernels are compiled for, of a config that is accepted (None if it is
    refused, or fails in any way: then it trains nothing)."""
    try:
        if isinstance(config, bytes):
            config = config.decode("utf-8")
        text, overrides = config if isinstance(config, tuple) else (config, [])
        raw = read_yaml(text, "fuzz")
        cfg = Config.from_dict(merge(raw, parse_overrides(overrides)))
    except Exception:  # noqa: BLE001 -- any failure: nothing is compiled
        return None
    m, t, o = cfg.model, cfg.train, cfg.optim
    return (m.kind, m.layers > 1, m.layers > 1 and m.dropout > 0, t.dtype, t.batch_size > 1,
            t.exact, cfg.data.records, t.threads, o.name, o.weight_decay > 0)


BASE_SHAPE = _shape(_render(CONFIG))


def config_cases(rng, n):
    cases = []
    while len(cases) < n:
        text, what = _config_file(rng)
        if _shape(text) not in (None, BASE_SHAPE):
            continue
        argv = ["fuzz.yaml"] + [_override(rng) for _ in range(rng.choice([0, 0, 0, 1]))]
        cases.append(Case(f"config-{len(cases):03d}", "run", argv, what,
                          files={"fuzz.yaml": text}))
    return cases


def override_cases(rng, n):
    """Overrides: train.out_dir (what a run writes) given each of the strings, the other
    keys that name files given some, sizes given their edges (each pair drawn once), and
    n of anything."""
    paths = [(("train", "out_dir"), v) for v in EDGES[str]]
    others = [(k, v) for k in PATH_KEYS if k != ("train", "out_dir") for v in EDGES[str]]
    sizes = [(k, v) for k in SIZE_KEYS for v in EDGES[int]]
    paths += rng.sample(others, 16) + rng.sample(sizes, 20)
    cases, total = [], len(paths) + n
    while len(cases) < total:
        if paths:
            (section, key), value = paths.pop(0)
            overrides = [f"{section}.{key}={value}"]
        else:
            overrides = [_override(rng) for _ in range(rng.choice([1, 1, 1, 2]))]
        if _shape((_render(CONFIG), overrides)) not in (None, BASE_SHAPE):
            continue
        cases.append(Case(f"override-{len(cases):03d}", "run", ["base.yaml"] + overrides,
                          "overrides"))
    return cases


# --- checkpoints and exports -------------------------------------------------------------
MEMBERS = ["format_version", "config", "vocab", "theta", "optimizer", "state", "cursor",
           "rng", "next_input", "smooth_loss", "extra", "lr_scale"]
EXPORT_MEMBERS = ["__vocab__", "__config__", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                  "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.weight", "head.bias"]
DTYPES = ["float32", "float16", "int64", "int32", "uint64", "int8", "bool", "complex128",
          "<U3", "S3", "V8", ">f8"]


def _damage(rng, members):
    """A list of (op, args) that damage a model file: its bytes or its members."""
    ops = []
    for _ in range(rng.choice([1, 1, 2])):
        op = rng.choice(["truncate", "flip", "zero", "append", "remove", "rename",
                         "reshape", "dtype", "value", "json", "json", "add", "compress"])
        member = rng.choice(members)
        if op == "truncate":
            ops.append((op, rng.random()))
        elif op == "flip":
            ops.append((op, [(rng.random(), rng.randrange(1, 256))
                             for _ in range(rng.randint(1, 4))]))
        elif op == "zero":
            ops.append((op, (rng.random(), rng.choice([1, 8, 64, 4096]))))
        elif op == "append":
            ops.append((op, rng.choice([b"\0" * 100, b"PK\x05\x06" + b"\0" * 18,
                                        b"garbage"])))
        elif op == "remove":
            ops.append((op, member))
        elif op == "rename":
            ops.append((op, (member, rng.choice(["x", member.upper(), member + " ", "",
                                                 "../" + member, "a/" + member]))))
        elif op == "reshape":
            ops.append((op, (member, rng.choice(["flat", "extra", "short", "empty",
                                                 "scalar", "long"]))))
        elif op == "dtype":
            ops.append((op, (member, rng.choice(DTYPES))))
        elif op == "value":
            ops.append((op, (member, rng.choice(["nan", "inf", "-inf", "huge", "-1",
                                                 "max"]))))
        elif op == "json":
            field = rng.choice([m for m in members if m in (
                "config", "vocab", "extra", "__config__", "__vocab__")])
            ops.append((op, (field, _json_change(rng, field))))
        elif op == "add":
            ops.append((op, rng.choice(["object", "big_name", "same"])))
        else:
            ops.append((op, rng.random()))
    return ops


def _json_change(rng, field):
    """How to change the JSON of a metadata field: (path into it, new value) or (None,
    a whole new text)."""
    if field in ("config", "__config__"):
        (section, key), value = rng.choice(KEYS + UNKNOWN), rng.choice(JSON)
        if section in ("model", "train") and key in ("kind", "dtype", "batch_size",
                                                     "layers", "exact", "threads"):
            value = rng.choice([v for v in JSON if not isinstance(v, bool)])
        return ([section, key], value)
    if field in ("vocab", "__vocab__"):
        if rng.random() < 0.4:  # the last (largest) character: the list stays sorted
            return (["[-1]"], rng.choice(["\ud800", "\udcff", "\uffff", "\U0010ffff",
                                          "\u2028", "~\u0301"]))
        return (None, rng.choice(['["a", "a"]', '["b", "a"]', '["ab"]', "[]", "[1]",
                                  '"abc"', '["\\ud800"]', "null", "{}", "[" * 50,
                                  json.dumps([chr(i) for i in range(32, 20000)])]))
    return ([rng.choice(["best_val", "sample_seed", "best_iteration", "since_best",
                         "plateau_wait", "watched_at", "watch_best", "minutes", "new"])],
            rng.choice(JSON))


def _apply(blob, ops):
    """blob (an .npz) damaged by ops (_damage)."""
    for op, args in ops:
        if op == "truncate":
            blob = blob[:int(len(blob) * args)]
        elif op == "flip":
            b = bytearray(blob)
            for at, x in args:
                if b:
                    b[int(at * len(b))] ^= x
            blob = bytes(b)
        elif op == "zero":
            at = int(len(blob) * args[0])
            blob = blob[:at] + b"\0" * args[1] + blob[at + args[1]:]
        elif op == "append":
            blob = blob + args
        elif op == "compress":
            arrays = _arrays(blob)
            if arrays is not None:
                buf = io.BytesIO()
                np.savez_compressed(buf, **arrays)
                b = bytearray(buf.getvalue())
                b[int(args * (len(b) - 1))] ^= 0x55
                blob = bytes(b)
        else:
            arrays = _arrays(blob)
            if arrays is None:
                continue
            _change(arrays, op, args)
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            blob = buf.getvalue()
    return blob


def _arrays(blob):
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception:  # noqa: BLE001 -- damaged already: left as it is
        return None


def _change(arrays, op, args):
    if op == "remove":
        arrays.pop(args, None)
    elif op == "rename":
        member, to = args
        if member in arrays:
            arrays[to] = arrays.pop(member)
    elif op == "add":
        arrays[{"object": "obj", "big_name": "n" * 200, "same": "theta2"}[args]] = (
            np.array([{"a": 1}], dtype=object) if args == "object" else np.zeros(3))
    elif args[0] in arrays:
        member, how = args
        a = arrays[member]
        if op == "reshape":
            arrays[member] = {"flat": lambda: a.reshape(-1),
                              "extra": lambda: a[None],
                              "short": lambda: a.reshape(-1)[:-1],
                              "empty": lambda: a.reshape(-1)[:0],
                              "scalar": lambda: a.reshape(-1)[0] if a.size else a,
                              "long": lambda: np.concatenate([a.reshape(-1)] * 2)}[how]()
        elif op == "dtype":
            try:
                arrays[member] = a.astype(how)
            except (TypeError, ValueError):
                arrays[member] = np.zeros(a.shape, how)
        elif op == "value":
            if a.dtype.kind in "fiu" and a.size:
                b = a.copy().reshape(-1)
                info = np.finfo(a.dtype) if a.dtype.kind == "f" else np.iinfo(a.dtype)
                new = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": info.max / 2,
                       "-1": -1, "max": info.max}[how]
                if a.dtype.kind != "f" and how in ("nan", "inf", "-inf"):
                    new = info.min
                try:
                    b[len(b) // 2] = new
                except (OverflowError, ValueError):
                    return
                arrays[member] = b.reshape(a.shape)
        elif op == "json" and a.dtype.kind == "U":
            path, value = how
            if path is None:
                arrays[member] = np.array(value)
                return
            try:
                meta = json.loads(str(a))
            except ValueError:
                return
            if path == ["[-1]"]:
                if isinstance(meta, list) and meta:
                    meta[-1] = value
                    arrays[member] = np.array(json.dumps(meta))
                return
            node = meta
            for key in path[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node[path[-1]] = value
                arrays[member] = np.array(json.dumps(meta))


def model_file_cases(rng, n):
    cases = []
    targets = [("sample", ["bad.npz", "--length", "300", "--seed", "1"]),
               ("export", ["bad.npz", "out.npz"]),
               ("eval", ["bad.npz"]),
               ("run", ["base.yaml", "train.init_from=bad.npz"]),
               ("resume", ["base.yaml", "train.out_dir=run", "train.resume=true"])]
    while len(cases) < n:
        source = rng.choice(["good.npz", "good.npz", "export.npz"])
        members = MEMBERS if source == "good.npz" else EXPORT_MEMBERS
        ops = _damage(rng, members)
        command, argv = rng.choice(targets[:4] if source == "export.npz" else targets)
        target = "run/latest.npz" if command == "resume" else "bad.npz"
        what = f"{source} -> {target}: " + "; ".join(
            f"{op} {_short(repr(args), 80)}" for op, args in ops)
        cases.append(Case(f"model-{len(cases):03d}", "run" if command == "resume"
                          else command, list(argv), what, damage=(source, target, ops)))
    return cases


# --- sweep files -------------------------------------------------------------------------
SWEEP_KEYS = ["base", "config", "grid", "random", "n_trials", "seed", "metric", "out_dir",
              "halving", "search", "threads", "trials"]
SWEEP_VALUES = ["optuna", "random", "val_loss", "train_loss", "2", "64", "base.yaml", "fifo",
                '"/dev/zero"', "sweep.yaml", "sub", "afile", "text.txt", "fifo.yaml"]
DISTRIBUTIONS = ["uniform", "loguniform", "randint", "choice", "normal"]


def _sweep_file(rng, axis=None):
    """(text or bytes of a mutated sweep file, what was done); axis: (key, value) of a
    grid axis to add instead."""
    kind = "grid" if axis else rng.choice(["grid", "random", "halving", "config"])
    top = {"base": "base.yaml", "out_dir": "sw"}
    if kind == "grid":
        axes = {"optim.lr": "[0.1, 0.05]"}
    elif kind == "random":
        top.update(n_trials="2", seed="1")
        axes = {"optim.lr": "{loguniform: [0.01, 0.1]}", "train.seq_length": "{randint: [5, 9]}"}
    elif kind == "halving":
        top.update(metric="best_val_loss", halving="{min_iters: 2, eta: 2}")
        axes = {"optim.lr": "[0.1, 0.05, 0.02]"}
    else:
        top["config"] = "{train: {max_iters: 4}}"
        axes = {"model.hidden": "[8]", "optim.clip": "[1, 5]"}
    said = [kind]
    if axis is not None:
        (section, key), value = axis
        axes[f"{section}.{key}"] = f"[{value}, run]"
        said.append(f"axis {section}.{key}: {_short(value, 60)}")
    for _ in range(rng.choice([1, 1, 1, 2]) if axis is None else 0):
        op = rng.choice(["top", "axis", "axis", "axis", "halving", "config"])
        if op == "top":
            key = rng.choice(SWEEP_KEYS)
            top[key] = rng.choice(VALUES + SWEEP_VALUES)
            said.append(f"{key}: {_short(top[key], 60)}")
        elif op == "axis":
            section, key = _key(rng) if rng.random() < 0.9 else rng.choice(UNKNOWN)
            value = _value(rng, (section, key))
            if kind == "random":
                dist = rng.choice(DISTRIBUTIONS)
                form = rng.choice(["[{v}]", "[{v}, 1]", "[0.01, {v}]", "{v}", "[1, 2, {v}]"]
                                  if dist != "choice" else ["[{v}]", "[8, {v}]", "{v}"])
                value = f"{{{dist}: {form.format(v=value)}}}"
            else:
                value = rng.choice(["[{v}]", "[{v}, {v}]", "{v}"]).format(v=value)
            axes[f"{section}.{key}"] = value
            said.append(f"axis {section}.{key}: {_short(value, 60)}")
        elif op == "halving":
            key = rng.choice(["min_iters", "min_minutes", "eta", "max"])
            value = rng.choice(EDGES[float] + EDGES[int] + VALUES)
            top["halving"] = (f"{{{key}: {value}}}" if rng.random() < 0.4 else
                              f"{{min_iters: 2, {key}: {value}}}")
            if top.get("metric") is None and rng.random() < 0.7:
                top["metric"] = "best_val_loss"
            said.append(f"halving {key}: {_short(value, 60)}")
        else:
            section, key = _key(rng) if rng.random() < 0.9 else rng.choice(UNKNOWN)
            value = _value(rng, (section, key))
            top["config"] = f"{{{section}: {{{key}: {value}}}}}"
            said.append(f"config {section}.{key}: {_short(value, 60)}")
    text = "".join(f"{k}: {v}\n" for k, v in top.items())
    text += ("random" if kind == "random" else "grid") + ":\n"
    text += "".join(f"  {k}: {v}\n" for k, v in axes.items())
    if rng.random() < 0.1:
        blob = text.encode("utf-8", "surrogatepass")
        at, ins = rng.randrange(len(blob) + 1), rng.choice(BYTES)
        said.append(f"{ins!r} inserted at byte {at}")
        return blob[:at] + ins + blob[at:], "; ".join(said)
    return text, "; ".join(said)


def sweep_cases(rng, n):
    """n sweep files: a quarter with a grid axis of a file-naming key (each string
    once), the rest mutated at random."""
    axes = [(k, v) for k in PATH_KEYS for v in EDGES[str]]
    rng.shuffle(axes)
    cases = []
    while len(cases) < n:
        text, what = _sweep_file(rng, axes.pop() if len(cases) < n // 4 else None)
        cases.append(Case(f"sweep-{len(cases):03d}", "sweep", ["sweep.yaml", "--workers",
                                                                "1"], what,
                          files={"sweep.yaml": text}))
    return cases


# --- paths that are not what they should be, in every command --------------------------
PATHS = ["fifo", "fifo.npz", "fifo.yaml", "/dev/zero", "/dev/null", "sub", "afile",
         "missing.npz", "bad.bin", "empty.txt", "text.txt", "y" * 300, "~nosuchuser/x",
         "link.npz", "dirlink", "run", "good.npz"]
USES = [("run", ["{p}"]), ("run", ["base.yaml", "train.init_from={p}"]),
        ("run", ["base.yaml", "data.path={p}"]), ("run", ["base.yaml", "train.out_dir={p}"]),
        ("sample", ["{p}", "--length", "5"]),
        ("sample", ["good.npz", "--prime-file", "{p}", "--length", "5"]),
        ("sample", ["good.npz", "--length", "5", "--output", "{p}"]),
        ("export", ["{p}", "out.npz"]), ("export", ["good.npz", "{p}", "--force"]),
        ("eval", ["{p}"]), ("sweep", ["{p}", "--workers", "1"]),
        ("sweep", ["sweep.yaml", "--workers", "1", "--out-dir", "{p}"]),
        ("sweep", ["base.yaml: {p}"])]


def path_cases(rng, n):
    cases = []
    for p, (command, argv) in rng.sample([(p, u) for p in PATHS for u in USES], n):
        files = {}
        if argv == ["base.yaml: {p}"]:
            files["sweep.yaml"] = f"base: {json.dumps(p)}\ngrid:\n  optim.lr: [0.1]\n"
            argv = ["sweep.yaml", "--workers", "1"]
        elif command == "sweep":
            files["sweep.yaml"] = SWEEPS[0]
        cases.append(Case(f"path-{len(cases):03d}", command,
                          [a.replace("{p}", p) for a in argv], f"{command} given {p[:40]}",
                          files=files))
    return cases


# --- options of sample, eval, export, sweep --------------------------------------------
SAMPLE_OPTIONS = {
    "--length": ["-1", "0", "3", str(-2**63), "1e3", "0x10", "", " 7 "],
    "--temperature": ["nan", "inf", "-inf", "-1", "0", "1e-320", "1e308", "-0", "x"],
    "--top-k": ["0", "-1", "1", str(2**63), "9" * 30],
    "--top-p": ["nan", "0", "-0.5", "1", "1.5", "1e-320", "inf"],
    "--seed": ["-1", "0", str(2**32), str(2**64), str(2**200)],
    "--num-samples": ["0", "-1", "3", str(10**7), str(2**63)],
    "--stop": ["", "\0", "x" * 10_000, "\n\n", "e"],
    "--prime": ["", "\0", "Fi", "\udcff", "First " * 200, "-", "\x1b[2J"],
    "--prime-file": ["/dev/zero", "/dev/null", ".", "missing.txt", "text.txt", "bad.bin",
                     "fifo", "empty.txt", "y" * 300],
    "--output": ["out.txt", "sub/out.txt", ".", "", "x" * 300, "/dev/null", "text.txt",
                 "good.npz", "afile/out", "sub", "nosuch/out.txt", "~nosuchuser/o"],
    "--beam": ["0", "-3", "2", "40", str(10**5), str(2**63)],
    "--paragraph": None,
}
SOURCES = ["good.npz", "export.npz", ".", "run", "missing.npz", "text.txt", "fifo",
           "fifo.npz", "/dev/zero", "y" * 300, "sub", "~nosuchuser/x.npz", "bad.bin"]
EVAL_OPTIONS = {
    "--split": ["val", "test", "x"],
    "--protocol": ["headline", "zero", "nanogpt", "windows", "x"],
    "--block": ["0", "-1", "1", "3", str(10**12), str(2**63)],
    "--windows": ["0", "-1", "1", "5", str(10**12), str(2**63)],
    "--seed": ["-1", "0", str(2**64), str(2**200)],
    "--streams": ["0", "-1", "1", "3", str(10**12), str(2**63)],
    "--burn-in": ["-1", "0", "5", str(10**12), str(2**63)],
    "--json": None,
}
EXPORT_OUTS = ["out.npz", "out.safetensors", "out.pt", "out", "", ".npz", "sub/.npz",
               "y" * 300 + ".npz", "good.npz", "text.txt", "afile/x.npz", "sub",
               "nosuch/out.npz", "fifo.npz", "run/latest.npz", "/dev/null"]
SWEEP_OPTIONS = {
    "--workers": ["0", "-1", "1", "2", str(2**63), "x"],
    "--out-dir": ["sw2", "", ".", "y" * 300, "afile", "afile/x", "sub", "run",
                  "~nosuchuser/s", "a?mode=ro", "%2e%2e"],
    "--address": ["tcp://127.0.0.1:1", "tcp://", "tcp://:", "tcp://127.0.0.1:99999",
                  "tcp://127.0.0.1:-5", "127.0.0.1:1", "tcp://[::1", "tcp://" + "a" * 300,
                  "tcp://127.0.0.1:x", "tcp://0.0.0.0:0"],
}


def _options(rng, table, k):
    argv = []
    for flag in rng.sample(sorted(table), k):
        argv += [flag] if table[flag] is None else [flag, rng.choice(table[flag])]
    return argv


def option_cases(rng, n):
    cases = []
    while len(cases) < n:
        command = rng.choice(["sample", "sample", "sample", "eval", "export", "sweep"])
        k = rng.choice([1, 1, 2, 3])
        if command == "sample":
            source = "good.npz" if rng.random() < 0.7 else rng.choice(SOURCES)
            argv = [source] + _options(rng, SAMPLE_OPTIONS, k)
            if "--length" not in argv:
                argv += ["--length", "20"]
        elif command == "eval":
            source = rng.choice(["good.npz", "export.npz"]) if rng.random() < 0.7 else \
                rng.choice(SOURCES)
            argv = [source, "--protocol", rng.choice(["headline", "zero", "nanogpt",
                                                      "windows"]), "--block", "5"]
            argv += _options(rng, EVAL_OPTIONS, k)
        elif command == "export":
            source = "good.npz" if rng.random() < 0.6 else rng.choice(SOURCES)
            argv = [source, rng.choice(EXPORT_OUTS)] + (
                ["--force"] if rng.random() < 0.3 else [])
        else:
            argv = ["sweep.yaml"] + _options(rng, SWEEP_OPTIONS, rng.choice([1, 2]))
            if "--address" in argv:
                argv += ["--executor", "dask"]
            elif "--workers" not in argv:
                argv += ["--workers", "1"]
        cases.append(Case(f"option-{len(cases):03d}", command, argv, f"{command} options",
                          files={"sweep.yaml": SWEEPS[0]} if command == "sweep" else {}))
    return cases


def make_cases(seed):
    rng = random.Random(seed)
    return (config_cases(rng, 25) + override_cases(rng, 15) + path_cases(rng, 30)
            + model_file_cases(rng, 40) + sweep_cases(rng, 32) + option_cases(rng, 40))


CASES = make_cases(SEED)


# --- running a case ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The files every case starts from: a text, its config, a sound checkpoint of it
    (good.npz, also as run/latest.npz) and its export, a few odd files."""
    from fastrnn import checkpoint
    from fastrnn.export import export
    from fastrnn.trainer import Trainer
    root = tmp_path_factory.mktemp("fuzz-template")
    (root / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (root / "base.yaml").write_text(_render(CONFIG))
    cfg = Config.from_dict(read_yaml(_render(CONFIG), "base.yaml"))
    checkpoint.save(Trainer(cfg, text=SMALL_TEXT * 4), root / "good.npz")
    export(root / "good.npz", root / "export.npz")
    (root / "run").mkdir()
    shutil.copy(root / "good.npz", root / "run" / "latest.npz")
    (root / "run" / "config.yaml").write_text(_render(CONFIG))
    (root / "run" / "metrics.csv").write_text("iteration,smooth_loss\n0,40.0\n")
    (root / "sub").mkdir()
    (root / "afile").write_text("a file\n")
    (root / "bad.bin").write_bytes(b"\xff\xfe\0\x80 not text")
    (root / "empty.txt").write_text("")
    (root / "link.npz").symlink_to("good.npz")
    (root / "dirlink").symlink_to("sub", target_is_directory=True)
    return root


class _Hang(BaseException):
    """A case that took more than HANG seconds."""


def _bounded(command, argv):
    """invoke(), with a case that hangs ended by SIGALRM (its traceback then says
    _Hang)."""
    def on_alarm(signum, frame):
        raise _Hang(f"no end in {HANG} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HANG)
    try:
        return invoke(command, argv, terminal=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def patched(monkeypatch):
    """Accepted runs train at most 10 iterations; a sweep's trials run in this process
    and only build their config (what a trial's worker reads first), its errors kept."""
    from fastrnn import run as run_module
    from fastrnn.sweeps import cli, strategies
    prepare = run_module.Run.prepare

    def short_prepare(self):
        prepare(self)  # (every check of the command is made first)
        t = self.cfg.train
        t.max_iters = min(t.max_iters, self.trainer.iteration + 10)

    monkeypatch.setattr(run_module.Run, "prepare", short_prepare)
    errors = []

    def trial(name, cfg):
        row = dict(trial=name, status="ok", metric=1.0, val_loss=1.0, best_val_loss=1.0,
                   train_loss=1.0, iterations=1, seconds=0.0, it_per_s=1.0, error="")
        try:
            Config.from_dict(cfg, where=f"trial {name}")
            Path(cfg["train"]["out_dir"]).mkdir(parents=True, exist_ok=True)
        except Exception as e:  # noqa: BLE001 -- a trial's failure is data; a bug, kept
            from fastrnn.errors import UserError
            if not isinstance(e, UserError):
                errors.append(f"trial {name}: {type(e).__name__}: {e}")
            row.update(status="failed", metric=None, error=str(e))
        return row

    class Inline:
        def submit(self, fn, *args):
            import concurrent.futures as cf
            f = cf.Future()
            f.set_result(fn(*args))
            return f

    import contextlib
    monkeypatch.setattr(cli, "run_sweep", lambda sweep, executor, **kw: strategies.run_sweep(
        sweep, lambda: contextlib.nullcontext(Inline()), progress=kw.get("progress"),
        trial_fn=trial, say=kw.get("say")))
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(Path.cwd() / ".no-cache"))
    return errors


def _writes(case, work):
    """The paths (relative to work) the command of a case that succeeded was asked to
    write: the run folder, --output, the export, the sweep folder."""
    from fastrnn.config import load_yaml
    from fastrnn.sweeps.spec import load_sweep
    argv = case.argv
    if case.command == "run":
        return [load_yaml(argv[0], argv[1:]).train.out_dir]
    if case.command == "sample":
        return [argv[argv.index("--output") + 1]] if "--output" in argv else []
    if case.command == "export":
        return [argv[1]]
    if case.command == "sweep":
        out = argv[argv.index("--out-dir") + 1] if "--out-dir" in argv else None
        return [str(load_sweep(argv[0], out).out_dir)]
    return []


def _on_the_way(work, path):
    """The folders that making path (mkdir -p) makes on its way, as path names them: x of
    x/../../y."""
    parts = Path(path).parts
    return [os.path.normpath(work / Path(*parts[:i])) for i in range(1, len(parts))]


def _inside(rel, allowed):
    """Whether rel is an allowed path, under one, or a folder made on the way to one."""
    return any(rel == a or rel.startswith(a + "/") or a.startswith(rel + "/")
               for a in allowed)


def _usage_error(err):
    """argparse's refusal of an option: its usage, then one `PROG: error:` line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (len(lines) >= 2 and lines[0].startswith("usage:")
            and any(s in lines[-1] for s in (": error: argument ", ": error: the following",
                                              ": error: unrecognized arguments")))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_case_is_one_line_or_done(case, template, tmp_path, monkeypatch, patched):
    work = tmp_path / "a" / "b" / "work"  # (a '../..' in a value stays under tmp_path)
    shutil.copytree(template, work, symlinks=True)
    for name in ("fifo", "fifo.npz", "fifo.yaml"):
        os.mkfifo(work / name)
    monkeypatch.chdir(work)
    for name, content in case.files.items():
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogatepass")
        (work / name).write_bytes(content)
    if case.damage is not None:
        source, target, ops = case.damage
        (work / target).write_bytes(_apply((template / source).read_bytes(), ops))
    before = snapshot(tmp_path)
    code, out, err = _bounded(case.command, case.argv)
    after = snapshot(tmp_path)
    say = f"{case}\n  exit {code}; stderr ends: {err[-1500:]!r}"
    assert "Traceback" not in err and "Traceback" not in out, say
    assert not patched, f"{say}\n  in a trial: {patched}"
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert (len(lines) == 1 and lines[0].startswith("fastrnn: error:")
                or _usage_error(err)), say
        assert not changed, f"{say}\n  a failed command changed {changed}"
    else:
        assert code in CODES[case.command], say
        writes = _writes(case, work)
        allowed = [os.path.relpath(where(work / p), where(tmp_path))
                   for p in writes for where in (os.path.normpath, os.path.realpath)]
        made = [os.path.relpath(q, tmp_path) for p in writes for q in _on_the_way(work, p)]
        outside = [k for k in changed if not _inside(k, allowed)
                   and not (k in made and k not in before and after[k] == ("dir",))]
        assert not outside, f"{say}\n  changed {outside}, asked to write {allowed}"


def test_the_cases_are_the_same_for_the_same_seed():
    """Reproducible: the fixed seed draws the same cases every time (and in every
    worker of pytest-xdist, which needs the same collection)."""
    assert [str(c) for c in make_cases(SEED)] == [str(c) for c in CASES]
    assert len(CASES) >= 150
