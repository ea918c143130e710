"""Turns every error into the documented ``ErrorBody`` JSON: message, code, and the fields at fault."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.errors import AppError

log = logging.getLogger("tocsin.errors")


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


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": field or (loc[0] if loc else ""), "message": message})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(_body(f"invalid request: {summary}", "invalid", errors), status_code=422)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Connection refused, server restarting, SQLite locked past its busy timeout, read-only or full disk.
    log.warning("database unavailable: %s", type(getattr(exc, "orig", exc)).__name__, exc_info=False)
    return JSONResponse(
        _body(
            "the database is unavailable; nothing from this request was stored. Retry shortly.", "unavailable"
        ),
        status_code=503,
        headers={"Retry-After": "2"},
    )


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await database_unavailable(request, exc)
    log.exception("unhandled error")
    rid = getattr(request.state, "request_id", "")
    return JSONResponse(
        _body(f"internal error; quote request id {rid} when reporting it", "internal"), status_code=500
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(Exception, unexpected)
