"""Sizes are checked before anything is allocated: an .npz member whose header declares
a huge shape, a beam or sample count beyond reason, a sweep of 10^12 trials, a model
beyond this machine's memory, a printed sample or eval's windows beyond reason; a prime,
config, sweep or checkpoint file that is a device, a FIFO or too big, and an --output
pipe that no process reads, are refused before they are read or written (no hang)."""
import io
import os
import zipfile

import numpy as np
import pytest

from hostile import check_refused, make_workdir

BASE = ("data:\n  path: text.txt\n  val_fraction: 0.2\nmodel:\n  hidden: 8\n"
        "train:\n  seq_length: 10\n  max_iters: 10\n  dtype: float64\n")


def _huge_member(src, dst, name, shape):
    """src's arrays, with member `name` replaced by a header declaring `shape` and a few
    bytes of data."""
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            blob = zin.read(info)
            if info.filename == name + ".npy":
                head = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    head, {"descr": "<f8", "fortran_order": False, "shape": shape})
                blob = head.getvalue() + b"\0" * 64
            zout.writestr(info.filename, blob)
    dst.write_bytes(out.getvalue())


HUGE_SHAPES = [(10**12,), (10**6, 10**6), (2**62,)]
# (the command, its arguments, a word the line must hold): good.npz is a checkpoint
SAMPLE_CASES = [
    (["good.npz", "--beam", "1000000000"], "beam"),
    (["good.npz", "--beam", "5000", "--length", "1000000"], "back-pointers"),
    (["good.npz", "--num-samples", "1000000000"], "num_samples"),
    (["good.npz", "--prime-file", "/dev/zero"], "not a regular file"),
    (["good.npz", "--prime-file", "fifo"], "not a regular file"),
    (["good.npz", "--prime-file", "big.txt"], "over"),
    (["good.npz", "--prime-file", "."], "prime file"),
]
RUN_CASES = [
    (["base.yaml", "train.sample_length=1000000000"], "train.sample_length"),
    (["base.yaml", "model.hidden=30000"], "memory"),
    (["base.yaml", "model.hidden=1e300"], "model.hidden"),
    (["base.yaml", "model.hidden=100000", "model.layers=4"], "memory"),
]
SWEEP_CASES = [
    ("base: base.yaml\ngrid:\n" + "".join(f"  {k}: {list(range(1, 1001))}\n" for k in (
        "model.hidden", "train.seq_length", "train.batch_size", "train.max_iters")),
     "trials"),
    ("base: base.yaml\nn_trials: 1000000000000\nrandom:\n  optim.lr: {uniform: [0.01, 0.1]}\n",
     "n_trials"),
    ("base: base.yaml\nn_trials: 100001\nrandom:\n  optim.lr: {uniform: [0.01, 0.1]}\n",
     "n_trials"),
]


# (the command, its arguments, a word the line must hold): fifo is a pipe no one writes
# or reads; val.npz, a checkpoint with a validation split
PIPES = [
    ("run", ["fifo"], "not a regular file"),
    ("run", ["/dev/zero"], "not a regular file"),
    ("run", ["big.yaml"], "bytes"),
    ("sweep", ["fifo"], "not a regular file"),
    ("sweep", ["/dev/zero"], "not a regular file"),
    ("sweep", ["pipe_base.yaml"], "not a regular file"),
    ("sweep", ["zero_base.yaml"], "not a regular file"),
    ("sample", ["fifo", "--length", "5"], "not a regular file"),
    ("export", ["fifo", "out.npz"], "not a regular file"),
    ("sample", ["good.npz", "--length", "5", "--output", "fifo"], "no process reads"),
    ("eval", ["val.npz", "--protocol", "nanogpt", "--block", "5", "--windows",
              "1000000000000"], "--windows"),
    ("eval", ["val.npz", "--protocol", "nanogpt", "--block", "5", "--windows",
              str(2**63)], "--windows"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_workdir(tmp_path, monkeypatch, BASE, good=True, evaluable=True)
    os.mkfifo(tmp_path / "fifo")
    for name, base in (("pipe_base.yaml", "fifo"), ("zero_base.yaml", "/dev/zero")):
        (tmp_path / name).write_text(f"base: {base}\ngrid:\n  optim.lr: [0.1]\n")
    (tmp_path / "big.txt").write_text("a" * (2 << 20))
    return tmp_path


@pytest.mark.parametrize("shape", HUGE_SHAPES)
@pytest.mark.parametrize("member", ["theta", "optimizer"])
def test_a_checkpoint_member_of_a_huge_declared_shape_is_one_line(workdir, shape, member):
    _huge_member(workdir / "good.npz", workdir / "huge.npz", member, shape)
    check_refused("sample", ["huge.npz", "--length", "5"], workdir, match="huge.npz")


@pytest.mark.parametrize("shape", HUGE_SHAPES)
def test_an_export_member_of_a_huge_declared_shape_is_one_line(workdir, shape):
    from fastrnn.export import export
    export(workdir / "good.npz", workdir / "export.npz")
    _huge_member(workdir / "export.npz", workdir / "huge.npz", "head.weight", shape)
    for command, argv in (("run", ["base.yaml", "train.init_from=huge.npz"]),
                          ("export", ["huge.npz", "again.npz"])):
        check_refused(command, argv, workdir, match="huge.npz")


@pytest.mark.parametrize("argv,match", SAMPLE_CASES)
def test_a_sampler_size_beyond_reason_is_one_line(workdir, argv, match):
    check_refused("sample", argv, workdir, match=match)


@pytest.mark.parametrize("argv,match", RUN_CASES)
def test_a_model_beyond_memory_is_one_line(workdir, argv, match):
    check_refused("run", argv, workdir, match=match)


@pytest.mark.parametrize("text,match", SWEEP_CASES)
def test_a_sweep_of_too_many_trials_is_one_line(workdir, text, match):
    (workdir / "sweep.yaml").write_text(text)
    check_refused("sweep", ["sweep.yaml", "--workers", "1"], workdir, match=match)


@pytest.mark.parametrize("command,argv,match", PIPES)
def test_a_pipe_a_device_or_a_huge_file_is_refused_unread(workdir, command, argv, match):
    if "big.yaml" in argv:  # a config of 17 MiB (a comment), over the 16 MiB a file may hold
        (workdir / "big.yaml").write_text(BASE + "#" * (17 << 20) + "\n")
    check_refused(command, argv, workdir, match=match)
