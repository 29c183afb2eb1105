"""Errors that carry an exit status for the command line."""


class UserError(Exception):
    """Input the user can fix (a bad flag, file or value): the CLI prints it and exits with 2."""

    exit_code = 2
