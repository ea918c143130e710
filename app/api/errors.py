"""Turns every error into the documented ``ErrorBody`` JSON: message, code, and the fields at fault."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import describe_unavailable, sqlite_write_problem
from app.errors import AppError

log = logging.getLogger("tocsin.errors")

# What FastAPI raises (as a 400) when decoding the body fails before validation can run.
_UNPARSABLE_BODY = "There was an error parsing the body"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


def _body(detail: str, code: str, errors: list[dict[str, str]] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


async def app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return JSONResponse(
        _body(exc.message, exc.code, errors), status_code=exc.status_code, headers=exc.headers
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) in the same shape as ours."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        # FastAPI's answer to a body it cannot decode (invalid UTF-8): the same 422 as invalid JSON.
        message = "the body is not valid JSON"
        return JSONResponse(
            _body(f"invalid request: body: {message}", "invalid", [{"field": "body", "message": message}]),
            status_code=422,
        )
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.url.path}; see /docs"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail) or HTTPStatus(exc.status_code).phrase
    code = _HTTP_CODES.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"))
    return JSONResponse(_body(detail, code), status_code=exc.status_code, headers=exc.headers)


def _field(err: Mapping[str, Any]) -> str:
    loc = [str(part) for part in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        return "body"  # the location is a character offset, not a field
    field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    return field or (loc[0] if loc else "")


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        errors.append({"field": _field(err), "message": message})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(_body(f"invalid request: {summary}", "invalid", errors), status_code=422)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Connection refused or dropped, server restarting, SQLite locked past its busy timeout, read-only or full.
    reason = describe_unavailable(exc)
    engine = getattr(request.app.state, "engine", None)
    if reason == "the database is unreachable" and engine is not None:
        reason = sqlite_write_problem(engine) or reason  # SQLite's own messages rarely say why
    log.warning("database unavailable: %s (%s)", reason, type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse(
        _body(f"{reason}; nothing from this request was stored. Retry shortly.", "unavailable"),
        status_code=503,
        headers={"Retry-After": "2"},
    )


async def data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses to store or compare (PostgreSQL: a NUL character, an out-of-range number).

    Request values the API layer let through; the database's message is not echoed, it may quote them.
    """
    log.info("database refused a request value: %s", type(getattr(exc, "orig", exc)).__name__)
    if "NUL" in str(getattr(exc, "orig", exc)):
        message = "text must not contain NUL (0x00) characters"
    else:
        message = "a value is out of range or malformed"
    return JSONResponse(_body(f"invalid request: {message}", "invalid"), status_code=422)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback; the caller gets the request id to quote, never the details."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await database_unavailable(request, exc)
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    rid = getattr(request.state, "request_id", "")
    return JSONResponse(
        _body(f"internal error; quote request id {rid} when reporting it", "internal"), status_code=500
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(DataError, data_error)
    # Unhandled exceptions are answered by RequestContextMiddleware (with the request id and the
    # X-Request-ID header); this is the last resort for one raised outside it.
    app.add_exception_handler(Exception, unexpected)
