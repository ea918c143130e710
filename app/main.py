"""create_app(): lifespan (engine), routers, middleware and error handlers. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine

from app import __version__
from app.api import (
    audit,
    aws,
    channel_tools,
    channels,
    errors,
    findings,
    health,
    ingest,
    jira,
    middleware,
    notifications,
    routing,
    rules,
    silences,
    slack,
    stats,
    teams,
    tokens,
)
from app.api.schemas import FindingBatch
from app.db import create_db_engine
from app.delivery import maintenance, pull_aws
from app.delivery.dispatcher import EmbeddedDispatcher
from app.settings import Settings, load_settings
from integrations import registry

DESCRIPTION = """
Tocsin pulls security findings from AWS and external scanners into one place, deduplicates them,
scores them by real risk and routes each to the team that owns the resource.

Authenticate with `Authorization: Bearer <token>`. Scopes: `ingest`, `read`, `triage`, `admin`
(admin implies all). Every error answers `{"detail", "code", "errors"?}`.
"""


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or load_settings()
    registry.check_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        app.state.engine = engine or create_db_engine(settings)
        # Objects alive after start-up (modules, schemas, routes) never need collecting: keep them out
        # of every GC pass on the hot path.
        gc.freeze()
        # A 500-finding batch allocates a few hundred thousand short-lived objects, almost none of them
        # cyclic: collecting the youngest generation every 700 allocations cost ~40% of the Python time
        # of ingest (measured per stage). Collect less often; reference counting frees the rest.
        gc.set_threshold(50_000, 20, 100)
        upkeep = asyncio.create_task(
            maintenance.run_forever(app.state.engine, settings.maintenance_interval_seconds)
        )
        scheduled_pull = pull_aws.ScheduledPull.start(app.state.engine, settings)  # TOCSIN_AWS_PULL_INTERVAL
        dispatcher = EmbeddedDispatcher.start(app.state.engine, settings)  # TOCSIN_DISPATCHER_EMBEDDED
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            if scheduled_pull is not None:
                await scheduled_pull.stop()
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            if own_engine:
                app.state.engine.dispose()

    app = FastAPI(
        title="Tocsin",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    if engine is not None:
        app.state.engine = engine
    errors.install(app)
    middleware.install(app, settings)
    # aws before ingest: its fixed /v1/ingest/... paths must win over /v1/ingest/{format_name}.
    for module in (
        health,
        findings,
        stats,
        aws,
        ingest,
        tokens,
        audit,
        notifications,
        teams,
        channels,
        rules,
        silences,
        routing,
        jira,
        slack,
        channel_tools,
    ):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document plus the schemas of bodies that endpoints decode themselves."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    batch = FindingBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in batch.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["FindingBatch"] = batch
    app.openapi_schema = schema
    return schema
