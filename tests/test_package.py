"""The package as a user installs it: a non-editable install carries the corpus, the
licence and the version."""
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fastrnn
from fastrnn import data

ROOT = Path(fastrnn.__file__).parent.parent


def test_version_is_printed_and_has_one_definition():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for flag in ("--version", "-V"):
        p = subprocess.run([sys.executable, "-m", "fastrnn", flag], capture_output=True,
                           text=True, env=env, timeout=120)
        assert (p.returncode, p.stdout) == (0, f"fastrnn {fastrnn.__version__}\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "fastrnn.__version__"}
    assert project["project"]["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_a_non_editable_install_carries_the_corpus(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("building fastrnn needs setuptools>=77")
    # build from a copy, so the worktree gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "fastrnn", src / "fastrnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "--quiet", "--target",
                          str(target), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / f"fastrnn-{fastrnn.__version__}.dist-info" / "licenses" /
            "LICENSE").is_file()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTRNN_DATA_DIR", "FASTRNN_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=str(target), HOME=str(home))
    script = ("import hashlib, fastrnn; from fastrnn import data; "
              "print(fastrnn.__file__); print(data.resolve('shakespeare')); "
              "print(hashlib.sha256(data.read_corpus('shakespeare').encode()).hexdigest())")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    module, corpus, digest = p.stdout.split()
    assert Path(module).is_relative_to(target)
    assert Path(corpus) == target / "fastrnn" / "corpora" / "tinyshakespeare.txt.gz"
    assert digest == data.KNOWN["shakespeare"].sha256
    assert not any(home.iterdir())
    assert hashlib.sha256(Path(corpus).read_bytes()).digest() == hashlib.sha256(
        (data.BUNDLED / "tinyshakespeare.txt.gz").read_bytes()).digest()
