"""File writes that are atomic and never follow a link.

A file that matters is written to a temporary beside it and renamed over it, so a
reader sees the old file or the new one, never half of one. The temporary is created
exclusively (O_CREAT | O_EXCL | O_NOFOLLOW) under a name no one can guess ahead,
.NAME.PID.RANDOM.tmp: a link planted in the folder is never written through, and the
pid tells remove_stale_temporaries whether the writer still runs.
"""
import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from .errors import UserError

# .NAME.PID.RANDOM.tmp; also .NAME.PID.tmp and .NAME.PID.tmp.png, the names of
# fastrnn before the random part, so a write of theirs cut short is cleared too. (A
# pid has at most 7 digits on Linux, so an old name never reads as a new one.)
_TEMPORARY = (re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp"),
              re.compile(r"\..+\.(\d+)\.tmp(?:\.png)?"))
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def create_temporary(path):
    """A new empty file beside path, .NAME.PID.RANDOM.tmp, created exclusively (never
    through a link or over a file): (a descriptor open for writing, its Path). The mode
    is what the umask leaves of 0o666, as for open(path, "w")."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:  # (a name taken, or a link planted on it: another)
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_file(path):
    """A binary file to write path's new contents to: on leaving the block it is
    flushed to disk and renamed over path (a link at path is replaced, not followed);
    if the block or the write fails, path is as it was and the temporary is gone."""
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path, blob):
    """Write bytes to path through a temporary file and a rename, so a reader never sees a
    half-written file."""
    with atomic_file(path) as f:
        f.write(blob)


def remove_stale_temporaries(folder):
    """Temporary files (.NAME.PID.RANDOM.tmp) left by a process that no longer runs,
    e.g. one killed in the middle of writing a checkpoint. Only regular files go: a
    link (or folder) of such a name is left alone, and nothing is followed."""
    for path in Path(folder).iterdir():
        m = _TEMPORARY[0].fullmatch(path.name) or _TEMPORARY[1].fullmatch(path.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            regular = stat.S_ISREG(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        if regular:
            path.unlink(missing_ok=True)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # it exists but belongs to someone else
        return True
    return True


def make_writable(folder, key):
    """Create folder if need be and check that files can be made in it; UserError
    naming the config key that gave it otherwise. The probe is a fresh temporary, so
    no fixed name (or a link planted there) is written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = create_temporary(folder / ".write-test")
        os.close(fd)
        probe.unlink()
    except OSError as e:
        raise UserError(f"{key} {folder} cannot be written ({e.strerror or e}); choose "
                        f"another folder") from None
