"""Mistakes in what the user asked for (a path, a name, a value), told apart from bugs.

A :class:`UserError` names its remedy twice: ``cli`` for the command line (the flag,
``--overwrite``) and ``api`` for Python (the argument, ``overwrite=True``). ``str(e)``
is worded for Python; the ``synpref`` command prints :meth:`UserError.cli_message` as
one line and exits 2 (see ``synpref.cli``). Concrete errors also derive from the
built-in type callers already catch (``ValueError``, ``FileExistsError``, ...).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the request, not a bug: shown as one line, never as a traceback."""

    def __init__(self, message: str, *, cli: str | None = None, api: str | None = None):
        super().__init__(message)
        self.message, self.cli, self.api = message, cli, api

    def __str__(self) -> str:
        return self.message + (f"; {self.api}" if self.api else "")

    def cli_message(self) -> str:
        return self.message + (f"; {self.cli}" if self.cli else "")


class UserValueError(UserError, ValueError):
    """A value that cannot be used (an empty input, a name that does not exist)."""


class OutputExistsError(UserError, FileExistsError):
    """The output already exists and replacing it was not asked for."""

    def __init__(self, message: str, *, flag: str = "--overwrite", argument: str = "overwrite=True"):
        super().__init__(message, cli=f"pass {flag} to replace it", api=f"pass {argument} to replace it")


class InputNotFoundError(UserError, FileNotFoundError):
    """An input path that does not exist, or holds nothing synpref can read."""
