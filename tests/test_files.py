"""Atomic writes: never through a planted link, all or nothing, and the temporaries of a
killed writer cleared (those of a live one kept)."""
import os
import subprocess
import sys

import pytest

from fastrnn import files
from fastrnn.errors import UserError


@pytest.fixture
def dead_pid():
    """The pid of a process that has ended."""
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    return int(p.stdout)


@pytest.fixture
def outside(tmp_path):
    """A file outside the folder written to, which a link in that folder points at."""
    target = tmp_path / "outside.txt"
    target.write_bytes(b"not yours")
    (tmp_path / "run").mkdir()
    return target


def test_a_link_planted_on_the_temporary_name_is_not_followed(outside, monkeypatch):
    run = outside.parent / "run"
    names = iter(["0badcafe", "12345678"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    planted = [run / f".config.yaml.{os.getpid()}.0badcafe.tmp",  # the next name drawn
               run / f".config.yaml.{os.getpid()}.tmp"]  # fastrnn's earlier fixed name
    for link in planted:
        link.symlink_to(outside)
    files.write_atomic(run / "config.yaml", b"mine")
    assert outside.read_bytes() == b"not yours"
    assert (run / "config.yaml").read_bytes() == b"mine"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["config.yaml"] + [p.name for p in planted])
    assert all(p.is_symlink() for p in planted)


def test_a_link_at_the_destination_is_replaced_not_followed(outside):
    link = outside.parent / "run" / "latest.npz"
    link.symlink_to(outside)
    files.write_atomic(link, b"checkpoint")
    assert not link.is_symlink() and link.read_bytes() == b"checkpoint"
    assert outside.read_bytes() == b"not yours"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    files.write_atomic(path, b"old")
    with pytest.raises(TypeError):
        files.write_atomic(path, "text, not bytes")
    with pytest.raises(RuntimeError):
        with files.atomic_file(path) as f:
            f.write(b"half")
            raise RuntimeError("killed midway")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError):
        files.write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_stale_temporaries_of_a_dead_pid_go_and_live_ones_stay(tmp_path, outside, dead_pid):
    run = outside.parent / "run"
    stale = [f".latest.npz.{dead_pid}.0a1b2c3d.tmp", f".best.npz.{dead_pid}.99999999.tmp",
             f".metrics.csv.{dead_pid}.tmp", f".loss.png.{dead_pid}.tmp.png"]
    live = [f".latest.npz.{os.getpid()}.0a1b2c3d.tmp", f".config.yaml.{os.getppid()}.tmp"]
    other = ["notes.tmp", f"latest.npz.{dead_pid}.tmp", "config.yaml"]
    for name in stale + live + other:
        (run / name).write_bytes(b"x")
    link = run / f".samples.txt.{dead_pid}.0a1b2c3d.tmp"  # a link: not ours to remove
    link.symlink_to(outside)
    fd, mine = files.create_temporary(run / "test.json")  # this writer is still writing
    os.close(fd)
    files.remove_stale_temporaries(run)
    assert sorted(p.name for p in run.iterdir()) == sorted(
        live + other + [link.name, mine.name])
    assert outside.read_bytes() == b"not yours"


def test_the_writability_probe_writes_no_fixed_name(outside):
    run = outside.parent / "run"
    (run / ".write-test").symlink_to(outside)
    files.make_writable(run, "train.out_dir")
    files.make_writable(run / "new", "train.out_dir")
    assert outside.read_bytes() == b"not yours"
    assert sorted(p.name for p in run.iterdir()) == [".write-test", "new"]
    assert not any((run / "new").iterdir())
    (run / "a-file").write_bytes(b"")
    with pytest.raises(UserError, match=r"^train.out_dir .*a-file cannot be written"):
        files.make_writable(run / "a-file", "train.out_dir")
