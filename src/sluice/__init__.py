"""Sluice: the data engineering lifecycle on one machine.

>>> import sluice
>>> sorted(sluice.__all__)[:3]
['CheckFailedError', 'ConfigError', 'JobError']
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from sluice.errors import (
    CheckFailedError,
    ConfigError,
    JobError,
    LakeError,
    NotFoundError,
    ProjectNotFoundError,
    QueryError,
    SluiceError,
    SourceError,
    TransformError,
)

if _TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from sluice.project import Project
    from sluice.query.engine import Parameters

__version__ = "0.1.0"

__all__ = [
    "CheckFailedError",
    "ConfigError",
    "JobError",
    "LakeError",
    "NotFoundError",
    "Project",
    "ProjectNotFoundError",
    "QueryError",
    "SluiceError",
    "SourceError",
    "TransformError",
    "__version__",
    "read_sql_query",
]


def read_sql_query(
    sql: str,
    database: str = "gold",
    *,
    project: str | Path | Project | None = None,
    parameters: Parameters = None,
) -> pd.DataFrame:
    """Run read-only SQL over a project's published tables and return a pandas DataFrame.

    The shape of awswrangler's ``athena.read_sql_query``: ``database`` is where
    unqualified table names are looked up; ``project`` is a folder (default: the current
    folder or a parent) or an open ``Project``; ``parameters`` are bound to ``?`` (a list)
    or ``$name`` (a mapping) placeholders, never pasted into the SQL.
    """
    from sluice.project import Project

    opened = project if isinstance(project, Project) else Project.open(project)
    result = opened.query(sql, database=database, parameters=parameters)
    frame: pd.DataFrame = result.table.to_pandas()
    return frame


def __getattr__(name: str) -> object:
    if name == "Project":
        from sluice.project import Project

        return Project
    raise AttributeError(f"module 'sluice' has no attribute {name!r}")
