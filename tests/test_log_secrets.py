"""No secret in the logs or the answers: a full scenario against ``tocsin serve`` with JSON logs at DEBUG,
then every secret the scenario used is searched for in everything the server printed and answered."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.settings import Settings
from tests.api.test_secrets_at_rest import gitleaks_secrets
from tests.conftest import ADMIN_TOKEN
from tests.samples import SCANNERS
from tests.test_cli import clean_env, serving

SLACK_TOKEN = "xoxb-4242424242-4242424242424-SeCrEtSlAcKbOtToKeNvAlUe"
SALT = "salt-that-must-never-be-printed-8c1f0e7d"
WEBHOOK_PASSWORD = "hunter2-basic-auth-password-in-a-header"


# What is logged does not depend on the database: one backend is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_scenario_leaks_no_secret_into_logs_or_answers(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    env = clean_env(
        TOCSIN_DATABASE_URL=settings.database_url,
        TOCSIN_BOOTSTRAP_TOKEN=ADMIN_TOKEN,
        TOCSIN_LOG_JSON="true",
        TOCSIN_LOG_LEVEL="DEBUG",
        TOCSIN_SECRETS_SALT=SALT,
        TOCSIN_SECRET_SLACK_BOT=SLACK_TOKEN,
    )
    report_path = SCANNERS / "gitleaks" / "data_many.json"
    leaked = gitleaks_secrets(json.loads(report_path.read_text()))
    answers: list[str] = []
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with (
        serving(tmp_path, env, label="secrets") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):

        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            resp = http.request(method, path, **kwargs)
            answers.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
            return resp

        created = http.post("/v1/tokens", json={"name": "gitleaks-ci", "scopes": ["ingest"]}, headers=admin)
        assert created.status_code in (200, 201), created.text
        ingest_token = created.json()["token"]  # shown once, in this answer only
        ingest = {"Authorization": f"Bearer {ingest_token}"}

        assert call(
            "POST",
            "/v1/teams",
            json={"name": "payments", "default": True, "policy": {"group_wait": "0s"}},
            headers=admin,
        ).is_success
        channel = {"name": "pay-slack", "team": "payments", "kind": "slack", "target": "C0123PAYMT"}
        resp = call("POST", "/v1/channels", json={**channel, "secret_ref": "SLACK_BOT"}, headers=admin)
        assert resp.is_success, resp.text
        resp = call(
            "POST",
            "/v1/ingest/gitleaks",
            content=report_path.read_bytes(),
            headers={**ingest, "content-type": "application/json"},
        )
        assert resp.status_code == 200 and resp.json()["created"] >= 1, resp.text
        call("GET", "/v1/findings", headers=admin)
        for item in call("GET", "/v1/findings", headers=admin).json()["items"]:
            call("GET", f"/v1/findings/{item['id']}", headers=admin)
        call("GET", "/v1/channels", headers=admin)

        # Credentials in all the wrong places.
        wrong = [
            {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
            {"Authorization": f"Bearer {ingest_token[:-2]}"},
            {"Authorization": f"Token {ADMIN_TOKEN}"},
            {"Authorization": "Basic " + base64.b64encode(f"admin:{WEBHOOK_PASSWORD}".encode()).decode()},
            {"Authorization": f"Bearer {SLACK_TOKEN}"},
            {"X-Api-Key": ADMIN_TOKEN},
        ]
        for headers in wrong:
            assert call("GET", "/v1/findings", headers=headers).status_code == 401
        assert call("GET", "/v1/tokens", headers=ingest).status_code == 403
        for query in (f"token={ingest_token}", f"access_token={ADMIN_TOKEN}", f"api_key={SLACK_TOKEN}"):
            call("GET", f"/v1/findings?{query}", headers=admin)
            call("GET", f"/v1/no-such-endpoint?{query}")
        # A token pasted into the path: the 404 may quote it back to its sender, the log must not.
        assert http.get(f"/v1/findings/{ingest_token}", headers=admin).status_code == 404
        assert http.get(f"/v1/{ADMIN_TOKEN}/{SLACK_TOKEN}").status_code == 404
        call("POST", "/v1/findings", content=f'{{"findings": [{{"title": "{ingest_token}"', headers=ingest)
        call("POST", f"/v1/ingest/gitleaks?scope={ADMIN_TOKEN}", content=b"[]", headers=ingest)
        call("POST", "/v1/findings", json={"findings": [{"source": SLACK_TOKEN}]}, headers=ingest)

        # Give the embedded dispatcher time to try the Slack channel (with the secret) and log about it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sent = call("GET", "/v1/notifications", headers=admin).json().get("items", [])
            if any(n.get("attempts") for n in sent):
                break
            time.sleep(0.25)
        assert server.stop() == 0
        logs = server.stderr() + server.stdout()

    assert '"request_id"' in logs and '"msg"' in logs  # JSON lines were captured
    everything = logs + "\n".join(answers)
    secrets = {
        "admin token": ADMIN_TOKEN,
        "ingest token": ingest_token,
        "slack token": SLACK_TOKEN,
        "secrets salt": SALT,
        "basic-auth password": WEBHOOK_PASSWORD,
        **{f"leaked secret {i}": value for i, value in enumerate(sorted(leaked))},
    }
    found = {name for name, value in secrets.items() if value in everything}
    assert found == set(), f"secrets found in logs or answers: {sorted(found)}"
    assert "Traceback" not in "\n".join(answers)
    for line in logs.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert "authorization" not in {key.lower() for key in entry}


def test_credential_shaped_values_are_redacted_from_every_log_line() -> None:
    import logging

    from app.logs import JsonFormatter, RedactingFormatter

    record = logging.LogRecord(
        "tocsin.test", logging.ERROR, __file__, 1, "failed for %s", (f"/v1/{ADMIN_TOKEN}",), None
    )
    record.detail = f"slack said no to {SLACK_TOKEN}; key AKIAIOSFODNN7EXAMPLE"
    for formatter in (JsonFormatter(), RedactingFormatter("%(message)s")):
        line = formatter.format(record)
        assert ADMIN_TOKEN not in line and "tcn_[redacted]" in line
    line = JsonFormatter().format(record)
    assert SLACK_TOKEN not in line and "AKIAIOSFODNN7EXAMPLE" not in line
