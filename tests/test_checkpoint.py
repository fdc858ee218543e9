"""Checkpoints as untrusted files: every damaged checkpoint is refused with one line
naming the file and the field, or behaves exactly as the original."""
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn import checkpoint

KEYS = checkpoint.KEYS


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A real tiny checkpoint (an LSTM, so that state has a cell row too) and what it
    does: its sample, its parameters and optimizer state, its next training losses."""
    folder = tmp_path_factory.mktemp("ckpt")
    t = fastrnn.Trainer(tiny_config(model={"kind": "lstm"}), text=SMALL_TEXT)
    t.train_iters(7)
    path = folder / "orig.npz"
    t.save(path, extra={"best_val": 3.5, "sample_seed": 4})
    return dict(path=path, blob=path.read_bytes(), behaviour=behaviour(path))


def behaviour(path):
    """What a checkpoint does, read without its text and with it."""
    t = fastrnn.load(path, data=False)
    u = fastrnn.load(path, text=SMALL_TEXT)
    return dict(sample=fastrnn.sample(t, length=40, seed=3),
                primed=fastrnn.sample(t, prime="Fir", length=20, seed=3),
                params={k: v.tobytes() for k, v in t.params().items()},
                cursor=u.cursor.tolist(), smooth=u.smooth_loss, extra=t.extra,
                iteration=t.iteration, carried=[np.asarray(t.carried[0]).tobytes(),
                                                t.carried[1]],
                vocab=t.vocab, extra_u=u.extra,
                losses=u.train_iters(3).tobytes(),
                after={k: v.tobytes() for k, v in u.params().items()})


def raw_arrays(blob):
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def npz(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def replaced(blob, key, value):
    arrays = raw_arrays(blob)
    arrays[key] = value
    return npz(arrays)


def json_of(blob, key):
    return json.loads(str(raw_arrays(blob)[key]))


def damaged(blob):
    """(name, bytes) of the damaged checkpoints: the file cut short, bytes flipped, each
    array removed, reshaped, emptied or replaced, JSON broken or of the wrong type,
    files that are not .npz."""
    rs = np.random.RandomState(0)
    n = len(blob)
    cases = [(f"cut at {k}", blob[:k])
             for k in sorted({0, 1, 3, 4, 30, n - 1, n - 22, n - 23} |
                             set(rs.randint(0, n, 40).tolist()))]
    positions = sorted(set(rs.randint(0, n, 250).tolist()) | set(range(n - 120, n)))
    for i in positions:
        b = bytearray(blob)
        b[i] ^= 1 << rs.randint(8)
        cases.append((f"bit flipped at byte {i}", bytes(b)))
    arrays = raw_arrays(blob)
    for key, a in arrays.items():
        rest = {k: v for k, v in arrays.items() if k != key}
        cases.append((f"{key} removed", npz(rest)))
        cases.append((f"{key} reshaped", replaced(blob, key, a.reshape((1,) + a.shape))))
        cases.append((f"{key} emptied", replaced(blob, key, np.zeros(0, a.dtype))))
        cases.append((f"{key} a scalar", replaced(blob, key, np.array(a.ravel()[0]))))
        cases.append((f"{key} a string", replaced(blob, key, np.array("abc"))))
        cases.append((f"{key} NaN", replaced(blob, key, np.full(a.shape, np.nan))))
        if a.dtype.kind != "U":
            cases.append((f"{key} as float32", replaced(blob, key, a.astype(np.float32))))
        cases.append((f"{key} as int32", replaced(blob, key, np.zeros(a.shape, np.int32))))
        if a.dtype.kind == "f" and a.size:
            for bad in (np.nan, np.inf, -np.inf):
                b = a.copy()
                b.flat[a.size // 2] = bad
                cases.append((f"{key} with one {bad}", replaced(blob, key, b)))
        if a.dtype.kind in "iu":
            for bad in (-1, -200, 2**40, 2**62):
                b = a.astype(np.int64) if a.dtype.kind == "i" else a.copy()
                if a.dtype.kind == "u" and bad < 0:
                    continue
                b.flat[0] = bad
                cases.append((f"{key} holds {bad}", replaced(blob, key, b)))
    V = len(json_of(blob, "vocab"))
    for value in (V, V + 1, -1, 10**12):
        cases.append((f"next_input {value}", replaced(blob, "next_input", np.array(value))))
    cfg, vocab = json_of(blob, "config"), json_of(blob, "vocab")
    for key in ("config", "vocab", "extra"):
        for text in ("{", "", "nul", "[1, 2", "5", "null", '"x"', "[]", "{}", "true",
                     "[" * 5000 + "]" * 5000):
            if key == "extra" and text == "{}":
                continue  # what Trainer.save writes by default: a valid checkpoint
            cases.append((f"{key} = {text[:12]!r}", replaced(blob, key, np.array(text))))
    changes = {"model.hidden abc": ("model", "hidden", "abc"),
               "model.hidden 9": ("model", "hidden", 9),
               "model.layers 2": ("model", "layers", 2),
               "model.kind rnn": ("model", "kind", "rnn"),
               "model.kind xyz": ("model", "kind", "xyz"),
               "train.dtype float32": ("train", "dtype", "float32"),
               "train.batch_size 2": ("train", "batch_size", 2),
               "train.batch_size 0": ("train", "batch_size", 0),
               "train.seq_length list": ("train", "seq_length", [1]),
               "model unknown key": ("model", "hiden", 8)}
    for name, (section, key, value) in changes.items():
        c = json.loads(json.dumps(cfg))
        c[section][key] = value
        cases.append((f"config {name}", replaced(blob, "config", np.array(json.dumps(c)))))
    for name, c in {"section a list": dict(cfg, model=[1]),
                    "unknown section": dict(cfg, extra={})}.items():
        cases.append((f"config {name}", replaced(blob, "config", np.array(json.dumps(c)))))
    for name, v in {"a repeat": vocab[:-1] + [vocab[0]], "unsorted": vocab[::-1],
                    "two-character": ["ab"] + vocab[1:], "one short": vocab[:-1],
                    "one more": vocab + ["\u00e9"], "numbers": list(range(len(vocab))),
                    "a string": "".join(vocab)}.items():
        cases.append((f"vocab {name}", replaced(blob, "vocab", np.array(json.dumps(v)))))
    for name, e in {"best_val a string": {"best_val": "x"},
                    "best_val NaN": {"best_val": float("nan")},
                    "best_val a list": {"best_val": [1]},
                    "sample_seed -1": {"sample_seed": -1},
                    "sample_seed 1.5": {"sample_seed": 1.5},
                    "sample_seed true": {"sample_seed": True},
                    "best_iteration -1": {"best_iteration": -1},
                    "since_best 1.5": {"since_best": 1.5},
                    "plateau_wait a string": {"plateau_wait": "2"},
                    "watched_at -3": {"watched_at": -3},
                    "watch_best NaN": {"watch_best": float("nan")},
                    "watch_best a list": {"watch_best": [1]},
                    "minutes -1": {"minutes": -1},
                    "minutes a string": {"minutes": "3"},
                    "minutes infinite": {"minutes": float("inf")},
                    "a list": [1, 2]}.items():
        cases.append((f"extra {name}", replaced(blob, "extra", np.array(json.dumps(e)))))
    for value in (-0.5, 1.5, 2.0):
        cases.append((f"lr_scale {value}", replaced(blob, "lr_scale", np.array(value))))
    cases.append(("format_version 2", replaced(blob, "format_version", np.array(2))))
    npy = io.BytesIO()
    np.save(npy, arrays["theta"])
    cases.append(("a .npy named .npz", npy.getvalue()))
    cases.append(("a text file", b"not a checkpoint\n"))
    cases.append(("a pickle", b"\x80\x04\x95" + blob[3:200]))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("theta.npy", b"garbage")
        z.writestr("config.txt", b"{}")
    cases.append(("a zip of other files", zipped.getvalue()))
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    cases.append(("an empty zip", empty.getvalue()))
    return cases


def outcome(path, want):
    """None if the checkpoint at path behaves exactly as the original, or the one-line
    UserError it is refused with; anything else fails the test."""
    try:
        got = behaviour(path)
    except fastrnn.UserError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg, msg
        return msg
    assert got == want, f"{path.name}: loaded, but behaves differently"
    return None


def test_every_damaged_checkpoint_is_refused_cleanly_or_unchanged(original, tmp_path):
    cases = damaged(original["blob"])
    refused = 0
    for i, (name, blob) in enumerate(cases):
        path = tmp_path / f"case{i}.npz"
        path.write_bytes(blob)
        try:
            refused += outcome(path, original["behaviour"]) is not None
        except AssertionError as e:
            raise AssertionError(f"damaged checkpoint '{name}': {e}") from None
        path.unlink()
    print(f"{len(cases)} damaged checkpoints: {refused} refused, "
          f"{len(cases) - refused} unchanged")
    assert len(cases) > 500 and refused > 0.8 * len(cases)


def test_the_exact_faults_of_the_report(original, tmp_path):
    """Faults that once segfaulted, sampled garbage or sampled a broadcast scalar."""
    blob = original["blob"]
    V = len(json_of(blob, "vocab"))
    for key, value, field in [("next_input", np.array(V + 5), "next_input"),
                              ("next_input", np.array(-3), "next_input"),
                              ("theta", np.array(0.5), "theta"),
                              ("cursor", np.array([0, -200]), "cursor")]:
        path = tmp_path / f"{key}.npz"
        path.write_bytes(replaced(blob, key, value))
        with pytest.raises(fastrnn.UserError, match=f"{path}: {field}"):
            fastrnn.load(path, data=False)
    theta = raw_arrays(blob)["theta"].copy()
    theta[3] = np.inf
    path = tmp_path / "inf.npz"
    path.write_bytes(replaced(blob, "theta", theta))
    with pytest.raises(fastrnn.UserError, match="theta holds NaN or infinite"):
        fastrnn.sample(path)
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(fastrnn.UserError, match="no checkpoint in run folder"):
        fastrnn.load(tmp_path / "folder.npz")


def test_the_sampler_command_refuses_damaged_checkpoints_with_exit_2(original, tmp_path):
    cases = dict(damaged(original["blob"]))
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent))
    good = subprocess.run([sys.executable, "-m", "fastrnn.sample", str(original["path"]),
                           "--length", "30", "--seed", "1"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert good.returncode == 0, good.stderr
    V = len(json_of(original["blob"], "vocab"))
    for name in (f"next_input {V}", "theta a scalar", "theta with one nan", "vocab unsorted",
                 "a .npy named .npz", "cut at 30", "extra best_val a string",
                 "config model.kind xyz", "cursor holds -200"):
        path = tmp_path / "bad.npz"
        path.write_bytes(cases[name])
        p = subprocess.run([sys.executable, "-m", "fastrnn.sample", str(path), "--length",
                            "30", "--seed", "1"], capture_output=True, text=True, env=env,
                           timeout=120)
        err = p.stderr.strip().splitlines()
        assert p.returncode == 2 and p.stdout == "", (name, p.stderr)
        assert len(err) == 1 and err[0].startswith("fastrnn: error: checkpoint"), (name, err)
