"""The migrations are the only source of the schema: they must match the models on both databases."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from app import migrations


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    drift = migrations.schema_drift(engine)
    assert drift == [], f"autogenerate found differences; write a migration: {drift}"


def test_upgrade_is_idempotent(engine: Engine) -> None:
    migrations.upgrade(engine)
    assert migrations.schema_drift(engine) == []


def test_expected_tables_and_indexes(engine: Engine, backend: str) -> None:
    inspector = inspect(engine)
    assert {"findings", "finding_aliases", "finding_events", "api_tokens", "audit_log"} <= set(
        inspector.get_table_names()
    )
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("findings")}
    for columns in [
        ("status", "score", "id"),
        ("source",),
        ("type",),
        ("account_id",),
        ("resource_id",),
        ("last_seen", "id"),
    ]:
        assert columns in indexed
    unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("findings")}
    assert ("fingerprint",) in unique
    if backend == "postgresql":
        assert "ix_findings_tags_gin" in {ix["name"] for ix in inspector.get_indexes("findings")}
