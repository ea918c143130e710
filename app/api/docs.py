"""OpenAPI helpers: documented error responses and request bodies read by hand."""

from __future__ import annotations

from typing import Any

from app.api.schemas import ErrorBody

_DESCRIPTIONS = {
    401: "Missing, unknown, expired or revoked token.",
    403: "The token lacks the scope this endpoint needs.",
    404: "No such object.",
    409: "The change conflicts with the current state (the message says why).",
    413: "The body is larger than TOCSIN_MAX_BODY_BYTES.",
    422: "The request is invalid; `errors` names each field.",
    503: "The database is unavailable; retry after `Retry-After` seconds.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def json_body(schema_name: str, example: Any) -> dict[str, Any]:
    """``openapi_extra`` for an endpoint that decodes its body itself (fast path) but documents it."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{schema_name}"},
                    "example": example,
                }
            },
        }
    }


EXAMPLE_FINDING: dict[str, Any] = {
    "source": "trivy",
    "type": "CVE-2024-3094",
    "title": "xz-utils: malicious code in liblzma (backdoor)",
    "severity": "critical",
    "resource": {
        "type": "container_image",
        "id": "registry.example.com/shop/api:1.4.2",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "tags": {"env": "prod", "team": "payments"},
        "public": True,
    },
    "references": ["https://nvd.nist.gov/vuln/detail/CVE-2024-3094"],
    "remediation": "Upgrade xz-utils to 5.6.1+really5.4.5 or later.",
}
