"""Query executions, as in Athena: start returns an id at once; a worker pool runs them.

Each execution pins the published file set when it starts (one publication record, so
never one run's dimensions with another's facts), runs on its own cursor of the locked
DuckDB database of that file set (``sessions``) under a statement timeout, and streams
its rows (up to the row cap) into an Arrow IPC file under ``.sluice/queries/``. Pages
are read back from that file, memory-mapped, so a result is the same however late or
often it is paged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.config import QueryLimits
from sluice.core import TableName
from sluice.errors import ConfigError, QueryError, SluiceError
from sluice.query.engine import (
    CappedBatches,
    Parameters,
    QueryEngine,
    QueryResult,
    tables_read,
    validate_read_only,
)
from sluice.query.history import (
    JsonParameters,
    QueryExecution,
    QueryFailure,
    QueryHistory,
    QueryState,
)
from sluice.query.sessions import SharedDatabases

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

Q = QueryState


class QueryTimeoutError(QueryError):
    """A query ran past the statement timeout."""

    code = "query_timeout"


class QueryNotFinishedError(QueryError):
    """Results were asked for before the execution ended."""

    code = "query_not_finished"


class QueryCancelledError(QueryError):
    """Results were asked for an execution that was cancelled."""

    code = "query_cancelled"


class ResultsExpiredError(QueryError):
    """An old execution's result file was removed to bound disk use."""

    code = "results_expired"


class QueryFailedError(QueryError):
    """The recorded failure of an execution, raised again when its results are asked for."""

    def __init__(self, failure: QueryFailure) -> None:
        super().__init__(failure.message, hint=failure.hint)
        self.code = failure.code


@dataclass(frozen=True)
class ResultPage:
    """Some rows of a finished execution and the token of the next page (None: last)."""

    execution: QueryExecution
    table: pa.Table
    next_token: str | None


@dataclass
class _Task:
    """An execution the pool owns: its validated SQL and how to stop it."""

    query_id: str
    text: str
    database: str
    parameters: JsonParameters
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    con: duckdb.DuckDBPyConnection | None = None
    stop_reason: QueryState | None = None

    def interrupt(self, reason: QueryState) -> None:
        """Stop the query: CANCELLED by a user, FAILED by the timeout."""
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            if self.con is not None:
                self.con.interrupt()


class QueryExecutions:
    """Starts, tracks, cancels and pages query executions of one project."""

    def __init__(
        self,
        engine: QueryEngine,
        history: QueryHistory,
        results_dir: Path,
        limits: QueryLimits | None = None,
    ) -> None:
        self.engine = engine
        self.history = history
        self.results_dir = results_dir
        self.limits = limits or QueryLimits()
        _check_limits(self.limits)
        engine.visible_tables()  # sets up the publication store before workers share it
        self._databases = SharedDatabases(
            engine, threads=self.limits.threads, memory_limit=self.limits.memory_limit
        )
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="sluice-query")
        self._running: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._fail_orphans()

    def start(
        self, sql: str, *, database: str = "gold", parameters: JsonParameters = None
    ) -> QueryExecution:
        """Queue a query and return its execution at once (FAILED if the SQL is refused)."""
        query_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        try:
            text = validate_read_only(sql)
        except SluiceError as exc:
            error = _failure(exc)
            failed = QueryExecution(
                query_id, sql, database, parameters, Q.FAILED, now, ended_at=now, error=error
            )
            self.history.add(failed, server_pid=os.getpid())
            return failed
        execution = QueryExecution(query_id, sql, database, parameters, Q.QUEUED, now)
        task = _Task(query_id, text, database, parameters)
        with self._lock:
            self._running[query_id] = task
        self.history.add(execution, server_pid=os.getpid())
        self._pool.submit(self._run, task)
        return execution

    def get(self, query_id: str) -> QueryExecution:
        """The execution's current record."""
        return self.history.get(query_id)

    def wait(self, query_id: str, timeout: float) -> QueryExecution:
        """The execution once it ends, or after ``timeout`` seconds, whichever comes first."""
        with self._lock:
            running = self._running.get(query_id)
        if running is not None:
            running.done.wait(timeout)
        return self.history.get(query_id)

    def is_active(self, query_id: str) -> bool:
        """True while this pool has the execution queued or running."""
        with self._lock:
            return query_id in self._running

    def list(self, *, limit: int = 50, state: QueryState | None = None) -> list[QueryExecution]:
        """Recorded executions, newest first."""
        return self.history.recent(limit=limit, state=state)

    def cancel(self, query_id: str) -> QueryExecution:
        """Cancel a queued or running execution; a finished one is returned unchanged."""
        execution = self.history.get(query_id)
        if execution.state.is_final:
            return execution
        self.history.transition(query_id, Q.CANCELLED, expect=(Q.QUEUED, Q.RUNNING))
        with self._lock:
            running = self._running.get(query_id)
        if running is not None:
            running.interrupt(Q.CANCELLED)
        return self.history.get(query_id)

    def results(
        self, query_id: str, *, next_token: str | None = None, page_size: int | None = None
    ) -> ResultPage:
        """Rows of a SUCCEEDED execution from ``next_token`` on (all, or ``page_size``)."""
        import pyarrow as pa

        execution = self.history.get(query_id)
        _check_finished(execution)
        offset = _decode_token(next_token, execution) if next_token else 0
        if page_size is not None and page_size < 1:
            raise ConfigError(f"page_size must be at least 1, not {page_size}.")
        if execution.result_path is None or not Path(execution.result_path).is_file():
            raise ResultsExpiredError(
                f"The results of query {query_id} were removed (only the latest "
                f"{self.limits.keep_results} are kept).",
                hint="Start the query again.",
            )
        with pa.memory_map(execution.result_path) as source:
            table = pa.ipc.open_file(source).read_all()
        end = execution.rows if page_size is None else min(execution.rows, offset + page_size)
        token = _encode_token(end, execution) if end < execution.rows else None
        return ResultPage(execution, table.slice(offset, end - offset), token)

    def read(
        self, statements: Sequence[tuple[str, Parameters]], *, database: str = "gold"
    ) -> tuple[QueryResult, ...]:
        """Run read-only statements here and now, all on the same publication.

        They share the pool's database, statement timeout (for all of them together) and
        row cap, but are not recorded in the history: a dashboard runs several per click.
        """
        import duckdb
        import pyarrow as pa

        checked = [(validate_read_only(sql), parameters) for sql, parameters in statements]
        timed_out = threading.Event()
        with self._databases.cursor(database=database, tables=self.engine.visible_tables()) as con:

            def stop() -> None:
                timed_out.set()
                con.interrupt()

            timer = threading.Timer(self.limits.timeout_seconds, stop)
            timer.start()
            try:
                results = []
                for text, parameters in checked:
                    reader = self.engine.execute(con, text, parameters)
                    capped = CappedBatches(reader, self.limits.max_rows)
                    table = pa.Table.from_batches(list(capped), schema=reader.schema)
                    results.append(QueryResult(table, capped.truncated))
                return tuple(results)
            except duckdb.Error as exc:
                if timed_out.is_set():
                    raise _timeout_error(self.limits) from exc
                raise self.engine.error(exc, database) from exc
            finally:
                timer.cancel()

    def close(self) -> None:
        """Cancel what is queued or running and stop the pool."""
        with self._lock:
            owned = list(self._running)
        for query_id in owned:
            self.cancel(query_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._databases.close()

    def _run(self, task: _Task) -> None:
        try:
            if self.history.transition(task.query_id, Q.RUNNING, expect=(Q.QUEUED,)):
                self._execute(task)
        finally:
            with self._lock:
                self._running.pop(task.query_id, None)
            task.done.set()

    def _execute(self, task: _Task) -> None:
        import duckdb

        query_id, text, database = task.query_id, task.text, task.database

        limits = self.limits
        target = self.results_dir / f"{query_id}.arrow"
        partial = target.with_suffix(".arrow.partial")
        timer = threading.Timer(limits.timeout_seconds, task.interrupt, (Q.FAILED,))
        try:
            tables = self.engine.visible_tables()
            input_bytes = _input_bytes(tables, tables_read(text, database=database))
            with (
                self._databases.cursor(database=database, tables=tables) as con,
                _attached(task, con),
            ):
                timer.start()
                reader = self.engine.execute(con, text, task.parameters)
                capped = CappedBatches(reader, limits.max_rows)
                self.results_dir.mkdir(parents=True, exist_ok=True)
                _write_arrow(partial, reader.schema, capped, task)
            partial.replace(target)
            columns = [[f.name, str(f.type)] for f in reader.schema]
            finished = self.history.transition(
                query_id,
                Q.SUCCEEDED,
                expect=(Q.RUNNING,),
                rows=capped.rows,
                truncated=int(capped.truncated),
                input_bytes=input_bytes,
                columns=columns,
                result_path=str(target),
            )
            if not finished:
                target.unlink(missing_ok=True)
            self._expire_results()
        except Exception as exc:
            partial.unlink(missing_ok=True)
            if task.stop_reason == Q.CANCELLED:
                return
            if task.stop_reason == Q.FAILED:
                error: SluiceError = _timeout_error(limits)
            elif isinstance(exc, SluiceError):
                error = exc
            elif isinstance(exc, duckdb.Error):
                error = self.engine.error(exc, database)
            else:
                log.exception("query %s failed unexpectedly", query_id)
                error = QueryError(f"The query failed unexpectedly: {type(exc).__name__}.")
            self.history.transition(query_id, Q.FAILED, expect=(Q.RUNNING,), error=_failure(error))
        finally:
            timer.cancel()

    def _expire_results(self) -> None:
        for path in self.history.expire_results(
            self.limits.keep_results, keep_days=self.limits.keep_history_days
        ):
            Path(path).unlink(missing_ok=True)

    def _fail_orphans(self) -> None:
        """Executions left QUEUED or RUNNING by a server that is gone end as FAILED."""
        import psutil

        for query_id, pid in self.history.unfinished():
            if pid is None or not psutil.pid_exists(pid) or pid == os.getpid():
                self.history.transition(
                    query_id,
                    Q.FAILED,
                    expect=(Q.QUEUED, Q.RUNNING),
                    error=QueryFailure("server_stopped", "The server stopped before it finished."),
                )


def _check_limits(limits: QueryLimits) -> None:
    import duckdb

    from sluice import duck

    try:
        duck.connect(memory_limit=limits.memory_limit).close()
    except duckdb.Error as exc:
        raise ConfigError(
            f"Invalid memory limit '{limits.memory_limit}'.",
            hint="Use a size such as 512MB or 2GB (serve.queries.memory_limit in sluice.yml).",
        ) from exc


def _timeout_error(limits: QueryLimits) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"The query ran longer than the {limits.timeout_seconds:g} s timeout.",
        hint="Filter or aggregate more, or raise the timeout (sluice serve --timeout).",
    )


@contextmanager
def _attached(task: _Task, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let ``interrupt`` reach ``con`` while the block runs."""
    with task.lock:
        task.con = con
        stopped = task.stop_reason is not None
    try:
        if stopped:
            raise QueryError("The query was stopped before it started.")
        yield
    finally:
        with task.lock:
            task.con = None


def _write_arrow(path: Path, schema: pa.Schema, batches: CappedBatches, task: _Task) -> None:
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            if task.stop_reason is not None:
                raise QueryError("The query was stopped.")
            writer.write_batch(batch)


def _input_bytes(tables: dict[TableName, tuple[str, ...]], named: set[TableName]) -> int:
    total = 0
    for table in named:
        for file in tables.get(table, ()):
            path = Path(file.removeprefix("file://"))
            if path.is_file():
                total += path.stat().st_size
    return total


def _failure(error: SluiceError) -> QueryFailure:
    return QueryFailure(error.code, error.message, error.hint)


def _check_finished(execution: QueryExecution) -> None:
    if execution.state == Q.SUCCEEDED:
        return
    if execution.state == Q.CANCELLED:
        raise QueryCancelledError(f"Query {execution.query_id} was cancelled; it has no results.")
    if execution.state == Q.FAILED and execution.error is not None:
        raise QueryFailedError(execution.error)
    raise QueryNotFinishedError(
        f"Query {execution.query_id} is {execution.state.value}; its results are not ready.",
        hint=f"Poll GET /v1/queries/{execution.query_id} until it is SUCCEEDED.",
    )


def _encode_token(offset: int, execution: QueryExecution) -> str:
    raw = f"{execution.query_id}:{offset}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, execution: QueryExecution) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        query_id, _, offset = raw.rpartition(":")
        value = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = -1
        query_id = ""
    if query_id != execution.query_id or not 0 <= value <= execution.rows:
        raise ConfigError(
            f"next_token {token!r} is not a token of query {execution.query_id}.",
            hint="Pass the next_token of the previous page unchanged, or none for the first.",
        )
    return value
