"""The errors kvmem reports to people, importable without torch.

``ConfigError`` is what the command line turns into a one-line message and exit code 2: a
bad configuration value, an unusable output folder, an unreadable result file, a run that
would not fit in this machine's memory.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ResultFileError"]


class ConfigError(ValueError):
    """A bad configuration value; the message is one line for the command line."""


class ResultFileError(ConfigError):
    """A ``result.json`` (or a sweep folder) that is missing, unreadable or incomplete."""
