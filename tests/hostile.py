"""The checks every hostile case makes: the exit code, exactly one line on stderr that
starts `fastrnn: error:`, no traceback, and (on failure) no change to any file."""
import contextlib
import hashlib
import io
import os
import stat
import traceback
from pathlib import Path

COMMANDS = {
    "run": lambda: __import__("fastrnn.run", fromlist=["main"]).main,
    "sample": lambda: __import__("fastrnn.cli", fromlist=["sample_main"]).sample_main,
    "export": lambda: __import__("fastrnn.export", fromlist=["main"]).main,
    "eval": lambda: __import__("fastrnn.evaluate", fromlist=["main"]).main,
    "sweep": lambda: __import__("fastrnn.sweeps.cli", fromlist=["main"]).main,
}


def invoke(command, argv, terminal=False):
    """(exit code, stdout, stderr) of a command run in this process; an exception that
    escapes it is a traceback on stderr and code 'traceback'. terminal: stdout and
    stderr encode as a UTF-8 terminal's do, stdout strictly (a character it cannot
    encode, such as a lone surrogate, is an error) and stderr with backslashes."""
    if terminal:
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_bytes, "utf-8", "strict")
        err = io.TextIOWrapper(err_bytes, "utf-8", "backslashreplace")
    else:
        out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = COMMANDS[command]()(list(argv))
        except SystemExit as e:
            code = e.code
        except BaseException:  # noqa: BLE001 -- what the case is there to catch
            traceback.print_exc(file=err)
            code = "traceback"
    if terminal:
        for stream in (out, err):
            try:
                stream.flush()
            except UnicodeEncodeError:
                pass
        return code, out_bytes.getvalue().decode(), err_bytes.getvalue().decode()
    return code, out.getvalue(), err.getvalue()


def snapshot(root):
    """Every entry under root, not following links: {relative path: (kind, content)}."""
    root = Path(root)
    seen = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                seen[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(),
                             st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                seen[rel] = ("dir",)
            else:
                seen[rel] = ("other", stat.S_IFMT(st.st_mode))
    return seen


def assert_one_line(code, err, want=2):
    """The command exited with `want`, and said why in one `fastrnn: error:` line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert code == want, (code, err)
    assert len(lines) == 1 and lines[0].startswith("fastrnn: error:"), err
    return lines[0]


def check_refused(command, argv, root, match=None, want=2):
    """Run a case that must be refused: one line, exit `want`, nothing under root
    changed. Returns the line."""
    before = snapshot(root)
    code, _, err = invoke(command, argv)
    line = assert_one_line(code, err, want)
    assert snapshot(root) == before, "files changed on a failed command"
    if match is not None:
        assert match in line, line
    return line


def make_workdir(tmp_path, monkeypatch, config, name="base.yaml", good=False,
                 evaluable=False):
    """tmp_path as the working folder, with text.txt (a small text), the config `name`
    and, with good, a sound checkpoint good.npz of a tiny model; with evaluable, val.npz,
    one whose config reads text.txt and holds out a validation split (for eval)."""
    from conftest import SMALL_TEXT, tiny_config
    from fastrnn import Config, Trainer, checkpoint
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4, encoding="utf-8")
    (tmp_path / name).write_text(config)
    if good:
        trainer = Trainer(Config.from_dict(tiny_config()), text=SMALL_TEXT)
        checkpoint.save(trainer, tmp_path / "good.npz")
    if evaluable:
        cfg = tiny_config(data={"path": "text.txt", "val_fraction": 0.2})
        trainer = Trainer(Config.from_dict(cfg), text=SMALL_TEXT * 4)
        checkpoint.save(trainer, tmp_path / "val.npz")
    return tmp_path
