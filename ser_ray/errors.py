"""Errors that carry an exit status for the command line, and how a failed read is said."""

from __future__ import annotations

import os
from pathlib import Path


class UserError(Exception):
    """Input the user can fix (a bad flag, file or value): the CLI prints it and exits with 2."""

    exit_code = 2


def unreadable_reason(path: Path, error: OSError, kind: str = "file") -> str:
    """Why a file (or directory: `kind`) could not be read, in words a person acts on."""
    if isinstance(error, FileNotFoundError) and path.is_symlink():
        cause = f"broken link (its target {os.readlink(path)} does not exist)"
    elif isinstance(error, PermissionError):
        cause = "permission denied"
    else:
        cause = (error.strerror or str(error)).lower()
    return f"cannot read the {kind}: {cause}"
