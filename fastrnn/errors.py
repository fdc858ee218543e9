"""The error a user can fix. The command line prints it as one line and exits 2."""


class UserError(ValueError):
    """Bad input: the message says what is wrong, where (the key, the file) and what to do."""
