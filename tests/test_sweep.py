"""Sweeps: sweep files, local and Dask executors, results, resume, failures."""
import concurrent.futures as cf
import contextlib
import json
import os
import socket
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

import fastrnn
from conftest import SMALL_TEXT
from fastrnn import sweeps as S
from fastrnn.sweeps import main as sweep_main


@pytest.fixture
def sweepdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "data": {"path": str(tmp_path / "text.txt"), "val_fraction": 0.2},
        "model": {"hidden": 8},
        "train": {"seq_length": 8, "max_iters": 300, "log_every": 100, "eval_every": 100,
                  "sample_every": 0, "checkpoint_every": 100, "dtype": "float64"}}))
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    return tmp_path


def write_sweep(folder, **spec):
    spec.setdefault("base", "base.yaml")
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_and_random_trials(sweepdir):
    grid = S.load_sweep(write_sweep(sweepdir, grid={"optim.lr": [0.05, 0.1, 0.2],
                                                    "model.hidden": [4, 8]}))
    assert len(grid.trials) == 6
    assert grid.trials[0] == ("t0", {"optim.lr": 0.05, "model.hidden": 4})
    rnd = write_sweep(sweepdir, random={"optim.lr": {"loguniform": [1e-3, 1e-1]},
                                        "model.hidden": {"choice": [4, 8]},
                                        "train.seq_length": {"randint": [4, 9]}},
                      n_trials=16, seed=3)
    a, b = S.load_sweep(rnd), S.load_sweep(rnd)
    assert a.trials == b.trials and len(a.trials) == 16  # reruns see the same draws
    lrs = [v["optim.lr"] for _, v in a.trials]
    assert all(1e-3 <= lr <= 1e-1 for lr in lrs) and len(set(lrs)) == 16
    assert {v["model.hidden"] for _, v in a.trials} == {4, 8}
    assert all(4 <= v["train.seq_length"] <= 9 for _, v in a.trials)


@pytest.mark.parametrize("spec,match", [
    (dict(grid={"optim.lrr": [0.1]}), "did you mean 'optim.lr'"),
    (dict(grid={"optimizer.lr": [0.1]}), "unknown section"),
    (dict(grid={"optim.lr": []}), "non-empty list"),
    (dict(random={"optim.lr": {"gaussian": [0, 1]}}, n_trials=2), "one distribution"),
    (dict(random={"optim.lr": {"loguniform": [0, 1]}}, n_trials=2), "low > 0"),
    (dict(random={"optim.lr": {"uniform": [1, 0.5]}}, n_trials=2), "low < high"),
    (dict(random={"optim.lr": {"uniform": [0, 1]}}), "n_trials"),
    (dict(grid={"optim.lr": [0.1]}, metric="accuracy"), "metric"),
    (dict(), "exactly one of 'grid'"),
    (dict(random={"optim.lr": {"uniform": [0, 1]}}, n_trials=2, seed="abc"),
     "'seed' must be a whole number"),
    (dict(random={"optim.lr": {"uniform": [0, 1]}}, n_trials=2, seed=-1), "'seed' must be"),
    (dict(grid={"optim.lr": [0.1]}, n_trials="2"), "'n_trials' must be a whole number"),
    (dict(grid={"optim.lr": [0.1]}, base=["a", "b"]), "'base' must be a string"),
    (dict(grid={"optim.lr": [0.1]}, config=5), "'config' must be a mapping"),
    (dict(grid={"optim.lr": [0.1]}, config={"model": 5}), "section 'model' must be a mapping"),
    (dict(grid={"optim.lr": [0.1]}, out_dir=[1, 2]), "'out_dir' must be a string"),
    (dict(grid={"optim.lr": [0.1]}, metric=5), "'metric' must be a string"),
    (dict(grid=[0.1]), "'grid' must be a mapping"),
    (dict(grid={"optim.lr": [0.1]}, config={"model": {"hiden": 3}}),
     "did you mean 'model.hidden'"),
    (dict(grid={"optim.lr": [0.1]}, config={"optim": {"lr": -1}}), "optim.lr must be"),
    (dict(grid={"optim.lr": [0.1]}, base="missing.yaml"), "base config not found"),
    (dict(grid={"optim.lr": [0.1]}, threads=0), "'threads' (each trial's kernel threads)"),
    (dict(grid={"optim.lr": [0.1]}, threads=4096), "cores, this machine has"),
])
def test_bad_sweep_files_are_one_line_and_exit_2(sweepdir, capsys, spec, match):
    assert sweep_main([str(write_sweep(sweepdir, **spec))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def _numba_threads():
    import numba
    return os.environ["NUMBA_NUM_THREADS"], numba.config.NUMBA_NUM_THREADS


def test_threads_sets_each_trials_kernel_threads(sweepdir):
    """A sweep file's `threads: N` gives each trial N kernel threads (default 1), e.g.
    one trial at a time on the whole machine for a time-limited config."""
    for threads in (1, 2):
        with S.local_executor(1, threads) as pool:
            assert pool.submit(_numba_threads).result() == (str(threads), threads)
    assert S.load_sweep(write_sweep(sweepdir, grid={"optim.lr": [0.1]})).threads == 1


def test_a_sweep_runs_records_ranks_and_resumes(sweepdir, capsys):
    path = write_sweep(sweepdir, grid={"optim.lr": [0.05, 0.2, -1.0]}, out_dir="sw")
    code = sweep_main([str(path), "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 1  # the lr = -1 trial failed, and the exit code says so
    rows = [json.loads(line) for line in (sweepdir / "sw" / "results.jsonl").read_text()
            .splitlines()]
    by = {r["trial"]: r for r in rows}
    assert by["t0"]["status"] == by["t1"]["status"] == "ok"
    assert by["t2"]["status"] == "failed" and "optim.lr" in by["t2"]["error"]
    assert by["t0"]["iterations"] == 300 and by["t0"]["val_loss"] > 0
    assert "failed t2" in out and "2 of 3 trials ranked" in out
    csv_lines = (sweepdir / "sw" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("trial,status,metric") and len(csv_lines) == 4
    for t in ("t0", "t1"):  # every trial is an ordinary run folder
        assert (sweepdir / "sw" / t / "latest.npz").exists()
    # rerun: finished trials are skipped, the failed one is tried again; a row cut
    # short by a kill is passed over
    with open(sweepdir / "sw" / "results.jsonl", "a") as f:
        f.write('{"trial": "t1", "stat')
    assert sweep_main([str(path), "--workers", "2"]) == 1
    rows2 = (sweepdir / "sw" / "results.jsonl").read_text().splitlines()
    assert len(rows2) == 5 and json.loads(rows2[-1])["trial"] == "t2"


def test_an_interrupted_trial_resumes_from_its_checkpoint(sweepdir, capsys):
    path = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    sw = S.load_sweep(path)
    S.claim_folder(sw)
    # trial t0 ran 100 of its 300 iterations before the sweep was stopped
    cfg = S.trial_config(sw, "t0", {"optim.lr": 0.1})
    cfg["train"]["max_iters"] = 100
    assert S.run_trial("t0", cfg)["status"] == "ok"
    assert sweep_main([str(path), "--workers", "1"]) == 0
    log = (sweepdir / "sw" / "t0" / "log.txt").read_text()
    assert "resuming" in log and "at iteration 100" in log
    row = json.loads((sweepdir / "sw" / "results.jsonl").read_text().splitlines()[-1])
    assert row["iterations"] == 300


def test_a_folder_holding_another_sweep_is_refused(sweepdir, capsys):
    a = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    assert sweep_main([str(a), "--workers", "1"]) == 0
    before = (sweepdir / "sw" / "results.jsonl").read_text()
    b = write_sweep(sweepdir, grid={"optim.lr": [0.3]}, out_dir="sw")
    assert sweep_main([str(b)]) == 2
    assert "different sweep" in capsys.readouterr().err
    assert (sweepdir / "sw" / "results.jsonl").read_text() == before


def test_a_killed_worker_fails_its_trial_only(sweepdir):
    import sweep_helpers
    path = write_sweep(sweepdir, grid={"optim.lr": [0.05, 0.1, 0.2]}, out_dir="sw")
    sw = S.load_sweep(path)
    S.claim_folder(sw)
    results = S.run_sweep(sw, lambda: S.local_executor(2), trial_fn=sweep_helpers.dies_on_t1)
    status = {n: r["status"] for n, r in results.rows.items()}
    assert status == {"t0": "ok", "t1": "failed", "t2": "ok"}
    assert "worker died" in results.rows["t1"]["error"]


@pytest.fixture
def bounded_waits(monkeypatch):
    """The scheduler probe's connections, each wait checked to be at most 5 s (however
    long the far end stays silent) and recorded: [timeout of the connect, of each recv].
    A receive waits at most 1 s of its timeout: silence ends the probe the same way at
    any length, and the wait it asks for is the one checked."""
    waits = []

    class Bounded:
        def __init__(self, sock):
            self.sock = sock

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.sock.close()

        def settimeout(self, seconds):
            self.sock.settimeout(seconds)

        def recv(self, n):
            waits.append(self.sock.gettimeout())
            assert waits[-1] is not None and 0 < waits[-1] <= 5, waits
            self.sock.settimeout(min(waits[-1], 1.0))
            return self.sock.recv(n)

    def connect(address, timeout=None):
        waits.append(timeout)
        assert timeout is not None and 0 < timeout <= 5, waits
        return Bounded(socket.create_connection(address, timeout))

    monkeypatch.setattr(S.executors, "socket", SimpleNamespace(create_connection=connect))
    return waits


def test_unreachable_dask_address_fails_fast(sweepdir, capsys, bounded_waits):
    pytest.importorskip("distributed")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    code = sweep_main([str(path), "--executor", "dask", "--address", f"tcp://127.0.0.1:{port}"])
    assert code == 2 and bounded_waits == [5]  # refused: no wait past the connect
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_dask_local_cluster_runs_the_trials(sweepdir, capsys):
    distributed = pytest.importorskip("distributed")
    env = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, env=env) as cluster:
        path = write_sweep(sweepdir, grid={"optim.lr": [0.05, 0.1]}, out_dir="sw")
        code = sweep_main([str(path), "--executor", "dask", "--address",
                           cluster.scheduler_address])
    assert code == 0, capsys.readouterr()
    rows = [json.loads(line) for line in (sweepdir / "sw" / "results.jsonl").read_text()
            .splitlines()]
    assert sorted(r["trial"] for r in rows) == ["t0", "t1"]
    assert all(r["status"] == "ok" and r["iterations"] == 300 for r in rows)


def test_a_bad_base_config_or_duplicate_keys_fail_up_front(sweepdir, capsys):
    (sweepdir / "bad_base.yaml").write_text("model:\n  hidden: abc\n")
    path = write_sweep(sweepdir, base="bad_base.yaml", grid={"optim.lr": [0.1]}, out_dir="sw")
    assert sweep_main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.hidden must be a whole number" in err[0]
    assert not (sweepdir / "sw").exists()  # no trial ran
    path.write_text("base: base.yaml\ngrid:\n  optim.lr: [0.1]\nout_dir: a\nout_dir: b\n")
    assert sweep_main([str(path)]) == 2
    assert "key 'out_dir' is given twice (lines 4 and 5)" in capsys.readouterr().err


def test_a_killed_trial_keeps_its_log(sweepdir):
    """log.txt is written as the run goes, so a trial killed midway keeps what it said."""
    import signal
    import subprocess
    import time
    from pathlib import Path
    import fastrnn
    path = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    cfg = S.trial_config(S.load_sweep(path), "t0", {"optim.lr": 0.1})
    cfg["train"].update(max_iters=10**9, log_every=100, checkpoint_every=10**6)
    code = f"from fastrnn.sweeps import run_trial; run_trial('t0', {cfg!r})"
    env = dict(os.environ, PYTHONPATH=str(Path(fastrnn.__file__).parent.parent))
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    log = sweepdir / "sw" / "t0" / "log.txt"
    deadline = time.time() + 60
    while time.time() < deadline and "iter 200/" not in (log.read_text()
                                                       if log.exists() else ""):
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert "iter 100/1000000000" in log.read_text()


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture
def http_port():
    """A small web server on 127.0.0.1, which waits for a request before it speaks."""
    import http.server
    import threading
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def chatty_port():
    """A server on 127.0.0.1 that greets every connection with a line of text."""
    import socketserver
    import threading

    class Greet(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"220 hello, this is not dask\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Greet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("port,match", [("silent_port", "sent nothing in 5 s"),
                                        ("http_port", "sent nothing in 5 s"),
                                        ("chatty_port", "answered with b'220 hell'")])
def test_a_dask_address_that_is_not_a_scheduler_fails_within_10_s(sweepdir, capsys,
                                                                 request, port, match,
                                                                 bounded_waits):
    pytest.importorskip("distributed")
    port = request.getfixturevalue(port)
    path = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    code = sweep_main([str(path), "--executor", "dask", "--address", f"tcp://127.0.0.1:{port}"])
    assert code == 2 and bounded_waits[0] == 5 and len(bounded_waits) >= 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "not a Dask scheduler" in err[0]


def test_a_marker_write_cut_short_does_not_block_the_sweep(sweepdir):
    import subprocess
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (sweepdir / "sw").mkdir()
    (sweepdir / "sw" / f".sweep.yaml.{dead}.tmp").write_text("half")
    path = write_sweep(sweepdir, grid={"optim.lr": [0.1]}, out_dir="sw")
    S.claim_folder(S.load_sweep(path))
    assert [p.name for p in (sweepdir / "sw").iterdir()] == ["sweep.yaml"]


@contextlib.contextmanager
def one_thread():
    """An executor that runs the trials one after another in this process."""
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def test_successive_halving_promotes_the_best_and_resumes_exactly(sweepdir, capsys):
    lrs = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    path = write_sweep(sweepdir, grid={"optim.lr": lrs}, out_dir="sw",
                       halving={"min_iters": 30, "eta": 3})
    sw = S.load_sweep(path)
    assert S.rung_plan(sw.halving, 6) == [(30, 6), (90, 2), (300, 1)]
    S.claim_folder(sw)
    results = S.run_sweep(sw, one_thread)
    rungs = results.rungs
    assert sorted(k for _, k in rungs) == [0] * 6 + [1] * 2 + [2]
    first = sorted((rungs[n, 0]["metric"], n) for n, _ in sw.trials)
    second = sorted((rungs[n, 1]["metric"], n) for n, _ in sw.trials if (n, 1) in rungs)
    assert sorted(n for _, n in second) == sorted(n for _, n in first[:2])
    winner = second[0][1]
    assert list(k for k in rungs if k[1] == 2) == [(winner, 2)]
    assert [rungs[winner, k]["iterations"] for k in range(3)] == [30, 90, 300]
    # built on exact resume: the winner's weights are those of a straight run
    straight = S.trial_config(sw, winner, dict(sw.trials)[winner])
    straight["train"]["out_dir"] = str(sweepdir / "straight")
    assert S.run_trial(winner, straight)["status"] == "ok"
    a, b = fastrnn.load(sweepdir / "sw" / winner), fastrnn.load(sweepdir / "straight")
    assert a.iteration == b.iteration == 300 and np.array_equal(a.net.theta, b.net.theta)
    assert S.summary(results, sw, sys.stdout) == 0
    out = capsys.readouterr().out
    assert f"   1  {winner:<6}    2      300" in out
    csv_head = (sweepdir / "sw" / "results.csv").read_text().splitlines()[0]
    assert csv_head.endswith(",rung,budget,optim.lr")
    lines = (sweepdir / "sw" / "results.jsonl").read_text().splitlines()
    again = S.run_sweep(S.load_sweep(path), one_thread)  # a rerun: everything is done
    assert (sweepdir / "sw" / "results.jsonl").read_text().splitlines() == lines
    assert again.rungs.keys() == rungs.keys()


def test_halving_pins_the_cosine_horizon_and_counts_minutes(sweepdir):
    path = write_sweep(sweepdir, grid={"optim.lr": [0.01, 0.1]}, out_dir="sw",
                       config={"optim": {"schedule": "cosine"}},
                       halving={"min_iters": 100})
    sw = S.load_sweep(path)
    cfg = S.rung_config(sw, "t0", {"optim.lr": 0.01}, 100, 0)
    assert cfg["train"]["max_iters"] == 100 and cfg["optim"]["decay_iters"] == 300
    path = write_sweep(sweepdir, grid={"optim.lr": [0.01, 0.1, 1.0]}, out_dir="sw2",
                       config={"train": {"max_minutes": 9}},
                       halving={"min_minutes": 1, "eta": 3})
    sw = S.load_sweep(path)
    assert S.rung_plan(sw.halving, 3) == [(1, 3), (9, 1)]
    cfg = S.rung_config(sw, "t0", {"optim.lr": 0.01}, 9, 1)
    assert cfg["train"]["max_minutes"] == 8 and cfg["train"]["max_iters"] == 300


@pytest.mark.parametrize("spec,match", [
    (dict(halving={"min_iters": 30, "eta": 1}), "eta must be a number of at least 2"),
    (dict(halving={"min_iters": 30, "eta": "x"}), "eta must be a number"),
    (dict(halving={"eta": 3}), "needs one of min_iters"),
    (dict(halving={"min_iters": 30, "min_minutes": 1}), "needs one of min_iters"),
    (dict(halving={"min_iters": 30, "etta": 3}), "did you mean 'eta'"),
    (dict(halving={"min_iters": 300}), "must be below train.max_iters=300"),
    (dict(halving={"min_iters": 0}), "min_iters must be a whole number >= 1"),
    (dict(halving={"min_minutes": 1}), "needs train.max_minutes"),
    (dict(halving={"min_iters": 30}, metric="train_loss"), "cannot rank"),
    (dict(halving={"min_iters": 30}, grid={"optim.lr": [0.1], "data.val_fraction": [0.0]}),
     "no validation loss to rank it by"),
    (dict(halving={"min_iters": 30}, grid={"train.max_iters": [100, 200]}),
     "axis 'train.max_iters' cannot be swept with halving"),
    (dict(halving=[30, 3]), "'halving' must be a mapping"),
])
def test_bad_halving_is_one_line_and_exit_2(sweepdir, capsys, spec, match):
    spec.setdefault("grid", {"optim.lr": [0.1, 0.2]})
    assert sweep_main([str(write_sweep(sweepdir, **spec))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def optuna_sweep(sweepdir, n_trials=4, **more):
    return write_sweep(sweepdir, random={"optim.lr": {"loguniform": [0.01, 1.0]},
                                         "model.hidden": {"choice": [4, 8]}},
                       n_trials=n_trials, seed=1, search="optuna", out_dir="sw", **more)


def test_optuna_search_tells_its_study_and_a_rerun_goes_on(sweepdir, capsys):
    optuna = pytest.importorskip("optuna")
    sw = S.load_sweep(optuna_sweep(sweepdir))
    assert sw.trials == [] and sw.search["n_trials"] == 4
    S.claim_folder(sw)
    # a sweep stopped while trial 0 ran: its study holds it as running
    study = optuna.create_study(study_name="fastrnn", direction="minimize",
                                storage=f"sqlite:///{sweepdir / 'sw' / 'optuna.db'}")
    study.enqueue_trial({"optim.lr": 0.1, "model.hidden": 8})
    t = study.ask()
    t.suggest_float("optim.lr", 0.01, 1.0, log=True)
    t.suggest_categorical("model.hidden", [4, 8])
    results = S.run_sweep(sw, one_thread)
    rows = [json.loads(ln) for ln in (sweepdir / "sw" / "results.jsonl").read_text()
            .splitlines()]
    assert [r["trial"] for r in rows][0] == "t0" and len(rows) == 4
    assert rows[0]["params"] == {"optim.lr": 0.1, "model.hidden": 8}
    study = optuna.load_study(study_name="fastrnn",
                              storage=f"sqlite:///{sweepdir / 'sw' / 'optuna.db'}")
    told = {f"t{t.number}": t.value for t in study.trials}
    assert told == {r["trial"]: r["val_loss"] for r in rows}
    assert all(0.01 <= r["params"]["optim.lr"] <= 1.0 for r in rows)
    assert S.summary(results, sw, sys.stdout) == 0
    assert "4 of 4 trials ranked" in capsys.readouterr().out
    again = S.load_sweep(optuna_sweep(sweepdir))  # a rerun: all four are done
    S.claim_folder(again)
    S.run_sweep(again, one_thread)
    assert len((sweepdir / "sw" / "results.jsonl").read_text().splitlines()) == 4
    assert [n for n, _ in again.trials] == ["t0", "t1", "t2", "t3"]


@pytest.mark.parametrize("more,match", [
    (dict(search="tpe"), "search must be random"),
    (dict(search="optuna", grid={"optim.lr": [0.1]}), "draws from the distributions"),
    (dict(search="optuna", halving={"min_iters": 30}), "without halving"),
])
def test_bad_search_is_one_line_and_exit_2(sweepdir, capsys, more, match):
    spec = dict(random={"optim.lr": {"loguniform": [0.01, 1.0]}}, n_trials=2)
    if "grid" in more:
        spec = {}
    spec.update(more)
    assert sweep_main([str(write_sweep(sweepdir, **spec))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_optuna_search_without_optuna_says_what_to_install(sweepdir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert sweep_main([str(optuna_sweep(sweepdir))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastrnn: error: search: optuna needs Optuna: pip install "
                   "'fastrnn[optuna]'"]
