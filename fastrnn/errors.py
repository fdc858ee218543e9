"""The error a user can fix. The command line prints it as one line and exits 2."""


class UserError(ValueError):
    """Bad input: the message says what is wrong, where (the key, the file) and what to do."""


def fail(e, err=None):
    """Print a UserError, or the OSError of a path the OS refuses, as the command line's
    one line (a newline or another control character in it, say from a file name, is
    shown escaped); the exit code, 2."""
    import sys
    if isinstance(e, OSError):
        e = path_error(e)
    print(f"fastrnn: error: {printable(str(e))}", file=err or sys.stderr)
    return 2


def printable(text):
    """text with what a terminal would not show as itself (newlines and other control
    characters, lone surrogates) escaped as Python writes them: \\n, \\x1b, \\ud800."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def path_error(e, key=""):
    """The UserError for an OSError of a path operation (a name too long, not a
    folder, no permission) or the RuntimeError of ~user with no such user: the key
    that gave the path, the path (shortened) and the reason."""
    if isinstance(e, RuntimeError):  # Path.expanduser
        why, name = "its ~user is no user of this machine", ""
    else:
        why, name = e.strerror or str(e), "" if e.filename is None else str(e.filename)
    if len(name) > 80:
        name = name[:40] + "..." + name[-20:]
    where = ": ".join(x for x in (key, name) if x)
    return UserError(f"{where or 'a path'}: {why}; give another path")
