"""The project's own errors: every failure a user can cause is an :class:`LstmopsError`.

Only these become one-line messages with exit status 2 at the edges (the CLI, DVC
stages, flows); any other exception is an internal bug and keeps its traceback (exit 1).
Subclasses say what went wrong; their message is one line that names the problem.
"""

from __future__ import annotations


class LstmopsError(Exception):
    """Root of every error the user can cause or fix; its message is one line."""


class ConfigError(LstmopsError, ValueError):
    """``params.yaml`` (or a setting given on the command line) is invalid; names the key."""


class InputError(LstmopsError, ValueError):
    """Bad raw input rows, files or arguments, worded as one line naming the problem and the row.

    ``InputError("message")`` or ``InputError(problem, message, row, ids)``: with a
    problem, the message starts ``problem row N (id X):`` (rows counted from 1).
    """

    def __init__(self, problem: str, message: str | None = None, row: int | None = None, ids=None):
        if message is None:
            super().__init__(problem)
            self.problem, self.row, self.detail = None, None, problem
            return
        where = problem if row is None else f"{problem} row {row + 1}"
        if row is not None and ids is not None and row < len(ids) and ids[row]:
            where += f" (id {ids[row]})"
        super().__init__(f"{where}: {message}")
        self.problem, self.row, self.detail = problem, row, message


class DataError(LstmopsError, ValueError):
    """A data table breaks its contract, or prepared data is missing or inconsistent."""


class BundleError(LstmopsError, ValueError):
    """A model bundle is missing, incomplete, tampered with or inconsistent."""


class RegistryError(LstmopsError, ValueError):
    """A registry request cannot be met."""


class NoModelError(RegistryError):
    """No version matches the request (none registered, no such alias or number)."""


class PromotionConflict(RegistryError):
    """The champion changed since the caller looked: nothing was changed."""


class ProposalError(RegistryError):
    """A proposal cannot be decided: unknown, already decided, expired, or no reason given."""


class StoreError(LstmopsError, ValueError):
    """A prediction/observation store request cannot be met."""


class DatabaseError(LstmopsError, RuntimeError):
    """The database cannot be opened, migrated or used."""


class StageError(LstmopsError, RuntimeError):
    """A pipeline stage cannot go on."""
