"""One error type for every problem a user can fix: bad input, missing data, corrupt files.

The CLI prints these in one line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CasebookError(Exception):
    """A problem the user can fix. ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class DataError(CasebookError):
    """Data that is missing, corrupt or malformed: says which file, line and column."""
