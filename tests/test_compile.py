"""The compile step: said while it happens, and done ahead by fastrnn compile."""
import os
import shutil
import sys

import numba
import numpy as np

from conftest import SMALL_TEXT
from fastrnn import Trainer, compile as fastrnn_compile
from fastrnn.kernels.jit import jit
from fastrnn.kernels.team import Call


@jit
def _double(x, team):
    x *= 2


def test_a_compile_is_said_while_it_happens_and_not_again(monkeypatch):
    monkeypatch.setattr(fastrnn_compile, "QUIET", 0.0)
    lines = []
    call = Call(_double, (np.ones(3, np.int16),))  # (a type no other test compiles)
    assert call.signature() not in call.fn.overloads
    fastrnn_compile.compile_call(call, "a test", lines.append)
    assert call.signature() in call.fn.overloads
    assert lines[0].startswith("compiling kernels for a test (first run on this machine")
    assert lines[1].startswith("compiled kernels for a test in ")
    assert fastrnn_compile.compile_call(call, "a test", lines.append) == 0.0
    assert len(lines) == 2


def test_fastrnn_compile_readies_a_configs_kernels(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 3, encoding="utf-8")
    (tmp_path / "c.yaml").write_text("data:\n  path: text.txt\n  val_fraction: 0.2\n"
                                     "model:\n  hidden: 8\ntrain:\n  dtype: float64\n")
    assert fastrnn_compile.main(["c.yaml", "train.seq_length=6"]) == 0
    assert "c.yaml: kernels ready" in capsys.readouterr().out
    t = Trainer.from_yaml("c.yaml", ["train.seq_length=6"])
    t.threads = 1
    for part, call in fastrnn_compile.calls(t):
        assert call.signature() in call.fn.overloads, part


def test_fastrnn_compile_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert fastrnn_compile.main(["missing.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "fastrnn: error: config file not found: missing.yaml"
    (tmp_path / "c.yaml").write_text("model:\n  hidden: 8\n")
    assert fastrnn_compile.main(["c.yaml", "model.hiden=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'model.hidden'" in err[0]


def test_the_cache_is_stale_when_any_kernel_source_changes(tmp_path):
    """Numba checks only the file that defines a function, but a kernel's cached code
    holds the code of the kernels it calls: every kernel's stamp is a hash of all."""
    from fastrnn.kernels import jit as J
    kernels = [v for name, m in list(sys.modules.items()) if name.startswith("fastrnn.kernels.")
               for v in vars(m).values()
               if isinstance(v, numba.core.registry.CPUDispatcher)]
    assert len(kernels) > 50
    for k in kernels:
        locator = k._cache._impl.locator
        assert type(locator).__name__.startswith("Kernels"), k
        assert locator.get_source_stamp() == J.sources_stamp()
    folder = tmp_path / "kernels"
    shutil.copytree(os.path.dirname(J.__file__), folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert J.sources_stamp(folder) == J.sources_stamp()
    step = folder / "step.py"
    step.write_text(step.read_text() + "\n# a change to one kernel\n")
    assert J.sources_stamp(folder) != J.sources_stamp()
    # a function elsewhere keeps Numba's own locator
    assert not type(_mine._cache._impl.locator).__name__.startswith("Kernels")


@numba.njit(cache=True)
def _mine(x):
    return x + 1
