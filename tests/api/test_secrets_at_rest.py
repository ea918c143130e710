"""No secret value from a secret scanner's report survives anywhere: API answers or the database file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from tests.samples import SCANNERS


def gitleaks_secrets(document: Any) -> set[str]:
    """The secret values of a Gitleaks report (v8 `Secret`; v7 `offender`, whose quoted value is the key)."""
    found = set()
    for item in document:
        for key in ("Secret", "offender"):
            value = item.get(key)
            if isinstance(value, str) and len(value) >= 8:
                found.add(value.split('"')[1] if value.count('"') >= 2 else value)
    return found


def test_gitleaks_secrets_are_nowhere(client: Any, engine: Engine, backend: str) -> None:
    path = SCANNERS / "gitleaks" / "data_many.json"
    secrets = gitleaks_secrets(json.loads(path.read_text()))
    assert secrets
    resp = client.post(
        "/v1/ingest/gitleaks", content=path.read_bytes(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] >= 1
    answers = [
        client.get(f"/v1/findings/{item['id']}").text for item in client.get("/v1/findings").json()["items"]
    ]
    with engine.connect() as conn:
        stored = [json.dumps([str(v) for v in row]) for row in conn.execute(text("SELECT * FROM findings"))]
        stored += [
            json.dumps([str(v) for v in row]) for row in conn.execute(text("SELECT * FROM finding_aliases"))
        ]
    everything = "\n".join(answers + stored)
    for secret in secrets:
        assert secret not in everything
    if backend == "sqlite":
        engine.dispose()  # flush the WAL into the file before reading its bytes
        database = Path(str(engine.url.database))
        blob = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        for secret in secrets:
            assert secret.encode() not in blob


def test_the_deployment_salt_keys_secret_findings(settings: Any, engine: Engine) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from app.main import create_app
    from tests.conftest import ADMIN_TOKEN

    body = (SCANNERS / "gitleaks" / "data_one.json").read_bytes()

    def post(salt: str) -> dict[str, Any]:
        app = create_app(settings.model_copy(update={"secrets_salt": SecretStr(salt)}), engine)
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            resp = client.post(
                "/v1/ingest/gitleaks", content=body, headers={"content-type": "application/json"}
            )
            assert resp.status_code == 200, resp.text
            answer: dict[str, Any] = resp.json()
            return answer

    first = post("salt-one-0123456789")
    assert first["created"] >= 1
    assert post("salt-one-0123456789")["created"] == 0  # the same salt deduplicates
    assert post("salt-two-0123456789")["created"] == first["created"]  # another salt re-keys them
