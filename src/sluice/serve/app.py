"""The HTTP API: query executions as in Athena, and the catalog, under ``/v1``.

Routes only translate HTTP to ``Project`` and ``QueryExecutions`` calls and back (bodies
in ``models``, error answers in ``errors``). ``/`` is the marketing dashboard: a static
page (``static/``) that reads ``/v1/dashboard``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool

from sluice import __version__
from sluice.config import QueryLimits
from sluice.errors import ConfigError
from sluice.project import Project
from sluice.query.executions import QueryExecutions
from sluice.query.history import QueryState
from sluice.serve import dashboard, errors, formats
from sluice.serve.errors import STATUS_BY_CODE
from sluice.serve.models import (
    IDENT,
    Column,
    Database,
    DatabaseList,
    ErrorBody,
    Execution,
    ExecutionList,
    ResultsBody,
    Snapshot,
    StartQuery,
    TableColumn,
    TableDetail,
    TableList,
    TableSummary,
)

JSON_PAGE_SIZE = 1_000
MAX_JSON_PAGE_SIZE = 10_000
MAX_WAIT_SECONDS = 20.0
POLL_SECONDS = 0.002
Ident = Annotated[str, Path(pattern=IDENT)]
NO_TELEMETRY = TelemetryConfig(
    auto_configure=False, tracing=False, metrics=False, logs=False, operation_spans=False
)


def create_app(project: Project, *, limits: QueryLimits | None = None) -> FastAPI:
    """The ASGI app serving ``project``; its query pool closes when the app shuts down."""
    executions = project.query_executions(limits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executions.close()

    app = FastAPI(
        title="Sluice",
        version=__version__,
        summary="Read-only SQL over a Sluice lake, as in Athena, and its catalog.",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
        responses={"default": {"model": ErrorBody, "description": "An error."}},
    )
    errors.install(app)
    app.include_router(_queries(executions))
    app.include_router(_catalog(project))
    app.include_router(_dashboard(executions))
    static = StaticFiles(packages=[("sluice.serve", "static")])
    app.mount("/static", static, name="static")

    @app.get("/", include_in_schema=False)
    def root() -> FileResponse:
        path, _ = static.lookup_path("index.html")
        return FileResponse(path, media_type="text/html")

    return app


def _queries(executions: QueryExecutions) -> APIRouter:
    router = APIRouter(prefix="/v1/queries", tags=["queries"])

    @router.post("", status_code=202, response_model=Execution)
    def start_query(body: StartQuery) -> Response:
        """Start a query execution; returns at once with its id (QUEUED)."""
        execution = executions.start(body.sql, database=body.database, parameters=body.parameters)
        if execution.error is not None:
            error = execution.error
            return errors.json_response(
                STATUS_BY_CODE.get(error.code, 400),
                ErrorBody(
                    code=error.code,
                    message=error.message,
                    hint=error.hint,
                    query_id=execution.query_id,
                ),
            )
        return errors.json_response(202, Execution.of(execution))

    @router.get("", response_model=ExecutionList)
    def list_queries(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        state: QueryState | None = None,
    ) -> ExecutionList:
        """Recorded executions, newest first."""
        return ExecutionList(
            queries=[Execution.of(e) for e in executions.list(limit=limit, state=state)]
        )

    @router.get("/{query_id}", response_model=Execution)
    async def get_query(
        query_id: str,
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the end.")
        ] = 0,
    ) -> Execution:
        """An execution's state, failure reason, rows, input bytes and times."""
        deadline = time.monotonic() + wait
        while executions.is_active(query_id) and time.monotonic() < deadline:
            await anyio.sleep(POLL_SECONDS)
        return Execution.of(await run_in_threadpool(executions.get, query_id))

    @router.get(
        "/{query_id}/results",
        response_model=ResultsBody,
        responses={
            200: {
                "content": {formats.MEDIA_TYPES[name]: {} for name in ("csv", "arrow", "parquet")},
                "description": "A page of rows; a next page's token is in X-Sluice-Next-Token "
                "(and in the JSON body).",
            }
        },
    )
    def get_results(
        query_id: str,
        page_size: Annotated[int | None, Query(ge=1)] = None,
        next_token: str | None = None,
        format: Annotated[
            str | None, Query(description="json, csv, arrow or parquet (else Accept).")
        ] = None,
        accept: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Rows of a SUCCEEDED execution, paged: JSON by default; CSV, Arrow IPC, Parquet."""
        name = formats.negotiate(format, accept)
        size = page_size
        if name == "json":
            size = page_size or JSON_PAGE_SIZE
            if size > MAX_JSON_PAGE_SIZE:
                raise ConfigError(
                    f"page_size {size:,} is over the JSON maximum of {MAX_JSON_PAGE_SIZE:,}.",
                    hint="Page with next_token, or ask for csv, arrow or parquet (no page limit).",
                )
        page = executions.results(query_id, next_token=next_token, page_size=size)
        headers = {"X-Sluice-Truncated": str(page.execution.truncated).lower()}
        if page.next_token:
            headers["X-Sluice-Next-Token"] = page.next_token
        if name == "json":
            body = ResultsBody.model_construct(
                query_id=query_id,
                columns=[Column(name=n, type=t) for n, t in page.execution.columns],
                rows=formats.json_rows(page.table),
                total_rows=page.execution.rows,
                truncated=page.execution.truncated,
                next_token=page.next_token,
            )
            return Response(
                formats.dump_json(body.model_dump(mode="json")),
                media_type=formats.MEDIA_TYPES["json"],
                headers=headers,
            )
        return StreamingResponse(
            formats.encode(page.table, name), media_type=formats.MEDIA_TYPES[name], headers=headers
        )

    @router.delete("/{query_id}", response_model=Execution)
    def cancel_query(query_id: str) -> Execution:
        """Cancel a queued or running execution (it ends CANCELLED)."""
        return Execution.of(executions.cancel(query_id))

    return router


def _selection(
    start: date | None = None,
    end: date | None = None,
    country: Annotated[str | None, Query(max_length=200)] = None,
    product_line: Annotated[str | None, Query(max_length=200)] = None,
    top: Annotated[int, Query(ge=1, le=dashboard.MAX_TOP)] = 10,
) -> dashboard.Selection:
    """The dashboard's filters from the query string (empty or missing: all)."""
    return dashboard.Selection(
        start=start, end=end, country=country or None, product_line=product_line or None, top=top
    )


Selected = Annotated[dashboard.Selection, Depends(_selection)]


def _dashboard(executions: QueryExecutions) -> APIRouter:
    router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

    @router.get("/options", response_model=dashboard.Options)
    def options() -> dashboard.Options:
        """Countries, product lines and the first and last order dates."""
        return dashboard.options(executions)

    @router.get("", response_model=dashboard.View)
    def view(selection: Selected) -> dashboard.View:
        """Top N products, sales by country, headline figures and order lines of a selection."""
        return dashboard.view(executions, selection)

    @router.get(
        "/order-lines.csv",
        response_class=StreamingResponse,
        responses={200: {"content": {formats.MEDIA_TYPES["csv"]: {}}}},
    )
    def order_lines(selection: Selected) -> StreamingResponse:
        """Every order line of a selection as CSV (up to the row cap: X-Sluice-Truncated)."""
        result = dashboard.order_lines(executions, selection)
        return StreamingResponse(
            formats.encode(result.table, "csv"),
            media_type=formats.MEDIA_TYPES["csv"],
            headers={
                "Content-Disposition": 'attachment; filename="order-lines.csv"',
                "X-Sluice-Truncated": str(result.truncated).lower(),
            },
        )

    return router


def _catalog(project: Project) -> APIRouter:
    router = APIRouter(prefix="/v1/databases", tags=["catalog"])

    @router.get("", response_model=DatabaseList)
    def list_databases() -> DatabaseList:
        """Databases and their table counts."""
        counts: dict[str, int] = {}
        for info in project.tables():
            counts[info.table.database] = counts.get(info.table.database, 0) + 1
        databases = [Database(name=n, tables=c) for n, c in sorted(counts.items())]
        return DatabaseList(databases=databases)

    @router.get("/{database}/tables", response_model=TableList)
    def list_tables(database: Ident) -> TableList:
        """Tables of a database with their rows, files and current snapshot."""
        return TableList(
            tables=[
                TableSummary(
                    database=i.table.database,
                    name=i.table.name,
                    rows=i.rows,
                    files=i.files,
                    snapshot_id=i.snapshot_id,
                )
                for i in project.tables(database)
            ]
        )

    @router.get("/{database}/tables/{table}", response_model=TableDetail)
    def describe_table(database: Ident, table: Ident) -> TableDetail:
        """A table's columns, types and snapshot history."""
        desc = project.describe(f"{database}.{table}")
        return TableDetail(
            database=database,
            name=table,
            rows=desc.info.rows,
            files=desc.info.files,
            snapshot_id=desc.info.snapshot_id,
            location=desc.info.location,
            columns=[
                TableColumn(name=c.name, type=c.type, required=c.required) for c in desc.columns
            ],
            snapshots=[
                Snapshot(
                    snapshot_id=s.snapshot_id,
                    committed_at=s.committed_at,
                    operation=s.operation,
                    rows=s.rows,
                    run_id=s.run_id,
                )
                for s in desc.snapshots
            ],
        )

    return router
