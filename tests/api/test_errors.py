"""The error handlers: bodies and values the API layer cannot use answer 422, never 400 or 500.

Both cases were found by the schema fuzzing (tests/test_schemathesis.py) and are pinned here by hand.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("path", ["/v1/teams", "/v1/silences", "/v1/routing/explain"])
def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(client: Any, path: str) -> None:
    resp = client.post(path, content=b"\xff\xfe{\x80}", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json() == {
        "detail": "invalid request: body: the body is not valid JSON",
        "code": "invalid",
        "errors": [{"field": "body", "message": "the body is not valid JSON"}],
    }


@pytest.mark.parametrize(
    ("path", "on_sqlite"),
    [
        ("/v1/notifications?team=pay%00ments", 200),
        ("/v1/findings?team=pay%00ments", 200),
        ("/v1/audit?actor=a%00b", 200),
        ("/v1/silences/x%00y", 404),
    ],
)
def test_a_nul_character_in_a_value_is_refused_by_postgresql_with_422_not_500(
    client: Any, backend: str, path: str, on_sqlite: int
) -> None:
    resp = client.get(path)
    # SQLite stores and compares NUL like any other character: the filter matches nothing. PostgreSQL
    # refuses NUL in text (a DataError, which was a 500).
    if backend == "sqlite":
        assert resp.status_code == on_sqlite, resp.text
    else:
        assert resp.status_code == 422, resp.text
        assert resp.json() == {
            "detail": "invalid request: text must not contain NUL (0x00) characters",
            "code": "invalid",
        }
