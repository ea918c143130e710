"""Fixtures for the AWS pull: moto's server for Security Hub (and STS), the local fake for GuardDuty/Macie.

boto3 runs its real code path against both: fake credentials in the environment, endpoints given by
``TOCSIN_AWS_ENDPOINT_URL`` (every service to one server) or botocore's own per-service
``AWS_ENDPOINT_URL_<SERVICE>`` variables (Security Hub to moto, GuardDuty and Macie to the fake at once).
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, func, select, text

from app.cli import main
from app.models import Finding
from tests.fakes.aws_api import FakeAwsApi
from tests.samples import AWS

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account, and the fake's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto(moto_url: str) -> str:
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    return moto_url


@pytest.fixture
def fake_aws() -> Iterator[FakeAwsApi]:
    fake = FakeAwsApi()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> pytest.MonkeyPatch:
    """Fake credentials and a clean AWS configuration; the CLI reads the test database."""
    for name in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-never-printed")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TOCSIN_DATABASE_URL", database_url)
    monkeypatch.setenv("TOCSIN_AWS_REGIONS", REGION)
    monkeypatch.setenv("TOCSIN_LOG_JSON", "false")
    return monkeypatch


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The test database, emptied (the shared fixture empties the findings; the cursors are ours)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM source_cursors"))
    return engine


@pytest.fixture
def pull(aws_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run ``tocsin pull aws [args]`` in-process; returns (exit status, what it printed)."""

    def run(*args: str) -> tuple[int, str]:
        status = main(["pull", "aws", *args])
        out, err = capsys.readouterr()
        return status, out + err

    return run


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def securityhub_samples() -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []
    for path in sorted((AWS / "securityhub").glob("*.json")):
        document = load(path)
        findings.extend(document if isinstance(document, list) else [document])
    return findings


def guardduty_samples() -> list[dict[str, Any]]:
    findings = []
    for path in sorted((AWS / "guardduty").glob("*.json")):
        document = load(path)
        findings.append(document.get("detail", document))
    return findings


def macie_samples() -> list[dict[str, Any]]:
    """Distinct findings by id (two sample files hold the same finding); the partial one has no id."""
    by_id: dict[str, dict[str, Any]] = {}
    for path in sorted((AWS / "macie").glob("*.json")):
        document = load(path)
        for finding in document.get("findings", [document]):
            if finding.get("id"):
                by_id[finding["id"]] = finding
    return list(by_id.values())


def clones(
    finding: dict[str, Any], count: int, id_key: str, updated_key: str, start: str
) -> list[dict[str, Any]]:
    """``count`` copies with their own ids and one second apart from ``start`` (ISO, ``Z``)."""
    from datetime import datetime, timedelta

    base = datetime.fromisoformat(start.replace("Z", "+00:00"))
    copies = []
    for n in range(count):
        twin = copy.deepcopy(finding)
        twin[id_key] = f"{finding[id_key]}-clone-{n:03d}"
        twin[updated_key] = (
            (base + timedelta(seconds=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        if "arn" in twin:
            twin["arn"] = twin["arn"].replace(finding[id_key], twin[id_key])
        copies.append(twin)
    return copies


def import_to_securityhub(moto_url: str, findings: list[dict[str, Any]]) -> None:
    client = boto3.client("securityhub", region_name=REGION, endpoint_url=moto_url)
    shape = client.meta.service_model.operation_model("BatchImportFindings").input_shape.members["Findings"]
    findings = fit_to_shape(findings, shape)
    for start in range(0, len(findings), 100):
        result = client.batch_import_findings(Findings=findings[start : start + 100])
        assert result["FailedCount"] == 0, result["FailedFindings"]


def fit_to_shape(value: Any, shape: Any) -> Any:
    """A sample as Security Hub would take it: members its API model lacks are dropped, numbers in text
    become numbers (some documentation samples, e.g. ``Severity.Normalized: "40"``, are not valid input)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: fit_to_shape(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if kind == "list" and isinstance(value, list):
        return [fit_to_shape(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: fit_to_shape(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, str):
        return int(float(value))
    if kind in ("double", "float") and isinstance(value, str):
        return float(value)
    return value


def count_findings(engine: Engine, **where: str) -> int:
    stmt = select(func.count()).select_from(Finding)
    for column, value in where.items():
        stmt = stmt.where(getattr(Finding, column) == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
