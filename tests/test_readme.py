"""The README's commands work: every line of a ```sh or ```bash block and every ```python
block of README.md, and of the docs pages in PAGES, is run in order and must exit 0.

Each page runs in a temporary folder of its own holding a copy of the repository's
`configs/` and the files a reader is assumed to have (FILES: their own texts). The docs
pages share the README's `runs/`, so they sample from and export the model the README
trained. Commands run with the environment of the tests (`FASTRNN_DATA_DIR` included);
`python` and `fastrnn` are this interpreter and its fastrnn.

Rules:
- NOT_RUN: a command that installs (pip), fetches (git), runs the test suite or CI, or
  needs a Dask cluster is not run.
- OVERRIDES: a training command gets tiny overrides appended (the longest matching
  prefix wins; later keys win over the command's own), so that the README's runs take
  seconds and compile the kernels the other tests compile: float64, min-char-rnn's
  exact rnn, whose kernels serve its samples, beams and evaluation windows as they come
  (float32 would compile a batched path for those alone); the config's float32 kernels
  are compiled by `fastrnn compile` and the sweep's trials, as in other tests.
  SWEEPS: the copied sweep files train their trials as tiny runs.
- A comment `# needs X[, Y]` on a command (or on a Python block's first line) skips it
  unless X is importable; X is a module or an extra, `fastrnn[export]`.
- A comment `# exits N` expects exit code N instead of 0.
- KNOWN_FAILING: commands that fail today for a reason outside the docs, each with its
  reason and its error; failing with that error is an xfail, with any other a failure,
  and a pass shows as XPASS: then remove the entry.
"""
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/sampling.md", "docs/export.md"]  # pages whose commands are cheap

NOT_RUN = ("pip ", "git ", "python -m pytest", "bash .ci/run", "dask ", "NUMBA_NUM_THREADS=")
TINY = ["model.hidden=16", "train.max_iters=100", "train.eval_every=100",
        "train.log_every=100", "train.sample_every=100", "train.checkpoint_every=100",
        "train.dtype=float64"]
OVERRIDES = {
    "python -m fastrnn.run configs/shakespeare.yaml": TINY,
    "fastrnn train configs/shakespeare.yaml": TINY,
    # resume goes on from the first command's 100 iterations, with its model
    "python -m fastrnn.run configs/shakespeare.yaml train.resume=true":
        TINY[:1] + ["train.max_iters=200"] + TINY[2:],
}
SWEEPS = {"shakespeare_grid.yaml": {  # two tiny trials instead of six of 30,000 iterations
    "config": {"train": {"max_iters": 100, "eval_every": 100, "log_every": 100,
                         "checkpoint_every": 100, "sample_every": 0}},
    "grid": {"optim.lr": [0.1], "model.hidden": [16, 32]}}}
KNOWN_FAILING = {  # command prefix: (reason, what its error says)
}
EXTRAS = {"export": "safetensors", "plot": "matplotlib", "dask": "distributed",
          "optuna": "optuna"}
TIMEOUT = 600


def _files():
    """The reader's own texts: slices of tinyshakespeare (the sonnets without '&' and
    '$', so that they lack characters of the README's model)."""
    from fastrnn.data import read_corpus
    text = read_corpus("shakespeare")
    sonnets = text[300_000:306_000].replace("&", "and").replace("$", "")
    return {"mytext.txt": text[:20_000], "sonnets.txt": sonnets,
            "scene.txt": "ROMEO:\nIs the day so young?\n"}


def extract(page):
    """(line number, kind, text) of each command of a page: 'sh' for a shell line
    (continuations joined), 'python' for a whole block."""
    out, lines, i = [], (ROOT / page).read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        kind, start = fence.group(1), i + 1
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        body = lines[start:i]
        i += 1
        if kind == "python":
            out.append((start, "python", "\n".join(body) + "\n"))
        elif kind in ("sh", "bash"):
            j = 0
            while j < len(body):
                line, at = body[j], start + j + 1
                while line.endswith("\\") and j + 1 < len(body):
                    j += 1
                    line = line[:-1].rstrip() + " " + body[j].strip()
                j += 1
                if line.strip() and not line.lstrip().startswith("#"):
                    out.append((at, "sh", line.strip()))
    return out


def _comment(text):
    """The command without its trailing comment, and the comment."""
    m = re.search(r"\s+#\s(.*)$", text)
    return (text[:m.start()], m.group(1)) if m else (text, "")


def _needs(comment):
    m = re.search(r"needs ([\w\[\], .-]+)", comment)
    if not m:
        return []
    mods = []
    for item in m.group(1).split(","):
        item = item.strip().rstrip(".")
        extra = re.fullmatch(r"fastrnn\[(\w+)\]", item)
        mods.append(EXTRAS[extra.group(1)] if extra else item)
    return mods


def _longest(table, command):
    hits = [k for k in table if command == k or command.startswith(k + " ")]
    return table[max(hits, key=len)] if hits else None


CASES = [(page, at, kind, text) for page in PAGES for at, kind, text in extract(page)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A folder per page; the README's holds the runs the others share."""
    base = tmp_path_factory.mktemp("readme")
    made = {}
    for page in PAGES:
        d = base / Path(page).stem
        d.mkdir()
        shutil.copytree(ROOT / "configs", d / "configs")
        for name, spec in SWEEPS.items():
            f = d / "configs" / "sweeps" / name
            sweep = yaml.safe_load(f.read_text())
            sweep.update(spec)
            f.write_text(yaml.safe_dump(sweep))
        for name, text in _files().items():
            (d / name).write_text(text, encoding="utf-8")
        if page != PAGES[0]:
            (d / "runs").symlink_to(made[PAGES[0]] / "runs", target_is_directory=True)
        made[page] = d
    (made[PAGES[0]] / "runs").mkdir()
    return made


def _run(kind, text, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if kind == "python":
        (cwd / "snippet.py").write_text(text, encoding="utf-8")
        argv = [sys.executable, "snippet.py"]
    else:
        py = shlex.quote(sys.executable)
        argv = ["bash", "-c", f'python() {{ {py} "$@"; }}; fastrnn() {{ {py} -m fastrnn "$@"; }}; '
                + text]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("page, at, kind, text", CASES,
                         ids=[f"{p}:{a}" for p, a, _, _ in CASES])
def test_command(folders, page, at, kind, text):
    command, comment = _comment(text) if kind == "sh" else (text, text.split("\n")[0])
    if kind == "sh" and command.startswith(NOT_RUN):
        pytest.skip("installs, fetches, runs the tests or needs a cluster (NOT_RUN)")
    for mod in _needs(comment):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"needs {mod}")
    expected = int(re.search(r"exits (\d+)", comment).group(1)) if "exits" in comment else 0
    if kind == "sh":
        extra = _longest(OVERRIDES, command)
        command = command + "".join(" " + shlex.quote(o) for o in extra or [])
    done = _run(kind, command, folders[page])
    failing = _longest(KNOWN_FAILING, command) if kind == "sh" else None
    if failing and done.returncode != expected and failing[1] in done.stderr:
        pytest.xfail(failing[0])
    assert done.returncode == expected, (
        f"{page}:{at}: {command!r} exited {done.returncode}, expected {expected}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


def test_the_readme_has_its_commands():
    """The extraction finds the first hour's commands, so a change of fence or layout
    cannot leave this test running nothing."""
    sh = [text for _, kind, text in extract("README.md") if kind == "sh"]
    assert any(t.startswith("python -m fastrnn.run configs/shakespeare.yaml data.path=")
               for t in sh)
    assert any(t.startswith("fastrnn sample ") for t in sh)
    assert any(kind == "python" for _, kind, _ in extract("README.md"))


def test_the_files_the_docs_name_exist():
    """Every configs/*.yaml and scripts/*.py a page names is in the repository."""
    missing = []
    pages = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    for page in ["README.md", *pages]:
        for name in re.findall(r"\b((?:configs|scripts|benchmarks)/[\w/.-]+\.(?:yaml|py))",
                               (ROOT / page).read_text(encoding="utf-8")):
            if "*" not in name and not (ROOT / name).is_file():
                missing.append(f"{page}: {name}")
    assert not missing, missing


def test_the_config_reference_is_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py"),
                           "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
