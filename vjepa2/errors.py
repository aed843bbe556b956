"""Errors that mean "the input is wrong", which the command line reports as ``error: ...`` with exit code 2.

Library code raises these (or subclasses) for bad files, keys, shapes and config values; anything else that
escapes a command is a bug and keeps its traceback. :class:`TrainingDiverged` is the one runtime failure that is
not a bug but not the user's input either: the command reports it and exits 1; so does :class:`RunError`, its base.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input (a file, key, shape or value); the message names it."""


class ConfigError(UserError):
    """A config key or value that is unknown, of the wrong type or out of range."""


class RunFolderError(UserError):
    """A run folder that cannot be used: locked by a live run, or holding an incompatible run."""


class RunError(RuntimeError):
    """A run that failed for a reason that is neither a bug nor bad input (e.g. missing peers); exit code 1."""


class TrainingDiverged(RunError):
    """A non-finite loss or gradient; the last good checkpoint was kept."""


class DistributedStartError(RunError):
    """The process group did not start in time (a peer is missing or unreachable)."""
