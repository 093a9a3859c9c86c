"""How the HTTP API answers errors: ``{"code", "message", "hint"}``, a status per code.

A ``SluiceError`` keeps its code; validation, routing and body-size failures get their
own; anything unexpected is logged and answers 500 without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sluice.errors import SluiceError
from sluice.serve import formats
from sluice.serve.models import MAX_SQL_CHARS, ErrorBody

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000

STATUS_BY_CODE = {
    "invalid_argument": 400,
    "invalid_request": 400,
    "syntax_error": 400,
    "query_failed": 400,
    "unsupported_format": 400,
    "query_refused": 403,
    "not_found": 404,
    "table_not_found": 404,
    "query_not_found": 404,
    "not_acceptable": 406,
    "query_not_finished": 409,
    "query_cancelled": 409,
    "results_expired": 410,
    "request_too_large": 413,
    "memory_limit_exceeded": 422,
    "server_stopped": 503,
    "unavailable": 503,
    "query_timeout": 504,
}


class RequestTooLargeError(SluiceError):
    """A request body is larger than the server accepts."""

    code = "request_too_large"


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with an ``ErrorBody``; refuse oversized bodies."""
    app.add_exception_handler(SluiceError, _sluice_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)


def json_response(status: int, body: BaseModel) -> Response:
    return Response(
        formats.dump_json(body.model_dump(mode="json")),
        status_code=status,
        media_type=formats.MEDIA_TYPES["json"],
    )


async def _sluice_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SluiceError)
    status = STATUS_BY_CODE.get(exc.code, 500)
    return json_response(status, ErrorBody(code=exc.code, message=exc.message, hint=exc.hint))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return json_response(
        400,
        ErrorBody(
            code="invalid_request",
            message="The request is invalid: " + "; ".join(problems) + ".",
            hint="See the API description at /docs or /openapi.json.",
        ),
    )


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response(
        exc.status_code,
        ErrorBody(code=code, message=str(exc.detail), hint="See the API at /docs."),
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return json_response(
        500,
        ErrorBody(
            code="internal_error",
            message=f"The server failed unexpectedly ({type(exc).__name__}).",
            hint="The server log has the details.",
        ),
    )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes, announced or streamed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await _send_error(send, 413, self._error())
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await _send_error(send, 413, self._error())
                return
            if not message.get("more_body", False):
                break
        replay: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replayed() -> Message:
            nonlocal replay
            if replay is not None:
                message, replay = replay, None
                return message
            return await receive()

        await self.app(scope, replayed, send)

    def _error(self) -> RequestTooLargeError:
        return RequestTooLargeError(
            f"The request body is larger than {self.limit:,} bytes.",
            hint=f"Send SQL of at most {MAX_SQL_CHARS:,} characters.",
        )


async def _send_error(send: Send, status: int, exc: SluiceError) -> None:
    error = ErrorBody(code=exc.code, message=exc.message, hint=exc.hint)
    body = formats.dump_json(error.model_dump())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
