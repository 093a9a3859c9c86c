"""One exception root for everything Sluice raises on purpose.

Each stage has its own subclass. A message says what failed, names the identifiers
involved and the next thing to do. The CLI prints ``Error: <message>`` and exits with
the class's ``exit_code``; ``--debug`` re-raises with the traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SluiceError(Exception):
    """Base class of every error Sluice raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class TransientError(SluiceError):
    """A failure that may succeed when retried (lost connection, busy lock)."""


class ConfigError(SluiceError):
    """The project file or a command-line option is invalid."""

    exit_code = 2


class ProjectNotFoundError(ConfigError):
    """No ``sluice.yml`` in the given folder or any of its parents."""


class SourceError(SluiceError):
    """A source system cannot be read."""


class IngestError(SluiceError):
    """Extraction from a source failed."""


class LakeError(SluiceError):
    """The lake or its Iceberg catalog cannot be read or written."""


class TransformError(SluiceError):
    """A model is invalid or failed to build."""


class CheckFailedError(SluiceError):
    """A data check with severity ``error`` returned bad rows."""


class JobError(SluiceError):
    """A job or job run cannot be started, found or changed."""


class NotFoundError(SluiceError):
    """A named thing (job, run, table, database) does not exist."""

    exit_code = 3


class QueryError(SluiceError):
    """A query is invalid, refused or failed."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or ``""``.

    >>> did_you_mean("fact_order", ["fact_orders", "dim_date"])
    " Did you mean 'fact_orders'?"
    """
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
