"""Liveness, readiness and metrics: open endpoints for orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import EngineDep
from app.api.docs import error_responses
from app.db import describe_unavailable, read_only, sqlite_write_problem
from app.errors import Unavailable

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness: the process is up", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and takes writes",
    response_model=Health,
    responses=error_responses(503),
)
def readyz(engine: EngineDep) -> Health:
    """Ready when the database answers and, on SQLite, can take writes (a read-only or full disk answers
    reads but would refuse every ingest)."""
    try:
        with read_only(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = sqlite_write_problem(engine) or describe_unavailable(exc)
        raise Unavailable(f"not ready: {reason} ({type(exc).__name__})") from exc
    problem = sqlite_write_problem(engine)
    if problem:
        raise Unavailable(f"not ready: {problem}")
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
