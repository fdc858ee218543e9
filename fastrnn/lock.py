"""The lock on a run folder: one process at a time trains in it. An advisory flock on
the folder's .lock file (opened without following a link), which the kernel drops when
the process ends however it ends, so a killed run never leaves its folder stuck. The
file holds the pid of the process that has it, for the message of the one refused."""
import fcntl
import os
from pathlib import Path

from .errors import UserError

LOCK = ".lock"
_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# This process's own locks, by the folder's (st_dev, st_ino): [descriptor, holders]. A
# process may take its own lock again (a test, or a resume run in the same process).
_held = {}


class FolderLock:
    """A lock taken by lock(); release() gives it back (the last holder's release closes
    the file). created: whether taking it made the .lock file."""

    def __init__(self, ident, path, created):
        self.ident, self.path, self.created = ident, path, created

    def release(self, remove=False):
        """Give the lock back; remove: also delete the .lock file if taking the lock
        made it (a command that failed leaves the folder as it found it)."""
        entry = _held.get(self.ident)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        if remove and self.created:  # (still held: no one else can be using it)
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(entry[0])
        del _held[self.ident]
        self.ident = None


def lock(folder, key="train.out_dir"):
    """Lock an existing folder for this process; UserError naming the process that
    holds it, or why the lock file cannot be made."""
    folder = Path(folder)
    try:
        st = os.stat(folder)
    except OSError as e:
        raise UserError(f"{key} {folder} cannot be used ({e.strerror or e}); choose "
                        f"another folder") from None
    ident = (st.st_dev, st.st_ino)
    path = folder / LOCK
    if ident in _held:
        _held[ident][1] += 1
        return FolderLock(ident, path, False)
    for _ in range(10):
        created = not os.path.lexists(path)
        try:
            fd = os.open(path, _OPEN, 0o666)
        except OSError as e:
            raise UserError(f"{key} {folder}: cannot open its lock file {LOCK} "
                            f"({e.strerror or e}); remove {path} if it is a link or a "
                            f"folder, or choose another folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{key} {folder} is in use by another fastrnn process{holder}; "
                            f"wait for it to end (or stop it), or choose another "
                            f"{key}") from None
        # the file may have been removed (by a failed command) between open and flock
        try:
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise UserError(f"{key} {folder}: its lock file keeps changing; try again")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the lock holds without the pid (a full disk says so at the first write)
    _held[ident] = [fd, 1]
    return FolderLock(ident, path, created)


def _holder(fd):
    """' (pid N)' from the lock file, or '' if it holds none."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
