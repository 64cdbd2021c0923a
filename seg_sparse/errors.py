"""The one base class of errors caused by what the user gave us (files, config values, options).

Every such error says in one line what is wrong and names the file, key or value. The
``seg-sparse`` CLI prints them as ``seg-sparse <command>: error: <message>`` with exit code 2
(``SEG_SPARSE_DEBUG=1`` shows the traceback); library callers can catch :class:`UserInputError`
to tell bad input from bugs. Concrete errors also derive from the builtin they refine
(``ValueError``, ``KeyError`` ...), so code written against the builtin keeps working.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input, reported in one line that names the offending file, key or value."""


def one_line(text: object) -> str:
    """``text`` with its lines joined, for messages that quote another library's error."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class ConfigValueError(UserInputError, ValueError):
    """A config key holds a value of the wrong type or range."""


class RunFailure(Exception):
    """A run that failed for a reason outside the code and the input (a hung or dead process
    of a distributed run), reported in one line; the CLI exits with code 1."""
