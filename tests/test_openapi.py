"""The OpenAPI document at /openapi.json: what a client generator and a reader of /docs rely on."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import load_settings

ERROR_BODY = "#/components/schemas/ErrorBody"
OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}


@cache
def document() -> dict[str, Any]:
    """Served over HTTP by the real app, not started: serving the document needs no database."""
    app = create_app(load_settings(database_url="sqlite:///never-opened.db"))
    resp = TestClient(app).get("/openapi.json")
    assert resp.status_code == 200
    spec: dict[str, Any] = resp.json()
    return spec


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document()["paths"].items()
        for method, operation in item.items()
    ]


def operation_ids(ops: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [f"{method} {path}" for method, path, _ in ops]


V1 = [op for op in operations() if op[1].startswith("/v1")]
# Authenticated by the message's own signature (SNS), not a bearer token.
SIGNED = {("POST", "/v1/ingest/sns")}
# Authenticated by a shared secret or Slack's request signature (401 when wrong), not a bearer token.
SHARED_SECRET = {("POST", "/v1/jira/webhook"), ("POST", "/v1/slack/interactions")}
TOKEN_V1 = [op for op in V1 if (op[0], op[1]) not in SIGNED | SHARED_SECRET]
WITH_INPUT = [op for op in V1 if op[2].get("parameters") or op[2].get("requestBody")]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document()
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_v1_surface_is_documented() -> None:
    assert {path for _, path, _ in V1} >= {
        "/v1/findings",
        "/v1/findings/{finding_id}",
        "/v1/stats",
        "/v1/tokens",
    }
    assert set(document()["paths"]) >= OPEN_PATHS


@pytest.mark.parametrize(("method", "path", "operation"), operations(), ids=operation_ids(operations()))
def test_every_operation_has_a_written_summary(method: str, path: str, operation: dict[str, Any]) -> None:
    summary = operation.get("summary", "").strip()
    # Without one, FastAPI makes "Title Case Words" from the function name; ours are sentences.
    assert summary and summary != summary.title(), f"{summary!r} looks generated from the function name"


@pytest.mark.parametrize(("method", "path", "operation"), TOKEN_V1, ids=operation_ids(TOKEN_V1))
def test_every_v1_operation_documents_401_and_403_and_needs_the_bearer(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    assert {"401", "403"} <= set(operation["responses"])
    assert operation.get("security"), "the bearer scheme is not declared"
    schemes = document()["components"]["securitySchemes"]
    for requirement in operation["security"]:
        for name in requirement:
            assert (schemes[name]["type"], schemes[name]["scheme"]) == ("http", "bearer")


@pytest.mark.parametrize(("method", "path"), sorted(SIGNED))
def test_signed_operations_document_403_and_declare_no_bearer(method: str, path: str) -> None:
    operation = document()["paths"][path][method.lower()]
    assert "403" in operation["responses"] and "401" not in operation["responses"]
    assert "security" not in operation


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
def test_open_operations_need_no_credentials(path: str) -> None:
    assert "security" not in document()["paths"][path]["get"]


@pytest.mark.parametrize(("method", "path", "operation"), WITH_INPUT, ids=operation_ids(WITH_INPUT))
def test_every_operation_taking_input_documents_422_with_error_body(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    response = operation["responses"].get("422")
    assert response is not None
    assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_BODY}


@pytest.mark.parametrize(("method", "path", "operation"), operations(), ids=operation_ids(operations()))
def test_every_error_response_uses_error_body(method: str, path: str, operation: dict[str, Any]) -> None:
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_BODY}, status
            assert response.get("description", "").strip(), status


def test_error_body_schema_is_detail_code_and_field_errors() -> None:
    schema = _resolve(ERROR_BODY)
    assert set(schema["required"]) == {"detail", "code"}
    assert set(schema["properties"]) == {"detail", "code", "errors"}
    field_error = document()["components"]["schemas"]["FieldErrorOut"]
    assert set(field_error["required"]) == {"field", "message"}


def test_ingest_request_body_is_the_finding_batch_schema() -> None:
    body = document()["paths"]["/v1/findings"]["post"]["requestBody"]
    assert body["required"] is True
    content = body["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/FindingBatch"}
    batch = _resolve(content["schema"]["$ref"])
    assert batch["required"] == ["findings"]
    items = batch["properties"]["findings"]["items"]
    finding = _resolve(items["$ref"])
    assert {"source", "type", "title", "severity"} <= set(finding["properties"])
    assert content["example"]["findings"], "the example shows at least one finding"


def test_every_reference_resolves() -> None:
    unresolved = []
    for ref in set(_refs(document())):
        try:
            _resolve(ref)
        except KeyError:
            unresolved.append(ref)
    assert unresolved == []


def test_token_creation_documents_the_secret_and_conflict() -> None:
    post = document()["paths"]["/v1/tokens"]["post"]
    assert {"201", "409", "422"} <= set(post["responses"])
    created = _resolve(post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"])
    assert "token" in created["properties"]
    listed = document()["paths"]["/v1/tokens"]["get"]["responses"]["200"]["content"]["application/json"]
    token_out = _resolve(listed["schema"]["items"]["$ref"])
    assert "token" not in token_out["properties"] and "token_hash" not in token_out["properties"]
