"""One exception root for everything Sluice raises on purpose.

Each stage has its own subclass. A message says what failed, names the identifiers
involved and the next thing to do. The CLI prints ``Error: <message>`` and exits with
the class's ``exit_code``; ``--debug`` re-raises with the traceback. ``code`` is a stable,
machine-readable name for the kind of error (the HTTP API returns it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class SluiceError(Exception):
    """Base class of every error Sluice raises on purpose."""

    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class TransientError(SluiceError):
    """A failure that may succeed when retried (lost connection, busy lock)."""

    code = "unavailable"


class ConfigError(SluiceError):
    """The project file or a command-line option is invalid."""

    code = "invalid_argument"
    exit_code = 2


class ProjectNotFoundError(ConfigError):
    """No ``sluice.yml`` in the given folder or any of its parents."""


class SourceError(SluiceError):
    """A source system cannot be read."""

    code = "source_error"


class DumpError(SourceError):
    """A dump file is malformed or holds something Sluice cannot load; names the line."""


class TargetExistsError(SourceError):
    """A load would overwrite tables that already exist (without ``--replace``)."""


class SourceUnavailableError(TransientError, SourceError):
    """A database server cannot be reached or refused the connection."""


class IngestError(SluiceError):
    """Extraction from a source failed."""

    code = "ingest_error"


class DriftError(IngestError):
    """A source table's schema changed in a way its drift policy does not allow: quarantined.

    ``report`` holds every table's changes, for the run record.
    """

    code = "schema_drift"

    def __init__(
        self, message: str, *, hint: str | None = None, report: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.report = report or {}


class LakeError(SluiceError):
    """The lake or its Iceberg catalog cannot be read or written."""

    code = "lake_error"


class LakeUnavailableError(TransientError, LakeError):
    """The catalog database or the object store cannot be reached."""


class TransformError(SluiceError):
    """A model is invalid or failed to build."""

    code = "transform_error"


class CheckFailedError(SluiceError):
    """A data check with severity ``error`` returned bad rows."""

    code = "check_failed"


class JobError(SluiceError):
    """A job or job run cannot be started, found or changed."""

    code = "job_error"


class LockedError(SluiceError):
    """Another live process holds a lock this one needs (names that process)."""

    code = "locked"


class NotFoundError(SluiceError):
    """A named thing (job, run, table, database) does not exist."""

    code = "not_found"
    exit_code = 3


class InfraError(SluiceError):
    """A plan cannot be computed or applied (project resources, state, lock)."""

    code = "infra_error"


class StalePlanError(InfraError):
    """A saved plan was computed against a state that has changed since."""

    code = "stale_plan"


class ApplyLockedError(InfraError):
    """Another apply holds the project's apply lock."""

    code = "locked"


class QueryError(SluiceError):
    """A query is invalid, refused or failed."""

    code = "query_failed"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or ``""``.

    >>> did_you_mean("fact_order", ["fact_orders", "dim_date"])
    " Did you mean 'fact_orders'?"
    """
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
