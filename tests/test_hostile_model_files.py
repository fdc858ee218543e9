"""One reader for every file that holds a model: init_from, sample and export given
.npy content named .npz, an .npz with an unknown compression method, a truncated or
empty one, a zip of something else, or a vocabulary holding a lone surrogate (which
could be sampled but never printed), are one line, as a checkpoint's damage is."""
import io
import json
import struct
import zipfile

import numpy as np
import pytest

from hostile import check_refused, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n  out_dir: run\n")


def _method(blob, method):
    """An archive with every member's compression method field set to `method`."""
    out = bytearray(blob)
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = out.find(sig)
        while i >= 0:
            out[i + at:i + at + 2] = struct.pack("<H", method)
            i = out.find(sig, i + 4)
    return bytes(out)


def _npy(good):
    buf = io.BytesIO()
    np.save(buf, np.zeros(10))
    return buf.getvalue()


def _other_zip(good):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not an array")
    return buf.getvalue()


def _stored(good):
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    return buf.getvalue()


# (what the damaged file holds, made from a good one)
DAMAGE = [
    _npy,
    lambda good: _method(_stored(good), 99),
    lambda good: _method(_stored(good), 6),  # implode: zipfile cannot read it
    lambda good: good[: len(good) // 2],
    lambda good: b"",
    _other_zip,
    lambda good: good[:4] + b"\0" * (len(good) - 4),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    from fastrnn.export import export
    make_workdir(tmp_path, monkeypatch, BASE, good=True)
    export(tmp_path / "good.npz", tmp_path / "export.npz")
    return tmp_path


@pytest.mark.parametrize("source", ["good.npz", "export.npz"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_model_file_is_one_line_in_every_reader(workdir, source, damage):
    (workdir / "bad.npz").write_bytes(damage((workdir / source).read_bytes()))
    for command, argv in (("run", ["base.yaml", "train.init_from=bad.npz"]),
                          ("sample", ["bad.npz", "--length", "5"]),
                          ("export", ["bad.npz", "again.npz"])):
        check_refused(command, argv, workdir, match="bad.npz")


def test_a_model_file_that_is_a_folder_is_one_line(workdir):
    (workdir / "bad.npz").mkdir()
    for command, argv in (("run", ["base.yaml", "train.init_from=bad.npz"]),
                          ("sample", ["bad.npz", "--length", "5"])):
        check_refused(command, argv, workdir)


@pytest.mark.parametrize("source,key", [("good.npz", "vocab"), ("export.npz", "__vocab__")])
@pytest.mark.parametrize("last", ["\ud800", "\udcff"])
def test_a_vocabulary_holding_a_lone_surrogate_is_one_line(workdir, source, key, last):
    with np.load(workdir / source, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    vocab = json.loads(str(arrays[key]))
    arrays[key] = np.array(json.dumps(vocab[:-1] + [last]))  # (still sorted)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (workdir / "bad.npz").write_bytes(buf.getvalue())
    for command, argv in (("run", ["base.yaml", "train.init_from=bad.npz"]),
                          ("sample", ["bad.npz", "--length", "300"]),
                          ("export", ["bad.npz", "again.npz"]),
                          ("eval", ["bad.npz"])):
        check_refused(command, argv, workdir, match="bad.npz")
