"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any


def finding(**overrides: Any) -> dict[str, Any]:
    """A valid native finding; keyword arguments replace top-level fields."""
    base: dict[str, Any] = {
        "source": "trivy",
        "type": "CVE-2024-3094",
        "title": "xz-utils backdoor",
        "severity": "high",
        "resource": {"type": "container_image", "id": "registry.example.com/shop/api:1.4.2"},
    }
    base.update(overrides)
    return base


def post(client: Any, *findings: dict[str, Any], **kwargs: Any) -> Any:
    return client.post("/v1/findings", json={"findings": list(findings)}, **kwargs)
